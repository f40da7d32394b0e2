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
            temporal_prior: None,
            output_noise: None,
        },
        weights: ModelWeights {
            architecture: unmix_format::Architecture::Mlp,
            activation: Activation::Tanh,
            encoder,
            decoder,
            posterior_log_var: vec![-3.0; n],
            prior: GmmParams { components: 1, logits: vec![0.0; n], means: vec![0.0; n], log_vars: vec![0.0; n] },
            sensor_curves: Vec::new(),
        },
    }
}

/// A post-nonlinear model of `m` channels: each standardised channel through its own
/// compressive curve (slopes falling away from 0, different per channel), then a dense
/// `m × m` layer; the decoder that layer's exact inverse, so reconstruction is exact.
#[allow(dead_code)]
pub fn post_nonlinear_model(m: usize) -> ModelFile {
    let mut file = model(m, m, &[], false);
    let w: Vec<f64> =
        (0..m * m).map(|i| if i % (m + 1) == 0 { 1.0 } else { ((i * 13 % 7) as f64 - 3.0) / 10.0 }).collect();
    let inverse = invert(&w, m);
    // burn's `[inputs, outputs]` layout: the weight of input i at output o is `M[o][i]`.
    let layer = |matrix: &[f64]| DenseLayer {
        inputs: m,
        outputs: m,
        weight: (0..m * m).map(|idx| matrix[(idx % m) * m + idx / m] as f32).collect(),
        bias: vec![0.0; m],
    };
    file.weights.architecture = unmix_format::Architecture::PostNonlinear;
    file.weights.encoder = vec![layer(&w)];
    file.weights.decoder = vec![layer(&inverse)];
    file.weights.sensor_curves = (0..m)
        .map(|c| {
            let knots: Vec<f32> = (-4..=4).map(|k| k as f32 * 0.75).collect();
            let gain = 1.0 + 0.5 * c as f32;
            let values = knots.iter().map(|&k| k + 0.1 * gain * k * k * k).collect();
            unmix_format::MonotoneCurve { knots, values }
        })
        .collect();
    file.check().unwrap();
    file
}

/// `M⁻¹` by Gauss–Jordan elimination (the test matrices are diagonally dominant).
fn invert(matrix: &[f64], n: usize) -> Vec<f64> {
    let mut a = matrix.to_vec();
    let mut inv: Vec<f64> = (0..n * n).map(|i| if i % (n + 1) == 0 { 1.0 } else { 0.0 }).collect();
    for c in 0..n {
        let p = a[c * n + c];
        for j in 0..n {
            a[c * n + j] /= p;
            inv[c * n + j] /= p;
        }
        for r in (0..n).filter(|&r| r != c) {
            let f = a[r * n + c];
            for j in 0..n {
                a[r * n + j] -= f * a[c * n + j];
                inv[r * n + j] -= f * inv[c * n + j];
            }
        }
    }
    inv
}

/// The linear model `m → n` (whitened, one layer) with a three-component prior per source
/// and sensor noise in its outputs ([`unmix_format::ModelHeader::output_noise`]).
#[allow(dead_code)]
pub fn denoising_model(m: usize, n: usize) -> ModelFile {
    let mut file = model(m, n, &[], true);
    let k = 3;
    file.weights.prior = GmmParams {
        components: k,
        logits: (0..n * k).map(|i| (i % k) as f32 * 0.3).collect(),
        means: (0..n * k).map(|i| ((i % k) as f32 - 1.0) * (1.0 + 0.2 * (i / k) as f32)).collect(),
        log_vars: (0..n * k).map(|i| -1.5 + 0.4 * (i % k) as f32).collect(),
    };
    file.header.output_noise = Some((0..n).map(|j| 0.05 + 0.1 * j as f32).collect());
    file.check().unwrap();
    file
}
