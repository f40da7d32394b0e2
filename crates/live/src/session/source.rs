//! The pipeline's source: frames from the input callback's ring, and the end of the
//! stream when the session is stopped, the duration is reached, or a device fails or
//! falls silent.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use unmix_core::{BoxError, Source};
use unmix_stream::RingReader;

use super::{EndReason, Shared};
use crate::input::InputMeter;
use crate::output::OutputMeter;

/// Moves frames from the callback's ring into the pipeline, and ends the stream when the
/// session is stopped, the duration is reached, the device fails or falls silent.
pub(super) struct LiveSource {
    pub(super) reader: RingReader,
    pub(super) meter: Arc<InputMeter>,
    /// A lost output device ends the session too (the recording is kept).
    pub(super) output_meter: Option<Arc<OutputMeter>>,
    pub(super) shared: Arc<Shared>,
    pub(super) channels: usize,
    pub(super) sample_rate_hz: u32,
    pub(super) stall_timeout: Duration,
    pub(super) last_data: Instant,
}

impl LiveSource {
    fn end(&self, reason: EndReason) -> usize {
        self.shared.end_with(reason);
        // Nothing reads the ring any more: the callback stops keeping (and counting) frames.
        self.meter.released.store(true, Ordering::Release);
        0
    }
}

impl Source for LiveSource {
    fn channels(&self) -> usize {
        self.channels
    }

    fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    fn frames_total(&self) -> Option<usize> {
        None
    }

    fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> std::result::Result<usize, BoxError> {
        out.resize(max_frames * self.channels, 0.0);
        loop {
            // Read `ended` before popping: once set, every captured frame is in the ring.
            let ended = self.meter.ended.load(Ordering::Acquire);
            let got = self.reader.pop(out);
            if got > 0 {
                self.last_data = Instant::now();
                out.truncate(got * self.channels);
                return Ok(got);
            }
            if self.shared.stop.load(Ordering::Acquire) {
                // Release the input first, then go round once more for what arrived
                // before that took effect: only a callback already past its check can
                // still add a block.
                if !self.meter.released.swap(true, Ordering::AcqRel) {
                    continue;
                }
                return Ok(self.end(EndReason::Stopped));
            }
            if ended {
                return Ok(self.end(EndReason::Duration));
            }
            if self.meter.device_error.load(Ordering::Acquire)
                || self.output_meter.as_ref().is_some_and(|o| o.device_error.load(Ordering::Acquire))
            {
                return Ok(self.end(EndReason::DeviceError));
            }
            if self.last_data.elapsed() > self.stall_timeout {
                return Ok(self.end(EndReason::Stalled));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
