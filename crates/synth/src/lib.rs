//! Seeded synthetic mixtures: the benchmark problems of the PDGMM-VAE paper (section 4).
//!
//! `n` i.i.d. sources, each with a different non-Gaussian marginal (see [`Marginal`]),
//! standardised to zero mean and unit variance, then mixed into `m ≥ n` sensors linearly
//! by a random well-conditioned matrix, nonlinearly as `tanh(A2 tanh(A1 s))`, or
//! post-nonlinearly, each sensor reading its linear mixture through its own monotone
//! curve ([`SensorCurve`]).
//! Everything is drawn from one seeded generator, so the same [`SynthConfig`] always
//! gives the same data.
//!
//! [`shm`] simulates the structural-health benchmark instead: a shear building's floor
//! accelerations under ground shaking, whose sources are its modes; [`room`] a
//! reverberant room's microphone array hearing given dry sources (a convolutive mixture).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, Normal, StandardNormal, StudentT};
use serde::{Deserialize, Serialize};
use unmix_core::Recording;
use unmix_core::limits::MAX_CHANNELS;
use unmix_dsp::linalg::Matrix;

mod curves;
pub mod room;
pub mod shm;

pub use curves::SensorCurve;
use curves::draw_curves;

/// Largest condition number accepted by default for a linear mixing matrix: mixtures
/// stay separable without being trivially close to the identity. 79 % of Gaussian 6 × 4
/// matrices with unit rows pass it, 40 % pass 3.0 ([`SynthConfig::max_condition`]).
pub const MAX_CONDITION: f64 = 5.0;

/// The condition bound of the noisy over-determined benchmark (4 sources into 6
/// sensors at 20 dB SNR). At the default bound a random matrix can leave one source with
/// little of its own direction: for 24 % of 2 000 seeds some source's best linear estimate
/// (LMMSE with the true mixing) stays below |corr| 0.985, and no method recovers it much
/// better. At 3.0 that happens for 0.2 % (median worst source 0.9925): data on which
/// linear ICA reaches about 0.99, as the benchmark intends (`cargo run --release --example
/// noisy_bound -- draws`).
pub const NOISY_BENCHMARK_CONDITION: f64 = 3.0;

/// The tightest condition bound accepted: random matrices rarely come closer to
/// orthogonal, and they are drawn until one passes.
pub const MIN_CONDITION_BOUND: f64 = 1.5;

/// How many random matrices [`generate`] draws looking for one within the condition bound.
const MAX_MATRIX_DRAWS: usize = 10_000;

/// Standard deviation of every tanh input in the nonlinear benchmark: it bends clearly
/// (tanh(1.5) ≈ 0.91) without saturating most samples. [`SynthConfig::tanh_input_std`]
/// sets another, to see how separation degrades as the mixture bends.
pub const TANH_INPUT_STD: f64 = 1.5;

/// How sources are mixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MixKind {
    /// `x = A s`, `A` random with condition number ≤ [`SynthConfig::max_condition`]
    /// ([`MAX_CONDITION`] by default).
    Linear,
    /// `x = tanh(A2 tanh(A1 s))`, rows scaled so each tanh input has the configured
    /// standard deviation ([`TANH_INPUT_STD`] in the benchmark).
    Nonlinear,
    /// Post-nonlinear: `x_r = f_r((A s)_r)`, `A` as for [`MixKind::Linear`] (unit-norm
    /// rows: every sensor's input has unit variance), each sensor through its own monotone
    /// curve ([`SensorCurve`]: soft limiter, arctan, logarithmic compression, cubic
    /// expansion, soft-knee clip, in turn, each with drawn parameters).
    PostNonlinear,
}

/// The marginal distribution of a synthetic source. By default source `j` uses
/// `ALL[j % 7]`; [`SynthConfig::marginals`] picks another cycle. Parsed from and
/// written as the kebab-case names (`uniform`, `student-t5`, ...).
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

    /// The name used in `meta.json` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Marginal::Uniform => "uniform",
            Marginal::Laplace => "laplace",
            Marginal::Exponential => "exponential",
            Marginal::Bimodal => "bimodal",
            Marginal::StudentT5 => "student-t5",
            Marginal::Sinusoid => "sinusoid",
            Marginal::SkewedMixture => "skewed-mixture",
        }
    }

    /// Mean and variance of the distribution as drawn (before standardisation).
    pub fn moments(self) -> (f64, f64) {
        match self {
            Marginal::Uniform => (0.0, 1.0 / 3.0),
            Marginal::Laplace => (0.0, 2.0),
            Marginal::Exponential => (1.0, 1.0),
            Marginal::Bimodal => (0.0, 1.0 + 0.3 * 0.3),
            Marginal::StudentT5 => (0.0, 5.0 / 3.0),
            Marginal::Sinusoid => (0.0, 0.5),
            // 0.8·N(−0.5, 0.25) + 0.2·N(2, 0.25): mean 0, E[x²] = 0.8·0.5 + 0.2·4.25.
            Marginal::SkewedMixture => (0.0, 1.25),
        }
    }

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

