//! A live session: input device → pipeline (source, processor, sinks on their threads) →
//! device, recording or stdout, with a trainer thread that has the session's
//! [`ModelFitter`] fit on the warm-up, hands each new encoder to the processor, and keeps
//! re-fitting with `--refit` (in a room, [`LiveDomain::Room`], it fits the room's model
//! itself and hands it over once).
//!
//! - `source.rs`: the input ring into the pipeline, and why the session ends;
//! - `processor.rs`: the inference stage, with its hot swap (real-time safe);
//! - `trainer.rs`: the trainer thread;
//! - `status.rs`: the model's state, the end reason, the status line's figures.
//!
//! # Warm-up
//! Until the first model is ready the processor outputs **silence** on every source
//! channel (not a pass-through: a microphone channel played as "source 1" would be a
//! different signal from what follows). The recording therefore starts with the warm-up
//! as silence, so output frame `k` is always input frame `k`: the pipeline adds no delay
//! in frames, only buffering latency. With a model given up front separation starts at
//! once.
//!
//! # Swaps
//! A new encoder ([`unmix_infer::Separator`], built and allocated on the trainer thread)
//! arrives over a one-slot channel and replaces the old one between two blocks; the old
//! one goes back to the trainer thread to be freed there, so the processor neither waits
//! nor frees. A refit continues its predecessor (the fitter aligns it), so output channel
//! `k` stays the same source with the same sign.

mod processor;
mod source;
mod status;
#[cfg(test)]
mod tests;
mod trainer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use serde::Serialize;
use unmix_core::limits::{MAX_BLOCK_FRAMES, MAX_BUFFERED_SAMPLES, MAX_CHANNELS};
use unmix_core::{CancelToken, Sink};
use unmix_format::{AnyModel, ModelFile};
use unmix_freq::{OnlineConfig, OnlineIva};
use unmix_infer::Kernel;
use unmix_monitor::{AlertTap, WindowMonitor, WindowShares, WindowSpec, score_columns};
use unmix_stream::{FrameRing, Pipeline, PipelineConfig, PipelineReport, Policy, TeeSink};

use self::processor::{Encoder, LiveProcessor};
use self::source::LiveSource;
pub use self::status::{EndReason, ModelState, Status};
use self::status::{StatusView, status_from};
use self::trainer::{Trainer, trainer_loop};
use crate::error::{Error, Result};
use crate::fitter::ModelFitter;
use crate::input::{InputMeter, InputSpec, LiveInput, Negotiated};
use crate::output::{LiveOutput, OutputSink, RawSink};

/// Settings of a live session as a user gives them, not yet checked:
/// [`LiveParams::check`] turns them into the [`LiveConfig`] a session starts with.
#[derive(Debug, Clone)]
pub struct LiveParams {
    /// The input device.
    pub input: InputSpec,
    /// Sources `N`.
    pub sources: usize,
    /// Seconds of sound (digital silence passed over) buffered for the first fit.
    pub warmup_s: f64,
    /// Start with this model instead of a warm-up fit.
    pub model: Option<ModelFile>,
    /// Re-fit on the latest `warmup_s` seconds every this many seconds.
    pub refit_s: Option<f64>,
    /// Frames the processor handles at a time.
    pub frame_len: usize,
    /// Output device and `--listen K` (0-based); opened by `LiveSession::start` (feature `cpal`).
    pub output: Option<(String, Option<usize>)>,
    /// WAV recording of the sources.
    pub record: Option<PathBuf>,
    /// Its sample format (integer formats clip beyond full scale: [`LiveReport::record_clipped`]).
    pub record_format: unmix_io::WavFormat,
    /// Raw `f32` sources to stdout.
    pub raw_stdout: bool,
    /// Per-window monitoring scores to a CSV (`--scores`).
    pub scores: Option<LiveScores>,
    /// Input silent this long (no frames at all) ends the session.
    pub stall_timeout: Duration,
    /// The encoder kernel of every model the session runs.
    pub kernel: Kernel,
    /// Sample by sample with a model, or the online frequency-domain separator.
    pub domain: LiveDomain,
}

