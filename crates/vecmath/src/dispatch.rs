//! Which vector unit this processor has, decided once for every loop of the project.

use std::sync::OnceLock;

/// The vector instructions unmix's loops and kernels are compiled for, best last (so that
/// `unit >= VectorUnit::Avx2Fma` asks "at least AVX2 with FMA").
///
/// AVX-512 here means F, DQ and BW with FMA: every AVX-512 processor sold since Skylake-SP
/// and Zen 4 has all four, and asking for them together keeps one answer for the trainer
/// (whose `ln` needs DQ), the inference kernels and the tile unit's helpers (which need BW).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum VectorUnit {
    /// Neither of the others (or not x86-64): the C library, one value at a time.
    Scalar,
    /// AVX2 with fused multiply-add: four `f64` or eight `f32` lanes.
    Avx2Fma,
    /// AVX-512 F, DQ and BW with fused multiply-add: eight `f64` or sixteen `f32` lanes.
    Avx512,
}

impl VectorUnit {
    /// The unit of this processor, detected on the first call, and capped there by the
    /// environment variable `UNMIX_VECTOR_UNIT` (`scalar`, `avx2` or `avx512`) when it is set:
    /// to compare the paths on one machine, or to reproduce a narrower machine's figures.
    /// A cap above what the processor has, or an unknown name, leaves the detected unit.
    pub fn detect() -> Self {
        static UNIT: OnceLock<VectorUnit> = OnceLock::new();
        *UNIT.get_or_init(|| {
            let found = Self::probe();
            let cap = std::env::var("UNMIX_VECTOR_UNIT").ok().and_then(|name| Self::named(&name));
            cap.map_or(found, |cap| cap.min(found))
        })
    }

    /// The unit of a name as [`VectorUnit::name`] or `UNMIX_VECTOR_UNIT` spells it.
    pub fn named(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "scalar" => Some(VectorUnit::Scalar),
            "avx2" | "avx2+fma" => Some(VectorUnit::Avx2Fma),
            "avx512" | "avx-512" => Some(VectorUnit::Avx512),
            _ => None,
        }
    }

    fn probe() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2_fma = has!("avx2") && has!("fma");
            if avx2_fma && has!("avx512f") && has!("avx512dq") && has!("avx512bw") {
                return VectorUnit::Avx512;
            }
            if avx2_fma {
                return VectorUnit::Avx2Fma;
            }
        }
        VectorUnit::Scalar
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            VectorUnit::Scalar => "scalar",
            VectorUnit::Avx2Fma => "avx2+fma",
            VectorUnit::Avx512 => "avx-512",
        }
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
/// vector unit this processor has, so that lane-wise loops run 4 or 8 `f64`s wide instead
/// of SSE2's 2. Rust never fuses or reorders floating-point operations by itself, so `f`'s
/// own arithmetic gives the same bits on every path (the functions it calls, such as
/// [`crate::ln_in_place`], choose their own: the same polynomial on AVX-512 and AVX2, the C
/// library elsewhere).
pub fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    match VectorUnit::detect() {
        // SAFETY: `detect` checked that the processor has the features the function is
        // compiled for.
        #[cfg(target_arch = "x86_64")]
        VectorUnit::Avx512 => unsafe { call_avx512(f) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        VectorUnit::Avx2Fma => unsafe { call_avx2(f) },
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_ordered_from_none_to_the_widest() {
        assert!(VectorUnit::Scalar < VectorUnit::Avx2Fma && VectorUnit::Avx2Fma < VectorUnit::Avx512);
        // Detected once: every call agrees.
        assert_eq!(VectorUnit::detect(), VectorUnit::detect());
        assert_eq!(vectorised(|| 2 + 2), 4);
    }

    #[test]
    fn every_unit_is_found_by_its_name() {
        for unit in [VectorUnit::Scalar, VectorUnit::Avx2Fma, VectorUnit::Avx512] {
            assert_eq!(VectorUnit::named(unit.name()), Some(unit));
        }
        assert_eq!(VectorUnit::named(" AVX2 "), Some(VectorUnit::Avx2Fma));
        assert_eq!(VectorUnit::named("sse9"), None);
    }
}
