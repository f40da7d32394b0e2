//! The fused tanh's loops for burn's `flex` backend: `σ(2x)` and `2σ(2x) − 1` in one pass,
//! and its backward in one pass, vectorised; and the same `exp` for the GMM prior's
//! log-sum-exp (`gmm_density.rs`).
//!
//! Why: after `tanh.rs` the forward `σ` was still a quarter of a training run: the C
//! library's scalar `expf` once per hidden unit and step, behind a branch that keeps the
//! loop from vectorising, plus three more passes (and allocations) for `×2`, `×2`, `− 1`.
//! Here `exp` is glibc's own algorithm (`sysdeps/ieee754/flt-32/e_expf.c`: a 32-entry
//! table of `2^(i/32)` and a cubic in double precision) written so that it vectorises,
//! with the fused multiply-adds where glibc's FMA build has them, so that on x86-64 every
//! value is bit for bit the C library's (`exp_is_glibcs_expf_bit_for_bit` checks a
//! million inputs; and an ignored test checks all 2^31
//! non-positive floats) and training gives the same numbers as before, only sooner.
//!
//! The saturating chain (`chain.rs`) takes three natural logarithms per sample and step
//! (its `atanh`, its log-slope, its prior's log-sum-exp): [`ln_in_place`] is a branch-free
//! `f64` `ln` (fdlibm's reduction to `[√½, √2)`, then `2 atanh(s)` as a polynomial in `s²`)
//! that vectorises, within 2 ulp of the C library's.

// The loops run under `#[target_feature]` after a run-time check of the CPU.
#![allow(unsafe_code)]

/// `(ln 2 / 32)⁻¹`, glibc's `invln2_scaled`: `0x1.71547652b82fep+0 · 32`.
const INV_LN2_32: f64 = f64::from_bits(0x4047_1547_652b_82fe);
/// `0x1.8p+52`: adding it rounds a double to an integer in the low mantissa bits.
const SHIFT: f64 = f64::from_bits(0x4338_0000_0000_0000);
/// glibc's `poly_scaled`: `2^(r/32) ≈ 1 + C2 r + C1 r² + C0 r³` on `|r| ≤ 1/2`.
const C0: f64 = f64::from_bits(0x3ebc_6af8_4b91_2394);
const C1: f64 = f64::from_bits(0x3f2e_bfce_50fa_c4f3);
const C2: f64 = f64::from_bits(0x3f96_2e42_ff0c_52d6);
/// Below `ln(2^-150)` the result rounds to zero.
const UNDERFLOW: f32 = -103.972_08;
/// glibc's `__exp2f_data.tab`: `bits(2^(i/32)) − (i << 47)`, so that adding `k << 47`
/// scales by `2^(k/32)`.
const TABLE: [u64; 32] = [
    0x3ff0000000000000,
    0x3fefd9b0d3158574,
    0x3fefb5586cf9890f,
    0x3fef9301d0125b51,
    0x3fef72b83c7d517b,
    0x3fef54873168b9aa,
    0x3fef387a6e756238,
    0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb,
    0x3feedea64c123422,
    0x3feece086061892d,
    0x3feebfdad5362a27,
    0x3feeb42b569d4f82,
    0x3feeab07dd485429,
    0x3feea47eb03a5585,
    0x3feea09e667f3bcd,
    0x3fee9f75e8ec5f74,
    0x3feea11473eb0187,
    0x3feea589994cce13,
    0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5,
    0x3feec49182a3f090,
    0x3feed503b23e255d,
    0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47,
    0x3fef199bdd85529c,
    0x3fef3720dcef9069,
    0x3fef5818dcfba487,
    0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da,
    0x3fefd0765b6e4540,
];

