//! Sources made of other sources: frames already read then the rest, and a stream that
//! ends where its input went bad.

use std::sync::{Arc, Mutex, PoisonError};

use unmix_core::{BoxError, Source};

/// A source that first gives back frames already taken from `rest` — the training
/// segment of a stream, which cannot be read twice — and then continues with `rest`
/// where they left off, so the stream is separated whole, in order.
pub struct Prepended<S> {
    head: Vec<f32>,
    /// Samples of `head` already given.
    given: usize,
    rest: S,
}

impl<S: Source> Prepended<S> {
    /// `head` holds interleaved whole frames of `rest`'s channels.
    pub fn new(head: Vec<f32>, rest: S) -> Self {
        debug_assert_eq!(head.len() % rest.channels().max(1), 0, "whole frames");
        Self { head, given: 0, rest }
    }
}

impl<S: Source> Source for Prepended<S> {
    fn channels(&self) -> usize {
        self.rest.channels()
    }

    fn sample_rate_hz(&self) -> u32 {
        self.rest.sample_rate_hz()
    }

    fn frames_total(&self) -> Option<usize> {
        // What `rest` still holds, plus the head.
        let head_frames = self.head.len() / self.channels().max(1);
        self.rest.frames_total().map(|rest| rest + head_frames)
    }

    fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize, BoxError> {
        let channels = self.channels().max(1);
        if self.given < self.head.len() {
            let take = (max_frames * channels).min(self.head.len() - self.given);
            out.clear();
            out.extend_from_slice(&self.head[self.given..self.given + take]);
            self.given += take;
            if self.given == self.head.len() {
                self.head = Vec::new(); // the segment's memory is not held for the whole stream
                self.given = 0;
            }
            return Ok(take / channels);
        }
        self.rest.read(out, max_frames)
    }
}

/// A source that ends the stream at its inner source's first error instead of failing
/// it, and keeps the error for whoever built the pipeline (in the [`EndingError`] that
/// [`EndAtError::new`] returns): a stream that may have run for hours — a logger piped
/// in — keeps every frame before a bad row, its outputs completed, and the error is
/// still reported.
pub struct EndAtError<S> {
    inner: S,
    error: EndingError,
}

/// Where an [`EndAtError`] leaves the error that ended its stream.
#[derive(Clone, Default)]
pub struct EndingError(Arc<Mutex<Option<String>>>);

impl EndingError {
    /// The error that ended the stream, if one did.
    pub fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl<S: Source> EndAtError<S> {
    /// Wraps `inner`; the returned handle reads the error once the stream has ended.
    pub fn new(inner: S) -> (Self, EndingError) {
        let error = EndingError::default();
        (Self { inner, error: error.clone() }, error)
    }
}

impl<S: Source> Source for EndAtError<S> {
    fn channels(&self) -> usize {
        self.inner.channels()
    }

    fn sample_rate_hz(&self) -> u32 {
        self.inner.sample_rate_hz()
    }

    fn frames_total(&self) -> Option<usize> {
        self.inner.frames_total()
    }

    fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize, BoxError> {
        match self.inner.read(out, max_frames) {
            Ok(frames) => Ok(frames),
            Err(e) => {
                // The source thread, not a real-time one: a lock is fine here.
                *self.error.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
                out.clear();
                Ok(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Counts up, a frame at a time, in blocks as asked.
    struct Ramp {
        channels: usize,
        next: usize,
        end: usize,
    }

    impl Source for Ramp {
        fn channels(&self) -> usize {
            self.channels
        }
        fn sample_rate_hz(&self) -> u32 {
            100
        }
        fn frames_total(&self) -> Option<usize> {
            Some(self.end - self.next)
        }
        fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize, BoxError> {
            let frames = max_frames.min(self.end - self.next);
            out.clear();
            out.extend((self.next * self.channels..(self.next + frames) * self.channels).map(|v| v as f32));
            self.next += frames;
            Ok(frames)
        }
    }

    /// A ramp whose read after `bad_at` frames fails.
    struct Failing(Ramp, usize);

    impl Source for Failing {
        fn channels(&self) -> usize {
            self.0.channels()
        }
        fn sample_rate_hz(&self) -> u32 {
            self.0.sample_rate_hz()
        }
        fn frames_total(&self) -> Option<usize> {
            None
        }
        fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize, BoxError> {
            if self.0.next >= self.1 {
                return Err("line 7: 'abc' is not a number".into());
            }
            let max = max_frames.min(self.1 - self.0.next);
            self.0.read(out, max)
        }
    }

    #[test]
    fn a_stream_ends_at_its_first_error_and_keeps_it() {
        let (mut source, error) = EndAtError::new(Failing(Ramp { channels: 2, next: 0, end: 100 }, 5));
        let mut block = Vec::new();
        assert_eq!(source.read(&mut block, 3).unwrap(), 3);
        assert_eq!(error.get(), None);
        assert_eq!(source.read(&mut block, 3).unwrap(), 2);
        assert_eq!(block, [6.0, 7.0, 8.0, 9.0]);
        assert_eq!(source.read(&mut block, 3).unwrap(), 0, "the end of the stream");
        assert!(block.is_empty());
        assert_eq!(error.get().as_deref(), Some("line 7: 'abc' is not a number"));
    }

    proptest! {
        /// Whatever the head's length and the block sizes, the frames come out as the
        /// source alone would give them.
        #[test]
        fn the_head_then_the_rest_is_the_whole_source(
            channels in 1usize..4,
            total in 0usize..300,
            head_share in 0.0f64..=1.0,
            blocks in proptest::collection::vec(1usize..50, 1..10),
        ) {
            let head_frames = (total as f64 * head_share) as usize;
            let mut source = Ramp { channels, next: 0, end: total };
            let mut head = Vec::new();
            source.read(&mut head, head_frames).unwrap();
            let mut prepended = Prepended::new(head, source);
            prop_assert_eq!(prepended.frames_total(), Some(total));
            let (mut all, mut block) = (Vec::new(), Vec::new());
            for max in blocks.iter().cycle() {
                let got = prepended.read(&mut block, *max).unwrap();
                prop_assert!(got <= *max);
                prop_assert_eq!(block.len(), got * channels);
                if got == 0 {
                    break;
                }
                all.extend_from_slice(&block);
            }
            let expected: Vec<f32> = (0..total * channels).map(|v| v as f32).collect();
            prop_assert_eq!(all, expected);
        }
    }
}
