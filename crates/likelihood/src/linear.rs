//! The linear model with a learned Gaussian mixture per source, fitted by exact maximum
//! likelihood: `s = W z` on whitened frames `z`, `p(z) = |det W| Π_j p_j(s_j)`.
//!
//! It is the noiseless limit of a PDGMM-VAE whose encoder and decoder have no hidden layer,
//! and it is what a linear (instantaneous) mixture calls for: no stochastic encoder, no
//! network, so nothing but the estimation error of `W` itself stands between the sources
//! and the estimate. On such recordings it is the optimum a linear ICA can reach: maximum
//! likelihood with each source's own density (the GMM) is the efficient estimator, where
//! FastICA's fixed `log cosh` contrast is not.
//!
//! The fit alternates two monotone steps until neither moves:
//! - EM on every source's GMM at the current `W`, accelerated by SQUAREM
//!   (`accelerated_em`);
//! - a quasi-Newton step of `W` at the current GMMs, in the relative parametrisation
//!   `W ← (I + Δ) W`: the gradient is `G = E[ψ(s) sᵀ] − I` (`ψ_j = −(log p_j)'`), and the
//!   Hessian is approximated as if the sources were independent, which leaves `2 × 2`
//!   blocks `[[E ψ_i' E s_j², 1], [1, E ψ_j' E s_i²]]` per pair (the approximation of
//!   Picard, Ablin et al. 2018), each shifted to be positive definite; a backtracking line
//!   search keeps every step a descent. The step has no diagonal: a source's scale is its
//!   density's to fit.
//!
//! Started from FastICA's rotation it converges in 20–60 iterations, each a handful of
//! passes over the frames; the held-out frames stop the densities once they no longer
//! learn there.

use serde::{Deserialize, Serialize};
use unmix_core::CancelToken;
use unmix_core::limits::MAX_PRIOR_COMPONENTS;
use unmix_dsp::gmm::fit_1d;
use unmix_dsp::ica::{FastIcaConfig, fast_ica};
use unmix_dsp::linalg::{Matrix, log_det_and_inverse};
use unmix_format::{Activation, Architecture, GmmParams, ModelWeights};

use crate::{BLOCK, Error, LN_2PI, MixtureBlock, Result, dense, dot, sum};

/// Smallest eigenvalue the approximate Hessian's blocks are shifted up to: where a source's
/// density is locally concave (`ψ' < 0`, between the modes of a multimodal mixture), the
/// step is a damped gradient step instead of a step uphill.
const HESSIAN_FLOOR: f64 = 1e-2;

/// Iterations between looks at the held-out NLL, once the unmixing has settled.
const HELD_OUT_EVERY: usize = 10;

/// EM steps of the densities' start, on FastICA's sources.
const START_EM_STEPS: usize = 10;

/// Halvings of the step the line search tries before it takes the fit as converged.
const LINE_SEARCH_HALVINGS: usize = 30;

/// Tries of the line search once the relative gradient is below [`PRECISE_GRADIENT`]: the
/// step's gain there is a few 10⁻⁹ nats per frame, about what the passes resolve.
const PRECISE_HALVINGS: usize = 3;

/// The relative gradient below which the line search stops after [`PRECISE_HALVINGS`]:
/// ten times [`LinearConfig::default`]'s tolerance, where the Newton step's quadratic model
/// holds, so that a step failing at three lengths has met the NLL's precision rather than
/// a wrong length. Above it the search halves on.
const PRECISE_GRADIENT: f64 = 5e-4;

/// Settings of [`fit_linear`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearConfig {
    /// GMM components per source.
    pub components: usize,
    /// Iterations (an EM step and a Newton step each) at most.
    pub max_iterations: usize,
    /// Converged when the relative gradient's largest entry off the diagonal is below this
    /// and the last EM cycle gained less than [`LinearConfig::density_tolerance`] on the
    /// training frames, or ten iterations less than ten times it on the held-out frames.
    pub tolerance: f64,
    /// Nats per frame an EM cycle of the densities must gain for the fit to go on: where
    /// the data are few, a mixture can go on narrowing components onto clusters of frames
    /// by ever smaller gains, which the held-out frames would not reward.
    pub density_tolerance: f64,
    /// Every `validation_every`-th frame is held out (0: none; the held-out NLL is then the
    /// training NLL).
    pub validation_every: usize,
    /// Seed of FastICA's starting rotation.
    pub seed: u64,
}

impl Default for LinearConfig {
    /// 6 components, as the chain; at most 200 iterations (the fits of the benchmarks end
    /// in 10–60); a gradient of 5·10⁻⁵ (the unmixing then moves by far less than its
    /// estimation error) and 10⁻⁵ nats per frame (a thousandth of the margin by which the
    /// models are chosen); every 5th frame held out, as the chain holds them out.
    fn default() -> Self {
        Self {
            components: 6,
            max_iterations: 200,
            tolerance: 5e-5,
            density_tolerance: 1e-5,
            validation_every: 5,
            seed: 0,
        }
    }
}

