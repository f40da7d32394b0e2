//! Errors of model construction and training.

/// What went wrong building or training a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The training data do not fit the model.
    #[error("training data: {0}")]
    Data(String),
    /// The loss became NaN or infinite.
    #[error("training diverged at epoch {epoch} (loss is not finite); try a lower learning rate")]
    Diverged {
        /// Epoch (1-based) at which it happened.
        epoch: usize,
    },
    /// The weights became NaN or infinite (the loss may not have shown it yet).
    #[error("training diverged (the weights are no longer finite numbers); try a lower learning rate")]
    DivergedWeights,
    /// Weights could not be moved in or out of burn.
    #[error("weights: {0}")]
    Weights(String),
    /// Training was cancelled (its cancel flag was set).
    #[error("training was cancelled")]
    Cancelled,
    /// The requested backend is not compiled in.
    #[error("backend '{0}' is not compiled into this build (enable its cargo feature)")]
    Backend(String),
    /// No GPU to train on: none found, or none compiled in.
    #[error("no GPU: {0}")]
    Gpu(String),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
