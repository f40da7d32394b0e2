//! PDGMM's encoder with one hidden tanh layer beside a linear path, read in its noiseless
//! limit and started at the linear model:
//!
//! `s = μ(z) = L z + W2 tanh(W1 z + b1) + b2`
//!
//! on the whitened frames `z`, with each source's own Gaussian mixture as its prior, fitted
//! by the change-of-variables likelihood `Σ_j log p_j(μ_j) + log|det ∂μ/∂z|` (the density
//! [`crate::encoder`] reads a trained VAE's encoder by).
//!
//! Why this shape: a VAE's encoder trained from scratch has to find the linear solution
//! through its hidden layer, and on the mixtures measured here it ends short of the linear
//! model. Here `L` starts as the linear model's unmixing, its priors as the linear model's,
//! and `W2` at zero, so the fit starts *exactly* at the linear model's likelihood and the
//! hidden layer only adds what the held-out frames reward: the fit is early-stopped on them
//! and keeps its best point, so a recording with nothing to add gives the linear model back.
//! On sensors that bend between two mixings (`x = A2 g(A1 s)`), which neither the chain nor
//! the per-channel curves describe, it gains 0.3–0.7 nats per frame (`docs/results.md`).
//!
//! `log|det J|`, `J = L + W2 diag(1 − tanh²(a)) W1`, and its gradient are in closed form
//! (`∂ log|det J| / ∂J = J⁻ᵀ`); every weight and every prior moves together by L-BFGS.
//! The formula is a density where `μ` is one-to-one. The start, the linear model, is
//! one-to-one everywhere, and a frame where `J` is singular is outside the fit's domain;
//! a fold (`det J` changing sign between frames, or across one step) is not ruled out, as
//! for the VAE's encoder read this way.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use unmix_core::CancelToken;
use unmix_dsp::linalg::{Matrix, log_det_and_inverse};
use unmix_format::{Activation, Architecture, DenseLayer, ModelWeights};

use crate::lbfgs::{Lbfgs, Step};
use crate::linear::{LinearFit, Mixture, gmm_params, softmax};
use crate::{Error, LN_2PI, Result, dense};

/// The variance floor of every prior component, as the other exact-likelihood fits have.
const VARIANCE_FLOOR: f64 = 1e-4;

/// Settings of [`fit_residual`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResidualConfig {
    /// Hidden tanh units beside the linear path.
    pub hidden: usize,
    /// L-BFGS iterations at most.
    pub max_iterations: usize,
    /// Iterations without a better held-out NLL (by [`ResidualConfig::min_gain`]) before
    /// the fit stops and keeps its best point.
    pub patience: usize,
    /// Nats per held-out frame that count as better.
    pub min_gain: f64,
    /// Every `validation_every`-th frame is held out, as the linear model holds them out
    /// (the held-out NLL is what stops the fit, so it must hold some out: at least 2).
    pub validation_every: usize,
    /// Seed of the hidden layer's random start.
    pub seed: u64,
}

impl Default for ResidualConfig {
    /// 16 hidden units (on the five files `docs/results.md` compares, 8 and 32 each
    /// separated worse on three, though 32 always scored better); at most 400 iterations,
    /// stopped after 30 without a gain of 10⁻⁵ nats per frame; every 5th frame held out, as
    /// the linear model holds them out.
    fn default() -> Self {
        Self { hidden: 16, max_iterations: 400, patience: 30, min_gain: 1e-5, validation_every: 5, seed: 0 }
    }
}

impl ResidualConfig {
    /// Checks every value once.
    pub fn check(&self) -> Result<()> {
        if self.hidden == 0 || self.max_iterations == 0 || self.patience == 0 {
            return Err(Error::Config("the residual encoder needs hidden units, iterations and patience".into()));
        }
        if self.validation_every < 2 {
            return Err(Error::Config(format!(
                "the residual encoder is stopped by held-out frames: every 2nd frame or fewer, not every {}",
                self.validation_every
            )));
        }
        if !(self.min_gain.is_finite() && self.min_gain >= 0.0) {
            return Err(Error::Config(format!("a gain of {} nats is not a threshold", self.min_gain)));
        }
        Ok(())
    }
}

