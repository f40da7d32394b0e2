//! Model and training configurations (burn `Config`s, saved in the model file).

use burn::config::Config;

use crate::Activation;
use crate::error::Error as ConfigError;

/// Architecture of a PDGMM-VAE.
#[derive(Config, Debug, PartialEq)]
pub struct PdgmmVaeConfig {
    /// Input width `m` (after normalisation).
    pub inputs: usize,
    /// Number of sources `n` (latent dimensions).
    pub sources: usize,
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

impl PdgmmVaeConfig {
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
        if self.components == 0 {
            return Err(ConfigError::Config("the prior needs at least one component".into()));
        }
        if self.encoder_hidden.iter().chain(&self.decoder_hidden).any(|&h| h == 0) {
            return Err(ConfigError::Config("hidden layers must have at least one unit".into()));
        }
        Ok(())
    }
}

/// Everything that defines a training run.
#[derive(Config, Debug, PartialEq)]
pub struct TrainingConfig {
    /// Architecture.
    pub model: PdgmmVaeConfig,
    /// Weight `β` of the KL term. With `λ = 1` separation is flat for β from 0.001 to 1;
    /// 0.1 measured best on the linear and noisy problems (README). Without λ, β ≥ 1
    /// treats part of the signal as noise.
    #[config(default = 0.1)]
    pub beta: f64,
    /// Weight `λ` of the auxiliary reconstruction of the noiseless mean (0 = off). λ = 1
    /// keeps separation good for β up to 1 (without it, only up to 0.1; README).
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

impl TrainingConfig {
    /// Checks every value once.
    pub fn check(&self) -> crate::Result<()> {
        self.model.check()?;
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
        if self.batch_size == 0 || self.max_epochs == 0 || self.patience == 0 {
            return Err(ConfigError::Config("batch size, max epochs and patience must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> TrainingConfig {
        TrainingConfig::new(PdgmmVaeConfig::new(3, 3))
    }

    #[test]
    fn defaults_are_valid() {
        valid().check().unwrap();
    }

    #[test]
    fn each_rule_is_enforced() {
        assert!(TrainingConfig::new(PdgmmVaeConfig::new(2, 3)).check().is_err());
        assert!(TrainingConfig::new(PdgmmVaeConfig::new(3, 3).with_components(0)).check().is_err());
        assert!(TrainingConfig::new(PdgmmVaeConfig::new(3, 3).with_encoder_hidden(vec![0])).check().is_err());
        assert!(valid().with_beta(-1.0).check().is_err());
        assert!(valid().with_lambda(f64::NAN).check().is_err());
        assert!(valid().with_learning_rate(0.0).check().is_err());
        assert!(valid().with_batch_size(0).check().is_err());
        assert!(valid().with_lr_decay_factor(1.0).check().is_err());
    }

    #[test]
    fn config_round_trips_through_json() {
        let c = valid().with_beta(0.05).with_seed(9);
        let json = serde_json::to_string(&c).unwrap();
        let back: TrainingConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
