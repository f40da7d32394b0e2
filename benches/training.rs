//! One epoch of PDGMM-VAE training on segments of 10⁴, 10⁵ and 10⁶ frames (8 channels,
//! 8 sources, encoder and decoder 64 × 64) on every backend this build has, at the
//! default batch of 256 frames and at 4096: the time per epoch, so that where a GPU
//! starts to pay is visible. The first epoch on a GPU also compiles its kernels, so two
//! are run and the second is the figure.
//!
//! Run: `cargo bench --bench training` (CPU), `cargo bench --features wgpu --bench
//! training` (and the GPU wgpu finds; `-- --frames 10000,100000` for fewer sizes).
//! `docs/performance.md#training-on-a-gpu` has the figures and what to expect.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use unmix_model::{Backend, ShuffledRows, Start, Trainer, TrainingConfig, TrainingRecipe, VaeLayout};

const CHANNELS: usize = 8;

fn main() -> Result<()> {
    let mut sizes = vec![10_000usize, 100_000, 1_000_000];
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--frames" => {
                let list = args.next().context("--frames needs a list")?;
                sizes = list.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let mut backends = vec![Backend::default_compiled()?];
    if unmix_model::gpu_available() {
        backends.push(Backend::Wgpu);
    }
    println!("backend | adapter | frames | batch | first epoch | epoch | frames/s");
    for &frames in &sizes {
        let data = frames_of(frames);
        for &backend in &backends {
            for batch_size in [256, 4096] {
                let recipe = TrainingRecipe { batch_size, ..TrainingRecipe::new() };
                let layout =
                    VaeLayout { encoder_hidden: vec![64, 64], decoder_hidden: vec![64, 64], ..VaeLayout::new() };
                let config = TrainingConfig::new(layout.with_sizes(CHANNELS, CHANNELS), recipe);
                let trainer = Trainer::new(config, backend)?;
                let uploaded = trainer.data(&data)?;
                let mut run = trainer.start(&Start::Seed(1), 1)?;
                let mut epoch = || -> Result<f64> {
                    let started = Instant::now();
                    trainer.train(&mut run, &uploaded, &mut ShuffledRows { batch_size }, 1, &mut |_| {})?;
                    Ok(started.elapsed().as_secs_f64())
                };
                let (first, second) = (epoch()?, epoch()?);
                println!(
                    "{} | {} | {frames} | {batch_size} | {first:.2} s | {second:.2} s | {:.0}",
                    backend.name(),
                    backend.adapter().unwrap_or_else(|| "processor".into()),
                    frames as f64 / second
                );
            }
        }
    }
    Ok(())
}

/// `frames` frames of 8 channels: 8 independent Laplace sources through a seeded mixing,
/// each channel at unit variance (as the trainer gets them).
fn frames_of(frames: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(7);
    let mixing: Vec<f64> = (0..CHANNELS * CHANNELS).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut out = Vec::with_capacity(frames * CHANNELS);
    for _ in 0..frames {
        let s: Vec<f64> = (0..CHANNELS)
            .map(|_| {
                let u: f64 = rng.random_range(-0.5..0.5);
                -u.signum() * (1.0 - 2.0 * u.abs()).max(1e-12).ln()
            })
            .collect();
        for c in 0..CHANNELS {
            out.push((0..CHANNELS).map(|k| mixing[c * CHANNELS + k] * s[k]).sum::<f64>() as f32);
        }
    }
    for c in 0..CHANNELS {
        let var = (0..frames).map(|t| f64::from(out[t * CHANNELS + c]).powi(2)).sum::<f64>() / frames.max(1) as f64;
        let scale = 1.0 / var.sqrt().max(1e-12);
        (0..frames).for_each(|t| out[t * CHANNELS + c] = (f64::from(out[t * CHANNELS + c]) * scale) as f32);
    }
    out
}
