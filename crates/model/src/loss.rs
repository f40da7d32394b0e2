//! The PDGMM-VAE training objective (paper eq. 39, Algorithm 1).

use burn::tensor::Tensor;

use crate::PdgmmVae;
use crate::prior::{LN_2PI, LatentPrior};

/// The loss and its parts, each a one-element tensor on the model's device.
#[derive(Debug, Clone)]
pub struct LossParts {
    /// `L_rec + β · kl + λ · auxiliary`: what is minimised.
    pub total: Tensor<1>,
    /// `L_rec = Σ‖ŷ_t − y_t‖² / (T m)` with `ŷ = g(z̃)`.
    pub reconstruction: Tensor<1>,
    /// `(log q(z̃|y) − log p(z̃)) / (T m)`, the single-sample KL estimate (unweighted).
    pub kl: Tensor<1>,
    /// `Σ‖g(μ_t) − y_t‖² / (T m)`, the λ term's reconstruction of the noiseless mean
    /// (computed only when `λ > 0`; zero otherwise).
    pub auxiliary: Tensor<1>,
}

/// Evaluates the loss on one minibatch.
///
/// `eps` is the reparameterisation noise `ε ~ N(0, I)`, drawn by the caller so that runs
/// are reproducible whatever the backend's own random generator does.
///
/// # Shapes
/// - `y`: `[T, m]` normalised frames
/// - `eps`: `[T, n]`
pub fn loss(model: &PdgmmVae, y: Tensor<2>, eps: Tensor<2>, beta: f64, lambda: f64) -> LossParts {
    let [frames, inputs] = y.dims();
    let norm = 1.0 / (frames * inputs) as f64;
    let mu = model.encode(y.clone()); // [T, n]
    let log_var = model.posterior_log_var().unsqueeze_dim::<2>(0); // [1, n]
    let sigma = (log_var.clone() * 0.5).exp();
    let z = mu.clone() + sigma * eps; // [T, n]
    let y_hat = model.decode(z.clone()); // [T, m]
    let reconstruction = (y_hat - y.clone()).square().sum() * norm;
    // log N(z | μ, σ²), written out as in Algorithm 1 rather than simplified to −½ε², so
    // that gradients flow through z and μ exactly as the paper's objective defines them.
    let log_q =
        ((z.clone() - mu.clone()).square() * (-0.5) * (-log_var.clone()).exp() - log_var * 0.5 - 0.5 * LN_2PI).sum();
    let log_p = model.prior.log_density(z).sum();
    let kl = (log_q - log_p) * norm;
    let device = kl.device();
    let auxiliary =
        if lambda > 0.0 { (model.decode(mu) - y).square().sum() * norm } else { Tensor::<1>::zeros([1], &device) };
    let total = reconstruction.clone() + kl.clone() * beta + auxiliary.clone() * lambda;
    LossParts { total, reconstruction, kl, auxiliary }
}

