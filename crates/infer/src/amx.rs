//! The dense layer on Intel AMX (the tile matrix unit of Sapphire Rapids and later), in
//! full `f32` accuracy although the unit multiplies `bf16`.
//!
//! Every `f32` is cut exactly into three `bf16` parts, `x = hi + mid + lo`: `hi` keeps the
//! top 8 bits of the significand (the bits masked, not rounded), `mid` the next 8 of what
//! is left, and `lo` the rest, which has at most 8 significant bits and so is itself a
//! `bf16`. Of the nine products of an input's and a weight's parts the six down to
//! `2^-16` relative are accumulated (`hi·hi`, `hi·mid`, `mid·hi`, `hi·lo`, `lo·hi`,
//! `mid·mid`), in `f32` by the unit; the three left out are below `2^-24`, an `f32`
//! rounding. One tile product does 16 frames × 16 outputs × 32 inputs (8192 multiply-adds,
//! about 4.4 ns here), so even six of them leave the vector units free for what the unit
//! cannot do: cutting the inputs and `tanh`, which now take most of the time.
//!
//! A layer's weights are cut and laid out for the unit once ([`AmxLayer::pack`]); its
//! input is cut a tile of 16 frames at a time into a scratch buffer allocated with the
//! separator, and a `tanh` before it is applied as it is cut rather than in a pass of its
//! own; the parts are packed into `bf16` rows 32 at a time with one permutation. Layers of
//! fewer than 16 inputs (the first, from a few channels) run on AVX-512 FMA instead
//! ([`crate::avx512::dense`]). The tile configuration is loaded for a block of frames ([`Tiles`])
//! and released after it, so the thread holds no tile state between blocks.
//!
//! The instructions are written with `asm!` (the AMX intrinsics are not stable Rust); the
//! unit is used only when CPUID reports it and Linux grants the process the tile state
//! ([`available`]).

use std::arch::asm;
use std::arch::x86_64::{
    __m512, _mm256_storeu_si256, _mm512_and_si512, _mm512_castps_si512, _mm512_castsi512_ps, _mm512_cvtepi32_epi16,
    _mm512_loadu_ps, _mm512_set1_epi32, _mm512_srli_epi32, _mm512_sub_ps,
};
use std::sync::OnceLock;

use unmix_format::Activation;

use crate::PackedLayer;

/// Frames (tile rows) per tile.
pub(crate) const TILE_ROWS: usize = 16;
/// Inputs per tile product (32 `bf16`, 64 bytes a row).
const TILE_K: usize = 32;
/// Outputs per tile (16 `f32`, 64 bytes a row).
const TILE_N: usize = 16;
/// The upper halves (the bf16) of two registers of 16 f32, in order: u16 lanes 1, 3, …, 63
/// of the pair, the permutation that packs the cut parts.
const ODD_HALVES: [u16; 32] = {
    let mut lanes = [0u16; 32];
    let mut i = 0;
    while i < 32 {
        lanes[i] = (2 * i + 1) as u16;
        i += 1;
    }
    lanes
};
/// Bytes of one tile: 16 rows of 64 bytes.
const TILE_BYTES: usize = 1024;

/// One tile's memory, aligned as the unit prefers.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Tile([u8; TILE_BYTES]);

const ZERO_TILE: Tile = Tile([0; TILE_BYTES]);

/// The tile configuration (palette 1): tiles 0–6 as 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

static CONFIG: TileConfig = {
    let mut bytes_per_row = [0u16; 16];
    let mut rows = [0u8; 16];
    let mut t = 0;
    while t < 7 {
        bytes_per_row[t] = 64;
        rows[t] = TILE_ROWS as u8;
        t += 1;
    }
    TileConfig { palette: 1, start_row: 0, reserved: [0; 14], bytes_per_row, rows }
};

/// Whether the processor has AMX-TILE and AMX-BF16 (and the AVX-512 this module's narrow
/// layers, cutting and activation use) and the kernel lets this process use the tile state.
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        if unmix_vecmath::VectorUnit::detect() < unmix_vecmath::VectorUnit::Avx512 {
            return false;
        }
        // CPUID leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE.
        let leaf = std::arch::x86_64::__cpuid_count(7, 0);
        if leaf.edx & (1 << 22) == 0 || leaf.edx & (1 << 24) == 0 {
            return false;
        }
        request_tile_state()
    })
}

