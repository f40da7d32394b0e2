//! Whole sessions on a real-time paced feeder of the capture path (no sound card): the
//! warm-up, swaps and refits, monitoring, alerts, and the ways a session ends; and the
//! helpers the processor's tests share.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use unmix_core::{CancelToken, Recording};
use unmix_format::ModelFile;
use unmix_infer::{Kernel, SCORE_CHANNELS, ScoredSeparator};
use unmix_likelihood::chain::{ChainConfig, ChainShape};
use unmix_monitor::score_columns;
use unmix_separate::{ConsensusConfig, ModelChoice, SeparateConfig, SeparateParams, SourceCount};
use unmix_stream::FrameRing;
use unmix_synth::{MixKind, SynthConfig, generate};

use super::*;
use crate::fitter::{FitError, FittedModel, ModelFitter};
use crate::input::{Capture, InputMeter, InputSpec, LiveInput, Negotiated};

/// Plays `mixture` into a [`Capture`] in real time (blocks of 10 ms), like a device.
struct PacedFeeder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for PacedFeeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn paced_input(mixture: &Recording, stop_after: u64) -> LiveInput {
    let (m, rate) = (mixture.channels(), mixture.sample_rate_hz());
    let (writer, reader) = FrameRing::new(m, rate as usize * 2);
    let meter = Arc::new(InputMeter::new(m));
    let mut callback = Capture {
        writer,
        meter: meter.clone(),
        channels: m,
        pick: None,
        device_channels: m,
        stop_after: Some(stop_after),
    }
    .into_fn::<f32>();
    let samples = mixture.interleaved().to_vec();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let block = (rate / 100) as usize;
    let thread = std::thread::spawn(move || {
        let start = Instant::now();
        for (k, chunk) in samples.chunks(block * m).enumerate() {
            if flag.load(Ordering::Acquire) {
                return;
            }
            let due = start + Duration::from_secs_f64((k * block) as f64 / f64::from(rate));
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            callback(chunk);
        }
    });
    let (_tx, error) = crossbeam_channel::bounded(1);
    LiveInput {
        keep_alive: Box::new(PacedFeeder { stop, thread: Some(thread) }),
        reader,
        meter,
        negotiated: Negotiated {
            device: "paced-test-feeder".into(),
            channels: m,
            device_channels: m,
            picked: None,
            sample_rate_hz: rate,
            sample_format: "f32".into(),
            buffer_frames: Some(block as u32),
            notes: Vec::new(),
        },
        error,
    }
}

