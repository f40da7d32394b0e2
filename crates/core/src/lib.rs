//! Shared types of unmix, free of any model, audio-device or file-format dependency.
//!
//! A [`Recording`] is `T` frames of `m` channels, stored interleaved (row-major `T × m`):
//! one frame is the value of every channel at one time instant, which is exactly one
//! observation `y_t` of the PDGMM-VAE model. Every crate speaks in these terms, and keeps
//! *frames* (one instant of all channels) apart from *samples* (one value of one channel).

mod error;
mod recording;
mod stage;

pub use error::{Error, Result};
pub use recording::Recording;
pub use stage::{BoxError, Processor, SCORE_CHANNELS, Sink, Source};