/// Asks Linux for the tile data state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`),
/// once per process; without it the first tile instruction would kill the process.
#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const SYS_ARCH_PRCTL: usize = 158;
    const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
    const XFEATURE_XTILEDATA: usize = 18;
    let result: isize;
    // SAFETY: the arch_prctl system call with these arguments only changes the process's
    // permission to use an extended state; it reads and writes no memory of ours.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL as isize => result,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

/// A dense layer's weights and bias laid out for the unit.
#[derive(Debug, Clone)]
pub(crate) struct AmxLayer {
    /// Inputs rounded up to [`TILE_K`].
    k_padded: usize,
    /// Output tiles: the packed layer's `padded` width / [`TILE_N`].
    n_tiles: usize,
    /// `[part][k step][n tile]` tiles of pairs of inputs: row `r` of a tile holds, for each
    /// of its 16 outputs, the weights of inputs `2r` and `2r + 1` of the step (the layout
    /// the unit multiplies).
    weights: Vec<Tile>,
    /// `[n tile]`: the bias repeated on all 16 rows, loaded as the accumulator's start.
    bias: Vec<Tile>,
}

/// The three `bf16` parts of `x`, which add up to it exactly.
#[inline(always)]
fn cut(x: f32) -> [u16; 3] {
    const TOP: u32 = 0xFFFF_0000;
    let hi = f32::from_bits(x.to_bits() & TOP);
    let rest = x - hi;
    let mid = f32::from_bits(rest.to_bits() & TOP);
    let lo = rest - mid;
    [(hi.to_bits() >> 16) as u16, (mid.to_bits() >> 16) as u16, (lo.to_bits() >> 16) as u16]
}

impl AmxLayer {
    /// Lays out `layer` for the unit.
    pub(crate) fn pack(layer: &PackedLayer) -> Self {
        let k_padded = layer.inputs.div_ceil(TILE_K) * TILE_K;
        let (k_steps, n_tiles) = (k_padded / TILE_K, layer.padded / TILE_N);
        let mut weights = vec![ZERO_TILE; 3 * k_steps * n_tiles];
        for step in 0..k_steps {
            for tile in 0..n_tiles {
                for pair in 0..TILE_K / 2 {
                    for col in 0..TILE_N {
                        for e in 0..2 {
                            let (k, n) = (step * TILE_K + 2 * pair + e, tile * TILE_N + col);
                            let w = if k < layer.inputs { layer.weight[k * layer.padded + n] } else { 0.0 };
                            let offset = (pair * TILE_N + col) * 4 + e * 2;
                            for (part, bits) in cut(w).into_iter().enumerate() {
                                let t = &mut weights[(part * k_steps + step) * n_tiles + tile];
                                t.0[offset..offset + 2].copy_from_slice(&bits.to_le_bytes());
                            }
                        }
                    }
                }
            }
        }
        let mut bias = vec![ZERO_TILE; n_tiles];
        for (tile, t) in bias.iter_mut().enumerate() {
            for row in 0..TILE_ROWS {
                for col in 0..TILE_N {
                    let offset = (row * TILE_N + col) * 4;
                    t.0[offset..offset + 4].copy_from_slice(&layer.bias[tile * TILE_N + col].to_le_bytes());
                }
            }
        }
        Self { k_padded, n_tiles, weights, bias }
    }

    /// Scratch `u16`s a tile of this layer's input needs (its three parts).
    pub(crate) fn scratch_len(&self) -> usize {
        3 * TILE_ROWS * self.k_padded
    }
}

/// The tile configuration loaded on this thread, released when dropped: a thread holds
/// tile state only while it computes (a context switch then saves none).
pub(crate) struct Tiles(());

