//! Model and training configurations, saved in the model file.
//!
//! What a user chooses before seeing the data — the architecture's [`VaeLayout`] and the
//! [`TrainingRecipe`] — is kept apart from the two sizes the data fix (channels after
//! normalisation, sources): [`VaeLayout::with_sizes`] completes a layout into the
//! [`PdgmmVaeConfig`] of one recording, and [`TrainingConfig`] is that plus the recipe.

use burn::config::Config;
use serde::{Deserialize, Serialize};

use unmix_core::limits::{MAX_HIDDEN_LAYERS, MAX_HIDDEN_UNITS, MAX_PRIOR_COMPONENTS};

use crate::Activation;
use crate::error::Error as ConfigError;

/// A PDGMM-VAE's architecture but for its two sizes.
#[derive(Config, Debug, PartialEq)]
pub struct VaeLayout {
    /// Gaussian components per source prior `K`.
    #[config(default = 4)]
    pub components: usize,
    /// Hidden layer widths of the encoder; empty makes it a linear demixing matrix.
    #[config(default = "vec![32]")]
    pub encoder_hidden: Vec<usize>,
    /// Hidden layer widths of the decoder; empty makes it a linear mixing matrix.
    #[config(default = "vec![32]")]
    pub decoder_hidden: Vec<usize>,
    /// Activation between hidden layers.
    #[config(default = "Activation::Tanh")]
    pub activation: Activation,
    /// Initial posterior log-variance `ω_j` of every source.
    #[config(default = -4.0)]
    pub initial_posterior_log_var: f64,
}

impl VaeLayout {
    /// Checks every value once, so that only valid architectures are built.
    pub fn check(&self) -> crate::Result<()> {
        if !(1..=MAX_PRIOR_COMPONENTS).contains(&self.components) {
            return Err(ConfigError::Config(format!(
                "a prior has 1 to {MAX_PRIOR_COMPONENTS} components, not {}",
                self.components
            )));
        }
        for (what, hidden) in [("encoder", &self.encoder_hidden), ("decoder", &self.decoder_hidden)] {
            if hidden.len() > MAX_HIDDEN_LAYERS {
                return Err(ConfigError::Config(format!(
                    "the {what} has {} hidden layers; at most {MAX_HIDDEN_LAYERS}",
                    hidden.len()
                )));
            }
            if let Some(&units) = hidden.iter().find(|&&h| !(1..=MAX_HIDDEN_UNITS).contains(&h)) {
                return Err(ConfigError::Config(format!(
                    "a hidden layer has 1 to {MAX_HIDDEN_UNITS} units, not {units}"
                )));
            }
        }
        Ok(())
    }

    /// The architecture for `inputs` normalised channels and `sources` sources.
    pub fn with_sizes(self, inputs: usize, sources: usize) -> PdgmmVaeConfig {
        PdgmmVaeConfig { inputs, sources, layout: self }
    }
}

/// Architecture of a PDGMM-VAE: its [`VaeLayout`] for `inputs` and `sources`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PdgmmVaeConfig {
    /// Input width `m` (after normalisation).
    pub inputs: usize,
    /// Number of sources `n` (latent dimensions).
    pub sources: usize,
    /// Everything else.
    #[serde(flatten)]
    pub layout: VaeLayout,
}

impl PdgmmVaeConfig {
    /// The default layout for `inputs` and `sources`.
    pub fn new(inputs: usize, sources: usize) -> Self {
        VaeLayout::new().with_sizes(inputs, sources)
    }

    /// Checks every value once, so that only valid architectures are built.
    pub fn check(&self) -> crate::Result<()> {
        if self.inputs == 0 || self.sources == 0 {
            return Err(ConfigError::Config("inputs and sources must be at least 1".into()));
        }
        if self.sources > self.inputs {
            return Err(ConfigError::Config(format!(
                "{} sources cannot be recovered from {} inputs",
                self.sources, self.inputs
            )));
        }
        self.layout.check()
    }
}

