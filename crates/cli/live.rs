//! `unmix devices` and `unmix live`: live demixing of a multichannel audio input.
//!
//! Both need the `live` cargo feature (cpal, ALSA headers); without it they say how to
//! enable it and exit non-zero.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use clap::Args;
use unmix_core::limits::{MAX_BLOCK_FRAMES, MAX_CHANNELS};
use unmix_io::ChannelSelection;

use crate::bounds;

/// Arguments of `unmix devices`.
#[derive(Args, Debug, Clone)]
pub struct DevicesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `unmix live`.
#[derive(Args, Debug, Clone)]
pub struct LiveArgs {
    /// Input device: `default`, an id from `unmix devices` (`alsa:hw:1,0`), or the part
    /// after the host (`hw:1,0`).
    #[arg(long, default_value = "default")]
    pub input: String,
    /// Input channels M: the first M of the device (default: the model's count).
    #[arg(long, value_parser = bounds::between(1, MAX_CHANNELS))]
    pub channels: Option<usize>,
    /// Device channels to use instead, in this order: numbers from 1 and ranges, e.g. `3-6`
    /// for an array on inputs 3 to 6 (the device is opened wide enough to reach them).
    /// With `--model`, the channels the model was trained on (`separate --channels`) are
    /// used unless given this.
    #[arg(long, value_name = "LIST")]
    pub pick: Option<ChannelSelection>,
    /// Sources N to separate.
    #[arg(short = 'n', long = "sources", value_parser = bounds::between(1, MAX_CHANNELS))]
    pub sources: usize,
    /// Seconds of sound buffered and fitted before separating (output is silence until
    /// then; default 10 s; frames of digital silence, every channel exactly 0, are passed
    /// over). With --domain stft the online separator runs from the first
    /// frame and a room's model fitted on this much sound takes over (default 3 s per
    /// source beyond the first: 3 s for 2 talkers, 6 s for 3).
    #[arg(long, value_parser = parse_seconds)]
    pub warmup: Option<f64>,
    /// Start separating at once with this model (from `unmix separate`). With --domain
    /// stft, a room's model (from `separate --domain stft` on a recording of the same
    /// array and places), with its STFT: its spatial model fixed, every source's power
    /// learnt frame by frame, as `apply` runs it (or its demixing adapted: --adapt).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Keep re-fitting on the latest warm-up-long segment every this many seconds; each
    /// new model keeps the previous one's channel order and signs, and its kind (a
    /// saturating chain given with `--model` is refitted as one, which takes 14 s on one
    /// core for 10 000 frames of 3 channels and grows with the segment, at most 16 384
    /// frames).
    #[arg(long, value_parser = parse_seconds)]
    pub refit: Option<f64>,
    /// Stop after this much input (`30s`, `2m`, or seconds); default: until Ctrl-C.
    #[arg(long, value_parser = parse_seconds)]
    pub duration: Option<f64>,
    /// Output device for the sources.
    #[arg(long)]
    pub output: Option<String>,
    /// Play only source K (1-based) on every output channel.
    #[arg(long, requires = "output")]
    pub listen: Option<usize>,
    /// Record the sources to this WAV, finalised at the end.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Sample format of the recording: 32-bit float keeps any level; 16- or 24-bit integer
    /// PCM clips what is beyond full scale (counted, and warned about at the end).
    #[arg(long, value_enum, default_value_t = crate::apply::WavFormatArg::Float, requires = "record")]
    pub wav_format: crate::apply::WavFormatArg,
    /// Write the sources as raw interleaved f32 little-endian to stdout (`--raw -`).
    #[arg(long)]
    pub raw: Option<String>,
    /// Write per-window monitoring scores to this CSV as the session runs (columns as in
    /// `unmix apply --scores`), each row on disk as its window closes, so it can be
    /// followed (`tail -f`); frames before the first model carry no score (NaN). A window
    /// whose outlier share is above `--alert-share` prints an `alert:` line at once.
    #[arg(long, value_name = "CSV")]
    pub scores: Option<PathBuf>,
    #[command(flatten)]
    pub windows: crate::apply::WindowArgs,
    #[command(flatten)]
    pub kernel: crate::kernel::KernelArgs,
    /// Sample rate, Hz (default: the device's default rate).
    #[arg(long)]
    pub rate: Option<u32>,
    /// Device buffer, frames (default: the device's choice).
    #[arg(long)]
    pub buffer: Option<u32>,
    /// Frames processed at a time.
    #[arg(long, default_value_t = 256, value_parser = bounds::between(1, MAX_BLOCK_FRAMES))]
    pub frame: usize,
    /// `time`: a model of one sample of every channel, fitted on the warm-up (or
    /// --model), for instantaneous mixtures; `stft`: online independent vector analysis
    /// in the frequency domain, for rooms, where every microphone hears each talker
    /// through its own echoes — it adapts from the first frame (from a room's --model
    /// when given), and unless --online-only a room's model fitted on the first --warmup
    /// seconds takes over, keeping every talker on its channel; each source is its image
    /// at the first channel, and the sources lag the input by one STFT frame.
    #[arg(long, value_enum, default_value_t = crate::separate::args::DomainArg::Time)]
    pub domain: crate::separate::args::DomainArg,
    /// Where a PDGMM-VAE given by --model refits, as `separate --device` (the warm-up's
    /// linear model does not train with burn).
    #[arg(long, value_enum, default_value_t = crate::separate::args::DeviceArg::Cpu)]
    pub device: crate::separate::args::DeviceArg,
    /// --domain stft: each source's prior over its spectral vector.
    #[arg(long, value_enum, default_value_t = OnlinePriorArg::LowRank)]
    pub prior: OnlinePriorArg,
    /// --domain stft: samples per STFT frame (about the room's reverberation time; the
    /// sources lag the input by this less one).
    #[arg(long, default_value_t = 2048, value_parser = bounds::between(4, 65_536))]
    pub stft_frame: usize,
    /// --domain stft: samples between frames (a divisor of the frame, at most half).
    #[arg(long, default_value_t = 512, value_parser = bounds::at_least_one())]
    pub stft_hop: usize,
    /// --domain stft with --prior low-rank: non-negative bases per source.
    #[arg(long, default_value_t = 2, value_parser = bounds::between(1, 64))]
    pub stft_bases: usize,
    /// --domain stft: the statistics' forgetting factor per frame, below 1; they remember
    /// about hop / (1 − factor) samples (3.2 s at 16 kHz with the defaults).
    #[arg(long, default_value_t = 0.99)]
    pub forgetting: f64,
    /// --domain stft: the online separator alone, without the room's model that is
    /// otherwise fitted on the warm-up and takes over.
    #[arg(long)]
    pub online_only: bool,
    /// --domain stft with a room's --model: the online separator started from the model's
    /// demixing and adapted frame by frame (it follows a talker who moves), instead of
    /// the model's spatial model run fixed (ahead where the talkers stay where they were).
    #[arg(long)]
    pub adapt: bool,
    /// Capacity of the input ring, seconds (overruns are dropped and counted).
    #[arg(long, default_value = "2", value_parser = parse_seconds)]
    pub ring_seconds: f64,
    /// End the session when the input delivers nothing for this many seconds.
    #[arg(long, default_value = "2", value_parser = parse_seconds)]
    pub stall_seconds: f64,
    /// No status line.
    #[arg(long)]
    pub quiet: bool,
    /// Print the per-stage statistics at the end (processing load among them).
    #[arg(long)]
    pub stats: bool,
    /// Write the session report as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Save the model in use at the end (the warm-up fit or the last refit) here, to start
    /// the next session at once with `--model`; in a room (`--domain stft`), the room's
    /// model fitted on its first seconds, its sources in the session's order, for `apply`
    /// or the next session's `--model`.
    #[arg(long)]
    pub save_model: Option<PathBuf>,
    /// Overwrite existing files given to --record, --scores, --report and --save-model.
    #[arg(long)]
    pub force: bool,
}

