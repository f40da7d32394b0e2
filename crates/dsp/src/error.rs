//! Errors of the signal-processing crate.

/// What went wrong in a signal-processing step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A channel has (numerically) zero variance over the segment it was fitted on.
    #[error("channel {} (counted from 1) is constant (silent) over the training segment; remove it or pick another segment", channel + 1)]
    ConstantChannel {
        /// Zero-based channel index.
        channel: usize,
    },
    /// A value is NaN or infinite.
    #[error("frame {frame} (counted from 0), channel {} (counted from 1) is not a finite number", channel + 1)]
    NonFinite {
        /// Zero-based frame index.
        frame: usize,
        /// Zero-based channel index.
        channel: usize,
    },
    /// Two signals that must line up do not.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// Too little data for the requested operation.
    #[error("need at least {needed} frames, got {got}")]
    TooShort {
        /// Minimum number of frames.
        needed: usize,
        /// Frames available.
        got: usize,
    },
    /// The reduced dimension must not exceed the input dimension.
    #[error("cannot reduce {channels} channels to {dims} dimensions")]
    BadReduction {
        /// Input channels.
        channels: usize,
        /// Requested output dimensions.
        dims: usize,
    },
    /// Fitted statistics that do not describe one normalisation (a damaged model file).
    #[error("normaliser: {0}")]
    Invalid(String),
    /// The whitened subspace is rank-deficient.
    #[error("the channels span only {rank} independent directions, fewer than the {dims} requested")]
    RankDeficient {
        /// Numerical rank found.
        rank: usize,
        /// Dimensions requested.
        dims: usize,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
