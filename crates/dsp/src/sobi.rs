//! Second-order blind identification (SOBI; Belouchrani, Abed-Meraim, Cardoso and
//! Moulines 1997): the rotation of whitened frames that makes their lagged covariances
//! jointly as diagonal as it can, by Jacobi rotations (Cardoso and Souloumiac 1996).
//!
//! Where the sources are Gaussian but each has its own spectrum — the modes of a structure
//! driven by broadband excitation — higher-order statistics (FastICA, the GMM priors) see
//! nothing to separate, while the lagged covariances of distinct spectra differ: SOBI is
//! the reference method of operational modal analysis by blind source separation, and the
//! yardstick of unmix's temporal models.

use serde::{Deserialize, Serialize};

use crate::linalg::Matrix;
use crate::{Error, Result};

/// Settings of [`sobi`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SobiConfig {
    /// The lags (in frames) whose covariances are diagonalised together.
    pub lags: Vec<usize>,
    /// Sweeps over every pair at most.
    pub max_sweeps: usize,
    /// Converged when no rotation of a sweep turns by more than this (its sine).
    pub tolerance: f64,
}

impl Default for SobiConfig {
    /// Lags 1 to 50 (a quarter of a second at 200 Hz: a period of a 4 Hz mode), 100
    /// sweeps, a rotation of 10⁻⁸.
    fn default() -> Self {
        Self { lags: (1..=50).collect(), max_sweeps: 100, tolerance: 1e-8 }
    }
}

/// The result of [`sobi`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sobi {
    /// The rotation, row-major `dims × dims`: the sources of a whitened frame `z` are
    /// `unmixing · z`.
    pub unmixing: Vec<Vec<f64>>,
    /// Sweeps run.
    pub sweeps: usize,
    /// Whether the tolerance was met.
    pub converged: bool,
}

impl Sobi {
    /// The sources of whitened frames (interleaved, `dims` wide), interleaved.
    pub fn apply(&self, whitened: &[f32]) -> Vec<f32> {
        let n = self.unmixing.len();
        whitened
            .chunks_exact(n)
            .flat_map(|z| {
                self.unmixing
                    .iter()
                    .map(move |row| row.iter().zip(z).map(|(w, &v)| w * f64::from(v)).sum::<f64>() as f32)
            })
            .collect()
    }
}

/// SOBI on `whitened`, interleaved `frames × dims` frames in time order with (close to)
/// identity covariance, as PCA whitening leaves them.
pub fn sobi(whitened: &[f32], dims: usize, config: &SobiConfig) -> Result<Sobi> {
    let n = dims;
    if n == 0 || !whitened.len().is_multiple_of(n) {
        return Err(Error::Shape(format!("{} values are not whole frames of {n} dimensions", whitened.len())));
    }
    let frames = whitened.len() / n;
    let longest = config.lags.iter().copied().max().unwrap_or(0);
    if config.lags.is_empty() || config.lags.contains(&0) {
        return Err(Error::Shape("SOBI needs lags of at least one frame".into()));
    }
    if frames < 2 * longest + 2 {
        return Err(Error::TooShort { needed: 2 * longest + 2, got: frames });
    }
    if let Some(i) = whitened.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite { frame: i / n, channel: i % n });
    }
    let z: Vec<f64> = whitened.iter().map(|&v| f64::from(v)).collect();
    // Every lag's covariance, symmetrised: its antisymmetric part is not diagonalisable
    // by a rotation and carries no more about the spectra.
    let mut covariances: Vec<Matrix> = config
        .lags
        .iter()
        .map(|&lag| {
            let mut r = Matrix::zeros(n, n);
            for t in 0..frames - lag {
                let (a, b) = (&z[t * n..(t + 1) * n], &z[(t + lag) * n..(t + lag + 1) * n]);
                for (row, &ai) in r.data.chunks_exact_mut(n).zip(a) {
                    for (v, &bj) in row.iter_mut().zip(b) {
                        *v += ai * bj;
                    }
                }
            }
            let scale = 1.0 / (frames - lag) as f64;
            let mut s = Matrix::zeros(n, n);
            for i in 0..n {
                for j in 0..n {
                    s.data[i * n + j] = 0.5 * scale * (r.data[i * n + j] + r.data[j * n + i]);
                }
            }
            s
        })
        .collect();
    let JointDiagonalisation { rotation: v, sweeps, converged } =
        joint_diagonalise(&mut covariances, config.max_sweeps, config.tolerance);
    // The sources are `Vᵀ z`.
    let unmixing = (0..n).map(|k| (0..n).map(|i| v.data[i * n + k]).collect()).collect();
    Ok(Sobi { unmixing, sweeps, converged })
}

/// A rotation that makes symmetric matrices jointly as diagonal as it can.
#[derive(Debug, Clone, PartialEq)]
pub struct JointDiagonalisation {
    /// `V` (`n × n`, orthogonal): every matrix `a` became `Vᵀ a V`.
    pub rotation: Matrix,
    /// Sweeps over every pair run.
    pub sweeps: usize,
    /// Whether no rotation of the last sweep turned by more than the tolerance.
    pub converged: bool,
}