impl LinearConfig {
    /// Checks every value once.
    pub fn check(&self) -> Result<()> {
        if self.components == 0 || self.components > MAX_PRIOR_COMPONENTS {
            return Err(Error::Config(format!(
                "the linear model needs 1 to {MAX_PRIOR_COMPONENTS} components a prior, not {}",
                self.components
            )));
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if self.max_iterations == 0 || !positive(self.tolerance) || !positive(self.density_tolerance) {
            return Err(Error::Config("the linear model needs at least one iteration and positive tolerances".into()));
        }
        Ok(())
    }
}

/// One source's density: a 1-D Gaussian mixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mixture {
    /// Component weights (sum to 1).
    pub weights: Vec<f64>,
    /// Component means.
    pub means: Vec<f64>,
    /// Component variances.
    pub variances: Vec<f64>,
}

/// `e^{a_i} / Σ e^{a}` of `logits`, shifted by their largest for range.
pub(crate) fn softmax(logits: &[f64]) -> Vec<f64> {
    let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|a| (a - top).exp()).collect();
    let total: f64 = e.iter().sum();
    e.iter().map(|v| v / total).collect()
}

impl Mixture {
    /// The mixture of the unconstrained parameters the exact-likelihood fits move: weights
    /// by the softmax of `logits` (floored at 10⁻¹²), `means` as they are, variances
    /// `variance_floor + e^{log_var}`.
    pub(crate) fn from_logits(logits: &[f64], means: &[f64], log_vars: &[f64], variance_floor: f64) -> Self {
        Self {
            weights: softmax(logits).into_iter().map(|w| w.max(1e-12)).collect(),
            means: means.to_vec(),
            variances: log_vars.iter().map(|l| variance_floor + l.exp()).collect(),
        }
    }

    /// `log p(s)`.
    pub fn log_density(&self, s: f64) -> f64 {
        let terms = self.log_terms();
        log_sum_exp(terms.iter().zip(&self.means).zip(&self.variances).map(|((c, m), v)| c - 0.5 * (s - m).powi(2) / v))
    }

    /// `log π_k − ½ log(2π v_k)` per component.
    fn log_terms(&self) -> Vec<f64> {
        self.weights.iter().zip(&self.variances).map(|(w, v)| w.ln() - 0.5 * (LN_2PI + v.ln())).collect()
    }

    /// The same density for `c · s`.
    pub(crate) fn scaled(&self, c: f64) -> Self {
        Self {
            weights: self.weights.clone(),
            means: self.means.iter().map(|m| m * c).collect(),
            variances: self.variances.iter().map(|v| v * c * c).collect(),
        }
    }
}

fn log_sum_exp(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let max = values.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.map(|v| (v - max).exp()).sum::<f64>().ln()
}

/// Every source's density as a model file's priors.
pub(crate) fn gmm_params(priors: &[Mixture]) -> GmmParams {
    let k = priors.first().map_or(0, |p| p.weights.len());
    let mut prior = GmmParams { components: k, logits: vec![], means: vec![], log_vars: vec![] };
    for p in priors {
        prior.logits.extend(p.weights.iter().map(|w| w.ln() as f32));
        prior.means.extend(p.means.iter().map(|&m| m as f32));
        prior.log_vars.extend(p.variances.iter().map(|v| v.ln() as f32));
    }
    prior
}

/// A fitted linear model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearFit {
    /// Sources (= whitened dimensions).
    pub sources: usize,
    /// `W`, row-major `n × n`: `s = W z`. Its rows are scaled so that every source has unit
    /// variance on the training frames.
    pub unmixing: Vec<f64>,
    /// Each source's density.
    pub priors: Vec<Mixture>,
    /// Mean NLL per training frame (nats, density of the whitened frames).
    pub train_nll: f64,
    /// The same on the held-out frames (the training frames when none were held out).
    pub validation_nll: f64,
    /// Iterations run.
    pub iterations: usize,
    /// Whether the tolerance was met before the cap.
    pub converged: bool,
    /// The relative gradient's largest entry off the diagonal at the end.
    pub gradient: f64,
}

impl LinearFit {
    /// The sources of whitened frames (interleaved, `sources` wide), interleaved.
    pub fn demix(&self, whitened: &[f32]) -> Vec<f64> {
        let n = self.sources;
        let mut out = Vec::with_capacity(whitened.len());
        for z in whitened.chunks_exact(n) {
            out.extend((0..n).map(|i| (0..n).map(|k| self.unmixing[i * n + k] * f64::from(z[k])).sum::<f64>()));
        }
        out
    }

    /// Mean NLL per frame of whitened frames (nats).
    pub fn nll(&self, whitened: &[f32]) -> f64 {
        let frames = Frames::of(whitened.chunks_exact(self.sources), self.sources);
        let w = Matrix { rows: self.sources, cols: self.sources, data: self.unmixing.clone() };
        objective(&frames, &w, &self.priors).unwrap_or(f64::INFINITY)
    }

    /// The model as model-file weights: a PDGMM-VAE without hidden layers ([`Architecture::Mlp`]
    /// with one dense layer each way), the decoder `W⁻¹`, the posterior log-variance
    /// `ln 10⁻⁶` (the encoder is the decoder's exact inverse: a source's posterior is a
    /// point). `None` when `W` is singular, which a fit never leaves.
    pub fn export(&self) -> Option<ModelWeights> {
        linear_weights(self.unmixing.clone(), self.sources, gmm_params(&self.priors))
    }
}

