//! Structural-health monitoring: a baseline of a structure's modes and how windows of
//! later data differ from it — in a way the environment explains, or not.
//!
//! Temperature, humidity and load stiffen and soften a structure as a whole: every natural
//! frequency moves, together, by as much as a few per cent of stiffness lost in one
//! member would move them. A damage index that looks at the frequencies' change alone
//! alarms on the weather. What damage does that the environment does not is change the
//! frequencies in a *pattern of its own* (a storey that loses stiffness moves the modes
//! that bend it most). So the baseline — a healthy period long enough to span the
//! environment's range — is cut into windows, each window's modal features (the log
//! natural frequencies) are taken, and their principal directions split into
//! - the environment's: the `k` directions of largest spread over the baseline
//!   ([`HealthConfig::environment_factors`]; the daily temperature cycle moves every log
//!   frequency by about as much, so one direction carries it), and
//! - the rest, whose baseline spread is the estimation noise.
//!
//! A window's damage index is its Mahalanobis distance from the baseline mean in the rest
//! (`d² = Σ z_i² / λ_i`), and it alarms above the control limit that a new healthy window
//! exceeds with probability [`HealthConfig::false_alarm_rate`] when the features are
//! Gaussian: Hotelling's prediction limit `p (N + 1)(N − 1) / (N (N − p)) F_{p, N−p}(1 − α)`
//! for `N` baseline windows and `p` remaining directions (Yan, Kerschen, De Boe and
//! Golinval 2005 for the PCA split; Mason and Young 2002 for the limit).
//!
//! Each window is demixed by the baseline's demixing (SOBI's), and each mode's resonance
//! is refitted to the window's periodogram from the baseline's ([`refit_resonance`]); the
//! window also gets every mode's MAC to its baseline shape and the share of its energy
//! the baseline's modes do not explain (the reconstruction error: a moved or broken
//! sensor). A window with too many non-finite frames, or with a channel gone constant
//! (a dead sensor), is reported as such and gets no damage index: a sensor fault is not
//! a structural change.

use serde::{Deserialize, Serialize};
use unmix_core::Recording;
use unmix_dsp::linalg::{Matrix, symmetric_eigen};
use unmix_dsp::spectrum::real_spectrum;

use crate::resonance::refit_resonance;
use crate::stats::f_quantile;
use crate::{Error, ModalConfig, Mode, Result, identify, mac};

/// Settings of a monitoring run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthConfig {
    /// Frames of a window.
    pub window_frames: usize,
    /// Frames from one window's start to the next's.
    pub hop_frames: usize,
    /// The same over the baseline, whose windows give the features' statistics: more,
    /// overlapping windows estimate them better (half a window by default: a quarter
    /// alarmed 4.5 % of healthy windows at a nominal 1 %, half 2.0 %).
    pub baseline_hop_frames: usize,
    /// Directions of the baseline's feature spread taken as the environment's.
    pub environment_factors: usize,
    /// The share of healthy windows that may alarm: sets the control limit.
    pub false_alarm_rate: f64,
    /// A window with a larger share of non-finite frames gets no features.
    pub max_bad_share: f64,
    /// The baseline's identification.
    pub modal: ModalConfig,
}

impl HealthConfig {
    /// Windows of `window_frames` every `hop_frames`, one environmental direction, a
    /// false-alarm rate of 1 %, at most 10 % non-finite frames in a window.
    pub fn new(window_frames: usize, hop_frames: usize) -> Self {
        Self {
            window_frames,
            hop_frames,
            baseline_hop_frames: (window_frames / 2).max(1),
            environment_factors: 1,
            false_alarm_rate: 0.01,
            max_bad_share: 0.1,
            modal: ModalConfig::default(),
        }
    }
}

/// One window's modal features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowFeatures {
    /// Every mode's natural frequency (Hz), in the baseline's order.
    pub frequencies_hz: Vec<f64>,
    /// Every mode's damping ratio.
    pub damping_ratios: Vec<f64>,
    /// Every mode's shape's MAC to its baseline shape.
    pub mac: Vec<f64>,
    /// The share of the window's energy (channels standardised by the baseline) that the
    /// baseline's modes do not explain.
    pub reconstruction_error: f64,
}

