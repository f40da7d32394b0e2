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
