//! Consensus restarts: several candidates with different prior initialisations, judged on
//! held-out frames, losers re-seeded near the survivors, the winner trained to the end.
//!
//! After *Historical Consensus* (arXiv 2603.10935, `../shared/papers/companions.md`): a
//! candidate that has been pulled towards several distinct GMM priors before settling on
//! one lands in a more stable region than a single run from one initialisation, and the
//! selection removes runs stuck in a poor basin (a swapped or merged pair of sources shows
//! up as a higher loss).
//!
//! # Selection criterion
//! The negative ELBO estimate (the training loss, same β and λ) on held-out frames that no
//! candidate trains on, with one fixed draw of reparameterisation noise shared by all
//! candidates. Held-out data measure how well a candidate models the *distribution*, so a
//! candidate that memorises its minibatches gains nothing; the shared noise makes the
//! comparison between candidates paired, so small differences are real. Training loss is
//! not used: it is a running mean over an epoch at changing parameters and noise.
//!
//! # Schedule
//! `rounds` rounds of `epochs_per_round` epochs for every candidate. After each round but
//! the last, the better half survive; every loser takes a survivor's encoder and decoder
//! (perturbed by `perturbation` × the layer's RMS weight) with a *fresh, different* prior
//! initialisation and a fresh optimiser. After the last round the best candidate is
//! trained on by the ordinary stopping rule. Defaults (4 candidates, 3 rounds of 8
//! epochs) cost 96 candidate epochs, about the length of one plain run on the paper's
//! problems, so the whole fit stays within 2–3× a single run (`docs/model.md`).

use std::ops::ControlFlow;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use unmix_format::{GmmParams, ModelWeights};

use crate::prior::initial_params;
use crate::trainer::{Run, ShuffledRows, Start, Trainer, TrainingData, TrainingHistory};
use crate::{EpochRecord, PdgmmVae};
use unmix_core::limits::MAX_RESTARTS;
use unmix_core::parallel::{round_robin, threads_for};

/// Settings of consensus restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsensusConfig {
    /// Candidates trained side by side (1 = a single run).
    pub candidates: usize,
    /// Selection rounds.
    pub rounds: usize,
    /// Epochs every candidate trains per round.
    pub epochs_per_round: usize,
    /// Fraction of the training segment held out for validation.
    pub validation_fraction: f64,
    /// Cap on held-out frames.
    pub max_validation_frames: usize,
    /// Relative size of the perturbation given to a re-seeded candidate's weights.
    pub perturbation: f64,
    /// Threads that train the candidates of a round side by side (0 = one per core, at
    /// most one per candidate). Each candidate has its own model, optimiser and random
    /// stream, so the result does not depend on it.
    #[serde(default)]
    pub threads: usize,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        Self {
            candidates: 4,
            rounds: 3,
            epochs_per_round: 8,
            validation_fraction: 0.1,
            max_validation_frames: 8192,
            perturbation: 0.02,
            threads: 0,
        }
    }
}

impl ConsensusConfig {
    /// A single run: no restarts (validation is still measured and reported).
    pub fn single() -> Self {
        Self { candidates: 1, rounds: 0, ..Self::default() }
    }

    /// The threads a round uses: [`ConsensusConfig::threads`], or one per core when it is
    /// 0, never more than there are candidates.
    pub fn worker_threads(&self) -> usize {
        threads_for(self.threads, self.candidates)
    }

    /// These settings for a training of at most `max_epochs` epochs: the rounds never
    /// run past the cap (fewer epochs a round, or fewer rounds of one epoch), so that the
    /// cap holds for the candidates too and the report says what ran.
    pub fn within_epochs(&self, max_epochs: usize) -> Self {
        let rounds = self.rounds.min(max_epochs);
        let epochs_per_round = self.epochs_per_round.min(max_epochs / rounds.max(1)).max(1);
        Self { rounds, epochs_per_round, ..self.clone() }
    }

    /// Checks every value once.
    pub fn check(&self) -> crate::Result<()> {
        if !(1..=MAX_RESTARTS).contains(&self.candidates) {
            return Err(crate::Error::Config(format!(
                "restarts have 1 to {MAX_RESTARTS} candidates, not {}",
                self.candidates
            )));
        }
        if self.candidates > 1 && (self.rounds == 0 || self.epochs_per_round == 0) {
            return Err(crate::Error::Config("restarts need at least one round of at least one epoch".into()));
        }
        if !(self.validation_fraction > 0.0 && self.validation_fraction < 0.5) {
            return Err(crate::Error::Config(format!(
                "validation fraction must be in (0, 0.5), got {}",
                self.validation_fraction
            )));
        }
        if !(self.perturbation.is_finite() && self.perturbation >= 0.0) {
            return Err(crate::Error::Config("perturbation must be ≥ 0".into()));
        }
        Ok(())
    }
}

