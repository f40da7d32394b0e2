//! The trained PDGMM-VAE encoder in plain Rust, for applying a model to incoming frames.
//!
//! [`Separator`] folds the normalisation (centring, scaling, whitening) into the encoder's
//! first layer and turns frames of `m` channels into the posterior means of `n` sources,
//! a block of frames at a time, with a register-blocked dense kernel for the best the
//! processor has — Intel's AMX tile unit at full `f32` accuracy, AVX-512 (AMD Zen 4 and
//! later, most Intel servers), AVX2+FMA, or portable code — chosen once, at construction
//! ([`Kernel`]), and a fast rational `tanh`.
//!
//! [`Separator::process_scored`] also scores every frame for monitoring: its log-density
//! under the learned per-source priors and how well the decoder reconstructs its
//! standardised channels from the sources, beside the constant posterior standard
//! deviations `σ_j` ([`Separator::posterior_std`]) that give each source its uncertainty band.
//!
//! A model that knows the sensor noise in its outputs
//! ([`unmix_format::ModelHeader::output_noise`]) gives each source's posterior mean given
//! its encoder output and that noise, under the source's prior: a per-sample step after
//! the encoder, before the output gains.
//!
//! # Real-time safety
//! All buffers are allocated in [`Separator::new`]. [`Separator::process`] and
//! [`Separator::process_scored`] allocate nothing, take no lock, make no system call and do
//! not panic on data: a slice of the wrong length is reported as an [`Error`] value. Their
//! cost is linear in the number of frames, so a block of `B` frames always takes about the
//! same time. With the tile unit, the system call that asks Linux for the tile state is
//! made once per process, at construction; the first tile instruction of each thread then
//! makes the kernel enlarge that thread's saved state once (a trap, like a first page
//! fault), after which nothing more happens.

#![allow(unsafe_code)] // confined to kernel.rs, avx512.rs and amx.rs: #[target_feature] calls, SIMD loads/stores and the tile instructions, each with a SAFETY note

#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod kernel;

use unmix_dsp::Normaliser;
use unmix_format::{Activation, Architecture, DenseLayer, ModelFile, MonotoneCurve, clamped_atanh};

pub use kernel::Kernel;
pub use unmix_vecmath::{TANH_MAX_ABS_ERROR, fast_tanh};

/// Frames computed together: enough to amortise per-layer overhead, small enough that the
/// working set (`BLOCK_FRAMES × widest layer`) stays in L1/L2. A whole number of the tile
/// unit's 16 rows, so its tiles never run past the buffers.
pub const BLOCK_FRAMES: usize = 128;
#[cfg(target_arch = "x86_64")]
const _: () = assert!(BLOCK_FRAMES.is_multiple_of(amx::TILE_ROWS));

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
    /// A score slice does not hold one value per frame.
    #[error(
        "{frames} frames need {frames} scores each, got {log_prior} log-priors and {reconstruction} reconstruction errors"
    )]
    ScoreShape {
        /// Frames in the block.
        frames: usize,
        /// Log-prior slots given.
        log_prior: usize,
        /// Reconstruction-error slots given.
        reconstruction: usize,
    },
    /// [`Separator::with_kernel`] was asked for a kernel this processor does not run.
    #[error("the {0} kernel does not run on this processor")]
    KernelUnavailable(&'static str),
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
    /// The same laid out for the tile unit, when the kernel sends this layer there.
    #[cfg(target_arch = "x86_64")]
    amx: Option<amx::AmxLayer>,
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
        Self {
            inputs,
            padded,
            weight: w,
            bias: b,
            #[cfg(target_arch = "x86_64")]
            amx: None,
        }
    }

    /// This layer with what `kernel` needs to run it.
    fn for_kernel(self, kernel: Kernel) -> Self {
        #[cfg(target_arch = "x86_64")]
        if kernel.uses_amx(self.inputs) {
            let amx = Some(amx::AmxLayer::pack(&self));
            return Self { amx, ..self };
        }
        let _ = kernel;
        self
    }

    /// Scratch values the kernel needs for this layer.
    fn scratch_len(&self) -> usize {
        #[cfg(target_arch = "x86_64")]
        if let Some(amx) = &self.amx {
            return amx.scratch_len();
        }
        0
    }
}