/// What a window says about the structure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// The modal features, unless the window is unusable.
    pub features: Option<WindowFeatures>,
    /// Mahalanobis distance² from the baseline outside the environment's directions.
    pub damage_index: Option<f64>,
    /// Whether the index is above the baseline's control limit.
    pub alarm: bool,
    /// Frames with a non-finite value (left out of the features as zeros).
    pub bad_frames: usize,
    /// Channels (from 0) that are constant over the window although they were not over
    /// the baseline: dead sensors.
    pub dead_channels: Vec<usize>,
    /// Why the window has no features, if it has none.
    pub unusable: Option<String>,
}

/// A healthy baseline: its modes, its demixing, and the statistics of its windows'
/// features.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    /// The baseline's modes, lowest frequency first.
    pub modes: Vec<Mode>,
    /// Sample rate the baseline was recorded at.
    pub sample_rate_hz: u32,
    demixing: Vec<Vec<f64>>,
    patterns: Vec<Vec<f64>>,
    channel_scale: Vec<f64>,
    /// Mean of the baseline windows' features: every mode's log frequency, then every
    /// mode's `ln(1 − MAC)`.
    pub feature_mean: Vec<f64>,
    /// Their standard deviations over the baseline windows.
    pub feature_spread: Vec<f64>,
    /// The environment's directions in the standardised feature space, largest spread
    /// first.
    pub environment: Vec<Vec<f64>>,
    /// The directions the damage index weighs, and their baseline variances.
    residual: Vec<(Vec<f64>, f64)>,
    /// The control limit of the damage index.
    pub limit: f64,
    /// Baseline windows the statistics come from.
    pub windows: usize,
    /// The damage index of every baseline window (in-sample).
    pub baseline_indices: Vec<f64>,
}

impl Baseline {
    /// Identifies `modes` modes on `recording` (the healthy period) and learns its
    /// windows' feature statistics.
    pub fn fit(recording: &Recording, modes: usize, config: &HealthConfig) -> Result<Self> {
        check(config)?;
        let analysis = identify(recording, modes, &ModalConfig { blocks: 0, ..config.modal.clone() })?;
        let channels = recording.channels();
        let channel_scale: Vec<f64> = (0..channels)
            .map(|c| {
                let values = recording.channel(c);
                let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64;
                (values.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / values.len() as f64).sqrt()
            })
            .collect();
        let mut baseline = Self {
            modes: analysis.modes,
            sample_rate_hz: recording.sample_rate_hz(),
            demixing: analysis.demixing,
            patterns: analysis.patterns,
            channel_scale,
            feature_mean: Vec::new(),
            feature_spread: Vec::new(),
            environment: Vec::new(),
            residual: Vec::new(),
            limit: f64::INFINITY,
            windows: 0,
            baseline_indices: Vec::new(),
        };
        let samples = recording.interleaved();
        let mut features = Vec::new();
        let mut start = 0;
        while start + config.window_frames <= recording.frames() {
            let window = &samples[start * channels..(start + config.window_frames) * channels];
            if let Some(f) = baseline.features(window, config).features {
                features.push(index_features(&f));
            }
            start += config.baseline_hop_frames.min(config.hop_frames);
        }
        let n = features.first().map_or(2 * baseline.modes.len(), Vec::len);
        let k = config.environment_factors.min(n.saturating_sub(1));
        // A covariance over p directions from N windows is estimated well only when N is
        // several times p: with fewer windows the index keeps the leading p = N / 3
        // directions after the environment's (the least-spread ones, worst estimated, go).
        let p = (n - k).min(features.len() / 3);
        if p == 0 {
            return Err(Error::TooShort(format!(
                "the baseline holds {} usable windows; the damage index needs at least 3 (a longer baseline or a shorter hop)",
                features.len()
            )));
        }
        let count = features.len();
        let mean: Vec<f64> = (0..n).map(|j| features.iter().map(|f| f[j]).sum::<f64>() / count as f64).collect();
        // Each feature in units of its own baseline spread, so that the split finds the
        // directions along which features move *together* (the environment moves every
        // frequency alike), not the single noisiest feature.
        let spread: Vec<f64> = (0..n)
            .map(|a| {
                let variance = features.iter().map(|f| (f[a] - mean[a]).powi(2)).sum::<f64>() / (count - 1) as f64;
                variance.sqrt().max(1e-12)
            })
            .collect();
        let mut correlation = Matrix::zeros(n, n);
        for f in &features {
            for a in 0..n {
                for b in 0..n {
                    correlation[(a, b)] +=
                        (f[a] - mean[a]) / spread[a] * (f[b] - mean[b]) / spread[b] / (count - 1) as f64;
                }
            }
        }
        let eigen = symmetric_eigen(&correlation);
        let direction = |i: usize| (0..n).map(|a| eigen.vectors[(a, i)]).collect::<Vec<f64>>();
        // A direction with no spread at all would divide by zero: its variance is floored
        // at a millionth of the largest.
        let floor = eigen.values.first().copied().unwrap_or(0.0).max(f64::MIN_POSITIVE) * 1e-6;
        baseline.feature_mean = mean;
        baseline.feature_spread = spread;
        baseline.environment = (0..k).map(direction).collect();
        baseline.residual = (k..k + p).map(|i| (direction(i), eigen.values[i].max(floor))).collect();
        let (nn, pp) = (count as f64, p as f64);
        baseline.limit =
            pp * (nn + 1.0) * (nn - 1.0) / (nn * (nn - pp)) * f_quantile(1.0 - config.false_alarm_rate, pp, nn - pp);
        baseline.windows = count;
        baseline.baseline_indices = features.iter().map(|f| baseline.index_of(f)).collect();
        Ok(baseline)
    }

