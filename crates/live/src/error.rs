//! Errors of live audio.

/// What went wrong opening or running a live session.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No device matches the name.
    #[error("no {direction} device '{name}' (see `unmix devices`; available: {available})")]
    NoDevice {
        /// "input" or "output".
        direction: &'static str,
        /// The name asked for.
        name: String,
        /// The devices there are.
        available: String,
    },
    /// The device cannot give the channel count asked for.
    #[error("{direction} device '{device}' does not support {channels} channels (it supports {supported})")]
    Channels {
        /// "input" or "output".
        direction: &'static str,
        /// Device name.
        device: String,
        /// Channels asked for.
        channels: usize,
        /// What it supports.
        supported: String,
    },
    /// The device cannot run at the sample rate needed.
    #[error("{direction} device '{device}' does not support {sample_rate_hz} Hz with {channels} channels")]
    SampleRate {
        /// "input" or "output".
        direction: &'static str,
        /// Device name.
        device: String,
        /// Rate needed.
        sample_rate_hz: u32,
        /// Channels.
        channels: usize,
    },
    /// The audio backend refused.
    #[error("{context}: {message}")]
    Backend {
        /// What was being done.
        context: String,
        /// The backend's words.
        message: String,
    },
    /// A device went away while in use (unplugged, its server shut down).
    #[error("{0} (the device went away)")]
    DeviceLost(String),
    /// Settings that do not go together.
    #[error("{0}")]
    Config(String),
    /// The model does not fit the input.
    #[error("the model expects {expected} channels, the input has {got}")]
    ModelChannels {
        /// Channels of the model.
        expected: usize,
        /// Channels of the input.
        got: usize,
    },
    /// The pipeline failed.
    #[error(transparent)]
    Stream(#[from] unmix_stream::Error),
    /// The recording could not be written.
    #[error(transparent)]
    Io(#[from] unmix_io::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Wraps a backend error with what was being done.
#[cfg(feature = "cpal")]
pub(crate) fn backend(context: impl Into<String>, e: impl std::fmt::Display) -> Error {
    Error::Backend { context: context.into(), message: e.to_string() }
}
