//! Separation quality: absolute Pearson correlation of each true source with its
//! best-matching estimate under an optimal one-to-one matching (Hungarian algorithm), and
//! scale-invariant signal-to-distortion ratio (SI-SDR) in dB, which is insensitive to the
//! sign and scale ambiguity of ICA. Beside them, the absolute Spearman (rank) correlation
//! of the same pairs: nonlinear ICA can recover a source only up to a monotone distortion
//! of its values, which lowers Pearson's correlation but not the rank correlation, so the
//! two together tell a mis-separation (both low) from a distorted marginal (only Pearson
//! low).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Pearson correlation of two equally long signals (0 when either is constant).
pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return 0.0;
    }
    let ma = a[..n].iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
    let mb = b[..n].iter().map(|&x| f64::from(x)).sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a[..n].iter().zip(&b[..n]) {
        let (dx, dy) = (f64::from(x) - ma, f64::from(y) - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa <= 0.0 || sbb <= 0.0 { 0.0 } else { sab / (saa * sbb).sqrt() }
}

/// Spearman rank correlation of two equally long signals: Pearson's on their ranks (ties
/// share their mean rank); 0 when either is constant.
pub fn spearman(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len().min(b.len());
    pearson(&ranks(&a[..n]), &ranks(&b[..n]))
}

/// 1-based ranks of `values`, ties given the mean of the ranks they span.
fn ranks(values: &[f32]) -> Vec<f32> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&i, &j| values[i].total_cmp(&values[j]));
    let mut ranks = vec![0.0f32; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Ranks start..end (0-based) → mean 1-based rank (start + end + 1) / 2.
        let rank = (start + end + 1) as f32 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// Scale-invariant SDR of `estimate` against `reference`, in dB, both taken zero-mean.
///
/// The optimal scale (possibly negative) is projected out, so a sign flip or a gain
/// change of the estimate does not change the score.
pub fn si_sdr_db(reference: &[f32], estimate: &[f32]) -> f64 {
    let n = reference.len().min(estimate.len());
    let mr = reference[..n].iter().map(|&x| f64::from(x)).sum::<f64>() / n.max(1) as f64;
    let me = estimate[..n].iter().map(|&x| f64::from(x)).sum::<f64>() / n.max(1) as f64;
    let (mut dot, mut rr) = (0.0, 0.0);
    for (&r, &e) in reference[..n].iter().zip(&estimate[..n]) {
        let (r, e) = (f64::from(r) - mr, f64::from(e) - me);
        dot += r * e;
        rr += r * r;
    }
    if rr <= 0.0 {
        return f64::NEG_INFINITY;
    }
    let alpha = dot / rr;
    let (mut target, mut noise) = (0.0, 0.0);
    for (&r, &e) in reference[..n].iter().zip(&estimate[..n]) {
        let t = alpha * (f64::from(r) - mr);
        target += t * t;
        let d = f64::from(e) - me - t;
        noise += d * d;
    }
    if noise <= 0.0 {
        return f64::INFINITY;
    }
    10.0 * (target / noise).log10()
}

/// Minimum-cost assignment of rows to distinct columns (`rows ≤ cols`), by the
/// Hungarian (Kuhn–Munkres) algorithm with potentials, `O(rows² · cols)`.
///
/// Returns, for each row, the column assigned to it.
pub fn hungarian_min_cost(cost: &[Vec<f64>]) -> Vec<usize> {
    let n = cost.len();
    if n == 0 {
        return Vec::new();
    }
    let m = cost[0].len();
    assert!(n <= m, "hungarian_min_cost needs rows ≤ cols");
    // 1-based arrays as in the classic formulation; index 0 is the virtual start.
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    let mut p = vec![0usize; m + 1];
    let mut way = vec![0usize; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        let mut minv = vec![f64::INFINITY; m + 1];
        let mut used = vec![false; m + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=m {
                if !used[j] {
                    let cur = cost[i0 - 1][j - 1] - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut assignment = vec![0usize; n];
    for j in 1..=m {
        if p[j] != 0 {
            assignment[p[j] - 1] = j - 1;
        }
    }
    assignment
}

/// How well one true source was recovered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceScore {
    /// Index of the true source.
    pub truth: usize,
    /// Index of the estimate matched to it.
    pub estimate: usize,
    /// Absolute Pearson correlation.
    pub abs_corr: f64,
    /// Sign of the correlation (the estimate's sign relative to the truth).
    pub sign: f64,
    /// Scale-invariant SDR in dB.
    pub si_sdr_db: f64,
    /// Absolute Spearman (rank) correlation of the same pair.
    #[serde(default)]
    pub abs_rank_corr: f64,
}

/// Scores of every true source and their summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// One entry per true source, in truth order.
    pub sources: Vec<SourceScore>,
    /// Mean |corr| over true sources.
    pub mean_abs_corr: f64,
    /// Minimum |corr| over true sources.
    pub min_abs_corr: f64,
    /// Mean SI-SDR in dB.
    pub mean_si_sdr_db: f64,
    /// Minimum SI-SDR in dB.
    pub min_si_sdr_db: f64,
    /// Mean absolute Spearman (rank) correlation over true sources.
    #[serde(default)]
    pub mean_abs_rank_corr: f64,
}

/// Matches estimates to true sources one-to-one (maximising total |corr|) and scores them.
///
/// `truth` and `estimates` are lists of channels of equal length. There must be at least
/// as many estimates as true sources.
pub fn score(truth: &[Vec<f32>], estimates: &[Vec<f32>]) -> Result<Score> {
    if truth.is_empty() {
        return Err(Error::Shape("no true sources to score".into()));
    }
    if estimates.len() < truth.len() {
        return Err(Error::Shape(format!(
            "{} estimated sources cannot be matched to {} true sources",
            estimates.len(),
            truth.len()
        )));
    }
    let frames = truth[0].len();
    if truth.iter().chain(estimates).any(|c| c.len() != frames) {
        return Err(Error::Shape("true and estimated sources differ in length".into()));
    }
    let corr: Vec<Vec<f64>> = truth.iter().map(|t| estimates.iter().map(|e| pearson(t, e)).collect()).collect();
    let cost: Vec<Vec<f64>> = corr.iter().map(|row| row.iter().map(|c| 1.0 - c.abs()).collect()).collect();
    let assignment = hungarian_min_cost(&cost);
    let sources: Vec<SourceScore> = assignment
        .iter()
        .enumerate()
        .map(|(i, &j)| SourceScore {
            truth: i,
            estimate: j,
            abs_corr: corr[i][j].abs(),
            sign: if corr[i][j] < 0.0 { -1.0 } else { 1.0 },
            si_sdr_db: si_sdr_db(&truth[i], &estimates[j]),
            abs_rank_corr: spearman(&truth[i], &estimates[j]).abs(),
        })
        .collect();
    let n = sources.len() as f64;
    Ok(Score {
        mean_abs_corr: sources.iter().map(|s| s.abs_corr).sum::<f64>() / n,
        min_abs_corr: sources.iter().map(|s| s.abs_corr).fold(f64::INFINITY, f64::min),
        mean_si_sdr_db: sources.iter().map(|s| s.si_sdr_db).sum::<f64>() / n,
        min_si_sdr_db: sources.iter().map(|s| s.si_sdr_db).fold(f64::INFINITY, f64::min),
        mean_abs_rank_corr: sources.iter().map(|s| s.abs_rank_corr).sum::<f64>() / n,
        sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hungarian_finds_the_optimal_assignment() {
        // The greedy choice (row 0 → col 0, cost 1) is not optimal; 0→1, 1→0, 2→2 costs 5.
        let cost = vec![vec![1.0, 2.0, 3.0], vec![2.0, 4.0, 6.0], vec![3.0, 6.0, 1.0]];
        let a = hungarian_min_cost(&cost);
        let total: f64 = a.iter().enumerate().map(|(i, &j)| cost[i][j]).sum();
        assert_eq!(a, vec![1, 0, 2]);
        assert!((total - 5.0).abs() < 1e-12);
        // Rectangular: two rows, three columns.
        let a = hungarian_min_cost(&[vec![5.0, 1.0, 9.0], vec![1.0, 0.5, 9.0]]);
        assert_eq!(a, vec![1, 0]);
    }

    #[test]
    fn si_sdr_matches_the_analytic_value_and_ignores_sign_and_scale() {
        // estimate = s + e with e ⟂ s and |e|² = |s|²/100 → 20 dB exactly.
        let s: Vec<f32> = (0..1000).map(|i| if i % 2 == 0 { 1.0 } else { -1.0 }).collect();
        let e: Vec<f32> = (0..1000).map(|i| if (i / 2) % 2 == 0 { 0.1 } else { -0.1 }).collect();
        let est: Vec<f32> = s.iter().zip(&e).map(|(a, b)| a + b).collect();
        assert!((si_sdr_db(&s, &est) - 20.0).abs() < 1e-3);
        let flipped: Vec<f32> = est.iter().map(|x| -3.0 * x).collect();
        assert!((si_sdr_db(&s, &flipped) - 20.0).abs() < 1e-3);
    }

    #[test]
    fn rank_correlation_ignores_monotone_distortion_and_handles_ties() {
        let s: Vec<f32> = (0..400).map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0).collect();
        // A strictly increasing distortion: Spearman stays 1, Pearson drops.
        let squashed: Vec<f32> = s.iter().map(|&x| (4.0 * x).tanh()).collect();
        assert!((spearman(&s, &squashed) - 1.0).abs() < 1e-9);
        assert!(pearson(&s, &squashed) < 0.97);
        let reversed: Vec<f32> = s.iter().map(|&x| -(x.powi(3))).collect();
        assert!((spearman(&s, &reversed) + 1.0).abs() < 1e-9);
        // Ties share their mean rank: [1, 2, 2, 3] → ranks [1, 2.5, 2.5, 4].
        assert_eq!(ranks(&[1.0, 2.0, 2.0, 3.0]), [1.0, 2.5, 2.5, 4.0]);
        assert_eq!(spearman(&[1.0; 5], &[1.0, 2.0, 3.0, 4.0, 5.0]), 0.0);
    }

    #[test]
    fn score_matches_permuted_and_flipped_estimates() {
        let a: Vec<f32> = (0..500).map(|i| (i as f32 * 0.05).sin()).collect();
        let b: Vec<f32> = (0..500).map(|i| ((i * 31) % 23) as f32).collect();
        let est = vec![b.iter().map(|x| 2.0 * x).collect(), a.iter().map(|x| -x).collect()];
        let s = score(&[a, b], &est).unwrap();
        assert_eq!(s.sources[0].estimate, 1);
        assert_eq!(s.sources[0].sign, -1.0);
        assert_eq!(s.sources[1].estimate, 0);
        assert!(s.min_abs_corr > 0.999_999);
    }

    #[test]
    fn too_few_estimates_is_an_error() {
        assert!(score(&[vec![1.0, 2.0], vec![2.0, 1.0]], &[vec![1.0, 2.0]]).is_err());
    }
}