impl std::fmt::Display for Marginal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Marginal {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Marginal::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Marginal::ALL.iter().map(|m| m.name()).collect();
            Error::Invalid(format!("unknown marginal {s:?} (one of {})", names.join(", ")))
        })
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
    /// Nonlinear only: the standard deviation every tanh input was scaled to (absent in
    /// files written before it could be set, which used [`TANH_INPUT_STD`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tanh_input_std: Option<f64>,
    /// Sensor noise, as SNR in dB per sensor, if any.
    pub snr_db: Option<f64>,
    /// Linear and post-nonlinear: the largest condition number the mixing matrix was
    /// allowed (absent in files written before it could be set, which used
    /// [`MAX_CONDITION`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_condition: Option<f64>,
    /// Post-nonlinear only: each sensor's curve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curves: Option<Vec<SensorCurve>>,
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
#[derive(Debug, Clone, PartialEq)]
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
    /// The marginals given to successive sources, cycled; empty: [`Marginal::ALL`].
    pub marginals: Vec<Marginal>,
    /// Nonlinear only: the standard deviation of every tanh input (> 0).
    pub tanh_input_std: f64,
    /// Linear only: the largest condition number accepted for the mixing matrix (≥ 1.5;
    /// matrices are drawn until one passes, and generation fails if none of 10 000 does).
    pub max_condition: f64,
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
        Self {
            kind,
            sources: 3,
            sensors: 3,
            frames: 10_000,
            seed,
            sample_rate_hz: 8_000,
            snr_db: None,
            marginals: Vec::new(),
            tanh_input_std: TANH_INPUT_STD,
            max_condition: MAX_CONDITION,
        }
    }

    /// The noisy over-determined benchmark: 4 sources into 6 sensors at 20 dB SNR,
    /// mixing condition number ≤ [`NOISY_BENCHMARK_CONDITION`], 10 000 frames.
    pub fn noisy_benchmark(seed: u64) -> Self {
        Self {
            sources: 4,
            sensors: 6,
            snr_db: Some(20.0),
            max_condition: NOISY_BENCHMARK_CONDITION,
            ..Self::paper(MixKind::Linear, seed)
        }
    }

    /// The marginal of each of the `sources`.
    fn source_marginals(&self) -> Vec<Marginal> {
        let cycle: &[Marginal] = if self.marginals.is_empty() { &Marginal::ALL } else { &self.marginals };
        (0..self.sources).map(|j| cycle[j % cycle.len()]).collect()
    }

    /// Checks what both [`generate`] and [`SynthStream::new`] need.
    fn check(&self) -> Result<(), Error> {
        let (n, m) = (self.sources, self.sensors);
        if n == 0 || m < n || self.sample_rate_hz == 0 {
            return Err(Error::Invalid(format!(
                "need sources ≥ 1, sensors ≥ sources, sample rate > 0 (got {n} sources, {m} sensors, {} Hz)",
                self.sample_rate_hz
            )));
        }
        if m > MAX_CHANNELS {
            return Err(Error::Invalid(format!("{m} sensors: at most {MAX_CHANNELS}, as many as unmix separates")));
        }
        // Beyond these the noise's power is 0 or infinite in floating point.
        if let Some(snr) = self.snr_db
            && !(-100.0..=300.0).contains(&snr)
        {
            return Err(Error::Invalid(format!("the SNR must be between -100 and 300 dB (got {snr})")));
        }
        if self.kind == MixKind::Nonlinear && !(self.tanh_input_std.is_finite() && self.tanh_input_std > 0.0) {
            return Err(Error::Invalid(format!("tanh input std must be > 0 (got {})", self.tanh_input_std)));
        }
        if self.kind != MixKind::Nonlinear && (self.max_condition.is_nan() || self.max_condition < MIN_CONDITION_BOUND)
        {
            return Err(Error::Invalid(format!(
                "max condition number must be ≥ {MIN_CONDITION_BOUND} (got {})",
                self.max_condition
            )));
        }
        Ok(())
    }
}

