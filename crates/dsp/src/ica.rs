//! Linear ICA by symmetric FastICA (Hyvärinen 1999) on whitened data.
//!
//! It gives the VAE a warm start: on whitened data the linear demixing is a rotation, and
//! FastICA finds it in a few dozen fixed-point iterations, so the VAE can spend its epochs
//! on what is nonlinear instead of on finding the rotation.
//!
//! The contrast is `G(u) = log cosh u` (nonlinearity `g = tanh`), the robust general-purpose
//! choice: it separates sub- and super-Gaussian sources alike and is insensitive to
//! outliers. All rows are updated together and re-orthogonalised by symmetric
//! decorrelation `W ← (W Wᵀ)^{-1/2} W`, so no source is favoured by deflation order.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::linalg::{Matrix, symmetric_eigen};
use crate::{Error, Result};

/// Settings of [`fast_ica`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FastIcaConfig {
    /// Iteration cap.
    pub max_iterations: usize,
    /// Converged when every row changes direction by less than this
    /// (`max_i 1 − |⟨w_i^new, w_i^old⟩|`).
    pub tolerance: f64,
    /// Frames used at most (evenly strided over the input): the fixed point is a sample
    /// average, and 65 536 frames pin it down far below the VAE's own error.
    pub max_frames: usize,
    /// Seed of the random initial rotation.
    pub seed: u64,
}

impl Default for FastIcaConfig {
    fn default() -> Self {
        Self { max_iterations: 300, tolerance: 1e-7, max_frames: 65_536, seed: 0 }
    }
}

/// The result of [`fast_ica`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FastIca {
    /// Orthogonal `n × n` unmixing rotation: sources `s = W z` for whitened `z`.
    pub unmixing: Vec<Vec<f64>>,
    /// Fixed-point iterations run.
    pub iterations: usize,
    /// Whether the tolerance was met before the cap.
    pub converged: bool,
    /// Last change (`max_i 1 − |⟨w_i^new, w_i^old⟩|`).
    pub last_change: f64,
}

impl FastIca {
    /// Applies the rotation to interleaved whitened frames.
    pub fn apply(&self, whitened: &[f32]) -> Vec<f32> {
        let n = self.unmixing.len();
        let mut out = vec![0.0f32; whitened.len()];
        for (z, s) in whitened.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            for (row, si) in self.unmixing.iter().zip(s.iter_mut()) {
                *si = row.iter().zip(z).map(|(w, &v)| w * f64::from(v)).sum::<f64>() as f32;
            }
        }
        out
    }
}

/// Runs symmetric FastICA on `whitened`, interleaved `frames × dims` data with (close to)
/// identity covariance, as produced by PCA whitening.
pub fn fast_ica(whitened: &[f32], dims: usize, config: &FastIcaConfig) -> Result<FastIca> {
    if dims == 0 || !whitened.len().is_multiple_of(dims) {
        return Err(Error::Shape(format!("{} values are not whole frames of {dims} dimensions", whitened.len())));
    }
    let frames = whitened.len() / dims;
    if frames < 2 * dims.max(2) {
        return Err(Error::TooShort { needed: 2 * dims.max(2), got: frames });
    }
    if let Some(i) = whitened.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite { frame: i / dims, channel: i % dims });
    }
    let n = dims;
    let stride = frames.div_ceil(config.max_frames.max(2 * n));
    let used: Vec<&[f32]> = whitened.chunks_exact(n).step_by(stride).collect();
    let t = used.len() as f64;

    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut w = Matrix::zeros(n, n);
    for v in &mut w.data {
        *v = rng.sample(StandardNormal);
    }
    let mut w = symmetric_decorrelation(&w);
    let (mut iterations, mut converged, mut change) = (0, false, f64::INFINITY);
    let mut u = vec![0.0f64; n];
    while iterations < config.max_iterations {
        iterations += 1;
        // E[z g(wᵢᵀz)] and E[g'(wᵢᵀz)] in one pass.
        let mut ezg = Matrix::zeros(n, n);
        let mut egp = vec![0.0f64; n];
        for z in &used {
            for (i, ui) in u.iter_mut().enumerate() {
                *ui = (0..n).map(|k| w[(i, k)] * f64::from(z[k])).sum::<f64>().tanh();
            }
            for i in 0..n {
                egp[i] += 1.0 - u[i] * u[i];
                for k in 0..n {
                    ezg[(i, k)] += u[i] * f64::from(z[k]);
                }
            }
        }
        let mut next = Matrix::zeros(n, n);
        for i in 0..n {
            for k in 0..n {
                next[(i, k)] = ezg[(i, k)] / t - egp[i] / t * w[(i, k)];
            }
        }
        let next = symmetric_decorrelation(&next);
        change =
            (0..n).map(|i| 1.0 - (0..n).map(|k| next[(i, k)] * w[(i, k)]).sum::<f64>().abs()).fold(0.0f64, f64::max);
        w = next;
        if change < config.tolerance {
            converged = true;
            break;
        }
    }
    if w.data.iter().any(|v| !v.is_finite()) {
        return Err(Error::Shape("FastICA diverged (non-finite rotation)".into()));
    }
    Ok(FastIca { unmixing: (0..n).map(|i| w.row(i).to_vec()).collect(), iterations, converged, last_change: change })
}

