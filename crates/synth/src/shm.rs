//! A shear building shaken at its base: the structural-health benchmark.
//!
//! `storeys` floors, each a lumped mass joined to the one below by its storey's lateral
//! stiffness (the first storey to the ground), so that `M ü + C u̇ + K u = −M 1 a_g` for the
//! floors' displacements `u` relative to the ground and the ground acceleration `a_g`, with
//! `M` diagonal and `K` tridiagonal. Damping is modal (every mode the same ratio `ζ`). The
//! sensors are accelerometers on every floor: the absolute accelerations
//! `ü + 1 a_g = Σ_j φ_j a_j`, where `φ_j` is mode `j`'s mass-normalised shape and
//! `a_j = −(2ζω_j q̇_j + ω_j² q_j)` its modal acceleration (the ground term cancels, as
//! `Σ_j φ_j φ_jᵀ M 1 = 1`); `a_j` are the sources, the floors the mixture.
//!
//! The ground acceleration is white Gaussian noise held over each sample (white up to the
//! Nyquist frequency), and every mode is advanced by its exact discretisation for that
//! held input, so the simulation has no integration error whatever the sampling rate.
//! The stiffnesses may change — a loss on one storey from a given time, and a slow
//! environmental factor on all of them (temperature stiffens and softens a structure
//! together) — and then the modes are recomputed, at most once a second, the state
//! carried over through the floors' displacements and velocities, which are continuous.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};
use unmix_core::Recording;
use unmix_core::limits::MAX_CHANNELS;
use unmix_dsp::linalg::{Matrix, symmetric_eigen};

use crate::Error;

/// A stiffness loss on one storey.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Damage {
    /// The storey, from 1 (the ground storey).
    pub storey: usize,
    /// The fraction of its stiffness lost (0.1: 10 %).
    pub loss: f64,
    /// When it starts, in seconds from the start.
    pub from_s: f64,
}

/// A slow factor on every stiffness, `1 + amplitude · sin(2π t / period)`: a daily
/// temperature cycle compressed in time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// Relative amplitude (0.015: ±1.5 %).
    pub amplitude: f64,
    /// Period in seconds.
    pub period_s: f64,
}

/// Settings of [`simulate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShmConfig {
    /// Floors (and so modes and sensors).
    pub storeys: usize,
    /// Length of the record, in seconds.
    pub duration_s: f64,
    /// Sampling rate of the accelerometers.
    pub sample_rate_hz: u32,
    /// The first mode's natural frequency (Hz) the stiffnesses are scaled to.
    pub first_frequency_hz: f64,
    /// Every mode's damping ratio.
    pub damping_ratio: f64,
    /// Sensor noise: white, its standard deviation this fraction of each floor's RMS
    /// response.
    pub noise: f64,
    /// A stiffness loss, if any.
    pub damage: Option<Damage>,
    /// An environmental factor, if any.
    pub environment: Option<Environment>,
    /// Seed of the masses' and stiffnesses' spread, the ground motion and the noise.
    pub seed: u64,
}

impl ShmConfig {
    /// The benchmark: 4 storeys, 10 minutes at 200 Hz, first mode at 2 Hz, 2 % damping,
    /// 5 % sensor noise, healthy, no environment.
    pub fn benchmark(seed: u64) -> Self {
        Self {
            storeys: 4,
            duration_s: 600.0,
            sample_rate_hz: 200,
            first_frequency_hz: 2.0,
            damping_ratio: 0.02,
            noise: 0.05,
            damage: None,
            environment: None,
            seed,
        }
    }

