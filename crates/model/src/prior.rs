//! Per-source priors. The trainer and loss only see [`LatentPrior`], so a temporal prior
//! (an AR process with GMM innovations) can later take the place of [`GmmPrior`].

use burn::module::{Module, Param};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::StandardNormal;
use unmix_format::GmmParams;

use crate::gmm_density::gmm_log_density;

/// Log-variances are clamped to this range: wide enough for any standardised source,
/// narrow enough that `exp` never overflows nor a component collapses onto a point.
pub(crate) const LOG_VAR_RANGE: (f64, f64) = (-9.0, 4.0);

/// `ln(2π)`.
pub(crate) const LN_2PI: f64 = 1.837_877_066_409_345_5;

/// A prior over each latent dimension, evaluated sample by sample.
pub trait LatentPrior {
    /// `log p_j(z_tj)` for every frame `t` and source `j`.
    ///
    /// # Shapes
    /// - `z`: `[frames, sources]`
    /// - returns `[frames, sources]`
    fn log_density(&self, z: Tensor<2>) -> Tensor<2>;
}

/// One learnable 1-D Gaussian mixture per source: weights `softmax(α_j)`, means `m_jk`,
/// variances `exp(η_jk)`.
#[derive(Module, Debug)]
pub struct GmmPrior {
    /// Softmax logits `α`, `[sources, K]`.
    pub logits: Param<Tensor<2>>,
    /// Component means `m`, `[sources, K]`.
    pub means: Param<Tensor<2>>,
    /// Component log-variances `η`, `[sources, K]`.
    pub log_vars: Param<Tensor<2>>,
}

impl GmmPrior {
    /// Initialises the priors *differently per source* (paper §3.6: heterogeneous priors
    /// break the permutation symmetry between latent dimensions).
    ///
    /// Source `j` gets component means spread over `±1.5 s_j` with a spread `s_j` growing
    /// from 0.8 to 1.6 across sources, jittered; variances drawn in `[0.3, 0.7]`; logits
    /// drawn from `N(0, 0.5²)`. All draws come from `rng`.
    pub fn init(sources: usize, components: usize, rng: &mut StdRng, device: &Device) -> Self {
        Self::from_params(&initial_params(sources, components, rng), sources, device)
    }

    /// Builds the prior from stored parameters.
    pub fn from_params(p: &GmmParams, sources: usize, device: &Device) -> Self {
        let k = p.components;
        let param =
            |v: &[f32]| Param::from_tensor(Tensor::from_data(TensorData::new(v.to_vec(), [sources, k]), device));
        Self { logits: param(&p.logits), means: param(&p.means), log_vars: param(&p.log_vars) }
    }

    /// Copies the parameters out.
    pub fn params(&self) -> GmmParams {
        let [_, k] = self.logits.val().dims();
        GmmParams {
            components: k,
            logits: to_vec(self.logits.val()),
            means: to_vec(self.means.val()),
            log_vars: to_vec(self.log_vars.val().clamp(LOG_VAR_RANGE.0, LOG_VAR_RANGE.1)),
        }
    }
}

/// The initial prior parameters of [`GmmPrior::init`], as plain arrays (for re-seeding
/// restart candidates with a different prior without a device).
pub fn initial_params(sources: usize, components: usize, rng: &mut StdRng) -> GmmParams {
    let (n, k) = (sources, components);
    let mut means = Vec::with_capacity(n * k);
    let mut log_vars = Vec::with_capacity(n * k);
    let mut logits = Vec::with_capacity(n * k);
    for j in 0..n {
        let spread = 0.8 + 0.8 * j as f64 / (n.max(2) - 1) as f64;
        for c in 0..k {
            let base = if k == 1 { 0.0 } else { -1.5 + 3.0 * c as f64 / (k - 1) as f64 };
            let jitter: f64 = rng.sample(StandardNormal);
            means.push((spread * base + 0.1 * jitter) as f32);
            log_vars.push(rng.random_range(0.3f64..0.7).ln() as f32);
            let a: f64 = rng.sample(StandardNormal);
            logits.push((0.5 * a) as f32);
        }
    }
    GmmParams { components: k, logits, means, log_vars }
}

impl LatentPrior for GmmPrior {
    fn log_density(&self, z: Tensor<2>) -> Tensor<2> {
        let log_weights = log_softmax(self.logits.val(), 1);
        let log_vars = self.log_vars.val().clamp(LOG_VAR_RANGE.0, LOG_VAR_RANGE.1);
        gmm_log_density(z, self.means.val(), log_vars, log_weights)
    }
}

impl GmmPrior {
    /// [`LatentPrior::log_density`] written with burn's tensor operations, as it was before
    /// `gmm_density.rs`: the reference the fused operation is tested against.
    #[cfg(test)]
    pub(crate) fn log_density_composed(&self, z: Tensor<2>) -> Tensor<2> {
        let log_weights = log_softmax(self.logits.val(), 1);
        let log_vars = self.log_vars.val().clamp(LOG_VAR_RANGE.0, LOG_VAR_RANGE.1);
        crate::gmm_density::gmm_log_density_composed(z, self.means.val(), log_vars, log_weights)
    }
}

pub(crate) fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default()
}
