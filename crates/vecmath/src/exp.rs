//! `exp` for the shifted terms of a log-sum-exp (`x ≤ 0`): glibc's own `expf` algorithm
//! (`sysdeps/ieee754/flt-32/e_expf.c`: a 32-entry table of `2^(i/32)` and a cubic in double
//! precision) written so that it vectorises, with the fused multiply-adds where glibc's FMA
//! build has them, so that on x86-64 every value is the C library's bit for bit
//! (`exp_is_glibcs_expf_bit_for_bit` checks a million inputs; an ignored test checks all
//! 2^31 non-positive floats) and training gives the same numbers as with `f32::exp`, only
//! sooner.

use crate::VectorUnit;

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
pub(crate) fn exp_non_positive(x: f32) -> f32 {
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

/// In place, `x ← exp(x)` for `x ≤ 0` (the shifted terms of a log-sum-exp): the C
/// library's `expf`, vectorised where the processor allows.
pub fn exp_non_positive_in_place(x: &mut [f32]) {
    debug_assert!(x.iter().all(|&x| x <= 0.0 || x.is_nan()));
    match VectorUnit::detect() {
        // SAFETY: `detect` checked that the processor has the features the loop is
        // compiled for.
        #[cfg(target_arch = "x86_64")]
        VectorUnit::Avx512 => unsafe { exp_avx512(x) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        VectorUnit::Avx2Fma => unsafe { exp_avx2(x) },
        _ => exp_loop(x, f32::exp),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every 2048th non-positive float from −0 to −∞ (a million, every binade, subnormal
    /// results and the underflow edge included) and the edges themselves.
    pub(crate) fn non_positive_floats() -> impl Iterator<Item = f32> {
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

    /// The in-place `exp` is `exp_non_positive`'s on whichever unit this processor has.
    #[test]
    fn in_place_exp_is_the_scalar_function() {
        let mut exps: Vec<f32> = non_positive_floats().collect();
        exp_non_positive_in_place(&mut exps);
        for (x, e) in non_positive_floats().zip(exps) {
            assert_eq!(e.to_bits(), exp_non_positive(x).to_bits(), "exp({x:e})");
        }
    }

    /// Every non-positive float, from −0 to −∞: 2^31 values, about 20 s in a release
    /// build (`cargo test --release -p unmix-vecmath -- --ignored every_non_positive`).
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
}
