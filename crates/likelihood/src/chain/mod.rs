//! Exact maximum-likelihood demixing in the shape of a saturating sensor chain (and, in
//! the same code, a linear shape).
//!
//! A sensor that saturates at its full scale, behind an amplifier stage that saturates too,
//! records `x = tanh(A2 tanh(A1 s))`: the paper's nonlinear benchmark. Its inverse is
//! `s = W1 atanh(W2 atanh(x) / ρ)`, two square linear maps each behind an `atanh`
//! ([`Warp`]). Fitted by the exact log-likelihood with the change of variables,
//!
//! ```text
//! log p(x) = Σ_j log p_j(s_j) + Σ_l [ log|det W_l| − Σ_i log(1 − v_li²) − Σ_i log ρ_li ]
//! ```
//!
//! (`v_l` a layer's `atanh` argument, `ρ_l` its scale, `p_j` a K-component 1-D GMM per
//! source, the PDGMM prior), this is the zero-noise limit of a PDGMM-VAE whose decoder is
//! `tanh(B2 tanh(B1 z))` and whose encoder is that decoder's exact inverse. It separates
//! the benchmark blind (0.98–0.99 mean |corr|, `docs/results.md`), where the MLP VAE ends
//! near linear ICA: the VAE's bound cannot see the truth's advantage where the tanh
//! saturates (`docs/limitations.md`), the exact likelihood can.
//!
//! The inner `atanh`'s scale is `ρ_i = max_t |u_ti| (1 + softplus(g_i))`: the largest inner
//! value sits just inside the domain whatever `W2` is, so every `W2` is feasible and the
//! truth (whose inner values reach ±(1 − 10⁻⁷)) is an interior point. The outer layer's
//! scale is the recording's full scale, ±1 (the samples as read, not standardised).
//!
//! The same code fits a linear shape `s = W x̃` ([`ChainShape::Linear`], standardised
//! channels), the exact density of the same recording by the same descent: the chain's own
//! tests weigh the two. The model choice weighs the chain against [`crate::linear`], the
//! linear model fitted to its optimum.
//!
//! Plain `f64` with closed-form gradients (checked against finite differences in the
//! tests) and full-batch Adam, not burn: the model has `2n² + n + 3nK` parameters, so
//! burn's per-operation overhead would dominate every step, and `log|det W|` and the
//! max-scale are awkward there.

//!
//! - [`fit`] / [`fit_watched`] (`fit.rs`): the starts on a few threads, the screening, the
//!   choice on held-out frames;
//! - `gradient.rs`: the NLL and its closed-form gradient, laid out for the vector unit;
//! - `adam.rs`: one start's full-batch Adam, resumable across the screening.

mod adam;
mod fit;
mod gradient;

use serde::{Deserialize, Serialize};
use unmix_core::limits::{MAX_PRIOR_COMPONENTS, MAX_RESTARTS};
use unmix_dsp::linalg::{Matrix, log_det_and_inverse};
use unmix_format::{Activation, Architecture, GmmParams, ModelWeights};

pub(crate) use crate::LN_2PI;
use crate::dense;

pub use fit::{fit, fit_watched};
use gradient::evaluate;

/// Steps of the saturating chain's screening. At 300 of 1 500 steps the held-out NLL does
/// not yet tell the winning start from the others (measured on the nonlinear benchmark:
/// the winner ranked 2nd to 8th of eight on seeds 1–5), so every start goes on; but every start is
/// already far below the linear model there when the mixture saturates, and above it when
/// the mixture is linear, which is what [`fit_watched`] stops on.
pub const SCREEN_STEPS: usize = 300;

pub(crate) fn finished_by_default() -> bool {
    true
}

/// Largest `|v|` an `atanh` is evaluated at: frames beyond the training segment's range
/// saturate there (`atanh(1 − 10⁻⁶) ≈ 7.25`) instead of leaving the domain.
pub const ATANH_LIMIT: f64 = 1.0 - 1e-6;