impl Tiles {
    /// Loads the configuration.
    ///
    /// # Safety
    /// [`available`] returned true.
    pub(crate) unsafe fn load() -> Self {
        // SAFETY: the configuration is a valid palette-1 layout of tiles 0–6, and the
        // caller made sure the unit exists and the process may use it.
        unsafe { asm!("ldtilecfg [{0}]", in(reg) &raw const CONFIG, options(nostack, readonly)) };
        Self(())
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: a `Tiles` exists only after `load`, on a processor with the unit.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// `output[f] = act(input[f] · W + b)` for `frames` rows of stride `stride`, a tile of 16
/// rows at a time. Rows from `frames` up to the next multiple of 16 are computed too (from
/// whatever the buffers hold there) and never read: both buffers must hold that many rows.
///
/// With `tanh_input` the input is first passed through `tanh`: the previous layer's
/// activation, applied as the values are cut rather than in a pass of its own.
///
/// # Safety
/// `input` and `output` hold `frames.next_multiple_of(16)` rows of `stride` with
/// `stride >= layer.padded` and `stride >= inputs`; `scratch` holds
/// [`AmxLayer::scratch_len`] values. (`tiles` shows the unit is there and configured.)
#[target_feature(enable = "avx512f,avx512bw,fma")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn dense(
    _tiles: &Tiles,
    input: &[f32],
    output: &mut [f32],
    stride: usize,
    frames: usize,
    inputs: usize,
    layer: &AmxLayer,
    scratch: &mut [u16],
    tanh_input: bool,
    activation: Option<Activation>,
) {
    let rows = frames.next_multiple_of(TILE_ROWS);
    debug_assert!(input.len() >= rows * stride && output.len() >= rows * stride);
    debug_assert!(scratch.len() >= layer.scratch_len() && stride >= layer.n_tiles * TILE_N);
    let k = layer.k_padded;
    let k_steps = k / TILE_K;
    let part_len = TILE_ROWS * k;
    for r0 in (0..rows).step_by(TILE_ROWS) {
        cut_rows(&input[r0 * stride..], stride, inputs, k, scratch, tanh_input);
        let (a_hi, a_mid, a_lo) = (scratch.as_ptr(), scratch[part_len..].as_ptr(), scratch[2 * part_len..].as_ptr());
        for tile in 0..layer.n_tiles {
            let part = |p: usize| layer.weights[(p * k_steps) * layer.n_tiles + tile..].as_ptr();
            let out = output[r0 * stride + tile * TILE_N..].as_mut_ptr();
            // SAFETY: every tile load reads 16 rows of 64 bytes: the input parts from
            // `scratch` (16 rows of `k` u16, a step 32 of them further on), the weight tiles
            // and the bias tile from their vectors (step by step `n_tiles` tiles further
            // on, `k_steps` steps in all); the store writes 16 rows of 16 f32 at row stride
            // `stride` into `output`, within its `rows` rows. The loop runs `k_steps` ≥ 1
            // times. Tiles 0–6 are the ones `Tiles::load` configured.
            unsafe {
                asm!(
                    "tileloadd tmm0, [{bias} + {tile_stride}*1]",
                    "2:",
                    "tileloadd tmm1, [{a_hi} + {a_stride}*1]",
                    "tileloadd tmm2, [{a_mid} + {a_stride}*1]",
                    "tileloadd tmm3, [{a_lo} + {a_stride}*1]",
                    "tileloadd tmm4, [{w_hi} + {tile_stride}*1]",
                    "tileloadd tmm5, [{w_mid} + {tile_stride}*1]",
                    "tileloadd tmm6, [{w_lo} + {tile_stride}*1]",
                    "tdpbf16ps tmm0, tmm1, tmm4",
                    "tdpbf16ps tmm0, tmm2, tmm4",
                    "tdpbf16ps tmm0, tmm1, tmm5",
                    "tdpbf16ps tmm0, tmm3, tmm4",
                    "tdpbf16ps tmm0, tmm2, tmm5",
                    "tdpbf16ps tmm0, tmm1, tmm6",
                    "add {a_hi}, 64",
                    "add {a_mid}, 64",
                    "add {a_lo}, 64",
                    "add {w_hi}, {w_step}",
                    "add {w_mid}, {w_step}",
                    "add {w_lo}, {w_step}",
                    "dec {steps}",
                    "jnz 2b",
                    "tilestored [{out} + {out_stride}*1], tmm0",
                    bias = in(reg) layer.bias[tile..].as_ptr(),
                    tile_stride = in(reg) 64usize,
                    a_hi = inout(reg) a_hi => _,
                    a_mid = inout(reg) a_mid => _,
                    a_lo = inout(reg) a_lo => _,
                    a_stride = in(reg) k * 2,
                    w_hi = inout(reg) part(0) => _,
                    w_mid = inout(reg) part(1) => _,
                    w_lo = inout(reg) part(2) => _,
                    w_step = in(reg) layer.n_tiles * TILE_BYTES,
                    steps = inout(reg) k_steps => _,
                    out = in(reg) out,
                    out_stride = in(reg) stride * 4,
                    options(nostack),
                );
            }
        }
        if let Some(activation) = activation {
            crate::avx512::activate_rows(
                &mut output[r0 * stride..],
                stride,
                TILE_ROWS,
                layer.n_tiles * TILE_N,
                activation,
            );
        }
    }
}

/// Cuts 16 rows of `inputs` values (row stride `stride`) into the three parts, each
/// `[16][k]` `bf16` with zeros past `inputs`, one after the other in `scratch`.
#[target_feature(enable = "avx512f,avx512bw,fma")]
fn cut_rows(input: &[f32], stride: usize, inputs: usize, k: usize, scratch: &mut [u16], tanh_first: bool) {
    use std::arch::x86_64::{__m512i, _mm512_loadu_si512, _mm512_permutex2var_epi16, _mm512_storeu_si512};
    let part_len = TILE_ROWS * k;
    let pairs = inputs / 32 * 32;
    let top = _mm512_set1_epi32(0xFFFF_0000u32 as i32);
    // SAFETY: `ODD_HALVES` is 64 bytes.
    let odd: __m512i = unsafe { _mm512_loadu_si512(ODD_HALVES.as_ptr().cast()) };
    let parts_of = |v: __m512| {
        let v = if tanh_first { crate::avx512::tanh16(v) } else { v };
        let hi = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), top));
        let rest = _mm512_sub_ps(v, hi);
        let mid = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(rest), top));
        let lo = _mm512_sub_ps(rest, mid);
        [_mm512_castps_si512(hi), _mm512_castps_si512(mid), _mm512_castps_si512(lo)]
    };
    for row in 0..TILE_ROWS {
        let values = &input[row * stride..row * stride + inputs];
        for c in (0..pairs).step_by(32) {
            // SAFETY: `values[c..c + 32]` is in bounds (c + 32 ≤ pairs ≤ inputs), and so
            // are the three stores of 32 u16 at `row * k + c` of each part (c + 32 ≤ k).
            unsafe {
                let (a, b) = (
                    parts_of(_mm512_loadu_ps(values.as_ptr().add(c))),
                    parts_of(_mm512_loadu_ps(values.as_ptr().add(c + 16))),
                );
                for p in 0..3 {
                    let bits = _mm512_permutex2var_epi16(a[p], odd, b[p]);
                    _mm512_storeu_si512(scratch[p * part_len + row * k + c..].as_mut_ptr().cast(), bits);
                }
            }
        }
        for c in (pairs..inputs / 16 * 16).step_by(16) {
            // SAFETY: as above, for 16 values and 16 u16 per part (c + 16 ≤ inputs ≤ k).
            unsafe {
                let parts = parts_of(_mm512_loadu_ps(values.as_ptr().add(c)));
                for (p, part) in parts.into_iter().enumerate() {
                    let bits = _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(part));
                    _mm256_storeu_si256(scratch[p * part_len + row * k + c..].as_mut_ptr().cast(), bits);
                }
            }
        }
        for c in inputs / 16 * 16..k {
            let parts = match (c < inputs, tanh_first) {
                (true, true) => cut(crate::fast_tanh(values[c])),
                (true, false) => cut(values[c]),
                (false, _) => [0; 3],
            };
            for (p, bits) in parts.into_iter().enumerate() {
                scratch[p * part_len + row * k + c] = bits;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The three parts of a cut add up to the value exactly, and each is a bf16.
    #[test]
    fn a_cut_is_exact() {
        for x in [1.0f32, -0.3, std::f32::consts::PI, 1e-20, -7.25e7, 0.999_999_9, 0.0] {
            let parts = cut(x).map(|bits| f32::from_bits(u32::from(bits) << 16));
            assert_eq!(parts[0] + parts[1] + parts[2], x, "{x}: {parts:?}");
        }
    }
}
