//! Demixing models fitted by their exact likelihood, in plain `f64`.
//!
//! Where a model's encoder is invertible, the density of a frame follows from the change
//! of variables, `log p(x) = Σ_j log p_j(s_j) + log|det ∂s/∂x|`, with `p_j` each source's
//! own 1-D Gaussian mixture (PDGMM's prior). That likelihood is what these models are
//! fitted by, and what a held-out set of frames judges them by, so that models of
//! different shapes compare on one scale.
//!
//! - [`chain`]: the saturating sensor chain `s = W1 atanh(W2 atanh(x) / ρ)` and the linear
//!   model `s = W x̃` it is weighed against.
//! - [`linear`]: the linear model on whitened frames with a GMM per source, fitted to its
//!   optimum by quasi-Newton steps: the model of an instantaneous mixture.
//! - [`postnonlinear`]: a monotone curve per channel in front of the linear model: the
//!   model of sensors that each compress, expand or clip in their own way.
//! - [`temporal`]: the linear model with an autoregressive prior per source, its
//!   innovations the source's mixture: sources told apart by their spectra (a
//!   structure's modes).
//! - [`residual`]: PDGMM's encoder with a hidden tanh layer beside a linear path, started at
//!   the linear model and fitted in its noiseless limit: the model of sensors that bend
//!   between two mixings.
//! - [`encoder`]: a trained PDGMM-VAE's encoder read as a change of variables, so that it
//!   is judged on the same scale.
//!
//! Not burn: these models have a few dozen parameters, so burn's cost per operation would
//! dominate every step, and `log|det W|` and the max-scale are awkward there. The
//! vectorised `exp` and `ln` come from `unmix-vecmath`, the block-wise mixture from
//! `unmix-dsp`.

pub mod chain;
pub mod encoder;
mod error;
pub mod lbfgs;
pub mod linear;
mod parallel;
pub mod postnonlinear;
pub mod residual;
pub mod temporal;

pub use error::{Error, Result};
// The block-wise mixture and the lane sums every model's pass runs on.
pub(crate) use unmix_dsp::gmm::{BLOCK, MixtureBlock};
pub(crate) use unmix_dsp::linalg::{dot, sum};

/// `ln 2π`, of every Gaussian log-density here.
pub(crate) const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// `y = M x` as a [`unmix_format::DenseLayer`] (burn's `[inputs, outputs]` layout, no bias),
/// for `M` row-major `n × n`: how the models here are written into a model file.
pub(crate) fn dense(m: &[f64], n: usize) -> unmix_format::DenseLayer {
    let weight = (0..n * n).map(|idx| m[(idx % n) * n + idx / n] as f32).collect();
    unmix_format::DenseLayer { inputs: n, outputs: n, weight, bias: vec![0.0; n] }
}
