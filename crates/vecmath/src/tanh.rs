//! `tanh` twice over: for training, as burn-flex's composed `2σ(2x) − 1` (bit for bit) in
//! one pass with its backward from the kept `σ(2x)`; for inference, as a branch-free
//! rational function accurate to 5·10⁻⁷.
//!
//! Why the training form: burn's CPU backends evaluate `tanh` with the C library's scalar
//! `tanhf` and autodiff evaluates it once more for the backward pass (44 % of a training
//! run); as `2σ(2x) − 1` with one vectorised `exp` it gives the same values and gradients
//! as the composed burn operations, bit for bit, in a fraction of the time.

use crate::VectorUnit;
use crate::exp::exp_non_positive;

/// burn-flex's `σ` exactly: `1/(1 + e^−u)` for `u ≥ 0`, `e^u/(1 + e^u)` below, both with
/// `e = exp(−|u|)`, chosen without a branch.
#[inline(always)]
fn sigmoid(u: f32, exp: impl Fn(f32) -> f32) -> f32 {
    let e = exp(-u.abs());
    let numerator = if u >= 0.0 { 1.0 } else { e };
    numerator / (1.0 + e)
}

#[inline(always)]
fn forward_loop(x: &[f32], s: &mut [f32], t: &mut [f32], exp: impl Fn(f32) -> f32 + Copy) {
    for ((&x, s), t) in x.iter().zip(s.iter_mut()).zip(t.iter_mut()) {
        // The composed form's operations in its order: ×2, σ, ×2, −1.
        let sig = sigmoid(x * 2.0, exp);
        *s = sig;
        *t = sig * 2.0 - 1.0;
    }
}

#[inline(always)]
fn tanh_loop(x: &mut [f32], exp: impl Fn(f32) -> f32 + Copy) {
    for x in x {
        // As `forward_loop`, without keeping `σ`.
        *x = sigmoid(*x * 2.0, exp) * 2.0 - 1.0;
    }
}