/// Bounds of the prior log-variances, as in the VAE's prior.
pub(crate) const LOG_VAR_RANGE: (f64, f64) = (-9.0, 4.0);

/// What a layer does to its input before its linear map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Warp {
    /// Nothing: the layer is linear.
    Linear,
    /// `atanh` of the input as it is: its scale is the recording's full scale.
    FullScale,
    /// `atanh(u_i / ρ_i)`, `ρ_i = max_t |u_ti| (1 + softplus(g_i))` with `g_i` learnt.
    Adaptive,
}

/// Which model [`fit`] fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChainShape {
    /// `s = W1 atanh(W2 atanh(x) / ρ)` on the samples as read (full scale ±1).
    Saturating,
    /// `s = W x̃` on standardised channels: linear ICA by maximum likelihood.
    Linear,
}

impl ChainShape {
    pub(crate) fn warps(self) -> &'static [Warp] {
        match self {
            ChainShape::Saturating => &[Warp::FullScale, Warp::Adaptive],
            ChainShape::Linear => &[Warp::Linear],
        }
    }
}

/// Settings of a maximum-likelihood fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainConfig {
    /// Which model.
    pub shape: ChainShape,
    /// Independent starts (the first from whitening, the others turned by random
    /// rotations); the one with the lowest held-out NLL is kept.
    pub starts: usize,
    /// Full-batch Adam steps per finished start.
    pub steps: usize,
    /// Steps after which every start's held-out NLL is taken (the screening), so that
    /// [`fit_watched`] can stop where no start beats its rival; 0 for none.
    #[serde(default)]
    pub screen_steps: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// GMM components per source.
    pub components: usize,
    /// Every `validation_every`-th frame is held out to choose between starts (and between
    /// models); 0 holds none out and chooses on the training frames.
    pub validation_every: usize,
    /// Seed of the starts' rotations and prior means.
    pub seed: u64,
    /// Threads for the starts (0 = one per core).
    pub threads: usize,
}

impl ChainConfig {
    /// The defaults measured on the nonlinear benchmark (`docs/model.md`): 8 starts of
    /// 1 500 steps at learning rate 0.01, 6 components, every 5th frame held out.
    pub fn new(shape: ChainShape) -> Self {
        let (starts, steps, screen_steps) = match shape {
            ChainShape::Saturating => (8, 1500, SCREEN_STEPS),
            ChainShape::Linear => (4, 1000, 0),
        };
        Self {
            shape,
            starts,
            steps,
            screen_steps,
            learning_rate: 0.01,
            components: 6,
            validation_every: 5,
            seed: 0,
            threads: 0,
        }
    }

    /// Checks every value once: a fit needs at least one start, step and component.
    pub fn check(&self) -> crate::Result<()> {
        if self.starts == 0 || self.steps == 0 || self.components == 0 {
            return Err(crate::Error::Config("the chain model needs at least one start, step and component".into()));
        }
        if self.starts > MAX_RESTARTS || self.components > MAX_PRIOR_COMPONENTS {
            return Err(crate::Error::Config(format!(
                "the chain model has at most {MAX_RESTARTS} starts and {MAX_PRIOR_COMPONENTS} components a prior, \
                 not {} and {}",
                self.starts, self.components
            )));
        }
        Ok(())
    }
}

/// How one start ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartReport {
    /// Mean NLL per frame on the training frames (nats), `None` if the start failed.
    pub train_nll: Option<f64>,
    /// Mean NLL per frame on the held-out frames (nats).
    pub validation_nll: Option<f64>,
    /// The held-out NLL at the end of the screening (nats), when there was one.
    #[serde(default)]
    pub screen_validation_nll: Option<f64>,
    /// Whether the start ran to the end (not stopped at the screening).
    #[serde(default = "finished_by_default")]
    pub finished: bool,
    /// Relative change of the training NLL over the last 10 % of the steps (how far from
    /// its plateau the start stopped).
    pub last_change: Option<f64>,
}

