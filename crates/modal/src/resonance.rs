//! One mode's spectrum, fitted to a periodogram by the Whittle likelihood.
//!
//! A lightly damped mode of a linear structure under broadband excitation responds as a
//! second-order resonance: sampled, its coordinate (displacement, velocity or
//! acceleration alike) is an ARMA process whose autoregressive part is the pole pair
//! `r e^{±iθ}` and whose moving-average part depends on what is measured and how the
//! excitation is held between samples. What a blind demixer hands on is that coordinate
//! plus a share of the sensors' white noise, so the spectrum fitted here is
//!
//! ```text
//! S(ω) = g |B(e^{iω})|² / |A(e^{iω})|² + c,   A(z) = 1 − 2r cos θ z⁻¹ + r² z⁻²,
//!                                             B(z) = 1 + b₁ z⁻¹ + … + b_q z⁻q
//! ```
//!
//! with a white floor `c`. Fitting the floor is what keeps the damping honest: a pure AR
//! model puts the noise into the resonance and widens it (the AR-GMM time-domain model
//! reads 0.04 for a damping of 0.02 at 5 % sensor noise). The fit maximises the Whittle
//! likelihood of the periodogram ordinates `I_k` at the Fourier frequencies `ω_k`,
//! `−Σ_k ln S(ω_k) + I_k / S(ω_k)`, which are asymptotically independent exponentials
//! with means `S(ω_k)`: exact Gaussian maximum likelihood in the limit of long records,
//! at the cost of one pass over the bins per evaluation. The pole gives the frequency
//! `|λ| / 2π` and the damping ratio `−Re λ / |λ|` of `λ = f_s (ln r + iθ)`.

use serde::{Deserialize, Serialize};
use unmix_dsp::spectrum::Complex64;
use unmix_likelihood::lbfgs::{Lbfgs, Step};

use crate::{Error, Result};

/// A fitted resonance: the spectrum `S(ω) = gain |B|² / |A|² + floor` of the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resonance {
    /// Pole radius `r` (below 1).
    pub radius: f64,
    /// Pole angle `θ` in radians per sample, in `(0, π)`.
    pub angle: f64,
    /// Moving-average coefficients `b₁ … b_q`.
    pub moving_average: Vec<f64>,
    /// Gain `g` of the resonance.
    pub gain: f64,
    /// The white floor `c` under it.
    pub floor: f64,
}

impl Resonance {
    /// Natural frequency in Hz of the pole at `sample_rate_hz`.
    pub fn frequency_hz(&self, sample_rate_hz: f64) -> f64 {
        self.continuous_pole(sample_rate_hz).1 / (2.0 * std::f64::consts::PI)
    }

    /// Damping ratio of the pole.
    pub fn damping_ratio(&self) -> f64 {
        let (decay, modulus) = self.continuous_pole(1.0);
        decay / modulus
    }

    /// `(−Re λ, |λ|)` of the continuous-time pole `λ = f_s (ln r + iθ)`.
    fn continuous_pole(&self, sample_rate_hz: f64) -> (f64, f64) {
        let decay = -self.radius.ln() * sample_rate_hz;
        let turn = self.angle * sample_rate_hz;
        (decay, decay.hypot(turn))
    }

    /// The resonance alone at `ω` (radians per sample), without the floor.
    pub fn peak_density(&self, omega: f64) -> f64 {
        let z = Complex64::from_polar(1.0, -omega);
        let (a1, a2) = (-2.0 * self.radius * self.angle.cos(), self.radius * self.radius);
        let a = polynomial(&[1.0, a1, a2], z);
        let b = moving_average_polynomial(&self.moving_average, z);
        self.gain * b.norm_sqr() / a.norm_sqr()
    }

    /// The whole spectrum at `ω`: resonance plus floor.
    pub fn density(&self, omega: f64) -> f64 {
        self.peak_density(omega) + self.floor
    }

    /// The share of the spectrum at `ω` that is the resonance: the Wiener gain that keeps
    /// the mode and drops the white floor.
    pub fn wiener_gain(&self, omega: f64) -> f64 {
        let peak = self.peak_density(omega);
        peak / (peak + self.floor)
    }
}