/// What a session separates with.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveDomain {
    /// A model of one sample of every channel (fitted on the warm-up, or given), for
    /// instantaneous mixtures.
    Time,
    /// Online independent vector analysis in the STFT domain ([`OnlineIva`]), for rooms:
    /// it adapts from the first frame, needs no fit and no warm-up, and its sources lag
    /// the input by [`OnlineIva::latency`] frames.
    Stft(OnlineConfig),
    /// The same from the first frame, until a room's model fitted on the first
    /// `warmup_s` seconds on the trainer thread ([`unmix_freq::fit_room_model`]: the
    /// low-rank demixing, then the spatial model started from it, one start) takes over:
    /// its spatial model fixed, every source's power learnt frame by frame
    /// ([`OnlineIva::spatial`]), its sources in the order of the outputs they continue
    /// ([`unmix_freq::continue_outputs`]) and the stream without a gap
    /// ([`OnlineIva::continue_from`]). What `live --domain stft` runs unless
    /// `--online-only`: after 5 s of input it separates 2 talkers 2.5–8.5 dB better than
    /// the online separator alone, on average (`docs/results.md#the-rooms-model-taking-over`).
    Room(OnlineConfig),
    /// A room's model from the first frame (from `separate --domain stft` on a recording
    /// of the same array and places), its sources in the model's order: its spatial model
    /// fixed, every source's power learnt frame by frame ([`OnlineIva::spatial`], what
    /// `apply` runs), or, without one or when asked, the online separator started from
    /// its demixing instead of the identity ([`OnlineIva::starting_from`]).
    StftFrom(Arc<RoomStart>),
}

/// Where [`LiveDomain::StftFrom`] starts.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomStart {
    /// The separator's settings (the model's STFT and reference channel).
    pub online: OnlineConfig,
    /// Every bin's whole demixing matrix, as [`OnlineIva::starting_from`] takes it.
    pub demixing: Vec<unmix_freq::Complex64>,
    /// The room's spatial model, run fixed when given. On another take of the same room
    /// it was ahead of the online separator started from the demixing on 31 of 36 5-s
    /// stretches (by up to 15 dB; behind by up to 2.2 dB on the others) at a fifth of its
    /// processing load, but it does not follow a talker who moves
    /// (`docs/results.md#started-from-a-rooms-model`). `None`: the demixing, adapted.
    pub spatial: Option<unmix_freq::SpatialFilter>,
    /// The rate the model was fitted at: the input must run at it.
    pub sample_rate_hz: u32,
}

/// What separates a session's input, as its report records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SeparatorKind {
    /// A model of one sample of every channel ([`LiveDomain::Time`]).
    TimeModel,
    /// The online separator alone ([`LiveDomain::Stft`]).
    OnlineIva,
    /// The online separator until the room's model of the warm-up took over
    /// ([`LiveDomain::Room`]; [`LiveReport::room_model_frame`] says when).
    OnlineIvaThenRoomModel,
    /// A given room's spatial model, fixed ([`RoomStart::spatial`]).
    RoomModelFixed,
    /// The online separator started from a given room's demixing.
    OnlineIvaFromRoomModel,
}

impl LiveDomain {
    /// What separates the input.
    pub fn separator(&self) -> SeparatorKind {
        match self {
            LiveDomain::Time => SeparatorKind::TimeModel,
            LiveDomain::Stft(_) => SeparatorKind::OnlineIva,
            LiveDomain::Room(_) => SeparatorKind::OnlineIvaThenRoomModel,
            LiveDomain::StftFrom(start) if start.spatial.is_some() => SeparatorKind::RoomModelFixed,
            LiveDomain::StftFrom(_) => SeparatorKind::OnlineIvaFromRoomModel,
        }
    }

    /// The online separator's settings, in the frequency domain.
    pub fn online(&self) -> Option<&OnlineConfig> {
        match self {
            LiveDomain::Time => None,
            LiveDomain::Stft(online) | LiveDomain::Room(online) => Some(online),
            LiveDomain::StftFrom(start) => Some(&start.online),
        }
    }
}

