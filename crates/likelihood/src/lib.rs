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
//! - [`encoder`]: a trained PDGMM-VAE's encoder read as a change of variables, so that it
//!   is judged on the same scale.
//!
//! Not burn: these models have a few dozen parameters, so burn's cost per operation would
//! dominate every step, and `log|det W|` and the max-scale are awkward there. The
//! vectorised `exp` and `ln` come from `unmix-vecmath`.

pub mod chain;
pub mod encoder;
mod error;
pub mod lbfgs;
pub mod linear;
mod parallel;
pub mod postnonlinear;
pub mod temporal;

pub use error::{Error, Result};

/// `ln 2π`, of every Gaussian log-density here.
pub(crate) const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// `y = M x` as a [`unmix_format::DenseLayer`] (burn's `[inputs, outputs]` layout, no bias),
/// for `M` row-major `n × n`: how the models here are written into a model file.
pub(crate) fn dense(m: &[f64], n: usize) -> unmix_format::DenseLayer {
    let weight = (0..n * n).map(|idx| m[(idx % n) * n + idx / n] as f32).collect();
    unmix_format::DenseLayer { inputs: n, outputs: n, weight, bias: vec![0.0; n] }
}

/// Lanes of [`sum`] and [`dot`]: independent partial sums, so that they vectorise (Rust keeps
/// a single running sum in order, which cannot).
const LANES: usize = 8;

/// `Σ a`, in [`LANES`] partial sums.
#[inline(always)]
pub(crate) fn sum(a: &[f64]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let chunks = a.chunks_exact(LANES);
    let rest: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..LANES {
            lanes[l] += c[l];
        }
    }
    lanes.iter().sum::<f64>() + rest
}

/// `Σ a b`, in [`LANES`] partial sums.
#[inline(always)]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut lanes = [0.0f64; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let rest: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f64>() + rest
}

/// Frames a block at a time in the models' passes, each source's values laid out as a
/// column, so that every loop over a block runs down a column: the compiler vectorises
/// them (inlined into [`unmix_vecmath::vectorised`], as wide as the processor allows), and
/// a source's component exponentials are one vectorised call.
pub(crate) const BLOCK: usize = 512;

/// One source's Gaussian mixture over a block of values: each component's weighted
/// density relative to the largest, and their total. The exponentials are single
/// precision: they weigh responsibilities, whose error then stays near 10⁻⁷; every sum is
/// double.
pub(crate) struct MixtureBlock {
    /// `log π_k − ½ log(2π v_k) − (x − μ_k)² / 2v_k`, `[component][frame]`.
    arg: Vec<f64>,
    /// The largest of them per frame.
    top: Vec<f64>,
    /// `exp(arg − top)`, `[component][frame]`.
    pub(crate) shifted: Vec<f32>,
    /// `Σ_k shifted`, in `[1, K]` (the largest term is `exp(0)`).
    pub(crate) total: Vec<f64>,
    log_total: Vec<f64>,
}

impl MixtureBlock {
    pub(crate) fn new(components: usize) -> Self {
        Self {
            arg: vec![0.0; components * BLOCK],
            top: vec![0.0; BLOCK],
            shifted: vec![0.0; components * BLOCK],
            total: vec![0.0; BLOCK],
            log_total: vec![0.0; BLOCK],
        }
    }

    /// Weighs the values `x` (at most [`BLOCK`]) under the mixture of `log_terms`
    /// (`log π − ½ log(2π v)` per component), `means` and `precisions`, and returns
    /// `Σ log p(x)` over them.
    #[inline(always)]
    pub(crate) fn weigh(&mut self, x: &[f64], log_terms: &[f64], means: &[f64], precisions: &[f64]) -> f64 {
        let (len, k) = (x.len(), log_terms.len());
        let top = &mut self.top[..len];
        top.fill(f64::NEG_INFINITY);
        for c in 0..k {
            let (term, mean, half_prec) = (log_terms[c], means[c], 0.5 * precisions[c]);
            let a = &mut self.arg[c * BLOCK..c * BLOCK + len];
            for (a, &x) in a.iter_mut().zip(x) {
                let d = x - mean;
                *a = term - d * d * half_prec;
            }
            for (t, &a) in top.iter_mut().zip(a.iter()) {
                *t = if a > *t { a } else { *t };
            }
        }
        let total = &mut self.total[..len];
        total.fill(0.0);
        for c in 0..k {
            let e = &mut self.shifted[c * BLOCK..c * BLOCK + len];
            for ((e, &a), &t) in e.iter_mut().zip(&self.arg[c * BLOCK..c * BLOCK + len]).zip(top.iter()) {
                *e = (a - t) as f32;
            }
            unmix_vecmath::exp_non_positive_in_place(e);
            for (sum, &e) in total.iter_mut().zip(e.iter()) {
                *sum += f64::from(e);
            }
        }
        let log_total = &mut self.log_total[..len];
        log_total.copy_from_slice(total);
        unmix_vecmath::ln_in_place(log_total);
        sum(top) + sum(log_total)
    }
}
