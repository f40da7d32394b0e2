//! PDGMM-VAE parameters as plain arrays: what the model file stores and what the
//! inference engine computes with.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Nonlinearity between hidden layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Hyperbolic tangent (the default: smooth, odd, matches the tanh mixtures).
    Tanh,
    /// Rectified linear unit.
    Relu,
    /// Leaky ReLU with slope 0.01 below zero.
    LeakyRelu,
    /// SiLU / swish, `x · sigmoid(x)`.
    Silu,
}

impl Activation {
    /// Applies the activation to one value.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.max(0.0),
            Activation::LeakyRelu => {
                if x >= 0.0 {
                    x
                } else {
                    0.01 * x
                }
            }
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }
}

/// How the encoder's and decoder's layers are joined.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    /// PDGMM-VAE's MLPs: [`ModelWeights::activation`] between hidden layers, the last
    /// layer linear.
    #[default]
    Mlp,
    /// A saturating sensor chain (the zero-noise limit of a PDGMM-VAE whose decoder is
    /// `tanh(B2 tanh(B1 z))`): the encoder takes the `atanh` of every layer's input, its
    /// argument clamped to ±[`ATANH_LIMIT`] (a frame beyond the training range saturates
    /// instead of leaving the domain); the decoder takes the `tanh` of every layer's output
    /// and is the encoder's inverse, layer by layer. Its input is the samples as read
    /// (full scale ±1).
    SaturatingChain,
    /// A post-nonlinear model (the zero-noise limit of a PDGMM-VAE whose decoder is a
    /// linear mixture read by each sensor through its own monotone curve): the encoder
    /// passes every standardised channel through its curve ([`ModelWeights::sensor_curves`],
    /// the inverse of the sensor's) and then through its one dense layer; the decoder is
    /// the dense layer's inverse followed by every curve's inverse. Its input is the
    /// channels standardised, not whitened.
    ///
    /// The encoder may instead have two layers, [`ModelWeights::activation`] between
    /// them: PDGMM's encoder with a hidden layer started at the curves
    /// (`unmix_likelihood::residual`). Its decoder is then the inverse of the encoder's
    /// linear path only, so reconstructions are approximate where the hidden layer bends.
    PostNonlinear,
}

/// A strictly increasing piecewise-linear curve through the points `(knots[i], values[i])`,
/// continued beyond the first and last point with the slopes of the outer segments, so that
/// it maps the whole line onto the whole line and its inverse is the curve with the two
/// arrays swapped.
#[derive(Debug, Clone, PartialEq)]
pub struct MonotoneCurve {
    /// Where the segments meet, strictly increasing.
    pub knots: Vec<f32>,
    /// The curve at each knot, strictly increasing.
    pub values: Vec<f32>,
}

impl MonotoneCurve {
    /// The curve at `x`.
    #[inline]
    pub fn apply(&self, x: f32) -> f32 {
        interpolate(&self.knots, &self.values, x)
    }

    /// The inverse curve at `y`.
    #[inline]
    pub fn invert(&self, y: f32) -> f32 {
        interpolate(&self.values, &self.knots, y)
    }

    /// The curve's slope at `x` (the right-hand one at a knot).
    #[inline]
    pub fn slope(&self, x: f32) -> f32 {
        let i = segment(&self.knots, x);
        (self.values[i + 1] - self.values[i]) / (self.knots[i + 1] - self.knots[i])
    }

    fn check(&self) -> Result<()> {
        let increasing = |v: &[f32]| v.windows(2).all(|p| p[1] > p[0]) && v.iter().all(|x| x.is_finite());
        if self.knots.len() < 2 || self.knots.len() != self.values.len() {
            return Err(Error::Invalid(format!(
                "a sensor curve needs two points or more, knots and values alike ({} knots, {} values)",
                self.knots.len(),
                self.values.len()
            )));
        }
        if !increasing(&self.knots) || !increasing(&self.values) {
            return Err(Error::Invalid(
                "a sensor curve's knots and values must be finite and strictly increasing".into(),
            ));
        }
        Ok(())
    }
}

/// The segment `x` falls in: `i` with `from[i] ≤ x < from[i + 1]`, the outer segments
/// taking everything beyond them.
#[inline]
fn segment(from: &[f32], x: f32) -> usize {
    from[1..from.len() - 1].partition_point(|&k| k <= x)
}

#[inline]
fn interpolate(from: &[f32], to: &[f32], x: f32) -> f32 {
    let i = segment(from, x);
    let slope = (to[i + 1] - to[i]) / (from[i + 1] - from[i]);
    to[i] + slope * (x - from[i])
}

