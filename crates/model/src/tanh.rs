//! `tanh` as one differentiable operation, `tanh(x) = 2σ(2x) − 1`, whose backward pass uses
//! the `σ(2x)` kept from the forward pass.
//!
//! Why: burn's CPU backends evaluate `tanh` with the C library's scalar `tanhf`, and
//! autodiff evaluates it again for the backward pass (44 % of a training run here), so the
//! model has always computed `2σ(2x) − 1`. Written with burn's tensor operations that is
//! four autodiff nodes, and autodiff's `sigmoid` backward recomputes `σ` from its input —
//! a second pass of `expf` over every hidden unit of every step, ≈ 9 % of a training run
//! (`docs/performance.md`). Here the same four forward operations run on the inner
//! backend as one node, and its backward applies exactly the operations autodiff applied
//! through the four (`×2`, `σ'` from the stored `σ`, `×2`), so values and gradients are bit
//! for bit those of the composed form (a test checks it) at one `expf` pass instead of two.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, backend_extension};
use burn::tensor::Tensor;

/// Backends that evaluate `tanh` as `2σ(2x) − 1`. The inner (non-autodiff) backends use the
/// default body; autodiff overrides it with its own backward pass.
#[backend_extension(
    Flex: cfg(feature = "flex"),
    NdArray: cfg(feature = "ndarray"),
    Cube: cfg(feature = "wgpu"),
    Autodiff
)]
pub trait SigmoidTanh: Backend {
    /// `2σ(2x) − 1`, element-wise.
    fn sigmoid_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_parts::<Self>(x).1
    }
}

/// The inner backend's two halves of the fused tanh. The default bodies are burn's own
/// operations in the order the model has always used; `flex` has one-pass loops
/// (`unmix-vecmath`) giving the same values bit for bit.
pub trait SigmoidTanhKernels: Backend {
    /// `(σ(2x), 2σ(2x) − 1)`.
    fn sigmoid_tanh_parts(x: FloatTensor<Self>) -> (FloatTensor<Self>, FloatTensor<Self>) {
        composed_parts::<Self>(x)
    }

    /// The gradient at `x` from `s = σ(2x)` and the gradient at `tanh(x)`.
    fn sigmoid_tanh_backward(s: FloatTensor<Self>, grad: FloatTensor<Self>) -> FloatTensor<Self> {
        composed_backward::<Self>(s, grad)
    }
}

/// `(σ(2x), 2σ(2x) − 1)` with the backend's own operations.
fn composed_parts<B: Backend>(x: FloatTensor<B>) -> (FloatTensor<B>, FloatTensor<B>) {
    let s = B::sigmoid(B::float_mul_scalar(x, 2.0.into()));
    let t = B::float_sub_scalar(B::float_mul_scalar(s.clone(), 2.0.into()), 1.0.into());
    (s, t)
}

/// What autodiff did through `(σ(2x)·2) − 1`: `− 1` passes the gradient on, `·2` doubles
/// it, `σ` multiplies by `σ(1 − σ)` and the inner `2x` doubles it again.
fn composed_backward<B: Backend>(s: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    let grad = B::sigmoid_backward(s, B::float_mul_scalar(grad, 2.0.into()));
    B::float_mul_scalar(grad, 2.0.into())
}

#[cfg(feature = "flex")]
mod flex {
    use burn::backend::Flex;
    use burn::backend::flex::{FlexTensor, Layout};
    use burn::tensor::{Bytes, DType};

    use super::{SigmoidTanh, SigmoidTanhKernels, composed_backward, composed_parts};
    use unmix_vecmath as vecmath;

    impl SigmoidTanh for Flex {
        /// Without autodiff nothing needs `σ(2x)`: overwrite the input when this pass owns it
        /// (the output of the layer before, as a rule).
        fn sigmoid_tanh(mut x: FlexTensor) -> FlexTensor {
            let n = x.layout().num_elements();
            if x.is_unique() && x.dtype() == DType::F32 && x.layout().contiguous_offsets() == Some((0, n)) {
                vecmath::tanh_in_place(&mut x.storage_mut::<f32>()[..n]);
                return x;
            }
            Flex::sigmoid_tanh_parts(x).1
        }
    }

    impl SigmoidTanhKernels for Flex {
        fn sigmoid_tanh_parts(x: FlexTensor) -> (FlexTensor, FlexTensor) {
            let Some(input) = x.as_slice::<f32>() else {
                return composed_parts::<Flex>(x);
            };
            let (mut s, mut t) = (vec![0.0f32; input.len()], vec![0.0f32; input.len()]);
            vecmath::sigmoid_tanh(input, &mut s, &mut t);
            let tensor = |values: Vec<f32>| {
                FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(x.layout().shape().clone()), DType::F32)
            };
            (tensor(s), tensor(t))
        }