/// One Gaussian of a source's prior, ready for `log π + log N(μ; mean, var)`.
#[derive(Debug, Clone, Copy)]
struct PriorComponent {
    mean: f32,
    /// `1 / (2 var)`.
    half_precision: f32,
    /// `log π − ½ log(2π var)`.
    log_scale: f32,
}

impl PriorComponent {
    /// `log π + log N(z; mean, var)`.
    #[inline]
    fn log_term(&self, z: f32) -> f32 {
        self.log_scale - (z - self.mean) * (z - self.mean) * self.half_precision
    }
}

/// Applies a trained encoder to blocks of frames.
#[derive(Debug, Clone)]
pub struct Separator {
    channels: usize,
    sources: usize,
    architecture: Architecture,
    activation: Activation,
    /// The encoder's layers; an MLP's first has the normalisation folded in, a saturating
    /// chain's reads the standardised frame through its `atanh`.
    layers: Vec<PackedLayer>,
    /// Centring and scaling alone (`channels → channels`): the frame the reconstruction
    /// error is measured against.
    standardise: PackedLayer,
    /// The decoder, then (with whitening) the map from the whitened dimensions back to
    /// the standardised channels, `U Λ^{1/2}`: its output is comparable with `standardise`'s.
    reconstruct: Vec<PackedLayer>,
    /// Layers of `reconstruct` that are the decoder's.
    decoder_layers: usize,
    /// A post-nonlinear model's curve per channel, between the standardisation and its one
    /// layer (empty for the other architectures).
    curves: Vec<MonotoneCurve>,
    /// `[source][component]`.
    prior: Vec<PriorComponent>,
    /// `[source][component]`: how much of an output's deviation from the component's mean
    /// is its source's, `max(v − σ², 0) / v` (the component's variance `v`, the output's
    /// noise `σ²`), when the model has [`unmix_format::ModelHeader::output_noise`].
    shrink: Option<Vec<f32>>,
    posterior_std: Vec<f32>,
    /// Every channel's mean and scale, to take a reconstruction back to the input's units.
    channel_mean: Vec<f32>,
    channel_scale: Vec<f32>,
    /// Output gain per source ([`unmix_format::ModelHeader::source_gains`]); `None` when
    /// every gain is 1 (the means are the output).
    gains: Option<Vec<f32>>,
    /// Two `[BLOCK_FRAMES][widest]` buffers, ping-ponged between layers.
    buffers: [Aligned<f32>; 2],
    /// `[BLOCK_FRAMES][widest]`: the standardised input while scoring.
    standardised: Aligned<f32>,
    widest: usize,
    kernel: Kernel,
    /// The kernel's scratch (the tile unit's cut input).
    scratch: Aligned<u16>,
}

impl Separator {
    /// Builds the separator of a model file on the fastest kernel this processor runs
    /// ([`Kernel::best`]), allocating every buffer it will use.
    pub fn new(model: &ModelFile) -> Self {
        Self::build(model, Kernel::best())
    }

    /// [`new`](Self::new) on a chosen kernel; one this processor does not run is refused.
    pub fn with_kernel(model: &ModelFile, kernel: Kernel) -> Result<Self, Error> {
        if !kernel.is_available() {
            return Err(Error::KernelUnavailable(kernel.name()));
        }
        Ok(Self::build(model, kernel))
    }