/// Largest `|v|` a [`Architecture::SaturatingChain`] encoder takes the `atanh` of
/// (`atanh(1 − 10⁻⁶) ≈ 7.25`).
pub const ATANH_LIMIT: f32 = 1.0 - 1e-6;

/// `atanh` with its argument clamped to ±[`ATANH_LIMIT`].
#[inline]
pub fn clamped_atanh(v: f32) -> f32 {
    let v = v.clamp(-ATANH_LIMIT, ATANH_LIMIT);
    // atanh(v) = ½ ln((1 + v) / (1 − v)) = ½ ln(1 + 2v / (1 − v)), accurate near 0 too.
    0.5 * (2.0 * v / (1.0 - v)).ln_1p()
}

/// A dense layer `y = x W + b` with `W` stored row-major as `[inputs, outputs]` (burn's
/// `Linear` layout).
#[derive(Debug, Clone, PartialEq)]
pub struct DenseLayer {
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
    /// `weight[i * outputs + o]`.
    pub weight: Vec<f32>,
    /// `bias[o]`.
    pub bias: Vec<f32>,
}

/// The learned Gaussian-mixture priors, one mixture per source, row-major `[sources, K]`.
#[derive(Debug, Clone, PartialEq)]
pub struct GmmParams {
    /// Components per source `K`.
    pub components: usize,
    /// Softmax logits `α`.
    pub logits: Vec<f32>,
    /// Component means.
    pub means: Vec<f32>,
    /// Component log-variances `η`.
    pub log_vars: Vec<f32>,
}

impl GmmParams {
    /// Mixture weights `π_j = softmax(α_j)` of source `j`.
    pub fn weights(&self, j: usize) -> Vec<f32> {
        let k = self.components;
        let a = &self.logits[j * k..(j + 1) * k];
        let max = a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = a.iter().map(|v| (v - max).exp()).collect();
        let s: f32 = e.iter().sum();
        e.iter().map(|v| v / s).collect()
    }

    /// Density of source `j`'s prior at `z`.
    pub fn density(&self, j: usize, z: f32) -> f32 {
        let k = self.components;
        let w = self.weights(j);
        (0..k)
            .map(|c| {
                let var = self.log_vars[j * k + c].exp();
                let d = z - self.means[j * k + c];
                w[c] * (-0.5 * d * d / var).exp() / (std::f32::consts::TAU * var).sqrt()
            })
            .sum()
    }
}

/// All parameters of a trained PDGMM-VAE.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelWeights {
    /// How the layers are joined (files before format version 5: [`Architecture::Mlp`]).
    pub architecture: Architecture,
    /// Activation between hidden layers of an [`Architecture::Mlp`].
    pub activation: Activation,
    /// Encoder layers, input first; the last gives the posterior means.
    pub encoder: Vec<DenseLayer>,
    /// Decoder layers, latent first; the last gives the reconstruction.
    pub decoder: Vec<DenseLayer>,
    /// Posterior log-variance `ω_j`, one per source.
    pub posterior_log_var: Vec<f32>,
    /// Per-source GMM priors.
    pub prior: GmmParams,
    /// One curve per input channel, in front of the encoder, for an
    /// [`Architecture::PostNonlinear`] model; empty for every other architecture (and in
    /// files before format version 6).
    pub sensor_curves: Vec<MonotoneCurve>,
}

/// Shapes, stored in the header so the weights blob can be cut back into arrays.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Layout {
    #[serde(default)]
    architecture: Architecture,
    activation: Activation,
    encoder: Vec<[usize; 2]>,
    decoder: Vec<[usize; 2]>,
    sources: usize,
    components: usize,
    /// Points of every sensor curve.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    curve_points: Vec<usize>,
}

impl ModelWeights {
    /// Input width of the encoder.
    pub fn inputs(&self) -> usize {
        self.encoder.first().map_or(0, |l| l.inputs)
    }

    /// Number of sources (latent dimensions).
    pub fn sources(&self) -> usize {
        self.posterior_log_var.len()
    }

    /// Posterior standard deviations `σ_j = exp(ω_j / 2)`.
    pub fn posterior_std(&self) -> Vec<f32> {
        self.posterior_log_var.iter().map(|w| (0.5 * w).exp()).collect()
    }

