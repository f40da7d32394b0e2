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
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use unmix_core::CancelToken;

use unmix_format::ModelWeights;

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

/// Where a run's parameters start.
#[derive(Debug, Clone)]
pub enum Start {
    /// A fresh initialisation from this seed (PyTorch-style dense layers, heterogeneous priors).
    Seed(u64),
    /// These weights (a warm start, or a candidate re-seeded near a survivor).
    Weights(Box<ModelWeights>),
}

/// The training segment, moved to the training device once.
#[derive(Debug, Clone)]
pub struct TrainingData {
    all: Tensor<2>,
    frames: usize,
    inputs: usize,
}

impl TrainingData {
    /// Frames in the segment.
    pub fn frames(&self) -> usize {
        self.frames
    }
}

/// Held-out frames and fixed reparameterisation noise: every candidate is judged on the
/// same frames with the same noise (common random numbers), so differences in validation
/// loss are differences between models, not between draws.
#[derive(Debug, Clone)]
pub struct Validation {
    y: Tensor<2>,
    eps: Tensor<2>,
}

/// A training run in progress: model, optimiser state, schedule and history. Runs can be
/// advanced a few epochs at a time, compared, re-seeded and finished ([`crate::consensus`]).
#[derive(Clone)]
pub struct Run {
    model: PdgmmVae,
    optim: ModuleOptimizer,
    rng: StdRng,
    epochs: Vec<EpochRecord>,
    learning_rate: f64,
    decays_left: usize,
    window_start: usize,
    steps: usize,
    stop: Option<StopReason>,
    remaining: f64,
    wall_s: f64,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("epochs", &self.epochs.len())
            .field("learning_rate", &self.learning_rate)
            .field("steps", &self.steps)
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}

impl Run {
    /// Epoch records so far.
    pub fn epochs(&self) -> &[EpochRecord] {
        &self.epochs
    }

    /// Whether the stopping rule has ended this run.
    pub fn stopped(&self) -> bool {
        self.stop.is_some()
    }

    /// Why the run ended, if it has.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.stop
    }

    /// The current parameters as plain arrays.
    pub fn export(&self) -> ModelWeights {
        self.model.export()
    }
}

/// Fits a PDGMM-VAE.
#[derive(Debug, Clone)]
pub struct Trainer {
    config: TrainingConfig,
    backend: Backend,
    cancel: Option<CancelToken>,
}

impl Trainer {
    /// Checks the configuration once; only a valid trainer can fit.
    pub fn new(config: TrainingConfig, backend: Backend) -> Result<Self> {
        config.check()?;
        backend.device()?;
        Ok(Self { config, backend, cancel: None })
    }

    /// Makes training stop with [`Error::Cancelled`] at the next epoch once `cancel` is
    /// cancelled (Ctrl-C, a live session shutting down while a fit runs in the background).
    pub fn with_cancel(mut self, cancel: CancelToken) -> Self {
        self.cancel = Some(cancel);
        self
    }

