//! How a live session gets its models without linking a trainer: the session asks a
//! [`ModelFitter`] on its trainer thread, and the caller decides what fits. The command
//! line implements it with `unmix-separate` (PDGMM-VAE, the saturating chain); this crate,
//! the audio path, links neither burn nor any training code.

use unmix_core::{BoxError, CancelToken, Recording};
use unmix_format::ModelFile;

/// Fits the models a live session runs: the first one on the warm-up, then each refit.
///
/// Called on the session's trainer thread, one fit at a time, never on the audio path.
pub trait ModelFitter: Send {
    /// A model of `segment` (the session's input channels, at its rate). With `previous`,
    /// one that continues it: the same kind of model, its sources in `previous`'s order
    /// and sign, so that a swapped-in refit changes no output channel. Returns
    /// [`FitError::Cancelled`] soon after `cancel` is cancelled (the session is ending).
    fn fit(
        &mut self,
        segment: &Recording,
        previous: Option<&ModelFile>,
        cancel: &CancelToken,
    ) -> Result<FittedModel, FitError>;
}

/// What a [`ModelFitter`] fitted.
#[derive(Debug, Clone)]
pub struct FittedModel {
    /// The model.
    pub model: ModelFile,
    /// With a predecessor, each source's |corr| with the predecessor's same source on the
    /// segment (reported as [`crate::LiveReport::last_alignment`]); empty without one.
    pub alignment: Vec<f64>,
}

/// Why a [`ModelFitter`] gave no model.
#[derive(Debug, thiserror::Error)]
pub enum FitError {
    /// The session is ending: not a failure.
    #[error("the fit was cancelled")]
    Cancelled,
    /// The fit failed (the last model, if any, keeps running).
    #[error(transparent)]
    Failed(BoxError),
}