impl LiveArgs {
    /// The files the session writes, refused when one exists already (and not `--force`):
    /// checked before the device opens, so an old recording is never replaced by accident.
    /// Returns whether one of them is the standard output (`-`), which the statistics
    /// table then leaves to the data.
    #[cfg_attr(not(feature = "live"), allow(dead_code))]
    fn check_outputs(&self) -> Result<bool> {
        let raw = self.raw.as_ref().map(|_| Path::new("-"));
        let outputs = crate::output::check_outputs(
            &[
                ("--raw", raw),
                ("--record", self.record.as_deref()),
                ("--scores", self.scores.as_deref()),
                ("--report", self.report.as_deref()),
                ("--save-model", self.save_model.as_deref()),
            ],
            self.force,
        )?;
        Ok(outputs.iter().flatten().any(|out| out.is_stdout()))
    }
}

/// The prior of `live --domain stft`'s sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnlinePriorArg {
    /// Each source's power a low-rank non-negative model learnt as it goes (ILRMA's).
    #[value(name = "low-rank")]
    LowRank,
    /// Each source a Gaussian with one variance per frame.
    Gauss,
    /// AuxIVA's spherical Laplace density.
    Laplace,
}

impl LiveArgs {
    /// `--warmup`, or its default: 10 s to fit a model of the time domain; in a room, 3 s
    /// of sound per source beyond the first for its model to take over from the online
    /// separator (on the live room benchmark 2 talkers gained most from 3 s — 2 s too
    /// little to fit, 4 or 5 s later to take over — and 3 talkers lost to the online
    /// separator alone with 3 s and gained with 6 or 8 s:
    /// `docs/results.md#the-rooms-model-taking-over`).
    #[cfg(feature = "live")]
    pub fn warmup_s(&self) -> f64 {
        use crate::separate::args::DomainArg;
        let room = 3.0 * self.sources.saturating_sub(1).max(1) as f64;
        self.warmup.unwrap_or(if self.domain == DomainArg::Stft { room } else { 10.0 })
    }