    /// Assesses one window (interleaved, the baseline's channels): its features, damage
    /// index and alarm.
    pub fn assess(&self, window: &[f32], config: &HealthConfig) -> Assessment {
        let mut assessment = self.features(window, config);
        if let Some(f) = &assessment.features {
            let index = self.index_of(&index_features(f));
            assessment.damage_index = Some(index);
            assessment.alarm = index > self.limit;
        }
        assessment
    }

    /// Directions of the feature space the damage index weighs.
    pub fn index_directions(&self) -> usize {
        self.residual.len()
    }

    /// Channels of the baseline.
    pub fn channels(&self) -> usize {
        self.channel_scale.len()
    }

    fn index_of(&self, features: &[f64]) -> f64 {
        let centred: Vec<f64> =
            features.iter().zip(&self.feature_mean).zip(&self.feature_spread).map(|((f, m), s)| (f - m) / s).collect();
        self.residual
            .iter()
            .map(|(direction, variance)| {
                let z: f64 = direction.iter().zip(&centred).map(|(d, c)| d * c).sum();
                z * z / variance
            })
            .sum()
    }

    /// The window's modal features, without the index.
    fn features(&self, window: &[f32], config: &HealthConfig) -> Assessment {
        let channels = self.channels();
        let frames = window.len() / channels.max(1);
        let mut assessment = Assessment {
            features: None,
            damage_index: None,
            alarm: false,
            bad_frames: 0,
            dead_channels: Vec::new(),
            unusable: None,
        };
        // Non-finite frames are counted and left out (as the channels' means).
        let good: Vec<bool> = window.chunks_exact(channels).map(|f| f.iter().all(|v| v.is_finite())).collect();
        assessment.bad_frames = good.iter().filter(|g| !**g).count();
        let kept = frames - assessment.bad_frames;
        if frames < 16 || assessment.bad_frames as f64 > config.max_bad_share * frames as f64 {
            assessment.unusable = Some(format!(
                "{} of {frames} frames are not finite numbers (at most {:.0} % may be)",
                assessment.bad_frames,
                100.0 * config.max_bad_share
            ));
            return assessment;
        }
        let mut mean = vec![0.0f64; channels];
        for (frame, _) in window.chunks_exact(channels).zip(&good).filter(|(_, g)| **g) {
            for (m, &v) in mean.iter_mut().zip(frame) {
                *m += f64::from(v) / kept as f64;
            }
        }
        let mut centred = vec![0.0f64; frames * channels];
        let mut spread = vec![0.0f64; channels];
        for (t, (frame, &ok)) in window.chunks_exact(channels).zip(&good).enumerate() {
            if ok {
                for c in 0..channels {
                    let v = f64::from(frame[c]) - mean[c];
                    centred[t * channels + c] = v;
                    spread[c] += v * v;
                }
            }
        }
        // A sensor that died for part of the window repeats one value: a run of a tenth of
        // the window is no signal a structure makes (a quantised channel repeats a value a
        // few samples at a time, not for seconds).
        let stuck_run = (frames / 10).max(2);
        assessment.dead_channels = (0..channels)
            .filter(|&c| {
                (spread[c] / kept as f64).sqrt() <= 1e-6 * self.channel_scale[c]
                    || longest_repeat(window.iter().skip(c).step_by(channels)) >= stuck_run
            })
            .collect();
        if !assessment.dead_channels.is_empty() {
            let names: Vec<String> = assessment.dead_channels.iter().map(|c| (c + 1).to_string()).collect();
            assessment.unusable = Some(format!(
                "channel {} constant over {} frames or more (a dead sensor)",
                names.join(", "),
                stuck_run
            ));
            return assessment;
        }
        // The baseline's outputs of this window.
        let outputs: Vec<Vec<f64>> = self
            .demixing
            .iter()
            .map(|row| centred.chunks_exact(channels).map(|x| row.iter().zip(x).map(|(w, v)| w * v).sum()).collect())
            .collect();
        let (mut residual, mut energy) = (0.0, 0.0);
        for (t, x) in centred.chunks_exact(channels).enumerate() {
            for c in 0..channels {
                let rebuilt: f64 = self.patterns.iter().zip(&outputs).map(|(p, y)| p[c] * y[t]).sum();
                let scale = self.channel_scale[c].max(f64::MIN_POSITIVE);
                residual += ((x[c] - rebuilt) / scale).powi(2);
                energy += (x[c] / scale).powi(2);
            }
        }
        let fs = f64::from(self.sample_rate_hz);
        let mut features = WindowFeatures {
            frequencies_hz: Vec::new(),
            damping_ratios: Vec::new(),
            mac: Vec::new(),
            reconstruction_error: if energy > 0.0 { residual / energy } else { 0.0 },
        };
        let pairs: Vec<(&Mode, &Vec<f64>)> = self.modes.iter().zip(&outputs).collect();
        let per_mode = crate::in_parallel(&pairs, |(mode, output)| {
            let bins = real_spectrum(output).ok()?;
            let periodogram: Vec<f64> =
                bins[1..frames.div_ceil(2)].iter().map(|b| b.norm_sqr() / frames as f64).collect();
            let fitted = refit_resonance(&periodogram, frames, &config.modal.resonance, &mode.resonance).ok()?;
            let power: f64 = output.iter().map(|y| y * y).sum();
            let pattern: Vec<f64> = (0..channels)
                .map(|c| {
                    centred.chunks_exact(channels).zip(output.iter()).map(|(x, y)| x[c] * y).sum::<f64>()
                        / power.max(f64::MIN_POSITIVE)
                })
                .collect();
            Some((fitted.resonance.frequency_hz(fs), fitted.resonance.damping_ratio(), mac(&pattern, &mode.shape)))
        });
        for (mode, result) in self.modes.iter().zip(per_mode) {
            let Some((frequency, damping, shape_mac)) = result else {
                assessment.unusable = Some(format!("the mode at {:.3} Hz could not be refitted", mode.frequency_hz));
                return assessment;
            };
            features.frequencies_hz.push(frequency);
            features.damping_ratios.push(damping);
            features.mac.push(shape_mac);
        }
        assessment.features = Some(features);
        assessment
    }
}

