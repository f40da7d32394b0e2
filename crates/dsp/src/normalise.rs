//! Per-channel normalisation and optional PCA whitening, fitted once on the training
//! segment and applied unchanged at inference (the statistics travel in the model file).

use serde::{Deserialize, Serialize};
use unmix_core::Recording;

use crate::linalg::{Matrix, symmetric_eigen};
use crate::{Error, Result};

/// How to normalise a recording before the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormaliserConfig {
    /// Project the standardised channels onto their top `dims` principal components and
    /// scale each to unit variance (PCA whitening). `None` keeps every channel.
    pub whiten_to: Option<usize>,
}

/// Fitted normalisation: `x ↦ W · ((x − mean) / scale)`, with `W` the identity when no
/// whitening was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normaliser {
    /// Per-channel mean of the training segment.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation of the training segment.
    pub scale: Vec<f32>,
    /// Whitening matrix, `dims × channels` row-major, if whitening is on.
    pub whitening: Option<Vec<f32>>,
    /// Eigenvalues of the standardised covariance, largest first (evidence for the number
    /// of sources; kept whether or not whitening is applied).
    pub eigenvalues: Vec<f32>,
    dims: usize,
}

impl Normaliser {
    /// Fits the statistics on `segment`.
    ///
    /// Fails on a non-finite value, on a constant channel (it carries no information and
    /// would divide by zero), and when the whitened subspace would be rank-deficient.
    pub fn fit(segment: &Recording, config: NormaliserConfig) -> Result<Self> {
        let m = segment.channels();
        let t = segment.frames();
        if t < 2 {
            return Err(Error::TooShort { needed: 2, got: t });
        }
        let mut sum = vec![0.0f64; m];
        let mut max_abs = vec![0.0f64; m];
        for (frame, values) in segment.iter_frames().enumerate() {
            for (channel, &v) in values.iter().enumerate() {
                if !v.is_finite() {
                    return Err(Error::NonFinite { frame, channel });
                }
                sum[channel] += f64::from(v);
                max_abs[channel] = max_abs[channel].max(f64::from(v).abs());
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / t as f64).collect();
        let mut cov = Matrix::zeros(m, m);
        for values in segment.iter_frames() {
            for i in 0..m {
                let di = f64::from(values[i]) - mean[i];
                for j in i..m {
                    cov[(i, j)] += di * (f64::from(values[j]) - mean[j]);
                }
            }
        }
        for i in 0..m {
            for j in i..m {
                cov[(i, j)] /= (t - 1) as f64;
                cov[(j, i)] = cov[(i, j)];
            }
        }
        let mut scale = vec![0.0f64; m];
        for c in 0..m {
            let sd = cov[(c, c)].sqrt();
            // Relative threshold: a channel whose spread is at rounding level of its own
            // magnitude is constant for all purposes (an exact zero is caught too).
            if sd <= 1e-7 * max_abs[c] {
                return Err(Error::ConstantChannel { channel: c });
            }
            scale[c] = sd;
        }
        // Correlation matrix of the standardised channels.
        let mut corr = cov.clone();
        for i in 0..m {
            for j in 0..m {
                corr[(i, j)] /= scale[i] * scale[j];
            }
        }
        let eig = symmetric_eigen(&corr);
        let (whitening, dims) = match config.whiten_to {
            None => (None, m),
            Some(dims) => {
                if dims == 0 || dims > m {
                    return Err(Error::BadReduction { channels: m, dims });
                }
                let top = eig.values[0].max(f64::MIN_POSITIVE);
                let rank = eig.values.iter().filter(|&&v| v > 1e-9 * top).count();
                if rank < dims {
                    return Err(Error::RankDeficient { rank, dims });
                }
                let mut w = Vec::with_capacity(dims * m);
                for k in 0..dims {
                    let inv_sqrt = 1.0 / eig.values[k].sqrt();
                    // Fix each eigenvector's sign (largest entry positive) so that refits
                    // on similar data give the same projection.
                    let col: Vec<f64> = (0..m).map(|i| eig.vectors[(i, k)]).collect();
                    let pivot = col.iter().copied().fold(0.0f64, |a, b| if b.abs() > a.abs() { b } else { a });
                    let sign = if pivot < 0.0 { -1.0 } else { 1.0 };
                    w.extend(col.iter().map(|v| (sign * v * inv_sqrt) as f32));
                }
                (Some(w), dims)
            }
        };
        Ok(Self {
            mean: mean.iter().map(|&v| v as f32).collect(),
            scale: scale.iter().map(|&v| v as f32).collect(),
            whitening,
            eigenvalues: eig.values.iter().map(|&v| v as f32).collect(),
            dims,
        })
    }

    /// The same statistics with the samples left as they are (mean 0, scale 1, no
    /// whitening): for a model that reads the recording in units of its full scale. The
    /// eigenvalues stay, as evidence for the number of sources.
    pub fn full_scale(self) -> Self {
        let m = self.mean.len();
        Self { mean: vec![0.0; m], scale: vec![1.0; m], whitening: None, dims: m, ..self }
    }

    /// Channels expected at the input.
    pub fn input_channels(&self) -> usize {
        self.mean.len()
    }

    /// Dimensions produced (the model's input width).
    pub fn output_dims(&self) -> usize {
        self.dims
    }

    /// The nats per frame this normalisation adds to an NLL of the frames it gives, so that
    /// the sum is the density of the samples as read: `Σ_c ln σ_c`, and `½ Σ_k ln λ_k` over
    /// the kept eigenvalues when it whitens — minus the log Jacobian of
    /// `x ↦ Λ^{-1/2} Eᵀ D⁻¹ (x − μ)`. Exact when it keeps every dimension; with fewer it is the
    /// density of the frames' principal subspace (the Gaussian remainder any model would add
    /// for the other dimensions left out). Models fitted on differently normalised
    /// frames of one recording compare on this scale.
    pub fn nll_offset_nats(&self) -> f64 {
        let scales: f64 = self.scale.iter().map(|&s| f64::from(s).ln()).sum();
        let spread: f64 = match self.whitening {
            Some(_) => self.eigenvalues[..self.dims].iter().map(|&l| 0.5 * f64::from(l).ln()).sum(),
            None => 0.0,
        };
        scales + spread
    }

    /// Checks that the statistics describe one normalisation, as a model file must before
    /// its normaliser is used: a mean and a positive, finite scale for every channel, at
    /// least one output dimension and no more than there are channels, an eigenvalue for
    /// every channel, and a whitening matrix of `dims × channels` finite values when there
    /// is one (or, without one, as many dimensions as channels).
    pub fn check(&self) -> Result<()> {
        let (m, d) = (self.mean.len(), self.dims);
        let invalid = |what: String| Err(Error::Invalid(what));
        if self.scale.len() != m {
            return invalid(format!("{} scales for {m} channel means", self.scale.len()));
        }
        if d == 0 || d > m {
            return invalid(format!("{d} output dimensions from {m} channels"));
        }
        if self.mean.iter().any(|v| !v.is_finite()) || self.scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return invalid("a mean that is not finite, or a scale that is not positive".into());
        }
        if self.eigenvalues.len() != m || self.eigenvalues.iter().any(|v| !v.is_finite()) {
            return invalid(format!("{} eigenvalues for {m} channels, or one not finite", self.eigenvalues.len()));
        }
        match &self.whitening {
            Some(w) if w.len() != d * m || w.iter().any(|v| !v.is_finite()) => {
                invalid(format!("a whitening matrix of {} values for {d} × {m}, or one not finite", w.len()))
            }
            None if d != m => invalid(format!("{d} output dimensions from {m} channels without whitening")),
            _ => Ok(()),
        }
    }

