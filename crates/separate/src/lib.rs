//! The offline separation job: fit the normalisation on a training segment, choose and
//! train the model on it, package everything as a [`ModelFile`](unmix_format::ModelFile),
//! and apply the encoder to whole recordings through the burn-free
//! [`Separator`](unmix_infer::Separator).
//!
//! - [`config`]: [`SeparateParams`] as a user gives them, checked once into the
//!   [`SeparateConfig`] that [`fit`] takes;
//! - [`fit`] (`fit.rs`): the training segment, the source count, PDGMM-VAE's warm start
//!   and restarts, and [`fit_for_stream`] for a running stream;
//! - [`choice`]: which model a recording gets ([`ModelChoice`]);
//! - [`finish`]: what every model gets before it is handed out (order, sign, gains,
//!   score baseline) and [`align_to`];
//! - [`apply`]: the encoder over a whole recording.
//!
//! Sources written at the end of training and sources from `unmix apply` come from the
//! same exported weights, the same code and the same kernel, so they are identical bit for
//! bit.

mod apply;
pub mod choice;
pub mod config;
pub mod denoise;
mod error;
pub mod finish;
mod fit;

pub use apply::{apply, encoder_outputs};
pub use choice::{
    CHAIN_MARGIN_NATS, CHAIN_MAX_FRAMES, ChainSummary, EncoderStart, EncoderSummary, LinearRefit, LinearSummary,
    ModelKind, ModelSelection, PostNonlinearSummary, TEMPORAL_MAX_BLOCKS, TemporalSummary, VaeScore,
};
pub use config::{
    DEFAULT_MAX_TRAIN_FRAMES, MIN_TRAIN_FRAMES, ModelChoice, PriorChoice, SeparateConfig, SeparateParams, SourceCount,
};
pub use error::{Error, Result};
pub use finish::{LatentEvidence, MIN_LATENT_INFORMATION_NATS, Ordering, align_to, score_baseline};
pub use fit::{Fitted, IcaSummary, StreamFit, VaeTraining, WARM_START_EPOCHS, fit, fit_for_stream};
pub use unmix_core::CancelToken;
pub use unmix_model::consensus::{ConsensusConfig, ConsensusReport};

use unmix_likelihood::chain::ChainShape;
use unmix_model::consensus::Progress as VaeProgress;

/// What a separation job is doing, for progress display.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A likelihood fit weighed in the model choice, every ~50 ms.
    Chain {
        /// Which model.
        shape: ChainShape,
        /// Adam steps done, over every start.
        done: usize,
        /// Steps of every start run to the end (a fit stopped at its screening ends
        /// below this).
        total: usize,
    },
    /// The post-nonlinear model's fit, every ~50 ms.
    PostNonlinear {
        /// L-BFGS iterations done, over every start.
        done: usize,
        /// Iterations of every start run to the end (starts that end early count their
        /// remaining iterations as done).
        total: usize,
    },
    /// PDGMM's encoder fitted on the post-nonlinear model's curves where they win, after
    /// every iteration.
    Encoder {
        /// L-BFGS iterations done.
        done: usize,
        /// The most it may take (it stops earlier once the held-out frames stop gaining,
        /// and then reports all done).
        total: usize,
    },
    /// The PDGMM-VAE's training: the warm start, the restarts' candidates, the final run.
    Vae(VaeProgress<'a>),
}

#[cfg(test)]
pub(crate) mod testing {
    use unmix_core::{CancelToken, Recording};
    use unmix_likelihood::chain::ChainConfig;
    use unmix_model::consensus::ConsensusConfig;
    use unmix_model::{TrainingRecipe, VaeLayout};

    use super::*;

    /// Quick fits for tests: a single PDGMM-VAE run of 3 epochs on at most 2000 frames,
    /// no warm start.
    pub(crate) fn quick_params(sources: usize, hidden: Vec<usize>) -> SeparateParams {
        SeparateParams {
            max_train_frames: 2000,
            warm_start: false,
            restarts: ConsensusConfig::single(),
            layout: VaeLayout::new().with_encoder_hidden(hidden.clone()).with_decoder_hidden(hidden),
            recipe: TrainingRecipe::new().with_max_epochs(3).with_min_epochs(3),
            model: ModelChoice::Vae,
            chain: ChainConfig::new(ChainShape::Saturating),
            ..SeparateParams::new(SourceCount::Fixed(sources))
        }
    }

    /// [`fit`] on checked `params`, never cancelled, no progress shown.
    pub(crate) fn fit_with(recording: &Recording, params: &SeparateParams) -> Result<Fitted> {
        fit(recording, &params.clone().check()?, &CancelToken::new(), &mut |_| {})
    }
}