    fn check(&self) -> Result<usize, Error> {
        let invalid = |what: String| Err(Error::Invalid(what));
        if !(1..=MAX_CHANNELS).contains(&self.storeys) {
            return invalid(format!("a building of 1 to {MAX_CHANNELS} storeys, not {}", self.storeys));
        }
        let rate = f64::from(self.sample_rate_hz);
        let frames = (self.duration_s * rate).round();
        if !(2.0..=1e9).contains(&frames) {
            return invalid(format!("a duration of {} s at {rate} Hz is not 2 frames to 10⁹", self.duration_s));
        }
        if !(self.first_frequency_hz > 0.0 && self.first_frequency_hz.is_finite()) {
            return invalid(format!("the first mode's frequency must be positive, not {}", self.first_frequency_hz));
        }
        if !(0.0..1.0).contains(&self.damping_ratio) {
            return invalid(format!("a damping ratio in [0, 1), not {}", self.damping_ratio));
        }
        if !(self.noise >= 0.0 && self.noise.is_finite()) {
            return invalid(format!("sensor noise must be 0 or more, not {}", self.noise));
        }
        if let Some(d) = self.damage
            && !((1..=self.storeys).contains(&d.storey) && (0.0..1.0).contains(&d.loss) && d.from_s >= 0.0)
        {
            return invalid(format!(
                "damage needs a storey from 1 to {}, a loss in [0, 1) and a start at 0 s or later (got {d:?})",
                self.storeys
            ));
        }
        if let Some(e) = self.environment
            && !((0.0..0.5).contains(&e.amplitude) && e.period_s > 0.0 && e.period_s.is_finite())
        {
            return invalid(format!(
                "the environment needs an amplitude in [0, 0.5) and a positive period (got {e:?})"
            ));
        }
        Ok(frames as usize)
    }
}

/// The building's modes at one set of stiffnesses, lowest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Modes {
    /// Natural frequencies, Hz.
    pub frequencies_hz: Vec<f64>,
    /// Damping ratios.
    pub damping_ratios: Vec<f64>,
    /// Shapes, one per mode, each of unit length with its top floor positive.
    pub shapes: Vec<Vec<f64>>,
}

/// What [`simulate`] drew, beside the recordings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShmMeta {
    /// `"shm"`.
    pub kind: String,
    /// The settings.
    pub config: ShmConfig,
    /// Frames written.
    pub frames: usize,
    /// Floor masses (the first floor's is 1).
    pub masses: Vec<f64>,
    /// Storey stiffnesses, healthy, without the environment.
    pub stiffnesses: Vec<f64>,
    /// The healthy building's modes (without the environment): the truth of the modal
    /// coordinates in `truth.wav`.
    pub modes: Modes,
    /// The modes once damaged, if there is damage.
    pub damaged_modes: Option<Modes>,
    /// Each floor's sensor noise standard deviation.
    pub noise_std: Vec<f64>,
}

/// A simulated record.
#[derive(Debug, Clone)]
pub struct ShmRecord {
    /// Floor accelerations with sensor noise, one channel per floor, ground floor first.
    pub mixture: Recording,
    /// Every mode's contribution to the accelerations, lowest mode first: the floors'
    /// noiseless accelerations are `Σ_j shape_j · truth_j` with the modes' unit-length
    /// shapes of the moment (the healthy ones until damage or the environment change
    /// them).
    pub truth: Recording,
    /// What was drawn.
    pub meta: ShmMeta,
}

/// Mass-normalised modes of `M = diag(masses)`, `K` of `stiffnesses` (storey `i` joins
/// floor `i − 1`, the ground for the first, to floor `i`).
struct MassModes {
    /// `ω_j`, rad/s, ascending.
    omega: Vec<f64>,
    /// `φ_j`, mass-normalised (`φᵀ M φ = 1`), `phi[j][floor]`.
    phi: Vec<Vec<f64>>,
}

fn mass_modes(masses: &[f64], stiffnesses: &[f64]) -> MassModes {
    let n = masses.len();
    // `M^{-1/2} K M^{-1/2}` is symmetric; its eigenvectors `v` give `φ = M^{-1/2} v`.
    let mut a = Matrix::zeros(n, n);
    for i in 0..n {
        let below = stiffnesses[i];
        let above = stiffnesses.get(i + 1).copied().unwrap_or(0.0);
        a.data[i * n + i] = (below + above) / masses[i];
        if i + 1 < n {
            let v = -above / (masses[i] * masses[i + 1]).sqrt();
            a.data[i * n + i + 1] = v;
            a.data[(i + 1) * n + i] = v;
        }
    }
    let eigen = symmetric_eigen(&a);
    // Largest first there: reversed, the lowest mode first.
    let (omega, phi) = (0..n)
        .rev()
        .map(|k| {
            let phi: Vec<f64> = (0..n).map(|i| eigen.vectors.data[i * n + k] / masses[i].sqrt()).collect();
            (eigen.values[k].max(0.0).sqrt(), phi)
        })
        .unzip();
    MassModes { omega, phi }
}

