//! One start's full-batch Adam on the exact NLL: the standard update (β₁ 0.9, β₂ 0.999,
//! ε 10⁻⁸) with bias correction, resumable so that the screening can stop a start and
//! let it go on later with its moments intact.

use std::sync::atomic::{AtomicUsize, Ordering};

use unmix_core::CancelToken;

use super::gradient::{Scratch, nll_and_gradient};
use super::{ChainConfig, Frames, Params, Warp};

/// One start's full-batch Adam, resumable across the screening.
pub(crate) struct Descent {
    pub(crate) params: Params,
    /// Adam's moments.
    m: Vec<f64>,
    v: Vec<f64>,
    /// Steps taken.
    step: usize,
    /// The training NLL at the start of the last tenth of `ChainConfig::steps`, and the last.
    at_mark: f64,
    last: f64,
}

impl Descent {
    pub(crate) fn new(params: Params) -> Self {
        let len = params.0.len();
        Self { params, m: vec![0.0; len], v: vec![0.0; len], step: 0, at_mark: f64::NAN, last: f64::NAN }
    }

    /// Adam up to step `until`, counting steps into `steps_done`; `None` if the NLL stopped
    /// being finite or `cancel` was set.
    pub(crate) fn run(
        &mut self,
        data: &Frames,
        warps: &[Warp],
        config: &ChainConfig,
        until: usize,
        cancel: Option<&CancelToken>,
        steps_done: &AtomicUsize,
    ) -> Option<()> {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        let mut grad = vec![0.0; self.params.0.len()];
        let mut scratch = Scratch::default();
        let mark = (config.steps - config.steps.div_ceil(10)).max(1);
        let mut uncounted = 0;
        while self.step < until {
            self.step += 1;
            let step = self.step;
            uncounted += 1;
            if step.is_multiple_of(32) {
                steps_done.fetch_add(std::mem::take(&mut uncounted), Ordering::Relaxed);
                if cancel.is_some_and(CancelToken::is_cancelled) {
                    return None;
                }
            }
            let nll = nll_and_gradient(data, warps, &self.params, config.components, &mut grad, &mut scratch)?;
            if step == mark {
                self.at_mark = nll;
            }
            self.last = nll;
            let (c1, c2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
            for (((p, m), v), g) in self.params.0.iter_mut().zip(&mut self.m).zip(&mut self.v).zip(&grad) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *p -= config.learning_rate * (*m / c1) / ((*v / c2).sqrt() + eps);
            }
        }
        steps_done.fetch_add(uncounted, Ordering::Relaxed);
        Some(())
    }

    /// Relative change of the training NLL over the last tenth of the steps.
    pub(crate) fn last_change(&self) -> f64 {
        ((self.at_mark - self.last) / self.last.abs().max(1e-12)).abs()
    }
}
