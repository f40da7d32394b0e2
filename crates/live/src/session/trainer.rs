//! The trainer thread: collects the warm-up from the processor's tap, has the session's
//! [`ModelFitter`] fit the first model, hands its encoder to the processor, and with
//! refits keeps fitting on the latest warm-up-long segment, each model continuing the
//! last. Everything here allocates and waits; none of it runs on the audio path.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use unmix_core::Recording;
use unmix_format::ModelFile;
use unmix_stream::RingReader;

use super::processor::Encoder;
use super::{EndReason, LiveConfig, ModelState, Shared};
use crate::fitter::{FitError, FittedModel, ModelFitter};

/// Everything the trainer thread owns.
pub(super) struct Trainer {
    pub(super) config: LiveConfig,
    /// `None` when the session fits nothing (a model given, no refits).
    pub(super) fitter: Option<Box<dyn ModelFitter>>,
    pub(super) tap: RingReader,
    pub(super) sample_rate_hz: u32,
    /// New encoders to the processor (one slot).
    pub(super) models: Sender<Encoder>,
    /// Old encoders back from the processor, to be freed here.
    pub(super) retired: Receiver<Encoder>,
    pub(super) shared: Arc<Shared>,
}

impl Trainer {
    /// Appends `frames` frames from the tap to `buffer`, unless the session ends first;
    /// frees retired encoders while it waits. Returns whether it got them all.
    fn collect(&mut self, buffer: &mut Vec<f32>, frames: usize) -> bool {
        let m = self.config.params().input.channels;
        let mut block = vec![0.0f32; 4096 * m];
        let target = buffer.len() + frames * m;
        while buffer.len() < target {
            while self.retired.try_recv().is_ok() {}
            let want = ((target - buffer.len()) / m).min(4096);
            let got = self.tap.pop(&mut block[..want * m]);
            buffer.extend_from_slice(&block[..got * m]);
            if got == 0 {
                if self.shared.stop.load(Ordering::Acquire) || self.shared.end() != EndReason::Running {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        true
    }

    /// A model of `segment` continuing `previous`, reported in the shared state (the
    /// fitter's error and the model state on failure, the alignment on success); `None`
    /// when the fit failed or was cancelled.
    fn fit(&mut self, segment: &[f32], previous: Option<&ModelFile>, state: ModelState) -> Option<ModelFile> {
        let fitter = self.fitter.as_mut()?;
        let params = self.config.params();
        self.shared.set_state(state);
        let recording =
            Recording::from_interleaved(self.sample_rate_hz, params.input.channels, segment.to_vec()).ok()?;
        match fitter.fit(&recording, previous, &self.shared.cancel_training) {
            Ok(FittedModel { mut model, alignment }) => {
                // Saved with `--save-model`, the model opens the same device channels next time.
                model.header.picked_channels =
                    params.input.pick.as_ref().map(|p| unmix_io::ChannelSelection::from_indices(p).to_string());
                if previous.is_some()
                    && let Ok(mut slot) = self.shared.last_alignment.lock()
                {
                    *slot = alignment;
                }
                Some(model)
            }
            // Cancelled at shutdown: not a failure.
            Err(FitError::Cancelled) => None,
            Err(FitError::Failed(e)) => {
                if let Ok(mut slot) = self.shared.fit_error.lock() {
                    *slot = Some(e.to_string());
                }
                self.shared.set_state(ModelState::Failed);
                None
            }
        }
    }

    /// Hands `model`'s encoder to the processor.
    fn swap_in(&mut self, model: &ModelFile) -> Handed {
        let params = self.config.params();
        let encoder = match Encoder::new(model, params.scores.is_some(), params.kernel) {
            Ok(encoder) => encoder,
            Err(e) => {
                // Only a kernel this processor lacks fails here, and the configuration's
                // check refused that already.
                if let Ok(mut slot) = self.shared.fit_error.lock() {
                    *slot = Some(e.to_string());
                }
                self.shared.set_state(ModelState::Failed);
                return Handed::NotBuilt;
            }
        };
        if self.models.send(encoder).is_err() {
            return Handed::ProcessorGone;
        }
        self.shared.set_state(ModelState::Separating);
        Handed::Swapped
    }
}

/// What became of a model handed to the processor.
enum Handed {
    /// Its encoder is on its way in.
    Swapped,
    /// Its encoder could not be built (the old one keeps running).
    NotBuilt,
    /// The pipeline has ended.
    ProcessorGone,
}

/// The trainer thread's body: warm-up fit, then refits continuing their predecessor.
/// Returns the model in use at the end.
pub(super) fn trainer_loop(mut trainer: Trainer) -> Option<ModelFile> {
    let params = trainer.config.params().clone();
    let mut current = params.model.clone();
    if trainer.fitter.is_none() {
        return current;
    }
    let (m, rate) = (params.input.channels, trainer.sample_rate_hz);
    let warm_frames = ((params.warmup_s * f64::from(rate)).round() as usize).max(1);
    let mut segment: Vec<f32> = Vec::with_capacity(warm_frames * m);
    if current.is_none() {
        if !trainer.collect(&mut segment, warm_frames) {
            return None;
        }
        let model = trainer.fit(&segment, None, ModelState::Training)?;
        match trainer.swap_in(&model) {
            Handed::Swapped => current = Some(model),
            Handed::NotBuilt => return None,
            Handed::ProcessorGone => return Some(model),
        }
    }
    let Some(refit_s) = params.refit_s else {
        // Without refits the processor stops feeding the tap at the first swap.
        return current;
    };
    let refit_frames = ((refit_s * f64::from(rate)).round() as usize).max(1);
    loop {
        // The latest `warm_frames` frames: drop the oldest, append `refit_frames` new ones.
        let mut fresh = Vec::with_capacity(refit_frames * m);
        if !trainer.collect(&mut fresh, refit_frames) {
            return current;
        }
        segment.extend_from_slice(&fresh);
        let excess = segment.len().saturating_sub(warm_frames * m);
        segment.drain(..excess);
        let Some(model) = trainer.fit(&segment, current.as_ref(), ModelState::Refitting) else { continue };
        match trainer.swap_in(&model) {
            Handed::Swapped => current = Some(model),
            Handed::NotBuilt => {}
            Handed::ProcessorGone => return Some(model),
        }
    }
}
