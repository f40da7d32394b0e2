//! Integration tests of unmix: the real binary on real files written by hound.
//!
//! One harness (`cargo test --workspace` runs it), one module per area.

mod util;

mod bad_input;
mod cli;
mod gpu;
mod health;
#[cfg(feature = "live")]
mod live;
mod modes;
mod monitor;
mod outputs;
mod paper;
mod pipeline;
mod readme;
mod room;
mod training;