impl MassModes {
    /// For every mode, `sign · ‖φ‖`: its unit-length shape, top floor positive, is
    /// `φ / that`, and its source `that · a` (so that shape × source = `φ a`).
    fn unit_scales(&self) -> Vec<f64> {
        self.phi
            .iter()
            .map(|phi| {
                let norm = phi.iter().map(|v| v * v).sum::<f64>().sqrt();
                if phi.last().copied().unwrap_or(1.0) < 0.0 { -norm } else { norm }
            })
            .collect()
    }

    fn report(&self, damping: f64) -> Modes {
        let shapes = self
            .phi
            .iter()
            .zip(self.unit_scales())
            .map(|(phi, scale)| phi.iter().map(|v| v / scale).collect())
            .collect();
        Modes {
            frequencies_hz: self.omega.iter().map(|w| w / std::f64::consts::TAU).collect(),
            damping_ratios: vec![damping; self.omega.len()],
            shapes,
        }
    }
}

/// One mode's exact discretisation over a sample with its input held: `x ← A x + b f` for
/// the state `(q, q̇)` of `q̈ + 2ζω q̇ + ω² q = f`.
#[derive(Debug, Clone, Copy)]
struct Step {
    a: [[f64; 2]; 2],
    b: [f64; 2],
}

impl Step {
    fn new(omega: f64, zeta: f64, h: f64) -> Self {
        let wd = omega * (1.0 - zeta * zeta).sqrt();
        let decay = (-zeta * omega * h).exp();
        let (s, c) = (wd * h).sin_cos();
        let a = [
            [decay * (c + zeta * omega / wd * s), decay * s / wd],
            [-decay * omega * omega / wd * s, decay * (c - zeta * omega / wd * s)],
        ];
        // `b = A_c⁻¹ (A − I) (0, 1)ᵀ` with `A_c = [[0, 1], [−ω², −2ζω]]`.
        let b = [(-2.0 * zeta * omega * a[0][1] - (a[1][1] - 1.0)) / (omega * omega), a[0][1]];
        Self { a, b }
    }
}

