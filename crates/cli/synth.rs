//! `unmix synth`: the paper's benchmark mixtures.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use unmix_io::write_wav_f32;
use unmix_synth::{MixKind, SynthConfig, generate};

use crate::output::Staging;

/// Mixing kind.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// `x = A s` with a random well-conditioned `A` (condition number ≤ 5).
    Linear,
    /// `x = tanh(A2 tanh(A1 s))`, every tanh input scaled to standard deviation 1.5.
    Nonlinear,
}

/// Arguments of `unmix synth`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Linear or nonlinear mixing.
    #[arg(value_enum)]
    kind: Kind,
    /// Number of sources. Their marginals cycle through uniform, Laplace, exponential,
    /// bimodal, Student-t(5), sinusoid (arcsine), skewed mixture.
    #[arg(long, default_value_t = 3)]
    sources: usize,
    /// Number of sensors (channels); defaults to the number of sources.
    #[arg(long)]
    sensors: Option<usize>,
    /// Number of frames (time samples).
    #[arg(long, default_value_t = 10_000)]
    samples: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Add white noise to every sensor at this SNR in dB.
    #[arg(long)]
    snr_db: Option<f64>,
    /// Sample rate written into the WAV files (the data are i.i.d.; it is a label).
    #[arg(long, default_value_t = 8_000)]
    sample_rate: u32,
    /// Output directory: mixture.wav, truth.wav, meta.json.
    #[arg(short, long)]
    output: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

pub fn run(args: SynthArgs) -> Result<()> {
    let config = SynthConfig {
        kind: match args.kind {
            Kind::Linear => MixKind::Linear,
            Kind::Nonlinear => MixKind::Nonlinear,
        },
        sources: args.sources,
        sensors: args.sensors.unwrap_or(args.sources),
        frames: args.samples,
        seed: args.seed,
        sample_rate_hz: args.sample_rate,
        snr_db: args.snr_db,
    };
    let data = generate(&config)?;
    let names = ["mixture.wav", "truth.wav", "meta.json"];
    let mut out = Staging::new(&args.output, &names, args.force)?;
    write_wav_f32(&out.path("mixture.wav"), &data.mixture)?;
    write_wav_f32(&out.path("truth.wav"), &data.truth)?;
    let meta = serde_json::to_string_pretty(&data.meta)?;
    let meta_path = out.path("meta.json");
    std::fs::write(&meta_path, meta).with_context(|| format!("{}: cannot write", meta_path.display()))?;
    out.commit()?;
    println!(
        "wrote {} frames of {} sources mixed into {} sensors ({:?}, seed {}) to {}",
        config.frames,
        config.sources,
        config.sensors,
        config.kind,
        config.seed,
        args.output.display()
    );
    Ok(())
}