/// Where and how often a live session writes its monitoring scores.
#[derive(Debug, Clone)]
pub struct LiveScores {
    /// The score CSV: a log, each row on disk as its window closes (it can be followed
    /// while the session runs, and a session that dies leaves the rows so far).
    pub path: PathBuf,
    /// Window length, seconds.
    pub window_s: f64,
    /// Hop between window starts, seconds.
    pub hop_s: f64,
    /// Outlier share above which a window raises an alert ([`LiveSession::alerts`]).
    pub alert_share: f32,
}

impl LiveParams {
    /// Checks every setting once, before anything is opened: at most as many sources as
    /// channels (and at least one), a given model of the same channels and sources, a
    /// listened source among them, a positive warm-up, a frame length of at least one, and
    /// a kernel this processor runs.
    pub fn check(self) -> Result<LiveConfig> {
        let (m, n) = (self.input.channels, self.sources);
        if n == 0 || n > m {
            return Err(Error::Config(format!("{m} channels cannot be separated into {n} sources")));
        }
        if m > MAX_CHANNELS {
            return Err(Error::Config(format!("{m} channels: a session reads at most {MAX_CHANNELS}")));
        }
        if let Some(model) = &self.model {
            if model.header.channels != m {
                return Err(Error::ModelChannels { expected: model.header.channels, got: m });
            }
            if model.header.sources != n {
                return Err(Error::Config(format!("the model separates {} sources, not {n}", model.header.sources)));
            }
        }
        if let Some((_, Some(k))) = &self.output
            && *k >= n
        {
            // Numbered from 1 as the option is; a count as large as can be is not one more.
            return Err(Error::Config(format!("--listen {} is not one of the {n} sources", k.saturating_add(1))));
        }
        if !(self.warmup_s.is_finite() && self.warmup_s > 0.0) {
            return Err(Error::Config("--warmup must be positive".into()));
        }
        // Long enough for any use, short enough that the buffers they size stay bounded
        // (the warm-up's frames are checked against the memory bound once the rate is known).
        let seconds = [
            ("--warmup", Some(self.warmup_s), MAX_WARMUP_S),
            ("--refit", self.refit_s, f64::INFINITY),
            ("--duration", self.input.stop_after_s, f64::INFINITY),
            ("--ring-seconds", Some(self.input.ring_s), MAX_RING_S),
        ];
        for (option, value, most) in seconds {
            if let Some(v) = value
                && !(v.is_finite() && v > 0.0 && v <= most)
            {
                let range = if most.is_finite() { format!(" of at most {most} s") } else { String::new() };
                return Err(Error::Config(format!("{option} {v}: must be a positive duration{range}")));
            }
        }
        if !(1..=MAX_BLOCK_FRAMES).contains(&self.frame_len) {
            return Err(Error::Config(format!(
                "the frame length must be 1 to {MAX_BLOCK_FRAMES} frames, not {}",
                self.frame_len
            )));
        }
        if let Some(online) = self.domain.online() {
            // The online separator adapts on its own: nothing of a time-domain model applies.
            let refused = [
                (self.model.is_some(), "a model given up front is a time-domain model"),
                (
                    self.refit_s.is_some(),
                    "refits do not apply (its forgetting factor sets its memory; a room's model is fitted once, on \
                     the warm-up)",
                ),
                (self.scores.is_some(), "monitoring scores need a time-domain model's priors"),
            ];
            if let Some((_, why)) = refused.iter().find(|(given, _)| *given) {
                return Err(Error::Config(format!("--domain stft adapts its own demixing: {why}")));
            }
            online.check(m, n).map_err(|e| Error::Config(e.to_string()))?;
            if let LiveDomain::StftFrom(start) = &self.domain
                && start.demixing.len() != online.stft.bins() * m * m
            {
                return Err(Error::Config(format!(
                    "a room's model of {} demixing values for {m} channels and {} bins",
                    start.demixing.len(),
                    online.stft.bins()
                )));
            }
        }
        if !self.kernel.is_available() {
            return Err(Error::Config(format!("the {} kernel does not run on this processor", self.kernel.name())));
        }
        Ok(LiveConfig(self))
    }
}

/// Settings that passed [`LiveParams::check`]: the only settings a session starts with.
#[derive(Debug, Clone)]
pub struct LiveConfig(LiveParams);

impl LiveConfig {
    /// The settings.
    pub fn params(&self) -> &LiveParams {
        &self.0
    }

