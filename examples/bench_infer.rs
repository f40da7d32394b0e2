//! Throughput of the inference engine (`unmix-infer`) against burn's own forward pass on
//! the same model and frames: m = n = 8, encoder 8 → 64 → 64 → 8 (tanh), 10 240 flop
//! per frame, blocks of 256 and 4096 frames, one thread.
//!
//! Run: `cargo run --release --example bench_infer`

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Result;
use burn::tensor::{Tensor, TensorData};
use unmix_core::Recording;
use unmix_dsp::{Normaliser, NormaliserConfig};
use unmix_format::{Activation, DenseLayer, GmmParams, ModelFile, ModelHeader, ModelWeights};
use unmix_infer::Separator;
use unmix_model::{Backend, PdgmmVae};

fn layer(inputs: usize, outputs: usize, seed: usize) -> DenseLayer {
    let value = |i: usize| (((i * 7919 + seed * 104_729) % 2003) as f32 / 2003.0 - 0.5) / (inputs as f32).sqrt();
    DenseLayer {
        inputs,
        outputs,
        weight: (0..inputs * outputs).map(value).collect(),
        bias: (0..outputs).map(|o| value(o + 17) * 0.1).collect(),
    }
}

fn model(m: usize, hidden: &[usize]) -> Result<ModelFile> {
    let frames = 4096;
    let samples: Vec<f32> = (0..frames * m).map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) + (i % m) as f32).collect();
    let normaliser =
        Normaliser::fit(&Recording::from_interleaved(48_000, m, samples)?, NormaliserConfig { whiten_to: None })?;
    let mut widths = vec![m];
    widths.extend_from_slice(hidden);
    widths.push(m);
    let encoder: Vec<DenseLayer> = widths.windows(2).enumerate().map(|(i, w)| layer(w[0], w[1], i)).collect();
    let decoder: Vec<DenseLayer> = widths.windows(2).enumerate().map(|(i, w)| layer(w[0], w[1], i + 9)).collect();
    Ok(ModelFile {
        header: ModelHeader {
            unmix_version: "bench".into(),
            channels: m,
            sample_rate_hz: 48_000,
            sources: m,
            normaliser,
            training_config: serde_json::Value::Null,
            training_summary: serde_json::Value::Null,
        },
        weights: ModelWeights {
            activation: if std::env::args().any(|a| a == "relu") { Activation::Relu } else { Activation::Tanh },
            encoder,
            decoder,
            posterior_log_var: vec![-3.0; m],
            prior: GmmParams { components: 1, logits: vec![0.0; m], means: vec![0.0; m], log_vars: vec![0.0; m] },
        },
    })
}

/// Runs `f` repeatedly for at least `budget` and returns calls per second.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < budget {
        f();
        calls += 1;
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

fn main() -> Result<()> {
    let (m, hidden) = (8, [64, 64]);
    let model = model(m, &hidden)?;
    let mut separator = Separator::new(&model);
    let device = Backend::default_compiled()?.device()?;
    let burn_model = PdgmmVae::from_weights(&model.weights, &device)?;
    println!(
        "inference engine, kernel {}, m = n = {m}, hidden {hidden:?}, 10 240 flop/frame, one thread",
        separator.kernel_name()
    );
    println!("{:<34} {:>14} {:>10}", "bench id", "frames/s", "GFLOP/s");
    for frames in [256usize, 4096] {
        let input: Vec<f32> = (0..frames * m).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1 + (i % m) as f32).collect();
        let mut output = vec![0.0f32; frames * m];
        let ours = rate(Duration::from_secs(2), || {
            separator.process(black_box(&input), black_box(&mut output)).expect("shapes fit");
        }) * frames as f64;
        let normalised = model.header.normaliser.transform(&Recording::from_interleaved(48_000, m, input.clone())?)?;
        let theirs = rate(Duration::from_secs(2), || {
            let y = Tensor::<2>::from_data(TensorData::new(normalised.clone(), [frames, m]), &device);
            black_box(burn_model.encode(y).into_data());
        }) * frames as f64;
        println!(
            "{:<34} {:>14.0} {:>10.2}",
            format!("encoder/m8_n8_h64x64/frame{frames}"),
            ours,
            ours * 10_240.0 / 1e9
        );
        println!(
            "{:<34} {:>14.0} {:>10.2}",
            format!("burn-forward/m8_n8_h64x64/frame{frames}"),
            theirs,
            theirs * 10_240.0 / 1e9
        );
        println!("{:<34} {:>13.1}×", "speed-up", ours / theirs);
    }
    Ok(())
}
