//! One-dimensional Gaussian mixtures: fitted by EM (the warm start's prior for each source,
//! fitted to the linear-ICA estimate of that source), and weighed a block of values at a
//! time with vectorised exponentials ([`MixtureBlock`], what every likelihood pass runs on).

use serde::{Deserialize, Serialize};

use crate::linalg::{dot, sum};

/// A fitted 1-D mixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gmm1d {
    /// Component weights (sum to 1).
    pub weights: Vec<f64>,
    /// Component means.
    pub means: Vec<f64>,
    /// Component variances.
    pub variances: Vec<f64>,
    /// Mean log-likelihood per sample at the end.
    pub log_likelihood: f64,
}

/// Fits `components` Gaussians to `samples` by EM: means start at evenly spaced
/// quantiles (deterministic, no seed), variances are floored at `1e-3 ×` the sample
/// variance so no component collapses onto a point. At most 65 536 evenly strided
/// samples are used.
pub fn fit_1d(samples: &[f32], components: usize, iterations: usize) -> Gmm1d {
    let k = components.max(1);
    let stride = samples.len().div_ceil(65_536).max(1);
    let mut x: Vec<f64> = samples.iter().step_by(stride).map(|&v| f64::from(v)).filter(|v| v.is_finite()).collect();
    if x.is_empty() {
        x.push(0.0);
    }
    let t = x.len() as f64;
    let mean = x.iter().sum::<f64>() / t;
    let var = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / t).max(1e-12);
    let floor = 1e-3 * var;
    let mut sorted = x.clone();
    sorted.sort_by(f64::total_cmp);
    let mut means: Vec<f64> = (0..k).map(|c| sorted[((2 * c + 1) * sorted.len()) / (2 * k)]).collect();
    let mut variances = vec![var / k as f64; k];
    let mut weights = vec![1.0 / k as f64; k];
    let mut log_likelihood = f64::NEG_INFINITY;
    let half_ln_tau = 0.5 * std::f64::consts::TAU.ln();
    let (mut offset, mut precision) = (vec![0.0f64; k], vec![0.0f64; k]);
    let squares: Vec<f64> = x.iter().map(|v| v * v).collect();
    let mut mixture = MixtureBlock::new(k);
    let (mut inv_total, mut r) = (vec![0.0f64; BLOCK], vec![0.0f64; BLOCK]);
    for _ in 0..iterations.max(1) {
        // The per-component constants of log πc N(v | μc, σc²), once per iteration rather
        // than once per sample; the E-step then runs a block of samples at a time, its
        // exponentials one vectorised call per component.
        for c in 0..k {
            offset[c] = weights[c].ln() - 0.5 * variances[c].ln() - half_ln_tau;
            precision[c] = 1.0 / variances[c];
        }
        let (mut nk, mut sx, mut sxx) = (vec![0.0; k], vec![0.0; k], vec![0.0; k]);
        let mut ll = 0.0;
        unmix_vecmath::vectorised(
            #[inline(always)]
            || {
                for (x, x2) in x.chunks(BLOCK).zip(squares.chunks(BLOCK)) {
                    let len = x.len();
                    ll += mixture.weigh(x, &offset, &means, &precision);
                    for (i, &t) in inv_total[..len].iter_mut().zip(&mixture.total[..len]) {
                        *i = 1.0 / t;
                    }
                    for c in 0..k {
                        let shifted = &mixture.shifted[c * BLOCK..c * BLOCK + len];
                        for ((r, &e), &i) in r[..len].iter_mut().zip(shifted).zip(&inv_total[..len]) {
                            *r = f64::from(e) * i;
                        }
                        nk[c] += sum(&r[..len]);
                        sx[c] += dot(&r[..len], x);
                        sxx[c] += dot(&r[..len], x2);
                    }
                }
            },
        );
        for c in 0..k {
            let n = nk[c].max(1e-9);
            weights[c] = (nk[c] / t).max(1e-6);
            means[c] = sx[c] / n;
            variances[c] = (sxx[c] / n - means[c] * means[c]).max(floor);
        }
        let sum: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= sum);
        let ll = ll / t;
        let done = (ll - log_likelihood).abs() < 1e-7;
        log_likelihood = ll;
        if done {
            break;
        }
    }
    Gmm1d { weights, means, variances, log_likelihood }
}

/// Values a block at a time in [`fit_1d`] and the models' passes, each source's values laid
/// out as a column, so that every loop over a block runs down a column: the compiler vectorises
/// them (inlined into [`unmix_vecmath::vectorised`], as wide as the processor allows), and
/// a source's component exponentials are one vectorised call.
pub const BLOCK: usize = 512;

/// One source's Gaussian mixture over a block of values: each component's weighted
/// density relative to the largest, and their total. The exponentials are single
/// precision: they weigh responsibilities, whose error then stays near 10⁻⁷; every sum is
/// double.
pub struct MixtureBlock {
    /// `log π_k − ½ log(2π v_k) − (x − μ_k)² / 2v_k`, `[component][frame]`.
    arg: Vec<f64>,
    /// The largest of them per frame.
    top: Vec<f64>,
    /// `exp(arg − top)`, `[component][frame]`.
    pub shifted: Vec<f32>,
    /// `Σ_k shifted`, in `[1, K]` (the largest term is `exp(0)`).
    pub total: Vec<f64>,
    log_total: Vec<f64>,
}

impl MixtureBlock {
    /// Room for a mixture of `components` over a block.
    pub fn new(components: usize) -> Self {
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
    pub fn weigh(&mut self, x: &[f64], log_terms: &[f64], means: &[f64], precisions: &[f64]) -> f64 {
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

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    use super::*;

    #[test]
    fn recovers_two_separated_components() {
        let mut rng = StdRng::seed_from_u64(3);
        let x: Vec<f32> = (0..20_000)
            .map(|_| {
                let n: f64 = rng.sample(StandardNormal);
                (if rng.random_bool(0.3) { 2.0 + 0.5 * n } else { -1.0 + 0.3 * n }) as f32
            })
            .collect();
        let g = fit_1d(&x, 2, 200);
        let (lo, hi) = if g.means[0] < g.means[1] { (0, 1) } else { (1, 0) };
        assert!((g.means[lo] + 1.0).abs() < 0.05 && (g.means[hi] - 2.0).abs() < 0.05, "{g:?}");
        assert!((g.weights[hi] - 0.3).abs() < 0.02, "{g:?}");
        assert!((g.variances[lo].sqrt() - 0.3).abs() < 0.03, "{g:?}");
    }

    #[test]
    fn degenerate_input_stays_finite() {
        let g = fit_1d(&[1.0; 100], 3, 50);
        assert!(g.means.iter().chain(&g.variances).chain(&g.weights).all(|v| v.is_finite()));
    }
}
