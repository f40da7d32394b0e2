//! The trainer thread: collects the warm-up from the processor's tap, has the session's
//! [`ModelFitter`] fit the first model, hands its encoder to the processor, and with
//! refits keeps fitting on the latest warm-up-long segment, each model continuing the
//! last; in a room ([`LiveDomain::Room`]) it fits the room's model of the warm-up
//! itself and hands it over once. Everything here allocates and waits; none of it runs
//! on the audio path.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use unmix_core::Recording;
use unmix_core::limits::MAX_BUFFERED_SAMPLES;
use unmix_format::{AnyModel, ModelFile, RoomModel};
use unmix_stream::RingReader;

use unmix_freq::{OnlineConfig, Watch, room_handover, sounding_from};

use super::processor::Encoder;
use super::{EndReason, LiveConfig, LiveDomain, ModelState, Shared};
use crate::fitter::{FitError, FittedModel, ModelFitter};

/// How long the tap stays empty after the input has ended before the trainer takes the
/// processor to be done with the input ring: it takes a block from the ring every few
/// milliseconds while it has any.
const DRAINED: Duration = Duration::from_millis(250);

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
    /// frees retired encoders while it waits. Returns whether it got them all. With
    /// `sound_only`, frames of digital silence are passed over and not counted.
    ///
    /// Once the input has ended the processor may still be working through the input
    /// ring (a file device delivers faster than real time): the tap is given up only
    /// after it has stayed empty for [`DRAINED`].
    fn collect(&mut self, buffer: &mut Vec<f32>, frames: usize, sound_only: bool) -> bool {
        let m = self.config.params().input.channels;
        let mut block = vec![0.0f32; 4096 * m];
        let target = buffer.len() + frames * m;
        let mut empty_since: Option<Instant> = None;
        while buffer.len() < target {
            while self.retired.try_recv().is_ok() {}
            let want = ((target - buffer.len()) / m).min(4096);
            let got = self.tap.pop(&mut block[..want * m]);
            if sound_only {
                block[..got * m].chunks_exact(m).filter(|f| !is_digital_silence(f)).for_each(|f| buffer.extend(f));
            } else {
                buffer.extend_from_slice(&block[..got * m]);
            }
            if got > 0 {
                empty_since = None;
                continue;
            }
            if self.shared.stop.load(Ordering::Acquire) {
                return false;
            }
            if self.shared.end() != EndReason::Running
                && empty_since.get_or_insert_with(Instant::now).elapsed() >= DRAINED
            {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// A model of `segment`'s sound (its frames of digital silence left out) continuing
    /// `previous`, reported in the shared state (the fitter's error and the model state on
    /// failure, the alignment on success); `None` when the fit failed or was cancelled, or
    /// the segment is all silence.
    fn fit(&mut self, segment: &[f32], previous: Option<&ModelFile>, state: ModelState) -> Option<ModelFile> {
        let fitter = self.fitter.as_mut()?;
        let params = self.config.params();
        let m = params.input.channels;
        let sound: Vec<f32> = segment.chunks_exact(m).filter(|f| !is_digital_silence(f)).flatten().copied().collect();
        if sound.is_empty() {
            return None;
        }
        self.shared.set_state(state);
        let recording = Recording::from_interleaved(self.sample_rate_hz, m, sound).ok()?;
        match fitter.fit(&recording, previous, &self.shared.cancel_training) {
            Ok(FittedModel { mut model, alignment }) => {
                // Saved with `--save-model`, the model opens the same device channels next time.
                model.header.picked_channels = picked_channels(params);
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

impl Trainer {
    /// [`LiveDomain::Room`]'s fit: a room's model of the first `warmup_s` seconds in
    /// which every channel sounds, its sources ordered to continue the online
    /// separator's outputs ([`room_handover`]), handed to the processor; then waits for
    /// the online separator to come back and frees it here. Returns the room's model
    /// once fitted, as a file in the order of the session's outputs.
    fn room(&mut self, online: OnlineConfig) -> Option<RoomModel> {
        let params = self.config.params().clone();
        let (m, n, rate) = (params.input.channels, params.sources, self.sample_rate_hz);
        let warm_frames = ((params.warmup_s * f64::from(rate)).round() as usize).max(1);
        // Everything since the session's start (the online separator is replayed on it);
        // the fit takes the warm-up from the first frame by which every channel has
        // carried a sample: ports connected one by one, or a device opened before anyone
        // speaks, are not the room.
        let mut input = Vec::with_capacity(warm_frames * m);
        let mut sounded = vec![false; m];
        let mut sounding_at = None;
        loop {
            let from = input.len();
            if !self.collect(&mut input, warm_frames.min(rate as usize / 4).max(1), false) {
                return None;
            }
            if sounding_at.is_none() {
                sounding_at = sounding_from(&input[from..], &mut sounded).map(|k| from / m + k);
            }
            if sounding_at.is_some_and(|at| input.len() / m >= at + warm_frames) {
                break;
            }
            if sounding_at.is_none() && input.len() + warm_frames * m > MAX_BUFFERED_SAMPLES {
                let silent: Vec<String> =
                    sounded.iter().enumerate().filter(|(_, l)| !**l).map(|(c, _)| (c + 1).to_string()).collect();
                if let Ok(mut slot) = self.shared.fit_error.lock() {
                    *slot = Some(format!(
                        "no room's model: channel {} silent for {} s; the online separator carries on alone",
                        silent.join(", "),
                        input.len() / m / rate as usize
                    ));
                }
                return None;
            }
        }
        self.shared.set_state(ModelState::Refitting);
        let watch = Watch::cancel(&self.shared.cancel_training);
        let mut handover = match room_handover(&input, warm_frames, m, n, rate, online, watch) {
            Ok(handover) => handover,
            Err(e) => {
                // The online separator keeps running: a failed fit is reported, not fatal.
                if !matches!(e, unmix_freq::Error::Cancelled)
                    && let Ok(mut slot) = self.shared.fit_error.lock()
                {
                    *slot = Some(format!("the room's model of the first {} s: {e}", params.warmup_s));
                }
                self.shared.set_state(ModelState::Separating);
                return None;
            }
        };
        if let Ok(mut slot) = self.shared.last_alignment.lock() {
            slot.clone_from(&handover.alignment);
        }
        // Saved with `--save-model`, the model opens the same device channels next time.
        handover.model.header.picked_channels = picked_channels(&params);
        self.shared.set_state(ModelState::Separating);
        let model = Some(handover.model);
        if self.models.send(Encoder::Online(Box::new(handover.separator))).is_err() {
            return model;
        }
        // The online separator comes back once swapped out: freed here, not on the audio
        // path. The processor may still be working through the input ring after the
        // input ended, so only its end (its sender gone) or the session's stops the wait.
        loop {
            match self.retired.recv_timeout(Duration::from_millis(20)) {
                Ok(old) => {
                    drop(old);
                    return model;
                }
                Err(RecvTimeoutError::Disconnected) => return model,
                Err(RecvTimeoutError::Timeout) if self.shared.stop.load(Ordering::Acquire) => return model,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }
}

/// The device channels a session's model reads, as its file records them (`None`: the
/// first ones).
fn picked_channels(params: &super::LiveParams) -> Option<String> {
    params.input.pick.as_ref().map(|p| unmix_io::ChannelSelection::from_indices(p).to_string())
}

/// Whether a frame is digital silence: every channel exactly zero.
fn is_digital_silence(frame: &[f32]) -> bool {
    frame.iter().all(|&v| v == 0.0)
}

/// The trainer thread's body: warm-up fit, then refits continuing their predecessor.
/// Returns the model in use at the end (in a room, the room's model fitted).
pub(super) fn trainer_loop(mut trainer: Trainer) -> Option<AnyModel> {
    let params = trainer.config.params().clone();
    if let LiveDomain::Room(online) = params.domain {
        return trainer.room(online).map(|model| AnyModel::Room(Box::new(model)));
    }
    time_domain(trainer).map(|model| AnyModel::Time(Box::new(model)))
}

/// [`trainer_loop`] in the time domain.
fn time_domain(mut trainer: Trainer) -> Option<ModelFile> {
    let params = trainer.config.params().clone();
    let mut current = params.model.clone();
    if trainer.fitter.is_none() {
        return current;
    }
    let (m, rate) = (params.input.channels, trainer.sample_rate_hz);
    let warm_frames = ((params.warmup_s * f64::from(rate)).round() as usize).max(1);
    let mut segment: Vec<f32> = Vec::with_capacity(warm_frames * m);
    if current.is_none() {
        // The first warm-up's worth of sound: frames of digital silence (an input not yet
        // connected, a muted channel strip) say nothing of the mixing, and the fit's
        // densities would narrow onto their exact zeros (a JACK session whose player
        // connected late fitted 0.97 |corr| instead of 0.9999).
        if !trainer.collect(&mut segment, warm_frames, true) {
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
        if !trainer.collect(&mut fresh, refit_frames, false) {
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
