//! The sensor curves of the post-nonlinear mixtures: each sensor reads its linear mixture
//! through its own monotone curve, as real sensors, preamplifiers and converters compress,
//! expand and clip. None of them is `tanh`, the saturating benchmark's curve.

use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// One sensor's curve `x = f(u)`, for a unit-variance input `u`; every one is odd, strictly
/// increasing and continuous with its derivative.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "curve", rename_all = "kebab-case")]
pub enum SensorCurve {
    /// `u / (1 + |u/a|^p)^(1/p)`: a soft limiter of order `p`, linear near 0 and
    /// levelling off at ±`a`.
    SoftLimiter {
        /// Level it tends to.
        level: f64,
        /// Order `p` (larger: a sharper knee).
        order: f64,
    },
    /// `atan(g u) / g`: arctangent compression, slope 1 at 0.
    Arctan {
        /// Gain `g` (larger: more compression).
        gain: f64,
    },
    /// `sign(u) ln(1 + μ|u|) / μ`: logarithmic compression (μ-law), slope 1 at 0.
    Logarithmic {
        /// `μ`.
        mu: f64,
    },
    /// `u + c u³`: a mild cubic expansion.
    CubicExpansion {
        /// `c`.
        c: f64,
    },
    /// Slope 1 up to a soft knee at ±`level`, slope `floor` beyond it:
    /// `u − (1 − floor) · sign(u) · k · (softplus((|u| − level)/k) − softplus(−level/k))`
    /// — a clip whose knee has width about `k`, not quite flat beyond it.
    SoftKneeClip {
        /// Where the knee is.
        level: f64,
        /// Its width `k`.
        knee: f64,
        /// The slope beyond it.
        floor: f64,
    },
}

impl SensorCurve {
    /// The five kinds, each with parameters drawn from a range where the curve bends the
    /// signal visibly but keeps it recoverable.
    pub fn draw(kind: usize, rng: &mut StdRng) -> Self {
        match kind % 5 {
            0 => SensorCurve::SoftLimiter { level: rng.random_range(1.0..2.0), order: rng.random_range(1.5..4.0) },
            1 => SensorCurve::Arctan { gain: rng.random_range(0.7..2.0) },
            2 => SensorCurve::Logarithmic { mu: rng.random_range(3.0..20.0) },
            3 => SensorCurve::CubicExpansion { c: rng.random_range(0.05..0.25) },
            _ => SensorCurve::SoftKneeClip { level: rng.random_range(1.0..2.0), knee: 0.2, floor: 0.05 },
        }
    }

    /// `f(u)`.
    pub fn apply(&self, u: f64) -> f64 {
        let (sign, a) = (u.signum(), u.abs());
        match *self {
            SensorCurve::SoftLimiter { level, order } => u / (1.0 + (a / level).powf(order)).powf(1.0 / order),
            SensorCurve::Arctan { gain } => (gain * u).atan() / gain,
            SensorCurve::Logarithmic { mu } => sign * (mu * a).ln_1p() / mu,
            SensorCurve::CubicExpansion { c } => u + c * u * u * u,
            SensorCurve::SoftKneeClip { level, knee, floor } => {
                let bend = knee * (softplus((a - level) / knee) - softplus(-level / knee));
                sign * (a - (1.0 - floor) * bend)
            }
        }
    }

    /// Its name in reports.
    pub fn name(&self) -> &'static str {
        match self {
            SensorCurve::SoftLimiter { .. } => "soft-limiter",
            SensorCurve::Arctan { .. } => "arctan",
            SensorCurve::Logarithmic { .. } => "logarithmic",
            SensorCurve::CubicExpansion { .. } => "cubic-expansion",
            SensorCurve::SoftKneeClip { .. } => "soft-knee-clip",
        }
    }
}

fn softplus(x: f64) -> f64 {
    if x > 30.0 { x } else { x.exp().ln_1p() }
}

/// One curve per sensor: the kinds in turn from a seeded offset, so that three or more
/// sensors see three or more kinds, each with its own parameters.
pub(crate) fn draw_curves(rng: &mut StdRng, sensors: usize) -> Vec<SensorCurve> {
    let first = rng.random_range(0..5);
    (0..sensors).map(|r| SensorCurve::draw(first + r, rng)).collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    /// Every kind, over many draws of its parameters: odd, 0 at 0, strictly increasing
    /// over ±8 standard deviations, and it bends (somewhere it is off the identity by 5 %
    /// of its input or more).
    #[test]
    fn every_curve_is_odd_increasing_and_bends() {
        let mut rng = StdRng::seed_from_u64(3);
        for kind in 0..5 {
            for _ in 0..50 {
                let curve = SensorCurve::draw(kind, &mut rng);
                assert_eq!(curve.apply(0.0), 0.0, "{curve:?}");
                let grid: Vec<f64> = (-800..=800).map(|i| f64::from(i) / 100.0).collect();
                let mut bends = false;
                for pair in grid.windows(2) {
                    let (a, b) = (curve.apply(pair[0]), curve.apply(pair[1]));
                    assert!(b > a, "{curve:?} not increasing at {}", pair[0]);
                    assert!((curve.apply(-pair[1]) + b).abs() < 1e-12, "{curve:?} not odd");
                    bends |= (b - pair[1]).abs() > 0.05 * pair[1].abs() && pair[1].abs() <= 3.0;
                }
                assert!(bends, "{curve:?} is nearly the identity within ±3");
            }
        }
    }

    #[test]
    fn sensors_see_the_kinds_in_turn() {
        let mut rng = StdRng::seed_from_u64(1);
        let curves = draw_curves(&mut rng, 7);
        let names: Vec<&str> = curves.iter().map(SensorCurve::name).collect();
        let mut first_five = names[..5].to_vec();
        first_five.sort();
        first_five.dedup();
        assert_eq!(first_five.len(), 5, "{names:?}");
        assert_eq!((names[5], names[6]), (names[0], names[1]));
        assert_ne!(curves[5], curves[0], "each sensor its own parameters");
    }
}
