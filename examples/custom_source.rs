//! Feed unmix from your own source: implement `unmix_core::Source` for whatever produces
//! frames (a network stream, a data logger's API, a simulator) and run it through the
//! streaming pipeline — source, separator and WAV writer on their own threads, joined by
//! lock-free rings.
//!
//! The source here is two oscillators mixed into three "sensors" by a fixed matrix; a
//! model is trained on its first second, then the pipeline separates ten seconds of it.
//!
//! Run: `cargo run --release --example custom_source [-- OUT.wav]` (default
//! `custom-sources.wav`).

use std::path::PathBuf;

use anyhow::Result;
use unmix_core::{BoxError, Recording, Source};
use unmix_infer::Separator;
use unmix_io::{WavFormat, WavStreamWriter};
use unmix_separate::{CancelToken, SeparateConfig, SourceCount, fit};
use unmix_stream::{Pipeline, PipelineConfig};

/// Two sources — a square-ish wave and a chirp — seen by three sensors.
struct Oscillators {
    sample_rate_hz: u32,
    frames_left: usize,
    t: usize,
}

impl Oscillators {
    const MIXING: [[f32; 2]; 3] = [[1.0, 0.4], [0.3, 1.0], [0.8, -0.6]];

    /// The two sources at frame `t`.
    fn sources(&self, t: usize) -> [f32; 2] {
        let seconds = t as f32 / self.sample_rate_hz as f32;
        let square = (std::f32::consts::TAU * 3.0 * seconds).sin().signum() * 0.5;
        let chirp = (std::f32::consts::TAU * (40.0 + 20.0 * seconds) * seconds).sin();
        [square, chirp]
    }

    fn frame(&self, t: usize) -> [f32; 3] {
        let [a, b] = self.sources(t);
        Self::MIXING.map(|row| row[0] * a + row[1] * b)
    }
}

impl Source for Oscillators {
    fn channels(&self) -> usize {
        3
    }

    fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    fn frames_total(&self) -> Option<usize> {
        Some(self.frames_left)
    }

    /// Replaces `out` with up to `max_frames` frames; 0 frames is the end of the stream.
    fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize, BoxError> {
        let frames = max_frames.min(self.frames_left);
        out.clear();
        for t in self.t..self.t + frames {
            out.extend_from_slice(&self.frame(t));
        }
        (self.t, self.frames_left) = (self.t + frames, self.frames_left - frames);
        Ok(frames)
    }
}

fn main() -> Result<()> {
    let output = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "custom-sources.wav".into()));
    let rate = 8_000;

    // Train on the source's first second (read through the same trait).
    let mut head = Oscillators { sample_rate_hz: rate, frames_left: rate as usize, t: 0 };
    let mut samples = Vec::new();
    head.read(&mut samples, rate as usize).map_err(|e| anyhow::anyhow!(e))?;
    let training = Recording::from_interleaved(rate, 3, samples)?;
    let model =
        fit(&training, &SeparateConfig::defaults(SourceCount::Fixed(2))?, &CancelToken::new(), &mut |_| {})?.model;

    // Then separate ten seconds of it as a stream.
    let frames = 10 * rate as usize;
    let source = Oscillators { sample_rate_hz: rate, frames_left: frames, t: 0 };
    let sink = WavStreamWriter::create_as(&output, 2, rate, WavFormat::Float32)?;
    let pipeline =
        Pipeline::start(Box::new(source), Box::new(Separator::new(&model)), Box::new(sink), PipelineConfig::file())?;
    let report = pipeline.wait()?;
    println!("separated {} frames into 2 sources → {}", report.frames_out, output.display());

    // How well: each true source against its best-matching output.
    let truth: Vec<Vec<f32>> = (0..2).map(|j| (0..frames).map(|t| head.sources(t)[j]).collect()).collect();
    let separated = unmix_io::read_wav(&output)?;
    let estimates: Vec<Vec<f32>> = (0..2).map(|j| separated.channel(j)).collect();
    let score = unmix_dsp::metrics::score(&truth, &estimates)?;
    println!("|corr| with the true sources: mean {:.4}, worst {:.4}", score.mean_abs_corr, score.min_abs_corr);
    Ok(())
}
