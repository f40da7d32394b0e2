//! The PDGMM-VAE module: encoder, shared posterior log-variances, decoder, priors.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData, activation};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use unmix_format::{Activation, DenseLayer, ModelWeights};

use crate::prior::{GmmPrior, LOG_VAR_RANGE, LatentPrior, to_vec};
use crate::{Error, PdgmmVaeConfig, Result};

/// Posterior log-variances are clamped to this range.
pub(crate) const POSTERIOR_LOG_VAR_RANGE: (f64, f64) = (-12.0, 4.0);

/// PDGMM-VAE: `μ = f_φ(y)`, `q(z_j | y) = N(μ_j, exp(ω_j))`, `ŷ = g_θ(z)`, and a GMM prior
/// per latent dimension.
#[derive(Module, Debug)]
pub struct PdgmmVae {
    /// Encoder layers `m → … → n`.
    pub encoder: Vec<Linear>,
    /// Decoder layers `n → … → m`.
    pub decoder: Vec<Linear>,
    /// Posterior log-variance `ω_j`, one per source, `[n]`.
    pub posterior_log_var: Param<Tensor<1>>,
    /// The per-source priors.
    pub prior: GmmPrior,
    /// Activation between hidden layers.
    #[module(skip)]
    pub activation: Activation,
}

impl PdgmmVaeConfig {
    /// Builds a freshly initialised model. All randomness comes from `seed`, so the same
    /// seed gives the same model on every backend.
    pub fn init(&self, seed: u64, device: &Device) -> Result<PdgmmVae> {
        self.check()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let widths = |hidden: &[usize], from: usize, to: usize| {
            let mut w = vec![from];
            w.extend_from_slice(hidden);
            w.push(to);
            w
        };
        let mlp = |w: Vec<usize>, rng: &mut StdRng| -> Vec<Linear> {
            w.windows(2).map(|p| init_linear(p[0], p[1], rng, device)).collect()
        };
        let encoder = mlp(widths(&self.layout.encoder_hidden, self.inputs, self.sources), &mut rng);
        let decoder = mlp(widths(&self.layout.decoder_hidden, self.sources, self.inputs), &mut rng);
        let prior = GmmPrior::init(self.sources, self.layout.components, &mut rng, device);
        let omega = vec![self.layout.initial_posterior_log_var as f32; self.sources];
        Ok(PdgmmVae {
            encoder,
            decoder,
            posterior_log_var: Param::from_tensor(Tensor::from_data(TensorData::new(omega, [self.sources]), device)),
            prior,
            activation: self.layout.activation,
        })
    }
}

/// PyTorch's default dense initialisation: weights and bias uniform in `±1/√inputs`.
fn init_linear(inputs: usize, outputs: usize, rng: &mut StdRng, device: &Device) -> Linear {
    let bound = 1.0 / (inputs as f32).sqrt();
    let weight: Vec<f32> = (0..inputs * outputs).map(|_| rng.random_range(-bound..bound)).collect();
    let bias: Vec<f32> = (0..outputs).map(|_| rng.random_range(-bound..bound)).collect();
    linear_from(&DenseLayer { inputs, outputs, weight, bias }, device)
}

fn linear_from(layer: &DenseLayer, device: &Device) -> Linear {
    Linear {
        weight: Param::from_tensor(Tensor::from_data(
            TensorData::new(layer.weight.clone(), [layer.inputs, layer.outputs]),
            device,
        )),
        bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(layer.bias.clone(), [layer.outputs]), device))),
    }
}

fn dense_from(linear: &Linear) -> DenseLayer {
    let [inputs, outputs] = linear.weight.val().dims();
    DenseLayer {
        inputs,
        outputs,
        weight: to_vec(linear.weight.val()),
        bias: linear.bias.as_ref().map_or_else(|| vec![0.0; outputs], |b| to_vec(b.val())),
    }
}

fn activate(x: Tensor<2>, activation: Activation) -> Tensor<2> {
    match activation {
        // 2σ(2u) − 1 as one autodiff node (why: `tanh.rs`).
        Activation::Tanh => crate::tanh::tanh(x),
        Activation::Relu => activation::relu(x),
        Activation::LeakyRelu => activation::leaky_relu(x, 0.01),
        Activation::Silu => activation::silu(x),
    }
}

fn mlp(layers: &[Linear], mut x: Tensor<2>, activation: Activation) -> Tensor<2> {
    let last = layers.len().saturating_sub(1);
    for (i, layer) in layers.iter().enumerate() {
        x = layer.forward(x);
        if i != last {
            x = activate(x, activation);
        }
    }
    x
}

