//! The trained PDGMM-VAE encoder in plain Rust, for applying a model to incoming frames.
//!
//! [`Separator`] holds the normalisation and the encoder's dense layers exported from the
//! model file and turns frames of `m` channels into the posterior means of `n` sources.
//!
//! # Real-time safety
//! All buffers are allocated in [`Separator::new`]; [`Separator::process`] allocates
//! nothing, takes no lock, makes no system call and does not panic on data (a wrong slice
//! length is reported as an error value).

use unmix_dsp::Normaliser;
use unmix_format::{Activation, DenseLayer, ModelFile};

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

/// Applies a trained encoder frame by frame.
#[derive(Debug, Clone)]
pub struct Separator {
    normaliser: Normaliser,
    activation: Activation,
    layers: Vec<DenseLayer>,
    /// Two scratch vectors as wide as the widest layer, swapped between layers.
    scratch: [Vec<f32>; 2],
}

impl Separator {
    /// Builds the separator of a model file, allocating every buffer it will use.
    pub fn new(model: &ModelFile) -> Self {
        let widest = model
            .weights
            .encoder
            .iter()
            .map(|l| l.outputs.max(l.inputs))
            .max()
            .unwrap_or(0)
            .max(model.header.normaliser.output_dims());
        Self {
            normaliser: model.header.normaliser.clone(),
            activation: model.weights.activation,
            layers: model.weights.encoder.clone(),
            scratch: [vec![0.0; widest], vec![0.0; widest]],
        }
    }

    /// Channels per input frame.
    pub fn channels(&self) -> usize {
        self.normaliser.input_channels()
    }

    /// Sources per output frame.
    pub fn sources(&self) -> usize {
        self.layers.last().map_or(0, |l| l.outputs)
    }

    /// Computes the posterior means of every frame in `frames_in` (interleaved, `channels`
    /// wide) into `sources_out` (interleaved, `sources` wide).
    pub fn process(&mut self, frames_in: &[f32], sources_out: &mut [f32]) -> Result<(), Error> {
        let (m, n) = (self.channels(), self.sources());
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
        let last = self.layers.len() - 1;
        for (frame, out) in frames_in.chunks_exact(m).zip(sources_out.chunks_exact_mut(n)) {
            let [a, b] = &mut self.scratch;
            let width = self.normaliser.output_dims();
            self.normaliser.transform_frame(frame, &mut a[..width]);
            let (mut cur, mut next) = (a, b);
            for (i, layer) in self.layers.iter().enumerate() {
                let input = &cur[..layer.inputs];
                let output = &mut next[..layer.outputs];
                output.copy_from_slice(&layer.bias);
                for (x, row) in input.iter().zip(layer.weight.chunks_exact(layer.outputs)) {
                    for (o, w) in output.iter_mut().zip(row) {
                        *o += x * w;
                    }
                }
                if i != last {
                    for o in output.iter_mut() {
                        *o = self.activation.apply(*o);
                    }
                }
                std::mem::swap(&mut cur, &mut next);
            }
            out.copy_from_slice(&cur[..n]);
        }
        Ok(())
    }
}
