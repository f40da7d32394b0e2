//! Operational modal analysis: a structure's modes — natural frequency, damping ratio,
//! shape and modal coordinate — from the responses its sensors record under ambient,
//! broadband excitation, with no measured input.
//!
//! Under broadband excitation each mode's coordinate is nearly Gaussian, so what tells the
//! modes apart is that each has its own spectrum. [`identify`] therefore
//! 1. whitens the channels to the `n` modes' subspace and rotates them by second-order
//!    blind identification (SOBI, [`unmix_dsp::sobi`]), which makes the lagged covariances
//!    of the outputs jointly diagonal: one output per mode, and the mode shapes as the
//!    columns of the mixing it inverts;
//! 2. fits each output's periodogram with a second-order resonance over a white floor by
//!    the Whittle likelihood ([`resonance`]): the floor is the sensor noise the demixer
//!    let through, and fitting it keeps the resonance's width — the damping — unbiased;
//! 3. filters each output by its resonance's Wiener gain over the whole record (a
//!    non-causal smoother in the frequency domain): the mode's coordinate with most of the
//!    sensor noise removed, closer to the truth than any instantaneous demixing can be
//!    (no matrix removes noise that lies along a mode's own shape);
//! 4. repeats steps 1 and 2 on contiguous blocks of the record and reports the spread of
//!    the block estimates as each figure's standard error (batch means: honest about
//!    everything the model leaves out, at the cost of a few more fits).
//!
//! Modes come out in order of frequency, shapes with unit length and their largest entry
//! positive; [`mac`] compares shapes.

pub mod health;
pub mod resonance;
pub mod stats;

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use unmix_core::Recording;
use unmix_dsp::sobi::{SobiConfig, sobi};
use unmix_dsp::spectrum::{Complex64, real_signal, real_spectrum};
use unmix_dsp::{Normaliser, NormaliserConfig};

pub use health::{Assessment, Baseline, HealthConfig, WindowFeatures};
pub use resonance::{Resonance, ResonanceConfig, ResonanceFit, fit_resonance, refit_resonance};

/// What went wrong in a modal identification.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Whitening, SOBI or the transforms refused the data.
    #[error(transparent)]
    Dsp(#[from] unmix_dsp::Error),
    /// A recording could not be built.
    #[error(transparent)]
    Core(#[from] unmix_core::Error),
    /// More modes asked for than there are channels, or none.
    #[error("{modes} modes from {channels} channels: a mode needs a channel of its own (at most {channels})")]
    Modes {
        /// Modes asked for.
        modes: usize,
        /// Channels of the recording.
        channels: usize,
    },
    /// Too short a record for what was asked.
    #[error("too short: {0}")]
    TooShort(String),
    /// The data cannot be fitted.
    #[error("{0}")]
    Data(String),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// The most blocks a record is cut into for the standard errors (`unmix modes --blocks`).
pub const MAX_BLOCKS: usize = 64;

/// Settings of [`identify`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModalConfig {
    /// The lags SOBI diagonalises.
    pub sobi: SobiConfig,
    /// The resonance fitted to each mode's spectrum.
    pub resonance: ResonanceConfig,
    /// Contiguous blocks the record is cut into for the standard errors (fewer than 2:
    /// none reported).
    pub blocks: usize,
    /// Blocks shorter than this many frames are not fitted (no standard errors then).
    pub min_block_frames: usize,
}

impl Default for ModalConfig {
    /// SOBI's defaults (lags 1–50), a resonance with one moving-average coefficient, 4
    /// blocks of at least 4 000 frames.
    fn default() -> Self {
        Self { sobi: SobiConfig::default(), resonance: ResonanceConfig::default(), blocks: 4, min_block_frames: 4000 }
    }
}

/// One identified mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mode {
    /// Natural frequency (Hz).
    pub frequency_hz: f64,
    /// Damping ratio (fraction of critical).
    pub damping_ratio: f64,
    /// Mode shape over the channels: unit length, largest entry positive.
    pub shape: Vec<f64>,
    /// Standard error of the frequency (Hz), from the blocks.
    pub frequency_std_hz: Option<f64>,
    /// Standard error of the damping ratio, from the blocks.
    pub damping_std: Option<f64>,
    /// Standard error of every shape entry, from the blocks.
    pub shape_std: Option<Vec<f64>>,
    /// Root mean square of the modal coordinate, in the channels' units.
    pub rms: f64,
    /// The resonance fitted to the mode's spectrum (of the unit-variance demixed output).
    pub resonance: Resonance,
}