/// Where each part of the flat parameter vector the fit moves lies.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Layout {
    n: usize,
    h: usize,
    k: usize,
}

impl Layout {
    fn l(&self) -> usize {
        0
    }
    fn w1(&self) -> usize {
        self.n * self.n
    }
    fn b1(&self) -> usize {
        self.w1() + self.h * self.n
    }
    fn w2(&self) -> usize {
        self.b1() + self.h
    }
    fn b2(&self) -> usize {
        self.w2() + self.n * self.h
    }
    /// Source `j`'s logits, then its means, then its log-variances (less the floor).
    fn prior(&self, j: usize) -> usize {
        self.b2() + self.n + j * 3 * self.k
    }
    fn len(&self) -> usize {
        self.prior(self.n)
    }
    /// The encoder's weights in the flat parameters `p`.
    fn weights<'a>(&self, p: &'a [f64]) -> Weights<'a> {
        debug_assert_eq!(p.len(), self.len(), "parameters of another layout");
        Weights {
            n: self.n,
            h: self.h,
            l: &p[self.l()..self.w1()],
            w1: &p[self.w1()..self.b1()],
            b1: &p[self.b1()..self.w2()],
            w2: &p[self.w2()..self.b2()],
            b2: &p[self.b2()..self.b2() + self.n],
        }
    }
}

/// The encoder's weights, borrowed from a fit or from the flat parameters the fit moves.
struct Weights<'a> {
    n: usize,
    h: usize,
    l: &'a [f64],
    w1: &'a [f64],
    b1: &'a [f64],
    w2: &'a [f64],
    b2: &'a [f64],
}

impl Weights<'_> {
    /// One frame `z` through the encoder: `tanh(W1 z + b1)` into `hidden`, `μ(z)` into `mu`.
    fn forward(&self, z: &[f64], hidden: &mut [f64], mu: &mut [f64]) {
        let (n, h) = (self.n, self.h);
        for (q, value) in hidden.iter_mut().enumerate() {
            *value = (self.b1[q] + (0..n).map(|c| self.w1[q * n + c] * z[c]).sum::<f64>()).tanh();
        }
        for (i, value) in mu.iter_mut().enumerate() {
            *value = self.b2[i]
                + (0..n).map(|c| self.l[i * n + c] * z[c]).sum::<f64>()
                + (0..h).map(|q| self.w2[i * h + q] * hidden[q]).sum::<f64>();
        }
    }

    /// The flat parameters the fit moves: these weights, then each source's prior as
    /// logits, means and log-variances above the floor.
    fn flatten(&self, priors: &[Mixture]) -> Vec<f64> {
        let mut p = Vec::new();
        for part in [self.l, self.w1, self.b1, self.w2, self.b2] {
            p.extend_from_slice(part);
        }
        for prior in priors {
            p.extend(prior.weights.iter().map(|w| w.max(1e-12).ln()));
            p.extend_from_slice(&prior.means);
            p.extend(prior.variances.iter().map(|v| (v - VARIANCE_FLOOR).max(1e-12).ln()));
        }
        p
    }
}

/// A fitted residual encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResidualFit {
    /// Sources (= whitened dimensions).
    pub sources: usize,
    /// Hidden units.
    pub hidden: usize,
    /// `L`, row-major `n × n`.
    pub linear: Vec<f64>,
    /// `W1`, row-major `hidden × n`.
    pub w1: Vec<f64>,
    /// `b1`, `hidden`.
    pub b1: Vec<f64>,
    /// `W2`, row-major `n × hidden`.
    pub w2: Vec<f64>,
    /// `b2`, `n`.
    pub b2: Vec<f64>,
    /// Each source's density.
    pub priors: Vec<Mixture>,
    /// The held-out NLL at the start: the starting model's (nats per frame of the frames
    /// fitted, the whitened frames when started at the linear model).
    pub start_nll: f64,
    /// Mean NLL per training frame at the point kept.
    pub train_nll: f64,
    /// The same on the held-out frames: the best the fit reached.
    pub validation_nll: f64,
    /// Iterations run.
    pub iterations: usize,
    /// The iteration whose point was kept (0: the start, the linear model itself).
    pub kept_iteration: usize,
}

