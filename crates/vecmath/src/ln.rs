//! A branch-free `f64` `ln` that vectorises, within 2 ulp of the C library's: fdlibm's
//! reduction to `[√½, √2)`, then `2 atanh(s)` as a polynomial in `s²`. The saturating chain
//! takes three logarithms per sample and step (its `atanh`, its log-slope, its prior's
//! log-sum-exp); the C library's `log` was 30 % of its step.

use crate::VectorUnit;

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

/// In place, `x ← ln x` for positive normal `x` (anything else gives an unspecified
/// value: the callers' arguments are in `[10⁻⁷, K]`): within 2 ulp of the C library's
/// `log`, vectorised where the processor allows.
pub fn ln_in_place(x: &mut [f64]) {
    debug_assert!(x.iter().all(|&x| x.is_normal() && x > 0.0));
    match VectorUnit::detect() {
        // SAFETY: `detect` checked that the processor has the features the loop is
        // compiled for.
        #[cfg(target_arch = "x86_64")]
        VectorUnit::Avx512 => unsafe { ln_avx512(x) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        VectorUnit::Avx2Fma => unsafe { ln_avx2(x) },
        _ => ln_loop(x, f64::ln),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectorised `ln` is within 2 ulp of the C library's `log` (absolute 2⁻⁵² near
    /// `x = 1`, where `ln x` itself is near 0) from 10⁻⁷ to 48, both sides of `√2` and of 1.
    #[test]
    fn ln_is_within_two_ulp_of_the_c_librarys() {
        let mut xs: Vec<f64> = (0..2_000_000u64).map(|i| 1e-7 * (1.0 + 1e-5f64).powi(i as i32)).collect();
        xs.extend([1.0, 1.0f64.next_up(), 1.0f64.next_down(), std::f64::consts::SQRT_2, 2.0, 0.5, 1e-300, 1e300]);
        xs.extend((1..1000).map(|i| 1.0 + i as f64 * 1e-9));
        let mut ours = xs.clone();
        ln_in_place(&mut ours);
        let unit = VectorUnit::detect();
        for (&x, &ours) in xs.iter().zip(&ours) {
            let want = x.ln();
            let ulp = (want.abs().next_up() - want.abs()).max(2f64.powi(-53));
            assert!(
                (ours - want).abs() <= 2.0 * ulp,
                "ln({x:e}) = {ours:e}, the C library gives {want:e}, {unit:?} loop"
            );
        }
    }
}
