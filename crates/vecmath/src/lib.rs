//! Vectorised elementary functions, and the one run-time choice of vector unit that the
//! trainer (`unmix-model`), the exact-likelihood models (`unmix-likelihood`) and the
//! inference engine (`unmix-infer`) share.
//!
//! - [`VectorUnit`]: what the processor offers (AVX-512, AVX2 with FMA, or neither),
//!   detected once; every loop here, and every kernel of the inference engine, is chosen
//!   by it, so one processor always takes one path everywhere.
//! - [`exp_non_positive_in_place`]: glibc's `expf` algorithm written to vectorise, bit for
//!   bit the C library's on x86-64 (the GMM prior's log-sum-exp).
//! - [`ln_in_place`]: a branch-free `f64` `ln` within 2 ulp of the C library's.
//! - [`sigmoid_tanh`], [`sigmoid_tanh_backward`], [`tanh_in_place`]: the trainer's `tanh`
//!   as `2σ(2x) − 1` in one pass, bit for bit burn-flex's composed form.
//! - [`fast_tanh`]: the inference engine's rational `tanh` (absolute error ≤ 5·10⁻⁷).
//! - [`vectorised`]: runs a closure compiled for the widest vector unit there is.
//!
//! Why by hand: burn's CPU backends and the C library evaluate these one value at a time
//! behind branches that keep loops from vectorising; in training they were a quarter to a
//! half of the run (`docs/performance.md`).

// The loops run under `#[target_feature]` after a run-time check of the processor.
#![allow(unsafe_code)]

mod dispatch;
mod exp;
mod ln;
mod tanh;

pub use dispatch::{VectorUnit, vectorised};
pub use exp::exp_non_positive_in_place;
pub use ln::ln_in_place;
pub use tanh::{TANH_MAX_ABS_ERROR, fast_tanh, sigmoid_tanh, sigmoid_tanh_backward, tanh_in_place};