/// The result of [`identify`].
#[derive(Debug, Clone)]
pub struct ModalAnalysis {
    /// The modes, lowest frequency first.
    pub modes: Vec<Mode>,
    /// Every mode's coordinate over the whole record, in the order of [`Self::modes`]:
    /// the recording is `Σ_j shape_j · coordinate_j` plus what no mode explains.
    pub coordinates: Recording,
    /// The demixed outputs before the Wiener smoothing (unit variance), same order.
    pub demixed: Recording,
    /// The demixing of the raw channels, `modes × channels` row-major (after removing
    /// each channel's mean): row `j` gives output `j` of [`Self::demixed`].
    pub demixing: Vec<Vec<f64>>,
    /// Each demixed output's pattern over the channels (its covariance with every
    /// channel): the channels are `Σ_j pattern_j · output_j` plus what no mode explains.
    pub patterns: Vec<Vec<f64>>,
    /// Blocks the standard errors come from (0 when none).
    pub blocks: usize,
}

/// Identifies `modes` modes of `recording` (channels = sensors, frames in time order).
pub fn identify(recording: &Recording, modes: usize, config: &ModalConfig) -> Result<ModalAnalysis> {
    let channels = recording.channels();
    if modes == 0 || modes > channels {
        return Err(Error::Modes { modes, channels });
    }
    let fs = f64::from(recording.sample_rate_hz());
    let whole = demix_and_fit(recording, modes, config)?;
    let frames = recording.frames();

    // The Wiener-smoothed coordinates, scaled by each shape's length so that the
    // channels are Σ shape · coordinate.
    let mut coordinates = Vec::with_capacity(modes);
    for (j, fit) in whole.fits.iter().enumerate() {
        let mut bins = real_spectrum(&whole.outputs[j])?;
        bins[0] = Complex64::new(0.0, 0.0);
        for (k, bin) in bins.iter_mut().enumerate().skip(1) {
            *bin *= fit.resonance.wiener_gain(2.0 * std::f64::consts::PI * k as f64 / frames as f64);
        }
        let length = norm(&whole.patterns[j]);
        coordinates.push(real_signal(&bins, frames)?.iter().map(|v| (v * length) as f32).collect::<Vec<f32>>());
    }

    let mut found: Vec<Mode> = (0..modes)
        .map(|j| {
            let (shape, sign) = unit_shape(&whole.patterns[j]);
            coordinates[j].iter_mut().for_each(|v| *v *= sign as f32);
            Mode {
                frequency_hz: whole.fits[j].resonance.frequency_hz(fs),
                damping_ratio: whole.fits[j].resonance.damping_ratio(),
                shape,
                frequency_std_hz: None,
                damping_std: None,
                shape_std: None,
                rms: rms(&coordinates[j]),
                resonance: whole.fits[j].resonance.clone(),
            }
        })
        .collect();

    let blocks =
        if config.blocks >= 2 && frames / config.blocks >= config.min_block_frames { config.blocks } else { 0 };
    if let Some(length) = frames.checked_div(blocks) {
        let mut estimates: Vec<Vec<(f64, f64, Vec<f64>)>> = vec![Vec::new(); modes];
        for b in 0..blocks {
            let part = slice_frames(recording, b * length, length)?;
            let fitted = demix_and_fit(&part, modes, config)?;
            let block_modes: Vec<(f64, f64, Vec<f64>)> = (0..modes)
                .map(|j| {
                    let r = &fitted.fits[j].resonance;
                    (r.frequency_hz(fs), r.damping_ratio(), unit_shape(&fitted.patterns[j]).0)
                })
                .collect();
            for (j, i) in match_modes(&found, &block_modes).into_iter().enumerate() {
                let (f, z, mut shape) = block_modes[i].clone();
                if dot(&shape, &found[j].shape) < 0.0 {
                    shape.iter_mut().for_each(|v| *v = -*v);
                }
                estimates[j].push((f, z, shape));
            }
        }
        for (mode, est) in found.iter_mut().zip(&estimates) {
            mode.frequency_std_hz = Some(standard_error(est.iter().map(|e| e.0)));
            mode.damping_std = Some(standard_error(est.iter().map(|e| e.1)));
            mode.shape_std = Some((0..channels).map(|c| standard_error(est.iter().map(|e| e.2[c]))).collect());
        }
    }

    // Lowest frequency first.
    let mut order: Vec<usize> = (0..modes).collect();
    order.sort_by(|&a, &b| found[a].frequency_hz.total_cmp(&found[b].frequency_hz));
    let sample_rate = recording.sample_rate_hz();
    let coordinates =
        Recording::from_channels(sample_rate, &order.iter().map(|&j| coordinates[j].clone()).collect::<Vec<_>>())?;
    let demixed = Recording::from_channels(
        sample_rate,
        &order.iter().map(|&j| whole.outputs[j].iter().map(|&v| v as f32).collect()).collect::<Vec<Vec<f32>>>(),
    )?;
    let demixing = order.iter().map(|&j| whole.demixing[j].clone()).collect();
    let patterns = order.iter().map(|&j| whole.patterns[j].clone()).collect();
    let modes = order.iter().map(|&j| found[j].clone()).collect();
    Ok(ModalAnalysis { modes, coordinates, demixed, demixing, patterns, blocks })
}