    fn build(model: &ModelFile, kernel: Kernel) -> Self {
        let normaliser = &model.header.normaliser;
        let weights = &model.weights;
        let mut layers = Vec::with_capacity(weights.encoder.len());
        // A chain's atanh and a post-nonlinear model's curves come between the
        // normalisation and the first layer, so the two cannot be folded together.
        let curved = matches!(weights.architecture, Architecture::SaturatingChain | Architecture::PostNonlinear);
        for (index, layer) in weights.encoder.iter().enumerate() {
            let fold = index == 0 && !curved;
            let (w, b) = if fold { fold_normaliser(normaliser, layer) } else { widen(layer) };
            let inputs = if fold { normaliser.input_channels() } else { layer.inputs };
            layers.push(PackedLayer::pack(inputs, layer.outputs, &w, &b));
        }
        let m = normaliser.input_channels();
        let standardise = {
            let mut weight = vec![0.0f64; m * m];
            let mut bias = vec![0.0f64; m];
            for c in 0..m {
                let inv = 1.0 / f64::from(normaliser.scale[c]);
                weight[c * m + c] = inv;
                bias[c] = -f64::from(normaliser.mean[c]) * inv;
            }
            PackedLayer::pack(m, m, &weight, &bias)
        };
        let mut reconstruct: Vec<PackedLayer> = weights
            .decoder
            .iter()
            .map(|layer| {
                let (w, b) = widen(layer);
                PackedLayer::pack(layer.inputs, layer.outputs, &w, &b)
            })
            .collect();
        if let Some(whitening) = &normaliser.whitening {
            // Whitening is `W = Λ^{-1/2} Uᵀ` (rows: the top eigenvectors), so `U Λ^{1/2}`
            // has `W[k][c] λ_k` at input k, output c.
            let dims = normaliser.output_dims();
            let weight: Vec<f64> =
                (0..dims * m).map(|i| f64::from(whitening[i]) * f64::from(normaliser.eigenvalues[i / m])).collect();
            reconstruct.push(PackedLayer::pack(dims, m, &weight, &vec![0.0; m]));
        }
        let layers: Vec<PackedLayer> = layers.into_iter().map(|l| l.for_kernel(kernel)).collect();
        let reconstruct: Vec<PackedLayer> = reconstruct.into_iter().map(|l| l.for_kernel(kernel)).collect();
        let standardise = standardise.for_kernel(kernel);
        let widest =
            layers.iter().chain(&reconstruct).chain([&standardise]).map(|l| l.padded.max(l.inputs)).max().unwrap_or(0);
        let scratch_len = layers.iter().chain(&reconstruct).chain([&standardise]).map(PackedLayer::scratch_len).max();
        let prior = prior_components(&weights.prior);
        let shrink = model.header.output_noise.as_ref().map(|noise| shrink_factors(&weights.prior, noise));
        let gains = model.source_gains();
        let posterior_std = weights.posterior_std().iter().zip(&gains).map(|(s, g)| s * g).collect();
        Self {
            channels: normaliser.input_channels(),
            sources: weights.sources(),
            architecture: weights.architecture,
            activation: weights.activation,
            layers,
            standardise,
            curves: weights.sensor_curves.clone(),
            decoder_layers: weights.decoder.len(),
            reconstruct,
            prior,
            shrink,
            posterior_std,
            channel_mean: normaliser.mean.clone(),
            channel_scale: normaliser.scale.clone(),
            gains: gains.iter().any(|&g| g != 1.0).then_some(gains),
            buffers: [Aligned::new(BLOCK_FRAMES * widest), Aligned::new(BLOCK_FRAMES * widest)],
            standardised: Aligned::new(BLOCK_FRAMES * widest),
            widest,
            kernel,
            scratch: Aligned::new(scratch_len.unwrap_or(0)),
        }
    }

    /// Posterior standard deviation `σ_j` of every source, in the units of the output: the
    /// half-width of its one-sigma uncertainty band, the same for every frame (the model
    /// shares it).
    pub fn posterior_std(&self) -> &[f32] {
        &self.posterior_std
    }

    /// Channels per input frame.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Sources per output frame.
    pub fn sources(&self) -> usize {
        self.sources
    }

