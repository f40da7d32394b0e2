//! The dense layer on AVX-512 FMA: the kernel of every processor with AVX-512F and no AMX
//! tile unit (AMD Zen 4 and later, Intel Skylake-SP to Ice Lake), and of the layers too
//! narrow for the tile unit where there is one.
//!
//! A block of `R` frames × `16 L` outputs is accumulated in `R · L` of the 32 vector
//! registers: each input's `16 L` weights are loaded once for the `R` frames and each
//! frame's input is broadcast once for its `16 L` outputs. `R` grows as `L` shrinks, so
//! that a layer with few outputs (the last, to a handful of sources) still has a dozen
//! independent accumulators to hide the FMA latency behind; with only `L` of them the
//! multiply-adds would wait on each other.
//!
//! The activation is applied in the registers before the store, so a layer's output is
//! written once and never read back for it: `tanh` as [`tanh16`], ReLU and leaky ReLU
//! exactly as the scalar code does. SiLU needs `exp`, and goes through the scalar function
//! on the stored values, as in the other kernels.

use std::arch::x86_64::{
    __m512, _mm512_fmadd_ps, _mm512_fnmadd_ps, _mm512_loadu_ps, _mm512_max_ps, _mm512_min_ps, _mm512_mul_ps,
    _mm512_rcp14_ps, _mm512_set1_ps, _mm512_setzero_ps, _mm512_storeu_ps,
};

use unmix_format::Activation;

use crate::PackedLayer;

/// Outputs per vector register.
const LANES: usize = 16;

/// `output[f] = act(input[f] · W + b)` for `frames` rows of stride `stride`
/// (`stride ≥ layer.padded`, `stride ≥ layer.inputs`); rows past `frames` are not touched.
/// A buffer too short for that panics on a slice bound (the separator sizes them).
#[target_feature(enable = "avx512f,fma")]
pub(crate) fn dense(
    input: &[f32],
    output: &mut [f32],
    stride: usize,
    frames: usize,
    layer: &PackedLayer,
    activation: Option<Activation>,
) {
    let mut oc = 0;
    while oc < layer.padded {
        // Each arm keeps 12 to 16 accumulators, the weights of one input and a broadcast
        // in registers: (4, 4) and (8, 2) hold 16, (5, 3) 15, (12, 1) 12.
        let lanes = match (layer.padded - oc) / LANES {
            1 => block::<12, 1>(input, output, stride, frames, layer, oc, activation),
            2 => block::<8, 2>(input, output, stride, frames, layer, oc, activation),
            3 => block::<5, 3>(input, output, stride, frames, layer, oc, activation),
            _ => block::<4, 4>(input, output, stride, frames, layer, oc, activation),
        };
        oc += LANES * lanes;
    }
}

/// Outputs `oc .. oc + 16 L` of [`dense`], `R` frames at a time; returns `L`. The caller
/// keeps `oc + 16 L ≤ padded`.
#[target_feature(enable = "avx512f,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
fn block<const R: usize, const L: usize>(
    input: &[f32],
    output: &mut [f32],
    stride: usize,
    frames: usize,
    layer: &PackedLayer,
    oc: usize,
    activation: Option<Activation>,
) -> usize {
    let (inputs, padded) = (layer.inputs, layer.padded);
    let weight = &layer.weight[..inputs * padded];
    let bias = &layer.bias[oc..oc + LANES * L];
    let mut f = 0;
    while f < frames {
        let rows = (frames - f).min(R);
        // Rows past `frames` repeat the last real row; their results are not stored.
        let x: [*const f32; R] = std::array::from_fn(|r| input[(f + r.min(rows - 1)) * stride..][..inputs].as_ptr());
        // SAFETY: `bias` holds `16 L` values and every weight row `padded ≥ oc + 16 L`;
        // each `x[r]` is the start of a slice of `inputs` values and `i < inputs` (there
        // are `inputs` weight rows); each output row written is a slice of `16 L` values.
        unsafe {
            let b: [__m512; L] = std::array::from_fn(|j| _mm512_loadu_ps(bias.as_ptr().add(LANES * j)));
            let mut acc = [b; R];
            for (i, w_row) in weight.chunks_exact(padded).enumerate() {
                let w: [__m512; L] = std::array::from_fn(|j| _mm512_loadu_ps(w_row.as_ptr().add(oc + LANES * j)));
                for (a, &row) in acc.iter_mut().zip(&x) {
                    let v = _mm512_set1_ps(*row.add(i));
                    for j in 0..L {
                        a[j] = _mm512_fmadd_ps(v, w[j], a[j]);
                    }
                }
            }
            for (r, a) in acc.iter().enumerate().take(rows) {
                let out = &mut output[(f + r) * stride + oc..][..LANES * L];
                for (j, &v) in a.iter().enumerate() {
                    _mm512_storeu_ps(out.as_mut_ptr().add(LANES * j), activate16(v, activation));
                }
                if activation == Some(Activation::Silu) {
                    for o in out.iter_mut() {
                        *o = Activation::Silu.apply(*o);
                    }
                }
            }
        }
        f += R;
    }
    L
}