/// An input that stops delivering (a device that died without an error) ends the
/// session cleanly after the stall timeout, with every captured frame recorded.
#[test]
fn a_silent_device_ends_the_session_cleanly() {
    let data = generate(&SynthConfig { frames: 4000, sample_rate_hz: 8000, ..SynthConfig::paper(MixKind::Linear, 2) })
        .unwrap();
    let model = offline_fit(&data.mixture, quick(3));
    let dir = std::env::temp_dir().join(format!("unmix-live-stall-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let record = dir.join("sources.wav");
    let config =
        LiveParams { stall_timeout: Duration::from_millis(300), ..paced_config(&record, 1.0, Some(model.clone())) };
    // The feeder plays half a second, then nothing: no error, no end of stream.
    let input = paced_input(&data.mixture, u64::MAX);
    let session = LiveSession::start_with(config.check().unwrap(), fitter(quick(0)), input, None).unwrap();
    let report = session.wait().unwrap();
    assert_eq!(report.end, EndReason::Stalled);
    assert_eq!(report.status.frames_out, 4000);
    let recorded = unmix_io::read_wav(&record).unwrap();
    assert_eq!(recorded, unmix_separate::apply(&model, &data.mixture, Kernel::best()).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A session that ends while its warm-up fit is running cancels the fit and joins the
/// trainer: no model, no error, the recording finalised (all silence: no model yet).
#[test]
fn ending_during_the_warm_up_fit_cancels_it() {
    let data =
        generate(&SynthConfig { frames: 12_000, sample_rate_hz: 8000, ..SynthConfig::paper(MixKind::Linear, 2) })
            .unwrap();
    let dir = std::env::temp_dir().join(format!("unmix-live-cancel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let record = dir.join("sources.wav");
    let mut separate = quick(0);
    separate.recipe.max_epochs = 400;
    separate.recipe.min_epochs = 400;
    let config = paced_config(&record, 1.0, None);
    let session =
        LiveSession::start_with(config.check().unwrap(), fitter(separate), paced_input(&data.mixture, 12_000), None)
            .unwrap();
    let report = session.wait().unwrap();
    assert_eq!(report.end, EndReason::Duration);
    assert!(report.model.is_none() && report.fit_error.is_none(), "{:?}", report.fit_error);
    assert_eq!(report.first_model_frame, None);
    let recorded = unmix_io::read_wav(&record).unwrap();
    assert_eq!(recorded.frames(), 12_000);
    assert!(recorded.interleaved().iter().all(|&v| v == 0.0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A whole session on a real-time paced input: silence during the warm-up, the first
/// model swapped in while audio flows, refits aligned to their predecessors, and the
/// recording (finalised at `--duration`) separating the sources from the first model
/// on — one score over all models, so a refit that changed the channel order or a sign
/// would fail it.
#[test]
fn paced_session_warms_up_separates_and_refits_in_order() {
    // The session runs until a refit has been swapped in (plus a second of audio from
    // it), then is stopped, as Ctrl-C would: how long the fits take depends on the
    // machine and its load (a fixed 24 s session once ended mid-refit in a clean-clone
    // CI run on the slowest machine here, with the other tests beside it). 90 s of
    // input is the limit; a session that reaches it fails on the swap count.
    let rate = 8000;
    let seconds = 90;
    let data = generate(&SynthConfig {
        frames: rate * seconds,
        sample_rate_hz: rate as u32,
        ..SynthConfig::paper(MixKind::Linear, 9)
    })
    .unwrap();
    let dir = std::env::temp_dir().join(format!("unmix-live-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let record = dir.join("sources.wav");
    let total = (rate * seconds) as u64;
    let config = LiveParams { refit_s: Some(3.0), ..paced_config(&record, 2.0, None) };
    let session =
        LiveSession::start_with(config.check().unwrap(), fitter(quick(0)), paced_input(&data.mixture, total), None)
            .unwrap();
    while !session.is_finished() && session.status().swaps < 2 {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    session.stop();
    let report = session.wait().unwrap();
    assert!(report.status.swaps >= 2, "no refit was swapped in: {:?}", report.status);
    assert_eq!(report.end, EndReason::Stopped);
    // After `stop` the paced feeder, like a real device, goes on calling back until the
    // session lets go of it (after the trainer has given up its fit), but the frames
    // are no longer counted: every frame counted in is out, but for at most the one
    // block of a callback that was already running when the source released the input.
    let block = u64::from(report.input.buffer_frames.expect("the feeder's block"));
    let (frames_in, frames_out) = (report.status.frames_in, report.status.frames_out);
    assert!(frames_out <= frames_in && frames_in - frames_out <= block, "{:?}", report.status);
    assert_eq!(report.status.dropped_frames, 0);
    let first = report.first_model_frame.expect("the warm-up model was swapped in") as usize;
    assert!(first >= 2 * rate, "separating before the warm-up ended (frame {first})");
    assert!(report.last_alignment.iter().all(|&c| c > 0.99), "{:?}", report.last_alignment);

    let recorded = unmix_io::read_wav(&record).unwrap();
    assert_eq!(recorded.frames() as u64, report.status.frames_out);
    assert!(recorded.frames() > first + rate, "a second of audio after the refit was recorded");
    assert!(recorded.interleaved()[..first * 3].iter().all(|&v| v == 0.0), "warm-up is silence");
    let end = recorded.frames();
    let tail = |r: &Recording| -> Vec<Vec<f32>> { (0..3).map(|j| r.channel(j)[first..end].to_vec()).collect() };
    let s = unmix_dsp::metrics::score(&tail(&data.truth), &tail(&recorded)).unwrap();
    assert!(s.min_abs_corr >= 0.99, "{s:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An input that starts with a second of digital silence (a port not yet connected):
/// the warm-up is the first second of sound, every frame of it fitted, none of the
/// silence.
#[test]
fn the_warm_up_passes_over_digital_silence() {
    let rate = 8000;
    let data =
        generate(&SynthConfig { frames: 3 * rate, sample_rate_hz: 8000, ..SynthConfig::paper(MixKind::Linear, 4) })
            .unwrap();
    let model = offline_fit(&data.mixture, SeparateParams { model: ModelChoice::Linear, ..quick(1) });
    let mut samples = vec![0.0f32; rate * 3];
    samples.extend_from_slice(data.mixture.interleaved());
    let input = Recording::from_interleaved(8000, 3, samples).unwrap();
    let dir = std::env::temp_dir().join(format!("unmix-live-silence-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = paced_config(&dir.join("sources.wav"), 1.0, None);
    let fitter = CannedFitter::new(model, Duration::ZERO);
    let seen = fitter.seen.clone();
    let fitter = Box::new(fitter);
    let report = LiveSession::start_with(
        config.check().unwrap(),
        Some(fitter),
        paced_input(&input, input.frames() as u64),
        None,
    )
    .unwrap()
    .wait()
    .unwrap();
    let segment = seen.lock().unwrap().take().expect("the warm-up was fitted");
    assert_eq!(segment.interleaved(), &data.mixture.interleaved()[..rate * 3]);
    let first = report.first_model_frame.expect("the warm-up model was swapped in") as usize;
    assert!(first >= 2 * rate, "separating before a second of sound (frame {first})");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A warm-up fit slower than the trainer's tap holds (the tap keeps two warm-ups; the fit
/// takes three): the frames the trainer missed are counted in the report, and the
/// separation loses none of them.
#[test]
fn frames_the_trainer_missed_are_counted() {
    let rate = 8000;
    let data =
        generate(&SynthConfig { frames: 5 * rate, sample_rate_hz: 8000, ..SynthConfig::paper(MixKind::Linear, 4) })
            .unwrap();
    let model = offline_fit(&data.mixture, SeparateParams { model: ModelChoice::Linear, ..quick(1) });
    let dir = std::env::temp_dir().join(format!("unmix-live-tap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = paced_config(&dir.join("sources.wav"), 1.0, None);
    let input = paced_input(&data.mixture, data.mixture.frames() as u64);
    let report = LiveSession::start_with(
        config.check().unwrap(),
        Some(Box::new(CannedFitter::new(model, Duration::from_secs(3)))),
        input,
        None,
    )
    .unwrap()
    .wait()
    .unwrap();
    assert_eq!(report.end, EndReason::Duration);
    let status = &report.status;
    assert!(report.first_model_frame.is_some(), "the slow fit was swapped in: {status:?}");
    assert!(status.tap_dropped_frames > 0, "{status:?}");
    assert_eq!((status.dropped_frames, status.frames_out), (0, status.frames_in), "{status:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A session with `--scores`: the recording is what it is without them, and the score
/// CSV holds one row per window, every one scored (the model was there from frame 0)
/// and matching the offline scores of the same frames.
#[test]
fn a_scored_session_writes_one_row_per_window() {
    let data = generate(&SynthConfig { frames: 8000, sample_rate_hz: 8000, ..SynthConfig::paper(MixKind::Linear, 4) })
        .unwrap();
    let model = offline_fit(&data.mixture, quick(2));
    scored_session_matches_offline(&model, &data.mixture, "vae");
}

/// `separate` picks the saturating chain for a square full-scale nonlinear mixture, and
/// `live --model` takes whatever `separate` wrote: the chain's file runs through the
/// same session, recording and scores as offline.
#[test]
fn a_saturating_chain_model_runs_live_as_offline() {
    let data =
        generate(&SynthConfig { frames: 8000, sample_rate_hz: 8000, ..SynthConfig::paper(MixKind::Nonlinear, 2) })
            .unwrap();
    let mut config = quick(2);
    config.model = ModelChoice::Chain;
    config.chain = ChainConfig { starts: 2, steps: 100, threads: 2, ..ChainConfig::new(ChainShape::Saturating) };
    let model = offline_fit(&data.mixture, config);
    assert_eq!(model.weights.architecture, unmix_format::Architecture::SaturatingChain);
    scored_session_matches_offline(&model, &data.mixture, "chain");
}

/// A refit of a given chain model is a chain too, aligned to it and swapped in.
#[test]
fn refits_of_a_chain_model_are_chains() {
    let rate = 8000;
    let seconds = 60;
    let data = generate(&SynthConfig {
        frames: rate * seconds,
        sample_rate_hz: rate as u32,
        ..SynthConfig::paper(MixKind::Nonlinear, 2)
    })
    .unwrap();
    let chain = ChainConfig { starts: 2, steps: 100, threads: 1, ..ChainConfig::new(ChainShape::Saturating) };
    let mut fit_config = quick(2);
    (fit_config.model, fit_config.chain) = (ModelChoice::Chain, chain.clone());
    // Trained on other frames than any refit sees (those of the last 10 s).
    let frames = &data.mixture.interleaved()[rate * 3 * (seconds - 10)..];
    let offline = Recording::from_interleaved(rate as u32, 3, frames.to_vec()).unwrap();
    let model = offline_fit(&offline, fit_config);
    let dir = std::env::temp_dir().join(format!("unmix-live-chain-refit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let record = dir.join("sources.wav");
    let config = LiveParams { refit_s: Some(1.0), ..paced_config(&record, 2.0, Some(model.clone())) };
    // As the command line sets it for warm-ups: PDGMM-VAE.
    let mut refits = quick(0);
    refits.chain = chain;
    assert_eq!(refits.model, ModelChoice::Vae);
    let input = paced_input(&data.mixture, (rate * seconds) as u64);
    let session = LiveSession::start_with(config.check().unwrap(), fitter(refits), input, None).unwrap();
    while !session.is_finished() && session.status().swaps < 2 {
        std::thread::sleep(Duration::from_millis(50));
    }
    session.stop();
    let report = session.wait().unwrap();
    assert!(report.status.swaps >= 2, "no refit was swapped in: {:?}", report.status);
    let Some(unmix_format::AnyModel::Time(last)) = report.model else { panic!("no model of the time domain in use") };
    assert_eq!(last.weights.architecture, unmix_format::Architecture::SaturatingChain);
    assert_ne!(last.weights, model.weights, "the given model, not a refit");
    assert!(report.last_alignment.iter().all(|&c| c > 0.9), "{:?}", report.last_alignment);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `model` on the 8000 frames of `mixture` in a paced, scored session (quarter-
/// second windows every eighth of a second) and checks the recording against `apply`
/// and every score row against the offline scorer on the same frames.
fn scored_session_matches_offline(model: &ModelFile, mixture: &Recording, tag: &str) {
    let dir = std::env::temp_dir().join(format!("unmix-live-scores-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (record, scores) = (dir.join("sources.wav"), dir.join("scores.csv"));
    let config = LiveParams {
        scores: Some(LiveScores { path: scores.clone(), window_s: 0.25, hop_s: 0.125, alert_share: 0.05 }),
        ..paced_config(&record, 1.0, Some(model.clone()))
    };
    let session =
        LiveSession::start_with(config.check().unwrap(), fitter(quick(0)), paced_input(mixture, 8000), None).unwrap();
    let report = session.wait().unwrap();
    assert_eq!(report.end, EndReason::Duration);
    assert_eq!(unmix_io::read_wav(&record).unwrap(), unmix_separate::apply(model, mixture, Kernel::best()).unwrap());

    let rows = unmix_io::read_csv(&scores, 1).unwrap();
    assert_eq!(rows.channels(), score_columns(3).len());
    // 2000-frame windows every 1000 frames over 8000 frames: 7.
    assert_eq!(rows.frames(), 7);
    let mut reference = ScoredSeparator::new(model);
    let mut scored = vec![0.0f32; 8000 * (3 + SCORE_CHANNELS)];
    reference.process(mixture.interleaved(), &mut scored).unwrap();
    for (k, row) in rows.interleaved().chunks_exact(rows.channels()).enumerate() {
        let mut want = vec![0.0f32; row.len()];
        let width = 3 + SCORE_CHANNELS;
        let window = &scored[k * 1000 * width..(k * 1000 + 2000) * width];
        unmix_monitor::summarise_window(window, 2000, 3, k as f64 * 0.125, &mut want);
        assert!(want.iter().all(|v| v.is_finite()), "{tag}, window {k}: {want:?}");
        for (g, w) in row.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{tag}, window {k}: {row:?} vs {want:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sensors are swapped round half-way through: the windows after raise alerts as
/// they close, none before, and the score log can be read while the session runs.
#[test]
fn a_changed_mixing_raises_alerts_while_the_session_runs() {
    let data =
        generate(&SynthConfig { frames: 16_000, sample_rate_hz: 8000, ..SynthConfig::paper(MixKind::Linear, 3) })
            .unwrap();
    let model = offline_fit(&data.mixture, quick(2));
    let mut samples = data.mixture.interleaved().to_vec();
    for frame in samples[8000 * 3..].chunks_exact_mut(3) {
        frame.rotate_left(1);
    }
    let changed = Recording::from_interleaved(8000, 3, samples).unwrap();
    let dir = std::env::temp_dir().join(format!("unmix-live-alerts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (record, scores) = (dir.join("sources.wav"), dir.join("scores.csv"));
    let config = LiveParams {
        scores: Some(LiveScores { path: scores.clone(), window_s: 0.25, hop_s: 0.25, alert_share: 0.05 }),
        ..paced_config(&record, 1.0, Some(model))
    };
    let session =
        LiveSession::start_with(config.check().unwrap(), fitter(quick(0)), paced_input(&changed, 16_000), None)
            .unwrap();
    let alerts = session.alerts();
    // Paced at 8 kHz: after 1.5 s of the 2 s, windows are on disk (about six; a busy
    // machine may lag), not only at the end.
    std::thread::sleep(Duration::from_millis(1500));
    let rows_so_far = std::fs::read_to_string(&scores).unwrap().lines().count() - 1;
    assert!((1..8).contains(&rows_so_far), "{rows_so_far} rows after 1.5 s");
    let report = session.wait().unwrap();
    let raised: Vec<f32> = alerts.try_iter().map(|w| w.start_s).collect();
    assert_eq!(raised, [1.0, 1.25, 1.5, 1.75]);
    assert_eq!(report.status.alerts_dropped, 0);
    assert_eq!(unmix_io::read_csv(&scores, 1).unwrap().frames(), 8);
    let _ = std::fs::remove_dir_all(&dir);
}

pub(crate) fn shared() -> Arc<Shared> {
    Arc::new(Shared::new(false))
}

/// A 3-channel, 3-source session on the paced 8 kHz feeder, recording to `record`.
fn paced_config(record: &Path, warmup_s: f64, model: Option<ModelFile>) -> LiveParams {
    LiveParams {
        input: InputSpec {
            device: "paced".into(),
            channels: 3,
            pick: None,
            sample_rate_hz: Some(8000),
            buffer_frames: None,
            ring_s: 2.0,
            stop_after_s: None,
        },
        sources: 3,
        warmup_s,
        model,
        refit_s: None,
        frame_len: 256,
        output: None,
        record: Some(record.to_path_buf()),
        record_format: unmix_io::WavFormat::Float32,
        raw_stdout: false,
        scores: None,
        stall_timeout: Duration::from_secs(5),
        kernel: Kernel::best(),
        domain: LiveDomain::Time,
    }
}

/// Live fits as the command line makes them, but shorter: one PDGMM-VAE run of 30 epochs
/// on at most the live cap of frames.
pub(crate) fn quick(seed: u64) -> SeparateParams {
    let mut c = SeparateParams::new(SourceCount::Fixed(3));
    c.restarts = ConsensusConfig::single();
    c.model = ModelChoice::Vae;
    c.max_train_frames = 16_384;
    c.recipe.max_epochs = 30;
    c.recipe.seed = seed;
    c
}

/// `params` fitted offline on `recording`.
pub(crate) fn offline_fit(recording: &Recording, params: SeparateParams) -> ModelFile {
    unmix_separate::fit(recording, &params.check().unwrap(), &CancelToken::new(), &mut |_| {}).unwrap().model
}

/// The session's fitter as the command line implements it: `unmix-separate`'s fits of a
/// stream.
struct SeparateFitter(SeparateConfig);

impl ModelFitter for SeparateFitter {
    fn fit(
        &mut self,
        segment: &Recording,
        previous: Option<&ModelFile>,
        cancel: &CancelToken,
    ) -> std::result::Result<FittedModel, FitError> {
        match unmix_separate::fit_for_stream(segment, previous, &self.0, cancel) {
            Ok(fit) => Ok(FittedModel { model: fit.model, alignment: fit.alignment }),
            Err(unmix_separate::Error::Cancelled) => Err(FitError::Cancelled),
            Err(e) => Err(FitError::Failed(Box::new(e))),
        }
    }
}

/// A fitter that returns one model, made beforehand, after `delay`, and keeps the last
/// segment it was given in `seen`: what the session hands its fitter, and when.
struct CannedFitter {
    model: ModelFile,
    delay: Duration,
    seen: Arc<std::sync::Mutex<Option<Recording>>>,
}

impl CannedFitter {
    fn new(model: ModelFile, delay: Duration) -> Self {
        Self { model, delay, seen: Arc::default() }
    }
}

impl ModelFitter for CannedFitter {
    fn fit(
        &mut self,
        segment: &Recording,
        _: Option<&ModelFile>,
        _: &CancelToken,
    ) -> std::result::Result<FittedModel, FitError> {
        *self.seen.lock().unwrap() = Some(segment.clone());
        std::thread::sleep(self.delay);
        Ok(FittedModel { model: self.model.clone(), alignment: Vec::new() })
    }
}

fn fitter(params: SeparateParams) -> Option<Box<dyn ModelFitter>> {
    Some(Box::new(SeparateFitter(params.check().unwrap())))
}

fn refused(params: LiveParams) -> String {
    params.check().expect_err("refused").to_string()
}

fn params() -> LiveParams {
    paced_config(Path::new("unused.wav"), 1.0, None)
}

#[test]
fn the_sources_are_at_least_one_and_at_most_the_channels() {
    assert!(refused(LiveParams { sources: 0, ..params() }).contains("3 channels cannot be separated into 0 sources"));
    assert!(refused(LiveParams { sources: 4, ..params() }).contains("3 channels cannot be separated into 4 sources"));
    params().check().unwrap();
}

#[test]
fn a_given_model_has_the_sessions_channels_and_sources() {
    let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 1) }).unwrap();
    let model = offline_fit(&data.mixture, quick(0));
    let two_channels = LiveParams {
        input: InputSpec { channels: 2, ..params().input },
        sources: 2,
        model: Some(model.clone()),
        ..params()
    };
    assert!(refused(two_channels).contains("the model expects 3 channels"));
    let mut two_sources = model.clone();
    two_sources.header.sources = 2;
    assert!(refused(LiveParams { model: Some(two_sources), ..params() }).contains("separates 2 sources, not 3"));
    LiveParams { model: Some(model), ..params() }.check().unwrap();
}

#[test]
fn the_listened_source_is_one_of_the_sources() {
    let listen = |k| LiveParams { output: Some(("default".into(), Some(k))), ..params() };
    assert!(refused(listen(3)).contains("--listen 4 is not one of the 3 sources"));
    listen(2).check().unwrap();
}

#[test]
fn the_warm_up_is_positive() {
    assert!(refused(LiveParams { warmup_s: 0.0, ..params() }).contains("--warmup must be positive"));
    assert!(refused(LiveParams { warmup_s: f64::NAN, ..params() }).contains("--warmup must be positive"));
}

#[test]
fn the_frame_length_is_at_least_one() {
    assert!(refused(LiveParams { frame_len: 0, ..params() }).contains("1 to 65536 frames, not 0"));
    assert!(refused(LiveParams { frame_len: 1 << 20, ..params() }).contains("not 1048576"));
}

/// Every duration that sizes a buffer has a bound, so a mistyped one is refused instead
/// of allocated.
#[test]
fn durations_and_channels_are_bounded() {
    let e = refused(LiveParams { warmup_s: 1e9, ..params() });
    assert!(e.contains("--warmup 1000000000: must be a positive duration of at most 3600 s"), "{e}");
    let mut ring = params();
    ring.input.ring_s = 1e9;
    assert!(refused(ring).contains("--ring-seconds 1000000000"));
    let mut stop = params();
    stop.input.stop_after_s = Some(f64::NAN);
    assert!(refused(stop).contains("--duration NaN"));
    assert!(refused(LiveParams { refit_s: Some(-1.0), ..params() }).contains("--refit -1"));
    let mut wide = params();
    wide.input.channels = 1000;
    assert!(refused(wide).contains("1000 channels: a session reads at most 256"));
}

/// With `--domain stft` nothing of a time-domain model applies, and the online
/// separator's own settings are checked.
#[test]
fn the_online_separator_takes_no_model_and_checks_its_settings() {
    let stft = LiveDomain::Stft(unmix_freq::OnlineConfig::DEFAULT);
    let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 1) }).unwrap();
    let model = offline_fit(&data.mixture, quick(0));
    let e = refused(LiveParams { domain: stft.clone(), model: Some(model), ..params() });
    assert!(e.contains("--domain stft adapts its own demixing: a model given up front"), "{e}");
    assert!(refused(LiveParams { domain: stft.clone(), refit_s: Some(2.0), ..params() }).contains("refits"));
    let scores = LiveScores { path: "s.csv".into(), window_s: 1.0, hop_s: 1.0, alert_share: 0.1 };
    assert!(
        refused(LiveParams { domain: stft.clone(), scores: Some(scores), ..params() }).contains("monitoring scores")
    );
    let forgetting =
        LiveDomain::Stft(unmix_freq::OnlineConfig { forgetting: 1.0, ..unmix_freq::OnlineConfig::DEFAULT });
    assert!(refused(LiveParams { domain: forgetting, ..params() }).contains("forgetting factor of 1"));
    let config = LiveParams { domain: stft.clone(), ..params() }.check().unwrap();
    assert!(!config.fits());
    assert_eq!(config.latency_frames(), 2047);
}

/// Two bundled talkers for `seconds` each in a 2 × 2 room (RT60 0.2 s, 16 kHz), a fresh
/// output directory named after `what`, and a paced session of the room's channels and
/// sources recording into it, warming up for `warmup_s` (its domain left to the caller).
fn paced_room(seconds: usize, warmup_s: f64, what: &str) -> (Recording, PathBuf, LiveParams) {
    use unmix_synth::room::{RoomConfig, simulate_room};
    let rate = 16_000;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/speech");
    let dry: Vec<Vec<f32>> = (1..=2)
        .map(|k| unmix_io::read_wav(&dir.join(format!("talker{k}.wav"))).unwrap().channel(0)[..seconds * rate].to_vec())
        .collect();
    let record = simulate_room(&RoomConfig::drawn(1, 2, 2, 0.05, 0.2, rate as u32), &dry).unwrap();
    let out_dir = std::env::temp_dir().join(format!("unmix-live-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut config = paced_config(&out_dir.join("sources.wav"), warmup_s, None);
    config.input.channels = 2;
    config.input.sample_rate_hz = Some(rate as u32);
    config.sources = 2;
    (record.mixture, out_dir, config)
}

/// A paced session separating a room in the STFT domain: no warm-up and no fitter, the
/// separator running from frame 0, every frame recorded, and the recording exactly the
/// online separator run offline on the same samples (the blocks the pipeline cuts change
/// nothing).
#[test]
fn a_session_in_the_stft_domain_records_the_online_separation() {
    let rate = 16_000;
    let (mixture, out_dir, mut config) = paced_room(2, 1.0, "stft");
    let (frames, path) = (mixture.frames(), out_dir.join("sources.wav"));
    let online = unmix_freq::OnlineConfig::DEFAULT;
    config.domain = LiveDomain::Stft(online);
    let session =
        LiveSession::start_with(config.clone().check().unwrap(), None, paced_input(&mixture, frames as u64), None)
            .unwrap();
    let report = session.wait().unwrap();
    assert_eq!(report.end, EndReason::Duration);
    assert_eq!(report.first_model_frame, Some(0));
    assert_eq!(report.latency_frames, 2047);
    assert_eq!(report.status.dropped_frames, 0);
    let recorded = unmix_io::read_wav(&path).unwrap();
    assert_eq!(recorded.frames(), frames);
    let mut offline = unmix_freq::OnlineIva::new(2, 2, online).unwrap();
    let mut want = vec![0.0f32; frames * 2];
    offline.process(mixture.interleaved(), &mut want);
    assert_eq!(recorded.interleaved(), &want[..]);
    assert!(want.iter().any(|v| *v != 0.0));

    // Started from a room's demixing (the separator's own after this run, as a model
    // would give it): the recording is `starting_from` run offline, and a rate other
    // than the model's is refused.
    let start = std::sync::Arc::new(RoomStart {
        online,
        demixing: offline.demixing(),
        spatial: None,
        sample_rate_hz: rate as u32,
    });
    config.domain = LiveDomain::StftFrom(start.clone());
    let session =
        LiveSession::start_with(config.clone().check().unwrap(), None, paced_input(&mixture, frames as u64), None)
            .unwrap();
    let report = session.wait().unwrap();
    assert_eq!((report.end, report.first_model_frame, report.latency_frames), (EndReason::Duration, Some(0), 2047));
    let mut offline = unmix_freq::OnlineIva::starting_from(2, 2, online, &start.demixing).unwrap();
    offline.process(mixture.interleaved(), &mut want);
    assert_eq!(unmix_io::read_wav(&path).unwrap().interleaved(), &want[..]);
    // With its spatial model (each bin's `Q` the identity, each source on its own
    // channel, unequal powers): the recording is that model run offline, frame by frame.
    let bins = online.stft.bins();
    let q = (0..bins * 4).map(|i| unmix_freq::Complex64::new(if i % 4 % 3 == 0 { 1.0 } else { 0.0 }, 0.0)).collect();
    let filter = unmix_freq::SpatialFilter { q, g: vec![0.9, 0.1, 0.2, 0.8], power: vec![1.0; 2 * bins] };
    let spatial = std::sync::Arc::new(RoomStart { spatial: Some(filter.clone()), ..(*start).clone() });
    config.domain = LiveDomain::StftFrom(spatial);
    let session =
        LiveSession::start_with(config.clone().check().unwrap(), None, paced_input(&mixture, frames as u64), None)
            .unwrap();
    assert_eq!(session.wait().unwrap().end, EndReason::Duration);
    let mut offline = unmix_freq::OnlineIva::spatial(2, 2, online, &filter).unwrap();
    offline.process(mixture.interleaved(), &mut want);
    let recorded = unmix_io::read_wav(&path).unwrap();
    assert_eq!(recorded.interleaved(), &want[..]);
    let mut adapted = vec![0.0f32; frames * 2];
    unmix_freq::OnlineIva::starting_from(2, 2, online, &start.demixing)
        .unwrap()
        .process(mixture.interleaved(), &mut adapted);
    assert_ne!(recorded.interleaved(), &adapted[..], "the spatial model, not the demixing");
    config.domain = LiveDomain::StftFrom(std::sync::Arc::new(RoomStart { sample_rate_hz: 8_000, ..(*start).clone() }));
    let e = LiveSession::start_with(config.clone().check().unwrap(), None, paced_input(&mixture, frames as u64), None)
        .err()
        .unwrap();
    assert!(e.to_string().contains("fitted at 8000 Hz"), "{e}");
    config.domain = LiveDomain::StftFrom(std::sync::Arc::new(RoomStart { demixing: vec![], ..(*start).clone() }));
    assert!(config.check().is_err());
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// A paced session in a room with the room's model ([`LiveDomain::Room`]): the online
/// separator from frame 0, the trainer's room model of the first 2 s handed over once
/// (4 s more of input leave its fit time to spare on a busy machine), and the recording
/// exactly the online separator
/// up to the hand-over and the room's separator continuing it after, as run offline on
/// the same samples; each output continues the online one it took over; the model the
/// session ends with is the one that took over, as a room's model file with the device
/// channels it read.
#[test]
fn in_a_room_the_rooms_model_takes_over_from_the_online_separator() {
    let rate = 16_000;
    let (record, out_dir, mut config) = paced_room(6, 2.0, "room");
    let (mixture, frames, path) = (&record, record.frames(), out_dir.join("sources.wav"));
    let online = unmix_freq::OnlineConfig::DEFAULT;
    config.domain = LiveDomain::Room(online);
    // As from a device's inputs 3 and 6: the model saved says so.
    config.input.pick = Some(vec![2, 5]);
    let config = config.check().unwrap();
    assert!(config.fits_room() && !config.fits());
    let report =
        LiveSession::start_with(config, None, paced_input(mixture, frames as u64), None).unwrap().wait().unwrap();
    assert_eq!((report.end, report.first_model_frame, report.fit_error), (EndReason::Duration, Some(0), None));
    assert_eq!((report.status.dropped_frames, report.status.swaps), (0, 1));
    // The replay that orders the room's model is the run heard only if the trainer missed
    // no frame.
    assert_eq!(report.status.tap_dropped_frames, 0);
    let at = report.room_model_frame.expect("the room's model took over") as usize;
    assert!(at > 2 * rate && at < frames, "taken over at frame {at}");
    assert_eq!(report.last_alignment.len(), 2);

    let mut want = vec![0.0f32; frames * 2];
    let mut heard = unmix_freq::OnlineIva::new(2, 2, online).unwrap();
    heard.process(&mixture.interleaved()[..at * 2], &mut want[..at * 2]);
    let unmix_freq::RoomHandover { separator: mut room, alignment, model } =
        unmix_freq::room_handover(mixture.interleaved(), 2 * rate, 2, 2, rate as u32, online, Default::default())
            .unwrap();
    assert_eq!(alignment, report.last_alignment);
    assert!(room.continue_from(&heard));
    room.process(&mixture.interleaved()[at * 2..], &mut want[at * 2..]);
    assert_eq!(unmix_io::read_wav(&path).unwrap().interleaved(), &want[..]);
    let mut model = model;
    model.header.picked_channels = Some("3,6".into());
    assert_eq!(report.model, Some(unmix_format::AnyModel::Room(Box::new(model))));
    let _ = std::fs::remove_dir_all(&out_dir);
}

#[test]
fn the_kernel_runs_on_this_processor() {
    for kernel in Kernel::ALL.iter().copied() {
        assert_eq!(LiveParams { kernel, ..params() }.check().is_ok(), kernel.is_available(), "{}", kernel.name());
    }
}

/// A session that has models to fit is refused without a fitter; one that runs a given
/// model and never refits needs none.
#[test]
fn a_session_that_fits_needs_a_fitter() {
    let data = generate(&SynthConfig { frames: 4000, sample_rate_hz: 8000, ..SynthConfig::paper(MixKind::Linear, 2) })
        .unwrap();
    let dir = std::env::temp_dir().join(format!("unmix-live-fitter-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let record = dir.join("sources.wav");
    let warm_up = paced_config(&record, 1.0, None).check().unwrap();
    assert!(warm_up.fits());
    let e = LiveSession::start_with(warm_up, None, paced_input(&data.mixture, 4000), None).err().unwrap();
    assert!(e.to_string().contains("has no fitter"), "{e}");
    let model = offline_fit(&data.mixture, quick(3));
    let given = paced_config(&record, 1.0, Some(model.clone())).check().unwrap();
    assert!(!given.fits());
    let report = LiveSession::start_with(given, None, paced_input(&data.mixture, 4000), None).unwrap().wait().unwrap();
    assert_eq!(report.status.frames_out, 4000);
    let refits = LiveParams { refit_s: Some(1.0), ..paced_config(&record, 1.0, Some(model)) }.check().unwrap();
    assert!(refits.fits());
    let _ = std::fs::remove_dir_all(&dir);
}