impl ResidualFit {
    fn layout(&self) -> Layout {
        Layout { n: self.sources, h: self.hidden, k: self.priors.first().map_or(0, |p| p.weights.len()) }
    }

    fn weights(&self) -> Weights<'_> {
        Weights {
            n: self.sources,
            h: self.hidden,
            l: &self.linear,
            w1: &self.w1,
            b1: &self.b1,
            w2: &self.w2,
            b2: &self.b2,
        }
    }

    fn from_parameters(layout: Layout, p: &[f64], start_nll: f64) -> Self {
        let Layout { n, h, k } = layout;
        let part = |at: usize, len: usize| p[at..at + len].to_vec();
        let priors = (0..n)
            .map(|j| {
                let at = layout.prior(j);
                Mixture::from_logits(&p[at..at + k], &p[at + k..at + 2 * k], &p[at + 2 * k..at + 3 * k], VARIANCE_FLOOR)
            })
            .collect();
        Self {
            sources: n,
            hidden: h,
            linear: part(layout.l(), n * n),
            w1: part(layout.w1(), h * n),
            b1: part(layout.b1(), h),
            w2: part(layout.w2(), n * h),
            b2: part(layout.b2(), n),
            priors,
            start_nll,
            train_nll: f64::NAN,
            validation_nll: f64::NAN,
            iterations: 0,
            kept_iteration: 0,
        }
    }

    /// The sources of whitened frames (interleaved, `sources` wide), interleaved.
    pub fn demix(&self, whitened: &[f32]) -> Vec<f64> {
        let (n, weights) = (self.sources, self.weights());
        let mut out = Vec::with_capacity(whitened.len());
        let (mut z, mut hidden, mut mu) = (vec![0.0; n], vec![0.0; self.hidden], vec![0.0; n]);
        for frame in whitened.chunks_exact(n) {
            z.iter_mut().zip(frame).for_each(|(to, &v)| *to = f64::from(v));
            weights.forward(&z, &mut hidden, &mut mu);
            out.extend_from_slice(&mu);
        }
        out
    }

    /// Mean NLL per frame of whitened frames (nats); `None` where the Jacobian is singular
    /// at a frame (the density is not defined there).
    pub fn nll(&self, whitened: &[f32]) -> Option<f64> {
        let frames: Vec<f64> = whitened.iter().map(|&v| f64::from(v)).collect();
        nll(self.layout(), &self.weights().flatten(&self.priors), &frames, None)
    }
}

/// How far the model file's tanh units carrying the linear path scale their inputs down
/// (and their outputs up): `tanh(εy)/ε = y (1 − ε²y²/3 + …)`, so for `|y| < 20` the path is
/// linear to 1.4·10⁻⁶ relative, and the kernels' rational tanh has slope 1 − 8·10⁻⁸ at 0.
const LINEAR_PATH_SCALE: f64 = 1e-4;

impl ResidualFit {
    /// The encoder as model-file layers: a tanh layer of `hidden + sources` units — the
    /// hidden layer's, then the linear path `L` carried by one unit per input in tanh's
    /// linear range ([`LINEAR_PATH_SCALE`]) — and the dense layer summing both paths and
    /// `b2`; with the decoder `L⁻¹ (s − b2)`, the linear path's inverse (exact where the
    /// hidden layer is flat, approximate where it bends: the encoder has no closed-form
    /// inverse). `None` when `L` is singular.
    pub(crate) fn layers(&self) -> Option<(Vec<DenseLayer>, DenseLayer)> {
        let (n, h) = (self.sources, self.hidden);
        let wide = h + n;
        let mut hidden = DenseLayer { inputs: n, outputs: wide, weight: vec![0.0; n * wide], bias: vec![0.0; wide] };
        for c in 0..n {
            for q in 0..h {
                hidden.weight[c * wide + q] = self.w1[q * n + c] as f32;
            }
            hidden.weight[c * wide + h + c] = LINEAR_PATH_SCALE as f32;
        }
        for q in 0..h {
            hidden.bias[q] = self.b1[q] as f32;
        }
        let mut out = DenseLayer { inputs: wide, outputs: n, weight: vec![0.0; wide * n], bias: vec![0.0; n] };
        for o in 0..n {
            for q in 0..h {
                out.weight[q * n + o] = self.w2[o * h + q] as f32;
            }
            for c in 0..n {
                out.weight[(h + c) * n + o] = (self.linear[o * n + c] / LINEAR_PATH_SCALE) as f32;
            }
            out.bias[o] = self.b2[o] as f32;
        }
        let (_, inverse) = log_det_and_inverse(&Matrix { rows: n, cols: n, data: self.linear.clone() })?;
        let mut decoder = dense(&inverse.data, n);
        for (o, bias) in decoder.bias.iter_mut().enumerate() {
            *bias = -(0..n).map(|i| inverse.data[o * n + i] * self.b2[i]).sum::<f64>() as f32;
        }
        Some((vec![hidden, out], decoder))
    }