    /// The dense kernel in use.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Name of the dense kernel in use (`avx-512`, `avx2+fma`, …).
    pub fn kernel_name(&self) -> &'static str {
        self.kernel.name()
    }

    /// Computes the sources of every frame in `frames_in` (interleaved, `channels` wide)
    /// into `sources_out` (interleaved, `sources` wide): the posterior means (given the
    /// sensor noise when the model knows it, [`unmix_format::ModelHeader::output_noise`]),
    /// times the model's output gains.
    pub fn process(&mut self, frames_in: &[f32], sources_out: &mut [f32]) -> Result<(), Error> {
        self.check_shape(frames_in, sources_out)?;
        let (m, n) = (self.channels, self.sources);
        for (input, output) in frames_in.chunks(BLOCK_FRAMES * m).zip(sources_out.chunks_mut(BLOCK_FRAMES * n)) {
            self.encode_block(input, output, false);
            self.denoise(output);
            self.apply_gains(output);
        }
        Ok(())
    }

    /// The decoder: the frames (interleaved, `channels` wide, in the input's units) that
    /// the model reconstructs from `sources_in` (interleaved, `sources` wide, in the units
    /// [`process`](Self::process) writes them). For a model whose decoder inverts its
    /// encoder (the linear model with as many sources as channels, the post-nonlinear
    /// model) this gives back the input; with fewer sources, its projection on the
    /// sources' subspace; for PDGMM-VAE, its decoder's mean.
    pub fn reconstruct(&mut self, sources_in: &[f32], frames_out: &mut [f32]) -> Result<(), Error> {
        self.check_shape(frames_out, sources_in)?;
        let (m, n, stride) = (self.channels, self.sources, self.widest);
        let hidden = self.decoder_layers - 1;
        let (activation, chain) = (self.activation, self.architecture == Architecture::SaturatingChain);
        for (input, output) in sources_in.chunks(BLOCK_FRAMES * n).zip(frames_out.chunks_mut(BLOCK_FRAMES * m)) {
            let frames = input.len() / n;
            let [a, b] = &mut self.buffers;
            let (a, b) = (a.as_mut_slice(), b.as_mut_slice());
            scatter(input, n, a, stride);
            // Back to the posterior means the decoder reads.
            if let Some(gains) = &self.gains {
                for f in 0..frames {
                    for (v, g) in a[f * stride..f * stride + n].iter_mut().zip(gains) {
                        *v /= g;
                    }
                }
            }
            let scratch = self.scratch.as_mut_slice();
            // The activations as `score_block` runs the decoder.
            let decoded = run_layers(self.kernel, &self.reconstruct, a, b, scratch, stride, frames, |i| {
                if chain { Some(Activation::Tanh) } else { (i < hidden).then_some(activation) }
            });
            for (f, frame) in output.chunks_exact_mut(m).enumerate() {
                let z_hat = &decoded[f * stride..f * stride + m];
                for (c, (x, &z)) in frame.iter_mut().zip(z_hat).enumerate() {
                    // A post-nonlinear decoder ends in every curve's inverse.
                    let z = self.curves.get(c).map_or(z, |curve| curve.invert(z));
                    *x = z * self.channel_scale[c] + self.channel_mean[c];
                }
            }
        }
        Ok(())
    }

    /// Replaces every output of a block, `y = s + e`, by its source's posterior mean
    /// `E[s | y] = Σ_k r_k(y) (μ_k + g_k (y − μ_k))`, with `r_k` the responsibilities of the
    /// fitted mixture of `y` and `g_k` the share of component `k`'s variance that is the
    /// source's ([`shrink_factors`]). Nothing without the model's output noise.
    fn denoise(&self, output: &mut [f32]) {
        let Some(shrink) = &self.shrink else { return };
        let k = self.prior.len() / self.sources;
        for frame in output.chunks_exact_mut(self.sources) {
            for ((y, components), gains) in frame.iter_mut().zip(self.prior.chunks_exact(k)).zip(shrink.chunks_exact(k))
            {
                let z = *y;
                let term = |c: &PriorComponent| c.log_term(z);
                // Shifted by the largest term, so the largest weight is 1 and the sum ≥ 1.
                let top = components.iter().map(term).fold(f32::NEG_INFINITY, f32::max);
                let (mut total, mut mean) = (0.0f32, 0.0f32);
                for (c, &g) in components.iter().zip(gains) {
                    let w = (term(c) - top).exp();
                    total += w;
                    mean += w * (c.mean + g * (z - c.mean));
                }
                *y = mean / total;
            }
        }
    }

    /// Scales the posterior means of a block to the output's units.
    fn apply_gains(&self, output: &mut [f32]) {
        if let Some(gains) = &self.gains {
            for frame in output.chunks_exact_mut(self.sources) {
                for (v, g) in frame.iter_mut().zip(gains) {
                    *v *= g;
                }
            }
        }
    }

    /// [`process`](Self::process), and for every frame `t` also
    /// - `log_prior[t] = Σ_j log p_j(μ_tj)`, the log-density of its posterior means (before
    ///   the gains) under the learned priors (in nats, normalised units): low for frames
    ///   unlike the training data;
    /// - `reconstruction_error[t] = ‖ẑ_t − z_t‖² / m`, the mean squared error of the
    ///   decoder's reconstruction `ẑ_t` of the standardised frame `z_t` (centred, scaled to
    ///   unit variance per channel; with whitening, `ẑ_t = U Λ^{1/2} g(μ_t)` maps the
    ///   decoder's output back from the whitened dimensions, so energy outside the learned
    ///   subspace counts too): high when the mixing changed.
    ///
    /// This costs one decoder pass more than `process`.
    pub fn process_scored(
        &mut self,
        frames_in: &[f32],
        sources_out: &mut [f32],
        log_prior: &mut [f32],
        reconstruction_error: &mut [f32],
    ) -> Result<(), Error> {
        self.check_shape(frames_in, sources_out)?;
        let frames = sources_out.len() / self.sources;
        if log_prior.len() != frames || reconstruction_error.len() != frames {
            return Err(Error::ScoreShape {
                frames,
                log_prior: log_prior.len(),
                reconstruction: reconstruction_error.len(),
            });
        }
        let (m, n) = (self.channels, self.sources);
        for (((input, output), lp), re) in frames_in
            .chunks(BLOCK_FRAMES * m)
            .zip(sources_out.chunks_mut(BLOCK_FRAMES * n))
            .zip(log_prior.chunks_mut(BLOCK_FRAMES))
            .zip(reconstruction_error.chunks_mut(BLOCK_FRAMES))
        {
            self.encode_block(input, output, true);
            // The scores are of the encoder's outputs, in the model's units: what the
            // priors were fitted on and the decoder inverts.
            self.score_block(output, lp, re);
            self.denoise(output);
            self.apply_gains(output);
        }
        Ok(())
    }

    fn check_shape(&self, frames_in: &[f32], sources_out: &[f32]) -> Result<(), Error> {
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
        Ok(())
    }

    /// Encodes a block; with `keep_standardised`, also keeps its standardised frames for
    /// scoring.
    fn encode_block(&mut self, input: &[f32], output: &mut [f32], keep_standardised: bool) {
        let (stride, frames) = (self.widest, input.len() / self.channels);
        let [a, b] = &mut self.buffers;
        let (a, b) = (a.as_mut_slice(), b.as_mut_slice());
        // Frames are laid out with row stride `widest`; the input layer reads `channels`.
        scatter(input, self.channels, a, stride);
        if self.architecture == Architecture::SaturatingChain {
            // Standardise (kept for scoring either way), then `atanh` before every layer.
            let (kernel, scratch) = (self.kernel, self.scratch.as_mut_slice());
            let standardised = self.standardised.as_mut_slice();
            kernel.dense(a, standardised, stride, frames, &self.standardise, None, scratch);
            let (mut cur, mut next) = (b, a);
            for (index, layer) in self.layers.iter().enumerate() {
                for f in 0..frames {
                    let row = f * stride..f * stride + layer.inputs;
                    if index == 0 {
                        for (v, &x) in cur[row.clone()].iter_mut().zip(&standardised[row]) {
                            *v = clamped_atanh(x);
                        }
                    } else {
                        cur[row].iter_mut().for_each(|v| *v = clamped_atanh(*v));
                    }
                }
                kernel.dense(cur, next, stride, frames, layer, None, scratch);
                std::mem::swap(&mut cur, &mut next);
            }
            gather(cur, stride, output, self.sources);
            return;
        }
        if self.architecture == Architecture::PostNonlinear {
            // Standardise (kept for scoring either way), each channel through its curve,
            // then the layers: the one dense layer, or a hidden layer and then it.
            let (kernel, scratch) = (self.kernel, self.scratch.as_mut_slice());
            let standardised = self.standardised.as_mut_slice();
            kernel.dense(a, standardised, stride, frames, &self.standardise, None, scratch);
            for f in 0..frames {
                let row = f * stride..f * stride + self.channels;
                for ((v, &x), curve) in b[row.clone()].iter_mut().zip(&standardised[row]).zip(&self.curves) {
                    *v = curve.apply(x);
                }
            }
            let (last, activation) = (self.layers.len() - 1, self.activation);
            let out =
                run_layers(kernel, &self.layers, b, a, scratch, stride, frames, |i| (i != last).then_some(activation));
            gather(out, stride, output, self.sources);
            return;
        }
        if keep_standardised {
            let (standardise, scratch) = (&self.standardise, self.scratch.as_mut_slice());
            self.kernel.dense(a, self.standardised.as_mut_slice(), stride, frames, standardise, None, scratch);
        }
        let last = self.layers.len() - 1;
        let activation = self.activation;
        let out = run_layers(self.kernel, &self.layers, a, b, self.scratch.as_mut_slice(), stride, frames, |i| {
            (i != last).then_some(activation)
        });
        gather(out, stride, output, self.sources);
    }

    /// Scores a block whose sources `mu` [`encode_block`](Self::encode_block) computed
    /// (keeping the standardised frames).
    fn score_block(&mut self, mu: &[f32], log_prior: &mut [f32], reconstruction_error: &mut [f32]) {
        let (stride, frames, m) = (self.widest, log_prior.len(), self.channels);
        let [a, b] = &mut self.buffers;
        let (a, b) = (a.as_mut_slice(), b.as_mut_slice());
        scatter(mu, self.sources, a, stride);
        // The activation sits between the decoder's layers only: not after its last layer,
        // nor after the linear map back from the whitened dimensions.
        // A saturating chain's decoder takes the tanh of every layer's output instead.
        let hidden = self.decoder_layers - 1;
        let (activation, chain) = (self.activation, self.architecture == Architecture::SaturatingChain);
        let decoded =
            run_layers(self.kernel, &self.reconstruct, a, b, self.scratch.as_mut_slice(), stride, frames, |i| {
                if chain { Some(Activation::Tanh) } else { (i < hidden).then_some(activation) }
            });
        let curves = &self.curves;
        for (f, error) in reconstruction_error.iter_mut().enumerate() {
            let (z_hat, z) =
                (&decoded[f * stride..f * stride + m], &self.standardised.as_slice()[f * stride..f * stride + m]);
            *error = if curves.is_empty() {
                z_hat.iter().zip(z).map(|(p, q)| (p - q) * (p - q)).sum::<f32>() / m as f32
            } else {
                // A post-nonlinear decoder ends in every curve's inverse.
                z_hat.iter().zip(z).zip(curves).map(|((p, q), c)| (c.invert(*p) - q).powi(2)).sum::<f32>() / m as f32
            };
        }
        let k = self.prior.len() / self.sources;
        for (frame, lp) in mu.chunks_exact(self.sources).zip(log_prior.iter_mut()) {
            *lp = frame
                .iter()
                .zip(self.prior.chunks_exact(k))
                .map(|(&z, components)| {
                    // log Σ_k exp(t_k), shifted by the largest term.
                    let term = |c: &PriorComponent| c.log_term(z);
                    let top = components.iter().map(term).fold(f32::NEG_INFINITY, f32::max);
                    top + components.iter().map(|c| (term(c) - top).exp()).sum::<f32>().ln()
                })
                .sum();
        }
    }
}

