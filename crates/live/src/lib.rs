//! Live demixing: a multichannel audio input (cpal) is separated as it arrives.
//!
//! - `devices` (feature `cpal`): hosts, devices, configurations, defaults (`unmix devices`).
//! - [`input`]: negotiation (rate, format, buffer, with fallbacks) and the audio callback,
//!   which only converts and pushes into a lock-free ring.
//! - [`output`]: an output device fed from a ring (silence on underrun), and the sinks.
//! - [`session`]: the whole session — pipeline threads, warm-up trainer, hot swap of
//!   encoders, refits continuing their predecessor, status, clean shutdown.
//! - [`ModelFitter`]: how a session gets its models. The caller supplies it (the command
//!   line fits with `unmix-separate`), so this crate — the audio path — links no trainer
//!   and no burn.
//!
//! Nothing that runs in an audio callback or in the inference stage allocates, locks or
//! waits; see each module's `# Real-time safety`.

#[cfg(feature = "cpal")]
pub mod devices;
mod error;
mod fitter;
pub mod input;
pub mod output;
pub mod session;

pub use error::{Error, Result};
pub use fitter::{FitError, FittedModel, ModelFitter};
pub use input::{InputSpec, Negotiated};
pub use session::{
    EndReason, LiveConfig, LiveDomain, LiveParams, LiveReport, LiveScores, LiveSession, ModelState, RoomStart,
    SeparatorKind, Status,
};

// The allocation-free tests of the callback and the processor count this thread's
// allocations.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: unmix_test_support::CountingAllocator = unmix_test_support::CountingAllocator;