        fn sigmoid_tanh_backward(s: FlexTensor, mut grad: FlexTensor) -> FlexTensor {
            let n = grad.layout().num_elements();
            let whole = |t: &FlexTensor| t.dtype() == DType::F32 && t.layout().contiguous_offsets() == Some((0, n));
            if s.layout().shape() == grad.layout().shape() && whole(&s) && whole(&grad) {
                // The incoming gradient is usually owned by this step alone: overwrite it.
                let s_values = &s.as_slice::<f32>().expect("contiguous f32")[..n];
                vecmath::sigmoid_tanh_backward(s_values, &mut grad.storage_mut::<f32>()[..n]);
                return grad;
            }
            composed_backward::<Flex>(s, grad)
        }
    }
}

#[cfg(feature = "ndarray")]
#[allow(deprecated)] // deprecated upstream, offered because the design names it
impl SigmoidTanh for burn::backend::NdArray {}

#[cfg(feature = "ndarray")]
#[allow(deprecated)]
impl SigmoidTanhKernels for burn::backend::NdArray {}

// On a GPU the default bodies run: burn's own operations, on the device.
#[cfg(feature = "wgpu")]
impl SigmoidTanh for burn::backend::Cube {}

#[cfg(feature = "wgpu")]
impl SigmoidTanhKernels for burn::backend::Cube {}

impl<B: SigmoidTanhKernels, C: CheckpointStrategy> SigmoidTanh for Autodiff<B, C> {
    fn sigmoid_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        /// Backward state: `σ(2x)` from the forward pass.
        #[derive(Debug)]
        struct SigmoidTanhBackward;

        impl<B: SigmoidTanhKernels> Backward<B, 1> for SigmoidTanhBackward {
            type State = FloatTensor<B>;

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let s = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| B::sigmoid_tanh_backward(s, grad));
            }
        }

        let (primitive, node) = x.into_parts();
        let (s, t) = B::sigmoid_tanh_parts(primitive);
        // Compute-bound for the checkpointer: the state is kept, never recomputed.
        match SigmoidTanhBackward.prepare::<C>([node]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(s, t),
            OpsKind::UnTracked(prep) => prep.finish(t),
        }
    }
}

/// `tanh(x)` as `2σ(2x) − 1` (see the module's documentation), on any tensor of the model.
pub fn tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as SigmoidTanh>::sigmoid_tanh(x.into_dispatch()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData, activation};

    /// The same function composed from burn's tensor operations (four autodiff nodes): the
    /// reference [`tanh`] must equal bit for bit.
    fn tanh_composed(x: Tensor<2>) -> Tensor<2> {
        activation::sigmoid(x * 2.0) * 2.0 - 1.0
    }

    fn bits(t: Tensor<2>) -> Vec<u32> {
        t.into_data().try_to_vec::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
    }

    /// Values and gradients through a small graph (a matrix product before, a weighted sum
    /// after) equal the composed form's bit for bit, on every compiled backend (on a GPU
    /// the one node runs burn's operations), over inputs from deep saturation on both
    /// sides through zero.
    #[test]
    fn fused_tanh_is_the_composed_form_bit_for_bit() {
        let frames = 64;
        let x: Vec<f32> = (0..frames * 3).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.37).collect();
        let w: Vec<f32> = (0..9).map(|i| (i as f32 - 4.0) * 0.31).collect();
        #[allow(deprecated)] // ndarray: deprecated upstream, offered because the design names it
        let devices: Vec<Device> = vec![
            #[cfg(feature = "flex")]
            Device::flex(),
            #[cfg(feature = "ndarray")]
            Device::ndarray(),
            #[cfg(feature = "wgpu")]
            crate::Backend::Wgpu.device().expect("a wgpu adapter (software Vulkan: Debian's mesa-vulkan-drivers)"),
        ];
        assert!(!devices.is_empty());
        for device in devices {
            let device = device.autodiff();
            let run = |f: fn(Tensor<2>) -> Tensor<2>| {
                let x = Tensor::<2>::from_data(TensorData::new(x.clone(), [frames, 3]), &device).require_grad();
                let w = Tensor::<2>::from_data(TensorData::new(w.clone(), [3, 3]), &device).require_grad();
                let y = f(x.clone().matmul(w.clone()));
                let loss = (y.clone() * y.clone().sin()).sum();
                let grads = loss.backward();
                (bits(y), bits(x.grad(&grads).unwrap()), bits(w.grad(&grads).unwrap()))
            };
            let (fused, composed) = (run(tanh), run(tanh_composed));
            assert_eq!(fused.0, composed.0, "values");
            assert_eq!(fused.1, composed.1, "input gradient");
            assert_eq!(fused.2, composed.2, "weight gradient");
            // Not a trivial graph: the gradients are not all zero.
            assert!(fused.1.iter().any(|&g| f32::from_bits(g) != 0.0));
        }
    }

    /// Without autodiff (inference through burn) the fused form gives the same values.
    #[test]
    fn fused_tanh_without_autodiff_gives_the_same_values() {
        let device = crate::Backend::default_compiled().unwrap().device().unwrap();
        let x = Tensor::<2>::from_data(TensorData::new(vec![-20.0f32, -1.5, -0.0, 0.0, 0.25, 9.0], [2, 3]), &device);
        assert_eq!(bits(tanh(x.clone())), bits(tanh_composed(x)));
    }
}