/// A buffer whose values start on a 64-byte boundary, so that no row of a tile and no
/// AVX-512 vector of it straddles two cache lines (which halves load throughput).
#[derive(Debug)]
struct Aligned<T> {
    storage: Vec<T>,
    offset: usize,
    len: usize,
}

impl<T: Copy + Default> Aligned<T> {
    fn new(len: usize) -> Self {
        let slack = 64 / std::mem::size_of::<T>();
        let storage = vec![T::default(); len + slack];
        let offset = storage.as_ptr().align_offset(64).min(slack);
        Self { storage, offset, len }
    }

    fn as_slice(&self) -> &[T] {
        &self.storage[self.offset..self.offset + self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.storage[self.offset..self.offset + self.len]
    }
}

impl<T: Copy + Default> Clone for Aligned<T> {
    /// A copy aligned in its own storage (a plain copy of the vector could move it off
    /// the boundary).
    fn clone(&self) -> Self {
        let mut copy = Self::new(self.len);
        copy.as_mut_slice().copy_from_slice(self.as_slice());
        copy
    }
}

/// Copies interleaved frames of `width` into rows of `stride`.
fn scatter(frames: &[f32], width: usize, rows: &mut [f32], stride: usize) {
    for (f, frame) in frames.chunks_exact(width).enumerate() {
        rows[f * stride..f * stride + width].copy_from_slice(frame);
    }
}

/// Copies the first `width` values of each row of `stride` out as interleaved frames.
fn gather(rows: &[f32], stride: usize, frames: &mut [f32], width: usize) {
    for (f, frame) in frames.chunks_exact_mut(width).enumerate() {
        frame.copy_from_slice(&rows[f * stride..f * stride + width]);
    }
}

/// Runs `layers` from `a`, ping-ponging with `b`; returns the buffer holding the result.
#[allow(clippy::too_many_arguments)]
fn run_layers<'a>(
    kernel: Kernel,
    layers: &[PackedLayer],
    a: &'a mut [f32],
    b: &'a mut [f32],
    scratch: &mut [u16],
    stride: usize,
    frames: usize,
    activation: impl Fn(usize) -> Option<Activation>,
) -> &'a [f32] {
    #[cfg(target_arch = "x86_64")]
    if kernel == Kernel::Amx {
        // SAFETY: `Amx` is only chosen after `amx::available`.
        let tiles = unsafe { amx::Tiles::load() };
        // One tile configuration for all the layers, which run over the whole block each
        // (measured faster than taking a tile of rows through every layer in turn).
        let (mut cur, mut next) = (a, b);
        let mut tanh_input = false;
        for (index, layer) in layers.iter().enumerate() {
            // A tanh before a tile-unit layer is applied as that layer cuts its input.
            let defer = activation(index) == Some(Activation::Tanh)
                && layers.get(index + 1).is_some_and(|next| next.amx.is_some());
            let own = if defer { None } else { activation(index) };
            kernel::dense_amx(&tiles, cur, next, stride, frames, layer, tanh_input, own, scratch);
            tanh_input = defer;
            std::mem::swap(&mut cur, &mut next);
        }
        return cur;
    }
    let (mut cur, mut next) = (a, b);
    for (index, layer) in layers.iter().enumerate() {
        kernel.dense(cur, next, stride, frames, layer, activation(index), scratch);
        std::mem::swap(&mut cur, &mut next);
    }
    cur
}

