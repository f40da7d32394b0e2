//! Multichannel recordings held in memory as interleaved frames.

use crate::{Error, Result};

/// `frames × channels` samples, interleaved frame by frame, at a fixed sample rate.
///
/// This is the model's data matrix `Y` (`T × m`): row `t` is frame `t`.
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    sample_rate_hz: u32,
    channels: usize,
    samples: Vec<f32>,
}

impl Recording {
    /// Wraps interleaved samples (`samples[t * channels + c]`).
    pub fn from_interleaved(sample_rate_hz: u32, channels: usize, samples: Vec<f32>) -> Result<Self> {
        if channels == 0 {
            return Err(Error::NoChannels);
        }
        if sample_rate_hz == 0 {
            return Err(Error::ZeroSampleRate);
        }
        if !samples.len().is_multiple_of(channels) {
            return Err(Error::RaggedFrames { samples: samples.len(), channels });
        }
        Ok(Self { sample_rate_hz, channels, samples })
    }

    /// Builds a recording from one vector per channel; all must have the same length.
    pub fn from_channels(sample_rate_hz: u32, channels: &[Vec<f32>]) -> Result<Self> {
        let frames = channels.first().map_or(0, Vec::len);
        if channels.iter().any(|c| c.len() != frames) {
            return Err(Error::RaggedFrames { samples: channels.iter().map(Vec::len).sum(), channels: channels.len() });
        }
        let mut samples = Vec::with_capacity(frames * channels.len());
        for t in 0..frames {
            samples.extend(channels.iter().map(|c| c[t]));
        }
        Self::from_interleaved(sample_rate_hz, channels.len(), samples)
    }

    /// Sample rate in hertz.
    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// Channels per frame (`m`).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Number of frames (`T`).
    pub fn frames(&self) -> usize {
        self.samples.len() / self.channels
    }

    /// Duration in seconds.
    pub fn duration_s(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate_hz)
    }

    /// All samples, interleaved.
    pub fn interleaved(&self) -> &[f32] {
        &self.samples
    }

    /// Consumes the recording, returning its interleaved samples.
    pub fn into_interleaved(self) -> Vec<f32> {
        self.samples
    }

    /// Frame `t`: one sample of every channel.
    pub fn frame(&self, t: usize) -> &[f32] {
        &self.samples[t * self.channels..(t + 1) * self.channels]
    }

    /// Iterates over frames.
    pub fn iter_frames(&self) -> std::slice::ChunksExact<'_, f32> {
        self.samples.chunks_exact(self.channels)
    }

    /// Copies channel `c` out as its own vector.
    pub fn channel(&self, c: usize) -> Vec<f32> {
        self.iter_frames().map(|f| f[c]).collect()
    }

    /// The first `frames` frames (all of them if there are fewer).
    pub fn head(&self, frames: usize) -> Recording {
        let frames = frames.min(self.frames());
        Recording {
            sample_rate_hz: self.sample_rate_hz,
            channels: self.channels,
            samples: self.samples[..frames * self.channels].to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_round_trip_through_interleaving() {
        let rec = Recording::from_channels(8000, &[vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]).unwrap();
        assert_eq!(rec.interleaved(), &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(rec.frames(), 3);
        assert_eq!(rec.channel(1), vec![4.0, 5.0, 6.0]);
        assert_eq!(rec.frame(2), &[3.0, 6.0]);
        assert_eq!(rec.head(2).frames(), 2);
    }

    #[test]
    fn ragged_input_is_an_error() {
        assert!(matches!(Recording::from_interleaved(8000, 2, vec![0.0; 3]), Err(Error::RaggedFrames { .. })));
        assert!(matches!(Recording::from_interleaved(8000, 0, vec![]), Err(Error::NoChannels)));
        assert!(matches!(Recording::from_interleaved(0, 1, vec![]), Err(Error::ZeroSampleRate)));
    }
}
