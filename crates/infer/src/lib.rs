//! The trained PDGMM-VAE encoder in plain Rust, for applying a model to incoming frames.
//!
//! [`Separator`] folds the normalisation (centring, scaling, whitening) into the encoder's
//! first layer and turns frames of `m` channels into the posterior means of `n` sources,
//! a block of frames at a time, with a register-blocked dense kernel compiled for AVX2+FMA
//! when the processor has it (chosen once, at construction) and a fast rational `tanh`.
//!
//! # Real-time safety
//! All buffers are allocated in [`Separator::new`]. [`Separator::process`] allocates
//! nothing, takes no lock, makes no system call and does not panic on data: a slice of the
//! wrong length is reported as an [`Error`] value. Its cost is linear in the number of
//! frames, so a block of `B` frames always takes about the same time.

#![allow(unsafe_code)] // confined to kernel.rs: the #[target_feature] call and its SIMD loads/stores, each with a SAFETY note

mod kernel;

use unmix_dsp::Normaliser;
use unmix_format::{Activation, DenseLayer, ModelFile};

pub use kernel::{TANH_MAX_ABS_ERROR, fast_tanh};

/// Frames computed together: enough to amortise per-layer overhead, small enough that the
/// working set (`BLOCK_FRAMES × widest layer`) stays in L1/L2.
pub const BLOCK_FRAMES: usize = 128;

/// Why a block could not be processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Input or output slice length is not a whole number of frames of the right width,
    /// or the two describe different frame counts.
    #[error("block of {input} input and {output} output samples does not fit {channels} channels → {sources} sources")]
    BlockShape {
        /// Input samples given.
        input: usize,
        /// Output samples given.
        output: usize,
        /// Channels per input frame.
        channels: usize,
        /// Sources per output frame.
        sources: usize,
    },
}

/// A dense layer with its output width padded to the kernel's lane multiple.
#[derive(Debug, Clone)]
struct PackedLayer {
    inputs: usize,
    /// Row stride of `weight` and length of `bias`: `outputs` rounded up to `LANES`.
    padded: usize,
    /// `[inputs][padded]`, zero in the padding.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl PackedLayer {
    fn pack(inputs: usize, outputs: usize, weight: &[f64], bias: &[f64]) -> Self {
        let padded = outputs.div_ceil(kernel::LANES) * kernel::LANES;
        let mut w = vec![0.0f32; inputs * padded];
        for i in 0..inputs {
            for o in 0..outputs {
                w[i * padded + o] = weight[i * outputs + o] as f32;
            }
        }
        let mut b = vec![0.0f32; padded];
        for o in 0..outputs {
            b[o] = bias[o] as f32;
        }
        Self { inputs, padded, weight: w, bias: b }
    }
}

/// Applies a trained encoder to blocks of frames.
#[derive(Debug, Clone)]
pub struct Separator {
    channels: usize,
    sources: usize,
    activation: Activation,
    layers: Vec<PackedLayer>,
    /// Two `[BLOCK_FRAMES][widest]` buffers, ping-ponged between layers.
    buffers: [Vec<f32>; 2],
    widest: usize,
    kernel: kernel::Kernel,
}

impl Separator {
    /// Builds the separator of a model file, allocating every buffer it will use.
    pub fn new(model: &ModelFile) -> Self {
        let normaliser = &model.header.normaliser;
        let weights = &model.weights;
        let mut layers = Vec::with_capacity(weights.encoder.len());
        for (index, layer) in weights.encoder.iter().enumerate() {
            let (w, b) = if index == 0 { fold_normaliser(normaliser, layer) } else { widen(layer) };
            let inputs = if index == 0 { normaliser.input_channels() } else { layer.inputs };
            layers.push(PackedLayer::pack(inputs, layer.outputs, &w, &b));
        }
        let widest = layers.iter().map(|l| l.padded.max(l.inputs)).max().unwrap_or(0);
        Self {
            channels: normaliser.input_channels(),
            sources: weights.sources(),
            activation: weights.activation,
            layers,
            buffers: [vec![0.0; BLOCK_FRAMES * widest], vec![0.0; BLOCK_FRAMES * widest]],
            widest,
            kernel: kernel::Kernel::detect(),
        }
    }

