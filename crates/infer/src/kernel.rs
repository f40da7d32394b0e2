//! The dense-layer kernel: `out = act(in · W + b)` over a block of frames, register-blocked
//! four frames by [`LANES`] outputs, written so that LLVM vectorises it, compiled portable
//! and with AVX2+FMA; beside it the AVX-512 ([`crate::avx512`]) and AMX ([`crate::amx`])
//! variants. One is chosen at construction ([`Kernel`]).

use unmix_format::Activation;
use unmix_vecmath::{VectorUnit, fast_tanh};

use crate::PackedLayer;

/// Output lanes per register block (two AVX registers of eight `f32`).
pub(crate) const LANES: usize = 16;
/// Frames per register block.
const ROWS: usize = 4;
/// Narrowest layer input worth the tile unit: below it the tile product is mostly padding.
#[cfg(target_arch = "x86_64")]
const MIN_AMX_INPUTS: usize = 16;

#[inline(always)]
fn activate(x: f32, activation: Activation) -> f32 {
    match activation {
        Activation::Tanh => fast_tanh(x),
        other => other.apply(x),
    }
}

/// The compiled variants of the dense kernel. [`crate::Separator::new`] runs the fastest
/// this processor has ([`Kernel::best`]); [`crate::Separator::with_kernel`] runs the one a
/// caller's configuration names (the command line's `--kernel`, or a comparison).
/// Kernels agree to about 1e-5, not bit for bit: naming one runs the same arithmetic on
/// every machine that has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust that LLVM vectorises for the build's target: runs everywhere.
    Portable,
    /// AVX2 and FMA intrinsics, eight lanes.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// AVX-512F and FMA, sixteen lanes, the activation applied in the registers.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// Layers of 16 inputs or more on Intel's AMX tile unit at `f32` accuracy (each `f32`
    /// cut into three `bf16` parts), narrower ones (the first, from a few channels) on
    /// the AVX-512 kernel.
    #[cfg(target_arch = "x86_64")]
    Amx,
}

impl Kernel {
    /// Every variant, fastest first.
    pub const ALL: &'static [Kernel] = &[
        #[cfg(target_arch = "x86_64")]
        Kernel::Amx,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2Fma,
        Kernel::Portable,
    ];

    /// Whether this processor (and, for the tile unit, the operating system) runs it.
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma => VectorUnit::detect() >= VectorUnit::Avx2Fma,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => VectorUnit::detect() >= VectorUnit::Avx512,
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx => crate::amx::available(),
        }
    }

    /// The variants this processor runs, fastest first.
    pub fn available() -> impl Iterator<Item = Kernel> {
        Self::ALL.iter().copied().filter(|k| k.is_available())
    }

    /// The fastest variant this processor runs.
    pub fn best() -> Self {
        Self::available().next().unwrap_or(Kernel::Portable)
    }

    /// Its short name for the command line: `amx`, `avx512`, `avx2`, `portable`.
    pub fn id(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma => "avx2",
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => "avx512",
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx => "amx",
        }
    }

    /// The compiled variant with this [`id`](Self::id), whether or not it runs here.
    pub fn from_id(id: &str) -> Option<Kernel> {
        Self::ALL.iter().copied().find(|k| k.id() == id)
    }

    /// Its name in reports (`avx-512`, `avx2+fma`, …).
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2Fma => "avx2+fma",
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => "avx-512",
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx => "amx-bf16 (f32 as 3 bf16 parts) + avx-512",
        }
    }

    /// Whether a layer of `inputs` goes to the tile unit (and so needs
    /// [`PackedLayer::amx`]).
    pub(crate) fn uses_amx(self, inputs: usize) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self == Kernel::Amx {
            return inputs >= MIN_AMX_INPUTS;
        }
        let _ = inputs;
        false
    }

    /// `output[f] = act(input[f] · W + b)` for `frames` rows of stride `stride`. With the
    /// tile unit, both buffers hold `frames` rounded up to 16 rows (rows past `frames` are
    /// computed from whatever is there and never read) and `scratch` is the separator's.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dense(
        self,
        input: &[f32],
        output: &mut [f32],
        stride: usize,
        frames: usize,
        layer: &PackedLayer,
        activation: Option<Activation>,
        scratch: &mut [u16],
    ) {
        match self {
            Kernel::Portable => dense_portable(input, output, stride, frames, layer, activation),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a separator runs only a kernel that `is_available` (the processor
            // reported both features), so the instructions this function uses exist.
            Kernel::Avx2Fma => unsafe { dense_avx2_fma(input, output, stride, frames, layer, activation) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, `avx512::available` reported AVX-512F and FMA.
            Kernel::Avx512 => unsafe { crate::avx512::dense(input, output, stride, frames, layer, activation) },
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx => {
                // SAFETY: as above, `amx::available` reported the unit and its permission.
                let tiles = unsafe { crate::amx::Tiles::load() };
                dense_amx(&tiles, input, output, stride, frames, layer, false, activation, scratch);
            }
        }
    }
}

/// [`Kernel::dense`] of [`Kernel::Amx`] with the tiles already configured (a block's
/// layers share one configuration); with `tanh_input` (tile-unit layers only) the input
/// goes through `tanh` first, the previous layer's activation left to this one.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn dense_amx(
    tiles: &crate::amx::Tiles,
    input: &[f32],
    output: &mut [f32],
    stride: usize,
    frames: usize,
    layer: &PackedLayer,
    tanh_input: bool,
    activation: Option<Activation>,
    scratch: &mut [u16],
) {
    debug_assert!(!tanh_input || layer.amx.is_some());
    match &layer.amx {
        // SAFETY: the separator sizes its buffers to whole tiles of rows and `scratch` to
        // its widest packed layer, and `stride` covers every layer's width.
        Some(amx) => unsafe {
            crate::amx::dense(tiles, input, output, stride, frames, layer.inputs, amx, scratch, tanh_input, activation)
        },
        // SAFETY: `amx::available` (which `tiles` proves) also checked AVX-512F and FMA.
        None => unsafe { crate::avx512::dense(input, output, stride, frames, layer, activation) },
    }
}