/// The weights of a linear unmixing `W` (row-major `n × n`) with `prior`: the encoder `W`,
/// the decoder `W⁻¹`, the posterior log-variance `ln 10⁻⁶`; `None` when `W` is singular.
pub(crate) fn linear_weights(unmixing: Vec<f64>, n: usize, prior: GmmParams) -> Option<ModelWeights> {
    let w = Matrix { rows: n, cols: n, data: unmixing };
    let (_, inverse) = log_det_and_inverse(&w)?;
    Some(ModelWeights {
        architecture: Architecture::Mlp,
        activation: Activation::Tanh,
        encoder: vec![dense(&w.data, n)],
        decoder: vec![dense(&inverse.data, n)],
        posterior_log_var: vec![(1e-6f32).ln(); n],
        prior,
        sensor_curves: Vec::new(),
    })
}

/// Frames as `f64`, row-major `[frame][dimension]`.
struct Frames {
    n: usize,
    values: Vec<f64>,
}

impl Frames {
    fn of<'a>(frames: impl Iterator<Item = &'a [f32]>, n: usize) -> Self {
        Self { n, values: frames.flat_map(|f| f.iter().map(|&v| f64::from(v))).collect() }
    }

    fn len(&self) -> usize {
        self.values.len() / self.n
    }
}

/// Fits the linear model to whitened frames `whitened` (interleaved, `n` wide, as
/// [`unmix_dsp::Normaliser`] leaves them). Cancelling `cancel` stops the fit at its next
/// iteration with [`Error::Cancelled`].
pub fn fit_linear(
    whitened: &[f32],
    n: usize,
    config: &LinearConfig,
    cancel: Option<&CancelToken>,
) -> Result<LinearFit> {
    config.check()?;
    if n == 0 || !whitened.len().is_multiple_of(n) {
        return Err(Error::Data(format!("{} values are not whole frames of {n} dimensions", whitened.len())));
    }
    if whitened.iter().any(|v| !v.is_finite()) {
        return Err(Error::Data("the frames hold NaN or infinite values".into()));
    }
    let every = config.validation_every;
    let held_out = |f: usize| every > 0 && f % every == every - 1;
    let frames = whitened.chunks_exact(n).enumerate();
    let train = Frames::of(frames.clone().filter(|(f, _)| !held_out(*f)).map(|(_, z)| z), n);
    let validation = Frames::of(frames.filter(|(f, _)| held_out(*f)).map(|(_, z)| z), n);
    if train.len() < 4 * n.max(2) {
        return Err(Error::Data(format!("{} training frames are too few for {n} sources", train.len())));
    }
    let train_f32: Vec<f32> = train.values.iter().map(|&v| v as f32).collect();
    let ica = fast_ica(&train_f32, n, &FastIcaConfig { seed: config.seed, ..FastIcaConfig::default() })
        .map_err(|e| Error::Data(format!("the linear model's start: {e}")))?;
    // A rough start for each density (the accelerated EM of the fit takes it from there).
    let started = ica.apply(&train_f32);
    let priors: Vec<Mixture> = (0..n)
        .map(|j| {
            let column: Vec<f32> = started.iter().skip(j).step_by(n).copied().collect();
            let g = fit_1d(&column, config.components, START_EM_STEPS);
            Mixture { weights: g.weights, means: g.means, variances: g.variances }
        })
        .collect();
    optimise(&train, &validation, Matrix::from_rows(&ica.unmixing), priors, Densities::Learnt, config, cancel)
}

impl LinearFit {
    /// The fit continued on `whitened` whole, held-out frames included: once the held-out
    /// frames have chosen the model, they are data like any other, and a fifth more frames
    /// make the unmixing's estimation error a tenth smaller. Only the unmixing moves: the
    /// densities, which the held-out frames chose, are kept (the unmixing moves by about its
    /// estimation error, which changes their optimum by far less than theirs), so that an
    /// iteration costs the Newton step's pass instead of that and an EM cycle's four. The
    /// likelihoods reported are then those of every frame.
    pub fn refit_on_every_frame(
        &self,
        whitened: &[f32],
        config: &LinearConfig,
        cancel: Option<&CancelToken>,
    ) -> Result<LinearFit> {
        let n = self.sources;
        if whitened.iter().any(|v| !v.is_finite()) || !whitened.len().is_multiple_of(n) {
            return Err(Error::Data("the frames hold NaN or infinite values, or are not whole frames".into()));
        }
        let every = Frames::of(whitened.chunks_exact(n), n);
        let none = Frames { n, values: Vec::new() };
        let w = Matrix { rows: n, cols: n, data: self.unmixing.clone() };
        let refit = optimise(&every, &none, w, self.priors.clone(), Densities::Kept, config, cancel)?;
        Ok(LinearFit { iterations: self.iterations + refit.iterations, ..refit })
    }
}

/// Whether [`optimise`] fits the densities along with the unmixing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Densities {
    /// An EM cycle every iteration.
    Learnt,
    /// As they are (up to each source's scale, which the unmixing leaves to them).
    Kept,
}

