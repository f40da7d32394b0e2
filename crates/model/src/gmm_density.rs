//! The per-source GMM prior's log-density, `log p_j(z) = log Σ_k w_jk N(z; m_jk, exp η_jk)`,
//! as one differentiable operation with a closed-form backward pass.
//!
//! Why: written with burn's tensor operations the density is thirteen operations on
//! `[T, n, K]` tensors (broadcast, square, scale, exp, max, log-sum-exp, …) and about twice
//! as many in the backward pass, each an allocation and an autodiff node for a few thousand
//! numbers: 15 % of a training run in the forward pass alone (`docs/performance.md`).
//! Here it is one loop over the frames each way. Within a frame the arithmetic is in `f64`
//! (the composed form was `f32` throughout) but for the `exp` of the shifted terms, which
//! is the C library's `expf` in one vectorised pass (`unmix-vecmath`); the values agree
//! with the composed form to `f32` rounding, and the parameter gradients are sums over the
//! batch accumulated in `f64`.
//!
//! The backward pass uses the responsibilities `r_k = w_k N_k / p` kept from the forward:
//! with `d = z − m_k` and `g` the incoming gradient,
//! `∂/∂z = −g Σ_k r_k d / v_k`, `∂/∂m_k = g r_k d / v_k`, `∂/∂η_k = g r_k (d²/v_k − 1) / 2`,
//! `∂/∂ log w_k = g r_k` (the weights' softmax and the variances' clamp stay burn operations
//! around this one, with their own backward passes).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension, read_sync};
use burn::tensor::{Tensor, TensorData};

use crate::prior::LN_2PI;
use unmix_vecmath as vecmath;

/// Backends that evaluate the GMM log-density in one pass. The inner (non-autodiff)
/// backends read their tensors to the host (all of them are CPU backends here) and run the
/// loops below; autodiff adds the closed-form backward pass.
#[backend_extension(Flex: cfg(feature = "flex"), NdArray: cfg(feature = "ndarray"), Autodiff)]
pub trait GmmLogDensity: Backend {
    /// `log Σ_k exp(lw_jk) N(z_tj; m_jk, exp lv_jk)`: `z` is `[T, n]`, the parameters
    /// `[n, K]`, the result `[T, n]`.
    fn gmm_log_density(
        z: FloatTensor<Self>,
        means: FloatTensor<Self>,
        log_vars: FloatTensor<Self>,
        log_weights: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        forward::<Self>(z, means, log_vars, log_weights, false).0
    }
}

#[cfg(feature = "flex")]
impl GmmLogDensity for burn::backend::Flex {}

#[cfg(feature = "ndarray")]
#[allow(deprecated)] // deprecated upstream, offered because the design names it
impl GmmLogDensity for burn::backend::NdArray {}

/// A tensor's values and shape on the host.
fn read<B: Backend>(t: FloatTensor<B>) -> (Vec<f32>, Vec<usize>) {
    let shape = t.shape().to_vec();
    let data: TensorData = read_sync(B::float_into_data(t)).expect("a CPU tensor reads back");
    (data.convert::<f32>().try_into_vec::<f32>().expect("f32 after conversion"), shape)
}

fn write<B: Backend>(values: Vec<f32>, shape: Vec<usize>, device: &B::Device) -> FloatTensor<B> {
    B::float_from_data(TensorData::new(values, shape), device)
}

/// The forward pass on any backend: the log-density `[T, n]` and, when asked for, the
/// responsibilities `[T, n, K]`.
fn forward<B: Backend>(
    z: FloatTensor<B>,
    means: FloatTensor<B>,
    log_vars: FloatTensor<B>,
    log_weights: FloatTensor<B>,
    with_responsibilities: bool,
) -> (FloatTensor<B>, Option<FloatTensor<B>>) {
    let device = z.device();
    let (z, z_shape) = read::<B>(z);
    let (means, p_shape) = read::<B>(means);
    let components = Components::new(&means, &read::<B>(log_vars).0, &read::<B>(log_weights).0, p_shape[1]);
    let mut out = vec![0.0f32; z.len()];
    let mut resp = with_responsibilities.then(|| vec![0.0f32; z.len() * components.k]);
    components.log_density(&z, &mut out, resp.as_deref_mut());
    let resp_shape = vec![z_shape[0], z_shape[1], components.k];
    (write::<B>(out, z_shape, &device), resp.map(|r| write::<B>(r, resp_shape, &device)))
}