#[cfg(test)]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};
    use unmix_format::{Activation, DenseLayer, GmmParams, ModelWeights};

    use super::*;

    fn device() -> Device {
        crate::Backend::default_compiled().unwrap().device().unwrap()
    }

    fn tensor2(v: &[f32], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), [rows, cols]), device)
    }

    fn scalar(t: Tensor<1>) -> f64 {
        f64::from(t.into_scalar::<f32>())
    }

    /// A linear 2 → 2 model with known weights and a 2-component prior per source.
    fn linear_model(prior: GmmParams, omega: [f32; 2], device: &Device) -> PdgmmVae {
        let w = ModelWeights {
            architecture: unmix_format::Architecture::Mlp,
            activation: Activation::Tanh,
            encoder: vec![DenseLayer {
                inputs: 2,
                outputs: 2,
                weight: vec![0.5, -0.2, 0.3, 0.8],
                bias: vec![0.1, -0.1],
            }],
            decoder: vec![DenseLayer {
                inputs: 2,
                outputs: 2,
                weight: vec![1.2, 0.1, -0.4, 0.9],
                bias: vec![0.0, 0.05],
            }],
            posterior_log_var: omega.to_vec(),
            prior,
            sensor_curves: Vec::new(),
        };
        PdgmmVae::from_weights(&w, device).unwrap()
    }

    fn log_normal(x: f64, mean: f64, var: f64) -> f64 {
        -0.5 * (2.0 * std::f64::consts::PI * var).ln() - 0.5 * (x - mean).powi(2) / var
    }

    #[test]
    fn loss_matches_a_hand_computation() {
        let device = device();
        let prior = GmmParams {
            components: 2,
            logits: vec![0.3, -0.2, 0.0, 1.0],
            means: vec![-1.0, 1.5, 0.2, -0.7],
            log_vars: vec![-0.5, 0.2, 0.1, -1.0],
        };
        let omega = [-2.0f32, -1.0];
        let model = linear_model(prior.clone(), omega, &device);
        let y = [0.4f32, -1.1, 2.0, 0.3, -0.6, 0.9];
        let eps = [0.5f32, -1.2, 0.1, 0.7, -0.3, 2.0];
        let (beta, lambda) = (0.37, 0.5);
        let parts = loss(&model, tensor2(&y, 3, 2, &device), tensor2(&eps, 3, 2, &device), beta, lambda);

        // The same objective written out in f64.
        let enc = |y: &[f64]| [0.5 * y[0] + 0.3 * y[1] + 0.1, -0.2 * y[0] + 0.8 * y[1] - 0.1];
        let dec = |z: &[f64]| [1.2 * z[0] - 0.4 * z[1], 0.1 * z[0] + 0.9 * z[1] + 0.05];
        let (mut rec, mut aux, mut log_q, mut log_p) = (0.0, 0.0, 0.0, 0.0);
        for t in 0..3 {
            let yt = [f64::from(y[2 * t]), f64::from(y[2 * t + 1])];
            let mu = enc(&yt);
            let mut z = [0.0; 2];
            for j in 0..2 {
                let var = f64::from(omega[j]).exp();
                z[j] = mu[j] + var.sqrt() * f64::from(eps[2 * t + j]);
                log_q += log_normal(z[j], mu[j], var);
                let logits = [f64::from(prior.logits[2 * j]), f64::from(prior.logits[2 * j + 1])];
                let norm = (logits[0].exp() + logits[1].exp()).ln();
                let p: f64 = (0..2)
                    .map(|k| {
                        (logits[k] - norm
                            + log_normal(
                                z[j],
                                f64::from(prior.means[2 * j + k]),
                                f64::from(prior.log_vars[2 * j + k]).exp(),
                            ))
                        .exp()
                    })
                    .sum();
                log_p += p.ln();
            }
            let (yh, ym) = (dec(&z), dec(&mu));
            rec += (yh[0] - yt[0]).powi(2) + (yh[1] - yt[1]).powi(2);
            aux += (ym[0] - yt[0]).powi(2) + (ym[1] - yt[1]).powi(2);
        }
        let tm = 6.0;
        let want_kl = (log_q - log_p) / tm;
        let want_total = rec / tm + beta * want_kl + lambda * aux / tm;
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * (1.0 + b.abs());
        assert!(close(scalar(parts.reconstruction), rec / tm));
        let kl = scalar(parts.kl);
        assert!(close(kl, want_kl), "kl {kl} vs {want_kl}");
        assert!(close(scalar(parts.auxiliary), aux / tm));
        assert!(close(scalar(parts.total), want_total));
    }

    /// Paper Prop. 3.9: with K = 1, weight 1, mean 0, variance 1 and β = 1 the loss is the
    /// standard VAE's single-sample objective with a shared posterior variance.
    #[test]
    fn degenerate_prior_gives_the_standard_vae_loss() {
        let device = device();
        let prior =
            GmmParams { components: 1, logits: vec![0.0, 0.0], means: vec![0.0, 0.0], log_vars: vec![0.0, 0.0] };
        let omega = [-1.5f32, -0.5];
        let model = linear_model(prior, omega, &device);
        let frames = 4000;
        let y: Vec<f32> = (0..frames * 2).map(|i| ((i * 7919) % 201) as f32 / 100.0 - 1.0).collect();
        // Deterministic standard-normal-like noise: a fixed pseudo-random sequence.
        let eps: Vec<f32> = (0..frames * 2)
            .map(|i| {
                let u1 = ((i * 104_729 + 17) % 9973) as f64 / 9973.0 + 1e-6;
                let u2 = ((i * 130_363 + 5) % 7919) as f64 / 7919.0;
                ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
            })
            .collect();
        let parts = loss(&model, tensor2(&y, frames, 2, &device), tensor2(&eps, frames, 2, &device), 1.0, 0.0);
        let mu = model.encode(tensor2(&y, frames, 2, &device));
        let mu: Vec<f32> = mu.into_data().convert::<f32>().try_to_vec().unwrap();
        // Single-sample VAE objective: (log N(z|μ,σ²) − log N(z|0,1)) summed, over T m.
        let mut single = 0.0;
        let mut analytic = 0.0;
        for (i, (&m, &e)) in mu.iter().zip(&eps).enumerate() {
            let var = f64::from(omega[i % 2]).exp();
            let z = f64::from(m) + var.sqrt() * f64::from(e);
            single += log_normal(z, f64::from(m), var) - log_normal(z, 0.0, 1.0);
            analytic += 0.5 * (f64::from(m).powi(2) + var - 1.0 - var.ln());
        }
        let tm = (frames * 2) as f64;
        let kl = scalar(parts.kl);
        assert!((kl - single / tm).abs() < 1e-4 * (1.0 + kl.abs()), "{kl} vs {}", single / tm);
        // And its expectation is the closed-form Gaussian KL (Monte Carlo over 8000 draws).
        assert!((kl - analytic / tm).abs() < 0.02, "{kl} vs analytic {}", analytic / tm);
    }

    /// Paper eq. 79–80: d/dz log p_j(z) = Σ_k γ_jk(z) (m_jk − z) / v_jk, with γ the
    /// posterior responsibilities; autodiff must agree with it.
    #[test]
    fn log_prior_gradient_matches_the_closed_form() {
        let device = device().autodiff();
        let prior = GmmParams {
            components: 3,
            logits: vec![0.2, -0.5, 0.9, 0.0, 0.4, -1.0],
            means: vec![-1.2, 0.3, 2.0, -0.4, 0.8, 1.7],
            log_vars: vec![-0.3, 0.5, -1.2, 0.0, -0.7, 0.3],
        };
        let gmm = crate::GmmPrior::from_params(&prior, 2, &device);
        let zs = [-2.0f32, 0.1, 0.5, 1.9, 3.0, -0.7];
        let z = tensor2(&zs, 3, 2, &device).require_grad();
        let grads = gmm.log_density(z.clone()).sum().backward();
        let g: Vec<f32> = z.grad(&grads).unwrap().into_data().convert::<f32>().try_to_vec().unwrap();
        for (i, &zv) in zs.iter().enumerate() {
            let j = i % 2;
            let z = f64::from(zv);
            let w: Vec<f64> = (0..3).map(|k| f64::from(prior.logits[3 * j + k]).exp()).collect();
            let wsum: f64 = w.iter().sum();
            let comp: Vec<(f64, f64, f64)> = (0..3)
                .map(|k| {
                    let (m, v) = (f64::from(prior.means[3 * j + k]), f64::from(prior.log_vars[3 * j + k]).exp());
                    (w[k] / wsum * log_normal(z, m, v).exp(), m, v)
                })
                .collect();
            let total: f64 = comp.iter().map(|c| c.0).sum();
            let want: f64 = comp.iter().map(|&(p, m, v)| p / total * (m - z) / v).sum();
            assert!((f64::from(g[i]) - want).abs() < 1e-4 * (1.0 + want.abs()), "z={z}: {} vs {want}", g[i]);
        }
    }

    /// Paper Prop. 3.6: the KL term's gradient pulls a posterior mean toward the dominant
    /// component — a gradient step on −log p moves z closer to the nearest heavy mean.
    #[test]
    fn kl_gradient_pulls_toward_the_dominant_component() {
        let device = device().autodiff();
        let prior =
            GmmParams { components: 2, logits: vec![2.0, -2.0], means: vec![1.0, -3.0], log_vars: vec![-1.0, -1.0] };
        let gmm = crate::GmmPrior::from_params(&prior, 1, &device);
        for z0 in [0.2f32, 1.8] {
            let z = tensor2(&[z0], 1, 1, &device).require_grad();
            let grads = (-gmm.log_density(z.clone()).sum()).backward();
            let g = z.grad(&grads).unwrap().into_data().convert::<f32>().try_to_vec::<f32>().unwrap()[0];
            let stepped = z0 - 0.01 * g;
            assert!((stepped - 1.0).abs() < (z0 - 1.0).abs(), "z0={z0} moved to {stepped}");
        }
    }
}