/// Settings of [`fit_resonance`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResonanceConfig {
    /// Moving-average order `q`.
    pub moving_average_order: usize,
    /// Iterations of each start at most.
    pub max_iterations: usize,
    /// Pole radii the starts begin at (each at the smoothed periodogram's peak); the
    /// lowest NLL wins.
    pub start_radii: Vec<f64>,
}

impl Default for ResonanceConfig {
    /// `q = 1`, 500 iterations, one start at radius 0.995 (at 200 Hz a damping ratio of
    /// 0.08 at 1 Hz, 0.008 at 10 Hz). Starts at 0.99 and 0.999 reached the same optimum
    /// to 8 digits on every mode of the building benchmark, so one is the default.
    fn default() -> Self {
        Self { moving_average_order: 1, max_iterations: 500, start_radii: vec![0.995] }
    }
}

/// What [`fit_resonance`] found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResonanceFit {
    /// The spectrum.
    pub resonance: Resonance,
    /// Mean Whittle NLL per bin at the optimum.
    pub nll: f64,
    /// L-BFGS iterations of the winning start.
    pub iterations: usize,
}

/// The scales of the pole's parameters around a start `(r₀, θ₀)`. The Whittle NLL is
/// as sharp in the pole as the peak is narrow: moving θ by the half-bandwidth `1 − r`
/// moves the peak by its width. Measured in those units — `ln(1 − r) − ln(1 − r₀)` and
/// `(θ − θ₀) / (1 − r₀)` — every parameter has a curvature of order one, and the line
/// search takes one or two trials a step instead of a dozen.
#[derive(Debug, Clone, Copy)]
struct Scaling {
    angle: f64,
    gap: f64,
}

impl Scaling {
    fn around(start: &Resonance) -> Self {
        Self { angle: start.angle, gap: (1.0 - start.radius).max(1e-12) }
    }
}

/// The parameters the optimiser moves: the pole in [`Scaling`]'s units, `b₁ … b_q`,
/// `ln g`, `ln c`.
fn pack(r: &Resonance, scaling: Scaling) -> Vec<f64> {
    let mut x = vec![((1.0 - r.radius) / scaling.gap).ln(), (r.angle - scaling.angle) / scaling.gap];
    x.extend_from_slice(&r.moving_average);
    x.push(r.gain.ln());
    x.push(r.floor.ln());
    x
}

fn unpack(x: &[f64], scaling: Scaling) -> Resonance {
    let q = x.len() - 4;
    Resonance {
        radius: 1.0 - scaling.gap * x[0].exp(),
        angle: scaling.angle + scaling.gap * x[1],
        moving_average: x[2..2 + q].to_vec(),
        gain: x[2 + q].exp(),
        floor: x[3 + q].exp(),
    }
}

/// `c₀ + c₁ z + c₂ z² + …` at `z`.
fn polynomial(coefficients: &[f64], z: Complex64) -> Complex64 {
    coefficients.iter().rev().fold(Complex64::new(0.0, 0.0), |acc, &c| acc * z + c)
}

/// `1 + b₁ z + … + b_q z^q` at `z`.
fn moving_average_polynomial(b: &[f64], z: Complex64) -> Complex64 {
    b.iter().rev().fold(Complex64::new(0.0, 0.0), |acc, &c| (acc + c) * z) + 1.0
}

/// `e^{−iω_k}` of the bins `k = 1, 2, …, bins` of an `frames`-frame record.
fn phasors(bins: usize, frames: usize) -> Vec<Complex64> {
    (1..=bins).map(|k| Complex64::from_polar(1.0, -2.0 * std::f64::consts::PI * k as f64 / frames as f64)).collect()
}