/// The priors as [`PriorComponent`]s, `[source][component]`, weights by a stable softmax.
fn prior_components(prior: &unmix_format::GmmParams) -> Vec<PriorComponent> {
    let k = prior.components;
    let mut out = Vec::with_capacity(prior.logits.len());
    for ((logits, means), log_vars) in
        prior.logits.chunks_exact(k).zip(prior.means.chunks_exact(k)).zip(prior.log_vars.chunks_exact(k))
    {
        let top = logits.iter().fold(f64::NEG_INFINITY, |a, &l| a.max(f64::from(l)));
        let log_total = top + logits.iter().map(|&l| (f64::from(l) - top).exp()).sum::<f64>().ln();
        for ((&logit, &mean), &log_var) in logits.iter().zip(means).zip(log_vars) {
            let var = f64::from(log_var).exp();
            out.push(PriorComponent {
                mean,
                half_precision: (0.5 / var) as f32,
                log_scale: (f64::from(logit) - log_total - 0.5 * (std::f64::consts::TAU * var).ln()) as f32,
            });
        }
    }
    out
}

/// `[source][component]`: the share `max(v − σ², 0) / v` of each prior component's variance
/// `v` that is not the output's noise `σ²` (a component narrower than the noise is all
/// noise: its outputs go to its mean).
fn shrink_factors(prior: &unmix_format::GmmParams, noise: &[f32]) -> Vec<f32> {
    let k = prior.components;
    prior
        .log_vars
        .chunks_exact(k)
        .zip(noise)
        .flat_map(|(log_vars, &noise)| {
            log_vars.iter().map(move |&log_var| {
                let var = f64::from(log_var).exp();
                ((var - f64::from(noise)).max(0.0) / var) as f32
            })
        })
        .collect()
}

