//! What can go wrong in a separation job.

use unmix_core::limits::{MAX_BUFFERED_SAMPLES, MAX_CHANNELS};
use unmix_core::plural;

use crate::config::MIN_TRAIN_FRAMES;

/// What can go wrong in a separation job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// More sources asked for than there are channels.
    #[error(
        "{} cannot be separated into {} (need at least as many channels as sources)",
        plural(*.channels, "channel"),
        plural(*.sources, "source")
    )]
    TooFewChannels {
        /// Channels in the input.
        channels: usize,
        /// Sources asked for.
        sources: usize,
    },
    /// More channels than a separation reads.
    #[error("{channels} channels: unmix separates at most {MAX_CHANNELS} at a time (pick some with --channels)")]
    TooManyChannels {
        /// Channels in the input.
        channels: usize,
    },
    /// The training segment would not fit the memory bound.
    #[error(
        "a training segment of {frames} frames of {channels} channels is more than the \
         {MAX_BUFFERED_SAMPLES} samples one is allowed; train on fewer frames"
    )]
    SegmentTooLarge {
        /// Frames asked for.
        frames: usize,
        /// Channels of the recording.
        channels: usize,
    },
    /// The training segment is too short.
    #[error("only {} to train on; at least {MIN_TRAIN_FRAMES} are needed", plural(*.frames, "frame"))]
    TooShort {
        /// Frames available.
        frames: usize,
    },
    /// The model expects another channel count.
    #[error("the model expects {expected} channels, the input has {got}")]
    ChannelMismatch {
        /// Channels the model was trained on.
        expected: usize,
        /// Channels in the input.
        got: usize,
    },
    /// Normalisation failed (silent channel, NaN, rank deficiency).
    #[error(transparent)]
    Dsp(#[from] unmix_dsp::Error),
    /// The fit was cancelled (its cancel token was cancelled).
    #[error("training was cancelled")]
    Cancelled,
    /// Training failed.
    #[error(transparent)]
    Model(unmix_model::Error),
    /// A likelihood fit failed.
    #[error(transparent)]
    Likelihood(unmix_likelihood::Error),
    /// The model could not be packaged.
    #[error(transparent)]
    Format(#[from] unmix_format::Error),
    /// The encoder refused a block, or the kernel asked for does not run here.
    #[error(transparent)]
    Infer(#[from] unmix_infer::Error),
    /// The sources do not form a recording.
    #[error(transparent)]
    Recording(#[from] unmix_core::Error),
    /// Settings that do not go together, or do not fit the recording.
    #[error("{0}")]
    Config(String),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A cancelled training is [`Error::Cancelled`], whichever model was training.
impl From<unmix_model::Error> for Error {
    fn from(e: unmix_model::Error) -> Self {
        match e {
            unmix_model::Error::Cancelled => Error::Cancelled,
            e => Error::Model(e),
        }
    }
}

/// A cancelled fit is [`Error::Cancelled`], whichever model was fitting.
impl From<unmix_likelihood::Error> for Error {
    fn from(e: unmix_likelihood::Error) -> Self {
        match e {
            unmix_likelihood::Error::Cancelled => Error::Cancelled,
            e => Error::Likelihood(e),
        }
    }
}