fn dense_portable(
    input: &[f32],
    output: &mut [f32],
    stride: usize,
    frames: usize,
    layer: &PackedLayer,
    activation: Option<Activation>,
) {
    dense_generic(input, output, stride, frames, layer, activation);
}

/// The same computation with explicit AVX2/FMA intrinsics: four frames × sixteen outputs
/// in eight accumulators, two weight loads and four broadcasts per input.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dense_avx2_fma(
    input: &[f32],
    output: &mut [f32],
    stride: usize,
    frames: usize,
    layer: &PackedLayer,
    activation: Option<Activation>,
) {
    use std::arch::x86_64::{_mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_storeu_ps};

    let (inputs, padded) = (layer.inputs, layer.padded);
    let weight = &layer.weight[..inputs * padded];
    let row = |f: usize| &input[f * stride..f * stride + inputs];
    let mut f = 0;
    while f < frames {
        let rows = (frames - f).min(ROWS);
        let last = f + rows - 1;
        let (x0, x1, x2, x3) = (row(f), row((f + 1).min(last)), row((f + 2).min(last)), row((f + 3).min(last)));
        for oc in (0..padded).step_by(LANES) {
            let bias = &layer.bias[oc..oc + LANES];
            // SAFETY: `bias` has exactly LANES = 16 elements, so both 8-wide loads are in bounds.
            let (b0, b1) = unsafe { (_mm256_loadu_ps(bias.as_ptr()), _mm256_loadu_ps(bias.as_ptr().add(8))) };
            let mut acc = [b0, b1, b0, b1, b0, b1, b0, b1];
            for ((((w_row, &v0), &v1), &v2), &v3) in weight.chunks_exact(padded).zip(x0).zip(x1).zip(x2).zip(x3) {
                let w = &w_row[oc..oc + LANES];
                // SAFETY: `w` has exactly 16 elements, so both 8-wide loads are in bounds.
                let (w0, w1) = unsafe { (_mm256_loadu_ps(w.as_ptr()), _mm256_loadu_ps(w.as_ptr().add(8))) };
                for (r, v) in [v0, v1, v2, v3].into_iter().enumerate() {
                    let x = _mm256_set1_ps(v);
                    acc[2 * r] = _mm256_fmadd_ps(x, w0, acc[2 * r]);
                    acc[2 * r + 1] = _mm256_fmadd_ps(x, w1, acc[2 * r + 1]);
                }
            }
            for r in 0..rows {
                let out = &mut output[(f + r) * stride + oc..(f + r) * stride + oc + LANES];
                // SAFETY: `out` has exactly 16 elements, so both 8-wide stores are in bounds.
                unsafe {
                    _mm256_storeu_ps(out.as_mut_ptr(), acc[2 * r]);
                    _mm256_storeu_ps(out.as_mut_ptr().add(8), acc[2 * r + 1]);
                }
                if let Some(act) = activation {
                    for o in out.iter_mut() {
                        *o = activate(*o, act);
                    }
                }
            }
        }
        f += ROWS;
    }
}