#[inline(always)]
fn backward_loop(s: &[f32], grad: &mut [f32]) {
    for (g, &s) in grad.iter_mut().zip(s) {
        // autodiff through the composed form: ×2, then burn's `σ'` (g·s·(1 − s)), then ×2.
        *g = (*g * 2.0) * s * (1.0 - s) * 2.0;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn forward_avx512(x: &[f32], s: &mut [f32], t: &mut [f32]) {
    forward_loop(x, s, t, exp_non_positive);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn forward_avx2(x: &[f32], s: &mut [f32], t: &mut [f32]) {
    forward_loop(x, s, t, exp_non_positive);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn tanh_avx512(x: &mut [f32]) {
    tanh_loop(x, exp_non_positive);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn tanh_avx2(x: &mut [f32]) {
    tanh_loop(x, exp_non_positive);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn backward_avx512(s: &[f32], grad: &mut [f32]) {
    backward_loop(s, grad);
}

/// `s = σ(2x)`, `t = 2σ(2x) − 1`, element-wise; the three slices have one length.
pub fn sigmoid_tanh(x: &[f32], s: &mut [f32], t: &mut [f32]) {
    assert!(x.len() == s.len() && x.len() == t.len());
    match VectorUnit::detect() {
        // SAFETY: `detect` checked that the processor has the features the loop is
        // compiled for.
        #[cfg(target_arch = "x86_64")]
        VectorUnit::Avx512 => unsafe { forward_avx512(x, s, t) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        VectorUnit::Avx2Fma => unsafe { forward_avx2(x, s, t) },
        _ => forward_loop(x, s, t, f32::exp),
    }
}

/// In place, `x ← 2σ(2x) − 1`: the `t` of [`sigmoid_tanh`] bit for bit, for passes that
/// need no backward (validation, encoding through burn).
pub fn tanh_in_place(x: &mut [f32]) {
    match VectorUnit::detect() {
        // SAFETY: `detect` checked that the processor has the features the loop is
        // compiled for.
        #[cfg(target_arch = "x86_64")]
        VectorUnit::Avx512 => unsafe { tanh_avx512(x) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        VectorUnit::Avx2Fma => unsafe { tanh_avx2(x) },
        _ => tanh_loop(x, f32::exp),
    }
}

/// In place, `grad ← d tanh/dx · grad` from `s = σ(2x)`; the slices have one length.
pub fn sigmoid_tanh_backward(s: &[f32], grad: &mut [f32]) {
    assert_eq!(s.len(), grad.len());
    match VectorUnit::detect() {
        // SAFETY: `detect` checked that the processor has AVX-512F.
        #[cfg(target_arch = "x86_64")]
        VectorUnit::Avx512 => unsafe { backward_avx512(s, grad) },
        _ => backward_loop(s, grad),
    }
}

/// Largest absolute error of [`fast_tanh`] against `f64` tanh, measured over
/// `[-10, 10]` in steps of 1e-4 (unit test `fast_tanh_error_is_as_stated`).
pub const TANH_MAX_ABS_ERROR: f32 = 5e-7;

/// `tanh` as a [7/6] rational function on `[-7.9, 7.9]` (the coefficients of Eigen's
/// `generic_fast_tanh_float`), saturating beyond; branch-free, so it vectorises. The
/// inference engine's activation: 17 operations instead of a call into the C library.
#[allow(clippy::excessive_precision)] // coefficients quoted as published
#[inline(always)]
pub fn fast_tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let mut p = -2.760_768_5e-16f32;
    p = p * x2 + 2.000_187_9e-13;
    p = p * x2 - 8.604_671_5e-11;
    p = p * x2 + 5.122_297e-8;
    p = p * x2 + 1.485_722_4e-5;
    p = p * x2 + 6.372_619_3e-4;
    p = p * x2 + 4.893_524_6e-3;
    let p = p * x;
    let mut q = 1.198_258_4e-6f32;
    q = q * x2 + 1.185_347_1e-4;
    q = q * x2 + 2.268_434_6e-3;
    q = q * x2 + 4.893_525e-3;
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exp::tests::non_positive_floats;

    /// The loop this processor runs gives burn-flex's `σ(2x)` (the C library's `expf`, one
    /// value at a time) bit for bit, on both sides of zero, and `t = 2s − 1`.
    #[test]
    fn forward_loop_is_flexs_sigmoid_bit_for_bit() {
        let xs: Vec<f32> = non_positive_floats().flat_map(|x| [x, -x, x * 0.5, -x * 0.5]).collect();
        let (mut s, mut t) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        sigmoid_tanh(&xs, &mut s, &mut t);
        let unit = VectorUnit::detect();
        for ((&x, &s), &t) in xs.iter().zip(&s).zip(&t) {
            let want = sigmoid(x * 2.0, f32::exp);
            if cfg!(all(target_os = "linux", target_env = "gnu")) {
                assert!(s.to_bits() == want.to_bits() || s.is_nan() && want.is_nan(), "σ(2·{x:e}), {unit:?} loop");
            } else {
                assert!((s - want).abs() <= 2.0 * f32::EPSILON, "σ(2·{x:e}), {unit:?} loop");
            }
            assert!(t.to_bits() == (s * 2.0 - 1.0).to_bits() || t.is_nan());
        }
    }

    /// The in-place tanh (no backward to serve) gives the `t` of the two-output loop bit
    /// for bit, NaN included.
    #[test]
    fn in_place_tanh_is_the_two_output_loop() {
        let xs: Vec<f32> = non_positive_floats().flat_map(|x| [x, -x, x * 0.5, -x * 0.5, f32::NAN]).collect();
        let (mut s, mut t) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        sigmoid_tanh(&xs, &mut s, &mut t);
        let mut in_place = xs.clone();
        tanh_in_place(&mut in_place);
        for ((&x, &t), &ours) in xs.iter().zip(&t).zip(&in_place) {
            assert!(ours.to_bits() == t.to_bits() || ours.is_nan() && t.is_nan(), "tanh({x:e}): {ours:e} vs {t:e}");
        }
    }

    /// NaN stays NaN, ±∞ saturate, ±0 gives σ = 1/2 and tanh = 0.
    #[test]
    fn edges_of_the_forward_loop() {
        let x = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1e-40, 60.0, -60.0];
        let (mut s, mut t) = ([0.0; 8], [0.0; 8]);
        sigmoid_tanh(&x, &mut s, &mut t);
        assert!(s[0].is_nan() && t[0].is_nan());
        assert_eq!((s[1], t[1]), (1.0, 1.0));
        assert_eq!((s[2], t[2]), (0.0, -1.0));
        assert_eq!((s[3], t[3]), (0.5, 0.0));
        assert_eq!((s[4], t[4]), (0.5, 0.0));
        assert_eq!((s[6], t[6]), (1.0, 1.0));
        assert_eq!(t[7], -1.0);
    }

    #[test]
    fn backward_is_the_derivative() {
        let x: Vec<f32> = (-40..=40).map(|i| i as f32 * 0.1).collect();
        let (mut s, mut t) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        sigmoid_tanh(&x, &mut s, &mut t);
        let mut g = vec![1.0; x.len()];
        sigmoid_tanh_backward(&s, &mut g);
        for (&x, &g) in x.iter().zip(&g) {
            let want = 1.0 - (x as f64).tanh().powi(2);
            assert!((g as f64 - want).abs() < 1e-6, "tanh'({x}) = {g}, want {want}");
        }
    }

    #[test]
    fn fast_tanh_error_is_as_stated() {
        let mut worst = 0.0f64;
        let mut x = -10.0f64;
        while x <= 10.0 {
            let err = (f64::from(fast_tanh(x as f32)) - x.tanh()).abs();
            worst = worst.max(err);
            x += 1e-4;
        }
        assert!(worst <= f64::from(TANH_MAX_ABS_ERROR), "max error {worst:e}");
        assert_eq!(fast_tanh(0.0), 0.0);
        assert!(fast_tanh(50.0) <= 1.0 && fast_tanh(-50.0) >= -1.0);
    }
}