/// `(W Wᵀ)^{-1/2} W`: the orthogonal matrix closest to `W` with the same row directions
/// weighted symmetrically.
fn symmetric_decorrelation(w: &Matrix) -> Matrix {
    let n = w.rows;
    let eig = symmetric_eigen(&w.matmul(&w.transpose()));
    let mut inv_sqrt = Matrix::zeros(n, n);
    for r in 0..n {
        for c in 0..n {
            inv_sqrt[(r, c)] = (0..n)
                .map(|k| eig.vectors[(r, k)] * eig.vectors[(c, k)] / eig.values[k].max(f64::MIN_POSITIVE).sqrt())
                .sum();
        }
    }
    inv_sqrt.matmul(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::pearson;

    /// Uniform and Laplace sources, rotated by a known angle: FastICA undoes the rotation.
    #[test]
    fn recovers_a_rotation_of_independent_sources() {
        let mut rng = StdRng::seed_from_u64(7);
        let t = 20_000;
        let s1: Vec<f64> = (0..t).map(|_| rng.random_range(-3f64.sqrt()..3f64.sqrt())).collect();
        let s2: Vec<f64> = (0..t)
            .map(|_| {
                let u: f64 = rng.random_range(-0.5..0.5);
                -u.signum() * (1.0 - 2.0 * u.abs()).ln() / 2f64.sqrt()
            })
            .collect();
        let (c, s) = (0.8f64.cos(), 0.8f64.sin());
        let z: Vec<f32> =
            (0..t).flat_map(|i| [(c * s1[i] - s * s2[i]) as f32, (s * s1[i] + c * s2[i]) as f32]).collect();
        let ica = fast_ica(&z, 2, &FastIcaConfig::default()).unwrap();
        assert!(ica.converged, "{ica:?}");
        let out = ica.apply(&z);
        let est: Vec<Vec<f32>> = (0..2).map(|j| out.iter().skip(j).step_by(2).copied().collect()).collect();
        let truth: Vec<Vec<f32>> = [s1, s2].iter().map(|v| v.iter().map(|&x| x as f32).collect()).collect();
        for want in &truth {
            let best = est.iter().map(|e| pearson(want, e).abs()).fold(0.0, f64::max);
            assert!(best > 0.99, "|corr| {best}");
        }
        // The result is a rotation.
        let w = &ica.unmixing;
        for i in 0..2 {
            for k in 0..2 {
                let dot: f64 = (0..2).map(|c| w[i][c] * w[k][c]).sum();
                assert!((dot - if i == k { 1.0 } else { 0.0 }).abs() < 1e-9);
            }
        }
    }

    #[test]
    fn refuses_bad_shapes_and_values() {
        assert!(fast_ica(&[0.0; 7], 2, &FastIcaConfig::default()).is_err());
        assert!(fast_ica(&[0.0; 4], 2, &FastIcaConfig::default()).is_err());
        let mut z = vec![0.5f32; 40];
        z[13] = f32::NAN;
        assert!(matches!(fast_ica(&z, 2, &FastIcaConfig::default()), Err(Error::NonFinite { frame: 6, channel: 1 })));
    }
}
