//! The training loop (burn's custom-training-loop pattern: forward → `backward()` →
//! `GradientsParams::from_grads` → `optim.step`), with a plateau stopping rule.
//!
//! # Stopping rule
//! After every epoch the mean minibatch loss is recorded. Once `min_epochs` have run, the
//! loss has *plateaued* when the best loss of the last `patience` epochs improves on the
//! best loss before them by less than `plateau_tolerance` (relative). At a plateau the
//! learning rate is divided by `lr_decay_factor` (up to `lr_decays` times, each followed
//! by a fresh window); at the plateau after the last decay training stops as converged.
//! Reaching `max_epochs` first stops it as *not converged*, and the summary says how
//! much the loss was still improving.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::{Backend, Error, PdgmmVae, Result, TrainingConfig, loss};

/// How the frames of the training segment are grouped into minibatches each epoch.
///
/// The model treats frames as i.i.d., so [`ShuffledRows`] is right for it; temporal
/// priors will draw contiguous windows instead, through the same trainer.
pub trait BatchPlan {
    /// The minibatches of one epoch, as frame indices into the training segment.
    fn epoch(&mut self, frames: usize, rng: &mut StdRng) -> Vec<Vec<usize>>;
}

/// Every frame once per epoch, in a fresh random order, cut into batches.
#[derive(Debug, Clone, Copy)]
pub struct ShuffledRows {
    /// Frames per batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
}

impl BatchPlan for ShuffledRows {
    fn epoch(&mut self, frames: usize, rng: &mut StdRng) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..frames).collect();
        order.shuffle(rng);
        order.chunks(self.batch_size.max(1)).map(<[usize]>::to_vec).collect()
    }
}

/// What one epoch looked like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean minibatch loss.
    pub loss: f64,
    /// Mean reconstruction term.
    pub reconstruction: f64,
    /// Mean (unweighted) KL term.
    pub kl: f64,
    /// Mean λ-term reconstruction (0 when λ = 0).
    pub auxiliary: f64,
    /// Learning rate used.
    pub learning_rate: f64,
    /// Posterior variances `σ_j²` at the end of the epoch.
    pub posterior_var: Vec<f64>,
    /// Prior weights `π_jk`, one row per source.
    pub prior_weights: Vec<Vec<f64>>,
    /// Prior means `m_jk`.
    pub prior_means: Vec<Vec<f64>>,
    /// Prior variances `exp(η_jk)`.
    pub prior_vars: Vec<Vec<f64>>,
    /// Seconds since training started.
    pub elapsed_s: f64,
}

/// Why training stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// The loss plateaued after the last learning-rate decay.
    Plateau,
    /// `max_epochs` was reached first.
    EpochCap,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Epochs run.
    pub epochs: usize,
    /// Optimiser steps taken.
    pub steps: usize,
    /// Frames in the training segment.
    pub frames: usize,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Whether the stopping rule judged the loss converged.
    pub converged: bool,
    /// Relative improvement of the loss over the last `patience` epochs when it stopped
    /// (compare with `plateau_tolerance`: below it means plateaued).
    pub remaining_relative_improvement: f64,
    /// The tolerance the rule used.
    pub plateau_tolerance: f64,
    /// Final mean loss.
    pub final_loss: f64,
    /// Best mean loss seen.
    pub best_loss: f64,
    /// Wall time of training, seconds.
    pub wall_s: f64,
    /// Backend used.
    pub backend: Backend,
}

/// Every epoch of a run plus its summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingHistory {
    /// One record per epoch.
    pub epochs: Vec<EpochRecord>,
    /// Outcome.
    pub summary: TrainingSummary,
}

/// Fits a PDGMM-VAE.
#[derive(Debug, Clone)]
pub struct Trainer {
    config: TrainingConfig,
    backend: Backend,
}

impl Trainer {
    /// Checks the configuration once; only a valid trainer can fit.
    pub fn new(config: TrainingConfig, backend: Backend) -> Result<Self> {
        config.check()?;
        backend.device()?;
        Ok(Self { config, backend })
    }

    /// The configuration.
    pub fn config(&self) -> &TrainingConfig {
        &self.config
    }

    /// The plain device models are returned on.
    pub fn device(&self) -> Result<Device> {
        self.backend.device()
    }