#[inline(always)]
fn dense_generic(
    input: &[f32],
    output: &mut [f32],
    stride: usize,
    frames: usize,
    layer: &PackedLayer,
    activation: Option<Activation>,
) {
    let (inputs, padded) = (layer.inputs, layer.padded);
    let weight = &layer.weight[..inputs * padded];
    let row = |f: usize| &input[f * stride..f * stride + inputs];
    let mut f = 0;
    while f < frames {
        let rows = (frames - f).min(ROWS);
        // Rows past `frames` repeat the last real row; their results are never stored.
        let last = f + rows - 1;
        let (x0, x1, x2, x3) = (row(f), row((f + 1).min(last)), row((f + 2).min(last)), row((f + 3).min(last)));
        for oc in (0..padded).step_by(LANES) {
            let mut acc = [[0.0f32; LANES]; ROWS];
            for a in &mut acc {
                a.copy_from_slice(&layer.bias[oc..oc + LANES]);
            }
            // Zipped iterators carry the loop bound, so the hot loop has no bounds checks.
            for ((((w_row, &v0), &v1), &v2), &v3) in weight.chunks_exact(padded).zip(x0).zip(x1).zip(x2).zip(x3) {
                let w = &w_row[oc..oc + LANES];
                for l in 0..LANES {
                    acc[0][l] += v0 * w[l];
                    acc[1][l] += v1 * w[l];
                    acc[2][l] += v2 * w[l];
                    acc[3][l] += v3 * w[l];
                }
            }
            for (r, acc_row) in acc.iter().enumerate().take(rows) {
                let out = &mut output[(f + r) * stride + oc..(f + r) * stride + oc + LANES];
                match activation {
                    None => out.copy_from_slice(acc_row),
                    Some(act) => {
                        for (o, &a) in out.iter_mut().zip(acc_row) {
                            *o = activate(a, act);
                        }
                    }
                }
            }
        }
        f += ROWS;
    }
}

#[cfg(test)]
mod kernel_tests {
    use super::*;

    fn layer(inputs: usize, outputs: usize) -> PackedLayer {
        let w: Vec<f64> = (0..inputs * outputs).map(|i| ((i * 7919 % 1009) as f64 / 1009.0 - 0.5) * 0.7).collect();
        let b: Vec<f64> = (0..outputs).map(|o| (o as f64 * 0.37).sin() * 0.2).collect();
        PackedLayer::pack(inputs, outputs, &w, &b)
    }

    /// Every compiled variant computes the same layer, for frame counts that do and do not
    /// fill the register blocks, and widths that do and do not fill the lanes.
    #[test]
    fn kernels_agree_with_a_plain_computation() {
        for (inputs, outputs, frames) in [
            (3, 3, 1),
            (8, 64, 13),
            (64, 64, 128),
            (5, 17, 6),
            (40, 20, 37),
            (96, 8, 16usize),
            (64, 40, 27),
            (16, 48, 11),
        ] {
            let stride = layer(inputs, outputs).padded.max(inputs);
            // Whole tiles of rows, as the separator's buffers are.
            let rows = frames.next_multiple_of(16);
            let input: Vec<f32> = (0..rows * stride).map(|i| ((i * 31 % 97) as f32 / 48.0 - 1.0) * 1.5).collect();
            for act in [
                None,
                Some(Activation::Tanh),
                Some(Activation::Relu),
                Some(Activation::LeakyRelu),
                Some(Activation::Silu),
            ] {
                for kernel in Kernel::available() {
                    let l = layer(inputs, outputs).for_kernel(kernel);
                    let mut scratch = vec![0u16; l.scratch_len()];
                    let mut out = vec![0.0f32; rows * stride];
                    kernel.dense(&input, &mut out, stride, frames, &l, act, &mut scratch);
                    for f in 0..frames {
                        for o in 0..outputs {
                            let mut want = f64::from(l.bias[o]);
                            for i in 0..inputs {
                                want += f64::from(input[f * stride + i]) * f64::from(l.weight[i * l.padded + o]);
                            }
                            let want = match act {
                                None => want,
                                Some(Activation::Tanh) => want.tanh(),
                                Some(a) => f64::from(a.apply(want as f32)),
                            };
                            let got = f64::from(out[f * stride + o]);
                            assert!(
                                (got - want).abs() < 1e-5 * (1.0 + want.abs()),
                                "{} {inputs}x{outputs} f{f} o{o}: {got} vs {want}",
                                kernel.name()
                            );
                        }
                    }
                }
            }
        }
    }
}