    /// The encoder started at the linear model as model-file weights on the whitened
    /// frames ([`Architecture::Mlp`], as the linear model is written): its two layers
    /// ([`ResidualFit::layers`]), tanh between them, the decoder the linear path's inverse,
    /// its priors, the posterior log-variance `ln 10⁻⁶`. `None` when the linear path is
    /// singular.
    pub fn export(&self) -> Option<ModelWeights> {
        let (encoder, decoder) = self.layers()?;
        Some(ModelWeights {
            architecture: Architecture::Mlp,
            activation: Activation::Tanh,
            encoder,
            decoder: vec![decoder],
            posterior_log_var: vec![(1e-6f32).ln(); self.sources],
            prior: gmm_params(&self.priors),
            sensor_curves: Vec::new(),
        })
    }
}

/// One source's mixture as an evaluation reads it.
struct Prior<'a> {
    weights: Vec<f64>,
    log_weights: Vec<f64>,
    means: &'a [f64],
    variances: Vec<f64>,
}

/// Mean NLL per frame of `frames` (interleaved, `n` wide) at parameters `p`, and its
/// gradient into `gradient` when given; `None` where a frame's Jacobian is singular or the
/// value is not finite.
fn nll(layout: Layout, p: &[f64], frames: &[f64], mut gradient: Option<&mut [f64]>) -> Option<f64> {
    let Layout { n, h, k } = layout;
    let weights = layout.weights(p);
    let Weights { l, w1, w2, .. } = weights;
    // Each source's mixture, its log-weights and variances once per evaluation.
    let priors: Vec<Prior<'_>> = (0..n)
        .map(|j| {
            let at = layout.prior(j);
            let weights = softmax(&p[at..at + k]);
            let log_weights = weights.iter().map(|w| w.max(1e-300).ln()).collect();
            let variances = p[at + 2 * k..at + 3 * k].iter().map(|lv| VARIANCE_FLOOR + lv.exp()).collect();
            Prior { weights, log_weights, means: &p[at + k..at + 2 * k], variances }
        })
        .collect();
    if let Some(g) = gradient.as_deref_mut() {
        g.iter_mut().for_each(|v| *v = 0.0);
    }
    let (mut hidden, mut slope) = (vec![0.0; h], vec![0.0; h]);
    let (mut mu, mut g_mu, mut g_a) = (vec![0.0; n], vec![0.0; n], vec![0.0; h]);
    let mut terms = vec![0.0; k];
    let mut jacobian = Matrix::zeros(n, n);
    // `W1 J⁻¹` (h × n) and `J⁻¹ W2` (n × h).
    let (mut w1_g, mut g_w2) = (vec![0.0; h * n], vec![0.0; n * h]);
    let mut total = 0.0;
    for z in frames.chunks_exact(n) {
        weights.forward(z, &mut hidden, &mut mu);
        for q in 0..h {
            slope[q] = 1.0 - hidden[q] * hidden[q];
        }
        for i in 0..n {
            for c in 0..n {
                jacobian.data[i * n + c] =
                    l[i * n + c] + (0..h).map(|q| w2[i * h + q] * slope[q] * w1[q * n + c]).sum::<f64>();
            }
        }
        let (log_det, inverse) = log_det_and_inverse(&jacobian)?;
        let mut value = -log_det;
        for j in 0..n {
            let Prior { weights, log_weights, means, variances } = &priors[j];
            for c in 0..k {
                terms[c] = log_weights[c]
                    - 0.5 * (LN_2PI + variances[c].ln())
                    - 0.5 * (mu[j] - means[c]).powi(2) / variances[c];
            }
            let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_p = top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln();
            value -= log_p;
            let Some(g) = gradient.as_deref_mut() else { continue };
            let at = layout.prior(j);
            g_mu[j] = 0.0;
            for c in 0..k {
                let responsibility = (terms[c] - log_p).exp();
                let v = variances[c];
                let standardised = (mu[j] - means[c]) / v;
                g_mu[j] += responsibility * standardised;
                g[at + c] -= responsibility - weights[c];
                g[at + k + c] -= responsibility * standardised;
                let d = mu[j] - means[c];
                g[at + 2 * k + c] -= responsibility * 0.5 * (d * d / v - 1.0) * ((v - VARIANCE_FLOOR) / v);
            }
        }
        total += value;
        let Some(g) = gradient.as_deref_mut() else { continue };
        // −Σ log p_j(μ_j) through μ.
        g_a.iter_mut().for_each(|v| *v = 0.0);
        for i in 0..n {
            for c in 0..n {
                g[layout.l() + i * n + c] += g_mu[i] * z[c];
            }
            for q in 0..h {
                g[layout.w2() + i * h + q] += g_mu[i] * hidden[q];
                g_a[q] += w2[i * h + q] * g_mu[i] * slope[q];
            }
            g[layout.b2() + i] += g_mu[i];
        }
        // −log|det J|, whose gradient in J is −J⁻ᵀ.
        let inv = &inverse.data;
        for i in 0..n {
            for c in 0..n {
                g[layout.l() + i * n + c] -= inv[c * n + i];
            }
        }
        for q in 0..h {
            for i in 0..n {
                w1_g[q * n + i] = (0..n).map(|c| w1[q * n + c] * inv[c * n + i]).sum();
            }
            for c in 0..n {
                g_w2[c * h + q] = (0..n).map(|i| inv[c * n + i] * w2[i * h + q]).sum();
            }
        }
        for q in 0..h {
            for i in 0..n {
                g[layout.w2() + i * h + q] -= slope[q] * w1_g[q * n + i];
            }
            let mut through_slope = 0.0;
            for c in 0..n {
                g[layout.w1() + q * n + c] -= slope[q] * g_w2[c * h + q];
                through_slope += w1[q * n + c] * g_w2[c * h + q];
            }
            // The slope 1 − tanh²(a) moves with a by −2 tanh(a) (1 − tanh²(a)).
            g_a[q] += through_slope * 2.0 * hidden[q] * slope[q];
        }
        for q in 0..h {
            for c in 0..n {
                g[layout.w1() + q * n + c] += g_a[q] * z[c];
            }
            g[layout.b1() + q] += g_a[q];
        }
    }
    let count = (frames.len() / n) as f64;
    if let Some(g) = gradient {
        g.iter_mut().for_each(|v| *v /= count);
    }
    let mean = total / count;
    mean.is_finite().then_some(mean)
}

