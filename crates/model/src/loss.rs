//! The PDGMM-VAE training objective (paper eq. 39, Algorithm 1).

use burn::tensor::Tensor;

use crate::prior::{LN_2PI, LatentPrior};
use crate::PdgmmVae;

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
    let log_q = ((z.clone() - mu.clone()).square() * (-0.5) * (-log_var.clone()).exp() - log_var * 0.5 - 0.5 * LN_2PI).sum();
    let log_p = model.prior.log_density(z).sum();
    let kl = (log_q - log_p) * norm;
    let device = kl.device();
    let auxiliary = if lambda > 0.0 {
        (model.decode(mu) - y).square().sum() * norm
    } else {
        Tensor::<1>::zeros([1], &device)
    };
    let total = reconstruction.clone() + kl.clone() * beta + auxiliary.clone() * lambda;
    LossParts { total, reconstruction, kl, auxiliary }
}
