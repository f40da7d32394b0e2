//! Errors raised when building the shared types.

/// What went wrong when building a shared type.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The sample buffer does not hold a whole number of frames.
    #[error("{samples} samples is not a whole number of {channels}-channel frames")]
    RaggedFrames {
        /// Number of samples given.
        samples: usize,
        /// Channels per frame.
        channels: usize,
    },
    /// A recording needs at least one channel.
    #[error("a recording needs at least one channel")]
    NoChannels,
    /// Sample rates are positive.
    #[error("sample rate must be positive")]
    ZeroSampleRate,
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