/// The activations that are a few vector instructions, on 16 lanes; SiLU (and no
/// activation) leave `x` as it is.
#[target_feature(enable = "avx512f,fma")]
#[inline]
fn activate16(x: __m512, activation: Option<Activation>) -> __m512 {
    match activation {
        Some(Activation::Tanh) => tanh16(x),
        Some(Activation::Relu) => _mm512_max_ps(x, _mm512_setzero_ps()),
        // max(x, 0.01 x) is x for x ≥ 0 and 0.01 x below, the scalar rule exactly.
        Some(Activation::LeakyRelu) => _mm512_max_ps(x, _mm512_mul_ps(x, _mm512_set1_ps(0.01))),
        Some(Activation::Silu) | None => x,
    }
}

/// Applies `activation` in place to the first `width` values (a multiple of 16) of
/// `count` rows of `stride` (the tile unit's layers, whose results come out of a tile).
#[target_feature(enable = "avx512f,fma")]
pub(crate) fn activate_rows(rows: &mut [f32], stride: usize, count: usize, width: usize, activation: Activation) {
    for row in 0..count {
        let values = &mut rows[row * stride..row * stride + width];
        if activation == Activation::Silu {
            for v in values.iter_mut() {
                *v = activation.apply(*v);
            }
            continue;
        }
        for chunk in values.chunks_exact_mut(LANES) {
            // SAFETY: `chunk` has exactly 16 f32.
            unsafe {
                _mm512_storeu_ps(chunk.as_mut_ptr(), activate16(_mm512_loadu_ps(chunk.as_ptr()), Some(activation)))
            };
        }
    }
}

/// [`crate::fast_tanh`] on 16 lanes, with the division as a 14-bit reciprocal and one
/// Newton step (relative error about 2^-27, far below the rational's own).
#[target_feature(enable = "avx512f,fma")]
#[allow(clippy::excessive_precision)] // the coefficients of fast_tanh, as published
pub(crate) fn tanh16(x: __m512) -> __m512 {
    let clamp = 7.905_311f32;
    let x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-clamp)), _mm512_set1_ps(clamp));
    let x2 = _mm512_mul_ps(x, x);
    let mut p = _mm512_set1_ps(-2.760_768_5e-16);
    for c in [2.000_187_9e-13f32, -8.604_671_5e-11, 5.122_297e-8, 1.485_722_4e-5, 6.372_619_3e-4, 4.893_524_6e-3] {
        p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(c));
    }
    let p = _mm512_mul_ps(p, x);
    let mut q = _mm512_set1_ps(1.198_258_4e-6);
    for c in [1.185_347_1e-4f32, 2.268_434_6e-3, 4.893_525e-3] {
        q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(c));
    }
    let r = _mm512_rcp14_ps(q);
    let r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0)));
    _mm512_mul_ps(p, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 16-lane tanh keeps `fast_tanh`'s stated error: the reciprocal with one Newton
    /// step adds nothing that shows.
    #[test]
    fn tanh16_error_is_as_stated() {
        if !crate::Kernel::Avx512.is_available() {
            return; // no AVX-512 here: nothing runs this code
        }
        let mut worst = 0.0f64;
        let xs: Vec<f32> = (0..200_000).map(|i| -10.0 + i as f32 * 1e-4).collect();
        for chunk in xs.chunks_exact(16) {
            let mut out = [0.0f32; 16];
            // SAFETY: `is_available` checked AVX-512F and FMA; both buffers hold 16 f32.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr(), tanh16(_mm512_loadu_ps(chunk.as_ptr()))) };
            for (&x, &y) in chunk.iter().zip(&out) {
                worst = worst.max((f64::from(y) - f64::from(x).tanh()).abs());
            }
        }
        assert!(worst <= f64::from(crate::TANH_MAX_ABS_ERROR), "max error {worst:e}");
    }

    /// The vector activations are the scalar ones (tanh within its stated error).
    #[test]
    fn vector_activations_are_the_scalar_ones() {
        if !crate::Kernel::Avx512.is_available() {
            return;
        }
        let xs: Vec<f32> = (0..4096).map(|i| (i as f32 - 2048.0) * 0.006).collect();
        for activation in [Activation::Tanh, Activation::Relu, Activation::LeakyRelu, Activation::Silu] {
            let mut rows = xs.clone();
            // SAFETY: `is_available` checked AVX-512F and FMA.
            unsafe { activate_rows(&mut rows, 256, 16, 256, activation) };
            for (&x, &y) in xs.iter().zip(&rows) {
                let want = activation.apply(x);
                let tolerance = if activation == Activation::Tanh { crate::TANH_MAX_ABS_ERROR } else { 0.0 };
                assert!((y - want).abs() <= tolerance, "{activation:?}({x}) = {y}, want {want}");
            }
        }
    }
}
