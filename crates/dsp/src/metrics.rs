//! Separation quality: absolute Pearson correlation of each true source with its
//! best-matching estimate under an optimal one-to-one matching (Hungarian algorithm), and
//! scale-invariant signal-to-distortion ratio (SI-SDR) in dB, which is insensitive to the
//! sign and scale ambiguity of ICA. Beside them, the absolute Spearman (rank) correlation
//! of the same pairs: nonlinear ICA can recover a source only up to a monotone distortion
//! of its values, which lowers Pearson's correlation but not the rank correlation, so the
//! two together tell a mis-separation (both low) from a distorted marginal (only Pearson
//! low).

use serde::{Deserialize, Serialize};
use unmix_core::limits::MAX_CHANNELS;

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

/// The highest SI-SDR reported: an estimate whose distortion is 10⁻¹⁰ of its target's
/// energy or less (a copy of the reference up to sign, scale and the rounding of the sums)
/// is at the ceiling, not at +∞, so that every score is a number (JSON has no infinity).
pub const SI_SDR_CEILING_DB: f64 = 100.0;

/// The lowest SI-SDR reported: an estimate that carries nothing of the reference (a
/// silent or constant channel) is at the floor, not at −∞.
pub const SI_SDR_FLOOR_DB: f64 = -100.0;

/// Scale-invariant SDR of `estimate` against `reference`, in dB, both taken zero-mean,
/// within [[`SI_SDR_FLOOR_DB`], [`SI_SDR_CEILING_DB`]].
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
        return SI_SDR_FLOOR_DB;
    }
    let alpha = dot / rr;
    let (mut target, mut noise) = (0.0, 0.0);
    for (&r, &e) in reference[..n].iter().zip(&estimate[..n]) {
        let t = alpha * (f64::from(r) - mr);
        target += t * t;
        let d = f64::from(e) - me - t;
        noise += d * d;
    }
    bounded_si_sdr(target, noise)
}