/// The prior's parameters, per source `j` and component `k` (index `j K + k`), in the form
/// the loops use.
struct Components {
    k: usize,
    means: Vec<f64>,
    /// `1 / v = exp(−η)`.
    inv_var: Vec<f64>,
    /// `log w − η/2 − ln(2π)/2`: everything in `log w N` that does not depend on `z`.
    offset: Vec<f64>,
}

impl Components {
    fn new(means: &[f32], log_vars: &[f32], log_weights: &[f32], k: usize) -> Self {
        assert!(
            k > 0 && means.len() == log_vars.len() && means.len() == log_weights.len() && means.len().is_multiple_of(k)
        );
        Self {
            k,
            means: means.iter().map(|&m| f64::from(m)).collect(),
            inv_var: log_vars.iter().map(|&lv| (-f64::from(lv)).exp()).collect(),
            offset: log_vars
                .iter()
                .zip(log_weights)
                .map(|(&lv, &lw)| f64::from(lw) - 0.5 * f64::from(lv) - 0.5 * LN_2PI)
                .collect(),
        }
    }

    fn sources(&self) -> usize {
        self.means.len() / self.k
    }

    /// `log w_k N(z; m_k, v_k)` of source `j`'s component `k`.
    #[inline]
    fn log_joint(&self, z: f64, jk: usize) -> f64 {
        let d = z - self.means[jk];
        -0.5 * d * d * self.inv_var[jk] + self.offset[jk]
    }

    /// `out[t n + j] = log p_j(z[t n + j])`; `resp`, if given, gets `r_tjk` at `(t n + j) K + k`.
    fn log_density(&self, z: &[f32], out: &mut [f32], resp: Option<&mut [f32]>) {
        let (n, k) = (self.sources(), self.k);
        assert!(z.len().is_multiple_of(n) && out.len() == z.len());
        let mut scratch = Vec::new();
        let terms = match resp {
            Some(resp) => resp,
            None => {
                scratch.resize(z.len() * k, 0.0);
                &mut scratch[..]
            }
        };
        assert_eq!(terms.len(), z.len() * k);
        // Log-sum-exp shifted by each frame's largest term, so that no term overflows and
        // the largest contributes exactly 1: first the shifted terms `log w_k N_k − max`
        // (each max kept in `maxes`), then their `exp` in one vectorised pass, then the sums.
        let mut maxes = vec![0.0f64; z.len()];
        for (i, (&zi, max_out)) in z.iter().zip(maxes.iter_mut()).enumerate() {
            let (zi, row, terms) = (f64::from(zi), (i % n) * k, &mut terms[i * k..(i + 1) * k]);
            let max = (row..row + k).map(|jk| self.log_joint(zi, jk)).fold(f64::NEG_INFINITY, f64::max);
            for (c, term) in terms.iter_mut().enumerate() {
                *term = (self.log_joint(zi, row + c) - max) as f32;
            }
            *max_out = max;
        }
        vecmath::exp_non_positive_in_place(terms);
        for ((out, terms), max) in out.iter_mut().zip(terms.chunks_exact_mut(k)).zip(maxes) {
            let sum: f64 = terms.iter().map(|&q| f64::from(q)).sum();
            *out = (max + sum.ln()) as f32;
            let inv_sum = 1.0 / sum;
            for q in terms {
                *q = (f64::from(*q) * inv_sum) as f32;
            }
        }
    }