/// `exp(x)` for `x ≤ 0` (or NaN), glibc's algorithm with its FMA build's fused operations.
/// Only fast where `mul_add` is an instruction (inside the `fma` loops below).
#[inline(always)]
fn exp_non_positive(x: f32) -> f32 {
    let xd = f64::from(x);
    // x·32/ln2 = k + r, k rounded to nearest by the shift, r in [−1/2, 1/2].
    let kd = INV_LN2_32.mul_add(xd, SHIFT);
    let ki = kd.to_bits();
    let kd = kd - SHIFT;
    let r = INV_LN2_32.mul_add(xd, -kd);
    let scale = f64::from_bits(TABLE[(ki & 31) as usize].wrapping_add(ki << 47));
    let p = C0.mul_add(r, C1);
    let y = C2.mul_add(r, 1.0);
    let y = p.mul_add(r * r, y) * scale;
    if x < UNDERFLOW { 0.0 } else { y as f32 }
}

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

#[inline(always)]
fn exp_loop(x: &mut [f32], exp: impl Fn(f32) -> f32) {
    for x in x {
        *x = exp(*x);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn exp_avx512(x: &mut [f32]) {
    exp_loop(x, exp_non_positive);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_avx2(x: &mut [f32]) {
    exp_loop(x, exp_non_positive);
}

/// `ln 2` in two parts (fdlibm's `ln2_hi`, `ln2_lo`): `e · LN2_HI` is exact for every
/// binary exponent `e`.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// `1/(2j + 1)` for `j = 9 … 1`: `2 atanh(s) = 2s Σ_j s^{2j}/(2j + 1)`, which for
/// `|s| ≤ 3 − 2√2` (the reduced range) is below one ulp after the `s¹⁸` term.
const ATANH_SERIES: [f64; 9] =
    [1.0 / 19.0, 1.0 / 17.0, 1.0 / 15.0, 1.0 / 13.0, 1.0 / 11.0, 1.0 / 9.0, 1.0 / 7.0, 1.0 / 5.0, 1.0 / 3.0];

/// `ln x` for a positive normal `x`, without a branch: `x = 2^e m`, `m ∈ [√½, √2)`,
/// `ln m = 2 atanh((m − 1)/(m + 1))`. Only fast where `mul_add` is an instruction.
#[inline(always)]
fn ln_positive(x: f64) -> f64 {
    let bits = x.to_bits();
    let exponent = (bits >> 52) as i64 - 1023;
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let high = m > std::f64::consts::SQRT_2;
    let m = if high { m * 0.5 } else { m };
    let e = (exponent + i64::from(high)) as f64;
    // Exact (Sterbenz): m is within a factor 2 of 1.
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let s2 = s * s;
    let p = ATANH_SERIES.iter().fold(0.0f64, |p, &c| p.mul_add(s2, c));
    let ln_m = (2.0 * s * s2).mul_add(p, 2.0 * s);
    e.mul_add(LN2_HI, e.mul_add(LN2_LO, ln_m))
}

#[inline(always)]
fn ln_loop(x: &mut [f64], ln: impl Fn(f64) -> f64) {
    for x in x {
        *x = ln(*x);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,fma")]
fn ln_avx512(x: &mut [f64]) {
    ln_loop(x, ln_positive);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn ln_avx2(x: &mut [f64]) {
    ln_loop(x, ln_positive);
}

/// Which loop this CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Avx512,
    Avx2,
    /// Anything else: the C library's `expf`, one value at a time.
    Scalar,
}

fn path() -> Path {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512dq") && has!("fma") {
            return Path::Avx512;
        }
        if has!("avx2") && has!("fma") {
            return Path::Avx2;
        }
    }
    Path::Scalar
}

/// `s = σ(2x)`, `t = 2σ(2x) − 1`, element-wise; the three slices have one length.
pub(crate) fn sigmoid_tanh(x: &[f32], s: &mut [f32], t: &mut [f32]) {
    assert!(x.len() == s.len() && x.len() == t.len());
    match path() {
        // SAFETY: `path` checked that the CPU has the features the loop is compiled for.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => unsafe { forward_avx512(x, s, t) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { forward_avx2(x, s, t) },
        _ => forward_loop(x, s, t, f32::exp),
    }
}

/// In place, `x ← 2σ(2x) − 1`: the `t` of [`sigmoid_tanh`] bit for bit, for passes that
/// need no backward (validation, encoding through burn).
pub(crate) fn tanh_in_place(x: &mut [f32]) {
    match path() {
        // SAFETY: `path` checked that the CPU has the features the loop is compiled for.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => unsafe { tanh_avx512(x) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { tanh_avx2(x) },
        _ => tanh_loop(x, f32::exp),
    }
}

/// In place, `x ← exp(x)` for `x ≤ 0` (the shifted terms of a log-sum-exp): the C
/// library's `expf`, vectorised where the CPU allows.
pub(crate) fn exp_non_positive_in_place(x: &mut [f32]) {
    debug_assert!(x.iter().all(|&x| x <= 0.0 || x.is_nan()));
    match path() {
        // SAFETY: `path` checked that the CPU has the features the loop is compiled for.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => unsafe { exp_avx512(x) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { exp_avx2(x) },
        _ => exp_loop(x, f32::exp),
    }
}

/// In place, `x ← ln x` for positive normal `x` (anything else gives an unspecified
/// value: the callers' arguments are in `[10⁻⁷, K]`): within 2 ulp of the C library's
/// `log`, vectorised where the CPU allows.
pub(crate) fn ln_in_place(x: &mut [f64]) {
    debug_assert!(x.iter().all(|&x| x.is_normal() && x > 0.0));
    match path() {
        // SAFETY: `path` checked that the CPU has the features the loop is compiled for.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => unsafe { ln_avx512(x) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { ln_avx2(x) },
        _ => ln_loop(x, f64::ln),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,fma")]
fn call_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn call_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `f()`, compiled (where it inlines: mark its loops `#[inline(always)]`) for the widest
/// vector unit this CPU has, so that lane-wise loops run 4 or 8 `f64`s wide instead of
/// SSE2's 2. Rust never fuses or reorders floating-point operations by itself, so `f`'s
/// own arithmetic gives the same bits on every path (the kernels it calls, such as
/// [`ln_in_place`], choose their own: the same polynomial on AVX-512 and AVX2, the C
/// library elsewhere).
pub(crate) fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    match path() {
        // SAFETY: `path` checked that the CPU has the features the function is compiled for.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => unsafe { call_avx512(f) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => unsafe { call_avx2(f) },
        _ => f(),
    }
}

/// In place, `grad ← d tanh/dx · grad` from `s = σ(2x)`; the slices have one length.
pub(crate) fn sigmoid_tanh_backward(s: &[f32], grad: &mut [f32]) {
    assert_eq!(s.len(), grad.len());
    match path() {
        // SAFETY: `path` checked that the CPU has AVX-512F.
        #[cfg(target_arch = "x86_64")]
        Path::Avx512 => unsafe { backward_avx512(s, grad) },
        _ => backward_loop(s, grad),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 2048th non-positive float from −0 to −∞ (a million, every binade, subnormal
    /// results and the underflow edge included) and the edges themselves.
    fn non_positive_floats() -> impl Iterator<Item = f32> {
        (0x8000_0000u32..=0xff80_0000).step_by(2048).chain([0x8000_0000, 0xff80_0000]).map(f32::from_bits).chain([
            UNDERFLOW,
            UNDERFLOW.next_up(),
            UNDERFLOW.next_down(),
            -87.336_55,
            -1e-30,
        ])
    }

    /// On glibc (x86-64) the `exp` here is the C library's `expf` bit for bit, so training
    /// gives the same numbers with it; elsewhere it is within one unit in the last place.
    #[test]
    fn exp_is_glibcs_expf_bit_for_bit() {
        for x in non_positive_floats() {
            let (ours, libm) = (exp_non_positive(x), x.exp());
            if cfg!(all(target_os = "linux", target_env = "gnu")) {
                assert_eq!(ours.to_bits(), libm.to_bits(), "exp({x:e}) = {ours:e}, the C library gives {libm:e}");
            } else {
                assert!((ours.to_bits() as i64 - libm.to_bits() as i64).abs() <= 1, "exp({x:e})");
            }
        }
    }

    /// The vectorised `ln` is within 2 ulp of the C library's `log` (absolute 2⁻⁵² near
    /// `x = 1`, where `ln x` itself is near 0) from 10⁻⁷ to 48, both sides of `√2` and of 1.
    #[test]
    fn ln_is_within_two_ulp_of_the_c_librarys() {
        let mut xs: Vec<f64> = (0..2_000_000u64).map(|i| 1e-7 * (1.0 + 1e-5f64).powi(i as i32)).collect();
        xs.extend([1.0, 1.0f64.next_up(), 1.0f64.next_down(), std::f64::consts::SQRT_2, 2.0, 0.5, 1e-300, 1e300]);
        xs.extend((1..1000).map(|i| 1.0 + i as f64 * 1e-9));
        let mut ours = xs.clone();
        ln_in_place(&mut ours);
        let path = path();
        for (&x, &ours) in xs.iter().zip(&ours) {
            let want = x.ln();
            let ulp = (want.abs().next_up() - want.abs()).max(2f64.powi(-53));
            assert!(
                (ours - want).abs() <= 2.0 * ulp,
                "ln({x:e}) = {ours:e}, the C library gives {want:e}, {path:?} loop"
            );
        }
    }

    /// The loop this CPU runs gives burn-flex's `σ(2x)` (the C library's `expf`, one value
    /// at a time) bit for bit, on both sides of zero, and `t = 2s − 1`.
    #[test]
    fn forward_loop_is_flexs_sigmoid_bit_for_bit() {
        let xs: Vec<f32> = non_positive_floats().flat_map(|x| [x, -x, x * 0.5, -x * 0.5]).collect();
        let (mut s, mut t) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        sigmoid_tanh(&xs, &mut s, &mut t);
        let path = path();
        for ((&x, &s), &t) in xs.iter().zip(&s).zip(&t) {
            let want = sigmoid(x * 2.0, f32::exp);
            if cfg!(all(target_os = "linux", target_env = "gnu")) {
                assert!(s.to_bits() == want.to_bits() || s.is_nan() && want.is_nan(), "σ(2·{x:e}), {path:?} loop");
            } else {
                assert!((s - want).abs() <= 2.0 * f32::EPSILON, "σ(2·{x:e}), {path:?} loop");
            }
            assert!(t.to_bits() == (s * 2.0 - 1.0).to_bits() || t.is_nan());
        }
    }

    /// The in-place tanh (no backward to serve) gives the `t` of the two-output loop bit
    /// for bit, NaN included; the in-place `exp` is `exp_non_positive`'s.
    #[test]
    fn in_place_loops_are_the_two_output_loops() {
        let xs: Vec<f32> = non_positive_floats().flat_map(|x| [x, -x, x * 0.5, -x * 0.5, f32::NAN]).collect();
        let (mut s, mut t) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        sigmoid_tanh(&xs, &mut s, &mut t);
        let mut in_place = xs.clone();
        tanh_in_place(&mut in_place);
        for ((&x, &t), &ours) in xs.iter().zip(&t).zip(&in_place) {
            assert!(ours.to_bits() == t.to_bits() || ours.is_nan() && t.is_nan(), "tanh({x:e}): {ours:e} vs {t:e}");
        }
        let mut exps: Vec<f32> = non_positive_floats().collect();
        exp_non_positive_in_place(&mut exps);
        for (x, e) in non_positive_floats().zip(exps) {
            assert_eq!(e.to_bits(), exp_non_positive(x).to_bits(), "exp({x:e})");
        }
    }

    /// Every non-positive float, from −0 to −∞: 2^31 values, about 20 s in a release
    /// build (`cargo test --release -p unmix-model -- --ignored every_non_positive`).
    #[test]
    #[ignore = "exhaustive: run by hand in release"]
    fn exp_on_every_non_positive_float_is_glibcs() {
        if !cfg!(all(target_os = "linux", target_env = "gnu")) {
            return;
        }
        let mismatches = (0x8000_0000u32..=0xff80_0000)
            .map(f32::from_bits)
            .filter(|&x| exp_non_positive(x).to_bits() != x.exp().to_bits())
            .count();
        assert_eq!(mismatches, 0);
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
}