/// Mean Whittle NLL per bin of `periodogram` (the ordinates at the bins whose `e^{−iω_k}`
/// are `phasors`) under the parameters `x`, and its gradient; `None` outside the domain
/// (an angle outside `(0, π)`). In real arithmetic: with `z = e^{−iω} = c − i s`, the
/// polynomials' real and imaginary parts come from `cos lω` and `sin lω`, which the
/// phasors' powers give by one complex product each.
fn whittle(
    x: &[f64],
    scaling: Scaling,
    periodogram: &[f64],
    phasors: &[Complex64],
    gradient: &mut [f64],
) -> Option<f64> {
    let model = unpack(x, scaling);
    let q = model.moving_average.len();
    let pole_inside = model.radius > 0.0 && model.radius < 1.0;
    if !(pole_inside && model.angle > 0.0 && model.angle < std::f64::consts::PI && x.iter().all(|v| v.is_finite())) {
        return None;
    }
    let (r, theta) = (model.radius, model.angle);
    let (a1, a2) = (-2.0 * r * theta.cos(), r * r);
    let (gain, floor, b) = (model.gain, model.floor, &model.moving_average);
    gradient.iter_mut().for_each(|g| *g = 0.0);
    let (mut nll, mut d_a1, mut d_a2, mut d_gain, mut d_floor) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let mut powers = vec![Complex64::new(0.0, 0.0); q.max(2)];
    let mut d_b = vec![0.0; q];
    for (&observed, &z) in periodogram.iter().zip(phasors) {
        powers[0] = z;
        for l in 1..powers.len() {
            powers[l] = powers[l - 1] * z;
        }
        let (z1, z2) = (powers[0], powers[1]);
        // A = 1 + a1 z + a2 z², B = 1 + Σ b_l z^l.
        let (ar, ai) = (1.0 + a1 * z1.re + a2 * z2.re, a1 * z1.im + a2 * z2.im);
        let (mut br, mut bi) = (1.0, 0.0);
        for (bl, p) in b.iter().zip(&powers) {
            br += bl * p.re;
            bi += bl * p.im;
        }
        let (a_norm, b_norm) = (ar * ar + ai * ai, br * br + bi * bi);
        let peak = gain * b_norm / a_norm;
        let density = peak + floor;
        if !(density > 0.0 && density.is_finite()) {
            return None;
        }
        let ratio = observed / density;
        nll += density.ln() + ratio;
        // d NLL / d S for this bin.
        let w = (1.0 - ratio) / density;
        // d|A|²/d a_m = 2 Re(conj(A) z^m), and the peak goes as 1 / |A|².
        let scale = w * peak * 2.0 / a_norm;
        d_a1 -= scale * (ar * z1.re + ai * z1.im);
        d_a2 -= scale * (ar * z2.re + ai * z2.im);
        let scale = w * gain / a_norm * 2.0;
        for (d, p) in d_b.iter_mut().zip(&powers) {
            *d += scale * (br * p.re + bi * p.im);
        }
        d_gain += w * peak;
        d_floor += w * floor;
    }
    // Chain the AR coefficients to the scaled pole: dr/dx₀ = −(1 − r), dθ/dx₁ = gap.
    let dr = -(1.0 - r);
    gradient[0] = (d_a1 * -2.0 * theta.cos() + d_a2 * 2.0 * r) * dr;
    gradient[1] = d_a1 * 2.0 * r * theta.sin() * scaling.gap;
    gradient[2..2 + q].copy_from_slice(&d_b);
    gradient[2 + q] = d_gain;
    gradient[3 + q] = d_floor;
    let bins = periodogram.len() as f64;
    gradient.iter_mut().for_each(|g| *g /= bins);
    Some(nll / bins)
}

/// Fits [`Resonance`] to `periodogram`: the ordinates `|X_k|² / N` of an `N`-frame record
/// (`frames`) at `k = 1, 2, …` (the mean and, for even `N`, the Nyquist bin left out).
/// Starts at the peak of the periodogram smoothed over about a thousandth of its bins.
pub fn fit_resonance(periodogram: &[f64], frames: usize, config: &ResonanceConfig) -> Result<ResonanceFit> {
    if periodogram.len() < 8 {
        return Err(Error::TooShort(format!("{} periodogram bins; a resonance needs 8", periodogram.len())));
    }
    if let Some(k) = periodogram.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        return Err(Error::Data(format!("periodogram bin {} is {}", k + 1, periodogram[k])));
    }
    let smoothed = moving_average(periodogram, (periodogram.len() / 1000).max(1));
    let (peak_bin, &peak) = smoothed
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .ok_or_else(|| Error::Data("an empty periodogram".into()))?;
    if peak <= 0.0 {
        return Err(Error::Data("the signal is silent: its periodogram is zero".into()));
    }
    let theta = 2.0 * std::f64::consts::PI * (peak_bin + 1) as f64 / frames as f64;
    let mut sorted = periodogram.to_vec();
    sorted.sort_by(f64::total_cmp);
    let floor = sorted[sorted.len() / 2].max(peak * 1e-12);
    let phasors = phasors(periodogram.len(), frames);
    let mut best: Option<ResonanceFit> = None;
    for &radius in &config.start_radii {
        // At the pole's angle |A| ≈ (1 − r) · 2 sin θ: a gain that puts the peak at the
        // smoothed periodogram's.
        let depth = (1.0 - radius) * 2.0 * theta.sin();
        let start = Resonance {
            radius,
            angle: theta,
            moving_average: vec![0.0; config.moving_average_order],
            gain: (peak * depth * depth).max(f64::MIN_POSITIVE),
            floor,
        };
        let scaling = Scaling::around(&start);
        let objective = |x: &[f64], g: &mut [f64]| whittle(x, scaling, periodogram, &phasors, g);
        let Some(mut lbfgs) = Lbfgs::new(pack(&start, scaling), &objective) else { continue };
        minimise(&mut lbfgs, &objective, config.max_iterations);
        if best.as_ref().is_none_or(|b| lbfgs.value < b.nll) {
            best = Some(ResonanceFit {
                resonance: unpack(&lbfgs.x, scaling),
                nll: lbfgs.value,
                iterations: lbfgs.iterations,
            });
        }
    }
    best.ok_or_else(|| Error::Data("no start of the resonance fit is finite".into()))
}