/// A starting point for every candidate's network: targets to distil into the encoder
/// (e.g. linear ICA sources) and optionally a prior fitted to them.
#[derive(Debug, Clone)]
pub struct WarmStart {
    /// Interleaved `frames × sources` targets for the encoder, one row per training frame.
    pub targets: Vec<f32>,
    /// A prior fitted to the targets, given to the first candidate.
    pub prior: Option<GmmParams>,
    /// Least-squares epochs of the distillation.
    pub epochs: usize,
}

/// What the warm start achieved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmStartReport {
    /// Epochs of distillation.
    pub epochs: usize,
    /// `‖f(y) − s‖² / ‖s‖²` at the end: how closely the encoder reproduces the targets.
    pub encoder_mismatch: f64,
    /// `‖g(s) − y‖² / ‖y‖²`: how closely the decoder reproduces the data from them.
    pub decoder_mismatch: f64,
}

/// One candidate at the end of one round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateRound {
    /// Candidate index.
    pub candidate: usize,
    /// Held-out loss at the end of the round.
    pub validation_loss: f64,
    /// Training loss of its last epoch.
    pub training_loss: f64,
    /// Relative decrease of the training loss over the round (how far from a plateau).
    pub round_improvement: f64,
    /// Whether the plateau rule already judged this candidate converged (candidates are
    /// usually still improving: the rounds are short by design).
    pub converged: bool,
    /// Whether it survived the selection.
    pub survived: bool,
    /// The survivor it was re-seeded from, if it lost.
    pub reseeded_from: Option<usize>,
}

/// One selection round.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// 1-based round.
    pub round: usize,
    /// Candidates, by index.
    pub candidates: Vec<CandidateRound>,
}

/// Everything the restarts did, for the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsensusReport {
    /// Settings used, with the number of threads that trained the candidates.
    pub config: ConsensusConfig,
    /// Frames held out for validation.
    pub validation_frames: usize,
    /// The warm start, if one was given.
    pub warm_start: Option<WarmStartReport>,
    /// Selection rounds.
    pub rounds: Vec<Round>,
    /// Training-loss trace of every candidate's lineage over the rounds.
    pub candidate_traces: Vec<Vec<f64>>,
    /// The candidate that was finished.
    pub chosen: usize,
    /// Its held-out loss when chosen.
    pub chosen_validation_loss: f64,
    /// Its held-out loss at the end of training.
    pub final_validation_loss: f64,
}

/// What happened during a fit, for progress display.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A distillation epoch of the warm start.
    WarmStart {
        /// 1-based epoch.
        epoch: usize,
        /// Epochs in all.
        epochs: usize,
        /// Encoder mismatch so far.
        encoder_mismatch: f64,
    },
    /// An epoch of one candidate during the rounds.
    Candidate {
        /// 1-based round.
        round: usize,
        /// Rounds in all.
        rounds: usize,
        /// Candidate index.
        candidate: usize,
        /// Its epoch record.
        record: &'a EpochRecord,
    },
    /// An epoch of the chosen candidate's final training.
    Final(&'a EpochRecord),
}

/// The fitted model with its history and the restarts' report.
#[derive(Debug)]
pub struct Fitted {
    /// The trained model.
    pub model: PdgmmVae,
    /// The chosen candidate's whole history (its lineage through the rounds, then the end).
    pub history: TrainingHistory,
    /// What the restarts did.
    pub consensus: ConsensusReport,
}

