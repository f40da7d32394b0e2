//! Seeded synthetic mixtures: the benchmark problems of the PDGMM-VAE paper (section 4).
//!
//! `n` i.i.d. sources, each with a different non-Gaussian marginal (see [`Marginal`]),
//! standardised to zero mean and unit variance, then mixed into `m ≥ n` sensors either
//! linearly by a random well-conditioned matrix or nonlinearly as `tanh(A2 tanh(A1 s))`.
//! Everything is drawn from one seeded generator, so a `(kind, sources, sensors, frames,
//! seed)` tuple always gives the same data.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, Normal, StandardNormal, StudentT};
use serde::{Deserialize, Serialize};
use unmix_core::Recording;
use unmix_dsp::linalg::Matrix;

/// Largest condition number accepted for a linear mixing matrix: mixtures stay
/// separable without being trivially close to the identity.
pub const MAX_CONDITION: f64 = 5.0;

/// Standard deviation of every tanh input in the nonlinear mixture: it bends clearly
/// (tanh(1.5) ≈ 0.91) without saturating most samples.
pub const TANH_INPUT_STD: f64 = 1.5;

/// How sources are mixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MixKind {
    /// `x = A s`, `A` random with condition number ≤ [`MAX_CONDITION`].
    Linear,
    /// `x = tanh(A2 tanh(A1 s))`, rows scaled so each tanh input has std [`TANH_INPUT_STD`].
    Nonlinear,
}

/// The marginal distribution of a synthetic source; source `j` uses `ALL[j % 7]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Marginal {
    /// Uniform: sub-Gaussian, symmetric (kurtosis −1.2).
    Uniform,
    /// Laplace: super-Gaussian, heavy-tailed (excess kurtosis 3).
    Laplace,
    /// Exponential, centred: skewed (skewness 2).
    Exponential,
    /// Two Gaussians at ±1 with std 0.3: bimodal.
    Bimodal,
    /// Student-t with 5 degrees of freedom: heavy tails (excess kurtosis 6).
    StudentT5,
    /// A sinusoid at a uniformly random phase: arcsine law, sub-Gaussian.
    Sinusoid,
    /// Skewed two-component mixture: 80 % N(−0.5, 0.5²), 20 % N(2, 0.5²).
    SkewedMixture,
}

impl Marginal {
    /// The cycle of marginals given to successive sources.
    pub const ALL: [Marginal; 7] = [
        Marginal::Uniform,
        Marginal::Laplace,
        Marginal::Exponential,
        Marginal::Bimodal,
        Marginal::StudentT5,
        Marginal::Sinusoid,
        Marginal::SkewedMixture,
    ];

    fn draw(self, rng: &mut StdRng) -> f64 {
        match self {
            Marginal::Uniform => rng.random_range(-1.0..1.0),
            Marginal::Laplace => {
                let u: f64 = rng.random_range(-0.5..0.5);
                -u.signum() * (1.0 - 2.0 * u.abs()).max(f64::MIN_POSITIVE).ln()
            }
            Marginal::Exponential => Exp::new(1.0).map_or(0.0, |d| d.sample(rng)),
            Marginal::Bimodal => {
                let centre = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                centre + 0.3 * rng.sample::<f64, _>(StandardNormal)
            }
            Marginal::StudentT5 => StudentT::new(5.0).map_or(0.0, |d| d.sample(rng)),
            Marginal::Sinusoid => (rng.random_range(0.0..std::f64::consts::TAU)).sin(),
            Marginal::SkewedMixture => {
                let n: f64 = rng.sample(StandardNormal);
                if rng.random_bool(0.8) { -0.5 + 0.5 * n } else { 2.0 + 0.5 * n }
            }
        }
    }
}

/// What was generated, for `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthMeta {
    /// Mixing kind.
    pub kind: MixKind,
    /// Seed of the generator.
    pub seed: u64,
    /// Number of sources `n`.
    pub sources: usize,
    /// Number of sensors `m`.
    pub sensors: usize,
    /// Frames `T`.
    pub frames: usize,
    /// Sample rate written into the WAV files.
    pub sample_rate_hz: u32,
    /// Marginal of each source.
    pub marginals: Vec<Marginal>,
    /// Linear: the `m × n` mixing matrix. Nonlinear: `A1` (`m × n`).
    pub mixing: Vec<Vec<f64>>,
    /// Nonlinear only: `A2` (`m × m`).
    pub mixing2: Option<Vec<Vec<f64>>>,
    /// Sensor noise, as SNR in dB per sensor, if any.
    pub snr_db: Option<f64>,
}

