//! The inference stage of a live session: the current encoder, silence until there is
//! one, swapped for a new one between two blocks, and a tap of the input for the trainer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use unmix_core::{BoxError, Processor, SCORE_CHANNELS};
use unmix_format::ModelFile;
use unmix_freq::OnlineIva;
use unmix_infer::{Kernel, ScoredSeparator, Separator};
use unmix_stream::RingWriter;

use super::Shared;

/// What the processor separates with: a model's encoder, plain or scoring every frame
/// too (`--scores`), or the online frequency-domain separator that adapts as it goes.
pub(super) enum Encoder {
    Plain(Separator),
    Scored(ScoredSeparator),
    Online(Box<OnlineIva>),
}

impl Encoder {
    /// The encoder of `model` on `kernel` (allocates: built off the audio path).
    pub(super) fn new(model: &ModelFile, scored: bool, kernel: Kernel) -> Result<Self, unmix_infer::Error> {
        Ok(if scored {
            Self::Scored(ScoredSeparator::with_kernel(model, kernel)?)
        } else {
            Self::Plain(Separator::with_kernel(model, kernel)?)
        })
    }

    fn process(&mut self, input: &[f32], output: &mut [f32]) -> Result<(), unmix_infer::Error> {
        match self {
            Self::Plain(separator) => separator.process(input, output),
            Self::Scored(separator) => separator.process(input, output),
            Self::Online(separator) => {
                separator.process(input, output);
                Ok(())
            }
        }
    }
}

/// The inference stage: the current encoder (silence until there is one), swapped for a
/// new one between blocks, and a tap of the input for the trainer.
///
/// # Real-time safety
/// `process` receives a new encoder with `try_recv` on a one-slot channel, hands the old
/// one back with `try_send` (freed on the trainer thread), copies the input into the tap
/// with `push_or_drop`, and runs [`Separator::process`](unmix_infer::Separator::process)
/// or [`OnlineIva::process`]: no allocation, lock or wait.
///
/// With `scored`, every output frame carries the two monitoring scores after the sources
/// (NaN, "no score", until the first model).
pub(super) struct LiveProcessor {
    pub(super) m: usize,
    pub(super) n: usize,
    pub(super) scored: bool,
    pub(super) current: Option<Encoder>,
    pub(super) models: Receiver<Encoder>,
    pub(super) retired: Sender<Encoder>,
    pub(super) tap: Option<RingWriter>,
    /// Keep feeding the tap after the first model (only `--refit` reads it then).
    pub(super) tap_after_first_model: bool,
    pub(super) tap_active: bool,
    pub(super) frames_done: u64,
    pub(super) shared: Arc<Shared>,
}

impl Processor for LiveProcessor {
    fn input_channels(&self) -> usize {
        self.m
    }

    fn output_channels(&self) -> usize {
        self.n + if self.scored { SCORE_CHANNELS } else { 0 }
    }