impl PdgmmVae {
    /// Posterior means (the separated sources).
    ///
    /// # Shapes
    /// - `y`: `[frames, inputs]` → `[frames, sources]`
    pub fn encode(&self, y: Tensor<2>) -> Tensor<2> {
        mlp(&self.encoder, y, self.activation)
    }

    /// Reconstruction from latents.
    ///
    /// # Shapes
    /// - `z`: `[frames, sources]` → `[frames, inputs]`
    pub fn decode(&self, z: Tensor<2>) -> Tensor<2> {
        mlp(&self.decoder, z, self.activation)
    }

    /// Clamped posterior log-variances `ω`, `[sources]`.
    pub fn posterior_log_var(&self) -> Tensor<1> {
        self.posterior_log_var.val().clamp(POSTERIOR_LOG_VAR_RANGE.0, POSTERIOR_LOG_VAR_RANGE.1)
    }

    /// Copies every parameter out as plain arrays (for the model file and inference).
    pub fn export(&self) -> ModelWeights {
        ModelWeights {
            architecture: unmix_format::Architecture::Mlp,
            activation: self.activation,
            encoder: self.encoder.iter().map(dense_from).collect(),
            decoder: self.decoder.iter().map(dense_from).collect(),
            posterior_log_var: to_vec(self.posterior_log_var()),
            prior: self.prior.params(),
            sensor_curves: Vec::new(),
        }
    }

    /// Rebuilds a module from exported weights.
    pub fn from_weights(weights: &ModelWeights, device: &Device) -> Result<Self> {
        // Weights gone to NaN or infinity come from a training that diverged.
        if weights.flatten().iter().any(|v| !v.is_finite()) {
            return Err(Error::DivergedWeights);
        }
        weights.check().map_err(|e| Error::Weights(e.to_string()))?;
        if weights.architecture != unmix_format::Architecture::Mlp {
            return Err(Error::Weights("only an MLP model can be trained as a PDGMM-VAE".into()));
        }
        let n = weights.sources();
        let log_vars: Vec<f32> =
            weights.prior.log_vars.iter().map(|&v| v.clamp(LOG_VAR_RANGE.0 as f32, LOG_VAR_RANGE.1 as f32)).collect();
        let prior = unmix_format::GmmParams { log_vars, ..weights.prior.clone() };
        Ok(Self {
            encoder: weights.encoder.iter().map(|l| linear_from(l, device)).collect(),
            decoder: weights.decoder.iter().map(|l| linear_from(l, device)).collect(),
            posterior_log_var: Param::from_tensor(Tensor::from_data(
                TensorData::new(weights.posterior_log_var.clone(), [n]),
                device,
            )),
            prior: GmmPrior::from_params(&prior, n, device),
            activation: weights.activation,
        })
    }

    /// For a whole interleaved `frames × inputs` buffer of normalised frames: every frame's
    /// `Σ_j log p_j(μ_j)`, and its reconstruction `g(μ)` (interleaved, `frames × inputs`) —
    /// the reference for the inference engine's `process_scored`.
    pub fn score_all(&self, data: &[f32], inputs: usize, device: &Device) -> (Vec<f32>, Vec<f32>) {
        let (mut log_prior, mut reconstruction) = (Vec::new(), Vec::with_capacity(data.len()));
        for y in frame_chunks(data, inputs, device) {
            let mu = self.encode(y);
            log_prior.extend(to_vec(self.prior.log_density(mu.clone()).sum_dim(1)));
            reconstruction.extend(to_vec(self.decode(mu)));
        }
        (log_prior, reconstruction)
    }

    /// Posterior means of a whole interleaved `frames × inputs` buffer, in chunks.
    pub fn encode_all(&self, data: &[f32], inputs: usize, device: &Device) -> Vec<f32> {
        let mut out = Vec::with_capacity(data.len() / inputs.max(1) * self.posterior_log_var.val().dims()[0]);
        for y in frame_chunks(data, inputs, device) {
            out.extend(to_vec(self.encode(y)));
        }
        out
    }
}

/// An interleaved `frames × inputs` buffer as `[frames, inputs]` tensors of at most 65 536
/// frames, so that whole recordings go through burn in bounded memory.
fn frame_chunks<'a>(data: &'a [f32], inputs: usize, device: &'a Device) -> impl Iterator<Item = Tensor<2>> + 'a {
    const CHUNK_FRAMES: usize = 65_536;
    data.chunks(CHUNK_FRAMES * inputs).map(move |chunk| {
        let frames = chunk.len() / inputs;
        Tensor::<2>::from_data(TensorData::new(chunk.to_vec(), [frames, inputs]), device)
    })
}