    /// Channels per input frame.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Sources per output frame.
    pub fn sources(&self) -> usize {
        self.sources
    }

    /// Name of the dense kernel in use (`avx2+fma` or `portable`).
    pub fn kernel_name(&self) -> &'static str {
        self.kernel.name()
    }

    /// Computes the posterior means of every frame in `frames_in` (interleaved, `channels`
    /// wide) into `sources_out` (interleaved, `sources` wide).
    pub fn process(&mut self, frames_in: &[f32], sources_out: &mut [f32]) -> Result<(), Error> {
        let (m, n) = (self.channels, self.sources);
        if !frames_in.len().is_multiple_of(m)
            || !sources_out.len().is_multiple_of(n)
            || frames_in.len() / m != sources_out.len() / n
        {
            return Err(Error::BlockShape {
                input: frames_in.len(),
                output: sources_out.len(),
                channels: m,
                sources: n,
            });
        }
        for (input, output) in frames_in.chunks(BLOCK_FRAMES * m).zip(sources_out.chunks_mut(BLOCK_FRAMES * n)) {
            self.process_block(input, output);
        }
        Ok(())
    }

    fn process_block(&mut self, input: &[f32], output: &mut [f32]) {
        let frames = input.len() / self.channels;
        let stride = self.widest;
        let [a, b] = &mut self.buffers;
        // Frames are laid out with row stride `widest`; the input layer reads `channels`.
        for (f, frame) in input.chunks_exact(self.channels).enumerate() {
            a[f * stride..f * stride + self.channels].copy_from_slice(frame);
        }
        let (mut cur, mut next) = (a, b);
        let last = self.layers.len() - 1;
        for (index, layer) in self.layers.iter().enumerate() {
            let activation = (index != last).then_some(self.activation);
            self.kernel.dense(cur, next, stride, frames, layer, activation);
            std::mem::swap(&mut cur, &mut next);
        }
        for (f, out) in output.chunks_exact_mut(self.sources).enumerate() {
            out.copy_from_slice(&cur[f * stride..f * stride + self.sources]);
        }
    }
}

/// The first layer with the normalisation folded in, in `f64`:
/// `W' = diag(1/scale) · Pᵀ · W`, `b' = b − (mean/scale) · Pᵀ · W`, with `P` the whitening
/// matrix (identity without whitening).
fn fold_normaliser(norm: &Normaliser, layer: &DenseLayer) -> (Vec<f64>, Vec<f64>) {
    let m = norm.input_channels();
    let d = norm.output_dims();
    let out = layer.outputs;
    // proj[c][k]: weight of channel c (after centring/scaling) in normalised dim k.
    let proj = |c: usize, k: usize| -> f64 {
        match &norm.whitening {
            None => f64::from(u8::from(c == k)),
            Some(w) => f64::from(w[k * m + c]),
        }
    };
    let mut weight = vec![0.0f64; m * out];
    let mut bias: Vec<f64> = layer.bias.iter().map(|&v| f64::from(v)).collect();
    for c in 0..m {
        let inv = 1.0 / f64::from(norm.scale[c]);
        let shift = f64::from(norm.mean[c]) * inv;
        for k in 0..d {
            let p = proj(c, k);
            if p == 0.0 {
                continue;
            }
            for o in 0..out {
                let w = p * f64::from(layer.weight[k * out + o]);
                weight[c * out + o] += w * inv;
                bias[o] -= w * shift;
            }
        }
    }
    (weight, bias)
}

fn widen(layer: &DenseLayer) -> (Vec<f64>, Vec<f64>) {
    (layer.weight.iter().map(|&v| f64::from(v)).collect(), layer.bias.iter().map(|&v| f64::from(v)).collect())
}

impl unmix_core::Processor for Separator {
    fn input_channels(&self) -> usize {
        self.channels
    }

    fn output_channels(&self) -> usize {
        self.sources
    }

    fn process(&mut self, input: &[f32], output: &mut [f32]) -> Result<(), unmix_core::BoxError> {
        Ok(Separator::process(self, input, output)?)
    }
}