/// A mixture bent between two mixings, `x = A2 g(A1 s)` when `mixture` is `A1 s`: every
/// channel of `mixture` standardised, each frame `u` bent channel by channel into
/// `bend(c, u)` (a channel's own curve, or a term coupling it with others), then mixed
/// again by a square matrix of standard normal entries drawn from `seed`. With a bend
/// other than a per-sensor curve of a single mixing this is a nonlinear mixture neither
/// the saturating chain nor the post-nonlinear model has the shape of
/// (`research/residual_encoder.rs` measures the residual encoder on it).
pub fn bend_between_mixings(
    mixture: &Recording,
    seed: u64,
    bend: impl Fn(usize, &[f64]) -> f64,
) -> Result<Recording, Error> {
    let (m, frames) = (mixture.channels(), mixture.frames());
    // Standardised here in f64 rather than by `unmix_dsp::Normaliser` (f32): the bend is
    // applied to these values, and the measured files in `docs/results.md` were made so.
    let mut standardised = vec![0.0; m * frames];
    for c in 0..m {
        let channel: Vec<f64> = mixture.channel(c).iter().map(|&v| f64::from(v)).collect();
        let mean = channel.iter().sum::<f64>() / frames as f64;
        let sd = (channel.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / frames as f64).sqrt();
        if !(sd.is_finite() && sd > 0.0) {
            return Err(Error::Invalid(format!("channel {c} is constant or not finite: nothing to bend")));
        }
        for (f, v) in channel.iter().enumerate() {
            standardised[f * m + c] = (v - mean) / sd;
        }
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let a2: Vec<f64> = (0..m * m).map(|_| rng.sample::<f64, _>(StandardNormal)).collect();
    let mut mixed = Vec::with_capacity(frames * m);
    let mut bent = vec![0.0; m];
    for u in standardised.chunks_exact(m) {
        for (c, b) in bent.iter_mut().enumerate() {
            *b = bend(c, u);
        }
        mixed.extend((0..m).map(|i| (0..m).map(|c| a2[i * m + c] * bent[c]).sum::<f64>() as f32));
    }
    Recording::from_interleaved(mixture.sample_rate_hz(), m, mixed).map_err(|e| Error::Invalid(e.to_string()))
}

/// Generates the problem described by `config`.
pub fn generate(config: &SynthConfig) -> Result<Synth, Error> {
    let SynthConfig { kind, sources: n, sensors: m, frames: t, seed, tanh_input_std, max_condition, .. } = *config;
    config.check()?;
    if t < 2 {
        return Err(Error::Invalid(format!("need frames ≥ 2 (got {t})")));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let marginals = config.source_marginals();
    let mut sources: Vec<Vec<f64>> = marginals.iter().map(|mg| (0..t).map(|_| mg.draw(&mut rng)).collect()).collect();
    for s in &mut sources {
        standardise(s);
    }
    let mut curves = None;
    let (mixed, mixing, mixing2) = match kind {
        MixKind::Linear => {
            let a = well_conditioned(&mut rng, m, n, max_condition)?;
            let x = apply(&a, &sources);
            (x, a, None)
        }
        MixKind::PostNonlinear => {
            let a = well_conditioned(&mut rng, m, n, max_condition)?;
            let drawn = draw_curves(&mut rng, m);
            let x = apply(&a, &sources)
                .into_iter()
                .zip(&drawn)
                .map(|(row, curve)| row.into_iter().map(|u| curve.apply(u)).collect())
                .collect();
            curves = Some(drawn);
            (x, a, None)
        }
        MixKind::Nonlinear => {
            let mut a1 = gaussian_matrix(&mut rng, m, n);
            let pre1 = scale_rows_to_std(&mut a1, &sources, tanh_input_std);
            let h: Vec<Vec<f64>> = pre1.into_iter().map(|row| row.into_iter().map(f64::tanh).collect()).collect();
            let mut a2 = gaussian_matrix(&mut rng, m, m);
            let pre2 = scale_rows_to_std(&mut a2, &h, tanh_input_std);
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
            tanh_input_std: (kind == MixKind::Nonlinear).then_some(tanh_input_std),
            snr_db: config.snr_db,
            max_condition: (kind != MixKind::Nonlinear).then_some(max_condition),
            curves,
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

/// Draws Gaussian matrices until one has condition number ≤ `max_condition`, with rows
/// normalised to unit norm so every sensor has comparable power. Gives up after
/// [`MAX_MATRIX_DRAWS`]: a tight bound on a large square matrix may be met by almost none.
fn well_conditioned(rng: &mut StdRng, rows: usize, cols: usize, max_condition: f64) -> Result<Matrix, Error> {
    for _ in 0..MAX_MATRIX_DRAWS {
        let mut a = gaussian_matrix(rng, rows, cols);
        for r in 0..rows {
            let norm = a.row(r).iter().map(|v| v * v).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
            for c in 0..cols {
                a[(r, c)] /= norm;
            }
        }
        if a.condition_number() <= max_condition {
            return Ok(a);
        }
    }
    Err(Error::Invalid(format!(
        "no random {rows} × {cols} mixing matrix with condition number ≤ {max_condition} in {MAX_MATRIX_DRAWS} \
         draws; allow a larger one"
    )))
}

fn apply(a: &Matrix, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let t = x[0].len();
    (0..a.rows).map(|r| (0..t).map(|i| (0..a.cols).map(|c| a[(r, c)] * x[c][i]).sum()).collect()).collect()
}

/// Scales each row of `a` so that `a · x` has standard deviation `target_std` on this
/// data, and returns `a · x`.
fn scale_rows_to_std(a: &mut Matrix, x: &[Vec<f64>], target_std: f64) -> Vec<Vec<f64>> {
    let mut out = apply(a, x);
    for (r, row) in out.iter_mut().enumerate() {
        let n = row.len() as f64;
        let mean = row.iter().sum::<f64>() / n;
        let sd = (row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt().max(f64::MIN_POSITIVE);
        let k = target_std / sd;
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

/// The benchmark as an endless (or bounded) stream, for pipeline tests and benches.
///
/// Frames are drawn one at a time, each source standardised with its marginal's exact
/// moments ([`Marginal::moments`]) rather than the data's, so the output does not depend on
/// how reads are chunked. Mixing matrices are drawn as in [`generate`]; the nonlinear
/// second layer is scaled on a pilot sample drawn at construction.
pub struct SynthStream {
    rng: StdRng,
    marginals: Vec<Marginal>,
    kind: MixKind,
    a1: Matrix,
    a2: Option<Matrix>,
    curves: Option<Vec<SensorCurve>>,
    noise_sd: Option<Vec<f64>>,
    frames_left: usize,
    sample_rate_hz: u32,
    config: SynthConfig,
    s: Vec<f64>,
    h: Vec<f64>,
}

impl SynthStream {
    /// A stream of `config.frames` frames (use `usize::MAX` for an endless one).
    pub fn new(config: &SynthConfig) -> Result<Self, Error> {
        let SynthConfig {
            kind,
            sources: n,
            sensors: m,
            frames,
            seed,
            sample_rate_hz,
            snr_db,
            tanh_input_std,
            max_condition,
            ..
        } = *config;
        config.check()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let marginals = config.source_marginals();
        // Per-sensor signal power, for the noise level: linear rows have unit norm and the
        // sources unit variance, so every sensor has power 1; through tanh it is measured.
        let mut curves = None;
        let (a1, a2, power) = match kind {
            MixKind::Linear => (well_conditioned(&mut rng, m, n, max_condition)?, None, vec![1.0; m]),
            MixKind::PostNonlinear => {
                let a = well_conditioned(&mut rng, m, n, max_condition)?;
                let drawn = draw_curves(&mut rng, m);
                // Each curve's output power, on a pilot sample of the sensor's input from
                // its own generator (as the nonlinear second layer is scaled).
                let mut pilot_rng = StdRng::seed_from_u64(seed ^ 0x5eed);
                let pilot: Vec<Vec<f64>> = (0..n)
                    .map(|j| (0..20_000).map(|_| standard_draw(marginals[j], &mut pilot_rng)).collect())
                    .collect();
                let power = apply(&a, &pilot)
                    .iter()
                    .zip(&drawn)
                    .map(|(row, curve)| row.iter().map(|&u| curve.apply(u).powi(2)).sum::<f64>() / row.len() as f64)
                    .collect();
                curves = Some(drawn);
                (a, None, power)
            }
            MixKind::Nonlinear => {
                // Unit-variance independent sources: a row of norm σ gives std σ exactly.
                let mut a1 = gaussian_matrix(&mut rng, m, n);
                for r in 0..m {
                    let norm = a1.row(r).iter().map(|v| v * v).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
                    for c in 0..n {
                        a1[(r, c)] *= tanh_input_std / norm;
                    }
                }
                // The second layer is scaled on a pilot sample from its own generator.
                let mut a2 = gaussian_matrix(&mut rng, m, m);
                let mut pilot_rng = StdRng::seed_from_u64(seed ^ 0x5eed);
                let pilot: Vec<Vec<f64>> = (0..n)
                    .map(|j| (0..20_000).map(|_| standard_draw(marginals[j], &mut pilot_rng)).collect())
                    .collect();
                let h: Vec<Vec<f64>> =
                    apply(&a1, &pilot).into_iter().map(|r| r.into_iter().map(f64::tanh).collect()).collect();
                let pre = scale_rows_to_std(&mut a2, &h, tanh_input_std);
                let power =
                    pre.iter().map(|r| r.iter().map(|v| v.tanh().powi(2)).sum::<f64>() / r.len() as f64).collect();
                (a1, Some(a2), power)
            }
        };
        let noise_sd = snr_db.map(|snr| power.iter().map(|p| (p / 10f64.powf(snr / 10.0)).sqrt()).collect());
        Ok(Self {
            rng,
            marginals,
            kind,
            a1,
            a2,
            curves,
            noise_sd,
            frames_left: frames,
            sample_rate_hz,
            config: config.clone(),
            s: vec![0.0; n],
            h: vec![0.0; m],
        })
    }

    /// Mixing kind.
    pub fn kind(&self) -> MixKind {
        self.kind
    }

    /// Sources per frame.
    pub fn sources(&self) -> usize {
        self.marginals.len()
    }

    /// What this stream generates, for `meta.json` (`frames` as configured).
    pub fn meta(&self) -> SynthMeta {
        SynthMeta {
            kind: self.kind,
            seed: self.config.seed,
            sources: self.config.sources,
            sensors: self.config.sensors,
            frames: self.config.frames,
            sample_rate_hz: self.sample_rate_hz,
            marginals: self.marginals.clone(),
            mixing: rows(&self.a1),
            mixing2: self.a2.as_ref().map(rows),
            tanh_input_std: (self.kind == MixKind::Nonlinear).then_some(self.config.tanh_input_std),
            snr_db: self.config.snr_db,
            max_condition: (self.kind != MixKind::Nonlinear).then_some(self.config.max_condition),
            curves: self.curves.clone(),
        }
    }

    /// Draws up to `max_frames` frames: the mixture into `mixture` and, if given, the true
    /// sources into `truth` (both cleared first). Returns the frames drawn.
    pub fn draw(&mut self, mixture: &mut Vec<f32>, mut truth: Option<&mut Vec<f32>>, max_frames: usize) -> usize {
        mixture.clear();
        if let Some(t) = truth.as_deref_mut() {
            t.clear();
        }
        let frames = max_frames.min(self.frames_left);
        let m = self.a1.rows;
        for _ in 0..frames {
            for (s, &marginal) in self.s.iter_mut().zip(&self.marginals) {
                *s = standard_draw(marginal, &mut self.rng);
            }
            for r in 0..m {
                let v: f64 = self.a1.row(r).iter().zip(&self.s).map(|(a, s)| a * s).sum();
                self.h[r] = if self.a2.is_some() { v.tanh() } else { v };
            }
            for r in 0..m {
                let mut x = match (&self.a2, &self.curves) {
                    (Some(a2), _) => a2.row(r).iter().zip(&self.h).map(|(a, h)| a * h).sum::<f64>().tanh(),
                    (None, Some(curves)) => curves[r].apply(self.h[r]),
                    (None, None) => self.h[r],
                };
                if let Some(sd) = &self.noise_sd {
                    x += sd[r] * self.rng.sample::<f64, _>(StandardNormal);
                }
                mixture.push(x as f32);
            }
            if let Some(t) = truth.as_deref_mut() {
                t.extend(self.s.iter().map(|&v| v as f32));
            }
        }
        self.frames_left -= frames;
        frames
    }
}

/// One draw of a marginal, standardised with its exact moments.
fn standard_draw(marginal: Marginal, rng: &mut StdRng) -> f64 {
    let (mean, var) = marginal.moments();
    (marginal.draw(rng) - mean) / var.sqrt()
}

impl unmix_core::Source for SynthStream {
    fn channels(&self) -> usize {
        self.a1.rows
    }

    fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    fn frames_total(&self) -> Option<usize> {
        (self.frames_left != usize::MAX).then_some(self.frames_left)
    }

    fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize, unmix_core::BoxError> {
        Ok(self.draw(out, None, max_frames))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bend between two mixings: with no bend it is `A2` times the standardised mixture
    /// (so a linear mixture stays linear); a bend is applied per channel before `A2`.
    #[test]
    fn a_bend_between_two_mixings_is_applied_before_the_second() {
        let s = generate(&SynthConfig { frames: 400, ..SynthConfig::paper(MixKind::Linear, 4) }).unwrap();
        let straight = bend_between_mixings(&s.mixture, 9, |c, u| u[c]).unwrap();
        let cubed = bend_between_mixings(&s.mixture, 9, |c, u| if c == 1 { u[c].powi(3) } else { u[c] }).unwrap();
        assert_eq!((straight.channels(), straight.frames()), (3, 400));
        // Only channel 1's contribution differs: `x_cubed − x_straight = A2[:, 1] (u³ − u)`.
        let u: Vec<f64> = {
            let ch: Vec<f64> = s.mixture.channel(1).iter().map(|&v| f64::from(v)).collect();
            let mean = ch.iter().sum::<f64>() / 400.0;
            let sd = (ch.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 400.0).sqrt();
            ch.iter().map(|v| (v - mean) / sd).collect()
        };
        let column: Vec<f64> = (0..3)
            .map(|i| {
                let d = f64::from(cubed.channel(i)[0] - straight.channel(i)[0]);
                d / (u[0].powi(3) - u[0])
            })
            .collect();
        for (f, &uf) in u.iter().enumerate() {
            for (i, &a) in column.iter().enumerate() {
                let d = f64::from(cubed.channel(i)[f] - straight.channel(i)[f]);
                assert!((d - a * (uf.powi(3) - uf)).abs() < 1e-3 * (1.0 + d.abs()), "frame {f}, channel {i}");
            }
        }
        let silent = Recording::from_interleaved(8000, 2, vec![0.5; 20]).unwrap();
        assert!(bend_between_mixings(&silent, 1, |c, u| u[c]).is_err());
    }

    /// Post-nonlinear: every sensor is its own curve of its row of the linear mixture of
    /// the true sources; the curves are in `meta.json`; the stream follows the same rule.
    #[test]
    fn a_post_nonlinear_mixture_is_each_sensors_curve_of_the_linear_mixture() {
        let c = SynthConfig {
            kind: MixKind::PostNonlinear,
            sensors: 4,
            frames: 500,
            ..SynthConfig::paper(MixKind::Linear, 2)
        };
        let s = generate(&c).unwrap();
        let curves = s.meta.curves.clone().unwrap();
        assert_eq!(curves.len(), 4);
        assert_eq!(s.meta.max_condition, Some(MAX_CONDITION));
        for (frame, truth) in s.mixture.interleaved().chunks_exact(4).zip(s.truth.interleaved().chunks_exact(3)) {
            for (r, curve) in curves.iter().enumerate() {
                let u: f64 = (0..3).map(|j| s.meta.mixing[r][j] * f64::from(truth[j])).sum();
                let want = curve.apply(u);
                assert!((f64::from(frame[r]) - want).abs() < 1e-4 * (1.0 + want.abs()), "{curve:?} at {u}");
            }
        }
        let json = serde_json::to_value(&s.meta).unwrap();
        assert_eq!(json["kind"], "postnonlinear");
        assert!(json["curves"][0]["curve"].is_string());
        // The stream (its own draws: matrix first) keeps the same rule.
        let mut stream = SynthStream::new(&c).unwrap();
        let meta = stream.meta();
        let (mut x, mut truth) = (Vec::new(), Vec::new());
        assert_eq!(stream.draw(&mut x, Some(&mut truth), 200), 200);
        let curves = meta.curves.unwrap();
        for (frame, truth) in x.chunks_exact(4).zip(truth.chunks_exact(3)) {
            for (r, curve) in curves.iter().enumerate() {
                let u: f64 = (0..3).map(|j| meta.mixing[r][j] * f64::from(truth[j])).sum();
                let want = curve.apply(u);
                assert!((f64::from(frame[r]) - want).abs() < 1e-4 * (1.0 + want.abs()), "{curve:?} at {u}");
            }
        }
        assert!(generate(&SynthConfig::paper(MixKind::Linear, 2)).unwrap().meta.curves.is_none());
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let c = SynthConfig::paper(MixKind::Linear, 7);
        let a = generate(&c).unwrap();
        let b = generate(&c).unwrap();
        assert_eq!(a.mixture, b.mixture);
        let d = generate(&SynthConfig { seed: 8, ..c }).unwrap();
        assert_ne!(a.mixture, d.mixture);
    }

    /// A NaN SNR once wrote an all-NaN mixture; sizes beyond what unmix separates are
    /// refused before anything is drawn.
    #[test]
    fn the_snr_and_the_sizes_are_checked() {
        let refused = |c: SynthConfig| generate(&c).expect_err("refused").to_string();
        let noisy = |snr| SynthConfig { snr_db: Some(snr), ..SynthConfig::paper(MixKind::Linear, 1) };
        assert!(refused(noisy(f64::NAN)).contains("between -100 and 300 dB (got NaN)"));
        assert!(refused(noisy(-4000.0)).contains("got -4000"));
        assert!(SynthStream::new(&noisy(f64::INFINITY)).is_err());
        let wide = SynthConfig { sensors: 1000, ..SynthConfig::paper(MixKind::Linear, 1) };
        assert!(refused(wide).contains("1000 sensors: at most 256"));
        let data = generate(&SynthConfig { frames: 100, ..noisy(-20.0) }).unwrap();
        assert!(data.mixture.interleaved().iter().all(|v| v.is_finite()));
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
    fn the_condition_bound_is_honoured_recorded_and_checked() {
        for seed in 1..=20 {
            let s = generate(&SynthConfig { frames: 2, ..SynthConfig::noisy_benchmark(seed) }).unwrap();
            assert!(Matrix::from_rows(&s.meta.mixing).condition_number() <= NOISY_BENCHMARK_CONDITION);
            assert_eq!(s.meta.max_condition, Some(NOISY_BENCHMARK_CONDITION));
        }
        let stream = SynthStream::new(&SynthConfig::noisy_benchmark(3)).unwrap().meta();
        assert!(Matrix::from_rows(&stream.mixing).condition_number() <= NOISY_BENCHMARK_CONDITION);
        assert_eq!(stream.max_condition, Some(NOISY_BENCHMARK_CONDITION));
        // Files written before the bound could be set read as the default bound's.
        let mut json = serde_json::to_value(generate(&SynthConfig::paper(MixKind::Linear, 1)).unwrap().meta).unwrap();
        json.as_object_mut().unwrap().remove("max_condition");
        assert_eq!(serde_json::from_value::<SynthMeta>(json).unwrap().max_condition, None);
        for bad in [1.0, f64::NAN] {
            let err = generate(&SynthConfig { max_condition: bad, ..SynthConfig::noisy_benchmark(1) }).unwrap_err();
            assert!(err.to_string().contains("max condition number must be ≥ 1.5"), "{err}");
        }
        // A bound almost no matrix of this shape meets is an error, not a hang.
        let square = SynthConfig {
            sources: 6,
            sensors: 6,
            frames: 2,
            max_condition: 1.5,
            ..SynthConfig::paper(MixKind::Linear, 1)
        };
        let err = generate(&square).unwrap_err().to_string();
        assert!(err.contains("no random 6 × 6 mixing matrix with condition number ≤ 1.5"), "{err}");
        // The bound only concerns linear mixing.
        assert!(generate(&SynthConfig { max_condition: 1.0, ..SynthConfig::paper(MixKind::Nonlinear, 1) }).is_ok());
    }

    fn sd(v: &[f64]) -> f64 {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    }

    /// Both tanh layers' inputs, per sensor, recomputed from the truth and `meta`.
    fn tanh_inputs(s: &Synth) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        let truth: Vec<Vec<f64>> =
            (0..s.meta.sources).map(|j| s.truth.channel(j).iter().map(|&v| f64::from(v)).collect()).collect();
        let first = apply(&Matrix::from_rows(&s.meta.mixing), &truth);
        let h: Vec<Vec<f64>> = first.iter().map(|r| r.iter().map(|v| v.tanh()).collect()).collect();
        let second = apply(&Matrix::from_rows(s.meta.mixing2.as_ref().unwrap()), &h);
        (first, second)
    }

    #[test]
    fn nonlinear_tanh_inputs_have_the_stated_spread() {
        let s = generate(&SynthConfig::paper(MixKind::Nonlinear, 3)).unwrap();
        assert_eq!(s.meta.tanh_input_std, Some(TANH_INPUT_STD));
        // atanh of the output is the second layer's input: its std must be 1.5.
        for c in 0..3 {
            let pre: Vec<f64> = s.mixture.channel(c).iter().map(|&x| f64::from(x).atanh()).collect();
            assert!((sd(&pre) - TANH_INPUT_STD).abs() < 1e-2, "channel {c}: {}", sd(&pre));
        }
        let (first, second) = tanh_inputs(&s);
        for (c, row) in first.iter().chain(&second).enumerate() {
            assert!((sd(row) - TANH_INPUT_STD).abs() < 1e-3, "layer input {c}: {}", sd(row));
        }
    }

    #[test]
    fn tanh_input_std_and_marginals_can_be_chosen() {
        let picked = vec![Marginal::Bimodal, Marginal::Sinusoid];
        let config = SynthConfig {
            sources: 3,
            marginals: picked.clone(),
            tanh_input_std: 0.5,
            ..SynthConfig::paper(MixKind::Nonlinear, 2)
        };
        let s = generate(&config).unwrap();
        assert_eq!(s.meta.marginals, [Marginal::Bimodal, Marginal::Sinusoid, Marginal::Bimodal]);
        assert_eq!(s.meta.tanh_input_std, Some(0.5));
        let (first, second) = tanh_inputs(&s);
        for (c, row) in first.iter().chain(&second).enumerate() {
            assert!((sd(row) - 0.5).abs() < 1e-3, "layer input {c}: {}", sd(row));
        }
        // Bimodal at ±1 with std 0.3, standardised: no sample near the centre is likely.
        let centre = s.truth.channel(0).iter().filter(|v| v.abs() < 0.2).count();
        assert!(centre < 50, "{centre} bimodal samples near 0");
        // The stream draws the same marginals and scales its first layer the same way.
        let mut stream = SynthStream::new(&config).unwrap();
        assert_eq!(stream.meta().marginals, s.meta.marginals);
        assert_eq!(stream.meta().tanh_input_std, Some(0.5));
        for row in &stream.meta().mixing {
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!((norm - 0.5).abs() < 1e-12);
        }
        let (mut x, mut t) = (Vec::new(), Vec::new());
        assert_eq!(stream.draw(&mut x, Some(&mut t), 100), 100);
        // Linear mixtures do not record a tanh spread.
        assert_eq!(generate(&SynthConfig::paper(MixKind::Linear, 2)).unwrap().meta.tanh_input_std, None);
    }

    #[test]
    fn marginal_names_round_trip() {
        for marginal in Marginal::ALL {
            assert_eq!(marginal.name().parse::<Marginal>().unwrap(), marginal);
            let json = serde_json::to_string(&marginal).unwrap();
            assert_eq!(json, format!("\"{marginal}\""));
        }
        let err = "gaussian".parse::<Marginal>().unwrap_err().to_string();
        assert!(err.contains("\"gaussian\"") && err.contains("student-t5"), "{err}");
    }

    #[test]
    fn marginal_moments_are_exact() {
        let mut rng = StdRng::seed_from_u64(11);
        for marginal in Marginal::ALL {
            let (mean, var) = marginal.moments();
            let n = 400_000;
            let draws: Vec<f64> = (0..n).map(|_| marginal.draw(&mut rng)).collect();
            let m = draws.iter().sum::<f64>() / n as f64;
            let v = draws.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
            assert!((m - mean).abs() < 0.02, "{marginal:?} mean {m} vs {mean}");
            assert!((v / var - 1.0).abs() < 0.03, "{marginal:?} var {v} vs {var}");
        }
    }

    #[test]
    fn stream_is_seeded_and_independent_of_chunking() {
        let config = SynthConfig { frames: 5000, ..SynthConfig::paper(MixKind::Nonlinear, 4) };
        let mut whole = SynthStream::new(&config).unwrap();
        let (mut a, mut ta) = (Vec::new(), Vec::new());
        assert_eq!(whole.draw(&mut a, Some(&mut ta), 10_000), 5000);
        let mut chunked = SynthStream::new(&config).unwrap();
        let (mut b, mut tb, mut block, mut tblock) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for size in [1, 7, 100, 3333, 10_000].iter().cycle() {
            if chunked.draw(&mut block, Some(&mut tblock), *size) == 0 {
                break;
            }
            b.extend_from_slice(&block);
            tb.extend_from_slice(&tblock);
        }
        assert_eq!(a, b);
        assert_eq!(ta, tb);
        // Nonlinear outputs are tanh values; the truth is standardised.
        assert!(a.iter().all(|v| v.abs() < 1.0));
        let src0: Vec<f64> = ta.iter().step_by(3).map(|&v| f64::from(v)).collect();
        let mean = src0.iter().sum::<f64>() / src0.len() as f64;
        assert!(mean.abs() < 0.05);
    }

    #[test]
    fn invalid_settings_are_refused() {
        let c = SynthConfig { sensors: 2, ..SynthConfig::paper(MixKind::Linear, 1) };
        assert!(generate(&c).is_err());
        assert!(SynthStream::new(&c).is_err());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let c = SynthConfig { tanh_input_std: bad, ..SynthConfig::paper(MixKind::Nonlinear, 1) };
            assert!(generate(&c).unwrap_err().to_string().contains("tanh input std"), "{bad}");
            assert!(SynthStream::new(&c).is_err(), "{bad}");
        }
    }
}