/// Fits [`Resonance`] to `periodogram` (as [`fit_resonance`]) starting from `start`, a
/// resonance fitted before (a baseline's), its gain and floor first rescaled to the
/// periodogram's level: the refit of a mode that has moved a little, on a short window
/// where the periodogram's peak alone could be another mode's leakage.
pub fn refit_resonance(
    periodogram: &[f64],
    frames: usize,
    config: &ResonanceConfig,
    start: &Resonance,
) -> Result<ResonanceFit> {
    if periodogram.len() < 8 {
        return Err(Error::TooShort(format!("{} periodogram bins; a resonance needs 8", periodogram.len())));
    }
    if let Some(k) = periodogram.iter().position(|v| !(v.is_finite() && *v >= 0.0)) {
        return Err(Error::Data(format!("periodogram bin {} is {}", k + 1, periodogram[k])));
    }
    let phasors = phasors(periodogram.len(), frames);
    let modelled: f64 = phasors.iter().map(|z| start.density(-z.arg())).sum();
    let observed: f64 = periodogram.iter().sum();
    if !(observed > 0.0 && modelled > 0.0) {
        return Err(Error::Data("the signal is silent: its periodogram is zero".into()));
    }
    let level = observed / modelled;
    let start = Resonance {
        moving_average: {
            let mut b = start.moving_average.clone();
            b.resize(config.moving_average_order, 0.0);
            b
        },
        gain: start.gain * level,
        floor: start.floor * level,
        ..start.clone()
    };
    let scaling = Scaling::around(&start);
    let objective = |x: &[f64], g: &mut [f64]| whittle(x, scaling, periodogram, &phasors, g);
    let mut lbfgs = Lbfgs::new(pack(&start, scaling), &objective)
        .ok_or_else(|| Error::Data("the resonance to start from is outside the model's domain".into()))?;
    minimise(&mut lbfgs, &objective, config.max_iterations);
    Ok(ResonanceFit { resonance: unpack(&lbfgs.x, scaling), nll: lbfgs.value, iterations: lbfgs.iterations })
}

/// L-BFGS until it stalls, `max_iterations`, or 5 iterations gain under 10⁻⁹ nats per
/// bin — far below the NLL's own sampling noise (about `1 / √bins`), and before the line
/// searches spend dozens of trials on differences that rounding decides.
fn minimise(lbfgs: &mut Lbfgs, objective: &impl unmix_likelihood::lbfgs::Objective, max_iterations: usize) {
    let mut previous = lbfgs.value;
    while lbfgs.iterations < max_iterations {
        if lbfgs.step(objective) == Step::Stalled {
            break;
        }
        if lbfgs.iterations.is_multiple_of(5) {
            if previous - lbfgs.value < 1e-9 {
                break;
            }
            previous = lbfgs.value;
        }
    }
}