    /// The gradients at `z` and at the parameters from the responsibilities and the
    /// incoming gradient `grad` (`[T, n]`): `(dz [T, n], d means, d log_vars, d log_weights)`,
    /// the last three `[n, K]`.
    fn backward(&self, z: &[f32], resp: &[f32], grad: &[f32]) -> [Vec<f32>; 4] {
        let (n, k) = (self.sources(), self.k);
        assert!(resp.len() == z.len() * k && grad.len() == z.len());
        let mut dz = vec![0.0f32; z.len()];
        let (mut dm, mut dlv, mut dlw) = (vec![0.0f64; n * k], vec![0.0f64; n * k], vec![0.0f64; n * k]);
        for (i, (&zi, &g)) in z.iter().zip(grad).enumerate() {
            let (zi, g, row) = (f64::from(zi), f64::from(g), (i % n) * k);
            let mut dzi = 0.0;
            for (c, &r) in resp[i * k..(i + 1) * k].iter().enumerate() {
                let jk = row + c;
                let w = g * f64::from(r);
                let d = zi - self.means[jk];
                let a = w * d * self.inv_var[jk];
                dzi -= a;
                dm[jk] += a;
                dlv[jk] += 0.5 * (a * d - w);
                dlw[jk] += w;
            }
            dz[i] = dzi as f32;
        }
        let narrow = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
        [dz, narrow(dm), narrow(dlv), narrow(dlw)]
    }
}

impl<B: Backend, C: CheckpointStrategy> GmmLogDensity for Autodiff<B, C> {
    fn gmm_log_density(
        z: FloatTensor<Self>,
        means: FloatTensor<Self>,
        log_vars: FloatTensor<Self>,
        log_weights: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        /// Backward state: the inputs and the responsibilities from the forward pass.
        #[derive(Debug)]
        struct GmmLogDensityBackward;

        impl<B: Backend> Backward<B, 4> for GmmLogDensityBackward {
            type State = [FloatTensor<B>; 5];

            fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [z, means, log_vars, log_weights, resp] = ops.state;
                let grad = grads.consume::<B>(&ops.node);
                let device = z.device();
                let (means, p_shape) = read::<B>(means);
                let components = Components::new(&means, &read::<B>(log_vars).0, &read::<B>(log_weights).0, p_shape[1]);
                let (z, z_shape) = read::<B>(z);
                let gradients = components.backward(&z, &read::<B>(resp).0, &read::<B>(grad).0);
                let shapes = [z_shape, p_shape.clone(), p_shape.clone(), p_shape];
                for ((parent, values), shape) in ops.parents.into_iter().zip(gradients).zip(shapes) {
                    if let Some(parent) = parent {
                        grads.register::<B>(parent.id, write::<B>(values, shape, &device));
                    }
                }
            }
        }

        let (z, z_node) = z.into_parts();
        let (means, means_node) = means.into_parts();
        let (log_vars, log_vars_node) = log_vars.into_parts();
        let (log_weights, log_weights_node) = log_weights.into_parts();
        // Compute-bound for the checkpointer: the state is kept, never recomputed.
        match GmmLogDensityBackward
            .prepare::<C>([z_node, means_node, log_vars_node, log_weights_node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (out, resp) = forward::<B>(z.clone(), means.clone(), log_vars.clone(), log_weights.clone(), true);
                let resp = resp.expect("asked for the responsibilities");
                prep.finish([z, means, log_vars, log_weights, resp], out)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward::<B>(z, means, log_vars, log_weights, false).0),
        }
    }
}

/// `log p_j(z_tj)` for every frame and source (see the module's documentation): `z` is
/// `[T, n]`, the parameters `[n, K]` (log-variances already clamped, log-weights already
/// normalised).
pub fn gmm_log_density(z: Tensor<2>, means: Tensor<2>, log_vars: Tensor<2>, log_weights: Tensor<2>) -> Tensor<2> {
    // The fused operation reads its tensors on the host: on a GPU that would be a round
    // trip every step, so there the composed operations run on the device.
    if !crate::backend::on_host(&z.device()) {
        return gmm_log_density_composed(z, means, log_vars, log_weights);
    }
    Tensor::from_dispatch(<Dispatch as GmmLogDensity>::gmm_log_density(
        z.into_dispatch(),
        means.into_dispatch(),
        log_vars.into_dispatch(),
        log_weights.into_dispatch(),
    ))
}

