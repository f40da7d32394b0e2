//! The short-time Fourier transform and its exact inverse by weighted overlap-add.
//!
//! Analysis takes frames of `frame` samples every `hop`, each through a periodic Hann
//! window (`dasp_window`), and keeps the `frame / 2 + 1` bins of its real transform.
//! Synthesis inverts every frame, multiplies it by the synthesis window
//! `g(n) = w(n) / Σ_k w²(n + k·hop)` and adds the frames up: with `hop` dividing `frame`
//! the sum `Σ_k w(n + k·hop) g(n + k·hop)` is 1 at every sample, so an unmodified
//! spectrogram comes back as its signal to rounding. The signal is padded by
//! `frame − hop` zeros in front and enough behind, so that every sample is covered by
//! the same number of frames; synthesis drops the padding again.

use std::sync::Arc;

use dasp_window::{Hanning, Window};
use realfft::num_complex::Complex64;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Frame and hop of an STFT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StftConfig {
    /// Samples per frame (the transform length), even.
    pub frame: usize,
    /// Samples between frames; divides `frame`.
    pub hop: usize,
}

impl StftConfig {
    /// 2048-sample frames every 512: 128 ms at 16 kHz, about a room's reverberation
    /// time, the length frequency-domain separation wants (each frame's bins then hold
    /// most of a source's echoes of that frame).
    pub const DEFAULT: Self = Self { frame: 2048, hop: 512 };

    /// Checks the frame and hop: an even frame of at least 4 samples, a hop that divides
    /// it, at least two frames overlapping (perfect reconstruction needs the windows'
    /// overlap to cover every sample).
    pub fn check(&self) -> Result<()> {
        if self.frame < 4 || !self.frame.is_multiple_of(2) || self.frame > 1 << 16 {
            return Err(Error::Config(format!("an STFT frame of {} samples: an even 4 to 65536", self.frame)));
        }
        if self.hop == 0 || !self.frame.is_multiple_of(self.hop) || self.hop > self.frame / 2 {
            return Err(Error::Config(format!(
                "an STFT hop of {} samples for frames of {}: a divisor of the frame, at most half of it",
                self.hop, self.frame
            )));
        }
        Ok(())
    }

    /// Bins per frame.
    pub fn bins(&self) -> usize {
        self.frame / 2 + 1
    }
}

/// One channel's spectrogram: `frames × bins` values, frame-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrogram {
    /// Frames.
    pub frames: usize,
    /// Bins per frame.
    pub bins: usize,
    /// `data[t * bins + f]`.
    pub data: Vec<Complex64>,
}

impl Spectrogram {
    /// Bin `f` of frame `t`.
    pub fn at(&self, t: usize, f: usize) -> Complex64 {
        self.data[t * self.bins + f]
    }
}

/// An STFT of one configuration, its windows and transforms planned once.
pub struct Stft {
    config: StftConfig,
    analysis: Vec<f64>,
    synthesis: Vec<f64>,
    forward: Arc<dyn RealToComplex<f64>>,
    inverse: Arc<dyn ComplexToReal<f64>>,
}