/// The modal assurance criterion `|aᵀb|² / (aᵀa · bᵀb)`: 1 for the same shape (up to
/// scale and sign), 0 for orthogonal ones.
pub fn mac(a: &[f64], b: &[f64]) -> f64 {
    let (ab, aa, bb) = (dot(a, b), dot(a, a), dot(b, b));
    if aa == 0.0 || bb == 0.0 { 0.0 } else { ab * ab / (aa * bb) }
}

/// [`mac`] of every shape of `rows` against every shape of `columns`.
pub fn mac_matrix(rows: &[Vec<f64>], columns: &[Vec<f64>]) -> Vec<Vec<f64>> {
    rows.iter().map(|a| columns.iter().map(|b| mac(a, b)).collect()).collect()
}

/// SOBI's outputs of one record and their resonances.
struct Demixed {
    /// Each output over the record (unit variance).
    outputs: Vec<Vec<f64>>,
    /// Each output's pattern: the covariance of every channel with it (the mixing's
    /// column, as the outputs are white).
    patterns: Vec<Vec<f64>>,
    /// The demixing of the raw (mean-removed) channels, one row per output.
    demixing: Vec<Vec<f64>>,
    fits: Vec<ResonanceFit>,
}

fn demix_and_fit(recording: &Recording, modes: usize, config: &ModalConfig) -> Result<Demixed> {
    let (frames, channels) = (recording.frames(), recording.channels());
    let normaliser = Normaliser::fit(recording, NormaliserConfig { whiten_to: Some(modes) })?;
    let whitened = normaliser.transform(recording)?;
    let rotation = sobi(&whitened, modes, &config.sobi)?;
    let whitening = normaliser.whitening.as_ref().ok_or_else(|| Error::Data("whitening was not fitted".into()))?;
    let demixing: Vec<Vec<f64>> = rotation
        .unmixing
        .iter()
        .map(|row| {
            (0..channels)
                .map(|c| {
                    let through: f64 =
                        row.iter().enumerate().map(|(k, &w)| w * f64::from(whitening[k * channels + c])).sum();
                    through / f64::from(normaliser.scale[c])
                })
                .collect()
        })
        .collect();
    let mut outputs = vec![Vec::with_capacity(frames); modes];
    for frame in whitened.chunks_exact(modes) {
        for (output, row) in outputs.iter_mut().zip(&rotation.unmixing) {
            output.push(row.iter().zip(frame).map(|(w, &z)| w * f64::from(z)).sum::<f64>());
        }
    }
    let mut patterns = vec![vec![0.0; channels]; modes];
    for (t, frame) in recording.iter_frames().enumerate() {
        for (pattern, output) in patterns.iter_mut().zip(&outputs) {
            for (c, p) in pattern.iter_mut().enumerate() {
                *p += f64::from(frame[c] - normaliser.mean[c]) * output[t];
            }
        }
    }
    patterns.iter_mut().flatten().for_each(|p| *p /= frames as f64);
    // One fit per output, the outputs shared out over the cores.
    let fits = in_parallel(&outputs, |output| {
        let bins = real_spectrum(output)?;
        let periodogram: Vec<f64> = bins[1..frames.div_ceil(2)].iter().map(|b| b.norm_sqr() / frames as f64).collect();
        fit_resonance(&periodogram, frames, &config.resonance)
    })
    .into_iter()
    .collect::<Result<Vec<_>>>()?;
    Ok(Demixed { outputs, patterns, demixing, fits })
}

/// `f` of every item, the items shared out over the cores (`unmix_core::parallel`); the
/// results in the items' order.
pub(crate) fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = unmix_core::parallel::threads_for(0, items.len());
    let f = &f;
    unmix_core::parallel::round_robin(items, threads, || move |_, item| ControlFlow::Continue(f(item)), || {})
        .into_iter()
        .map(|(_, result)| result)
        .collect()
}