/// Fits the residual encoder to whitened frames `whitened` (interleaved, as the linear
/// model took them), started at `linear` (fitted to the same frames with the same held-out
/// frames): [`fit_residual_from`] its unmixing and priors.
pub fn fit_residual(
    whitened: &[f32],
    linear: &LinearFit,
    config: &ResidualConfig,
    cancel: Option<&CancelToken>,
) -> Result<ResidualFit> {
    fit_residual_from(whitened, &linear.unmixing, &linear.priors, config, cancel)
}

/// Fits the residual encoder to `frames` (interleaved, as many wide as there are
/// `priors`), started at the linear model `s = unmixing · z` with `priors` as its sources'
/// densities: `L = unmixing`, `W2 = 0`, the hidden layer's input weights drawn so that
/// every unit's input has a standard deviation of about 1.2 (in tanh's bend, not its flat).
/// The frames are what that model reads: whitened frames for the linear model, or another
/// model's transform of them (the post-nonlinear model's curves), whose own log-Jacobian
/// then adds the same to the start's NLL and to the fit's. Stops at
/// [`ResidualConfig::max_iterations`] or after [`ResidualConfig::patience`] iterations
/// without a better held-out NLL, and keeps the best held-out point (the start, if nothing
/// is better). Cancelling `cancel` stops it at its next iteration with [`Error::Cancelled`].
pub fn fit_residual_from(
    frames: &[f32],
    unmixing: &[f64],
    priors: &[Mixture],
    config: &ResidualConfig,
    cancel: Option<&CancelToken>,
) -> Result<ResidualFit> {
    fit_residual_watched(frames, unmixing, priors, config, cancel, &mut |_, _| {})
}

