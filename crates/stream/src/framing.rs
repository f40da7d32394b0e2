//! Cutting a stream that arrives in arbitrary chunks into frames of `frame_len` frames
//! every `hop_len` frames (overlapping when `hop_len < frame_len`), optionally weighted by
//! a Hann window from `dasp_window`.
//!
//! # Real-time safety
//! Buffers are allocated in [`Framer::new`]; [`Framer::push`] and [`Framer::finish`]
//! allocate nothing.

use dasp_window::{Hanning, Window};

/// Accumulates samples and hands out whole frames.
#[derive(Debug, Clone)]
pub struct Framer {
    channels: usize,
    frame_len: usize,
    hop_len: usize,
    /// The current frame being filled, `frame_len × channels`.
    buffer: Vec<f32>,
    /// Frames in `buffer` so far.
    filled: usize,
    /// Per-frame window weights, if windowing.
    window: Option<Vec<f32>>,
    /// Where a windowed frame is assembled.
    scratch: Vec<f32>,
    /// Whether any frame has been emitted since the start (or the last `finish`).
    emitted_any: bool,
}

impl Framer {
    /// A framer for `channels`-channel frames; `1 ≤ hop_len ≤ frame_len`.
    pub fn new(channels: usize, frame_len: usize, hop_len: usize, windowed: bool) -> Option<Self> {
        if channels == 0 || frame_len == 0 || hop_len == 0 || hop_len > frame_len {
            return None;
        }
        let window = windowed
            .then(|| (0..frame_len).map(|i| Hanning::window(i as f32 / frame_len as f32)).collect::<Vec<f32>>());
        Some(Self {
            channels,
            frame_len,
            hop_len,
            buffer: vec![0.0; frame_len * channels],
            filled: 0,
            window,
            scratch: vec![0.0; frame_len * channels],
            emitted_any: false,
        })
    }

    /// Length of a frame, in time samples.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// Hop between frame starts, in time samples.
    pub fn hop_len(&self) -> usize {
        self.hop_len
    }

    /// Feeds interleaved samples (whole frames); `emit` receives every completed frame.
    pub fn push(&mut self, mut samples: &[f32], emit: &mut dyn FnMut(&[f32])) {
        let ch = self.channels;
        while samples.len() >= ch {
            let take = ((self.frame_len - self.filled) * ch).min(samples.len() / ch * ch);
            self.buffer[self.filled * ch..self.filled * ch + take].copy_from_slice(&samples[..take]);
            self.filled += take / ch;
            samples = &samples[take..];
            if self.filled == self.frame_len {
                self.emit_frame(emit);
                // Keep the overlap: the last frame_len − hop_len frames start the next one.
                self.buffer.copy_within(self.hop_len * ch.., 0);
                self.filled = self.frame_len - self.hop_len;
            }
        }
    }

    /// At the end of the stream: emits the partial last frame, zero-padded to
    /// `frame_len`, with the number of real frames in it. Nothing is emitted when every
    /// frame was already part of an emitted frame.
    pub fn finish(&mut self, emit: &mut dyn FnMut(&[f32], usize)) {
        let overlap = self.frame_len - self.hop_len;
        if self.filled > overlap || (!self.emitted_any && self.filled > 0) {
            let valid = self.filled;
            self.buffer[valid * self.channels..].fill(0.0);
            let frame = self.windowed_frame();
            emit(frame, valid);
        }
        self.filled = 0;
        self.emitted_any = false;
    }

    /// The current buffer, weighted by the window if there is one.
    fn windowed_frame(&mut self) -> &[f32] {
        match &self.window {
            None => &self.buffer,
            Some(w) => {
                for ((out, frame), &weight) in
                    self.scratch.chunks_exact_mut(self.channels).zip(self.buffer.chunks_exact(self.channels)).zip(w)
                {
                    for (o, &x) in out.iter_mut().zip(frame) {
                        *o = x * weight;
                    }
                }
                &self.scratch
            }
        }
    }

    fn emit_frame(&mut self, emit: &mut dyn FnMut(&[f32])) {
        self.emitted_any = true;
        emit(self.windowed_frame());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Whole frames, and the zero-padded tail frame with its count of real frames.
    type Frames = (Vec<Vec<f32>>, Option<(Vec<f32>, usize)>);

    /// Offline framing of a whole signal, the reference.
    fn offline(data: &[f32], ch: usize, frame_len: usize, hop: usize) -> Frames {
        let frames = data.len() / ch;
        let mut out = Vec::new();
        let mut start = 0;
        while start + frame_len <= frames {
            out.push(data[start * ch..(start + frame_len) * ch].to_vec());
            start += hop;
        }
        let tail = if frames > start + (frame_len - hop) || (out.is_empty() && frames > 0) {
            let valid = frames - start;
            let mut f = data[start * ch..].to_vec();
            f.resize(frame_len * ch, 0.0);
            Some((f, valid))
        } else {
            None
        };
        (out, tail)
    }

    proptest! {
        /// Every frame equals the offline framing, whatever the chunking of the input.
        #[test]
        fn framing_is_independent_of_chunking(
            ch in 1usize..4,
            frame_len in 1usize..40,
            hop_frac in 1usize..=8,
            frames in 0usize..400,
            chunks in proptest::collection::vec(1usize..50, 1..10),
        ) {
            let hop = (frame_len * hop_frac).div_ceil(8).clamp(1, frame_len);
            let data: Vec<f32> = (0..frames * ch).map(|i| i as f32 + 0.5).collect();
            let mut framer = Framer::new(ch, frame_len, hop, false).unwrap();
            let mut got: Vec<Vec<f32>> = Vec::new();
            let mut at = 0;
            let mut k = 0;
            while at < data.len() {
                let n = (chunks[k % chunks.len()] * ch).min(data.len() - at);
                framer.push(&data[at..at + n], &mut |f| got.push(f.to_vec()));
                framer.push(&[], &mut |f| got.push(f.to_vec()));
                at += n;
                k += 1;
            }
            let mut tail = None;
            framer.finish(&mut |f, valid| tail = Some((f.to_vec(), valid)));
            let (want, want_tail) = offline(&data, ch, frame_len, hop);
            prop_assert_eq!(got, want);
            prop_assert_eq!(tail, want_tail);
        }
    }

    #[test]
    fn hann_window_weights_each_frame() {
        let mut framer = Framer::new(1, 4, 4, true).unwrap();
        let mut got = Vec::new();
        framer.push(&[1.0; 4], &mut |f| got = f.to_vec());
        // Periodic Hann over 4 points: 0, 0.5, 1, 0.5.
        for (g, w) in got.iter().zip([0.0, 0.5, 1.0, 0.5]) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn invalid_settings_are_refused() {
        assert!(Framer::new(1, 4, 5, false).is_none());
        assert!(Framer::new(1, 0, 1, false).is_none());
        assert!(Framer::new(0, 4, 2, false).is_none());
    }
}