/// A generated problem: the mixture, the true sources and how they were made.
#[derive(Debug, Clone)]
pub struct Synth {
    /// `T × m` observed mixture.
    pub mixture: Recording,
    /// `T × n` true sources (zero mean, unit variance).
    pub truth: Recording,
    /// Parameters and mixing matrices.
    pub meta: SynthMeta,
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SynthConfig {
    /// Mixing kind.
    pub kind: MixKind,
    /// Sources `n ≥ 1`.
    pub sources: usize,
    /// Sensors `m ≥ n`.
    pub sensors: usize,
    /// Frames `T ≥ 2`.
    pub frames: usize,
    /// Seed.
    pub seed: u64,
    /// Sample rate of the written files (the data are i.i.d., so it is a label).
    pub sample_rate_hz: u32,
    /// Optional white sensor noise at this SNR (dB, relative to each sensor's power).
    pub snr_db: Option<f64>,
}

/// Invalid generation settings.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Sources, sensors or frames out of range.
    #[error("invalid synth settings: {0}")]
    Invalid(String),
}

impl SynthConfig {
    /// The paper's setting: 3 sources into 3 sensors, 10 000 frames.
    pub fn paper(kind: MixKind, seed: u64) -> Self {
        Self { kind, sources: 3, sensors: 3, frames: 10_000, seed, sample_rate_hz: 8_000, snr_db: None }
    }
}