    /// Whether the session fits models (no model given, or refits asked for), and so
    /// needs a [`ModelFitter`].
    pub fn fits(&self) -> bool {
        (self.0.model.is_none() && self.0.domain == LiveDomain::Time) || self.0.refit_s.is_some()
    }

    /// Whether the trainer thread fits a room's model on the warm-up
    /// ([`LiveDomain::Room`]): with no [`ModelFitter`], by [`unmix_freq`] itself.
    pub fn fits_room(&self) -> bool {
        matches!(self.0.domain, LiveDomain::Room(_))
    }

    /// Frames by which the sources lag the input: none sample by sample, the STFT's
    /// frame less one in the frequency domain.
    pub fn latency_frames(&self) -> usize {
        self.0.domain.online().map_or(0, |online| online.stft.frame - 1)
    }
}

/// Shared between the session, the threads and the status line.
#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    /// Cancelled once the pipeline has ended: a fit still running stops at its next
    /// epoch, so the trainer thread joins promptly.
    cancel_training: CancelToken,
    /// An [`EndReason`].
    end: AtomicU8,
    /// A [`ModelState`].
    state: AtomicU8,
    swaps: AtomicU64,
    /// Input frame index at which the first model took over.
    first_model_frame: AtomicU64,
    /// Input frame at which a room's model took over from the online separator.
    room_model_frame: AtomicU64,
    tap_dropped: AtomicU64,
    /// Alerts that found the queue of [`ALERTS_KEPT`] full (nobody reading them).
    alerts_dropped: AtomicU64,
    fit_error: Mutex<Option<String>>,
    last_alignment: Mutex<Vec<f64>>,
}

impl Shared {
    /// Fresh state; with a model given up front the session separates from frame 0.
    fn new(model_given: bool) -> Self {
        let state = if model_given { ModelState::Separating } else { ModelState::WarmingUp };
        Self {
            stop: AtomicBool::new(false),
            cancel_training: CancelToken::new(),
            end: AtomicU8::new(EndReason::Running as u8),
            state: AtomicU8::new(state as u8),
            swaps: AtomicU64::new(0),
            first_model_frame: AtomicU64::new(if model_given { 0 } else { u64::MAX }),
            room_model_frame: AtomicU64::new(u64::MAX),
            tap_dropped: AtomicU64::new(0),
            alerts_dropped: AtomicU64::new(0),
            fit_error: Mutex::new(None),
            last_alignment: Mutex::new(Vec::new()),
        }
    }

    fn state(&self) -> ModelState {
        ModelState::from_u8(self.state.load(Ordering::Relaxed))
    }