/// The alternation of EM cycles and quasi-Newton steps from `w` and `priors`, on `train`
/// (quasi-Newton steps alone with the densities [`Densities::Kept`]); `validation`
/// (possibly empty) tells when the densities stop learning.
fn optimise(
    train: &Frames,
    validation: &Frames,
    mut w: Matrix,
    mut priors: Vec<Mixture>,
    densities: Densities,
    config: &LinearConfig,
    cancel: Option<&CancelToken>,
) -> Result<LinearFit> {
    let n = train.n;
    // EM floors each variance where `fit_1d` does, a thousandth of the source's variance
    // (1 once whitened and rotated), so that no component collapses onto a frame.
    let floor = 1e-3;
    let (mut iterations, mut converged, mut gradient) = (0, false, f64::INFINITY);
    // Every pass gathers the objective, the gradient's and Hessian's moments and EM's
    // statistics at once: the pass that accepts a step is the next EM step's E-step.
    let first = pass(train, &w, &priors);
    let mut stats = unit_variance(&mut w, &mut priors, first);
    let mut f = stats.nll(&w).ok_or_else(diverged)?;
    let mut last_held_out = f64::INFINITY;
    while iterations < config.max_iterations {
        if cancel.is_some_and(CancelToken::is_cancelled) {
            return Err(Error::Cancelled);
        }
        iterations += 1;
        let mut em_gain = 0.0;
        if densities == Densities::Learnt {
            (priors, stats) = accelerated_em(train, &w, &priors, &stats, floor);
            let after_em = stats.nll(&w).ok_or_else(diverged)?;
            em_gain = f - after_em;
            f = after_em;
        }
        let (g, step) = stats.newton_step();
        // Off the diagonal: the diagonal is the sources' scales, which the densities fit.
        gradient = g.iter().enumerate().filter(|(i, _)| i / n != i % n).fold(0.0f64, |a, (_, v)| a.max(v.abs()));
        if gradient < config.tolerance && em_gain < config.density_tolerance {
            converged = true;
            break;
        }
        // The densities may go on gaining on the training frames by sharpening what the
        // held-out frames do not reward (the edges of a uniform source, a component per
        // cluster of frames): once the unmixing has settled, the held-out NLL decides
        // whether the densities are still learning.
        if validation.len() > 0 && iterations % HELD_OUT_EVERY == 0 && gradient < config.tolerance {
            let held_out = objective(validation, &w, &priors).ok_or_else(diverged)?;
            if held_out > last_held_out - HELD_OUT_EVERY as f64 * config.density_tolerance {
                converged = true;
                break;
            }
            last_held_out = held_out;
        }
        let mut moved = false;
        let mut alpha = 1.0;
        // Near the optimum the Newton step is taken whole: where it and two halvings fail
        // with the gradient already this small, the NLL's own precision (single-precision
        // exponentials) is reached, and further halvings would be passes over the frames
        // that find nothing.
        let halvings = if gradient < PRECISE_GRADIENT { PRECISE_HALVINGS } else { LINE_SEARCH_HALVINGS };
        for _ in 0..halvings {
            let next = relative_update(&w, &step, alpha);
            let next_stats = pass(train, &next, &priors);
            if let Some(f_next) = next_stats.nll(&next)
                && f_next < f
            {
                (w, f, stats, moved) = (next, f_next, next_stats, true);
                break;
            }
            alpha *= 0.5;
        }
        if !moved && em_gain < config.density_tolerance {
            // Neither step can improve the fit at this precision: it is at its optimum.
            converged = gradient < config.tolerance.sqrt();
            break;
        }
    }
    // Unit-variance sources, each density scaled along: the likelihood is unchanged.
    let last = pass(train, &w, &priors);
    let stats = unit_variance(&mut w, &mut priors, last);
    let train_nll = stats.nll(&w).ok_or_else(diverged)?;
    let validation_nll =
        if validation.len() == 0 { train_nll } else { objective(validation, &w, &priors).ok_or_else(diverged)? };
    Ok(LinearFit { sources: n, unmixing: w.data, priors, train_nll, validation_nll, iterations, converged, gradient })
}

fn diverged() -> Error {
    Error::Data("the linear model's fit diverged (a singular or non-finite unmixing matrix)".into())
}

/// Scales every row of `w` so that its source has unit variance, and its density along,
/// which leaves the likelihood as it is; `stats`, the pass at `w`, comes back as the pass
/// at the result. Done before the fit and after it, not during it: EM's variance floor is a
/// fixed fraction of a unit variance, and the Newton step leaves each source's scale to its density (it takes
/// no diagonal step), so that the two never trade a floored variance back and forth.
fn unit_variance(w: &mut Matrix, priors: &mut [Mixture], mut stats: PassStats) -> PassStats {
    let (n, k) = (stats.n, stats.k);
    let c: Vec<f64> = stats.second_moment.iter().map(|m| 1.0 / m.sqrt()).collect();
    if c.iter().any(|c| !c.is_finite()) {
        return stats;
    }
    for j in 0..n {
        for v in &mut w.data[j * n..(j + 1) * n] {
            *v *= c[j];
        }
        priors[j] = priors[j].scaled(c[j]);
        for acc in &mut stats.resp[j * k..(j + 1) * k] {
            acc[1] *= c[j];
            acc[2] *= c[j] * c[j];
        }
        let shift = stats.frames * c[j].ln();
        stats.source_log_density[j] -= shift;
        stats.log_density -= shift;
        stats.second_moment[j] = 1.0;
        stats.score_slope[j] /= c[j] * c[j];
        for i in 0..n {
            stats.score_moment[i * n + j] *= c[j] / c[i];
        }
    }
    stats
}