    /// The domain the session separates in: with `--domain stft` the online separator's
    /// settings, and a `room`'s model to start from when given; the options of the other
    /// domain refused when given.
    #[cfg(feature = "live")]
    fn online(&self, room: Option<&unmix_format::RoomModel>) -> Result<unmix_live::LiveDomain> {
        use crate::separate::args::DomainArg;
        use unmix_freq::{OnlineConfig, SourcePrior, StftConfig};
        use unmix_live::{LiveDomain, RoomStart};
        let model_name = || self.model.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
        if self.domain == DomainArg::Time {
            if self.online_only {
                bail!("--online-only is the frequency domain's: --domain stft");
            }
            if self.adapt {
                bail!("--adapt is the frequency domain's: --domain stft with a room's --model");
            }
            if room.is_some() {
                bail!("{}: a room's model (the frequency domain): run it with --domain stft", model_name());
            }
            return Ok(LiveDomain::Time);
        }
        if self.model.is_some() && room.is_none() {
            bail!(
                "{}: a model of the time domain; --domain stft starts from a room's model (from `separate --domain \
                 stft`) or from nothing",
                model_name()
            );
        }
        let prior = match self.prior {
            OnlinePriorArg::LowRank => SourcePrior::LowRank { bases: self.stft_bases },
            OnlinePriorArg::Gauss => SourcePrior::Gauss,
            OnlinePriorArg::Laplace => SourcePrior::Laplace,
        };
        // A room's model brings its STFT and reference: its demixing is per bin of them.
        let (stft, reference) = match room {
            Some(room) => {
                let h = &room.header;
                if h.sources != self.sources {
                    bail!("{}: a room's model of {} sources, not -n {}", model_name(), h.sources, self.sources);
                }
                let stored = unmix_freq::room_online_config(h);
                (stored.stft, stored.reference)
            }
            None => (StftConfig { frame: self.stft_frame, hop: self.stft_hop }, 0),
        };
        let config = OnlineConfig { stft, forgetting: self.forgetting, prior, reference };
        config.stft.check()?;
        if !(config.forgetting > 0.0 && config.forgetting < 1.0) {
            bail!("--forgetting {}: a factor between 0 and 1", config.forgetting);
        }
        if self.online_only && room.is_some() {
            bail!("--online-only: a room's --model is already what the session runs from the first frame");
        }
        if self.adapt && room.is_none() {
            bail!("--adapt: starts from a room's --model (from `separate --domain stft`)");
        }
        if self.save_model.is_some() && (self.online_only || room.is_some()) {
            bail!(
                "--save-model: {} fits no room's model to save (without it the session saves the one of its first \
                 seconds)",
                if self.online_only { "--online-only" } else { "a session started from a room's --model" }
            );
        }
        Ok(match room {
            Some(room) => LiveDomain::StftFrom(std::sync::Arc::new(RoomStart {
                online: config,
                demixing: unmix_freq::stored_complex(&room.demixing),
                spatial: if self.adapt { None } else { unmix_freq::room_spatial_filter(room) },
                sample_rate_hz: room.header.sample_rate_hz,
            })),
            None if self.online_only => LiveDomain::Stft(config),
            None => LiveDomain::Room(config),
        })
    }
}