    fn set_state(&self, state: ModelState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// Why the session ended ([`EndReason::Running`] while it runs).
    fn end(&self) -> EndReason {
        EndReason::from_u8(self.end.load(Ordering::Acquire))
    }

    /// Records why the session ends; the first reason stays.
    fn end_with(&self, reason: EndReason) {
        let _ = self.end.compare_exchange(EndReason::Running as u8, reason as u8, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// The outcome of a session.
#[derive(Debug, Clone, Serialize)]
pub struct LiveReport {
    /// What was negotiated with the input.
    pub input: Negotiated,
    /// Output device, if any.
    pub output_device: Option<String>,
    /// Why it ended.
    pub end: EndReason,
    /// The failed device's error message (which device, what it said), if any.
    pub device_error: Option<String>,
    /// Final status.
    pub status: Status,
    /// The pipeline's counters.
    pub pipeline: PipelineReport,
    /// Input frame at which the first model took over (0 with `--model`, and with the
    /// online separator of `--domain stft`).
    pub first_model_frame: Option<u64>,
    /// Input frame at which the room's model fitted on the warm-up took over from the
    /// online separator ([`LiveDomain::Room`]); `None` until it did (a session shorter
    /// than the warm-up and the fit, or a fit that failed: [`LiveReport::fit_error`]).
    pub room_model_frame: Option<u64>,
    /// What separated the input.
    pub separator: SeparatorKind,
    /// Frames by which output frame `k` lags input frame `k` (the STFT's frame less one
    /// with `--domain stft`, 0 otherwise): output frame `k` is input frame
    /// `k − latency_frames` separated.
    pub latency_frames: usize,
    /// |corr| of each source with its predecessor at the last refit (or, in a room, of
    /// each output of the room's model with the online separator's it took over).
    pub last_alignment: Vec<f64>,
    /// The last fit's error, if one failed.
    pub fit_error: Option<String>,
    /// Samples of the recording clipped at full scale and the largest magnitude given
    /// (an integer `record_format`; `None` without a recording).
    pub record_clipped: Option<(u64, f32)>,
    /// The model in use at the end: the last fit, or `--model`; in a room, the room's
    /// model fitted on its first seconds, its sources in the order of the outputs.
    #[serde(skip)]
    pub model: Option<AnyModel>,
}

/// A running session.
pub struct LiveSession {
    input: InputHalf,
    output: Option<LiveOutput>,
    pipeline: Pipeline,
    trainer: JoinHandle<Option<AnyModel>>,
    shared: Arc<Shared>,
    started: Instant,
    frame_len: usize,
    separator: SeparatorKind,
    latency_frames: usize,
    alerts: Receiver<WindowShares>,
    record_clipping: Option<Arc<unmix_io::Clipping>>,
}

/// The longest warm-up: an hour (its frames are bounded by the memory bound too).
const MAX_WARMUP_S: f64 = 3600.0;

/// The largest input ring: a minute of audio, where a few hundred milliseconds of slack
/// already absorb any scheduling delay.
const MAX_RING_S: f64 = 60.0;

/// Alerts kept for the caller to collect; beyond these, new ones are dropped (a caller
/// that never looks must not grow the session's memory).
const ALERTS_KEPT: usize = 1024;

impl LiveSession {
    /// Opens the input and output devices of `config` and starts every thread; `fitter`
    /// fits the models when the session fits any ([`LiveConfig::fits`]).
    #[cfg(feature = "cpal")]
    pub fn start(config: LiveConfig, fitter: Option<Box<dyn ModelFitter>>) -> Result<Self> {
        let params = config.params();
        let input = crate::input::open_input(&params.input)?;
        let output = match &params.output {
            Some((device, listen)) => {
                let rate = input.negotiated.sample_rate_hz;
                let ring = (rate as usize).max(4 * params.frame_len);
                Some(crate::output::open_output(device, params.sources, *listen, rate, ring)?)
            }
            None => None,
        };
        Self::start_with(config, fitter, input, output)
    }

    /// Starts every thread on an input that is already running (a device, or any feeder
    /// of a [`crate::input::Capture`]) and an optional output; the configuration's
    /// `output` is ignored.
    pub fn start_with(
        config: LiveConfig,
        fitter: Option<Box<dyn ModelFitter>>,
        input: LiveInput,
        output: Option<(LiveOutput, OutputSink)>,
    ) -> Result<Self> {
        // Without fits to do a fitter given anyway is never called.
        let fitter = match (config.fits(), fitter) {
            (true, None) => {
                return Err(Error::Config(
                    "this session fits models (no model given, or refits asked for) but has no fitter".into(),
                ));
            }
            (fits, fitter) => fitter.filter(|_| fits),
        };
        let params = config.params();
        let (m, n) = (params.input.channels, params.sources);
        let LiveInput { keep_alive, reader, meter, negotiated, error } = input;
        let input = InputHalf { _keep_alive: keep_alive, meter, negotiated, error };
        let rate = input.negotiated.sample_rate_hz;
        let online = match &params.domain {
            LiveDomain::Time => None,
            LiveDomain::Stft(online) | LiveDomain::Room(online) => Some(OnlineIva::new(m, n, *online)),
            LiveDomain::StftFrom(start) => {
                if rate != start.sample_rate_hz {
                    return Err(Error::Config(format!(
                        "the input runs at {rate} Hz, the room's model was fitted at {} Hz (its filters are per \
                         frequency)",
                        start.sample_rate_hz
                    )));
                }
                Some(match &start.spatial {
                    Some(filter) => OnlineIva::spatial(m, n, start.online, filter),
                    None => OnlineIva::starting_from(m, n, start.online, &start.demixing),
                })
            }
        }
        .transpose()
        .map_err(|e| Error::Config(e.to_string()))?;
        let shared = Arc::new(Shared::new(params.model.is_some() || online.is_some()));

        // Sinks.
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        let output = output.map(|(out, sink)| {
            sinks.push(Box::new(sink));
            out
        });
        let mut record_clipping = None;
        if let Some(path) = &params.record {
            let writer = unmix_io::WavStreamWriter::create_as(path, n, rate, params.record_format)?;
            record_clipping = Some(writer.clipping());
            sinks.push(Box::new(writer));
        }
        if params.raw_stdout {
            sinks.push(Box::new(RawSink::stdout()));
        }
        let scored = params.scores.is_some();
        let (alerts_tx, alerts) = crossbeam_channel::bounded(ALERTS_KEPT);
        let sink: Box<dyn Sink> = match &params.scores {
            None => Box::new(TeeSink(sinks)),
            Some(scores) => {
                let spec = WindowSpec::from_seconds(scores.window_s, scores.hop_s, rate)
                    .map_err(|e| Error::Config(e.to_string()))?;
                let writer = unmix_io::CsvStreamWriter::create_log(&scores.path, &score_columns(n))?;
                let counted = shared.clone();
                let tap = AlertTap::new(
                    Box::new(writer),
                    n,
                    scores.alert_share,
                    Box::new(move |window| {
                        if alerts_tx.try_send(window).is_err() {
                            counted.alerts_dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }),
                );
                Box::new(
                    WindowMonitor::new(n, spec, params.frame_len, Box::new(TeeSink(sinks)), Box::new(tap))
                        .map_err(|e| Error::Config(e.to_string()))?,
                )
            }
        };

        // The trainer's tap holds one warm-up (or refit) segment, when there is a fit.
        let fits = fitter.is_some() || config.fits_room();
        let warm_frames = ((params.warmup_s * f64::from(rate)).round() as usize).max(1);
        if fits && warm_frames.saturating_mul(m) > MAX_BUFFERED_SAMPLES {
            return Err(Error::Config(format!(
                "--warmup {} s of {m} channels at {rate} Hz is more than the {MAX_BUFFERED_SAMPLES} samples a \
                 segment may hold; warm up for less",
                params.warmup_s
            )));
        }
        // A session that fits nothing (a model given and no refits, or the online
        // separator) never reads the tap: its ring is not sized for a segment, and its
        // --warmup (unused) is not held to the segment bound.
        let tap_frames = if fits { warm_frames.max(params.frame_len) * 2 } else { 1 };
        let (tap_writer, tap_reader) = FrameRing::new(m, tap_frames);
        let (models_tx, models_rx) = crossbeam_channel::bounded::<Encoder>(1);
        let (retired_tx, retired_rx) = crossbeam_channel::bounded::<Encoder>(2);
        let current = match online {
            Some(online) => Some(Encoder::Online(Box::new(online))),
            None => params
                .model
                .as_ref()
                .map(|model| Encoder::new(model, scored, params.kernel))
                .transpose()
                .map_err(|e| Error::Config(e.to_string()))?,
        };
        let processor = LiveProcessor {
            m,
            n,
            scored,
            current,
            models: models_rx,
            retired: retired_tx,
            tap: fits.then_some(tap_writer),
            tap_after_first_model: params.refit_s.is_some(),
            tap_active: fits,
            frames_done: 0,
            shared: shared.clone(),
        };
        let source = LiveSource {
            reader,
            meter: input.meter.clone(),
            output_meter: output.as_ref().map(|o| o.meter.clone()),
            shared: shared.clone(),
            channels: m,
            sample_rate_hz: rate,
            stall_timeout: params.stall_timeout,
            last_data: Instant::now(),
        };
        let pipeline = Pipeline::start(
            Box::new(source),
            Box::new(processor),
            sink,
            PipelineConfig {
                read_frames: params.frame_len,
                frame_len: params.frame_len,
                // As long as the input ring (`--ring-seconds`), at least a second: a burst
                // the device's ring absorbed is not dropped on the way to the processor.
                ring_frames: ((params.input.ring_s * f64::from(rate)).ceil() as usize)
                    .max(rate as usize)
                    .max(8 * params.frame_len),
                policy: Policy::DropAndCount,
            },
        )?;
        let trainer = Trainer {
            config: config.clone(),
            fitter,
            tap: tap_reader,
            sample_rate_hz: rate,
            models: models_tx,
            retired: retired_rx,
            shared: shared.clone(),
        };
        let trainer = std::thread::Builder::new()
            .name("unmix-trainer".into())
            .spawn(move || trainer_loop(trainer))
            .map_err(|e| Error::Config(format!("cannot start the trainer thread: {e}")))?;
        Ok(Self {
            input,
            output,
            pipeline,
            trainer,
            shared,
            started: Instant::now(),
            frame_len: params.frame_len,
            separator: config.params().domain.separator(),
            latency_frames: config.latency_frames(),
            alerts,
            record_clipping,
        })
    }

    /// The alerts (with `scores`): each window whose outlier share goes above the alert
    /// level, in order, as it closes. The handle outlives [`LiveSession::wait`], which
    /// closes the last windows.
    pub fn alerts(&self) -> Receiver<WindowShares> {
        self.alerts.clone()
    }

    /// What was negotiated with the input device.
    pub fn negotiated(&self) -> &Negotiated {
        &self.input.negotiated
    }

    /// The output device's id and channel count, if one is open.
    pub fn output_device(&self) -> Option<(&str, usize)> {
        self.output.as_ref().map(|o| (o.device.as_str(), o.channels))
    }

    /// Whether the session has ended (end of input, duration, device error or stall).
    pub fn is_finished(&self) -> bool {
        self.pipeline.is_finished()
    }

    /// Asks the session to end (Ctrl-C): the input stops, what was captured is processed
    /// and the sinks are finished.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
    }

    /// A status reading; resets the input peak meters.
    pub fn status(&self) -> Status {
        let view = StatusView { started: self.started, frame_len: self.frame_len, negotiated: &self.input.negotiated };
        let output = self.output.as_ref().map(|o| &*o.meter);
        status_from(&self.input.meter, output, &self.pipeline.report(), &self.shared, &view)
    }

    /// Waits for every thread and returns the report. The recording is finalised whenever
    /// the session ended without a pipeline error.
    pub fn wait(self) -> Result<LiveReport> {
        let LiveSession {
            input,
            output,
            pipeline,
            trainer,
            shared,
            started,
            frame_len,
            separator,
            latency_frames,
            alerts: _,
            record_clipping,
        } = self;
        let report = pipeline.wait();
        // A trainer waiting for frames sees `stop`; one in the middle of a fit sees the
        // cancel token at its next epoch (tens of milliseconds) and gives up that fit.
        shared.stop.store(true, Ordering::Release);
        shared.cancel_training.cancel();
        let model = trainer.join().ok().flatten();
        let report = report?;
        let view = StatusView { started, frame_len, negotiated: &input.negotiated };
        let status = status_from(&input.meter, output.as_ref().map(|o| &*o.meter), &report, &shared, &view);
        let first = shared.first_model_frame.load(Ordering::Relaxed);
        let room = shared.room_model_frame.load(Ordering::Relaxed);
        let device_error =
            input.error.try_recv().ok().or_else(|| output.as_ref().and_then(|o| o.error.try_recv().ok()));
        let end = shared.end();
        let InputHalf { _keep_alive, negotiated, .. } = input;
        // Stop the device before reporting.
        drop(_keep_alive);
        Ok(LiveReport {
            input: negotiated,
            output_device: output.as_ref().map(|o| o.device.clone()),
            end,
            device_error,
            status,
            pipeline: report,
            first_model_frame: (first != u64::MAX).then_some(first),
            room_model_frame: (room != u64::MAX).then_some(room),
            separator,
            latency_frames,
            last_alignment: shared.last_alignment.lock().map(|v| v.clone()).unwrap_or_default(),
            fit_error: shared.fit_error.lock().ok().and_then(|e| e.clone()),
            record_clipped: record_clipping.map(|c| (c.samples(), c.peak())),
            model,
        })
    }
}

/// What the session keeps of the input once its ring reader went to the source thread.
struct InputHalf {
    _keep_alive: Box<dyn std::any::Any + Send>,
    meter: Arc<InputMeter>,
    negotiated: Negotiated,
    error: Receiver<String>,
}