    fn process(&mut self, input: &[f32], output: &mut [f32]) -> std::result::Result<(), BoxError> {
        if let Ok(mut next) = self.models.try_recv() {
            // A room's model taking over from the online separator (or a room's model
            // before it) carries on its stream: no gap, no click.
            if let (Encoder::Online(next), Some(Encoder::Online(current))) = (&mut next, &self.current) {
                next.continue_from(current);
                self.shared.room_model_frame.store(self.frames_done, Ordering::Relaxed);
            }
            if let Some(old) = self.current.replace(next) {
                // The trainer frees it; if its slot is full the old encoder is dropped here.
                if let Err(TrySendError::Full(old) | TrySendError::Disconnected(old)) = self.retired.try_send(old) {
                    drop(old);
                }
            } else {
                self.shared.first_model_frame.store(self.frames_done, Ordering::Relaxed);
            }
            if !self.tap_after_first_model {
                // Without `--refit` nobody reads the tap any more: stop copying into it
                // (the ring itself is freed with the session, not on this thread).
                self.tap_active = false;
            }
            self.shared.swaps.fetch_add(1, Ordering::Relaxed);
        }
        if let (Some(tap), true) = (&mut self.tap, self.tap_active) {
            let frames = input.len() / self.m;
            let pushed = tap.push_or_drop(input);
            self.shared.tap_dropped.fetch_add((frames - pushed) as u64, Ordering::Relaxed);
        }
        match &mut self.current {
            Some(encoder) => encoder.process(input, output)?,
            None if self.scored => {
                let n = self.n;
                for frame in output.chunks_exact_mut(n + SCORE_CHANNELS) {
                    frame[..n].fill(0.0);
                    frame[n..].fill(f32::NAN);
                }
            }
            None => output.fill(0.0),
        }
        self.frames_done += (input.len() / self.m) as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use unmix_stream::FrameRing;
    use unmix_synth::{MixKind, SynthConfig, generate};

    use super::*;
    use crate::session::tests::{offline_fit, quick, shared};

    /// A processor of `m` channels into `n` sources running `current`, tapping into `tap`
    /// (kept on after the first model), with the channel that sends it encoders and the
    /// one it hands old encoders back on.
    fn processor(
        (m, n): (usize, usize),
        scored: bool,
        current: Option<Encoder>,
        tap: Option<RingWriter>,
    ) -> (LiveProcessor, Sender<Encoder>, Receiver<Encoder>) {
        let (models_tx, models_rx) = crossbeam_channel::bounded(1);
        let (retired_tx, retired_rx) = crossbeam_channel::bounded(2);
        let tapped = tap.is_some();
        let processor = LiveProcessor {
            m,
            n,
            scored,
            current,
            models: models_rx,
            retired: retired_tx,
            tap,
            tap_after_first_model: tapped,
            tap_active: tapped,
            frames_done: 0,
            shared: shared(),
        };
        (processor, models_tx, retired_rx)
    }

    /// Before the first model a scoring processor outputs silent sources and NaN scores.
    #[test]
    fn scores_before_the_first_model_are_nan() {
        let (mut processor, _models, _retired) = processor((3, 2), true, None, None);
        let width = 2 + SCORE_CHANNELS;
        assert_eq!(processor.output_channels(), width);
        let mut out = vec![1.0f32; 10 * width];
        processor.process(&[0.5; 10 * 3], &mut out).unwrap();
        for frame in out.chunks_exact(width) {
            assert_eq!(&frame[..2], &[0.0, 0.0]);
            assert!(frame[2..].iter().all(|v| v.is_nan()), "{frame:?}");
        }
    }

    /// The online separator swapped for a room's separator mid-stream: nothing
    /// allocated or freed on the audio path (the online one goes back to be freed), the
    /// stream continued (the first block after the swap is not silence), the frame of
    /// the hand-over counted.
    #[test]
    fn a_rooms_separator_takes_over_without_allocating() {
        use unmix_freq::{IvaConfig, MnmfConfig, OnlineConfig, SourcePrior, fit_room_model};
        use unmix_synth::room::{RoomConfig, simulate_room};
        let rate = 16_000;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/speech");
        let dry: Vec<Vec<f32>> = (1..=2)
            .map(|k| unmix_io::read_wav(&dir.join(format!("talker{k}.wav"))).unwrap().channel(0)[..2 * rate].to_vec())
            .collect();
        let mixture = simulate_room(&RoomConfig::drawn(2, 2, 2, 0.05, 0.2, rate as u32), &dry).unwrap().mixture;
        let online = OnlineConfig::DEFAULT;
        let iva = IvaConfig { prior: SourcePrior::LowRank { bases: 2 }, iterations: 10, seed: 1 };
        let mnmf = MnmfConfig { iterations: 10, starts: 1, ..MnmfConfig::default() };
        let (_, model) = fit_room_model(&mixture, 2, online.stft, &iva, &mnmf, Default::default()).unwrap();
        let room = OnlineIva::spatial(2, 2, online, &model.spatial_filter()).unwrap();

        let online_now = Encoder::Online(Box::new(OnlineIva::new(2, 2, online).unwrap()));
        let (mut processor, models_tx, retired_rx) = processor((2, 2), false, Some(online_now), None);
        let counters = processor.shared.clone();
        let block = 256;
        let swap_at = 80 * block;
        let mut output = vec![0.0f32; mixture.interleaved().len()];
        let mut pending = Some(Encoder::Online(Box::new(room)));
        let before = unmix_test_support::allocations();
        for (k, (x, y)) in mixture.interleaved().chunks(block * 2).zip(output.chunks_mut(block * 2)).enumerate() {
            if k * block == swap_at {
                models_tx.try_send(pending.take().unwrap()).unwrap();
            }
            processor.process(x, y).unwrap();
        }
        assert_eq!(unmix_test_support::allocations() - before, 0, "processing and the hand-over allocated");
        assert_eq!(counters.room_model_frame.load(Ordering::Relaxed), swap_at as u64);
        assert!(matches!(retired_rx.try_recv(), Ok(Encoder::Online(_))), "the online separator went back");
        assert!(output[swap_at * 2..(swap_at + block) * 2].iter().any(|v| *v != 0.0), "a gap at the hand-over");
    }

    /// A refit trained from another seed, its outputs then permuted and flipped (a model
    /// whose latents came out in another order), is aligned to its predecessor and swapped
    /// in mid-stream: no frame is lost, frames before the swap are the old model's, frames
    /// after are the new one's, and each channel stays the same source with the same sign.
    #[test]
    fn hot_swap_of_an_aligned_refit_keeps_every_frame_and_the_channel_order() {
        let data = generate(&SynthConfig { frames: 6000, ..SynthConfig::paper(MixKind::Linear, 6) }).unwrap();
        let old = offline_fit(&data.mixture, quick(1));
        let mut new = offline_fit(&data.mixture, quick(77));
        new.relabel_sources(&[1, 2, 0], &[-1.0, 1.0, -1.0]).unwrap();
        let corr = unmix_separate::align_to(&old, &mut new, &data.mixture, Kernel::best()).unwrap();
        assert!(corr.iter().all(|&c| c > 0.99), "{corr:?}");

        let (tap, mut tap_reader) = FrameRing::new(3, 8192);
        let (mut processor, models_tx, retired_rx) = processor((3, 3), false, None, Some(tap));
        let counters = processor.shared.clone();
        let input = data.mixture.interleaved();
        let block = 256;
        let (first_at, swap_at) = (3 * block, 12 * block);
        let first = Encoder::new(&old, false, Kernel::best()).unwrap();
        let second = Encoder::new(&new, false, Kernel::best()).unwrap();
        let mut output = vec![0.0f32; input.len()];
        let mut pending = [Some(first), Some(second)];
        let before = unmix_test_support::allocations();
        for (k, (x, y)) in input.chunks(block * 3).zip(output.chunks_mut(block * 3)).enumerate() {
            if k * block == first_at {
                models_tx.try_send(pending[0].take().unwrap()).unwrap();
            }
            if k * block == swap_at {
                models_tx.try_send(pending[1].take().unwrap()).unwrap();
            }
            processor.process(x, y).unwrap();
            let mut drain = [0.0f32; 256 * 3];
            while tap_reader.pop(&mut drain) > 0 {}
        }
        assert_eq!(unmix_test_support::allocations() - before, 0, "processing and swapping allocated");
        assert_eq!(counters.swaps.load(Ordering::Relaxed), 2);
        assert_eq!(counters.first_model_frame.load(Ordering::Relaxed), first_at as u64);
        assert!(retired_rx.try_recv().is_ok(), "the old encoder went back to be freed");
        assert_eq!(counters.tap_dropped.load(Ordering::Relaxed), 0);

        let want_old = unmix_separate::apply(&old, &data.mixture, Kernel::best()).unwrap();
        let want_new = unmix_separate::apply(&new, &data.mixture, Kernel::best()).unwrap();
        let frames = data.mixture.frames();
        for t in 0..frames {
            for j in 0..3 {
                let got = output[t * 3 + j];
                let want = if t < first_at {
                    0.0
                } else if t < swap_at {
                    want_old.interleaved()[t * 3 + j]
                } else {
                    want_new.interleaved()[t * 3 + j]
                };
                assert_eq!(got, want, "frame {t}, source {j}");
            }
        }
        // Across the swap each channel carries the same source with the same sign.
        for j in 0..3 {
            let a: Vec<f32> = want_old.channel(j)[swap_at..].to_vec();
            let b: Vec<f32> = (swap_at..frames).map(|t| output[t * 3 + j]).collect();
            let r = unmix_dsp::metrics::pearson(&a, &b);
            assert!(r > 0.99, "source {j}: corr {r} between the old and new model after the swap");
        }
    }
}
