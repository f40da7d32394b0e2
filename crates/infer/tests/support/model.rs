//! A model file for the engine's tests: encoder `m → hidden… → n`, decoder `n → d`,
//! deterministic weights, fitted normalisation (optionally whitening to `n`).

use unmix_core::Recording;
use unmix_dsp::{Normaliser, NormaliserConfig};
use unmix_format::{Activation, DenseLayer, GmmParams, ModelFile, ModelHeader, ModelWeights};

pub fn model(m: usize, n: usize, hidden: &[usize], whiten: bool) -> ModelFile {
    let frames = 1000;
    let samples: Vec<f32> =
        (0..frames * m).map(|i| ((i * 7919 % 1013) as f32 / 500.0 - 1.0) * (1 + i % m) as f32).collect();
    let rec = Recording::from_interleaved(8000, m, samples).unwrap();
    let normaliser = Normaliser::fit(&rec, NormaliserConfig { whiten_to: whiten.then_some(n) }).unwrap();
    let d = normaliser.output_dims();
    let layer = |inputs: usize, outputs: usize| DenseLayer {
        inputs,
        outputs,
        weight: (0..inputs * outputs).map(|i| ((i * 31 % 17) as f32 - 8.0) / 20.0).collect(),
        bias: vec![0.05; outputs],
    };
    let mut widths = vec![d];
    widths.extend_from_slice(hidden);
    widths.push(n);
    let encoder: Vec<DenseLayer> = widths.windows(2).map(|w| layer(w[0], w[1])).collect();
    let decoder = vec![layer(n, d)];
    ModelFile {
        header: ModelHeader {
            unmix_version: "test".into(),
            channels: m,
            sample_rate_hz: 8000,
            sources: n,
            normaliser,
            training_config: serde_json::Value::Null,
            training_summary: serde_json::Value::Null,
            score_baseline: None,
            picked_channels: None,
            source_gains: None,
        },
        weights: ModelWeights {
            architecture: unmix_format::Architecture::Mlp,
            activation: Activation::Tanh,
            encoder,
            decoder,
            posterior_log_var: vec![-3.0; n],
            prior: GmmParams { components: 1, logits: vec![0.0; n], means: vec![0.0; n], log_vars: vec![0.0; n] },
        },
    }
}
