//! A processor whose output lags its input (a frame-based one: an STFT's frame less one
//! sample) written to a file in step with its input: the source is followed by as many
//! frames of silence as the lag, and the sink skips as many frames first. The file then
//! holds one output frame per input frame, output frame `t` that of input frame `t`.

use unmix_core::{BoxError, Sink, Source};

/// `inner`, then `frames` frames of silence.
pub struct SilenceAfter<S> {
    inner: S,
    /// Frames of silence still to give once `inner` has ended (`None`: it has not).
    left: Option<usize>,
    frames: usize,
}

impl<S: Source> SilenceAfter<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, frames: usize) -> Self {
        Self { inner, left: None, frames }
    }
}

impl<S: Source> Source for SilenceAfter<S> {
    fn channels(&self) -> usize {
        self.inner.channels()
    }

    fn sample_rate_hz(&self) -> u32 {
        self.inner.sample_rate_hz()
    }

    fn frames_total(&self) -> Option<usize> {
        self.inner.frames_total().map(|t| t + self.left.unwrap_or(self.frames))
    }

    fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize, BoxError> {
        if self.left.is_none() {
            let got = self.inner.read(out, max_frames)?;
            if got > 0 || max_frames == 0 {
                return Ok(got);
            }
            self.left = Some(self.frames);
        }
        let left = self.left.get_or_insert(0);
        let give = (*left).min(max_frames);
        *left -= give;
        out.clear();
        out.resize(give * self.inner.channels(), 0.0);
        Ok(give)
    }
}

/// `inner` without the first `frames` frames of `channels` written to it.
pub struct SkipFirst {
    inner: Box<dyn Sink>,
    channels: usize,
    /// Samples still to skip.
    skip: usize,
}

impl SkipFirst {
    /// Wraps `inner`, which takes frames of `channels`.
    pub fn new(inner: Box<dyn Sink>, channels: usize, frames: usize) -> Self {
        Self { inner, channels, skip: frames * channels }
    }
}

impl Sink for SkipFirst {
    fn write(&mut self, samples: &[f32]) -> Result<(), BoxError> {
        let skipped = self.skip.min(samples.len());
        self.skip -= skipped;
        debug_assert!(skipped.is_multiple_of(self.channels.max(1)), "whole frames");
        match &samples[skipped..] {
            [] => Ok(()),
            rest => self.inner.write(rest),
        }
    }

    fn finish(self: Box<Self>) -> Result<(), BoxError> {
        self.inner.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    struct Ramp(usize, usize);

    impl Source for Ramp {
        fn channels(&self) -> usize {
            2
        }
        fn sample_rate_hz(&self) -> u32 {
            100
        }
        fn frames_total(&self) -> Option<usize> {
            Some(self.1 - self.0)
        }
        fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize, BoxError> {
            let frames = max_frames.min(self.1 - self.0);
            out.clear();
            out.extend((2 * self.0..2 * (self.0 + frames)).map(|v| v as f32));
            self.0 += frames;
            Ok(frames)
        }
    }

    struct Kept(Arc<Mutex<Vec<f32>>>);

    impl Sink for Kept {
        fn write(&mut self, samples: &[f32]) -> Result<(), BoxError> {
            self.0.lock().unwrap().extend_from_slice(samples);
            Ok(())
        }
        fn finish(self: Box<Self>) -> Result<(), BoxError> {
            Ok(())
        }
    }

    /// A delay of 5 frames through the pair, in blocks of 3: every input frame comes out
    /// once, in step, and nothing more.
    #[test]
    fn a_lag_compensated_stream_is_in_step() {
        let mut source = SilenceAfter::new(Ramp(0, 11), 5);
        assert_eq!(source.frames_total(), Some(16));
        let kept = Arc::new(Mutex::new(Vec::new()));
        let mut sink = Box::new(SkipFirst::new(Box::new(Kept(kept.clone())), 2, 5));
        let mut delay = vec![0.0f32; 10];
        let mut block = Vec::new();
        loop {
            let got = source.read(&mut block, 3).unwrap();
            if got == 0 {
                break;
            }
            // The processor: every sample 5 frames late.
            let mut out = Vec::new();
            for v in &block {
                delay.push(*v);
                out.push(delay.remove(0));
            }
            sink.write(&out).unwrap();
        }
        sink.finish().unwrap();
        let expected: Vec<f32> = (0..22).map(|v| v as f32).collect();
        assert_eq!(*kept.lock().unwrap(), expected);
    }
}