/// Jointly diagonalises the symmetric `matrices` (all `n × n`) by Jacobi rotations
/// (Cardoso and Souloumiac 1996), in place: each becomes `Vᵀ a V`. At most `max_sweeps`
/// sweeps, until no rotation turns by more than `tolerance` (its sine).
pub fn joint_diagonalise(matrices: &mut [Matrix], max_sweeps: usize, tolerance: f64) -> JointDiagonalisation {
    let n = matrices.first().map_or(0, |a| a.rows);
    let mut v = Matrix::identity(n);
    let (mut sweeps, mut converged) = (0, n < 2);
    while !converged && sweeps < max_sweeps {
        sweeps += 1;
        converged = true;
        for p in 0..n {
            for q in p + 1..n {
                // The angle that most reduces the off-diagonal mass of every matrix at
                // once: the leading eigenvector of `Σ_k h_k h_kᵀ`, `h_k = (a_pp − a_qq,
                // 2 a_pq)`.
                let (mut gpp, mut gpq, mut gqq) = (0.0, 0.0, 0.0);
                for a in matrices.iter() {
                    let h0 = a.data[p * n + p] - a.data[q * n + q];
                    let h1 = a.data[p * n + q] + a.data[q * n + p];
                    gpp += h0 * h0;
                    gpq += h0 * h1;
                    gqq += h1 * h1;
                }
                let (ton, toff) = (gpp - gqq, 2.0 * gpq);
                let theta = 0.5 * toff.atan2(ton + (ton * ton + toff * toff).sqrt());
                let (s, c) = theta.sin_cos();
                if s.abs() <= tolerance {
                    continue;
                }
                converged = false;
                for a in matrices.iter_mut() {
                    rotate(a, p, q, c, s);
                }
                for i in 0..n {
                    let (vp, vq) = (v.data[i * n + p], v.data[i * n + q]);
                    v.data[i * n + p] = c * vp + s * vq;
                    v.data[i * n + q] = -s * vp + c * vq;
                }
            }
        }
    }
    JointDiagonalisation { rotation: v, sweeps, converged }
}

/// `a ← Gᵀ a G` for the Givens rotation `G` of the plane `(p, q)` (`G_pp = G_qq = c`,
/// `G_pq = −s`, `G_qp = s`).
fn rotate(a: &mut Matrix, p: usize, q: usize, c: f64, s: f64) {
    let n = a.rows;
    for j in 0..n {
        let (ap, aq) = (a.data[p * n + j], a.data[q * n + j]);
        a.data[p * n + j] = c * ap + s * aq;
        a.data[q * n + j] = -s * ap + c * aq;
    }
    for i in 0..n {
        let (ap, aq) = (a.data[i * n + p], a.data[i * n + q]);
        a.data[i * n + p] = c * ap + s * aq;
        a.data[i * n + q] = -s * ap + c * aq;
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    use super::*;
    use crate::metrics::pearson;

    /// Three Gaussian AR(2) processes — damped resonances at different frequencies, as a
    /// structure's modes under white excitation — rotated together: SOBI recovers each (up
    /// to order and sign) where no higher-order method could (every one is Gaussian).
    #[test]
    fn separates_gaussian_resonances_by_their_spectra() {
        let mut rng = StdRng::seed_from_u64(5);
        let frames = 20_000;
        let poles = [(0.97, 0.06), (0.95, 0.2), (0.9, 0.5)];
        let mut sources = vec![vec![0.0f64; frames]; 3];
        for (s, &(radius, angle)) in sources.iter_mut().zip(&poles) {
            let (a1, a2) = (2.0 * radius * f64::cos(angle), -radius * radius);
            for t in 2..frames {
                s[t] = a1 * s[t - 1] + a2 * s[t - 2] + rng.sample::<f64, _>(StandardNormal);
            }
            let sd = (s.iter().map(|v| v * v).sum::<f64>() / frames as f64).sqrt();
            s.iter_mut().for_each(|v| *v /= sd);
        }
        // A rotation of unit-variance, uncorrelated sources is white already.
        let (c1, s1, c2, s2) = (0.6f64.cos(), 0.6f64.sin(), 1.1f64.cos(), 1.1f64.sin());
        let r = [[c1, -s1 * c2, s1 * s2], [s1, c1 * c2, -c1 * s2], [0.0, s2, c2]];
        let mixed: Vec<f32> = (0..frames)
            .flat_map(|t| {
                let sources = &sources;
                r.iter().map(move |row| (0..3).map(|j| row[j] * sources[j][t]).sum::<f64>() as f32)
            })
            .collect();
        let fit = sobi(&mixed, 3, &SobiConfig::default()).unwrap();
        assert!(fit.converged, "{} sweeps", fit.sweeps);
        let estimates = fit.apply(&mixed);
        for (j, source) in sources.iter().enumerate() {
            let truth: Vec<f32> = source.iter().map(|&v| v as f32).collect();
            let best = (0..3)
                .map(|k| {
                    let e: Vec<f32> = estimates.iter().skip(k).step_by(3).copied().collect();
                    pearson(&e, &truth).abs()
                })
                .fold(0.0, f64::max);
            assert!(best > 0.99, "source {j}: best |corr| {best}");
        }
        assert!(sobi(&mixed[..30], 3, &SobiConfig::default()).is_err(), "too short for lag 50");
    }
}