/// Arguments of `unmix play`.
#[derive(Args, Debug, Clone)]
pub struct PlayArgs {
    /// WAV file to play (its channel count and rate are used as they are).
    pub input: PathBuf,
    /// Output device (`unmix devices`).
    #[arg(long, default_value = "default")]
    pub output: String,
}

/// `30s`, `2m`, `1.5`, `250ms` → seconds.
pub fn parse_seconds(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim();
    let (number, scale) = if let Some(v) = t.strip_suffix("ms") {
        (v, 1e-3)
    } else if let Some(v) = t.strip_suffix('s') {
        (v, 1.0)
    } else if let Some(v) = t.strip_suffix('m') {
        (v, 60.0)
    } else if let Some(v) = t.strip_suffix('h') {
        (v, 3600.0)
    } else {
        (t, 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * scale),
        _ => Err(format!("'{s}' is not a positive duration (e.g. 10s, 1.5m, 250ms)")),
    }
}

/// The input channels M and which device channels (zero-based) deliver them: `--pick`,
/// else the model's pick, else the first `--channels` (or the model's count). `model` is
/// the model's channel count and pick.
#[cfg_attr(not(feature = "live"), allow(dead_code))]
fn input_channels(
    channels: Option<usize>,
    pick: Option<&ChannelSelection>,
    model: Option<(usize, Option<&str>)>,
    quiet: bool,
) -> Result<(usize, Option<Vec<usize>>)> {
    let model_pick = model.and_then(|(_, pick)| pick);
    let picked = match (pick, model_pick) {
        (Some(pick), _) => pick.numbers().map_err(|e| anyhow!("--pick {pick}: {e}"))?,
        (None, Some(spec)) => {
            let numbers = spec.parse::<ChannelSelection>().and_then(|s| s.numbers()).map_err(|e| {
                anyhow!("the model was trained on channels '{spec}' ({e}); choose device channels with --pick")
            })?;
            if let (Some(c), Some(p)) = (channels, &numbers)
                && c != p.len()
            {
                bail!(
                    "the model reads channels {spec} ({} channels), not --channels {c}; choose others with --pick",
                    p.len()
                );
            }
            if !quiet && numbers.is_some() {
                eprintln!("using device channels {spec} as the model was trained (--pick overrides)");
            }
            numbers
        }
        (None, None) => None,
    };
    let m = match (channels, &picked, model) {
        (Some(c), Some(p), _) if c != p.len() => bail!("--channels {c}, but {} channels are picked", p.len()),
        (_, Some(p), _) => p.len(),
        (Some(c), None, _) => c,
        (None, None, Some((model_channels, _))) => model_channels,
        (None, None, None) => bail!("say which input channels to use: --channels M, --pick LIST or --model"),
    };
    Ok((m, picked))
}

#[cfg(not(feature = "live"))]
const NOT_BUILT: &str = "live audio is not compiled into this build: install the ALSA headers \
     (apt install libasound2-dev) and rebuild with `cargo build --release --features live` \
     (add `--features jack` for JACK)";

#[cfg(not(feature = "live"))]
pub fn devices(_args: DevicesArgs) -> Result<()> {
    anyhow::bail!(NOT_BUILT)
}

#[cfg(not(feature = "live"))]
pub fn live(_args: LiveArgs) -> Result<()> {
    anyhow::bail!(NOT_BUILT)
}

#[cfg(not(feature = "live"))]
pub fn play(_args: PlayArgs) -> Result<()> {
    anyhow::bail!(NOT_BUILT)
}

#[cfg(feature = "live")]
pub use enabled::{devices, live, play};

#[cfg(feature = "live")]
mod enabled {
    use std::time::Duration;