/// Fits `data` (interleaved `frames × inputs`, normalised) with consensus restarts.
pub fn fit_with_restarts(
    trainer: &Trainer,
    data: &[f32],
    warm: Option<&WarmStart>,
    config: &ConsensusConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> crate::Result<Fitted> {
    config.check()?;
    let c = trainer.config();
    let config = &config.within_epochs(c.recipe.max_epochs);
    let (inputs, sources, seed) = (c.model.inputs, c.model.sources, c.recipe.seed);
    let total = trainer.data(data)?.frames();
    if let Some(w) = warm
        && w.targets.len() != total * sources
    {
        return Err(crate::Error::Data(format!(
            "{} warm-start values for {total} frames of {sources} sources",
            w.targets.len()
        )));
    }

    // Hold out a seeded random subset (the model treats frames as i.i.d.).
    let held_n = ((total as f64 * config.validation_fraction) as usize).clamp(1, config.max_validation_frames);
    let mut order: Vec<usize> = (0..total).collect();
    let mut split_rng = StdRng::seed_from_u64(seed ^ 0x05ee_d0f4_e1d0_u64);
    rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut split_rng);
    let (held_idx, train_idx) = order.split_at(held_n);
    let mut train_idx = train_idx.to_vec();
    train_idx.sort_unstable();
    let rows = |idx: &[usize], v: &[f32], w: usize| -> Vec<f32> {
        idx.iter().flat_map(|&i| v[i * w..(i + 1) * w].iter().copied()).collect()
    };
    let train = trainer.data(&rows(&train_idx, data, inputs))?;
    let held = trainer.validation(&rows(held_idx, data, inputs), seed ^ 0x0a11_da7a)?;
    let mut plan = ShuffledRows { batch_size: c.recipe.batch_size };

    // The common starting network.
    let mut warm_report = None;
    let base: Option<ModelWeights> = match warm {
        None => None,
        Some(w) => {
            let mut run = trainer.start(&Start::Seed(seed), seed)?;
            let targets = rows(&train_idx, &w.targets, sources);
            let epochs = w.epochs;
            let (enc, dec) = trainer.distil(&mut run, &train, &targets, epochs, &mut |epoch, mismatch| {
                progress(Progress::WarmStart { epoch, epochs, encoder_mismatch: mismatch })
            })?;
            warm_report = Some(WarmStartReport { epochs, encoder_mismatch: enc, decoder_mismatch: dec });
            let mut weights = run.export();
            if let Some(prior) = &w.prior {
                weights.prior = prior.clone();
            }
            Some(weights)
        }
    };
    let fresh_prior =
        |stream: u64| initial_params(sources, c.model.layout.components, &mut StdRng::seed_from_u64(stream));
    let start_of = |candidate: usize| -> Start {
        let stream = seed.wrapping_add(candidate as u64);
        match &base {
            None => Start::Seed(stream),
            // Candidate 0 keeps the warm prior; the others start from different priors.
            Some(w) if candidate == 0 => Start::Weights(Box::new(w.clone())),
            Some(w) => Start::Weights(Box::new(ModelWeights { prior: fresh_prior(stream), ..w.clone() })),
        }
    };
    let mut runs: Vec<Run> = (0..config.candidates)
        .map(|k| trainer.start(&start_of(k), seed.wrapping_add(k as u64)))
        .collect::<crate::Result<_>>()?;

    let mut rounds = Vec::new();
    let mut traces: Vec<Vec<f64>> = vec![Vec::new(); config.candidates];
    let mut reseed_rng = StdRng::seed_from_u64(seed ^ 0x0c01_5e55_u64);
    let mut next_stream = seed.wrapping_add(config.candidates as u64);
    let mut chosen = 0;
    let mut chosen_validation = f64::NAN;
    let n_rounds = if config.candidates > 1 { config.rounds } else { 0 };
    for round in 1..=n_rounds {
        let befores: Vec<Option<f64>> = runs.iter().map(|run| run.epochs().last().map(|e| e.loss)).collect();
        train_side_by_side(
            trainer,
            &mut runs,
            &train,
            plan,
            config.epochs_per_round,
            config.worker_threads(),
            &mut |k, record| progress(Progress::Candidate { round, rounds: n_rounds, candidate: k, record }),
        )?;
        let mut results = Vec::with_capacity(runs.len());
        for (k, run) in runs.iter().enumerate() {
            let trace: Vec<f64> = run.epochs().iter().map(|e| e.loss).collect();
            let last = trace.last().copied().unwrap_or(f64::NAN);
            let first = befores[k].unwrap_or_else(|| trace.first().copied().unwrap_or(f64::NAN));
            traces[k] = trace;
            results.push(CandidateRound {
                candidate: k,
                validation_loss: trainer.validation_loss(run, &held),
                training_loss: last,
                round_improvement: (first - last) / first.abs().max(f64::MIN_POSITIVE),
                converged: run.stop_reason() == Some(crate::StopReason::Plateau),
                survived: true,
                reseeded_from: None,
            });
        }
        let mut ranked: Vec<usize> = (0..runs.len()).collect();
        ranked.sort_by(|&a, &b| results[a].validation_loss.total_cmp(&results[b].validation_loss));
        chosen = ranked[0];
        chosen_validation = results[chosen].validation_loss;
        if round < n_rounds {
            let survivors = runs.len().div_ceil(2);
            for (i, &loser) in ranked[survivors..].iter().enumerate() {
                let donor = ranked[i % survivors];
                let mut weights = runs[donor].export();
                perturb(&mut weights, config.perturbation, &mut reseed_rng);
                weights.prior = fresh_prior(next_stream);
                let mut run = runs[donor].clone();
                trainer.reset(&mut run, &weights, next_stream)?;
                next_stream = next_stream.wrapping_add(1);
                runs[loser] = run;
                results[loser].survived = false;
                results[loser].reseeded_from = Some(donor);
            }
        }
        rounds.push(Round { round, candidates: results });
    }

    let mut winner = runs.swap_remove(chosen);
    drop(runs);
    let max_epochs = c.recipe.max_epochs;
    trainer.train(&mut winner, &train, &mut plan, max_epochs, &mut |record| progress(Progress::Final(record)))?;
    let final_validation = trainer.validation_loss(&winner, &held);
    if n_rounds == 0 {
        chosen_validation = final_validation;
    }
    let (model, history) = trainer.finish(winner, train.frames());
    Ok(Fitted {
        model,
        history,
        consensus: ConsensusReport {
            // The threads actually used, rather than 0 for "every core".
            config: ConsensusConfig { threads: config.worker_threads(), ..config.clone() },
            validation_frames: held_n,
            warm_start: warm_report,
            rounds,
            candidate_traces: traces,
            chosen,
            chosen_validation_loss: chosen_validation,
            final_validation_loss: final_validation,
        },
    })
}