/// [`fit_residual_from`], telling `progress` after every iteration how many are done of
/// [`ResidualConfig::max_iterations`], and that all are when it stops early (on the
/// calling thread: one iteration takes milliseconds to tens of them).
pub fn fit_residual_watched(
    frames: &[f32],
    unmixing: &[f64],
    priors: &[Mixture],
    config: &ResidualConfig,
    cancel: Option<&CancelToken>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ResidualFit> {
    config.check()?;
    let n = priors.len();
    if n == 0 || unmixing.len() != n * n || !frames.len().is_multiple_of(n) {
        return Err(Error::Data(format!(
            "{} values are not whole frames of {n} sources, or the unmixing is not {n} × {n}",
            frames.len()
        )));
    }
    if frames.iter().any(|v| !v.is_finite()) {
        return Err(Error::Data("the frames hold NaN or infinite values".into()));
    }
    let every = config.validation_every;
    let (mut train, mut held_out) = (Vec::new(), Vec::new());
    for (f, z) in frames.chunks_exact(n).enumerate() {
        let to = if f % every == every - 1 { &mut held_out } else { &mut train };
        to.extend(z.iter().map(|&v| f64::from(v)));
    }
    let h = config.hidden;
    if train.len() / n < 4 * (n + h) || held_out.is_empty() {
        return Err(Error::Data(format!(
            "{} training frames are too few for a residual encoder of {n} sources and {h} hidden units",
            train.len() / n
        )));
    }
    let k = priors[0].weights.len();
    if priors.iter().any(|p| p.weights.len() != k || p.means.len() != k || p.variances.len() != k) {
        return Err(Error::Data("the sources' densities differ in their number of components".into()));
    }
    let layout = Layout { n, h, k };
    let mut rng = StdRng::seed_from_u64(config.seed);
    let input_scale = 1.2 / (n as f64).sqrt();
    let w1: Vec<f64> = (0..h * n).map(|_| input_scale * rng.sample::<f64, _>(StandardNormal)).collect();
    let b1: Vec<f64> = (0..h).map(|_| 0.5 * rng.sample::<f64, _>(StandardNormal)).collect();
    let (w2, b2) = (vec![0.0; n * h], vec![0.0; n]);
    let start = Weights { n, h, l: unmixing, w1: &w1, b1: &b1, w2: &w2, b2: &b2 };
    let p = start.flatten(priors);
    let start_nll = nll(layout, &p, &held_out, None)
        .ok_or_else(|| Error::Data("the starting unmixing is singular: no start".into()))?;
    let objective = |x: &[f64], g: &mut [f64]| nll(layout, x, &train, Some(g));
    let mut lbfgs = Lbfgs::new(p.clone(), &objective)
        .ok_or_else(|| Error::Data("the residual encoder's start has no density on the training frames".into()))?;
    let (mut best, mut best_p, mut best_train, mut kept, mut since) = (start_nll, p, lbfgs.value, 0, 0);
    while lbfgs.iterations < config.max_iterations && since < config.patience {
        if cancel.is_some_and(CancelToken::is_cancelled) {
            return Err(Error::Cancelled);
        }
        if lbfgs.step(&objective) == Step::Stalled {
            break;
        }
        match nll(layout, &lbfgs.x, &held_out, None) {
            Some(v) if v < best - config.min_gain => {
                (best, best_p, best_train, kept, since) = (v, lbfgs.x.clone(), lbfgs.value, lbfgs.iterations, 0);
            }
            _ => since += 1,
        }
        progress(lbfgs.iterations, config.max_iterations);
    }
    progress(config.max_iterations, config.max_iterations);
    Ok(ResidualFit {
        train_nll: best_train,
        validation_nll: best,
        iterations: lbfgs.iterations,
        kept_iteration: kept,
        ..ResidualFit::from_parameters(layout, &best_p, start_nll)
    })
}

#[cfg(test)]
mod tests {
    use unmix_dsp::metrics::score;
    use unmix_dsp::{Normaliser, NormaliserConfig};
    use unmix_synth::{MixKind, SynthConfig, bend_between_mixings, generate};

    use super::*;
    use crate::linear::{LinearConfig, fit_linear};

    /// The closed-form gradient against central differences, at a point where every part
    /// (the hidden layer's both weights, the linear path, the priors) is away from its start.
    #[test]
    fn the_gradient_matches_finite_differences() {
        let layout = Layout { n: 3, h: 4, k: 2 };
        let mut rng = StdRng::seed_from_u64(7);
        let mut p: Vec<f64> = (0..layout.len()).map(|_| 0.4 * rng.sample::<f64, _>(StandardNormal)).collect();
        // A well-conditioned linear path, so that J is far from singular.
        for i in 0..3 {
            p[layout.l() + i * 3 + i] += 1.5;
        }
        let frames: Vec<f64> = (0..60 * 3).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
        let mut gradient = vec![0.0; layout.len()];
        nll(layout, &p, &frames, Some(&mut gradient)).unwrap();
        let mut worst = 0.0f64;
        for idx in 0..p.len() {
            let e = 1e-6;
            let at = |shift: f64| {
                let mut q = p.clone();
                q[idx] += shift;
                nll(layout, &q, &frames, None).unwrap()
            };
            let numeric = (at(e) - at(-e)) / (2.0 * e);
            worst = worst.max((numeric - gradient[idx]).abs() / (1e-4 + numeric.abs().max(gradient[idx].abs())));
        }
        assert!(worst < 1e-5, "worst relative error {worst:.2e}");
    }

    /// The three sources of the paper's linear case, their mixture bent between two
    /// mixings ([`unmix_synth::bend_between_mixings`]), whitened; and the truth.
    fn bent_mixture(seed: u64, frames: usize, bend: impl Fn(usize, &[f64]) -> f64) -> (Vec<f32>, Vec<Vec<f32>>) {
        let data = generate(&SynthConfig { frames, ..SynthConfig::paper(MixKind::Linear, seed) }).unwrap();
        let recording = bend_between_mixings(&data.mixture, 1000 + seed, bend).unwrap();
        let n = data.truth.channels();
        let normaliser = Normaliser::fit(&recording, NormaliserConfig { whiten_to: Some(n) }).unwrap();
        let truth = (0..n).map(|c| data.truth.channel(c)).collect();
        (normaliser.transform(&recording).unwrap(), truth)
    }

    fn columns(interleaved: &[f64], n: usize) -> Vec<Vec<f32>> {
        (0..n).map(|j| interleaved.iter().skip(j).step_by(n).map(|&v| v as f32).collect()).collect()
    }

    /// Sensors that bend between two mixings (a cubic expansion per channel): the hidden
    /// layer gains well over the model choice's margin on held-out frames and separates
    /// better than the linear model it started from.
    #[test]
    fn a_bend_between_two_mixings_is_learnt() {
        let (whitened, truth) = bent_mixture(2, 6000, |c, u| u[c] + (0.15 + 0.1 * c as f64) * u[c].powi(3));
        let linear = fit_linear(&whitened, 3, &LinearConfig::default(), None).unwrap();
        let fit = fit_residual(&whitened, &linear, &ResidualConfig::default(), None).unwrap();
        assert!((fit.start_nll - linear.validation_nll).abs() < 1e-9, "{} vs {}", fit.start_nll, linear.validation_nll);
        let gain = linear.validation_nll - fit.validation_nll;
        assert!(gain > 0.2, "held-out gain {gain:.3} nats per frame");
        let ours = score(&truth, &columns(&fit.demix(&whitened), 3)).unwrap().mean_abs_corr;
        let theirs = score(&truth, &columns(&linear.demix(&whitened), 3)).unwrap().mean_abs_corr;
        assert!(ours > theirs + 0.05, "mean |corr| {ours:.3} against the linear model's {theirs:.3}");
        let again = fit.nll(&whitened[..]).unwrap();
        assert!(again.is_finite());

        // Written as a model file's MLP, its layers in f64 give the fit's sources, and its
        // decoder undoes the linear path.
        let weights = fit.export().unwrap();
        weights.check().unwrap();
        let [hidden, out] = &weights.encoder[..] else { panic!("{} encoder layers", weights.encoder.len()) };
        let layer = |l: &DenseLayer, x: &[f64]| -> Vec<f64> {
            (0..l.outputs)
                .map(|o| {
                    f64::from(l.bias[o])
                        + (0..l.inputs).map(|i| f64::from(l.weight[i * l.outputs + o]) * x[i]).sum::<f64>()
                })
                .collect()
        };
        let sources = fit.demix(&whitened);
        for (z, s) in whitened.chunks_exact(3).zip(sources.chunks_exact(3)).take(500) {
            let z: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
            let t: Vec<f64> = layer(hidden, &z).into_iter().map(f64::tanh).collect();
            for (got, &want) in layer(out, &t).iter().zip(s) {
                assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{got} vs {want}");
            }
            let linear: Vec<f64> =
                (0..3).map(|o| fit.b2[o] + (0..3).map(|c| fit.linear[o * 3 + c] * z[c]).sum::<f64>()).collect();
            for (got, want) in layer(&weights.decoder[0], &linear).iter().zip(&z) {
                assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{got} vs {want}");
            }
        }
    }

    /// A linear mixture: whatever the hidden layer finds, the held-out frames do not reward
    /// it by more than a small fraction of the model choice's margin (0.05 nats). Its
    /// progress counts every iteration up and, stopped early, ends at all done.
    #[test]
    fn a_linear_mixture_gives_the_linear_model_back() {
        let (whitened, _) = bent_mixture(3, 6000, |c, u| u[c]);
        let linear = fit_linear(&whitened, 3, &LinearConfig::default(), None).unwrap();
        let config = ResidualConfig::default();
        let mut reports = Vec::new();
        let fit =
            fit_residual_watched(&whitened, &linear.unmixing, &linear.priors, &config, None, &mut |done, total| {
                reports.push((done, total))
            })
            .unwrap();
        let gain = linear.validation_nll - fit.validation_nll;
        assert!((0.0..0.02).contains(&gain), "held-out gain {gain:.4} nats per frame");
        assert!(fit.iterations < config.max_iterations, "stopped early: {} iterations", fit.iterations);
        let counts: Vec<usize> = reports.iter().map(|&(done, _)| done).collect();
        assert_eq!(counts[..counts.len() - 1], (1..=fit.iterations).collect::<Vec<_>>()[..]);
        assert_eq!(reports.last(), Some(&(config.max_iterations, config.max_iterations)));
        assert!(reports.iter().all(|&(_, total)| total == config.max_iterations));
    }

    /// Bad settings and data are refused, not fitted.
    #[test]
    fn refuses_what_it_cannot_fit() {
        let (whitened, _) = bent_mixture(1, 600, |c, u| u[c]);
        let linear = fit_linear(&whitened, 3, &LinearConfig::default(), None).unwrap();
        let config = ResidualConfig { validation_every: 1, ..ResidualConfig::default() };
        assert!(matches!(fit_residual(&whitened, &linear, &config, None), Err(Error::Config(_))));
        let mut bad = whitened.clone();
        bad[4] = f32::NAN;
        assert!(matches!(fit_residual(&bad, &linear, &ResidualConfig::default(), None), Err(Error::Data(_))));
        let short = &whitened[..3 * 40];
        assert!(matches!(fit_residual(short, &linear, &ResidualConfig::default(), None), Err(Error::Data(_))));
        let cancel = CancelToken::new();
        cancel.cancel();
        let cancelled = fit_residual(&whitened, &linear, &ResidualConfig::default(), Some(&cancel));
        assert!(matches!(cancelled, Err(Error::Cancelled)));
    }
}