/// The sources of a model whose outputs are affine in its input, `s = W x + b` with `x` a
/// frame as read (an MLP with one encoder layer: the linear model, or a PDGMM-VAE without
/// hidden layers; not taking the sensor noise out of its outputs): `W` (sources ×
/// channels, row-major) and `b`, in the output's units (the gains applied), in `f64`.
/// `None` for every other model.
pub fn affine_map(model: &ModelFile) -> Option<(Vec<f64>, Vec<f64>)> {
    let weights = &model.weights;
    let [layer] = weights.encoder.as_slice() else { return None };
    if weights.architecture != Architecture::Mlp || model.header.output_noise.is_some() {
        return None;
    }
    let (folded, bias) = fold_normaliser(&model.header.normaliser, layer);
    let (m, n) = (model.header.normaliser.input_channels(), layer.outputs);
    let gains = model.source_gains();
    // `folded` is channel-major (`[c][o]`); the map is source-major.
    let matrix = (0..n * m).map(|i| folded[(i % m) * n + i / m] * f64::from(gains[i / m])).collect();
    let offset = bias.iter().zip(&gains).map(|(b, &g)| b * f64::from(g)).collect();
    Some((matrix, offset))
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

pub use unmix_core::SCORE_CHANNELS;

/// Frames a [`ScoredSeparator`] scores at a time (the size of its scratch buffers).
const SCORED_BLOCK_FRAMES: usize = 1024;

/// The separator as a pipeline stage that scores as it separates: every output frame is
/// the `n` sources followed by the [`SCORE_CHANNELS`] scores — log-prior, reconstruction
/// error, and whether each lies beyond the threshold of the model's
/// [`ScoreBaseline`](unmix_format::ScoreBaseline) (1 or 0; NaN for a model without one) —
/// so that a downstream stage can watch them travel in step with the sources they describe.
///
/// # Real-time safety
/// Scratch buffers are allocated in [`ScoredSeparator::new`]; [`process`](Self::process)
/// allocates nothing, takes no lock and makes no system call.
#[derive(Debug, Clone)]
pub struct ScoredSeparator {
    separator: Separator,
    /// `(log-prior below which, reconstruction error above which)` a frame is an outlier.
    thresholds: Option<(f32, f32)>,
    sources: Vec<f32>,
    log_prior: Vec<f32>,
    reconstruction_error: Vec<f32>,
}

impl ScoredSeparator {
    /// Builds the separator of a model file and its scratch buffers, on the fastest kernel
    /// this processor runs.
    pub fn new(model: &ModelFile) -> Self {
        Self::around(model, Separator::new(model))
    }

    /// [`new`](Self::new) on a chosen kernel; one this processor does not run is refused.
    pub fn with_kernel(model: &ModelFile, kernel: Kernel) -> Result<Self, Error> {
        Ok(Self::around(model, Separator::with_kernel(model, kernel)?))
    }

    fn around(model: &ModelFile, separator: Separator) -> Self {
        let n = separator.sources();
        Self {
            separator,
            thresholds: model.header.score_baseline.map(|b| (b.log_prior_p01, b.reconstruction_error_p99)),
            sources: vec![0.0; SCORED_BLOCK_FRAMES * n],
            log_prior: vec![0.0; SCORED_BLOCK_FRAMES],
            reconstruction_error: vec![0.0; SCORED_BLOCK_FRAMES],
        }
    }

    /// The separator inside.
    pub fn separator(&self) -> &Separator {
        &self.separator
    }

    /// Separates and scores whole frames: `frames_out` holds `n + SCORE_CHANNELS` values
    /// per frame of `frames_in`.
    pub fn process(&mut self, frames_in: &[f32], frames_out: &mut [f32]) -> Result<(), Error> {
        let (m, n) = (self.separator.channels(), self.separator.sources());
        let width = n + SCORE_CHANNELS;
        if !frames_in.len().is_multiple_of(m) || frames_out.len() != frames_in.len() / m * width {
            return Err(Error::BlockShape {
                input: frames_in.len(),
                output: frames_out.len(),
                channels: m,
                sources: width,
            });
        }
        for (input, output) in
            frames_in.chunks(SCORED_BLOCK_FRAMES * m).zip(frames_out.chunks_mut(SCORED_BLOCK_FRAMES * width))
        {
            let frames = input.len() / m;
            let (sources, log_prior, error) = (
                &mut self.sources[..frames * n],
                &mut self.log_prior[..frames],
                &mut self.reconstruction_error[..frames],
            );
            self.separator.process_scored(input, sources, log_prior, error)?;
            for (((out, s), &lp), &re) in
                output.chunks_exact_mut(width).zip(sources.chunks_exact(n)).zip(log_prior.iter()).zip(error.iter())
            {
                out[..n].copy_from_slice(s);
                out[n] = lp;
                out[n + 1] = re;
                let (lp_outlier, re_outlier) = match self.thresholds {
                    Some((lp_low, re_high)) => (f32::from(u8::from(lp < lp_low)), f32::from(u8::from(re > re_high))),
                    None => (f32::NAN, f32::NAN),
                };
                out[n + 2] = lp_outlier;
                out[n + 3] = re_outlier;
            }
        }
        Ok(())
    }
}

impl unmix_core::Processor for ScoredSeparator {
    fn input_channels(&self) -> usize {
        self.separator.channels()
    }

    fn output_channels(&self) -> usize {
        self.separator.sources() + SCORE_CHANNELS
    }

    fn process(&mut self, input: &[f32], output: &mut [f32]) -> Result<(), unmix_core::BoxError> {
        Ok(ScoredSeparator::process(self, input, output)?)
    }
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