/// How a PDGMM-VAE is trained: the loss weights, Adam, minibatches, the stopping rule and
/// the seed.
#[derive(Config, Debug, PartialEq)]
pub struct TrainingRecipe {
    /// Weight `β` of the KL term. With `λ = 1` separation is flat for β from 0.001 to 1;
    /// 0.1 measured best on the linear and noisy problems (`docs/results.md`). Without λ,
    /// β ≥ 1 treats part of the signal as noise.
    #[config(default = 0.1)]
    pub beta: f64,
    /// Weight `λ` of the auxiliary reconstruction of the noiseless mean (0 = off). λ = 1
    /// keeps separation good for β up to 1 (without it, only up to 0.1).
    #[config(default = 1.0)]
    pub lambda: f64,
    /// Adam learning rate.
    #[config(default = 3e-3)]
    pub learning_rate: f64,
    /// Frames per minibatch.
    #[config(default = 256)]
    pub batch_size: usize,
    /// Hard cap on epochs.
    #[config(default = 400)]
    pub max_epochs: usize,
    /// Epochs always run before the stopping rule may fire.
    #[config(default = 30)]
    pub min_epochs: usize,
    /// Window (epochs) over which the plateau is judged.
    #[config(default = 15)]
    pub patience: usize,
    /// Relative loss improvement over `patience` epochs below which the loss has plateaued.
    #[config(default = 2e-3)]
    pub plateau_tolerance: f64,
    /// How many times the learning rate is divided by `lr_decay_factor` at a plateau
    /// before training stops.
    #[config(default = 2)]
    pub lr_decays: usize,
    /// Factor of each learning-rate decay.
    #[config(default = 5.0)]
    pub lr_decay_factor: f64,
    /// Seed of every random draw (initialisation, shuffling, reparameterisation noise).
    #[config(default = 0)]
    pub seed: u64,
}

/// Minibatches per epoch the GPU rule keeps at the least ([`TrainingRecipe::for_gpu`]).
pub const GPU_MIN_BATCHES_PER_EPOCH: usize = 32;

/// The largest minibatch the GPU rule takes ([`TrainingRecipe::for_gpu`]).
pub const GPU_MAX_BATCH: usize = 4096;

impl TrainingRecipe {
    /// The recipe for a GPU on a segment of `frames` frames: the minibatch the largest
    /// power of two that leaves at least [`GPU_MIN_BATCHES_PER_EPOCH`] batches per epoch,
    /// between this recipe's batch and [`GPU_MAX_BATCH`], the learning rate scaled by the
    /// square root of the batch's growth (Adam's steps average over more frames).
    ///
    /// A step of this model is a few hundred small kernels: on a GPU their launches, not
    /// the arithmetic, take the time, so a batch of 256 leaves the device idle (burn-wgpu on
    /// Mesa's software adapter took half the time per epoch at 4096 as at 256,
    /// docs/performance.md). On the processor, batches of 2048 and 4096 with the scaled rate
    /// separated 65 536 frames (4 sources, 6 channels, 2 seeds) to the same mean |corr| as
    /// 256 at 3e-3 (0.9993–0.9995 against 0.9995–0.9997) in as many epochs.
    pub fn for_gpu(self, frames: usize) -> Self {
        let most = (frames / GPU_MIN_BATCHES_PER_EPOCH).clamp(1, GPU_MAX_BATCH);
        let batch = (1usize << most.ilog2()).max(self.batch_size);
        if batch <= self.batch_size {
            return self;
        }
        let learning_rate = self.learning_rate * (batch as f64 / self.batch_size as f64).sqrt();
        Self { batch_size: batch, learning_rate, ..self }
    }

    /// Checks every value once.
    pub fn check(&self) -> crate::Result<()> {
        let positive = |v: f64, name: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(ConfigError::Config(format!("{name} must be positive, got {v}")))
            }
        };
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(ConfigError::Config(format!("beta must be ≥ 0, got {}", self.beta)));
        }
        if !(self.lambda.is_finite() && self.lambda >= 0.0) {
            return Err(ConfigError::Config(format!("lambda must be ≥ 0, got {}", self.lambda)));
        }
        positive(self.learning_rate, "learning rate")?;
        positive(self.plateau_tolerance, "plateau tolerance")?;
        if self.lr_decay_factor <= 1.0 || !self.lr_decay_factor.is_finite() {
            return Err(ConfigError::Config("lr decay factor must be > 1".into()));
        }
        for (value, name) in [
            (self.batch_size, "the batch size"),
            (self.max_epochs, "the epoch cap"),
            (self.patience, "the plateau window"),
        ] {
            if value == 0 {
                return Err(ConfigError::Config(format!("{name} must be at least 1")));
            }
        }
        Ok(())
    }
}

/// Everything that defines a training run: the architecture and the recipe. Serialised
/// flat (`{"model": {…}, "beta": …, …}`), as the model file's header has always held it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingConfig {
    /// Architecture.
    pub model: PdgmmVaeConfig,
    /// How it is trained.
    #[serde(flatten)]
    pub recipe: TrainingRecipe,
}

impl TrainingConfig {
    /// `model` trained by `recipe`.
    pub fn new(model: PdgmmVaeConfig, recipe: TrainingRecipe) -> Self {
        Self { model, recipe }
    }