/// For every mode of `reference`, the index of its match among `candidates`: greedily by
/// MAC, highest first, each candidate used once.
fn match_modes(reference: &[Mode], candidates: &[(f64, f64, Vec<f64>)]) -> Vec<usize> {
    let mut pairs: Vec<(f64, usize, usize)> = reference
        .iter()
        .enumerate()
        .flat_map(|(j, m)| candidates.iter().enumerate().map(move |(i, c)| (mac(&m.shape, &c.2), j, i)))
        .collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut matched = vec![usize::MAX; reference.len()];
    let mut used = vec![false; candidates.len()];
    for (_, j, i) in pairs {
        if matched[j] == usize::MAX && !used[i] {
            matched[j] = i;
            used[i] = true;
        }
    }
    matched
}

/// The frames `start .. start + length` of `recording`.
fn slice_frames(recording: &Recording, start: usize, length: usize) -> Result<Recording> {
    let c = recording.channels();
    let samples = recording.interleaved()[start * c..(start + length) * c].to_vec();
    Ok(Recording::from_interleaved(recording.sample_rate_hz(), c, samples)?)
}

/// `pattern` at unit length with its largest entry positive, and the sign applied.
fn unit_shape(pattern: &[f64]) -> (Vec<f64>, f64) {
    let length = norm(pattern);
    let largest = pattern.iter().copied().fold(0.0f64, |a, v| if v.abs() > a.abs() { v } else { a });
    let sign = if largest < 0.0 { -1.0 } else { 1.0 };
    (pattern.iter().map(|v| sign * v / length.max(f64::MIN_POSITIVE)).collect(), sign)
}

/// Standard error of the mean of the block estimates: their spread over `√blocks`.
fn standard_error(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    let n = v.len() as f64;
    if v.len() < 2 {
        return f64::NAN;
    }
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) / n).sqrt()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

fn rms(values: &[f32]) -> f64 {
    (values.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / values.len().max(1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use unmix_synth::shm::{ShmConfig, simulate};

    use super::*;

    #[test]
    fn the_modes_of_a_simulated_building_are_found() {
        // Three storeys, two minutes: every mode's frequency within 1 %, shape MAC ≥ 0.99,
        // coordinate |corr| ≥ 0.97 (the benchmark measures the full ten minutes).
        let config = ShmConfig { storeys: 3, duration_s: 120.0, ..ShmConfig::benchmark(3) };
        let record = simulate(&config).unwrap();
        let analysis = identify(&record.mixture, 3, &ModalConfig::default()).unwrap();
        let truth = &record.meta.modes;
        assert_eq!(analysis.blocks, 4);
        for (j, mode) in analysis.modes.iter().enumerate() {
            let f = truth.frequencies_hz[j];
            assert!((mode.frequency_hz / f - 1.0).abs() < 0.01, "mode {j}: {} Hz for {f}", mode.frequency_hz);
            assert!(mac(&mode.shape, &truth.shapes[j]) > 0.99, "mode {j}: MAC {}", mac(&mode.shape, &truth.shapes[j]));
            assert!(mode.frequency_std_hz.unwrap() > 0.0 && mode.frequency_std_hz.unwrap() < 0.05 * f);
            let estimate = analysis.coordinates.channel(j);
            let corr = unmix_dsp::metrics::pearson(&estimate, &record.truth.channel(j));
            assert!(corr.abs() > 0.97, "mode {j}: |corr| {corr}");
        }
    }

    #[test]
    fn impossible_requests_are_refused() {
        let record = simulate(&ShmConfig { storeys: 2, duration_s: 30.0, ..ShmConfig::benchmark(1) }).unwrap();
        assert!(matches!(identify(&record.mixture, 3, &ModalConfig::default()), Err(Error::Modes { .. })));
        assert!(matches!(identify(&record.mixture, 0, &ModalConfig::default()), Err(Error::Modes { .. })));
        let mut samples = record.mixture.interleaved().to_vec();
        samples.iter_mut().skip(1).step_by(2).for_each(|v| *v = 0.5);
        let dead = Recording::from_interleaved(200, 2, samples).unwrap();
        let message = identify(&dead, 2, &ModalConfig::default()).unwrap_err().to_string();
        assert!(message.contains("channel 2") && message.contains("constant"), "{message}");
    }

    #[test]
    fn mac_ignores_scale_and_sign() {
        assert!((mac(&[1.0, 2.0], &[-2.0, -4.0]) - 1.0).abs() < 1e-12);
        assert!(mac(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-12);
        assert_eq!(mac(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }
}
