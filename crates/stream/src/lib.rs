//! The streaming pipeline of unmix.
//!
//! A [`Source`] → [`Processor`] → [`Sink`] chain, each stage on its own named thread,
//! joined by lock-free single-producer single-consumer rings of interleaved `f32` samples
//! ([`FrameRing`], sized in frames). Moving samples is always a slice push or pop.
//!
//! Two policies decide what happens when a ring is full, chosen by whoever builds the
//! pipeline, never by a stage:
//! - [`Policy::Backpressure`] (files): the producer waits — parked, not spinning — until
//!   the consumer has made room; nothing is lost.
//! - [`Policy::DropAndCount`] (live input): the producer never waits; what does not fit is
//!   dropped and counted.
//!
//! Control ([`Control`]: swap the processor between two blocks, stop) reaches the
//! processing thread over a `crossbeam` channel polled with `try_recv` between blocks.
//! End of stream travels in order with the samples (a ring is closed after its last
//! push); an error in any stage aborts the others, and the sink is then dropped without
//! being finished, so a file sink leaves no half-written output.
//!
//! Every stage counts frames in and out, ring high-water marks, drops, underruns and
//! processing time in atomics ([`StageStats`]), readable at any time and reported at the end.

mod framing;
mod latency;
mod pipeline;
mod ring;
mod sources;
mod stats;
mod tee;

pub use framing::Framer;
pub use latency::{SilenceAfter, SkipFirst};
pub use pipeline::{
    BoxError, Control, Error, Pipeline, PipelineConfig, PipelineReport, Processor, Result, Sink, Source,
};
pub use ring::{FrameRing, Policy, RingCloser, RingReader, RingWriter};
pub use sources::{EndAtError, EndingError, Prepended};
pub use stats::{RingStats, StageStats, StatsSnapshot};
pub use tee::TeeSink;