impl std::fmt::Debug for Stft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stft").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Stft {
    /// Plans the transform of `config` (checked).
    pub fn new(config: StftConfig) -> Result<Self> {
        config.check()?;
        let n = config.frame;
        // Periodic Hann: dasp's window over the phase n / N, so that shifted copies sum
        // to a constant.
        let analysis: Vec<f64> = (0..n).map(|i| Hanning::window(i as f64 / n as f64)).collect();
        let mut overlap = vec![0.0; config.hop];
        for (i, w) in analysis.iter().enumerate() {
            overlap[i % config.hop] += w * w;
        }
        let synthesis = analysis.iter().enumerate().map(|(i, w)| w / overlap[i % config.hop]).collect();
        let mut planner = RealFftPlanner::<f64>::new();
        Ok(Self {
            config,
            analysis,
            synthesis,
            forward: planner.plan_fft_forward(n),
            inverse: planner.plan_fft_inverse(n),
        })
    }

    /// Its frame and hop.
    pub fn config(&self) -> StftConfig {
        self.config
    }

    /// Frames the analysis of `samples` samples gives.
    pub fn frames_of(&self, samples: usize) -> usize {
        let StftConfig { frame, hop } = self.config;
        (samples + frame - hop).div_ceil(hop)
    }

    /// The spectrogram of `signal`.
    pub fn analyse(&self, signal: &[f64]) -> Spectrogram {
        let StftConfig { frame, hop } = self.config;
        let (frames, bins) = (self.frames_of(signal.len()), self.config.bins());
        let lead = frame - hop;
        let mut data = Vec::with_capacity(frames * bins);
        let mut input = vec![0.0; frame];
        let mut output = vec![Complex64::default(); bins];
        let mut scratch = self.forward.make_scratch_vec();
        for t in 0..frames {
            for (i, v) in input.iter_mut().enumerate() {
                // Sample `t·hop + i − lead` of the signal, zero outside it.
                let at = (t * hop + i).checked_sub(lead);
                *v = at.and_then(|a| signal.get(a)).map_or(0.0, |x| x * self.analysis[i]);
            }
            // Lengths are the planned ones: the transform cannot refuse them.
            let _ = self.forward.process_with_scratch(&mut input, &mut output, &mut scratch);
            data.extend_from_slice(&output);
        }
        Spectrogram { frames, bins, data }
    }

    /// The signal of `len` samples whose spectrogram is `spectrogram` (the inverse of
    /// [`analyse`](Self::analyse) for a signal of that length).
    pub fn synthesise(&self, spectrogram: &Spectrogram, len: usize) -> Result<Vec<f64>> {
        let StftConfig { frame, hop } = self.config;
        if spectrogram.bins != self.config.bins() || spectrogram.frames < self.frames_of(len) {
            return Err(Error::Shape(format!(
                "a spectrogram of {} frames of {} bins is not one of {len} samples in frames of {frame}",
                spectrogram.frames, spectrogram.bins
            )));
        }
        let lead = frame - hop;
        let mut out = vec![0.0; len];
        let mut input = vec![Complex64::default(); self.config.bins()];
        let mut frame_out = vec![0.0; frame];
        let mut scratch = self.inverse.make_scratch_vec();
        let scale = 1.0 / frame as f64;
        for t in 0..self.frames_of(len) {
            input.copy_from_slice(&spectrogram.data[t * spectrogram.bins..(t + 1) * spectrogram.bins]);
            // The bins that must be real (DC and Nyquist) are made so: a modified
            // spectrogram may have left them complex.
            input[0].im = 0.0;
            let last = input.len() - 1;
            input[last].im = 0.0;
            let _ = self.inverse.process_with_scratch(&mut input, &mut frame_out, &mut scratch);
            for (i, v) in frame_out.iter().enumerate() {
                if let Some(a) = (t * hop + i).checked_sub(lead).filter(|&a| a < len) {
                    out[a] += v * scale * self.synthesis[i];
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Analysis then synthesis gives the signal back to 1e-12 (the acceptance asks
    /// 1e-6), for several frames and hops and for lengths that are and are not whole
    /// hops.
    #[test]
    fn the_round_trip_is_exact() {
        let mut rng = StdRng::seed_from_u64(1);
        for (frame, hop) in [(2048, 512), (1024, 256), (512, 256), (256, 32), (8, 4)] {
            let stft = Stft::new(StftConfig { frame, hop }).unwrap();
            for len in [1usize, 7, frame, 3 * frame + 17, 10_000] {
                let signal: Vec<f64> = (0..len).map(|_| rng.random_range(-1.0..1.0)).collect();
                let spectrogram = stft.analyse(&signal);
                assert_eq!(spectrogram.frames, stft.frames_of(len));
                let back = stft.synthesise(&spectrogram, len).unwrap();
                let worst = signal.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                assert!(worst < 1e-12, "frame {frame}, hop {hop}, {len} samples: off by {worst}");
            }
        }
    }

    /// A sinusoid at a bin's frequency puts its energy in that bin.
    #[test]
    fn a_tone_lands_in_its_bin() {
        let stft = Stft::new(StftConfig { frame: 256, hop: 64 }).unwrap();
        let signal: Vec<f64> = (0..4096).map(|t| (std::f64::consts::TAU * 20.0 * t as f64 / 256.0).sin()).collect();
        let s = stft.analyse(&signal);
        let t = s.frames / 2;
        let peak = (0..s.bins).max_by(|&a, &b| s.at(t, a).norm().total_cmp(&s.at(t, b).norm())).unwrap();
        assert_eq!(peak, 20);
    }

    #[test]
    fn settings_that_cannot_reconstruct_are_refused() {
        for (frame, hop) in [(2047, 512), (2048, 0), (2048, 300), (2048, 2048), (2, 1)] {
            assert!(Stft::new(StftConfig { frame, hop }).is_err(), "{frame}/{hop}");
        }
    }
}