/// Generates the problem described by `config`.
pub fn generate(config: &SynthConfig) -> Result<Synth, Error> {
    let SynthConfig { kind, sources: n, sensors: m, frames: t, seed, .. } = *config;
    if n == 0 || m < n || t < 2 || config.sample_rate_hz == 0 {
        return Err(Error::Invalid(format!(
            "need sources ≥ 1, sensors ≥ sources, frames ≥ 2, sample rate > 0 (got {n} sources, {m} sensors, {t} frames)"
        )));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let marginals: Vec<Marginal> = (0..n).map(|j| Marginal::ALL[j % Marginal::ALL.len()]).collect();
    let mut sources: Vec<Vec<f64>> = marginals.iter().map(|mg| (0..t).map(|_| mg.draw(&mut rng)).collect()).collect();
    for s in &mut sources {
        standardise(s);
    }
    let (mixed, mixing, mixing2) = match kind {
        MixKind::Linear => {
            let a = well_conditioned(&mut rng, m, n);
            let x = apply(&a, &sources);
            (x, a, None)
        }
        MixKind::Nonlinear => {
            let mut a1 = gaussian_matrix(&mut rng, m, n);
            let pre1 = scale_rows_to_std(&mut a1, &sources);
            let h: Vec<Vec<f64>> = pre1.into_iter().map(|row| row.into_iter().map(f64::tanh).collect()).collect();
            let mut a2 = gaussian_matrix(&mut rng, m, m);
            let pre2 = scale_rows_to_std(&mut a2, &h);
            let x = pre2.into_iter().map(|row| row.into_iter().map(f64::tanh).collect()).collect();
            (x, a1, Some(a2))
        }
    };
    let mixed = match config.snr_db {
        None => mixed,
        Some(snr) => {
            let normal = Normal::new(0.0, 1.0).map_err(|e| Error::Invalid(e.to_string()))?;
            mixed
                .into_iter()
                .map(|x| {
                    let power = x.iter().map(|v| v * v).sum::<f64>() / t as f64;
                    let sd = (power / 10f64.powf(snr / 10.0)).sqrt();
                    x.into_iter().map(|v| v + sd * normal.sample(&mut rng)).collect()
                })
                .collect()
        }
    };
    let to_f32 =
        |chs: &[Vec<f64>]| -> Vec<Vec<f32>> { chs.iter().map(|c| c.iter().map(|&v| v as f32).collect()).collect() };
    let rate = config.sample_rate_hz;
    let bad = |e: unmix_core::Error| Error::Invalid(e.to_string());
    Ok(Synth {
        mixture: Recording::from_channels(rate, &to_f32(&mixed)).map_err(bad)?,
        truth: Recording::from_channels(rate, &to_f32(&sources)).map_err(bad)?,
        meta: SynthMeta {
            kind,
            seed,
            sources: n,
            sensors: m,
            frames: t,
            sample_rate_hz: rate,
            marginals,
            mixing: rows(&mixing),
            mixing2: mixing2.as_ref().map(rows),
            snr_db: config.snr_db,
        },
    })
}

fn standardise(s: &mut [f64]) {
    let n = s.len() as f64;
    let mean = s.iter().sum::<f64>() / n;
    let sd = (s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt().max(f64::MIN_POSITIVE);
    for v in s {
        *v = (*v - mean) / sd;
    }
}

fn gaussian_matrix(rng: &mut StdRng, rows: usize, cols: usize) -> Matrix {
    let mut a = Matrix::zeros(rows, cols);
    for v in &mut a.data {
        *v = rng.sample(StandardNormal);
    }
    a
}

/// Draws Gaussian matrices until one has condition number ≤ [`MAX_CONDITION`], with rows
/// normalised to unit norm so every sensor has comparable power.
fn well_conditioned(rng: &mut StdRng, rows: usize, cols: usize) -> Matrix {
    loop {
        let mut a = gaussian_matrix(rng, rows, cols);
        for r in 0..rows {
            let norm = a.row(r).iter().map(|v| v * v).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
            for c in 0..cols {
                a[(r, c)] /= norm;
            }
        }
        if a.condition_number() <= MAX_CONDITION {
            return a;
        }
    }
}

fn apply(a: &Matrix, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let t = x[0].len();
    (0..a.rows).map(|r| (0..t).map(|i| (0..a.cols).map(|c| a[(r, c)] * x[c][i]).sum()).collect()).collect()
}

/// Scales each row of `a` so that `a · x` has standard deviation [`TANH_INPUT_STD`] on
/// this data, and returns `a · x`.
fn scale_rows_to_std(a: &mut Matrix, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let mut out = apply(a, x);
    for (r, row) in out.iter_mut().enumerate() {
        let n = row.len() as f64;
        let mean = row.iter().sum::<f64>() / n;
        let sd = (row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt().max(f64::MIN_POSITIVE);
        let k = TANH_INPUT_STD / sd;
        for c in 0..a.cols {
            a[(r, c)] *= k;
        }
        for v in row.iter_mut() {
            *v *= k;
        }
    }
    out
}

fn rows(a: &Matrix) -> Vec<Vec<f64>> {
    (0..a.rows).map(|r| a.row(r).to_vec()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let c = SynthConfig::paper(MixKind::Linear, 7);
        let a = generate(&c).unwrap();
        let b = generate(&c).unwrap();
        assert_eq!(a.mixture, b.mixture);
        let d = generate(&SynthConfig { seed: 8, ..c }).unwrap();
        assert_ne!(a.mixture, d.mixture);
    }

    #[test]
    fn sources_are_standardised_and_matrix_well_conditioned() {
        let s = generate(&SynthConfig::paper(MixKind::Linear, 1)).unwrap();
        for c in 0..3 {
            let v = s.truth.channel(c);
            let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
            assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
        }
        assert!(Matrix::from_rows(&s.meta.mixing).condition_number() <= MAX_CONDITION);
    }

    #[test]
    fn nonlinear_tanh_inputs_have_the_stated_spread() {
        let s = generate(&SynthConfig::paper(MixKind::Nonlinear, 3)).unwrap();
        // atanh of the output is the second layer's input: its std must be 1.5.
        for c in 0..3 {
            let pre: Vec<f64> = s.mixture.channel(c).iter().map(|&x| f64::from(x).atanh()).collect();
            let n = pre.len() as f64;
            let mean = pre.iter().sum::<f64>() / n;
            let sd = (pre.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
            assert!((sd - TANH_INPUT_STD).abs() < 1e-2, "channel {c}: {sd}");
        }
    }

    #[test]
    fn invalid_settings_are_refused() {
        let c = SynthConfig { sensors: 2, ..SynthConfig::paper(MixKind::Linear, 1) };
        assert!(generate(&c).is_err());
    }
}