/// The features the damage index weighs: every mode's log frequency, and the log of its
/// shape's distance from the baseline's (`1 − MAC`, floored at 10⁻⁹: on a log scale the
/// estimation noise of a shape is about Gaussian, and a change stands out by orders).
fn index_features(features: &WindowFeatures) -> Vec<f64> {
    features
        .frequencies_hz
        .iter()
        .map(|f| f.ln())
        .chain(features.mac.iter().map(|m| (1.0 - m).max(1e-9).ln()))
        .collect()
}

/// The longest run of one repeated (finite) value.
fn longest_repeat<'a>(values: impl Iterator<Item = &'a f32>) -> usize {
    let (mut longest, mut run, mut last) = (0, 0, f32::NAN);
    for &v in values {
        run = if v == last { run + 1 } else { 1 };
        last = v;
        longest = longest.max(run);
    }
    longest
}

fn check(config: &HealthConfig) -> Result<()> {
    if config.window_frames < 64 || config.hop_frames == 0 || config.baseline_hop_frames == 0 {
        return Err(Error::Data(format!(
            "windows of {} frames every {}: a window needs at least 64 frames and a hop at least one",
            config.window_frames, config.hop_frames
        )));
    }
    if !(config.false_alarm_rate > 0.0 && config.false_alarm_rate < 0.5) {
        return Err(Error::Data(format!("a false-alarm rate of {} is not in (0, 0.5)", config.false_alarm_rate)));
    }
    if !(0.0..1.0).contains(&config.max_bad_share) {
        return Err(Error::Data(format!("a share of bad frames of {} is not in [0, 1)", config.max_bad_share)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use unmix_synth::shm::{Damage, Environment, ShmConfig, simulate};

    use super::*;

    #[test]
    fn the_environment_does_not_alarm_and_a_stiffness_loss_does() {
        // Every stiffness follows a ±1.5 % cycle of 120 s, baseline included; from 480 s the
        // second storey has lost 15 %.
        let config = ShmConfig {
            storeys: 3,
            duration_s: 720.0,
            damage: Some(Damage { storey: 2, loss: 0.15, from_s: 480.0 }),
            environment: Some(Environment { amplitude: 0.015, period_s: 120.0 }),
            ..ShmConfig::benchmark(5)
        };
        let record = simulate(&config).unwrap();
        let health = HealthConfig::new(6000, 6000);
        let baseline = Baseline::fit(&record.mixture.head(48_000), 3, &health).unwrap();
        assert_eq!(baseline.environment.len(), 1);
        // The environment's direction moves every log frequency alike.
        let env = &baseline.environment[0][..3];
        assert!(env.iter().all(|v| v.signum() == env[0].signum()), "{env:?}");
        let samples = record.mixture.interleaved();
        let assess = |from_s: usize| baseline.assess(&samples[from_s * 200 * 3..(from_s + 30) * 200 * 3], &health);
        let healthy = [240, 270, 300, 330, 360, 390, 420, 450].iter().filter(|&&t| assess(t).alarm).count();
        let damaged = [480, 510, 540, 570, 600, 630, 660, 690].iter().filter(|&&t| assess(t).alarm).count();
        assert!(healthy <= 1, "{healthy} of 8 healthy windows alarmed");
        assert!(damaged >= 6, "{damaged} of 8 damaged windows alarmed");
    }

    #[test]
    fn a_stuck_sensor_is_a_long_repeat() {
        assert_eq!(longest_repeat([1.0f32, 2.0, 2.0, 2.0, 3.0].iter()), 3);
        assert_eq!(longest_repeat([f32::NAN, f32::NAN].iter()), 1);
        assert_eq!(longest_repeat([].iter()), 0);
    }

    #[test]
    fn settings_that_mean_nothing_are_refused() {
        assert!(check(&HealthConfig::new(32, 32)).is_err());
        assert!(check(&HealthConfig { false_alarm_rate: 0.0, ..HealthConfig::new(6000, 6000) }).is_err());
        assert!(check(&HealthConfig { max_bad_share: 1.0, ..HealthConfig::new(6000, 6000) }).is_err());
        assert!(check(&HealthConfig::new(6000, 3000)).is_ok());
    }
}