/// `10 log10(target / noise)` within the floor and the ceiling: no target (a constant
/// estimate) is the floor, no noise the ceiling.
fn bounded_si_sdr(target: f64, noise: f64) -> f64 {
    if target <= 0.0 {
        return SI_SDR_FLOOR_DB;
    }
    if noise <= 0.0 {
        return SI_SDR_CEILING_DB;
    }
    (10.0 * (target / noise).log10()).clamp(SI_SDR_FLOOR_DB, SI_SDR_CEILING_DB)
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
/// as many estimates as true sources. The same as feeding [`ScoreAccumulator`] the whole
/// signals.
pub fn score(truth: &[Vec<f32>], estimates: &[Vec<f32>]) -> Result<Score> {
    let frames = truth.first().map_or(0, Vec::len);
    if truth.iter().chain(estimates).any(|c| c.len() != frames) {
        return Err(Error::Shape("true and estimated sources differ in length".into()));
    }
    let mut acc = ScoreAccumulator::new(truth.len(), estimates.len())?;
    const BLOCK: usize = 4096;
    let (mut t, mut e) = (Vec::with_capacity(BLOCK * truth.len()), Vec::with_capacity(BLOCK * estimates.len()));
    for from in (0..frames).step_by(BLOCK) {
        let to = (from + BLOCK).min(frames);
        t.clear();
        e.clear();
        for i in from..to {
            t.extend(truth.iter().map(|c| c[i]));
            e.extend(estimates.iter().map(|c| c[i]));
        }
        acc.push(&t, &e)?;
    }
    acc.finish()
}

/// Frames kept for the rank correlation of long signals (see [`ScoreAccumulator`]).
pub const RANK_SAMPLE_FRAMES: usize = 1 << 20;

/// Scores true against estimated sources block by block, in memory that does not grow
/// with their length (an hour of audio scores like a second).
///
/// Pearson's correlations and SI-SDR come from running sums in `f64` (taken about each
/// channel's first value, so a large offset does not cancel digits away): both are exact
/// functions of the centred second moments. With both signals centred, SI-SDR is
/// `10 log10(c² / (1 − c²))` of their correlation `c`; it is computed as
/// `target / (energy − target)` from the moments so that a near-perfect estimate keeps
/// its digits. The rank correlation needs the values themselves: it is taken on every
/// frame up to [`RANK_SAMPLE_FRAMES`], and beyond on an evenly strided subset of between
/// half and all of that many (every 2^k-th frame), which estimates it to about 1e-3.
pub struct ScoreAccumulator {
    truth: usize,
    estimates: usize,
    frames: u64,
    /// First frame of the truth then of the estimates: the shift of the running sums.
    origin: Vec<f64>,
    /// Σ (x − origin) per channel, truth then estimates.
    sum: Vec<f64>,
    /// Σ (x − origin)² per channel, truth then estimates.
    square: Vec<f64>,
    /// Σ (t_i − origin)(e_j − origin), row-major `truth × estimates`.
    cross: Vec<f64>,
    /// Interleaved truth-then-estimate frames kept for the rank correlation.
    rank_sample: Vec<f32>,
    /// Every `rank_stride`-th frame is kept.
    rank_stride: u64,
    /// One frame minus the origin (scratch).
    shifted: Vec<f64>,
}

impl ScoreAccumulator {
    /// An empty accumulator for `truth` true and `estimates` estimated sources; at least as
    /// many estimates as true sources, and at least one of each.
    pub fn new(truth: usize, estimates: usize) -> Result<Self> {
        if truth == 0 {
            return Err(Error::Shape("no true sources to score".into()));
        }
        if estimates < truth {
            return Err(Error::Shape(format!(
                "{estimates} estimated sources cannot be matched to {truth} true sources"
            )));
        }
        // The matching grows with the product, the assignment with its cube.
        if estimates > MAX_CHANNELS {
            return Err(Error::Shape(format!("{estimates} sources to score: at most {MAX_CHANNELS}")));
        }
        let k = truth + estimates;
        Ok(Self {
            truth,
            estimates,
            frames: 0,
            origin: Vec::new(),
            sum: vec![0.0; k],
            square: vec![0.0; k],
            cross: vec![0.0; truth * estimates],
            rank_sample: Vec::new(),
            rank_stride: 1,
            shifted: vec![0.0; k],
        })
    }

    /// Frames seen so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Adds the same frames of the truth and of the estimates (interleaved, `truth` and
    /// `estimates` channels).
    pub fn push(&mut self, truth: &[f32], estimates: &[f32]) -> Result<()> {
        let (nt, ne) = (self.truth, self.estimates);
        if !truth.len().is_multiple_of(nt)
            || !estimates.len().is_multiple_of(ne)
            || truth.len() / nt != estimates.len() / ne
        {
            return Err(Error::Shape(format!(
                "a block of {} true and {} estimated samples is not the same whole frames of {nt} and {ne} channels",
                truth.len(),
                estimates.len()
            )));
        }
        let mut shifted = std::mem::take(&mut self.shifted);
        for (t, e) in truth.chunks_exact(nt).zip(estimates.chunks_exact(ne)) {
            if self.origin.is_empty() {
                self.origin.extend(t.iter().chain(e).map(|&x| f64::from(x)));
            }
            for ((d, &x), o) in shifted.iter_mut().zip(t.iter().chain(e)).zip(&self.origin) {
                *d = f64::from(x) - o;
            }
            let (dt, de) = shifted.split_at(nt);
            for (k, d) in shifted.iter().enumerate() {
                self.sum[k] += d;
                self.square[k] += d * d;
            }
            for (row, &t) in self.cross.chunks_exact_mut(ne).zip(dt) {
                for (c, &e) in row.iter_mut().zip(de) {
                    *c += t * e;
                }
            }
            self.frames += 1;
            self.keep_for_ranks(t, e);
        }
        self.shifted = shifted;
        Ok(())
    }

    /// Keeps every `rank_stride`-th frame; when the sample is full, drops every other
    /// frame of it and doubles the stride, so it stays evenly spread over all frames.
    fn keep_for_ranks(&mut self, t: &[f32], e: &[f32]) {
        if !(self.frames - 1).is_multiple_of(self.rank_stride) {
            return;
        }
        let width = self.truth + self.estimates;
        if self.rank_sample.len() / width == RANK_SAMPLE_FRAMES {
            let mut kept = 0;
            for i in (0..RANK_SAMPLE_FRAMES).step_by(2) {
                self.rank_sample.copy_within(i * width..(i + 1) * width, kept * width);
                kept += 1;
            }
            self.rank_sample.truncate(kept * width);
            self.rank_stride *= 2;
            if !(self.frames - 1).is_multiple_of(self.rank_stride) {
                return;
            }
        }
        self.rank_sample.extend_from_slice(t);
        self.rank_sample.extend_from_slice(e);
    }

    /// Centred second moment of channels `a` and `b` (indices into truth-then-estimates;
    /// `cross` is Σ of their shifted product).
    fn centred(&self, a: usize, b: usize, cross: f64) -> f64 {
        cross - self.sum[a] * self.sum[b] / self.frames as f64
    }

    /// Matches estimates to true sources one-to-one (maximising total |corr|) and scores
    /// the pairs. Fewer than two frames, or a true source without variance (silent or
    /// constant: nothing to recover), is an error; a constant estimate scores |corr| 0 and
    /// the SI-SDR floor.
    pub fn finish(&self) -> Result<Score> {
        let (nt, ne) = (self.truth, self.estimates);
        let var = |k: usize| self.centred(k, k, self.square[k]);
        if self.frames < 2 {
            return Err(Error::Shape(format!(
                "{} frame{} to score; a correlation needs at least 2",
                self.frames,
                if self.frames == 1 { "" } else { "s" }
            )));
        }
        if let Some(i) = (0..nt).find(|&i| var(i) <= 0.0) {
            return Err(Error::Shape(format!(
                "true source {} is constant (silent): there is nothing to score it against",
                i + 1
            )));
        }
        let corr: Vec<Vec<f64>> = (0..nt)
            .map(|i| {
                (0..ne)
                    .map(|j| {
                        let (vt, ve) = (var(i), var(nt + j));
                        if self.frames < 2 || vt <= 0.0 || ve <= 0.0 {
                            0.0
                        } else {
                            self.centred(i, nt + j, self.cross[i * ne + j]) / (vt * ve).sqrt()
                        }
                    })
                    .collect()
            })
            .collect();
        let cost: Vec<Vec<f64>> = corr.iter().map(|row| row.iter().map(|c| 1.0 - c.abs()).collect()).collect();
        let assignment = hungarian_min_cost(&cost);
        let width = nt + ne;
        let column = |k: usize| -> Vec<f32> { self.rank_sample.chunks_exact(width).map(|f| f[k]).collect() };
        let sources: Vec<SourceScore> = assignment
            .iter()
            .enumerate()
            .map(|(i, &j)| {
                let (rr, ee) = (var(i), var(nt + j));
                let dot = self.centred(i, nt + j, self.cross[i * ne + j]);
                SourceScore {
                    truth: i,
                    estimate: j,
                    abs_corr: corr[i][j].abs(),
                    sign: if corr[i][j] < 0.0 { -1.0 } else { 1.0 },
                    si_sdr_db: si_sdr_from_moments(rr, ee, dot),
                    abs_rank_corr: spearman(&column(i), &column(nt + j)).abs(),
                }
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
}

/// SI-SDR in dB from the centred moments of reference `r` and estimate `e`: `rr = Σ r²`,
/// `ee = Σ e²`, `dot = Σ r e`. The target is the projection `α r`, `α = dot / rr`, of
/// energy `dot² / rr`; the distortion is what remains of `ee`. A distortion below the
/// rounding of the sums (a copy of the reference, up to sign and scale) is the ceiling; an
/// estimate without variance, the floor.
fn si_sdr_from_moments(rr: f64, ee: f64, dot: f64) -> f64 {
    if rr <= 0.0 || ee <= 0.0 {
        return SI_SDR_FLOOR_DB;
    }
    let target = dot * dot / rr;
    let noise = ee - target;
    if noise <= ee * 1e-14 {
        return SI_SDR_CEILING_DB;
    }
    bounded_si_sdr(target, noise)
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

    /// The running sums give the two-pass values whatever the block sizes, also with a
    /// large offset on the signals; a copy of a source scores +∞ dB.
    #[test]
    fn accumulated_scores_equal_the_two_pass_values() {
        let frames = 5000;
        let a: Vec<f32> = (0..frames).map(|i| 1e4 + (i as f32 * 0.031).sin() + ((i * 7) % 13) as f32 * 0.01).collect();
        let b: Vec<f32> = (0..frames).map(|i| ((i * 31) % 23) as f32 - 11.0).collect();
        let e0: Vec<f32> = b.iter().zip(&a).map(|(x, y)| 0.5 * x + 0.05 * (y - 1e4)).collect();
        let e1: Vec<f32> = a.iter().map(|x| -2.0 * x).collect();
        let e2: Vec<f32> = (0..frames).map(|i| (i as f32 * 0.7).cos()).collect();
        let (truth, est) = (vec![a, b], vec![e0, e1, e2]);
        let whole = score(&truth, &est).unwrap();
        assert_eq!((whole.sources[0].estimate, whole.sources[1].estimate), (1, 0));
        assert_eq!(whole.sources[0].si_sdr_db, SI_SDR_CEILING_DB, "a scaled, flipped copy");
        for (s, (t, e)) in whole.sources.iter().zip([(&truth[0], &est[1]), (&truth[1], &est[0])]) {
            assert!((s.abs_corr - pearson(t, e).abs()).abs() < 1e-9, "{} vs {}", s.abs_corr, pearson(t, e));
            assert!((s.abs_rank_corr - spearman(t, e).abs()).abs() < 1e-12);
        }
        assert!((whole.sources[1].si_sdr_db - si_sdr_db(&truth[1], &est[0])).abs() < 1e-6);
        // Blocks of any size give the same sums, in the same order: the same scores.
        let interleave = |c: &[Vec<f32>], from: usize, to: usize| -> Vec<f32> {
            (from..to).flat_map(|i| c.iter().map(move |ch| ch[i])).collect()
        };
        let mut acc = ScoreAccumulator::new(2, 3).unwrap();
        let mut at = 0;
        for len in [1usize, 7, 999, 4096].iter().cycle() {
            let to = (at + len).min(frames);
            acc.push(&interleave(&truth, at, to), &interleave(&est, at, to)).unwrap();
            at = to;
            if at == frames {
                break;
            }
        }
        assert_eq!(acc.frames(), frames as u64);
        assert_eq!(acc.finish().unwrap(), whole);
        assert!(acc.push(&[1.0, 2.0], &[1.0, 2.0]).is_err(), "two true samples are one frame, two estimates not three");
    }

    /// Beyond the cap the rank correlation is taken on an evenly strided subset and stays
    /// within 1e-3 of the exact one.
    #[test]
    fn rank_correlation_of_long_signals_on_a_strided_subset() {
        let frames = 2 * RANK_SAMPLE_FRAMES + 12_345;
        let mut state = 12345u64;
        let mut uniform = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let t: Vec<f32> = (0..frames).map(|_| uniform()).collect();
        let e: Vec<f32> = t.iter().map(|&x| (6.0 * x).tanh() + 0.3 * uniform()).collect();
        let mut acc = ScoreAccumulator::new(1, 1).unwrap();
        for (t, e) in t.chunks(100_000).zip(e.chunks(100_000)) {
            acc.push(t, e).unwrap();
        }
        let kept = acc.rank_sample.len() / 2;
        assert!((RANK_SAMPLE_FRAMES / 2..=RANK_SAMPLE_FRAMES).contains(&kept), "{kept}");
        assert_eq!(acc.rank_stride, 4);
        let got = acc.finish().unwrap().sources[0].abs_rank_corr;
        let exact = spearman(&t, &e).abs();
        assert!((got - exact).abs() < 1e-3, "{got} vs {exact}");
    }

    #[test]
    fn too_few_estimates_is_an_error() {
        assert!(score(&[vec![1.0, 2.0], vec![2.0, 1.0]], &[vec![1.0, 2.0]]).is_err());
    }

    /// Every score is a number: a silent or constant estimate is |corr| 0 at the SI-SDR
    /// floor (it was +∞, JSON null); a perfect copy is at the ceiling; a true source
    /// without variance and a single frame are errors that say so (it was −∞).
    #[test]
    fn degenerate_cases_are_defined() {
        let truth: Vec<f32> = (0..100).map(|i| (i as f32 * 0.3).sin()).collect();
        for constant in [vec![0.0f32; 100], vec![0.25f32; 100]] {
            let s = score(std::slice::from_ref(&truth), std::slice::from_ref(&constant)).unwrap();
            assert_eq!((s.sources[0].abs_corr, s.sources[0].si_sdr_db), (0.0, SI_SDR_FLOOR_DB));
            assert_eq!(si_sdr_db(&truth, &constant), SI_SDR_FLOOR_DB);
            assert!(s.mean_si_sdr_db.is_finite() && s.min_si_sdr_db.is_finite());
        }
        let s = score(std::slice::from_ref(&truth), std::slice::from_ref(&truth)).unwrap();
        assert_eq!(s.sources[0].si_sdr_db, SI_SDR_CEILING_DB);
        assert_eq!(si_sdr_db(&truth, &truth), SI_SDR_CEILING_DB);
        let e = score(&[vec![1.0; 100]], std::slice::from_ref(&truth)).unwrap_err().to_string();
        assert!(e.contains("true source 1 is constant"), "{e}");
        let e = score(&[vec![0.5]], &[vec![0.5]]).unwrap_err().to_string();
        assert!(e.contains("1 frame to score; a correlation needs at least 2"), "{e}");
    }
}