/// Centred moving average over `2 half + 1` values (fewer at the ends).
pub fn moving_average(values: &[f64], half: usize) -> Vec<f64> {
    let mut prefix = Vec::with_capacity(values.len() + 1);
    prefix.push(0.0);
    for v in values {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + v);
    }
    (0..values.len())
        .map(|i| {
            let (lo, hi) = (i.saturating_sub(half), (i + half + 1).min(values.len()));
            (prefix[hi] - prefix[lo]) / (hi - lo) as f64
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    use super::*;

    fn periodogram(signal: &[f64]) -> Vec<f64> {
        let n = signal.len();
        let bins = unmix_dsp::spectrum::real_spectrum(signal).unwrap();
        bins[1..n.div_ceil(2)].iter().map(|b| b.norm_sqr() / n as f64).collect()
    }

    /// An ARMA(2, 1) resonance plus white noise, as a mode seen through a demixer.
    fn resonance_in_noise(r: f64, theta: f64, b1: f64, noise: f64, frames: usize, seed: u64) -> Vec<f64> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (a1, a2) = (2.0 * r * theta.cos(), -r * r);
        let (mut y1, mut y2, mut e1) = (0.0, 0.0, 0.0);
        (0..frames + 1000)
            .map(|_| {
                let e: f64 = rng.sample(StandardNormal);
                let y = a1 * y1 + a2 * y2 + e + b1 * e1;
                (y2, y1, e1) = (y1, y, e);
                y + noise * rng.sample::<f64, _>(StandardNormal)
            })
            .skip(1000)
            .collect()
    }

    #[test]
    fn the_gradient_is_the_slope_of_the_nll() {
        let signal = resonance_in_noise(0.99, 0.3, 0.4, 2.0, 4000, 1);
        let p = periodogram(&signal);
        let z = phasors(p.len(), signal.len());
        let scaling = Scaling { angle: 0.3, gap: 0.02 };
        let x = vec![-0.7, 0.5, 0.2, 0.1, -1.0];
        let mut g = vec![0.0; x.len()];
        whittle(&x, scaling, &p, &z, &mut g).unwrap();
        for i in 0..x.len() {
            let h = 1e-6;
            let (mut up, mut down) = (x.clone(), x.clone());
            up[i] += h;
            down[i] -= h;
            let mut scratch = vec![0.0; x.len()];
            let numeric = (whittle(&up, scaling, &p, &z, &mut scratch).unwrap()
                - whittle(&down, scaling, &p, &z, &mut scratch).unwrap())
                / (2.0 * h);
            assert!((numeric - g[i]).abs() < 1e-6 * (1.0 + numeric.abs()), "parameter {i}: {numeric} vs {}", g[i]);
        }
    }

    #[test]
    fn a_resonance_under_white_noise_is_recovered_with_its_damping() {
        // 2 Hz at 200 Hz with a damping ratio of 0.02, the noise floor 1 % of the peak.
        let (fs, f, zeta) = (200.0, 2.0, 0.02);
        let omega = 2.0 * std::f64::consts::PI * f / fs;
        let (r, theta) = ((-zeta * omega).exp(), omega * (1.0 - zeta * zeta).sqrt());
        let signal = resonance_in_noise(r, theta, 0.5, 3.0, 120_000, 7);
        let fit = fit_resonance(&periodogram(&signal), signal.len(), &ResonanceConfig::default()).unwrap();
        let found = &fit.resonance;
        assert!((found.frequency_hz(fs) / f - 1.0).abs() < 0.005, "{} Hz", found.frequency_hz(fs));
        assert!((found.damping_ratio() / zeta - 1.0).abs() < 0.2, "damping {}", found.damping_ratio());
        assert!((found.floor / 9.0 - 1.0).abs() < 0.1, "floor {}", found.floor);
        assert!(fit.nll.is_finite() && fit.iterations > 0);
        // The moving-average zero shapes the spectrum far from the peak, where the floor
        // is most of it: weakly determined there, and not what a mode is read from.
    }

    #[test]
    fn a_silent_or_broken_periodogram_is_refused() {
        assert!(fit_resonance(&[0.0; 100], 202, &ResonanceConfig::default()).is_err());
        let mut p = vec![1.0; 100];
        p[3] = f64::NAN;
        assert!(fit_resonance(&p, 202, &ResonanceConfig::default()).is_err());
        assert!(fit_resonance(&[1.0; 4], 10, &ResonanceConfig::default()).is_err());
    }
}