/// A fitted model.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainFit {
    /// Which model.
    pub shape: ChainShape,
    /// Sources (= channels).
    pub sources: usize,
    /// Per layer, the scale its input is divided by before the `atanh` (1 for
    /// [`Warp::FullScale`] and [`Warp::Linear`]).
    pub scales: Vec<Vec<f64>>,
    /// Per-source GMM, `[source][component]` (log-variances clamped as used).
    pub prior: GmmParams,
    /// Mean NLL per frame of the chosen start on its training frames (nats, the density of
    /// the samples as read, so that the two shapes compare).
    pub train_nll: f64,
    /// The same on the held-out frames (on the training frames if none were held out).
    pub validation_nll: f64,
    /// Every start, in order.
    pub starts: Vec<StartReport>,
    /// The chosen start.
    pub chosen: usize,
    /// Adam steps the chosen start ran: [`ChainConfig::steps`], or
    /// [`ChainConfig::screen_steps`] when [`fit_watched`] stopped at the screening.
    pub steps: usize,
    /// The standardisation the frames went through (mean, scale per channel; 0 and 1 for
    /// the saturating chain).
    pub(crate) standardise: (Vec<f64>, Vec<f64>),
    pub(crate) params: Params,
    pub(crate) components: usize,
}

impl ChainFit {
    /// Layer `l`'s linear map `W_l`, row-major `n × n` (`a_{l+1} = W_l h_l`), input first.
    pub fn map(&self, l: usize) -> &[f64] {
        self.params.map(l, self.sources)
    }

    /// The sources of `frames` (interleaved, `sources` wide), interleaved, and their mean
    /// NLL per frame (nats) with the scales held at the training segment's.
    pub fn demix(&self, frames: &[f32]) -> (Vec<f64>, f64) {
        let n = self.sources;
        let (mean, scale) = &self.standardise;
        let values = frames.chunks_exact(n).flat_map(|f| (0..n).map(move |c| (f64::from(f[c]) - mean[c]) / scale[c]));
        let data = Frames { n, values: values.collect(), log_scale: scale.iter().map(|s| s.ln()).sum() };
        let mut out = Vec::with_capacity(data.values.len());
        let nll = evaluate(&data, self.shape.warps(), &self.params, &self.scales, self.components, Some(&mut out))
            .map_or(f64::INFINITY, |v| v + data.log_scale);
        (out, nll)
    }

    /// The saturating chain as model-file weights ([`Architecture::SaturatingChain`]):
    /// encoder layer `l` is `diag(1/ρ_{l+1}) W_l` (the next layer's scale folded in), the
    /// decoder the encoder's layers inverted in reverse order. The posterior log-variance
    /// is `ln 10⁻⁶`: the encoder is the decoder's exact inverse, so a source's posterior is
    /// a point, and the file needs a finite value. `None` for the linear shape, which is a
    /// yardstick, not a product.
    pub fn export(&self) -> Option<ModelWeights> {
        if self.shape != ChainShape::Saturating {
            return None;
        }
        let n = self.sources;
        let layers = self.shape.warps().len();
        let mut encoder = Vec::with_capacity(layers);
        let mut decoder = Vec::with_capacity(layers);
        for l in 0..layers {
            let w = self.map(l);
            let next = self.scales.get(l + 1);
            let folded: Vec<f64> = (0..n * n).map(|i| w[i] / next.map_or(1.0, |rho| rho[i / n])).collect();
            let (_, inverse) = log_det_and_inverse(&square(&folded, n))?;
            encoder.push(dense(&folded, n));
            decoder.push(dense(&inverse.data, n));
        }
        decoder.reverse();
        Some(ModelWeights {
            architecture: Architecture::SaturatingChain,
            activation: Activation::Tanh,
            encoder,
            decoder,
            posterior_log_var: vec![(1e-6f32).ln(); n],
            prior: self.prior.clone(),
            sensor_curves: Vec::new(),
        })
    }
}

