//! What a live session reports while it runs: where its model stands, why it ended, and
//! the figures of the status line, read from the atomics the threads update.

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;
use unmix_stream::PipelineReport;

use super::Shared;
use crate::input::{InputMeter, Negotiated};
use crate::output::OutputMeter;

/// Where the model stands. Kept in an atomic as its discriminant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub enum ModelState {
    /// Buffering the warm-up.
    WarmingUp = 0,
    /// Fitting the first model.
    Training = 1,
    /// Separating.
    Separating = 2,
    /// Separating while a refit runs.
    Refitting = 3,
    /// A fit failed (the last model, if any, keeps running).
    Failed = 4,
}

impl ModelState {
    const ALL: [ModelState; 5] = [Self::WarmingUp, Self::Training, Self::Separating, Self::Refitting, Self::Failed];

    /// The state whose discriminant is `v` (only ever stored from a `ModelState`).
    pub(super) fn from_u8(v: u8) -> Self {
        Self::ALL.into_iter().find(|s| *s as u8 == v).unwrap_or(Self::Failed)
    }
}

/// Why the session ended. Kept in an atomic as its discriminant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub enum EndReason {
    /// Still running.
    Running = 0,
    /// `stop()` (Ctrl-C).
    Stopped = 1,
    /// `--duration` of input was captured.
    Duration = 2,
    /// The device reported an error (unplugged).
    DeviceError = 3,
    /// The device stopped delivering frames.
    Stalled = 4,
}

impl EndReason {
    const ALL: [EndReason; 5] = [Self::Running, Self::Stopped, Self::Duration, Self::DeviceError, Self::Stalled];

    /// The reason whose discriminant is `v` (only ever stored from an `EndReason`).
    pub(super) fn from_u8(v: u8) -> Self {
        Self::ALL.into_iter().find(|r| *r as u8 == v).unwrap_or(Self::Stalled)
    }
}

/// One status reading (the CLI prints one a second).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Seconds since start.
    pub elapsed_s: f64,
    /// Frames captured from the device.
    pub frames_in: u64,
    /// Frames delivered to the sinks.
    pub frames_out: u64,
    /// Peak input level per channel since the last reading, dBFS.
    pub input_peak_dbfs: Vec<f64>,
    /// Device buffer + processing block (+ output buffer), ms.
    pub latency_ms: f64,
    /// Processing time per frame over the frame's duration.
    pub load: f64,
    /// Frames dropped at the input ring (overruns).
    pub dropped_frames: u64,
    /// Output frames played as silence (underruns).
    pub output_underrun_frames: u64,
    /// Over- and underruns the input device reported.
    pub device_xruns: u64,
    /// Model state.
    pub model: ModelState,
    /// Models swapped in so far.
    pub swaps: u64,
    /// Alerts not queued because [`LiveSession::alerts`](super::LiveSession::alerts) was
    /// not read fast enough (the score rows on disk still have them).
    pub alerts_dropped: u64,
    /// Input frames that did not reach the trainer because its tap was full (a fit's
    /// segment then has gaps, and a room's model is ordered on a replay of the online
    /// separator that is no longer the run the listener heard). The separation itself
    /// loses nothing: the processor runs on every frame.
    pub tap_dropped_frames: u64,
}

/// What the status needs of the session besides its counters.
pub(super) struct StatusView<'a> {
    pub(super) started: Instant,
    pub(super) frame_len: usize,
    pub(super) negotiated: &'a Negotiated,
}

pub(super) fn status_from(
    input: &InputMeter,
    output: Option<&OutputMeter>,
    pipeline: &PipelineReport,
    shared: &Shared,
    view: &StatusView<'_>,
) -> Status {
    let rate = f64::from(view.negotiated.sample_rate_hz.max(1));
    let in_buffer = view
        .negotiated
        .buffer_frames
        .map_or_else(|| input.max_callback_frames.load(Ordering::Relaxed) as f64, f64::from);
    let out_buffer = output.map_or(0.0, |o| o.max_callback_frames.load(Ordering::Relaxed) as f64);
    let ns_per_frame = pipeline.stages.get(1).map_or(0.0, |s| s.ns_per_frame);
    Status {
        elapsed_s: view.started.elapsed().as_secs_f64(),
        frames_in: input.frames_captured.load(Ordering::Relaxed),
        frames_out: pipeline.frames_out,
        input_peak_dbfs: input.take_peaks().iter().map(|&p| 20.0 * f64::from(p.max(1e-10)).log10()).collect(),
        latency_ms: 1000.0 * (in_buffer + view.frame_len as f64 + out_buffer) / rate,
        load: ns_per_frame * 1e-9 * rate,
        dropped_frames: pipeline.rings.iter().map(|r| r.dropped_frames).sum::<u64>(),
        output_underrun_frames: output.map_or(0, |o| o.underrun_frames.load(Ordering::Relaxed)),
        device_xruns: input.device_xruns.load(Ordering::Relaxed),
        model: shared.state(),
        swaps: shared.swaps.load(Ordering::Relaxed),
        alerts_dropped: shared.alerts_dropped.load(Ordering::Relaxed),
        tap_dropped_frames: shared.tap_dropped.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every state and end reason survives the trip through its atomic's `u8`.
    #[test]
    fn states_and_reasons_round_trip_through_their_discriminants() {
        for state in ModelState::ALL {
            assert_eq!(ModelState::from_u8(state as u8), state);
        }
        for reason in EndReason::ALL {
            assert_eq!(EndReason::from_u8(reason as u8), reason);
        }
    }
}
