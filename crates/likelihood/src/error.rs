//! Errors of the likelihood fits.

/// What can go wrong in a fit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Settings that cannot fit anything.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Data the model cannot take (too short, non-finite, beyond full scale), or a fit
    /// whose every start diverged.
    #[error("training data: {0}")]
    Data(String),
    /// The fit was cancelled (its cancel flag was set).
    #[error("training was cancelled")]
    Cancelled,
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
