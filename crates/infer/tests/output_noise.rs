//! A model that knows the sensor noise in its outputs gives, for every output `y`, its
//! source's posterior mean under the prior and that noise, computed here in `f64` from the
//! same model without the noise; its scores stay those of the encoder's outputs.

#[path = "support/model.rs"]
mod support;

use support::denoising_model;
use unmix_infer::Separator;

/// `E[s | y]` with `y = s + e`, `y`'s density the mixture `Σ π_k N(μ_k, v_k)` and
/// `e ~ N(0, σ²)`: each component splits into the source's `N(μ_k, v_k − σ²)` and the noise.
fn posterior_mean(y: f64, logits: &[f32], means: &[f32], log_vars: &[f32], noise: f64) -> f64 {
    let (mut total, mut mean) = (0.0, 0.0);
    for ((&logit, &mu), &log_var) in logits.iter().zip(means).zip(log_vars) {
        let (mu, var) = (f64::from(mu), f64::from(log_var).exp());
        let w = f64::from(logit).exp() / var.sqrt() * (-(y - mu).powi(2) / (2.0 * var)).exp();
        total += w;
        mean += w * (mu + (var - noise).max(0.0) / var * (y - mu));
    }
    mean / total
}

#[test]
fn outputs_are_the_sources_posterior_means_given_the_noise() {
    let (m, n, frames) = (6, 3, 700);
    let model = denoising_model(m, n);
    let mut plain = model.clone();
    plain.header.output_noise = None;
    let input: Vec<f32> = (0..frames * m).map(|i| 2.0 * (i as f32 * 0.0131).sin() + (i % 7) as f32 * 0.1).collect();
    let (mut y, mut s) = (vec![0.0f32; frames * n], vec![0.0f32; frames * n]);
    Separator::new(&plain).process(&input, &mut y).unwrap();
    let mut separator = Separator::new(&model);
    separator.process(&input, &mut s).unwrap();
    let (prior, noise) = (&model.weights.prior, model.header.output_noise.as_ref().unwrap());
    let k = prior.components;
    let mut moved = 0.0f64;
    for (t, (y, s)) in y.chunks_exact(n).zip(s.chunks_exact(n)).enumerate() {
        for j in 0..n {
            let rows = j * k..(j + 1) * k;
            let want = posterior_mean(
                f64::from(y[j]),
                &prior.logits[rows.clone()],
                &prior.means[rows.clone()],
                &prior.log_vars[rows],
                f64::from(noise[j]),
            );
            assert!(
                (f64::from(s[j]) - want).abs() < 1e-4 * (1.0 + want.abs()),
                "frame {t} source {j}: {} vs {want}",
                s[j]
            );
            moved = moved.max((f64::from(s[j]) - f64::from(y[j])).abs());
        }
    }
    assert!(moved > 0.1, "the noise moved no output by more than {moved}");

    // The scores are of the encoder's outputs, the scored sources the posterior means.
    let (mut lp, mut re, mut lp_plain, mut re_plain) =
        (vec![0.0; frames], vec![0.0; frames], vec![0.0; frames], vec![0.0; frames]);
    let mut scored = vec![0.0f32; frames * n];
    separator.process_scored(&input, &mut scored, &mut lp, &mut re).unwrap();
    Separator::new(&plain).process_scored(&input, &mut y, &mut lp_plain, &mut re_plain).unwrap();
    assert_eq!(scored, s);
    assert_eq!((lp, re), (lp_plain, re_plain));
}

/// No noise, no change; and a model whose outputs are not affine in its input says so.
#[test]
fn zero_noise_changes_nothing() {
    let (m, n, frames) = (6, 3, 300);
    let mut model = denoising_model(m, n);
    let input: Vec<f32> = (0..frames * m).map(|i| (i as f32 * 0.029).cos()).collect();
    let mut denoised = vec![0.0f32; frames * n];
    assert!(unmix_infer::affine_map(&model).is_none());
    model.header.output_noise = Some(vec![0.0; n]);
    Separator::new(&model).process(&input, &mut denoised).unwrap();
    model.header.output_noise = None;
    let mut plain = vec![0.0f32; frames * n];
    Separator::new(&model).process(&input, &mut plain).unwrap();
    assert!(unmix_infer::affine_map(&model).is_some());
    for (a, b) in denoised.iter().zip(&plain) {
        assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()), "{a} vs {b}");
    }
}