/// [`gmm_log_density`] written with burn's tensor operations (autodiff differentiates
/// them): what runs on a GPU, and the reference the fused operation is tested against.
pub fn gmm_log_density_composed(
    z: Tensor<2>,
    means: Tensor<2>,
    log_vars: Tensor<2>,
    log_weights: Tensor<2>,
) -> Tensor<2> {
    let [frames, sources] = z.dims();
    let log_weights = log_weights.unsqueeze_dim::<3>(0); // [1, n, K]
    let log_vars = log_vars.unsqueeze_dim::<3>(0);
    let means = means.unsqueeze_dim::<3>(0);
    let diff = z.unsqueeze_dim::<3>(2) - means; // [T, n, K]
    let log_normal = diff.square() * (-0.5) * (-log_vars.clone()).exp() - log_vars * 0.5 - 0.5 * LN_2PI;
    log_sum_exp_last(log_normal + log_weights).reshape([frames, sources])
}

/// Numerically stable `log Σ_k exp(x_k)` over the last axis of a `[T, n, K]` tensor,
/// giving `[T, n, 1]`. burn 0.22 has no built-in logsumexp.
fn log_sum_exp_last(x: Tensor<3>) -> Tensor<3> {
    // The max is detached: it only shifts the exponent, and the gradient of the shifted
    // form is the softmax either way.
    let max = x.clone().max_dim(2).detach();
    (x - max.clone()).exp().sum_dim(2).log() + max
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::tensor::{Device, Tensor, TensorData};
    use unmix_format::GmmParams;

    use crate::LatentPrior;
    use crate::prior::GmmPrior;

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn close(what: &str, ours: &[f32], reference: &[f32], tolerance: f32) {
        assert_eq!(ours.len(), reference.len(), "{what}");
        let scale = reference.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
            assert!((a - b).abs() <= tolerance * scale, "{what}[{i}]: {a} against the composed form's {b}");
        }
    }

    /// Three sources with 4, frames from the modes out to deep tails (where one component
    /// takes all the responsibility and the density is tiny), log-variances at and beyond
    /// the clamp.
    fn prior(components: usize) -> GmmParams {
        let n = 3 * components;
        GmmParams {
            components,
            logits: (0..n).map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.4).collect(),
            means: (0..n).map(|i| ((i * 5 % 9) as f32 - 4.0) * 0.6).collect(),
            log_vars: (0..n).map(|i| ((i * 3 % 7) as f32 - 3.0) * (if i == 2 { 5.0 } else { 0.7 })).collect(),
        }
    }

    fn frames(frames: usize) -> Vec<f32> {
        (0..frames * 3).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.37).collect()
    }

    const T: usize = 64;

    /// `log p` at `z = x w` for the test frames, and its gradients at `x` and at the
    /// prior's logits, means and log-variances, on `device` (autodiff), by the density the
    /// model uses there (`fused`) or by the composed form.
    fn density_and_gradients(device: &Device, components: usize, fused: bool) -> [Vec<f32>; 5] {
        let device = device.clone().autodiff();
        let w: Vec<f32> = (0..9).map(|i| (i as f32 - 4.0) * 0.31).collect();
        let gmm = GmmPrior::from_params(&prior(components), 3, &device);
        let x = Tensor::<2>::from_data(TensorData::new(frames(T), [T, 3]), &device).require_grad();
        let w = Tensor::<2>::from_data(TensorData::new(w, [3, 3]), &device).require_grad();
        let z = x.clone().matmul(w);
        let log_p = if fused { gmm.log_density(z) } else { gmm.log_density_composed(z) };
        // A weighted sum, so that every frame's gradient differs.
        let weights = Tensor::<2>::from_data(TensorData::new(frames(T), [T, 3]), &device);
        let grads = (log_p.clone() * weights).sum().backward();
        let grad = |p: &Param<Tensor<2>>| values(p.val().grad(&grads).unwrap());
        [values(log_p), values(x.grad(&grads).unwrap()), grad(&gmm.logits), grad(&gmm.means), grad(&gmm.log_vars)]
    }

    const PARTS: [&str; 5] = ["log p", "∂/∂x", "∂/∂logits", "∂/∂means", "∂/∂log_vars"];

    /// Values and all four gradients (at `z` through a matrix product before it, and at the
    /// prior's logits — through the softmax —, means and log-variances) agree with the
    /// composed form, on every compiled CPU backend, with and without autodiff.
    #[test]
    fn fused_density_matches_the_composed_form() {
        #[allow(deprecated)] // ndarray: deprecated upstream, offered because the design names it
        let devices: Vec<Device> = vec![
            #[cfg(feature = "flex")]
            Device::flex(),
            #[cfg(feature = "ndarray")]
            Device::ndarray(),
        ];
        assert!(!devices.is_empty());
        let t = T;
        for components in [1, 4] {
            for device in &devices {
                let (fused, composed) =
                    (density_and_gradients(device, components, true), density_and_gradients(device, components, false));
                for (what, (ours, reference)) in PARTS.iter().zip(fused.iter().zip(&composed)) {
                    close(what, ours, reference, 2e-5);
                    // (One component's weight is 1 whatever its logit.)
                    if components > 1 || *what != "∂/∂logits" {
                        assert!(reference.iter().any(|&v| v != 0.0), "{what}: the test reaches it");
                    }
                }
                // The clamped log-variance (index 2) gets no gradient either way.
                assert_eq!(fused[4][2], 0.0);
            }
        }
        // Without autodiff: the same values.
        let device = crate::Backend::default_compiled().unwrap().device().unwrap();
        let gmm = GmmPrior::from_params(&prior(4), 3, &device);
        let z = Tensor::<2>::from_data(TensorData::new(frames(t), [t, 3]), &device);
        close("log p, no autodiff", &values(gmm.log_density(z.clone())), &values(gmm.log_density_composed(z)), 2e-6);
    }

    /// On a GPU the model's density is the composed form, run on the device: its values
    /// and gradients are the fused CPU operation's.
    #[cfg(all(feature = "wgpu", feature = "flex"))]
    #[test]
    fn on_a_gpu_the_composed_density_matches_the_fused_cpu_operation() {
        let gpu =
            crate::Backend::Wgpu.device().expect("a wgpu adapter (software Vulkan: Debian's mesa-vulkan-drivers)");
        assert!(!crate::backend::on_host(&gpu) && crate::backend::on_host(&Device::flex()));
        for components in [1, 4] {
            let cpu = density_and_gradients(&Device::flex(), components, true);
            let on_gpu = density_and_gradients(&gpu, components, true);
            for (what, (ours, reference)) in PARTS.iter().zip(on_gpu.iter().zip(&cpu)) {
                close(what, ours, reference, 2e-5);
            }
        }
    }

    /// Far in a tail the density is `exp(−10⁵)`-small; the shifted sum keeps its log exact
    /// where `log Σ exp` taken directly would be `−∞`.
    #[test]
    fn deep_tails_stay_finite() {
        let device = crate::Backend::default_compiled().unwrap().device().unwrap();
        let gmm = GmmPrior::from_params(&prior(4), 3, &device);
        let z = Tensor::<2>::from_data(TensorData::new(vec![1e3f32, -1e3, 3e2], [1, 3]), &device);
        let ours = values(gmm.log_density(z.clone()));
        assert!(ours.iter().all(|v| v.is_finite() && *v < -1e3), "{ours:?}");
        close("tails", &ours, &values(gmm.log_density_composed(z)), 1e-6);
    }
}