    /// Trains on `data`, interleaved `frames × inputs` normalised frames.
    ///
    /// `on_epoch` sees every epoch's record as it ends (for progress display). Returns the
    /// trained model (on the plain, non-autodiff device) and the history.
    pub fn fit(
        &self,
        data: &[f32],
        plan: &mut dyn BatchPlan,
        on_epoch: &mut dyn FnMut(&EpochRecord),
    ) -> Result<(PdgmmVae, TrainingHistory)> {
        let c = &self.config;
        let inputs = c.model.inputs;
        let sources = c.model.sources;
        if data.is_empty() || !data.len().is_multiple_of(inputs) {
            return Err(Error::Data(format!("{} values are not whole frames of {inputs} inputs", data.len())));
        }
        let frames = data.len() / inputs;
        if frames < 2 {
            return Err(Error::Data("need at least two frames".into()));
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(Error::Data("training data hold NaN or infinite values".into()));
        }
        let started = Instant::now();
        let device = self.backend.device()?.autodiff();
        let mut model = c.model.init(c.seed, &device)?;
        let mut optim = AdamConfig::new().init();
        // One stream for shuffling and noise, separate from the initialisation stream.
        let mut rng = StdRng::seed_from_u64(c.seed ^ 0x9e37_79b9_7f4a_7c15);
        let all = Tensor::<2>::from_data(TensorData::new(data.to_vec(), [frames, inputs]), &device);

        let mut epochs: Vec<EpochRecord> = Vec::new();
        let mut learning_rate = c.learning_rate;
        let mut decays_left = c.lr_decays;
        let mut window_start = 0usize; // epoch index where the current judging window began
        let mut steps = 0usize;
        let mut stop = StopReason::EpochCap;
        let mut remaining = f64::NAN;

        for epoch in 1..=c.max_epochs {
            let batches = plan.epoch(frames, &mut rng);
            let zero = || Tensor::<1>::zeros([1], &device);
            let (mut sum_total, mut sum_rec, mut sum_kl, mut sum_aux) = (zero(), zero(), zero(), zero());
            let mut weight_sum = 0.0f64;
            for batch in &batches {
                let b = batch.len();
                let ids: Vec<i64> = batch.iter().map(|&i| i as i64).collect();
                let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [b]), &device);
                let y = all.clone().select(0, ids);
                let eps: Vec<f32> = (0..b * sources).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
                let eps = Tensor::<2>::from_data(TensorData::new(eps, [b, sources]), &device);
                let parts = loss(&model, y, eps, c.beta, c.lambda);
                // Epoch means weight each batch by its size, so a short last batch counts less.
                let w = b as f64;
                sum_total = sum_total + parts.total.clone().detach() * w;
                sum_rec = sum_rec + parts.reconstruction.detach() * w;
                sum_kl = sum_kl + parts.kl.detach() * w;
                sum_aux = sum_aux + parts.auxiliary.detach() * w;
                weight_sum += w;
                let grads = GradientsParams::from_grads(parts.total.backward(), &model);
                model = optim.step(learning_rate, model, grads);
                steps += 1;
            }
            let scalar = |t: Tensor<1>| f64::from(t.into_scalar::<f32>()) / weight_sum;
            let record = EpochRecord {
                epoch,
                loss: scalar(sum_total),
                reconstruction: scalar(sum_rec),
                kl: scalar(sum_kl),
                auxiliary: scalar(sum_aux),
                learning_rate,
                elapsed_s: started.elapsed().as_secs_f64(),
                ..snapshot(&model)
            };
            if !record.loss.is_finite() {
                return Err(Error::Diverged { epoch });
            }
            on_epoch(&record);
            epochs.push(record);

            // Plateau test over the window [len - patience, len) against everything before it
            // (since the current learning rate took effect).
            let len = epochs.len();
            if len >= c.min_epochs && len >= window_start + 2 * c.patience {
                let split = len - c.patience;
                let before = best(&epochs[window_start..split]);
                let recent = best(&epochs[split..]);
                remaining = (before - recent) / before.abs().max(f64::MIN_POSITIVE);
                if remaining < c.plateau_tolerance {
                    if decays_left == 0 {
                        stop = StopReason::Plateau;
                        break;
                    }
                    decays_left -= 1;
                    learning_rate /= c.lr_decay_factor;
                    window_start = len;
                }
            }
        }
        if stop == StopReason::EpochCap && remaining.is_nan() {
            // Too few epochs for even one judging window: report the improvement over the run.
            let first = epochs.first().map_or(f64::NAN, |e| e.loss);
            let last = epochs.last().map_or(f64::NAN, |e| e.loss);
            remaining = (first - last) / first.abs().max(f64::MIN_POSITIVE);
        }
        let summary = TrainingSummary {
            epochs: epochs.len(),
            steps,
            frames,
            stop_reason: stop,
            converged: stop == StopReason::Plateau,
            remaining_relative_improvement: remaining,
            plateau_tolerance: c.plateau_tolerance,
            final_loss: epochs.last().map_or(f64::NAN, |e| e.loss),
            best_loss: best(&epochs),
            wall_s: started.elapsed().as_secs_f64(),
            backend: self.backend,
        };
        Ok((model.valid(), TrainingHistory { epochs, summary }))
    }
}

fn best(records: &[EpochRecord]) -> f64 {
    records.iter().map(|r| r.loss).fold(f64::INFINITY, f64::min)
}

/// The posterior variances and prior parameters of `model`, in an otherwise empty record.
fn snapshot(model: &PdgmmVae) -> EpochRecord {
    let w = model.export_priors();
    EpochRecord {
        epoch: 0,
        loss: 0.0,
        reconstruction: 0.0,
        kl: 0.0,
        auxiliary: 0.0,
        learning_rate: 0.0,
        posterior_var: w.0,
        prior_weights: w.1,
        prior_means: w.2,
        prior_vars: w.3,
        elapsed_s: 0.0,
    }
}

impl PdgmmVae {
    /// `(σ², π, m, v)` per source, as `f64` rows.
    #[allow(clippy::type_complexity)]
    pub(crate) fn export_priors(&self) -> (Vec<f64>, Vec<Vec<f64>>, Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let p = self.prior.params();
        let k = p.components;
        let n = p.logits.len() / k.max(1);
        let var = crate::prior::to_vec(self.posterior_log_var()).iter().map(|w| f64::from(w.exp())).collect();
        let rows = |v: &[f32], f: fn(f32) -> f64| -> Vec<Vec<f64>> {
            v.chunks(k).map(|r| r.iter().map(|&x| f(x)).collect()).collect()
        };
        let weights = (0..n).map(|j| p.weights(j).iter().map(|&x| f64::from(x)).collect()).collect();
        (var, weights, rows(&p.means, f64::from), rows(&p.log_vars, |x| f64::from(x.exp())))
    }
}