/// Simulates the record `config` describes.
pub fn simulate(config: &ShmConfig) -> Result<ShmRecord, Error> {
    let frames = config.check()?;
    let n = config.storeys;
    let mut rng = StdRng::seed_from_u64(config.seed);
    // A spread of ±10 % around uniform masses and stiffnesses, so that no two seeds give
    // the same building; the stiffnesses then scaled to the first mode's frequency.
    let masses: Vec<f64> = (0..n).map(|i| if i == 0 { 1.0 } else { rng.random_range(0.9..1.1) }).collect();
    let mut stiffnesses: Vec<f64> = (0..n).map(|_| rng.random_range(0.9..1.1)).collect();
    let first = mass_modes(&masses, &stiffnesses).omega[0] / std::f64::consts::TAU;
    let scale = (config.first_frequency_hz / first).powi(2);
    stiffnesses.iter_mut().for_each(|k| *k *= scale);
    let zeta = config.damping_ratio;
    let rate = f64::from(config.sample_rate_hz);
    let h = 1.0 / rate;
    let healthy = mass_modes(&masses, &stiffnesses);
    if healthy.omega.last().is_some_and(|w| w / std::f64::consts::TAU >= 0.5 * rate) {
        return Err(Error::Invalid(format!(
            "the highest mode ({:.1} Hz) is at or above the Nyquist frequency of {rate} Hz",
            healthy.omega[n - 1] / std::f64::consts::TAU
        )));
    }
    let stiffness_at = |t: f64, damaged: bool| -> Vec<f64> {
        let factor =
            config.environment.map_or(1.0, |e| 1.0 + e.amplitude * (std::f64::consts::TAU * t / e.period_s).sin());
        stiffnesses
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let loss = config.damage.filter(|d| damaged && d.storey == i + 1).map_or(0.0, |d| d.loss);
                k * factor * (1.0 - loss)
            })
            .collect()
    };
    let damage_frame = config.damage.map(|d| (d.from_s * rate).round() as usize);
    let mut modes = mass_modes(&masses, &stiffness_at(0.0, damage_frame == Some(0)));
    let mut steps: Vec<Step> = modes.omega.iter().map(|&w| Step::new(w, zeta, h)).collect();
    let participation = |modes: &MassModes| -> Vec<f64> {
        modes.phi.iter().map(|phi| phi.iter().zip(&masses).map(|(p, m)| p * m).sum()).collect()
    };
    let mut gamma = participation(&modes);
    let mut scales = modes.unit_scales();
    let (mut q, mut v) = (vec![0.0; n], vec![0.0; n]);
    let mut floors = vec![0.0f64; frames * n];
    let mut sources = vec![0.0f64; frames * n];
    let block = config.sample_rate_hz as usize;
    let varies = config.environment.is_some();
    for t in 0..frames {
        let damage_starts = damage_frame == Some(t) && t > 0;
        if damage_starts || (varies && t > 0 && t % block == 0) {
            // New stiffnesses: the floors' displacements and velocities carry the state
            // into the new modes (`q = Φᵀ M u`).
            let u: Vec<f64> = (0..n).map(|i| (0..n).map(|j| modes.phi[j][i] * q[j]).sum()).collect();
            let w: Vec<f64> = (0..n).map(|i| (0..n).map(|j| modes.phi[j][i] * v[j]).sum()).collect();
            let damaged = damage_frame.is_some_and(|d| t >= d);
            modes = mass_modes(&masses, &stiffness_at(t as f64 * h, damaged));
            steps = modes.omega.iter().map(|&w| Step::new(w, zeta, h)).collect();
            gamma = participation(&modes);
            scales = modes.unit_scales();
            for j in 0..n {
                let phi = &modes.phi[j];
                q[j] = (0..n).map(|i| phi[i] * masses[i] * u[i]).sum();
                v[j] = (0..n).map(|i| phi[i] * masses[i] * w[i]).sum();
            }
        }
        // Every mode's acceleration at this sample, then the step to the next with the
        // ground acceleration held over it.
        let ground: f64 = rng.sample(StandardNormal);
        for j in 0..n {
            let omega = modes.omega[j];
            let a = -(2.0 * zeta * omega * v[j] + omega * omega * q[j]);
            let phi = &modes.phi[j];
            sources[t * n + j] = scales[j] * a;
            for i in 0..n {
                floors[t * n + i] += phi[i] * a;
            }
            let s = steps[j];
            let f = -gamma[j] * ground;
            let (q0, v0) = (q[j], v[j]);
            q[j] = s.a[0][0] * q0 + s.a[0][1] * v0 + s.b[0] * f;
            v[j] = s.a[1][0] * q0 + s.a[1][1] * v0 + s.b[1] * f;
        }
    }
    let noise_std: Vec<f64> = (0..n)
        .map(|i| {
            let rms = (floors.iter().skip(i).step_by(n).map(|v| v * v).sum::<f64>() / frames as f64).sqrt();
            config.noise * rms
        })
        .collect();
    for frame in floors.chunks_exact_mut(n) {
        for (v, s) in frame.iter_mut().zip(&noise_std) {
            *v += s * rng.sample::<f64, _>(StandardNormal);
        }
    }
    let to_recording = |values: Vec<f64>| {
        Recording::from_interleaved(config.sample_rate_hz, n, values.into_iter().map(|v| v as f32).collect())
            .map_err(|e| Error::Invalid(e.to_string()))
    };
    let damaged_modes = config.damage.map(|d| {
        let k: Vec<f64> = stiffnesses
            .iter()
            .enumerate()
            .map(|(i, k)| if i + 1 == d.storey { k * (1.0 - d.loss) } else { *k })
            .collect();
        mass_modes(&masses, &k).report(zeta)
    });
    let meta = ShmMeta {
        kind: "shm".into(),
        config: config.clone(),
        frames,
        masses,
        stiffnesses,
        modes: healthy.report(zeta),
        damaged_modes,
        noise_std,
    };
    Ok(ShmRecord { mixture: to_recording(floors)?, truth: to_recording(sources)?, meta })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact discretisation: a free decay from `q = 1` follows
    /// `e^{−ζωt} (cos ω_d t + ζω/ω_d sin ω_d t)` to rounding after thousands of steps,
    /// and a held unit input settles at the static `1/ω²`.
    #[test]
    fn a_mode_steps_exactly() {
        let (omega, zeta, h) = (2.0 * std::f64::consts::PI * 3.0, 0.02, 1.0 / 200.0);
        let step = Step::new(omega, zeta, h);
        let (mut q, mut v) = (1.0, 0.0);
        let wd = omega * (1.0f64 - zeta * zeta).sqrt();
        for k in 1..=4000 {
            (q, v) = (step.a[0][0] * q + step.a[0][1] * v, step.a[1][0] * q + step.a[1][1] * v);
            let t = k as f64 * h;
            let exact = (-zeta * omega * t).exp() * ((wd * t).cos() + zeta * omega / wd * (wd * t).sin());
            assert!((q - exact).abs() < 1e-9, "step {k}: {q} vs {exact}");
        }
        let (mut q, mut v) = (0.0, 0.0);
        for _ in 0..200_000 {
            (q, v) = (step.a[0][0] * q + step.a[0][1] * v + step.b[0], step.a[1][0] * q + step.a[1][1] * v + step.b[1]);
        }
        assert!((q * omega * omega - 1.0).abs() < 1e-6 && v.abs() < 1e-6, "{q} {v}");
    }

    /// The building: its first mode where it was asked, its modes' shapes orthonormal
    /// under the mass (so the mixing is invertible), and the floors' noiseless
    /// accelerations exactly the shapes times the sources; each source's spectrum peaks at
    /// its mode's frequency, with the half-power width of its damping.
    #[test]
    fn the_floors_are_the_modes_mixed_by_their_shapes() {
        let config = ShmConfig { duration_s: 120.0, noise: 0.0, ..ShmConfig::benchmark(3) };
        let record = simulate(&config).unwrap();
        let meta = &record.meta;
        assert!((meta.modes.frequencies_hz[0] - 2.0).abs() < 1e-9);
        assert!(meta.modes.frequencies_hz.windows(2).all(|p| p[1] > p[0]), "{:?}", meta.modes.frequencies_hz);
        let n = 4;
        let (x, s) = (record.mixture.interleaved(), record.truth.interleaved());
        for (frame, sources) in x.chunks_exact(n).zip(s.chunks_exact(n)).step_by(97) {
            for (i, &floor) in frame.iter().enumerate() {
                let mixed: f64 = (0..n).map(|j| meta.modes.shapes[j][i] * f64::from(sources[j])).sum();
                assert!((mixed - f64::from(floor)).abs() < 1e-4 * (1.0 + mixed.abs()), "{mixed} vs {floor}");
            }
        }
        // A discrete Fourier transform of source j around its mode: the peak is there.
        let rate = 200.0;
        for (j, &f0) in meta.modes.frequencies_hz.iter().enumerate() {
            let column: Vec<f64> = s.iter().skip(j).step_by(n).map(|&v| f64::from(v)).collect();
            let power = |f: f64| {
                let (mut re, mut im) = (0.0, 0.0);
                for (t, v) in column.iter().enumerate() {
                    let (sn, cs) = (std::f64::consts::TAU * f * t as f64 / rate).sin_cos();
                    re += v * cs;
                    im += v * sn;
                }
                re * re + im * im
            };
            // Averaged over eleven bins inside the resonance's half-power band (2ζ f0 wide),
            // as one bin of a random process is itself random.
            let band = |f: f64| (-5..=5).map(|k| power(f + f64::from(k) / 120.0)).sum::<f64>();
            let at = band(f0);
            assert!(at > 10.0 * band(0.7 * f0) && at > 10.0 * band(1.3 * f0), "mode {j} at {f0} Hz");
        }
    }

    /// A stiffness loss lowers the frequencies from its start, most those of the modes
    /// that bend the damaged storey; the environment moves every frequency together.
    #[test]
    fn damage_and_environment_change_the_modes() {
        let damage = Damage { storey: 1, loss: 0.1, from_s: 10.0 };
        let config = ShmConfig { duration_s: 20.0, damage: Some(damage), ..ShmConfig::benchmark(1) };
        let record = simulate(&config).unwrap();
        let (healthy, damaged) = (&record.meta.modes, record.meta.damaged_modes.as_ref().unwrap());
        for (h, d) in healthy.frequencies_hz.iter().zip(&damaged.frequencies_hz) {
            assert!(d < h && d / h > 0.9, "{h} → {d}");
        }
        assert!(record.mixture.interleaved().iter().all(|v| v.is_finite()));
        let bad = ShmConfig { damage: Some(Damage { storey: 5, ..damage }), ..config.clone() };
        assert!(simulate(&bad).unwrap_err().to_string().contains("storey from 1 to 4"));
        let environment = Environment { amplitude: 0.015, period_s: 60.0 };
        let config = ShmConfig { duration_s: 20.0, environment: Some(environment), ..ShmConfig::benchmark(1) };
        assert!(simulate(&config).is_ok());
    }
}