/// A source's mixture as one unconstrained vector: log-weights, means, log-variances.
fn pack(m: &Mixture) -> Vec<f64> {
    m.weights.iter().map(|w| w.ln()).chain(m.means.iter().copied()).chain(m.variances.iter().map(|v| v.ln())).collect()
}

fn unpack(v: &[f64], floor: f64) -> Mixture {
    let k = v.len() / 3;
    let top = v[..k].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v[..k].iter().map(|l| (l - top).exp().max(1e-300)).collect();
    let sum: f64 = e.iter().sum();
    Mixture {
        weights: e.iter().map(|x| (x / sum).max(1e-9)).collect(),
        means: v[k..2 * k].to_vec(),
        variances: v[2 * k..].iter().map(|l| l.exp().max(floor)).collect(),
    }
}

/// EM steps of every source's density at `w`, accelerated by SQUAREM (Varadhan and
/// Roland 2008): from two EM steps `θ₁ = F(θ₀)`, `θ₂ = F(θ₁)`, the extrapolation
/// `θ₀ − 2α r + α² v` (`r = θ₁ − θ₀`, `v = θ₂ − 2θ₁ + θ₀`, `α = −‖r‖/‖v‖`), stabilised by
/// one more EM step and kept, source by source, only where its likelihood is at least
/// `θ₁`'s. Components that share a mode move apart one EM step at a time; the
/// extrapolation takes hundreds of those steps in one. `stats` is the pass at `priors`;
/// the pass at the result comes back with it.
fn accelerated_em(
    frames: &Frames,
    w: &Matrix,
    priors: &[Mixture],
    stats: &PassStats,
    floor: f64,
) -> (Vec<Mixture>, PassStats) {
    let n = priors.len();
    let once = stats.em_step(priors, floor);
    let once_stats = pass(frames, w, &once);
    let twice = once_stats.em_step(&once, floor);
    let leaped: Vec<Mixture> = (0..n)
        .map(|j| {
            let (t0, t1, t2) = (pack(&priors[j]), pack(&once[j]), pack(&twice[j]));
            let r: Vec<f64> = t1.iter().zip(&t0).map(|(a, b)| a - b).collect();
            let v: Vec<f64> = t2.iter().zip(&t1).zip(&r).map(|((a, b), r)| a - b - r).collect();
            let (rn, vn) = (r.iter().map(|x| x * x).sum::<f64>().sqrt(), v.iter().map(|x| x * x).sum::<f64>().sqrt());
            let alpha = if vn > 0.0 { (-rn / vn).min(-1.0) } else { -1.0 };
            let leap: Vec<f64> =
                t0.iter().zip(&r).zip(&v).map(|((t, r), v)| t - 2.0 * alpha * r + alpha * alpha * v).collect();
            unpack(&leap, floor)
        })
        .collect();
    let leaped_stats = pass(frames, w, &leaped);
    let settled = leaped_stats.em_step(&leaped, floor);
    let settled_stats = pass(frames, w, &settled);
    // EM never lowers the likelihood, so `twice` is at least `once`: where the leap fell
    // behind `once`, `twice` is taken instead.
    let behind: Vec<bool> = (0..n)
        .map(|j| {
            let l = settled_stats.source_log_density[j];
            !(l.is_finite() && l >= once_stats.source_log_density[j])
        })
        .collect();
    if !behind.iter().any(|&b| b) {
        return (settled, settled_stats);
    }
    let chosen: Vec<Mixture> = (0..n).map(|j| if behind[j] { twice[j].clone() } else { settled[j].clone() }).collect();
    let chosen_stats = pass(frames, w, &chosen);
    (chosen, chosen_stats)
}

/// `(I + α Δ) W`.
fn relative_update(w: &Matrix, step: &Matrix, alpha: f64) -> Matrix {
    let n = w.rows;
    let mut m = Matrix::identity(n);
    for (a, d) in m.data.iter_mut().zip(&step.data) {
        *a += alpha * d;
    }
    m.matmul(w)
}

/// Mean NLL per frame: `−E[Σ_j log p_j(s_j)] − log|det W|`; `None` for a singular `W`.
fn objective(frames: &Frames, w: &Matrix, priors: &[Mixture]) -> Option<f64> {
    pass(frames, w, priors).nll(w)
}

/// What one pass over the frames gathers at `W` and the current densities.
struct PassStats {
    n: usize,
    k: usize,
    frames: f64,
    /// `Σ_t ψ_i(s_ti) s_tj`, row-major.
    score_moment: Vec<f64>,
    /// `Σ_t ψ_i'(s_ti)`.
    score_slope: Vec<f64>,
    /// `Σ_t ψ_i'(s_ti) s_ti²`.
    score_slope_moment: Vec<f64>,
    /// `Σ_t s_ti²`.
    second_moment: Vec<f64>,
    /// EM's sufficient statistics per source and component: `Σ r`, `Σ r s`, `Σ r s²`.
    resp: Vec<[f64; 3]>,
    /// `Σ_t Σ_j log p_j(s_tj)`.
    log_density: f64,
    /// `Σ_t log p_j(s_tj)` per source.
    source_log_density: Vec<f64>,
}

