//! How many sources does a recording hold? Information-theoretic criteria on the
//! eigenvalues of the channels' correlation matrix (Wax & Kailath 1985).
//!
//! With `n` sources in `m > n` channels plus white sensor noise, the `m − n` smallest
//! eigenvalues are equal (the noise floor) and the `n` largest stand above it. MDL picks
//! the `k` that best explains the spectrum as "k signal eigenvalues + a flat floor",
//! penalising the `k(2m − k)` free parameters by `½ ln T` each; it is consistent (the
//! error probability goes to zero as `T` grows), unlike AIC, which overestimates.

use serde::{Deserialize, Serialize};

/// A weakest direction carrying at least this fraction of the mean channel power is a
/// source, not noise. MDL cannot decide `n = m` on its own (with every direction a
/// signal there is no floor to compare against); this is the floor it is compared with:
/// 2 % of the mean power is 17 dB below it, well under the weakest source of a mixture
/// with condition number ≤ 5 (1/25 = 4 %) and above the noise of a 20 dB SNR recording (1 %).
pub const FULL_RANK_FLOOR: f64 = 0.02;

/// The estimate and its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceCount {
    /// Estimated number of sources.
    pub sources: usize,
    /// Eigenvalues used, largest first.
    pub eigenvalues: Vec<f64>,
    /// MDL score of each hypothesis `k = 0 … m−1` (lower is better).
    pub mdl: Vec<f64>,
    /// The limit the estimate was capped at (`--max-sources`), if any.
    pub cap: Option<usize>,
    /// Why this count was chosen, in words.
    pub reason: String,
}

/// Estimates the number of sources from the correlation eigenvalues (largest first) of
/// `frames` frames, at most `cap` and at least 1.
pub fn estimate_sources(eigenvalues: &[f64], frames: usize, cap: Option<usize>) -> SourceCount {
    let m = eigenvalues.len();
    let t = frames.max(2) as f64;
    let mean_power = eigenvalues.iter().sum::<f64>() / m.max(1) as f64;
    let positive: Vec<f64> = eigenvalues.iter().map(|&v| v.max(1e-12 * mean_power.max(f64::MIN_POSITIVE))).collect();
    let mdl: Vec<f64> = (0..m)
        .map(|k| {
            let tail = &positive[k..];
            let p = tail.len() as f64;
            let log_geometric = tail.iter().map(|v| v.ln()).sum::<f64>() / p;
            let arithmetic = tail.iter().sum::<f64>() / p;
            let fit = -t * p * (log_geometric - arithmetic.ln());
            let penalty = 0.5 * (k * (2 * m - k)) as f64 * t.ln();
            fit + penalty
        })
        .collect();
    let best = (0..m).min_by(|&a, &b| mdl[a].total_cmp(&mdl[b])).unwrap_or(0);
    let weakest = positive.last().copied().unwrap_or(0.0) / mean_power.max(f64::MIN_POSITIVE);
    let (mut sources, mut reason) = if best + 1 == m && weakest >= FULL_RANK_FLOOR {
        (m, format!("no noise floor: the weakest direction holds {:.1} % of the mean power", 100.0 * weakest))
    } else {
        (
            best.max(1),
            format!(
                "MDL: {best} directions above a noise floor at {:.2} % of the mean power",
                100.0 * positive[best.min(m - 1)..].iter().sum::<f64>() / (m - best.min(m - 1)) as f64 / mean_power
            ),
        )
    };
    if let Some(cap) = cap.filter(|&c| c >= 1 && c < sources) {
        reason = format!("{reason}; capped at --max-sources {cap}");
        sources = cap;
    }
    SourceCount { sources, eigenvalues: eigenvalues.to_vec(), mdl, cap, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_signal_subspace_above_a_flat_floor() {
        // Three sources above a noise floor of 0.01 in six channels.
        let eig = [2.9, 1.6, 0.45, 0.0102, 0.0100, 0.0098];
        let est = estimate_sources(&eig, 10_000, None);
        assert_eq!(est.sources, 3, "{est:?}");
        assert_eq!(estimate_sources(&eig, 10_000, Some(2)).sources, 2);
        assert_eq!(estimate_sources(&eig, 10_000, Some(5)).sources, 3);
    }

    #[test]
    fn every_direction_a_source_when_there_is_no_floor() {
        let eig = [1.9, 1.2, 0.6, 0.3];
        assert_eq!(estimate_sources(&eig, 10_000, None).sources, 4);
    }

    #[test]
    fn never_fewer_than_one() {
        let eig = [1.0, 1.0, 1.0];
        assert!(estimate_sources(&eig, 10_000, None).sources >= 1);
    }
}