    /// Normalises one frame into `out` (`output_dims()` long) without allocating.
    pub fn transform_frame(&self, frame: &[f32], out: &mut [f32]) {
        match &self.whitening {
            None => {
                for ((o, &x), (&mu, &sd)) in out.iter_mut().zip(frame).zip(self.mean.iter().zip(&self.scale)) {
                    *o = (x - mu) / sd;
                }
            }
            Some(w) => {
                let m = self.mean.len();
                for (k, o) in out.iter_mut().enumerate() {
                    let row = &w[k * m..(k + 1) * m];
                    *o = row
                        .iter()
                        .zip(frame)
                        .zip(self.mean.iter().zip(&self.scale))
                        .map(|((&wk, &x), (&mu, &sd))| wk * (x - mu) / sd)
                        .sum();
                }
            }
        }
    }

    /// Normalises a whole recording into a new interleaved buffer (`frames × output_dims`).
    pub fn transform(&self, recording: &Recording) -> Result<Vec<f32>> {
        if recording.channels() != self.input_channels() {
            return Err(Error::Shape(format!(
                "normaliser fitted on {} channels, input has {}",
                self.input_channels(),
                recording.channels()
            )));
        }
        let dims = self.dims;
        let mut out = vec![0.0f32; recording.frames() * dims];
        for (frame, o) in recording.iter_frames().zip(out.chunks_exact_mut(dims)) {
            self.transform_frame(frame, o);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording(channels: &[Vec<f32>]) -> Recording {
        Recording::from_channels(100, channels).unwrap()
    }

    /// What `fit` makes passes `check`, whitened or not, at full scale too.
    #[test]
    fn fitted_statistics_pass_their_check() {
        let a: Vec<f32> = (0..500).map(|i| (i as f32 * 0.1).sin()).collect();
        let b: Vec<f32> = (0..500).map(|i| ((i * 7919) % 101) as f32 - 20.0).collect();
        let c: Vec<f32> = (0..500).map(|i| ((i * 31) % 17) as f32 + (i as f32 * 0.37).cos()).collect();
        let rec = recording(&[a, b, c]);
        for whiten_to in [None, Some(2), Some(3)] {
            let norm = Normaliser::fit(&rec, NormaliserConfig { whiten_to }).unwrap();
            norm.check().unwrap();
            norm.full_scale().check().unwrap();
        }
    }

    /// With every dimension kept, the offset is `−ln|det J|` of the whole map
    /// `x ↦ W D⁻¹ (x − μ)`, computed here from the fitted matrix itself; standardising alone
    /// gives `Σ ln σ_c`.
    #[test]
    fn nll_offset_is_minus_the_log_jacobian_of_the_map() {
        let a: Vec<f32> = (0..800).map(|i| (i as f32 * 0.1).sin() * 3.0).collect();
        let b: Vec<f32> = (0..800).map(|i| ((i * 7919) % 101) as f32 * 0.2 + a[i]).collect();
        let c: Vec<f32> = (0..800).map(|i| ((i * 31) % 17) as f32 - 0.5 * b[i]).collect();
        let rec = recording(&[a, b, c]);
        let whitened = Normaliser::fit(&rec, NormaliserConfig { whiten_to: Some(3) }).unwrap();
        let w = whitened.whitening.as_ref().unwrap();
        let map = Matrix {
            rows: 3,
            cols: 3,
            data: (0..9).map(|i| f64::from(w[i]) / f64::from(whitened.scale[i % 3])).collect(),
        };
        let (log_det, _) = crate::linalg::log_det_and_inverse(&map).unwrap();
        assert!((whitened.nll_offset_nats() + log_det).abs() < 1e-4, "{} vs {}", whitened.nll_offset_nats(), -log_det);
        let standardised = Normaliser::fit(&rec, NormaliserConfig { whiten_to: None }).unwrap();
        let sum: f64 = standardised.scale.iter().map(|&s| f64::from(s).ln()).sum();
        assert!((standardised.nll_offset_nats() - sum).abs() < 1e-12);
        assert!(standardised.nll_offset_nats().abs() > 0.1, "the scales must not all be 1 for the test to tell");
    }

    #[test]
    fn standardised_channels_have_zero_mean_unit_variance() {
        let a: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.1).sin() * 3.0 + 5.0).collect();
        let b: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 101) as f32 - 20.0).collect();
        let rec = recording(&[a, b]);
        let norm = Normaliser::fit(&rec, NormaliserConfig { whiten_to: None }).unwrap();
        let out = norm.transform(&rec).unwrap();
        for c in 0..2 {
            let v: Vec<f64> = out.iter().skip(c).step_by(2).map(|&x| f64::from(x)).collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
            assert!(mean.abs() < 1e-5, "mean {mean}");
            assert!((var - 1.0).abs() < 1e-4, "var {var}");
        }
    }

    #[test]
    fn whitening_decorrelates_and_reduces() {
        // Three channels that are mixtures of two signals: rank 2.
        let s1: Vec<f32> = (0..2000).map(|i| (i as f32 * 0.013).sin()).collect();
        let s2: Vec<f32> = (0..2000).map(|i| ((i * 37) % 17) as f32 / 17.0 - 0.5).collect();
        let x: Vec<Vec<f32>> = [(1.0, 0.5), (0.3, -1.0), (0.7, 0.7)]
            .iter()
            .map(|&(a, b)| s1.iter().zip(&s2).map(|(u, v)| a * u + b * v).collect())
            .collect();
        let rec = recording(&x);
        let norm = Normaliser::fit(&rec, NormaliserConfig { whiten_to: Some(2) }).unwrap();
        assert_eq!(norm.output_dims(), 2);
        let out = norm.transform(&rec).unwrap();
        let n = out.len() / 2;
        let cov = |i: usize, j: usize| {
            out.chunks_exact(2).map(|f| f64::from(f[i]) * f64::from(f[j])).sum::<f64>() / (n - 1) as f64
        };
        assert!((cov(0, 0) - 1.0).abs() < 1e-3);
        assert!((cov(1, 1) - 1.0).abs() < 1e-3);
        assert!(cov(0, 1).abs() < 1e-3);
        // Asking for three directions from rank-2 data is refused.
        assert!(matches!(
            Normaliser::fit(&rec, NormaliserConfig { whiten_to: Some(3) }),
            Err(Error::RankDeficient { rank: 2, dims: 3 })
        ));
    }

    #[test]
    fn constant_channel_is_refused() {
        let rec = recording(&[vec![1.0, 2.0, 3.0, 4.0], vec![0.5; 4]]);
        assert!(matches!(
            Normaliser::fit(&rec, NormaliserConfig { whiten_to: None }),
            Err(Error::ConstantChannel { channel: 1 })
        ));
    }

    #[test]
    fn non_finite_value_is_refused() {
        let rec = recording(&[vec![1.0, f32::NAN, 3.0], vec![0.5, 0.1, 0.2]]);
        assert!(matches!(
            Normaliser::fit(&rec, NormaliserConfig { whiten_to: None }),
            Err(Error::NonFinite { frame: 1, channel: 0 })
        ));
    }
}