fn pass(frames: &Frames, w: &Matrix, priors: &[Mixture]) -> PassStats {
    let n = frames.n;
    let k = priors[0].weights.len();
    let terms: Vec<Vec<f64>> = priors.iter().map(Mixture::log_terms).collect();
    let precisions: Vec<Vec<f64>> = priors.iter().map(|p| p.variances.iter().map(|v| 1.0 / v).collect()).collect();
    let mut stats = PassStats {
        n,
        k,
        frames: frames.len() as f64,
        score_moment: vec![0.0; n * n],
        score_slope: vec![0.0; n],
        score_slope_moment: vec![0.0; n],
        second_moment: vec![0.0; n],
        resp: vec![[0.0; 3]; n * k],
        log_density: 0.0,
        source_log_density: vec![0.0; n],
    };
    unmix_vecmath::vectorised(
        #[inline(always)]
        || accumulate(frames, w, priors, &terms, &precisions, &mut stats),
    );
    let t = stats.frames;
    for v in stats
        .score_moment
        .iter_mut()
        .chain(&mut stats.score_slope)
        .chain(&mut stats.score_slope_moment)
        .chain(&mut stats.second_moment)
    {
        *v /= t;
    }
    stats
}

#[inline(always)]
fn accumulate(
    frames: &Frames,
    w: &Matrix,
    priors: &[Mixture],
    terms: &[Vec<f64>],
    precisions: &[Vec<f64>],
    stats: &mut PassStats,
) {
    let (n, k) = (stats.n, stats.k);
    let mut s = vec![0.0f64; n * BLOCK];
    let mut square = vec![0.0f64; n * BLOCK];
    let mut psi = vec![0.0f64; n * BLOCK];
    let mut mixture = MixtureBlock::new(k);
    let [mut inv_total, mut rc, mut mean_a, mut mean_a2, mut mean_prec, mut slope] =
        std::array::from_fn(|_| vec![0.0f64; BLOCK]);
    for block in frames.values.chunks(BLOCK * n) {
        let len = block.len() / n;
        for j in 0..n {
            let row = &w.data[j * n..(j + 1) * n];
            for (x, z) in s[j * BLOCK..j * BLOCK + len].iter_mut().zip(block.chunks_exact(n)) {
                *x = row.iter().zip(z).map(|(a, b)| a * b).sum();
            }
            for (q, x) in square[j * BLOCK..j * BLOCK + len].iter_mut().zip(&s[j * BLOCK..j * BLOCK + len]) {
                *q = x * x;
            }
        }
        for j in 0..n {
            let x = &s[j * BLOCK..j * BLOCK + len];
            let x2 = &square[j * BLOCK..j * BLOCK + len];
            let (means, prec) = (&priors[j].means, &precisions[j]);
            let block_log_density = mixture.weigh(x, &terms[j], means, prec);
            let (shifted, total) = (&mixture.shifted, &mixture.total);
            stats.log_density += block_log_density;
            stats.source_log_density[j] += block_log_density;
            for (i, &t) in inv_total[..len].iter_mut().zip(&total[..len]) {
                *i = 1.0 / t;
            }
            mean_a[..len].fill(0.0);
            mean_a2[..len].fill(0.0);
            mean_prec[..len].fill(0.0);
            for c in 0..k {
                let (mean, p) = (means[c], prec[c]);
                for ((r, &e), &i) in
                    rc[..len].iter_mut().zip(&shifted[c * BLOCK..c * BLOCK + len]).zip(&inv_total[..len])
                {
                    *r = f64::from(e) * i;
                }
                for ((((ma, ma2), mp), &r), &x) in mean_a[..len]
                    .iter_mut()
                    .zip(mean_a2[..len].iter_mut())
                    .zip(mean_prec[..len].iter_mut())
                    .zip(&rc[..len])
                    .zip(x)
                {
                    let a = (x - mean) * p;
                    *ma += r * a;
                    *ma2 += r * a * a;
                    *mp += r * p;
                }
                let acc = &mut stats.resp[j * k + c];
                acc[0] += sum(&rc[..len]);
                acc[1] += dot(&rc[..len], x);
                acc[2] += dot(&rc[..len], x2);
            }
            for ((sl, &ma), (&ma2, &mp)) in
                slope[..len].iter_mut().zip(&mean_a[..len]).zip(mean_a2[..len].iter().zip(&mean_prec[..len]))
            {
                *sl = mp - (ma2 - ma * ma);
            }
            psi[j * BLOCK..j * BLOCK + len].copy_from_slice(&mean_a[..len]);
            stats.score_slope[j] += sum(&slope[..len]);
            stats.score_slope_moment[j] += dot(&slope[..len], x2);
            stats.second_moment[j] += sum(x2);
        }
        for i in 0..n {
            for j in 0..n {
                stats.score_moment[i * n + j] += dot(&psi[i * BLOCK..i * BLOCK + len], &s[j * BLOCK..j * BLOCK + len]);
            }
        }
    }
}

impl PassStats {
    /// Mean NLL per frame at `w` (the matrix the pass was made with); `None` when it is
    /// singular or the NLL is not finite.
    fn nll(&self, w: &Matrix) -> Option<f64> {
        let (log_det, _) = log_det_and_inverse(w)?;
        let nll = -self.log_density / self.frames - log_det;
        nll.is_finite().then_some(nll)
    }

