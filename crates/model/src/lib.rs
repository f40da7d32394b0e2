//! PDGMM-VAE (variational autoencoder with a per-dimension Gaussian-mixture prior) in burn.
//!
//! - [`PdgmmVaeConfig`] / [`PdgmmVae`]: MLP encoder to the posterior means, one shared
//!   posterior log-variance per source, MLP (or linear) decoder, and a learnable
//!   `K`-component 1-D GMM prior per source ([`GmmPrior`], behind [`LatentPrior`]).
//! - [`loss()`]: the paper's objective `L_rec + β (log q − log p)/(T m)` (Algorithm 1), plus
//!   the optional λ auxiliary reconstruction of the noiseless mean.
//! - [`Trainer`]: Adam on minibatches drawn by a [`BatchPlan`], with a plateau stopping
//!   rule and a full training history; [`consensus`]: restarts with selection on held-out
//!   frames and an optional warm start distilled from a linear solution.
//! - [`PdgmmVae::export`]: the weights as plain arrays for the model file and the
//!   burn-free inference engine.
//!
//! Burn stays inside this crate: nothing on the real-time path depends on it.

mod backend;
mod config;
pub mod consensus;
mod error;
mod gmm_density;
mod loss;
mod prior;
mod tanh;
mod trainer;
mod vae;

pub use backend::{Backend, gpu_available};
pub use config::{PdgmmVaeConfig, TrainingConfig, TrainingRecipe, VaeLayout};
pub use error::{Error, Result};
pub use loss::{LossParts, loss};
pub use prior::{GmmPrior, LatentPrior, initial_params};
pub use trainer::{
    BatchPlan, EpochRecord, Run, ShuffledRows, Start, StopReason, Trainer, TrainingData, TrainingHistory,
    TrainingSummary, Validation,
};
pub use unmix_format::Activation;
pub use vae::PdgmmVae;
