//! A post-nonlinear model file in the engine: every standardised channel through its
//! curve, then the one layer, on every kernel; its decoder (the layer's inverse, then the
//! curves' inverses) reconstructs every frame.

#[path = "support/model.rs"]
mod support;

use support::post_nonlinear_model;
use unmix_infer::{Kernel, Separator};

#[test]
fn curves_then_the_layer_on_every_kernel_and_an_exact_reconstruction() {
    let m = 4;
    let model = post_nonlinear_model(m);
    let normaliser = &model.header.normaliser;
    let layer = &model.weights.encoder[0];
    let frames = 700;
    let input: Vec<f32> = (0..frames * m).map(|i| 3.0 * (i as f32 * 0.37).sin() * (1 + i % m) as f32).collect();
    let mut expected = vec![0.0f32; frames * m];
    for (frame, out) in input.chunks_exact(m).zip(expected.chunks_exact_mut(m)) {
        let y: Vec<f32> = (0..m)
            .map(|c| model.weights.sensor_curves[c].apply((frame[c] - normaliser.mean[c]) / normaliser.scale[c]))
            .collect();
        for (o, v) in out.iter_mut().enumerate() {
            *v = (0..m).map(|i| layer.weight[i * m + o] * y[i]).sum();
        }
    }
    for kernel in Kernel::available() {
        let mut separator = Separator::with_kernel(&model, kernel).unwrap();
        let mut sources = vec![0.0f32; frames * m];
        let (mut log_prior, mut error) = (vec![0.0f32; frames], vec![0.0f32; frames]);
        separator.process_scored(&input, &mut sources, &mut log_prior, &mut error).unwrap();
        for (got, want) in sources.iter().zip(&expected) {
            // The tile unit cuts each input into three bf16 parts: float accuracy.
            assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{}: {got} vs {want}", kernel.name());
        }
        assert!(
            error.iter().all(|&e| e < 1e-8),
            "{}: reconstruction error up to {:?}",
            kernel.name(),
            error.iter().copied().fold(0.0f32, f32::max)
        );
        assert!(log_prior.iter().all(|v| v.is_finite()));
    }
}

/// The residual encoder on the curves (`unmix_likelihood::residual`): after the curves a
/// tanh layer and the dense layer, the linear path carried through `m` tanh units in their
/// linear range (inputs scaled by 10⁻⁴, outputs by 10⁴). Every kernel keeps that path and
/// the hidden units to float accuracy, the tile unit included.
#[test]
fn curves_then_a_hidden_layer_on_every_kernel() {
    use unmix_format::DenseLayer;
    let (m, h) = (4, 5);
    let mut model = post_nonlinear_model(m);
    let normaliser = model.header.normaliser.clone();
    let linear = model.weights.encoder[0].clone();
    let skip = 1e-4f32;
    let w1 = |q: usize, c: usize| ((q * 7 + c * 3) % 11) as f32 / 11.0 - 0.45;
    let b1 = |q: usize| 0.2 * q as f32 - 0.4;
    let w2 = |o: usize, q: usize| ((o * 5 + q * 2) % 9) as f32 / 30.0 - 0.12;
    // `[inputs, outputs]` layout: the weight of input i at output o is at `i * outputs + o`.
    let mut hidden = DenseLayer { inputs: m, outputs: h + m, weight: vec![0.0; m * (h + m)], bias: vec![0.0; h + m] };
    for c in 0..m {
        for q in 0..h {
            hidden.weight[c * (h + m) + q] = w1(q, c);
        }
        hidden.weight[c * (h + m) + h + c] = skip;
    }
    (0..h).for_each(|q| hidden.bias[q] = b1(q));
    let mut out = DenseLayer { inputs: h + m, outputs: m, weight: vec![0.0; (h + m) * m], bias: vec![0.1; m] };
    for o in 0..m {
        for q in 0..h {
            out.weight[q * m + o] = w2(o, q);
        }
        for c in 0..m {
            out.weight[(h + c) * m + o] = linear.weight[c * m + o] / skip;
        }
    }
    model.weights.encoder = vec![hidden, out];
    model.check().unwrap();
    let frames = 700;
    let input: Vec<f32> = (0..frames * m).map(|i| 3.0 * (i as f32 * 0.37).sin() * (1 + i % m) as f32).collect();
    let mut expected = vec![0.0f64; frames * m];
    for (frame, out) in input.chunks_exact(m).zip(expected.chunks_exact_mut(m)) {
        let y: Vec<f64> = (0..m)
            .map(|c| {
                f64::from(model.weights.sensor_curves[c].apply((frame[c] - normaliser.mean[c]) / normaliser.scale[c]))
            })
            .collect();
        let t: Vec<f64> = (0..h)
            .map(|q| (f64::from(b1(q)) + (0..m).map(|c| f64::from(w1(q, c)) * y[c]).sum::<f64>()).tanh())
            .collect();
        for (o, v) in out.iter_mut().enumerate() {
            *v = 0.1
                + (0..m).map(|c| f64::from(linear.weight[c * m + o]) * y[c]).sum::<f64>()
                + (0..h).map(|q| f64::from(w2(o, q)) * t[q]).sum::<f64>();
        }
    }
    for kernel in Kernel::available() {
        let mut separator = Separator::with_kernel(&model, kernel).unwrap();
        let mut sources = vec![0.0f32; frames * m];
        separator.process(&input, &mut sources).unwrap();
        for (got, want) in sources.iter().zip(&expected) {
            let got = f64::from(*got);
            assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{}: {got} vs {want}", kernel.name());
        }
    }
}