    /// The densities after one EM step from these statistics.
    fn em_step(&self, priors: &[Mixture], floor: f64) -> Vec<Mixture> {
        let k = self.k;
        (0..self.n)
            .map(|j| {
                let mut next = priors[j].clone();
                for c in 0..k {
                    let [r, rs, rss] = self.resp[j * k + c];
                    let r_safe = r.max(1e-12);
                    next.weights[c] = (r / self.frames).max(1e-9);
                    next.means[c] = rs / r_safe;
                    next.variances[c] = (rss / r_safe - next.means[c].powi(2)).max(floor);
                }
                let sum: f64 = next.weights.iter().sum();
                next.weights.iter_mut().for_each(|w| *w /= sum);
                next
            })
            .collect()
    }

    /// The relative gradient `G = E[ψ sᵀ] − I` and the quasi-Newton step `Δ`. The step has
    /// no diagonal: a source's scale is its density's to fit (EM moves it exactly), and a
    /// scale that both steps moved would let them undo each other where a variance sits at
    /// EM's floor.
    fn newton_step(&self) -> (Vec<f64>, Matrix) {
        let n = self.n;
        let mut g = self.score_moment.clone();
        for i in 0..n {
            g[i * n + i] -= 1.0;
        }
        let mut step = Matrix::zeros(n, n);
        for i in 0..n {
            for j in i + 1..n {
                let mut a = self.score_slope[i] * self.second_moment[j];
                let mut b = self.score_slope[j] * self.second_moment[i];
                let lowest = 0.5 * ((a + b) - ((a - b).powi(2) + 4.0).sqrt());
                if lowest < HESSIAN_FLOOR {
                    a += HESSIAN_FLOOR - lowest;
                    b += HESSIAN_FLOOR - lowest;
                }
                let det = a * b - 1.0;
                let (gij, gji) = (g[i * n + j], g[j * n + i]);
                step.data[i * n + j] = -(b * gij - gji) / det;
                step.data[j * n + i] = -(a * gji - gij) / det;
            }
        }
        (g, step)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Whitened frames of `sources` drawn by `draw`, mixed by a random rotation.
    fn rotated(t: usize, n: usize, seed: u64, draw: impl Fn(&mut StdRng, usize) -> f64) -> (Vec<f32>, Vec<f64>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let q = unmix_dsp::linalg::random_orthogonal(&mut rng, n);
        let mut s = vec![0.0; t * n];
        for f in 0..t {
            for j in 0..n {
                s[f * n + j] = draw(&mut rng, j);
            }
        }
        for j in 0..n {
            let col: Vec<f64> = s.iter().skip(j).step_by(n).copied().collect();
            let mean = col.iter().sum::<f64>() / t as f64;
            let sd = (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / t as f64).sqrt();
            for f in 0..t {
                s[f * n + j] = (s[f * n + j] - mean) / sd;
            }
        }
        let z = s
            .chunks_exact(n)
            .flat_map(|f| (0..n).map(|i| (0..n).map(|k| q.data[i * n + k] * f[k]).sum::<f64>() as f32));
        (z.collect(), s)
    }

    fn laplace_uniform_bimodal(rng: &mut StdRng, j: usize) -> f64 {
        let u: f64 = rng.random_range(-0.5..0.5);
        match j % 3 {
            0 => -u.signum() * (1.0 - 2.0 * u.abs()).ln(),
            1 => u,
            _ => (if rng.random_bool(0.5) { 1.0 } else { -1.0 }) + 0.3 * u,
        }
    }

    /// The interference a fit leaves: `max_j Σ_{i≠j} (W Q)_ij² / (W Q)_jj²` over the best
    /// matching, the residual power of the other sources in each estimate.
    fn worst_interference(fit: &LinearFit, z: &[f32], s: &[f64]) -> f64 {
        let n = fit.sources;
        let est = fit.demix(z);
        let t = s.len() / n;
        // The global matrix by least squares of the estimates on the sources (unit-variance
        // independent sources: the cross-moments).
        let mut gmat = vec![0.0; n * n];
        for f in 0..t {
            for i in 0..n {
                for j in 0..n {
                    gmat[i * n + j] += est[f * n + i] * s[f * n + j] / t as f64;
                }
            }
        }
        (0..n)
            .map(|i| {
                let row = &gmat[i * n..(i + 1) * n];
                let top = row.iter().fold(0.0f64, |a, v| a.max(v * v));
                (row.iter().map(|v| v * v).sum::<f64>() - top) / top
            })
            .fold(0.0, f64::max)
    }

    /// Laplace, uniform and bimodal sources, rotated: the fit converges, and leaves less
    /// interference than FastICA's `log cosh` on the same frames.
    #[test]
    fn undoes_a_rotation_better_than_fast_ica() {
        let (z, s) = rotated(20_000, 3, 5, laplace_uniform_bimodal);
        let fit = fit_linear(&z, 3, &LinearConfig::default(), None).unwrap();
        assert!(fit.converged, "{} iterations, gradient {:e}", fit.iterations, fit.gradient);
        let ours = worst_interference(&fit, &z, &s);
        let ica = fast_ica(&z, 3, &FastIcaConfig::default()).unwrap();
        let as_fit = LinearFit {
            unmixing: ica.unmixing.iter().flatten().copied().collect(),
            iterations: 0,
            converged: true,
            ..fit.clone()
        };
        let theirs = worst_interference(&as_fit, &z, &s);
        assert!(ours < 1e-3 && ours < theirs, "interference {ours:e} against FastICA's {theirs:e}");
        assert!(fit.validation_nll.is_finite() && fit.train_nll < fit.validation_nll + 0.1);
    }

    /// The Newton step's gradient is the objective's: `f((I + εE) W)` moves by `ε ⟨G, E⟩`.
    #[test]
    fn the_relative_gradient_is_the_objectives() {
        let (z, _) = rotated(2_000, 3, 8, laplace_uniform_bimodal);
        let frames = Frames::of(z.chunks_exact(3), 3);
        let mut rng = StdRng::seed_from_u64(1);
        let w = Matrix { rows: 3, cols: 3, data: (0..9).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let priors: Vec<Mixture> = (0..3)
            .map(|j| Mixture {
                weights: vec![0.3, 0.7],
                means: vec![-0.5 + 0.1 * j as f64, 0.4],
                variances: vec![0.6, 1.3 + 0.2 * j as f64],
            })
            .collect();
        let (g, _) = pass(&frames, &w, &priors).newton_step();
        // The objective in double precision throughout (the pass takes its exponentials in
        // single precision, whose rounding would swamp a difference quotient).
        let exact = |w: &Matrix| {
            let log_p: f64 = frames
                .values
                .chunks_exact(3)
                .map(|z| {
                    (0..3).map(|j| priors[j].log_density((0..3).map(|k| w.data[j * 3 + k] * z[k]).sum())).sum::<f64>()
                })
                .sum();
            -log_p / frames.len() as f64 - log_det_and_inverse(w).unwrap().0
        };
        assert!((exact(&w) - objective(&frames, &w, &priors).unwrap()).abs() < 1e-6);
        let eps = 1e-6;
        for (idx, &analytic) in g.iter().enumerate() {
            let mut e = Matrix::zeros(3, 3);
            e.data[idx] = 1.0;
            let up = exact(&relative_update(&w, &e, eps));
            let down = exact(&relative_update(&w, &e, -eps));
            let numeric = (up - down) / (2.0 * eps);
            assert!((numeric - analytic).abs() < 1e-6 * (1.0 + analytic.abs()), "entry {idx}: {numeric} vs {analytic}");
        }
    }

    /// The continuation on every frame keeps the densities (up to each source's scale) and
    /// moves the unmixing to the optimum of all the frames: converged, no worse on them
    /// than where it started, and still undoing the rotation.
    #[test]
    fn the_refit_on_every_frame_moves_only_the_unmixing() {
        let (z, s) = rotated(20_000, 3, 6, laplace_uniform_bimodal);
        let config = LinearConfig::default();
        let fit = fit_linear(&z, 3, &config, None).unwrap();
        let refit = fit.refit_on_every_frame(&z, &config, None).unwrap();
        assert!(refit.converged, "gradient {:e}", refit.gradient);
        assert!(refit.iterations > fit.iterations, "the refit counts on from the fit");
        let every = Frames::of(z.chunks_exact(3), 3);
        let at = |f: &LinearFit| Matrix { rows: 3, cols: 3, data: f.unmixing.clone() };
        let before = objective(&every, &at(&fit), &fit.priors).unwrap();
        assert!(refit.train_nll <= before + 1e-9, "{} after, {before} before", refit.train_nll);
        assert_eq!(refit.train_nll, refit.validation_nll, "no frames held out");
        for (kept, was) in refit.priors.iter().zip(&fit.priors) {
            assert_eq!(kept.weights, was.weights);
            let scale = (kept.variances[0] / was.variances[0]).sqrt();
            assert!((scale - 1.0).abs() < 0.05, "a source's scale moved by {scale}");
            for (k, w) in kept.means.iter().zip(&was.means) {
                assert!((k - w * scale).abs() < 1e-9 * (1.0 + w.abs()));
            }
        }
        assert!(worst_interference(&refit, &z, &s) < 1e-3);
    }

    /// The exported weights compute the fit's own sources.
    #[test]
    fn the_export_is_the_fit() {
        let (z, _) = rotated(3_000, 3, 2, laplace_uniform_bimodal);
        let fit = fit_linear(&z, 3, &LinearConfig::default(), None).unwrap();
        let weights = fit.export().unwrap();
        weights.check().unwrap();
        let ours = fit.demix(&z[..30]);
        for (f, frame) in z[..30].chunks_exact(3).enumerate() {
            for o in 0..3 {
                let v: f32 = (0..3).map(|i| frame[i] * weights.encoder[0].weight[i * 3 + o]).sum();
                assert!((f64::from(v) - ours[f * 3 + o]).abs() < 1e-4);
            }
        }
    }

    #[test]
    fn bad_settings_and_frames_are_refused() {
        let (z, _) = rotated(500, 2, 1, laplace_uniform_bimodal);
        assert!(fit_linear(&z, 2, &LinearConfig { components: 0, ..LinearConfig::default() }, None).is_err());
        assert!(fit_linear(&z[..7], 2, &LinearConfig::default(), None).is_err());
        let mut bad = z.clone();
        bad[3] = f32::NAN;
        assert!(fit_linear(&bad, 2, &LinearConfig::default(), None).is_err());
        let cancel = CancelToken::new();
        cancel.cancel();
        assert!(matches!(fit_linear(&z, 2, &LinearConfig::default(), Some(&cancel)), Err(Error::Cancelled)));
    }
}
