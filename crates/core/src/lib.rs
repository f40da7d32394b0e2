//! Shared types of unmix, free of any model, audio-device or file-format dependency.
//!
//! A [`Recording`] is `T` frames of `m` channels, stored interleaved (row-major `T × m`):
//! one frame is the value of every channel at one time instant, which is exactly one
//! observation `y_t` of the PDGMM-VAE model. Every crate speaks in these terms, and keeps
//! *frames* (one instant of all channels) apart from *samples* (one value of one channel).
//!
//! Besides: the stage traits of the streaming pipeline ([`Source`], [`Processor`],
//! [`Sink`]); [`CancelToken`], how long work is asked to stop early; and [`parallel`],
//! independent jobs on a few threads with results that never depend on the scheduling
//! (restart candidates, per-source fits, the starts of a likelihood fit); and the
//! [`limits`] every size from input or options is checked against.

mod cancel;
mod error;
pub mod limits;
pub mod parallel;
mod plural;
mod recording;
mod stage;

pub use cancel::CancelToken;
pub use error::{Error, Result};
pub use plural::{Plural, plural};
pub use recording::Recording;
pub use stage::{BoxError, Processor, SCORE_CHANNELS, Sink, Source};
