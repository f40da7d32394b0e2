//! Throughput of the inference engine (`unmix-infer`) against burn's own forward pass on
//! the same model and frames: m = n = 8, encoder 8 → 64 → 64 → 8, 10 240 flop per frame,
//! blocks of 256 and 4096 frames, one thread; the engine with tanh, with ReLU, and with
//! the per-frame monitoring scores (`process_scored`), on the fastest kernel this processor
//! runs (AMX, AVX-512 or AVX2+FMA), and with tanh on each of the other kernels it runs, for
//! comparison (`unmix-infer-avx2+fma/tanh`, …).
//!
//! Run: `cargo bench --bench inference` (criterion; throughput is in frames per second,
//! one frame being one time sample of all 8 channels).

// criterion_group! defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use burn::tensor::{Tensor, TensorData};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use unmix_core::Recording;
use unmix_dsp::{Normaliser, NormaliserConfig};
use unmix_format::{Activation, DenseLayer, GmmParams, ModelFile, ModelHeader, ModelWeights};
use unmix_infer::{Kernel, Separator};
use unmix_model::{Backend, PdgmmVae};

const CHANNELS: usize = 8;
const HIDDEN: [usize; 2] = [64, 64];

fn layer(inputs: usize, outputs: usize, seed: usize) -> DenseLayer {
    let value = |i: usize| (((i * 7919 + seed * 104_729) % 2003) as f32 / 2003.0 - 0.5) / (inputs as f32).sqrt();
    DenseLayer {
        inputs,
        outputs,
        weight: (0..inputs * outputs).map(value).collect(),
        bias: (0..outputs).map(|o| value(o + 17) * 0.1).collect(),
    }
}

fn model(m: usize, hidden: &[usize], activation: Activation) -> ModelFile {
    let frames = 4096;
    let samples: Vec<f32> = (0..frames * m).map(|i| ((i * 37 % 101) as f32 / 50.0 - 1.0) + (i % m) as f32).collect();
    let normaliser = Normaliser::fit(
        &Recording::from_interleaved(48_000, m, samples).unwrap(),
        NormaliserConfig { whiten_to: None },
    )
    .unwrap();
    let mut widths = vec![m];
    widths.extend_from_slice(hidden);
    widths.push(m);
    let encoder: Vec<DenseLayer> = widths.windows(2).enumerate().map(|(i, w)| layer(w[0], w[1], i)).collect();
    let decoder: Vec<DenseLayer> = widths.windows(2).enumerate().map(|(i, w)| layer(w[0], w[1], i + 9)).collect();
    ModelFile {
        header: ModelHeader {
            unmix_version: "bench".into(),
            channels: m,
            sample_rate_hz: 48_000,
            sources: m,
            normaliser,
            training_config: serde_json::Value::Null,
            training_summary: serde_json::Value::Null,
            score_baseline: None,
            picked_channels: None,
            source_gains: None,
            temporal_prior: None,
            output_noise: None,
        },
        weights: ModelWeights {
            architecture: unmix_format::Architecture::Mlp,
            activation,
            encoder,
            decoder,
            posterior_log_var: vec![-3.0; m],
            prior: GmmParams { components: 1, logits: vec![0.0; m], means: vec![0.0; m], log_vars: vec![0.0; m] },
            sensor_curves: Vec::new(),
        },
    }
}

fn input(frames: usize) -> Vec<f32> {
    (0..frames * CHANNELS).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1 + (i % CHANNELS) as f32).collect()
}

fn encoders(c: &mut Criterion) {
    let mut group = c.benchmark_group("encoder_m8_n8_h64x64");
    let kernel = Separator::new(&model(CHANNELS, &HIDDEN, Activation::Tanh)).kernel_name();
    println!("unmix-infer kernel here: {kernel}");
    let best = Kernel::best();
    let others = Kernel::available().filter(|&k| k != best);
    let runs =
        [("unmix-infer/tanh".to_string(), Activation::Tanh, best), ("unmix-infer/relu".into(), Activation::Relu, best)]
            .into_iter()
            .chain(others.map(|k| {
                // `amx-bf16 (f32 as …) + avx-512` → `amx-bf16`: ids without spaces.
                let short = k.name().split(' ').next().unwrap_or("kernel");
                (format!("unmix-infer-{short}/tanh"), Activation::Tanh, k)
            }));
    for (name, activation, kernel) in runs {
        let mut separator = Separator::with_kernel(&model(CHANNELS, &HIDDEN, activation), kernel).expect("available");
        for frames in [256usize, 4096] {
            let input = input(frames);
            let mut output = vec![0.0f32; frames * CHANNELS];
            group.throughput(Throughput::Elements(frames as u64));
            group.bench_with_input(BenchmarkId::new(name.as_str(), frames), &frames, |b, _| {
                b.iter(|| separator.process(black_box(&input), black_box(&mut output)).expect("shapes fit"));
            });
        }
    }
    // With the monitoring scores: one decoder pass (as large as the encoder) more.
    let mut separator = Separator::new(&model(CHANNELS, &HIDDEN, Activation::Tanh));
    for frames in [256usize, 4096] {
        let input = input(frames);
        let (mut output, mut log_prior, mut error) =
            (vec![0.0f32; frames * CHANNELS], vec![0.0; frames], vec![0.0; frames]);
        group.throughput(Throughput::Elements(frames as u64));
        group.bench_with_input(BenchmarkId::new("unmix-infer/tanh+scores", frames), &frames, |b, _| {
            b.iter(|| {
                separator
                    .process_scored(black_box(&input), black_box(&mut output), &mut log_prior, &mut error)
                    .expect("shapes fit")
            });
        });
    }
    // burn's forward pass as a user of burn would call it: normalised frames into a
    // tensor, the encoder, the result back out.
    let model = model(CHANNELS, &HIDDEN, Activation::Tanh);
    let device = Backend::default_compiled().expect("a CPU backend").device().expect("a device");
    let burn_model = PdgmmVae::from_weights(&model.weights, &device).expect("valid weights");
    for frames in [256usize, 4096] {
        let recording = Recording::from_interleaved(48_000, CHANNELS, input(frames)).expect("whole frames");
        let normalised = model.header.normaliser.transform(&recording).expect("matching channels");
        group.throughput(Throughput::Elements(frames as u64));
        group.bench_with_input(BenchmarkId::new("burn/tanh", frames), &frames, |b, _| {
            b.iter(|| {
                let y = Tensor::<2>::from_data(TensorData::new(normalised.clone(), [frames, CHANNELS]), &device);
                black_box(burn_model.encode(y).into_data())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, encoders);
criterion_main!(benches);
