//! One-dimensional Gaussian mixtures fitted by EM: the warm start's prior for each source
//! (fitted to the linear-ICA estimate of that source).

use serde::{Deserialize, Serialize};

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
    let mut resp = vec![0.0f64; k];
    let mut log_likelihood = f64::NEG_INFINITY;
    let half_ln_tau = 0.5 * std::f64::consts::TAU.ln();
    let (mut offset, mut precision) = (vec![0.0f64; k], vec![0.0f64; k]);
    for _ in 0..iterations.max(1) {
        // The per-component constants of log πc N(v | μc, σc²), once per iteration rather
        // than once per sample: the E-step is then one `exp` per sample and component.
        for c in 0..k {
            offset[c] = weights[c].ln() - 0.5 * variances[c].ln() - half_ln_tau;
            precision[c] = 1.0 / variances[c];
        }
        let (mut nk, mut sx, mut sxx) = (vec![0.0; k], vec![0.0; k], vec![0.0; k]);
        let mut ll = 0.0;
        for &v in &x {
            let mut max = f64::NEG_INFINITY;
            for c in 0..k {
                let d = v - means[c];
                resp[c] = offset[c] - 0.5 * d * d * precision[c];
                max = max.max(resp[c]);
            }
            let mut total = 0.0;
            for r in resp.iter_mut() {
                *r = (*r - max).exp();
                total += *r;
            }
            ll += max + total.ln();
            let inv_total = 1.0 / total;
            for c in 0..k {
                let r = resp[c] * inv_total;
                nk[c] += r;
                sx[c] += r * v;
                sxx[c] += r * v * v;
            }
        }
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