/// A recording's frames prepared for a fit: `f64`, row-major `[frame][channel]`.
pub(crate) struct Frames {
    pub(crate) n: usize,
    pub(crate) values: Vec<f64>,
    /// `Σ_i log scale_i`: the standardisation's log-Jacobian, added back so that every
    /// NLL is the density of the samples as read.
    pub(crate) log_scale: f64,
}

impl Frames {
    pub(crate) fn len(&self) -> usize {
        self.values.len() / self.n
    }
}

/// All parameters in one flat vector (for Adam): per layer `W_l` (`n²`) and `g_l` (`n`),
/// then the prior's logits, means and log-variances (`n K` each).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Params(pub(crate) Vec<f64>);

impl Params {
    pub(crate) fn len(layers: usize, n: usize, k: usize) -> usize {
        layers * (n * n + n) + 3 * n * k
    }
    pub(crate) fn map(&self, l: usize, n: usize) -> &[f64] {
        &self.0[l * (n * n + n)..l * (n * n + n) + n * n]
    }
    pub(crate) fn margin(&self, l: usize, n: usize) -> &[f64] {
        &self.0[l * (n * n + n) + n * n..(l + 1) * (n * n + n)]
    }
    pub(crate) fn prior_at(&self, n: usize, k: usize) -> usize {
        self.0.len() - 3 * n * k
    }
    pub(crate) fn logits(&self, n: usize, k: usize) -> &[f64] {
        let at = self.prior_at(n, k);
        &self.0[at..at + n * k]
    }
    pub(crate) fn means(&self, n: usize, k: usize) -> &[f64] {
        let at = self.prior_at(n, k) + n * k;
        &self.0[at..at + n * k]
    }
    pub(crate) fn log_vars(&self, n: usize, k: usize) -> &[f64] {
        let at = self.prior_at(n, k) + 2 * n * k;
        &self.0[at..at + n * k]
    }
}

pub(crate) fn softplus(x: f64) -> f64 {
    if x > 30.0 { x } else { x.exp().ln_1p() }
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

pub(crate) fn atanh(v: f64) -> f64 {
    v.clamp(-ATANH_LIMIT, ATANH_LIMIT).atanh()
}

/// `margin` such that `1 + softplus(margin) = 1 + 10⁻³`: the largest inner value starts
/// just inside the domain.
pub(crate) fn initial_margin() -> f64 {
    1e-3f64.exp_m1().ln()
}

/// A row-major `n × n` slice as a [`Matrix`].
pub(crate) fn square(w: &[f64], n: usize) -> Matrix {
    Matrix { rows: n, cols: n, data: w.to_vec() }
}

#[cfg(test)]
pub(crate) mod test_data {
    use unmix_dsp::metrics::{hungarian_min_cost, pearson};
    use unmix_synth::{MixKind, SynthConfig, generate};

    pub(crate) fn benchmark(kind: MixKind, seed: u64, frames: usize) -> (Vec<f32>, Vec<f32>) {
        let synth = generate(&SynthConfig { frames, ..SynthConfig::paper(kind, seed) }).unwrap();
        (synth.mixture.interleaved().to_vec(), synth.truth.interleaved().to_vec())
    }

    /// Mean and worst |corr| of the estimates with the truth after the best matching.
    pub(crate) fn scores(estimate: &[f64], truth: &[f32], n: usize) -> (f64, f64) {
        let column = |x: &[f32], j: usize| -> Vec<f32> { x.iter().skip(j).step_by(n).copied().collect() };
        let est: Vec<f32> = estimate.iter().map(|&v| v as f32).collect();
        let cost: Vec<Vec<f64>> =
            (0..n).map(|i| (0..n).map(|j| -pearson(&column(&est, i), &column(truth, j)).abs()).collect()).collect();
        let assignment = hungarian_min_cost(&cost);
        let c: Vec<f64> = assignment.iter().enumerate().map(|(i, &j)| -cost[i][j]).collect();
        (c.iter().sum::<f64>() / n as f64, c.iter().copied().fold(1.0, f64::min))
    }
}
