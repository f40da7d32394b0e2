//! Counters shared between a stage's thread and whoever watches it: plain atomics, so
//! updating them never blocks.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Per-stage counters.
#[derive(Debug, Default)]
pub struct StageStats {
    /// Frames taken in.
    pub frames_in: AtomicU64,
    /// Frames given out.
    pub frames_out: AtomicU64,
    /// Blocks processed.
    pub blocks: AtomicU64,
    /// Nanoseconds spent working (not waiting).
    pub busy_ns: AtomicU64,
}

impl StageStats {
    pub(crate) fn add(&self, frames_in: usize, frames_out: usize, busy_ns: u64) {
        self.frames_in.fetch_add(frames_in as u64, Ordering::Relaxed);
        self.frames_out.fetch_add(frames_out as u64, Ordering::Relaxed);
        self.blocks.fetch_add(1, Ordering::Relaxed);
        self.busy_ns.fetch_add(busy_ns, Ordering::Relaxed);
    }

    /// A copy of the counters.
    pub fn snapshot(&self, name: &str) -> StatsSnapshot {
        let frames_in = self.frames_in.load(Ordering::Relaxed);
        let busy_ns = self.busy_ns.load(Ordering::Relaxed);
        StatsSnapshot {
            stage: name.to_string(),
            frames_in,
            frames_out: self.frames_out.load(Ordering::Relaxed),
            blocks: self.blocks.load(Ordering::Relaxed),
            busy_s: busy_ns as f64 * 1e-9,
            ns_per_frame: if frames_in == 0 { 0.0 } else { busy_ns as f64 / frames_in as f64 },
        }
    }
}

/// Per-ring counters.
#[derive(Debug, Default)]
pub struct RingStats {
    /// Most frames ever queued at once.
    pub high_water_frames: AtomicU64,
    /// Frames dropped because the ring was full (drop-and-count policy).
    pub dropped_frames: AtomicU64,
    /// Times the consumer found the ring empty and had to wait or fill with silence.
    pub underruns: AtomicU64,
    /// Times the producer found the ring full and had to wait (backpressure policy).
    pub full_waits: AtomicU64,
}

/// A stage's or ring's counters at one moment, for reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsSnapshot {
    /// Stage name.
    pub stage: String,
    /// Frames taken in.
    pub frames_in: u64,
    /// Frames given out.
    pub frames_out: u64,
    /// Blocks processed.
    pub blocks: u64,
    /// Seconds spent working.
    pub busy_s: f64,
    /// Working time per input frame, in nanoseconds.
    pub ns_per_frame: f64,
}