    use anyhow::{Context, Result, anyhow, bail};
    use unmix_core::{CancelToken, Recording};
    use unmix_format::{AnyModel, ModelFile};
    use unmix_infer::Kernel;
    use unmix_live::{
        EndReason, FitError, FittedModel, InputSpec, LiveParams, LiveScores, LiveSession, ModelFitter, Status,
    };
    use unmix_separate::{ConsensusConfig, ModelChoice, PriorChoice, SeparateConfig, SeparateParams, SourceCount};

    use super::{DevicesArgs, LiveArgs, PlayArgs};
    use crate::apply::alert_line;

    pub fn play(args: PlayArgs) -> Result<()> {
        let (frames, underruns) = unmix_live::output::play_wav(&args.input, &args.output)
            .with_context(|| format!("{} on '{}'", args.input.display(), args.output))?;
        eprintln!(
            "played {frames} frames on {} ({underruns} frames of silence where the file did not keep up)",
            args.output
        );
        Ok(())
    }

    pub fn devices(args: DevicesArgs) -> Result<()> {
        let hosts = unmix_live::devices::list()?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&hosts)?);
            return Ok(());
        }
        for host in hosts {
            println!(
                "{} (default input: {}, default output: {})",
                host.name,
                host.default_input.as_deref().unwrap_or("none"),
                host.default_output.as_deref().unwrap_or("none")
            );
            for d in host.devices {
                println!("  {}  {}", d.id, d.description);
                for (what, ranges, default) in
                    [("in ", &d.inputs, &d.default_input), ("out", &d.outputs, &d.default_output)]
                {
                    if ranges.is_empty() {
                        continue;
                    }
                    let mut channels: Vec<u16> = ranges.iter().map(|r| r.channels).collect();
                    channels.sort_unstable();
                    channels.dedup();
                    let mut formats: Vec<&str> = ranges.iter().map(|r| r.sample_format.as_str()).collect();
                    formats.sort_unstable();
                    formats.dedup();
                    let lo = ranges.iter().map(|r| r.min_sample_rate_hz).min().unwrap_or(0);
                    let hi = ranges.iter().map(|r| r.max_sample_rate_hz).max().unwrap_or(0);
                    let channels = match (channels.first(), channels.last()) {
                        (Some(a), Some(b)) if a != b => format!("{a}–{b}"),
                        (Some(a), _) => a.to_string(),
                        _ => "?".into(),
                    };
                    let default =
                        default.as_ref().map(|(c, r, f)| format!("; default {c} ch, {r} Hz, {f}")).unwrap_or_default();
                    println!("    {what} {channels} channels, {lo}–{hi} Hz, {}{default}", formats.join("/"));
                }
            }
        }
        Ok(())
    }

    /// Most frames a live fit trains on (evenly strided from the warm-up or refit
    /// segment): a warm-up of 10 s at 48 kHz trains in seconds rather than minutes.
    const LIVE_FIT_FRAMES: usize = 16_384;

    /// The session's fits, by `unmix-separate`: each a fit of the stream's latest segment
    /// that continues the model before it.
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

    pub fn live(args: LiveArgs) -> Result<()> {
        let kernel = args.kernel.kernel()?;
        let stdout_taken = args.check_outputs()?;
        let (model, room) = match &args.model {
            Some(path) => match AnyModel::load(path).with_context(|| path.display().to_string())? {
                AnyModel::Time(model) => (Some(*model), None),
                AnyModel::Room(room) => (None, Some(*room)),
            },
            None => (None, None),
        };
        let domain = args.online(room.as_ref())?;
        let online = domain.online().copied();
        let fixed_room = domain.separator() == unmix_live::SeparatorKind::RoomModelFixed;
        if args.raw.as_deref().is_some_and(|r| r != "-") {
            bail!("--raw takes only '-' (stdout)");
        }
        if let Some(k) = args.listen
            && (k == 0 || k > args.sources)
        {
            bail!("--listen {k}: sources are numbered 1 to {}", args.sources);
        }
        // `separate`'s choice without the nonlinear models: the linear model, the one
        // `auto` keeps unless a nonlinear model wins, fits in a fraction of a second on one
        // thread (a core stays free for the audio callback and the separator), where the
        // chain's eight starts of full-batch descent and the post-nonlinear model's four
        // starts are too slow for a fit waited for live; `separate` trains them offline for
        // `live --model`, and the session refits a given one as its own kind (one thread
        // too).
        let mut separate = SeparateParams::new(SourceCount::Fixed(args.sources));
        separate.max_train_frames = LIVE_FIT_FRAMES;
        separate.restarts = ConsensusConfig { threads: 1, ..ConsensusConfig::single() };
        separate.chain.threads = 1;
        separate.post_nonlinear.threads = 1;
        separate.model = ModelChoice::Linear;
        // The warm-up's frames are strided, no longer in time order: no temporal prior
        // (a given model's is kept by its refits where their segment is not thinned).
        separate.prior = PriorChoice::Gmm;
        separate.kernel = kernel;
        separate.backend = args.device.backend(separate.backend);
        let monitoring = args.scores.clone().map(|path| args.windows.to(path)).transpose()?;
        let scores = monitoring.as_ref().map(|m| LiveScores {
            path: m.path.clone(),
            window_s: m.window_s,
            hop_s: m.hop_s,
            alert_share: m.alert_share,
        });
        let (channels, pick) = super::input_channels(
            args.channels,
            args.pick.as_ref(),
            model
                .as_ref()
                .map(|m| (m.header.channels, m.header.picked_channels.as_deref()))
                .or_else(|| room.as_ref().map(|r| (r.header.channels, r.header.picked_channels.as_deref()))),
            args.quiet,
        )?;
        let config = LiveParams {
            input: InputSpec {
                device: args.input.clone(),
                channels,
                pick,
                // A room's model runs at its own rate (the session refuses another).
                sample_rate_hz: args.rate.or(room.as_ref().map(|r| r.header.sample_rate_hz)),
                buffer_frames: args.buffer,
                ring_s: args.ring_seconds,
                stop_after_s: args.duration,
            },
            sources: args.sources,
            warmup_s: args.warmup_s(),
            model,
            refit_s: args.refit,
            frame_len: args.frame,
            output: args.output.clone().map(|d| (d, args.listen.map(|k| k - 1))),
            record: args.record.clone(),
            record_format: args.wav_format.into(),
            raw_stdout: args.raw.is_some(),
            scores,
            stall_timeout: Duration::try_from_secs_f64(args.stall_seconds.max(0.1))
                .map_err(|_| anyhow!("--stall-seconds {}: too long a wait", args.stall_seconds))?,
            kernel,
            domain,
        };
        let context = || format!("live input '{}'", args.input);
        let config = config.check().with_context(context)?;
        let fitter: Option<Box<dyn ModelFitter>> =
            if config.fits() { Some(Box::new(SeparateFitter(separate.check()?))) } else { None };
        let fits_room = config.fits_room();
        let session = LiveSession::start(config, fitter).with_context(context)?;
        let n = session.negotiated();
        let channels = match &n.picked {
            Some(picked) => {
                let list: Vec<String> = picked.iter().map(ToString::to_string).collect();
                format!("channels {} of {}", list.join(", "), n.device_channels)
            }
            None => format!("{} channels", n.channels),
        };
        eprintln!(
            "input {}: {channels}, {} Hz, {}, buffer {}",
            n.device,
            n.sample_rate_hz,
            n.sample_format,
            n.buffer_frames.map_or("device default".into(), |b| format!("{b} frames"))
        );
        for note in &n.notes {
            eprintln!("  {note}");
        }
        if let Some(online) = online {
            let frames = format!("frames of {} every {}", online.stft.frame, online.stft.hop);
            let (what, how) = if fixed_room {
                ("by the room's spatial model", format!("fixed; every source's power learnt frame by frame; {frames}"))
            } else {
                ("in the STFT domain", format!("prior: {}; {frames}; forgetting {}", online.prior, online.forgetting))
            };
            let takeover = if fits_room {
                format!("; a room's model of the first {} s takes over once fitted", args.warmup_s())
            } else {
                String::new()
            };
            eprintln!(
                "separating {what} as the input arrives ({how}): the sources lag the input by {} frames ({:.0} ms){takeover}",
                online.stft.frame - 1,
                1e3 * (online.stft.frame - 1) as f64 / f64::from(n.sample_rate_hz),
            );
        }
        if let Some((device, channels)) = session.output_device() {
            eprintln!("output {device}: {channels} channels");
        }
        let alerts = session.alerts();
        // Ctrl-C ends the session as --duration would (a second one exits at once).
        crate::interrupt::watch()?;
        let mut stopping = false;
        let mut last_status = std::time::Instant::now();
        while !session.is_finished() {
            std::thread::sleep(Duration::from_millis(20));
            if !stopping && crate::interrupt::requested() {
                stopping = true;
                session.stop();
            }
            // Alerts are printed even with --quiet: they are what monitoring is for.
            for window in alerts.try_iter() {
                eprintln!("{}", alert_line(&window, args.windows.alert_share));
            }
            if !args.quiet && last_status.elapsed() >= Duration::from_secs(1) {
                last_status = std::time::Instant::now();
                eprintln!("{}", status_line(&session.status()));
            }
        }
        let report = session.wait()?;
        for window in alerts.try_iter() {
            eprintln!("{}", alert_line(&window, args.windows.alert_share));
        }
        if !args.quiet {
            eprintln!("{}", status_line(&report.status));
        }
        let what = match report.end {
            EndReason::Duration => "reached --duration".to_string(),
            EndReason::Stopped => "stopped".to_string(),
            EndReason::Stalled => format!("the input delivered nothing for {} s", args.stall_seconds),
            EndReason::DeviceError => {
                format!("a device failed: {}", report.device_error.as_deref().unwrap_or("unknown error"))
            }
            EndReason::Running => "ended".to_string(),
        };
        eprintln!(
            "{what}: {} frames in, {} out, {} dropped",
            report.status.frames_in, report.status.frames_out, report.status.dropped_frames
        );
        if let Some(path) = &args.record {
            eprintln!("recorded {}", path.display());
            if let Some((clipped, peak)) = report.record_clipped.filter(|(n, _)| *n > 0) {
                eprintln!("{}", crate::apply::clip_warning(path, clipped, peak));
            }
        }
        if report.status.tap_dropped_frames > 0 {
            eprintln!(
                "warning: {} input frames did not reach the trainer (its buffer was full): the fit saw the input with \
                 gaps",
                report.status.tap_dropped_frames
            );
        }
        if report.status.alerts_dropped > 0 {
            eprintln!(
                "warning: {} alerts were not shown (their queue was full); the score rows have them",
                report.status.alerts_dropped
            );
        }
        if let Some(monitoring) = &monitoring {
            // The warm-up's windows carry no score and count in neither share.
            match monitoring.summary(args.sources) {
                Ok(summary) => eprintln!("monitoring: {summary} → {}", monitoring.path.display()),
                Err(e) => {
                    eprintln!("warning: monitoring scores in {} cannot be read back: {e}", monitoring.path.display())
                }
            }
        }
        if let Some(e) = &report.fit_error {
            eprintln!("warning: a fit failed: {e}");
        }
        if args.stats {
            // With an output on stdout (`--raw -`, `--record -`, …) the table goes to stderr.
            let table = stats_table(&report, kernel, online);
            if stdout_taken {
                eprint!("{table}");
            } else {
                print!("{table}");
            }
        }
        if let Some(path) = &args.save_model {
            match &report.model {
                Some(model) => {
                    model.save(path).with_context(|| path.display().to_string())?;
                    let what = if matches!(model, unmix_format::AnyModel::Room(_)) { "room's model" } else { "model" };
                    eprintln!("saved the {what} to {}", path.display());
                }
                None => eprintln!("warning: no finished model to save (the session ended before a fit completed)"),
            }
        }
        if let Some(path) = &args.report {
            let json = serde_json::to_string_pretty(&report)?;
            unmix_io::write_atomically(path, |w| {
                std::io::Write::write_all(w, json.as_bytes())
                    .map_err(|source| unmix_io::Error::Io { path: path.clone(), source })
            })?;
        }
        if report.end == EndReason::DeviceError {
            let kept = match (args.record.is_some(), args.scores.is_some()) {
                (true, true) => " (the recording and the scores were finalised)",
                (true, false) => " (the recording was finalised)",
                (false, true) => " (the scores were finalised)",
                (false, false) => "",
            };
            bail!("{}{kept}", report.device_error.as_deref().unwrap_or("a device failed"));
        }
        Ok(())
    }

    fn status_line(s: &Status) -> String {
        let levels: Vec<String> =
            s.input_peak_dbfs.iter().map(|d| if *d < -150.0 { "-inf".into() } else { format!("{d:.0}") }).collect();
        format!(
            "[{:6.1} s] in {} dBFS | latency {:.1} ms | load {:.2} % | drops {} | xruns {} | underruns {} | model {:?} ({} swaps)",
            s.elapsed_s,
            levels.join(" "),
            s.latency_ms,
            100.0 * s.load,
            s.dropped_frames,
            s.device_xruns,
            s.output_underrun_frames,
            s.model,
            s.swaps
        )
    }

    fn stats_table(
        report: &unmix_live::LiveReport,
        kernel: Kernel,
        online: Option<unmix_freq::OnlineConfig>,
    ) -> String {
        use std::fmt::Write;
        let p = &report.pipeline;
        let mut t = String::new();
        let _ =
            writeln!(t, "{:<10} {:>12} {:>12} {:>10} {:>12}", "stage", "frames in", "frames out", "busy s", "ns/frame");
        for s in &p.stages {
            let _ = writeln!(
                t,
                "{:<10} {:>12} {:>12} {:>10.3} {:>12.1}",
                s.stage, s.frames_in, s.frames_out, s.busy_s, s.ns_per_frame
            );
        }
        for r in &p.rings {
            let _ = writeln!(
                t,
                "ring {:<18} high water {:>8} frames, dropped {:>8}, underruns {:>8}",
                r.ring, r.high_water_frames, r.dropped_frames, r.underruns
            );
        }
        let s = &report.status;
        let _ = writeln!(
            t,
            "processing load: {:.3} % of one core at {} Hz (frames of {})",
            100.0 * s.load,
            report.input.sample_rate_hz,
            p.config.frame_len
        );
        match online {
            Some(online) => {
                let handed = report
                    .room_model_frame
                    .map(|k| format!(", the room's model from input frame {k}"))
                    .unwrap_or_default();
                let fixed = report.separator == unmix_live::SeparatorKind::RoomModelFixed;
                let what = if fixed { "a room's spatial model, fixed," } else { "online IVA" };
                let _ = writeln!(
                    t,
                    "separator: {what} in the STFT domain (frames of {} every {}){handed}, the sources {} frames late",
                    online.stft.frame, online.stft.hop, report.latency_frames
                );
            }
            None => {
                let _ = writeln!(t, "encoder kernel: {}", kernel.name());
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::input_channels;

    #[test]
    fn live_input_channels_from_the_options_and_the_model() {
        let pick = |s: &str| Some(s.parse().unwrap());
        let ok = |c, p: Option<_>, m| input_channels(c, p.as_ref(), m, true).unwrap();
        let err = |c, p: Option<_>, m| input_channels(c, p.as_ref(), m, true).unwrap_err().to_string();
        assert_eq!(ok(Some(4), None, None), (4, None));
        assert_eq!(ok(None, pick("3-6"), None), (4, Some(vec![2, 3, 4, 5])));
        assert_eq!(ok(Some(2), pick("8,1"), None), (2, Some(vec![7, 0])));
        // The model's count and pick stand in for the options, which override them.
        assert_eq!(ok(None, None, Some((3, None))), (3, None));
        assert_eq!(ok(None, None, Some((3, Some("2,4-5")))), (3, Some(vec![1, 3, 4])));
        assert_eq!(ok(Some(3), None, Some((3, Some("2,4-5")))), (3, Some(vec![1, 3, 4])));
        assert_eq!(ok(None, pick("1-3"), Some((3, Some("2,4-5")))), (3, Some(vec![0, 1, 2])));
        assert!(err(None, None, None).contains("--channels M, --pick LIST or --model"));
        assert!(err(Some(3), pick("1-4"), None).contains("--channels 3, but 4 channels are picked"));
        assert!(
            err(Some(5), None, Some((3, Some("2,4-5"))))
                .contains("reads channels 2,4-5 (3 channels), not --channels 5")
        );
        assert!(err(None, pick("mic"), None).contains("by number"));
        assert!(err(None, None, Some((2, Some("acc_x,acc_y")))).contains("choose device channels with --pick"));
    }
}