    fn check_cancelled(&self) -> Result<()> {
        match &self.cancel {
            Some(cancel) if cancel.is_cancelled() => Err(Error::Cancelled),
            _ => Ok(()),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TrainingConfig {
        &self.config
    }

    /// The plain device models are returned on.
    pub fn device(&self) -> Result<Device> {
        self.backend.device()
    }

    /// Checks `data` (interleaved `frames × inputs` normalised frames) and moves it to the
    /// training device.
    pub fn data(&self, data: &[f32]) -> Result<TrainingData> {
        let inputs = self.config.model.inputs;
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
        let device = self.backend.device()?.autodiff();
        Ok(TrainingData {
            all: Tensor::from_data(TensorData::new(data.to_vec(), [frames, inputs]), &device),
            frames,
            inputs,
        })
    }

    /// Held-out frames for [`Trainer::validation_loss`], with noise drawn from `seed`.
    pub fn validation(&self, data: &[f32], seed: u64) -> Result<Validation> {
        let checked = self.data(data)?;
        let device = self.backend.device()?;
        let n = self.config.model.sources;
        let mut rng = StdRng::seed_from_u64(seed);
        let eps: Vec<f32> = (0..checked.frames * n).map(|_| rng.sample::<f32, _>(StandardNormal)).collect();
        Ok(Validation {
            y: Tensor::from_data(TensorData::new(data.to_vec(), [checked.frames, checked.inputs]), &device),
            eps: Tensor::from_data(TensorData::new(eps, [checked.frames, n]), &device),
        })
    }

    /// A new run from `start`, its shuffling and noise drawn from `stream`.
    pub fn start(&self, start: &Start, stream: u64) -> Result<Run> {
        let device = self.backend.device()?.autodiff();
        let model = match start {
            Start::Seed(seed) => self.config.model.init(*seed, &device)?,
            Start::Weights(w) => {
                if w.inputs() != self.config.model.inputs || w.sources() != self.config.model.sources {
                    return Err(Error::Weights(format!(
                        "start weights are {} → {}, the configuration is {} → {}",
                        w.inputs(),
                        w.sources(),
                        self.config.model.inputs,
                        self.config.model.sources
                    )));
                }
                PdgmmVae::from_weights(w, &device)?
            }
        };
        Ok(Run {
            model,
            optim: AdamConfig::new().init(),
            // One stream for shuffling and noise, separate from the initialisation stream.
            rng: StdRng::seed_from_u64(stream ^ 0x9e37_79b9_7f4a_7c15),
            epochs: Vec::new(),
            learning_rate: self.config.recipe.learning_rate,
            decays_left: self.config.recipe.lr_decays,
            window_start: 0,
            steps: 0,
            stop: None,
            remaining: f64::NAN,
            wall_s: 0.0,
        })
    }

    /// Replaces a run's parameters (re-seeding a candidate near a survivor) and its
    /// shuffling/noise stream, keeping its schedule and history; the optimiser starts
    /// afresh, since its moments belong to the old parameters.
    pub fn reset(&self, run: &mut Run, weights: &ModelWeights, stream: u64) -> Result<()> {
        let device = self.backend.device()?.autodiff();
        run.model = PdgmmVae::from_weights(weights, &device)?;
        run.optim = AdamConfig::new().init();
        run.rng = StdRng::seed_from_u64(stream ^ 0x9e37_79b9_7f4a_7c15);
        Ok(())
    }

    /// Advances `run` by up to `epochs` epochs (fewer if the stopping rule ends it).
    ///
    /// `on_epoch` sees every epoch's record as it ends (for progress display).
    pub fn train(
        &self,
        run: &mut Run,
        data: &TrainingData,
        plan: &mut dyn BatchPlan,
        epochs: usize,
        on_epoch: &mut dyn FnMut(&EpochRecord),
    ) -> Result<()> {
        let c = &self.config.recipe;
        let sources = self.config.model.sources;
        let device = data.all.device();
        let started = Instant::now();
        for _ in 0..epochs {
            self.check_cancelled()?;
            if run.stop.is_some() {
                break;
            }
            let epoch = run.epochs.len() + 1;
            if epoch > c.max_epochs {
                run.stop = Some(StopReason::EpochCap);
                break;
            }
            let batches = plan.epoch(data.frames, &mut run.rng);
            // The epoch's frame order and sampling noise go to the device in one upload
            // each (drawn in the order batch by batch would draw them, so the numbers are
            // the same); every batch is a slice of them there, and nothing is read back
            // before the epoch ends.
            let drawn: usize = batches.iter().map(Vec::len).sum();
            let ids: Vec<i64> = batches.iter().flatten().map(|&i| i as i64).collect();
            let all_ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [drawn]), &device);
            let eps: Vec<f32> = (0..drawn * sources).map(|_| run.rng.sample::<f32, _>(StandardNormal)).collect();
            let all_eps = Tensor::<2>::from_data(TensorData::new(eps, [drawn, sources]), &device);
            let zero = || Tensor::<1>::zeros([1], &device);
            let (mut sum_total, mut sum_rec, mut sum_kl, mut sum_aux) = (zero(), zero(), zero(), zero());
            let mut weight_sum = 0.0f64;
            let mut start = 0;
            for batch in &batches {
                let b = batch.len();
                let y = data.all.clone().select(0, all_ids.clone().slice(start..start + b));
                let eps = all_eps.clone().slice(start..start + b);
                start += b;
                let parts = loss(&run.model, y, eps, c.beta, c.lambda);
                // Epoch means weight each batch by its size, so a short last batch counts less.
                let w = b as f64;
                sum_total = sum_total + parts.total.clone().detach() * w;
                sum_rec = sum_rec + parts.reconstruction.detach() * w;
                sum_kl = sum_kl + parts.kl.detach() * w;
                sum_aux = sum_aux + parts.auxiliary.detach() * w;
                weight_sum += w;
                let grads = GradientsParams::from_grads(parts.total.backward(), &run.model);
                run.model = run.optim.step(run.learning_rate, run.model.clone(), grads);
                run.steps += 1;
            }
            let scalar = |t: Tensor<1>| f64::from(t.into_scalar::<f32>()) / weight_sum;
            let record = EpochRecord {
                epoch,
                loss: scalar(sum_total),
                reconstruction: scalar(sum_rec),
                kl: scalar(sum_kl),
                auxiliary: scalar(sum_aux),
                learning_rate: run.learning_rate,
                elapsed_s: run.wall_s + started.elapsed().as_secs_f64(),
                ..snapshot(&run.model)
            };
            if !record.loss.is_finite() {
                return Err(Error::Diverged { epoch });
            }
            on_epoch(&record);
            run.epochs.push(record);
            self.judge(run);
        }
        run.wall_s += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// The plateau test over the window `[len − patience, len)` against everything before
    /// it since the current learning rate took effect.
    fn judge(&self, run: &mut Run) {
        let c = &self.config.recipe;
        let len = run.epochs.len();
        if len >= c.min_epochs && len >= run.window_start + 2 * c.patience {
            let split = len - c.patience;
            let before = best(&run.epochs[run.window_start..split]);
            let recent = best(&run.epochs[split..]);
            run.remaining = (before - recent) / before.abs().max(f64::MIN_POSITIVE);
            if run.remaining < c.plateau_tolerance {
                if run.decays_left == 0 {
                    run.stop = Some(StopReason::Plateau);
                    return;
                }
                run.decays_left -= 1;
                run.learning_rate /= c.lr_decay_factor;
                run.window_start = len;
            }
        }
        if len >= c.max_epochs {
            run.stop = Some(StopReason::EpochCap);
        }
    }

    /// The loss of `run`'s current model on held-out frames (mean per frame and input,
    /// as the training loss).
    pub fn validation_loss(&self, run: &Run, held: &Validation) -> f64 {
        let model = run.model.clone().valid();
        let parts = loss(&model, held.y.clone(), held.eps.clone(), self.config.recipe.beta, self.config.recipe.lambda);
        f64::from(parts.total.into_scalar::<f32>())
    }

    /// Fits the encoder to `targets` (interleaved `frames × sources`) and the decoder to
    /// map them back to the data, by least squares for `epochs` epochs: a warm start that
    /// puts the network on a known solution (e.g. linear ICA) before the VAE objective
    /// takes over. Returns the final relative mismatch of encoder and decoder
    /// (`‖f(y) − s‖² / ‖s‖²`, `‖g(s) − y‖² / ‖y‖²`).
    pub fn distil(
        &self,
        run: &mut Run,
        data: &TrainingData,
        targets: &[f32],
        epochs: usize,
        on_epoch: &mut dyn FnMut(usize, f64),
    ) -> Result<(f64, f64)> {
        let n = self.config.model.sources;
        if targets.len() != data.frames * n {
            return Err(Error::Data(format!(
                "{} target values for {} frames of {n} sources",
                targets.len(),
                data.frames
            )));
        }
        let device = data.all.device();
        let s_all = Tensor::<2>::from_data(TensorData::new(targets.to_vec(), [data.frames, n]), &device);
        let mut optim = AdamConfig::new().init();
        let mut plan = ShuffledRows { batch_size: self.config.recipe.batch_size };
        let mut mismatch = (f64::NAN, f64::NAN);
        for epoch in 1..=epochs {
            self.check_cancelled()?;
            let zero = || Tensor::<1>::zeros([1], &device);
            let (mut enc_sum, mut dec_sum) = (zero(), zero());
            for batch in plan.epoch(data.frames, &mut run.rng) {
                let b = batch.len();
                let ids: Vec<i64> = batch.iter().map(|&i| i as i64).collect();
                let ids = Tensor::<1, Int>::from_data(TensorData::new(ids, [b]), &device);
                let y = data.all.clone().select(0, ids.clone());
                let s = s_all.clone().select(0, ids);
                let enc = (run.model.encode(y.clone()) - s.clone()).square().sum();
                let dec = (run.model.decode(s) - y).square().sum();
                enc_sum = enc_sum + enc.clone().detach();
                dec_sum = dec_sum + dec.clone().detach();
                let total = (enc + dec) / (b as f64);
                let grads = GradientsParams::from_grads(total.backward(), &run.model);
                run.model = optim.step(self.config.recipe.learning_rate, run.model.clone(), grads);
            }
            // Targets and data are standardised, so their total energy is frames × width.
            let enc = f64::from(enc_sum.into_scalar::<f32>()) / (data.frames * n) as f64;
            let dec = f64::from(dec_sum.into_scalar::<f32>()) / (data.frames * data.inputs) as f64;
            mismatch = (enc, dec);
            on_epoch(epoch, enc);
        }
        Ok(mismatch)
    }

    /// Ends a run: the model on the plain device and its history.
    pub fn finish(&self, run: Run, frames: usize) -> (PdgmmVae, TrainingHistory) {
        let stop = run.stop.unwrap_or(StopReason::EpochCap);
        let mut remaining = run.remaining;
        if stop == StopReason::EpochCap && remaining.is_nan() {
            // Too few epochs for even one judging window: report the improvement over the run.
            let first = run.epochs.first().map_or(f64::NAN, |e| e.loss);
            let last = run.epochs.last().map_or(f64::NAN, |e| e.loss);
            remaining = (first - last) / first.abs().max(f64::MIN_POSITIVE);
        }
        let summary = TrainingSummary {
            epochs: run.epochs.len(),
            steps: run.steps,
            frames,
            stop_reason: stop,
            converged: stop == StopReason::Plateau,
            remaining_relative_improvement: remaining,
            plateau_tolerance: self.config.recipe.plateau_tolerance,
            final_loss: run.epochs.last().map_or(f64::NAN, |e| e.loss),
            best_loss: best(&run.epochs),
            wall_s: run.wall_s,
            backend: self.backend,
        };
        (run.model.valid(), TrainingHistory { epochs: run.epochs, summary })
    }

    /// Trains on `data`, interleaved `frames × inputs` normalised frames, from the
    /// configured seed until the stopping rule ends it: one plain run.
    ///
    /// `on_epoch` sees every epoch's record as it ends (for progress display). Returns the
    /// trained model (on the plain, non-autodiff device) and the history.
    pub fn fit(
        &self,
        data: &[f32],
        plan: &mut dyn BatchPlan,
        on_epoch: &mut dyn FnMut(&EpochRecord),
    ) -> Result<(PdgmmVae, TrainingHistory)> {
        let data = self.data(data)?;
        let seed = self.config.recipe.seed;
        let mut run = self.start(&Start::Seed(seed), seed)?;
        self.train(&mut run, &data, plan, self.config.recipe.max_epochs, on_epoch)?;
        Ok(self.finish(run, data.frames))
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