    pub(crate) fn layout(&self) -> Layout {
        Layout {
            architecture: self.architecture,
            activation: self.activation,
            encoder: self.encoder.iter().map(|l| [l.inputs, l.outputs]).collect(),
            decoder: self.decoder.iter().map(|l| [l.inputs, l.outputs]).collect(),
            sources: self.sources(),
            components: self.prior.components,
            curve_points: self.sensor_curves.iter().map(|c| c.knots.len()).collect(),
        }
    }

    /// All values in file order: encoder layers (weight, bias), decoder layers, posterior
    /// log-variances, prior logits, means, log-variances, then every sensor curve's knots and
    /// values.
    pub fn flatten(&self) -> Vec<f32> {
        let mut out = Vec::new();
        for l in self.encoder.iter().chain(&self.decoder) {
            out.extend_from_slice(&l.weight);
            out.extend_from_slice(&l.bias);
        }
        out.extend_from_slice(&self.posterior_log_var);
        out.extend_from_slice(&self.prior.logits);
        out.extend_from_slice(&self.prior.means);
        out.extend_from_slice(&self.prior.log_vars);
        for curve in &self.sensor_curves {
            out.extend_from_slice(&curve.knots);
            out.extend_from_slice(&curve.values);
        }
        out
    }

    pub(crate) fn unflatten(layout: &Layout, values: &[f32]) -> Result<Self> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<Vec<f32>> {
            let end = at.checked_add(n).filter(|&e| e <= values.len()).ok_or_else(|| {
                Error::Corrupt(format!("weights hold {} values, the layout needs more", values.len()))
            })?;
            let v = values[at..end].to_vec();
            at = end;
            Ok(v)
        };
        let mut layers = |shapes: &[[usize; 2]]| -> Result<Vec<DenseLayer>> {
            shapes
                .iter()
                .map(|&[inputs, outputs]| {
                    let n = inputs.checked_mul(outputs).ok_or_else(|| Error::Corrupt("layer too large".into()))?;
                    Ok(DenseLayer { inputs, outputs, weight: take(n)?, bias: take(outputs)? })
                })
                .collect()
        };
        let encoder = layers(&layout.encoder)?;
        let decoder = layers(&layout.decoder)?;
        let nk =
            layout.sources.checked_mul(layout.components).ok_or_else(|| Error::Corrupt("prior too large".into()))?;
        let posterior_log_var = take(layout.sources)?;
        let prior =
            GmmParams { components: layout.components, logits: take(nk)?, means: take(nk)?, log_vars: take(nk)? };
        let sensor_curves = layout
            .curve_points
            .iter()
            .map(|&points| Ok(MonotoneCurve { knots: take(points)?, values: take(points)? }))
            .collect::<Result<Vec<_>>>()?;
        if at != values.len() {
            return Err(Error::Corrupt(format!("{} weight values left over", values.len() - at)));
        }
        let w = ModelWeights {
            architecture: layout.architecture,
            activation: layout.activation,
            encoder,
            decoder,
            posterior_log_var,
            prior,
            sensor_curves,
        };
        w.check()?;
        Ok(w)
    }

    /// Reorders and re-signs the sources: new source `j` is old source `order[j]` times
    /// `signs[j]` (±1). The encoder's last layer, the decoder's first layer, the posterior
    /// variances and the priors change together, so the model is the same model with its
    /// latent axes relabelled (the decoder sees exactly the latents it saw before).
    pub fn relabel_sources(&mut self, order: &[usize], signs: &[f32]) -> Result<()> {
        let n = self.sources();
        let mut seen = vec![false; n];
        if order.len() != n
            || signs.len() != n
            || order.iter().any(|&j| j >= n || std::mem::replace(&mut seen[j], true))
        {
            return Err(Error::Invalid(format!("{order:?} is not a permutation of {n} sources")));
        }
        if signs.iter().any(|s| s.abs() != 1.0) {
            return Err(Error::Invalid("source signs must be ±1".into()));
        }
        self.select_sources(order, signs, &vec![0.0; n])
    }

    /// Keeps the sources `keep` (in that order, times `signs`) and drops the others, each
    /// dropped latent replaced in the decoder by the constant `fill[j]` (its mean value):
    /// how a latent that carries no information is pruned without changing the decoder's
    /// output for it.
    pub fn select_sources(&mut self, keep: &[usize], signs: &[f32], fill: &[f32]) -> Result<()> {
        let n = self.sources();
        if keep.is_empty() || keep.len() != signs.len() || fill.len() != n || keep.iter().any(|&j| j >= n) {
            return Err(Error::Invalid(format!("cannot keep sources {keep:?} of {n}")));
        }
        let k = self.prior.components;
        let enc = self.encoder.last_mut().ok_or_else(|| Error::Invalid("encoder has no layers".into()))?;
        let (inputs, new_n) = (enc.inputs, keep.len());
        let mut weight = Vec::with_capacity(inputs * new_n);
        for i in 0..inputs {
            weight.extend(keep.iter().zip(signs).map(|(&j, s)| s * enc.weight[i * n + j]));
        }
        enc.bias = keep.iter().zip(signs).map(|(&j, s)| s * enc.bias[j]).collect();
        enc.weight = weight;
        enc.outputs = new_n;
        let dec = self.decoder.first_mut().ok_or_else(|| Error::Invalid("decoder has no layers".into()))?;
        let out = dec.outputs;
        for j in (0..n).filter(|j| !keep.contains(j)) {
            for o in 0..out {
                dec.bias[o] += fill[j] * dec.weight[j * out + o];
            }
        }
        dec.weight = keep
            .iter()
            .zip(signs)
            .flat_map(|(&j, &s)| dec.weight[j * out..(j + 1) * out].iter().map(move |w| s * w).collect::<Vec<_>>())
            .collect();
        dec.inputs = new_n;
        self.posterior_log_var = keep.iter().map(|&j| self.posterior_log_var[j]).collect();
        let rows = |v: &[f32], sign: bool| -> Vec<f32> {
            keep.iter()
                .zip(signs)
                .flat_map(|(&j, &s)| v[j * k..(j + 1) * k].iter().map(move |x| if sign { s * x } else { *x }))
                .collect()
        };
        self.prior = GmmParams {
            components: k,
            logits: rows(&self.prior.logits, false),
            means: rows(&self.prior.means, true),
            log_vars: rows(&self.prior.log_vars, false),
        };
        self.check()
    }

    /// Checks that the layers chain and the sizes agree.
    pub fn check(&self) -> Result<()> {
        let chain = |layers: &[DenseLayer], what: &str| -> Result<()> {
            if layers.is_empty() {
                return Err(Error::Invalid(format!("{what} has no layers")));
            }
            for l in layers {
                if l.weight.len() != l.inputs * l.outputs || l.bias.len() != l.outputs {
                    return Err(Error::Invalid(format!("{what} layer arrays do not match their shape")));
                }
            }
            for pair in layers.windows(2) {
                if pair[0].outputs != pair[1].inputs {
                    return Err(Error::Invalid(format!("{what} layers do not chain")));
                }
            }
            Ok(())
        };
        chain(&self.encoder, "encoder")?;
        chain(&self.decoder, "decoder")?;
        let n = self.sources();
        let enc_out = self.encoder.last().map_or(0, |l| l.outputs);
        let dec_in = self.decoder.first().map_or(0, |l| l.inputs);
        let dec_out = self.decoder.last().map_or(0, |l| l.outputs);
        if enc_out != n || dec_in != n || dec_out != self.inputs() {
            return Err(Error::Invalid("encoder, decoder and latent sizes disagree".into()));
        }
        let nk = n * self.prior.components;
        if self.prior.components == 0
            || self.prior.logits.len() != nk
            || self.prior.means.len() != nk
            || self.prior.log_vars.len() != nk
        {
            return Err(Error::Invalid("prior arrays do not match sources × components".into()));
        }
        if self.architecture == Architecture::SaturatingChain
            && self
                .encoder
                .iter()
                .chain(&self.decoder)
                .any(|l| l.inputs != l.outputs || l.bias.iter().any(|&b| b != 0.0))
        {
            return Err(Error::Invalid("a saturating chain's layers are square and have no bias".into()));
        }
        if self.architecture == Architecture::PostNonlinear {
            if !(1..=2).contains(&self.encoder.len()) || self.decoder.len() != 1 {
                return Err(Error::Invalid(
                    "a post-nonlinear model has one dense layer each way, or a hidden layer before the encoder's"
                        .into(),
                ));
            }
            if self.sensor_curves.len() != self.inputs() {
                return Err(Error::Invalid(format!(
                    "a post-nonlinear model needs a curve per channel ({} curves, {} channels)",
                    self.sensor_curves.len(),
                    self.inputs()
                )));
            }
            for curve in &self.sensor_curves {
                curve.check()?;
            }
        } else if !self.sensor_curves.is_empty() {
            return Err(Error::Invalid("only a post-nonlinear model has sensor curves".into()));
        }
        if self.flatten().iter().any(|v| !v.is_finite()) {
            return Err(Error::Invalid("weights hold NaN or infinite values".into()));
        }
        Ok(())
    }
}