/// Trains every run `epochs` more epochs, spread over `threads` threads (candidate `k`
/// on thread `k mod threads`); `on_epoch` sees every epoch on the calling thread, in the
/// order the epochs end. The runs share nothing but the training data, so they end as
/// they would one after the other. A thread stops at its first error; the first error by
/// candidate is returned once every thread has stopped (a cancellation stops them all at
/// their next epoch).
fn train_side_by_side(
    trainer: &Trainer,
    runs: &mut [Run],
    data: &TrainingData,
    plan: ShuffledRows,
    epochs: usize,
    threads: usize,
    on_epoch: &mut dyn FnMut(usize, &EpochRecord),
) -> crate::Result<()> {
    if threads <= 1 || runs.len() <= 1 {
        for (k, run) in runs.iter_mut().enumerate() {
            trainer.train(run, data, &mut { plan }, epochs, &mut |record| on_epoch(k, record))?;
        }
        return Ok(());
    }
    let (sender, records) = std::sync::mpsc::channel::<(usize, EpochRecord)>();
    let outcomes = round_robin(
        runs.iter_mut(),
        threads,
        move || {
            let sender = sender.clone();
            move |k, run: &mut Run| {
                let outcome = trainer.train(run, data, &mut { plan }, epochs, &mut |record| {
                    // The receiver lives until every worker has ended.
                    let _ = sender.send((k, record.clone()));
                });
                if outcome.is_err() { ControlFlow::Break(outcome) } else { ControlFlow::Continue(outcome) }
            }
        },
        || {
            for (k, record) in records {
                on_epoch(k, &record);
            }
        },
    );
    outcomes.into_iter().try_for_each(|(_, outcome)| outcome)
}

/// Adds `relative × RMS(layer)` Gaussian noise to every weight of the encoder and decoder.
fn perturb(weights: &mut ModelWeights, relative: f64, rng: &mut StdRng) {
    if relative == 0.0 {
        return;
    }
    for layer in weights.encoder.iter_mut().chain(weights.decoder.iter_mut()) {
        let rms =
            (layer.weight.iter().map(|w| f64::from(*w).powi(2)).sum::<f64>() / layer.weight.len().max(1) as f64).sqrt();
        for w in &mut layer.weight {
            *w += (relative * rms * rng.sample::<f64, _>(StandardNormal)) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rounds never run past the epoch cap, and the report then says what ran (it
    /// said "3 rounds of 8 epochs" whatever `--epochs` was).
    #[test]
    fn the_rounds_fit_within_the_epoch_cap() {
        let c = ConsensusConfig::default();
        let within = |cap| {
            let w = c.within_epochs(cap);
            (w.rounds, w.epochs_per_round)
        };
        assert_eq!(within(400), (3, 8));
        assert_eq!(within(12), (3, 4));
        assert_eq!(within(5), (3, 1));
        assert_eq!(within(2), (2, 1));
        assert_eq!(within(1), (1, 1));
    }
}