    /// Checks every value once.
    pub fn check(&self) -> crate::Result<()> {
        self.model.check()?;
        self.recipe.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_takes_larger_batches_only_where_an_epoch_keeps_enough_of_them() {
        let cpu = TrainingRecipe::new();
        assert_eq!(cpu.clone().for_gpu(10_000), cpu, "the paper's 10 000 frames: 256 already");
        let large = cpu.clone().for_gpu(131_072);
        assert_eq!((large.batch_size, large.learning_rate), (4096, 0.012));
        let mid = cpu.clone().for_gpu(65_536);
        assert_eq!(mid.batch_size, 2048);
        assert!((mid.learning_rate - 3e-3 * 8f64.sqrt()).abs() < 1e-12);
        assert_eq!(cpu.clone().for_gpu(10_000_000).batch_size, GPU_MAX_BATCH);
        assert_eq!(cpu.clone().for_gpu(0), cpu);
        let chosen = TrainingRecipe::new().with_batch_size(8192);
        assert_eq!(chosen.clone().for_gpu(1 << 20), chosen, "a batch above the rule's is kept");
    }

    fn valid() -> TrainingConfig {
        TrainingConfig::new(PdgmmVaeConfig::new(3, 3), TrainingRecipe::new())
    }

    fn with_recipe(recipe: TrainingRecipe) -> TrainingConfig {
        TrainingConfig { recipe, ..valid() }
    }

    fn with_layout(layout: VaeLayout) -> TrainingConfig {
        TrainingConfig::new(layout.with_sizes(3, 3), TrainingRecipe::new())
    }

    #[test]
    fn defaults_are_valid() {
        valid().check().unwrap();
    }

    #[test]
    fn more_sources_than_inputs_are_refused() {
        assert!(TrainingConfig::new(PdgmmVaeConfig::new(2, 3), TrainingRecipe::new()).check().is_err());
        assert!(TrainingConfig::new(PdgmmVaeConfig::new(0, 0), TrainingRecipe::new()).check().is_err());
    }

    #[test]
    fn a_prior_needs_a_component() {
        assert!(with_layout(VaeLayout::new().with_components(0)).check().is_err());
    }

    #[test]
    fn hidden_layers_need_a_unit() {
        assert!(with_layout(VaeLayout::new().with_encoder_hidden(vec![0])).check().is_err());
        assert!(with_layout(VaeLayout::new().with_decoder_hidden(vec![8, 0])).check().is_err());
    }

    /// A mistyped size is refused before anything is allocated for it.
    #[test]
    fn sizes_are_bounded() {
        let refused = |layout: VaeLayout| with_layout(layout).check().expect_err("refused").to_string();
        assert!(refused(VaeLayout::new().with_components(100_000)).contains("1 to 64 components, not 100000"));
        assert!(refused(VaeLayout::new().with_encoder_hidden(vec![100_000_000])).contains("not 100000000"));
        assert!(refused(VaeLayout::new().with_decoder_hidden(vec![8; 9])).contains("9 hidden layers"));
        with_layout(VaeLayout::new().with_components(64).with_encoder_hidden(vec![1024; 8])).check().unwrap();
    }

    #[test]
    fn beta_and_lambda_are_non_negative_and_finite() {
        assert!(with_recipe(TrainingRecipe::new().with_beta(-1.0)).check().is_err());
        assert!(with_recipe(TrainingRecipe::new().with_lambda(f64::NAN)).check().is_err());
        with_recipe(TrainingRecipe::new().with_beta(0.0).with_lambda(0.0)).check().unwrap();
    }

    #[test]
    fn the_learning_rate_and_tolerance_are_positive() {
        assert!(with_recipe(TrainingRecipe::new().with_learning_rate(0.0)).check().is_err());
        assert!(with_recipe(TrainingRecipe::new().with_plateau_tolerance(f64::INFINITY)).check().is_err());
    }

    #[test]
    fn a_decay_divides_the_learning_rate() {
        assert!(with_recipe(TrainingRecipe::new().with_lr_decay_factor(1.0)).check().is_err());
    }

    #[test]
    fn batches_epochs_and_patience_are_at_least_one() {
        assert!(with_recipe(TrainingRecipe::new().with_batch_size(0)).check().is_err());
        assert!(with_recipe(TrainingRecipe::new().with_max_epochs(0)).check().is_err());
        assert!(with_recipe(TrainingRecipe::new().with_patience(0)).check().is_err());
        // Each is named alone, not in a list with the others.
        let refused = with_recipe(TrainingRecipe::new().with_max_epochs(0)).check().unwrap_err().to_string();
        assert_eq!(refused, "invalid configuration: the epoch cap must be at least 1");
    }

    /// The serialised form is the flat one the model file's header has always held.
    #[test]
    fn config_round_trips_through_flat_json() {
        let c = with_recipe(TrainingRecipe::new().with_beta(0.05).with_seed(9));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["beta"], 0.05);
        assert_eq!(json["model"]["inputs"], 3);
        assert_eq!(json["model"]["components"], 4);
        let back: TrainingConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
    }
}
