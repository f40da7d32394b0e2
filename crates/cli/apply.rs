//! `unmix apply`, and the streaming application of a model that `separate` shares.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use indicatif::ProgressBar;
use unmix_core::{Processor, Sink, Source, plural};
use unmix_format::{AnyModel, ModelFile, RoomModel};
use unmix_freq::OnlineIva;
use unmix_infer::{Kernel, ScoredSeparator, Separator};
use unmix_io::{
    BlockReader, ChannelSelection, Clipping, CsvStreamWriter, StampLog, WavFormat, WavStreamWriter, input_name, is_csv,
    is_stdin,
};
use unmix_monitor::{AlertTap, ScoresSummary, WindowMonitor, WindowShares, WindowSpec, score_columns};
use unmix_stream::{EndAtError, Pipeline, PipelineConfig, PipelineReport, Prepended, SilenceAfter, SkipFirst, TeeSink};

/// Arguments of `unmix apply`.
#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Model file written by `unmix separate`.
    model: PathBuf,
    /// Input recording (WAV or CSV) with the model's channel count; `-` reads a stream from
    /// the standard input: CSV rows as a logger writes them, or a WAV as a recorder writes
    /// it (`arecord -t wav`; a header without the length is read to the end). CSV outputs
    /// are then flushed as they grow and windows above `--alert-share` print an alert at
    /// once; Ctrl-C ends the stream there, a WAV output completed as when the input ends;
    /// so does a bad row, which the command then fails on, naming it.
    input: PathBuf,
    /// Output file: `.csv` for CSV, anything else a WAV (see --wav-format). `-` writes a
    /// WAV to the standard output (its header says "to the end of the stream"), as does a
    /// FIFO; what the command says then goes to the standard error.
    #[arg(short, long)]
    output: PathBuf,
    /// Sample format of a WAV output: 32-bit float keeps any level; 16- or 24-bit integer
    /// PCM clips what is beyond full scale (counted, and warned about).
    #[arg(long, value_enum, default_value_t = WavFormatArg::Float)]
    wav_format: WavFormatArg,
    #[command(flatten)]
    input_channels: InputArgs,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
    /// Print per-stage statistics (frames, ring high-water marks, waits, time per frame).
    #[arg(long)]
    stats: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Also write per-window monitoring scores to this CSV: each window's start time,
    /// frame count, RMS of every source, mean and lowest log-prior of the sources under
    /// the learned priors, mean and highest reconstruction error, and the shares of frames
    /// beyond the training segment's 1st / 99th percentiles of the two (about 0.01 on
    /// data like it). A falling log-prior or a rising reconstruction error flags data
    /// unlike the training segment.
    #[arg(long, value_name = "CSV")]
    scores: Option<PathBuf>,
    /// Also plot the scores over time to this PNG once the input ends (as `separate
    /// --scores` does in scores.png), with the alert level marked.
    #[arg(long, value_name = "PNG", requires = "scores")]
    plot: Option<PathBuf>,
    #[command(flatten)]
    windows: WindowArgs,
    #[command(flatten)]
    pub kernel: crate::kernel::KernelArgs,
}

/// The sample format of written WAVs (`--wav-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WavFormatArg {
    /// 32-bit IEEE float.
    Float,
    /// 16-bit integer PCM.
    Int16,
    /// 24-bit integer PCM.
    Int24,
}

impl From<WavFormatArg> for WavFormat {
    fn from(arg: WavFormatArg) -> Self {
        match arg {
            WavFormatArg::Float => WavFormat::Float32,
            WavFormatArg::Int16 => WavFormat::Int16,
            WavFormatArg::Int24 => WavFormat::Int24,
        }
    }
}

/// Which channels of the input are used, and CSV's sample rate; shared by `apply` and
/// `separate`.
#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// Channels of the input to use, in this order: numbers from 1 and ranges, and for CSV
    /// also header names, e.g. `1-6` or `acc_x,acc_y,acc_z` (default: all but a CSV's
    /// leading time-stamp column). The others — an unused recorder channel, a CSV's
    /// temperature — are skipped unread.
    /// `apply` reads the channels the model was trained on unless given this.
    #[arg(long, value_name = "LIST")]
    pub channels: Option<ChannelSelection>,
    /// Sample rate of CSV input, in Hz (CSV carries none). Default: from a leading
    /// time-stamp column (`time`, `t`, `timestamp`, `time_ms`, …, which is then not a
    /// channel), else for `apply` the model's rate and for `separate` 1 Hz. `;`- and
    /// tab-separated files (decimal commas included) are recognised by themselves.
    #[arg(long, value_name = "HZ")]
    pub csv_rate: Option<u32>,
}

impl InputArgs {
    /// The picked channels.
    pub fn channels(&self) -> ChannelSelection {
        self.channels.clone().unwrap_or_default()
    }

    /// Opens `input` with the picked channels, a CSV at the rate `--csv-rate` gives, else
    /// its time stamps, else `fallback` (the model's rate; 1 Hz without a model). What was
    /// decided about a CSV is said on stderr unless `quiet`.
    pub fn open(&self, input: &Path, fallback: Option<u32>, quiet: bool) -> Result<BlockReader> {
        let mut reader = BlockReader::open_selected(input, self.csv_rate.unwrap_or(1), &self.channels())?;
        if matches!(reader, BlockReader::Wav(_)) {
            return Ok(reader); // its header has the rate
        }
        let name = input_name(input);
        let time = reader.time_column().map(|(name, skipped)| (name.to_string(), skipped));
        // A pipe's rows are not read ahead when the rate is given: a slow logger would
        // hold the start back.
        let step = match (&time, self.csv_rate, is_stdin(input)) {
            (Some(_), Some(_), true) | (None, _, _) => None,
            _ => reader.time_step_s()?,
        };
        let from_stamps = step.map(|s| 1.0 / s);
        // Rates are whole hertz (as in WAV and the model file): a stamp rate within 1 % of
        // one is taken; another at or above 1 Hz needs the user's word; below 1 Hz the
        // fallback is all there is.
        let rate = match (self.csv_rate, from_stamps) {
            (Some(hz), _) => hz,
            (None, Some(hz)) if hz >= 0.99 && (hz - hz.round()).abs() <= 0.01 * hz => hz.round() as u32,
            (None, Some(hz)) if hz >= 1.0 => bail!(
                "{name}: its time stamps step {:.6} s ({hz:.4} Hz), not a whole number of hertz; give the rate with --csv-rate",
                1.0 / hz
            ),
            _ => fallback.unwrap_or(1),
        };
        reader.set_csv_sample_rate_hz(rate);
        if !quiet {
            let stamps = |column: &str, skipped: bool| {
                format!("column '{column}' is its time stamps{}", if skipped { " (not a channel)" } else { "" })
            };
            let said = match (self.csv_rate, &time, from_stamps) {
                (None, Some((column, skipped)), Some(hz)) if hz >= 0.99 => {
                    format!("{}: {rate} Hz", stamps(column, *skipped))
                }
                (None, Some((column, skipped)), Some(hz)) => format!(
                    "{}; they say {hz:.4} Hz, below the 1 Hz a rate can be: rows taken at {rate} Hz (--csv-rate)",
                    stamps(column, *skipped)
                ),
                (None, Some((column, skipped)), None) => {
                    format!("{}; they give no rate, rows taken at {rate} Hz (--csv-rate)", stamps(column, *skipped))
                }
                (None, None, _) if fallback.is_some() => {
                    format!("rows taken at the model's rate, {rate} Hz (--csv-rate)")
                }
                (None, None, _) => format!("no --csv-rate: rows taken as {rate} Hz"),
                (Some(_), Some((column, skipped)), Some(hz)) if (hz - f64::from(rate)).abs() > 0.01 * hz => {
                    format!("{}; they say {hz:.2} Hz, taken at --csv-rate {rate} Hz", stamps(column, *skipped))
                }
                (Some(_), Some((column, true)), _) => stamps(column, true),
                (Some(_), _, _) => return Ok(reader),
            };
            eprintln!("{name}: {said}");
        }
        Ok(reader)
    }

    /// These settings, with the channels the model was trained on (`picked`, from its
    /// header) when none are given.
    pub fn or_model(&self, picked: Option<&String>, input: &Path, quiet: bool) -> Result<Self> {
        let (None, Some(spec)) = (&self.channels, picked) else {
            return Ok(self.clone());
        };
        let channels: ChannelSelection = spec
            .parse()
            .map_err(|e| anyhow::anyhow!("the model's picked channels '{spec}' do not read as a list: {e}"))?;
        if let (false, Some(name)) = (is_csv(input) || is_stdin(input), channels.first_name()) {
            bail!(
                "trained on CSV columns picked by name ({spec}: '{name}'), but {} is read as WAV; \
                 pick its channels by number with --channels",
                input.display()
            );
        }
        if !quiet {
            eprintln!(
                "reading channels {spec} of {} as the model was trained (--channels overrides)",
                input_name(input)
            );
        }
        Ok(Self { channels: Some(channels), ..self.clone() })
    }
}

/// The monitoring windows, shared by `apply` and `separate`.
#[derive(Args, Debug, Clone)]
pub struct WindowArgs {
    /// Length of a monitoring window, in seconds.
    #[arg(long, default_value_t = 1.0, value_parser = crate::bounds::seconds)]
    pub window_s: f64,
    /// Hop between the starts of two monitoring windows, in seconds (default: the window
    /// length; shorter hops overlap the windows).
    #[arg(long, value_parser = crate::bounds::seconds)]
    pub hop_s: Option<f64>,
    /// Share of outlying frames above which a window counts as unusual in the summary
    /// printed at the end (data like the training segment give about 0.01).
    #[arg(long, default_value_t = 0.05, value_parser = crate::bounds::share)]
    pub alert_share: f32,
}

/// Where the monitoring scores go and how the stream is windowed, in seconds.
pub struct Monitoring {
    /// The score CSV.
    pub path: PathBuf,
    /// Window length, seconds.
    pub window_s: f64,
    /// Hop, seconds.
    pub hop_s: f64,
    /// Outlier share that makes a window unusual in the summary.
    pub alert_share: f32,
}

impl WindowArgs {
    /// The checked settings writing to `path`.
    pub fn to(&self, path: PathBuf) -> Result<Monitoring> {
        let hop_s = self.hop_s.unwrap_or(self.window_s);
        for (name, value) in [("--window-s", self.window_s), ("--hop-s", hop_s)] {
            if !(value.is_finite() && value > 0.0) {
                bail!("{name} {value}: must be a positive number of seconds");
            }
        }
        if hop_s > self.window_s {
            bail!("--hop-s {hop_s} is longer than --window-s {}: windows would leave gaps", self.window_s);
        }
        if !(self.alert_share > 0.0 && self.alert_share < 1.0) {
            bail!("--alert-share {}: must be a share between 0 and 1", self.alert_share);
        }
        Ok(Monitoring { path, window_s: self.window_s, hop_s, alert_share: self.alert_share })
    }
}

impl Monitoring {
    /// The windows in frames at `sample_rate_hz`.
    pub fn spec(&self, sample_rate_hz: u32) -> Result<WindowSpec> {
        Ok(WindowSpec::from_seconds(self.window_s, self.hop_s, sample_rate_hz)?)
    }

    /// The written score rows at a glance.
    pub fn summary(&self, sources: usize) -> Result<ScoresSummary> {
        let rows = unmix_io::read_csv(&self.path, 1)?;
        Ok(ScoresSummary::of(rows.interleaved(), sources, self.alert_share))
    }
}

pub fn run(args: ApplyArgs) -> Result<()> {
    let kernel = args.kernel.kernel()?;
    let model = match AnyModel::load(&args.model).with_context(|| args.model.display().to_string())? {
        AnyModel::Time(model) => *model,
        AnyModel::Room(room) => return run_room(&args, &room),
    };
    let monitoring = args.scores.clone().map(|path| args.windows.to(path)).transpose()?;
    let outputs = crate::output::check_outputs(
        &[
            ("-o", Some(&args.output)),
            ("--scores", monitoring.as_ref().map(|m| m.path.as_path())),
            ("--plot", args.plot.as_deref()),
        ],
        args.force,
    )?;
    if let Some(plot) = &args.plot {
        crate::output::check_plot("--plot", plot)?;
    }
    let scores_streamed = outputs[1].as_ref().is_some_and(|out| out.is_stream());
    if scores_streamed && args.plot.is_some() {
        bail!("--plot draws the scores from the --scores file, which is a stream here; give --scores a file");
    }
    // With sources or scores on standard output, what is said goes to standard error.
    let stdout_taken = outputs.iter().flatten().any(|out| out.is_stdout());
    let say = |line: &str| if stdout_taken { eprintln!("{line}") } else { println!("{line}") };
    let picked = args
        .input_channels
        .or_model(model.header.picked_channels.as_ref(), &args.input, args.quiet)
        .with_context(|| args.model.display().to_string())?;
    let started = Instant::now();
    let output = Output { path: &args.output, wav_format: args.wav_format.into() };
    let options = ApplyOptions { progress: !args.quiet, monitoring: monitoring.as_ref(), kernel };
    let applied = apply_file(&model, &args.input, &[output], &picked, &options)?;
    let sources = model.header.sources;
    let wall = started.elapsed().as_secs_f64();
    let seconds = applied.frames as f64 / f64::from(applied.sample_rate_hz.max(1));
    say(&format!(
        "separated {} into {} in {wall:.2} s ({}) → {}{}",
        plural(applied.frames, "frame"),
        plural(sources, "source"),
        speed(seconds, wall),
        args.output.display(),
        ending(&applied)
    ));
    if let Some(monitoring) = &monitoring {
        if scores_streamed {
            say(&format!("monitoring: scores written to {} (a stream: no summary)", monitoring.path.display()));
        } else {
            say(&format!("monitoring: {} → {}", monitoring.summary(model.header.sources)?, monitoring.path.display()));
        }
        if let Some(path) = &args.plot {
            let scores = unmix_io::read_csv(&monitoring.path, 1)?;
            let (sources, share) = (model.header.sources, monitoring.alert_share);
            crate::output::replace_atomically(path, |tmp| {
                crate::plot::monitoring(tmp, &scores, sources, share)
                    .with_context(|| format!("{}: cannot draw the plot", path.display()))
            })?;
            say(&format!("plotted the scores → {}", path.display()));
        }
    }
    finish(&args, applied, Some(kernel), &say)
}

/// `unmix apply` with a room's model, frame by frame ([`unmix_freq::room_separator`]).
fn run_room(args: &ApplyArgs, model: &RoomModel) -> Result<()> {
    if args.scores.is_some() {
        bail!(
            "--scores: {} is a room's model, which has no learned priors to score frames against",
            args.model.display()
        );
    }
    let outputs = crate::output::check_outputs(&[("-o", Some(&args.output))], args.force)?;
    let stdout_taken = outputs.iter().flatten().any(|out| out.is_stdout());
    let say = |line: &str| if stdout_taken { eprintln!("{line}") } else { println!("{line}") };
    let picked = args
        .input_channels
        .or_model(model.header.picked_channels.as_ref(), &args.input, args.quiet)
        .with_context(|| args.model.display().to_string())?;
    let started = Instant::now();
    let output = Output { path: &args.output, wav_format: args.wav_format.into() };
    let options = ApplyOptions { progress: !args.quiet, monitoring: None, kernel: Kernel::best() };
    let applied = apply_room(model, &args.input, &[output], &picked, &options)?;
    let wall = started.elapsed().as_secs_f64();
    let seconds = applied.frames as f64 / f64::from(applied.sample_rate_hz.max(1));
    let h = &model.header;
    say(&format!(
        "separated {} into {} in {wall:.2} s ({}) by the room's {} (STFT {} / {}, each source its image at \
         channel {}) → {}{}",
        plural(applied.frames, "frame"),
        plural(h.sources, "source"),
        speed(seconds, wall),
        if model.spatial.is_some() { "spatial model, its powers learnt frame by frame" } else { "filters" },
        h.stft_frame,
        h.stft_hop,
        h.reference + 1,
        args.output.display(),
        ending(&applied)
    ));
    finish(args, applied, None, &say)
}

/// What every `apply` ends with: the stage table with --stats (`kernel`: the encoder's,
/// `None` for a room's model), the time stamps' warning, and the error that ended a
/// stream, if one did.
fn finish(args: &ApplyArgs, applied: Applied, kernel: Option<Kernel>, say: &dyn Fn(&str)) -> Result<()> {
    if let (true, Some(report)) = (args.stats, &applied.pipeline) {
        say(stats_table(report, kernel).trim_end());
    }
    warn_of_stamps(&args.input, applied.stamps.as_deref());
    match applied.input_error {
        Some(e) => bail!(e),
        None => Ok(()),
    }
}

/// How fast a job ran against the length of its input, to two significant digits at
/// least: "120× real time", "3.5× real time", "0.025× real time" (a short input, or a
/// slow job), never a bare "0×".
pub fn speed(input_s: f64, wall_s: f64) -> String {
    let factor = input_s / wall_s.max(1e-9);
    let decimals = match factor {
        f if f >= 10.0 || f <= 0.0 || !f.is_finite() => 0,
        f => (1 - f.log10().floor() as i32).clamp(1, 9) as usize,
    };
    format!("{factor:.decimals$}× real time")
}

/// Frames a stream is read in: 50 ms, so that a slow logger's rows (and Ctrl-C) are seen
/// as they come, at most `max`.
pub fn stream_block_frames(sample_rate_hz: u32, max: usize) -> usize {
    (sample_rate_hz as usize / 20).clamp(1, max)
}

/// How a stream ended before its input did, for the summary line.
pub fn ending(applied: &Applied) -> &'static str {
    match (applied.stopped, &applied.input_error) {
        (_, Some(_)) => " (ended by an input error)",
        (true, None) => match crate::interrupt::what_stopped() {
            "Ctrl-C" => " (stopped by Ctrl-C)",
            "SIGTERM" => " (stopped by SIGTERM)",
            "SIGHUP" => " (stopped by SIGHUP)",
            _ => " (stopped by a signal)",
        },
        (false, None) => "",
    }
}

/// What applying a model to a file did.
pub struct Applied {
    /// Frames processed.
    pub frames: usize,
    /// Pipeline counters, when the input was streamed.
    pub pipeline: Option<PipelineReport>,
    /// Whether Ctrl-C ended a stream before its input did (its outputs are complete).
    pub stopped: bool,
    /// The input's sample rate (a CSV's is `--csv-rate`, not the model's).
    pub sample_rate_hz: u32,
    /// The error that ended a stream (`-`) before its input did: the command's outputs
    /// are complete up to it, and it fails with this once they are written.
    pub input_error: Option<String>,
    /// How evenly a CSV's time stamps stepped, with a time-stamp column.
    pub stamps: Option<Arc<StampLog>>,
}

/// Per-stage and per-ring statistics as a terminal table.
pub fn stats_table(r: &PipelineReport, kernel: Option<Kernel>) -> String {
    let mut out = String::from("stage       frames in   frames out   blocks    busy s   ns/frame\n");
    for s in &r.stages {
        out += &format!(
            "{:<10} {:>10} {:>12} {:>8} {:>9.3} {:>10.1}\n",
            s.stage, s.frames_in, s.frames_out, s.blocks, s.busy_s, s.ns_per_frame
        );
    }
    out += "ring               high-water   dropped  underruns  full-waits\n";
    for ring in &r.rings {
        out += &format!(
            "{:<18} {:>10} {:>9} {:>10} {:>11}\n",
            ring.ring, ring.high_water_frames, ring.dropped_frames, ring.underruns, ring.full_waits
        );
    }
    out += &format!("wall {:.3} s\n", r.wall_s);
    match kernel {
        Some(kernel) => out += &format!("encoder kernel: {}\n", kernel.name()),
        None => out += "separator: a room's filters per frequency bin\n",
    }
    out
}

/// The line that reports a window above the alert level as it closes (live sessions and
/// streams piped into `apply`).
pub fn alert_line(window: &WindowShares, alert_share: f32) -> String {
    format!(
        "alert: window at {:.2} s: outlier shares log-prior {:.3}, reconstruction {:.3} (above {alert_share})",
        window.start_s, window.log_prior, window.reconstruction
    )
}

/// The warning for a CSV whose time stamps went back or skipped ahead, if they did.
pub fn warn_of_stamps(input: &Path, stamps: Option<&StampLog>) {
    if let Some(said) = stamps.and_then(StampLog::describe) {
        eprintln!("warning: {}: {said}", input_name(input));
    }
}

/// How a report shows a CSV's time stamps (`null` without a time-stamp column).
pub fn stamps_json(stamps: Option<&StampLog>) -> serde_json::Value {
    stamps.map_or(serde_json::Value::Null, |s| {
        serde_json::json!({
            "backwards": s.backwards(),
            "gaps": s.gaps(),
            "largest_gap_s": (s.gaps() > 0).then(|| s.largest_gap_s()),
        })
    })
}

/// The warning for an integer WAV output that clipped `samples` (live recordings too).
pub fn clip_warning(path: &Path, samples: u64, peak: f32) -> String {
    format!(
        "warning: {}: {samples} samples clipped at full scale (peak {:+.1} dBFS); --wav-format float keeps them",
        path.display(),
        20.0 * f64::from(peak).log10()
    )
}

fn check_channels(expected: usize, input: &Path, reader: &BlockReader) -> Result<()> {
    let channels = reader.channels();
    if channels != expected {
        // A model trained before time stamps were recognised read them as a channel.
        let hint = match reader.time_column() {
            Some((column, true)) if channels + 1 == expected => format!(
                " (column '{column}' was taken as time stamps; --channels 1-{} reads it as a channel)",
                channels + 1
            ),
            _ => String::new(),
        };
        bail!(
            "{}: has {}, but the model was trained on {}{hint}",
            input_name(input),
            plural(channels, "channel"),
            expected
        );
    }
    Ok(())
}

/// A file the sources are written to: CSV by its extension, else a WAV in `wav_format`.
#[derive(Clone, Copy)]
pub struct Output<'a> {
    /// Where.
    pub path: &'a Path,
    /// The sample format if it is a WAV.
    pub wav_format: WavFormat,
}

/// How [`apply_file`] and [`apply_reader`] run.
pub struct ApplyOptions<'a> {
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// Score every frame and write the monitoring windows.
    pub monitoring: Option<&'a Monitoring>,
    /// The encoder kernel.
    pub kernel: Kernel,
}

/// Applies `model` to `input` (WAV or CSV) and writes the sources to every one of
/// `outputs` (each CSV by extension, else a WAV; one pass feeds them all), streaming
/// through the pipeline — reader, separator and writer on their own threads — so memory
/// stays constant whatever the input's length.
/// With `monitoring`, the separator also scores every frame and the sink side becomes the
/// windowing stage, which writes one row of scores per window beside the sources.
pub fn apply_file(
    model: &ModelFile,
    input: &Path,
    outputs: &[Output<'_>],
    picked: &InputArgs,
    options: &ApplyOptions<'_>,
) -> Result<Applied> {
    let reader = picked.open(input, Some(model.header.sample_rate_hz), !options.progress)?;
    check_channels(model.header.channels, input, &reader)?;
    apply_reader(Stage::Model(model), input, reader, Vec::new(), outputs, options)
}

/// What [`apply_reader`] runs over the frames.
pub enum Stage<'a> {
    /// A model of the time domain, by the inference engine.
    Model(&'a ModelFile),
    /// A room's fixed filters, frame by frame (its output lags by its STFT frame less one
    /// sample, which the written files do not: the input is followed by that much silence
    /// and the output's head skipped).
    Room(Box<OnlineIva>),
}

/// [`apply_file`] with a room's model: its channels and sample rate must be the
/// recording's (its filters are per frequency).
pub fn apply_room(
    model: &RoomModel,
    input: &Path,
    outputs: &[Output<'_>],
    picked: &InputArgs,
    options: &ApplyOptions<'_>,
) -> Result<Applied> {
    let h = &model.header;
    let reader = picked.open(input, Some(h.sample_rate_hz), !options.progress)?;
    check_channels(h.channels, input, &reader)?;
    if reader.sample_rate_hz() != h.sample_rate_hz {
        bail!(
            "{}: {} Hz, but the room's model was fitted at {} Hz (its filters are per frequency)",
            input_name(input),
            reader.sample_rate_hz(),
            h.sample_rate_hz
        );
    }
    let stage = Stage::Room(Box::new(unmix_freq::room_separator(model)?));
    apply_reader(stage, input, reader, Vec::new(), outputs, options)
}

/// [`apply_file`] on `input` already open as `reader`, whose first frames were read into
/// `head` (a stream's training segment): the head is separated first, then the rest.
pub fn apply_reader(
    stage: Stage<'_>,
    input: &Path,
    reader: BlockReader,
    head: Vec<f32>,
    outputs: &[Output<'_>],
    options: &ApplyOptions<'_>,
) -> Result<Applied> {
    let ApplyOptions { progress, monitoring, kernel } = *options;
    // Ctrl-C ends a stream where it is, its outputs complete; it abandons a file, leaving
    // no output (the writers' temporary files are removed).
    crate::interrupt::watch()?;
    let (n, latency) = match &stage {
        Stage::Model(model) => (model.header.sources, 0),
        Stage::Room(separator) => (separator.sources(), separator.latency()),
    };
    let rate = reader.sample_rate_hz();
    let stamps = reader.stamp_log();
    // The windows are checked before any output is opened.
    let spec = monitoring.map(|m| m.spec(rate)).transpose()?;
    if let Some(spec) = &spec {
        spec.check_for(n)?;
    }
    let source: Box<dyn Source> =
        if head.is_empty() { Box::new(reader) } else { Box::new(Prepended::new(head, reader)) };
    let total = source.frames_total();
    // A stream piped in (`-`) may never end: its CSV outputs are logs a reader can follow,
    // its alerts are printed as they come, and it is read in blocks of 50 ms so that a
    // slow logger's rows are separated as they arrive. A bad row ends it there, every row
    // before it separated and every output completed (hours of a logger are not thrown
    // away for one bad row); the error is still the command's.
    let streaming = is_stdin(input);
    let (source, input_error) = if streaming {
        let (source, error) = EndAtError::new(source);
        (Box::new(source) as Box<dyn Source>, Some(error))
    } else {
        (source, None)
    };
    let source: Box<dyn Source> = if latency > 0 { Box::new(SilenceAfter::new(source, latency)) } else { source };
    let csv_writer = |path: &Path, names: &[String]| {
        if streaming { CsvStreamWriter::create_log(path, names) } else { CsvStreamWriter::create(path, names) }
    };
    let mut sinks: Vec<Box<dyn Sink>> = Vec::with_capacity(outputs.len());
    let mut clipping: Vec<(&Path, std::sync::Arc<Clipping>)> = Vec::new();
    for output in outputs {
        sinks.push(if is_csv(output.path) {
            let names: Vec<String> = (1..=n).map(|j| format!("source{j}")).collect();
            Box::new(csv_writer(output.path, &names)?)
        } else {
            let writer = WavStreamWriter::create_as(output.path, n, rate, output.wav_format)?;
            clipping.push((output.path, writer.clipping()));
            Box::new(writer)
        });
    }
    let sink: Box<dyn Sink> = if sinks.len() == 1 { sinks.remove(0) } else { Box::new(TeeSink(sinks)) };
    let sink: Box<dyn Sink> = if latency > 0 { Box::new(SkipFirst::new(sink, n, latency)) } else { sink };
    let mut config = PipelineConfig::file();
    if streaming {
        let block = stream_block_frames(rate, config.frame_len);
        (config.read_frames, config.frame_len) = (block, block);
    }
    let (processor, sink): (Box<dyn Processor>, Box<dyn Sink>) = match (stage, monitoring.zip(spec)) {
        (Stage::Room(separator), None) => (separator, sink),
        (Stage::Room(_), Some(_)) => bail!("a room's model has no learned priors to score frames against"),
        (Stage::Model(model), None) => (Box::new(Separator::with_kernel(model, kernel)?), sink),
        (Stage::Model(model), Some((monitoring, spec))) => {
            let mut scores: Box<dyn Sink> = Box::new(csv_writer(&monitoring.path, &score_columns(n))?);
            if streaming {
                let share = monitoring.alert_share;
                let print = Box::new(move |window: WindowShares| eprintln!("{}", alert_line(&window, share)));
                scores = Box::new(AlertTap::new(scores, n, share, print));
            }
            let monitor = WindowMonitor::new(n, spec, config.read_frames, sink, scores)?;
            (Box::new(ScoredSeparator::with_kernel(model, kernel)?), Box::new(monitor))
        }
    };
    let pipeline = Pipeline::start(source, processor, sink, config)?;
    let bar = match (progress, total) {
        (true, Some(total)) => crate::progress::frames_bar(total as u64, rate),
        _ => ProgressBar::hidden(),
    };
    let mut stopped = false;
    while !pipeline.is_finished() {
        // The silence after a room's input (its filters' lag) is not a frame of the input.
        bar.set_position(total.map_or(pipeline.frames_out(), |total| pipeline.frames_out().min(total as u64)));
        std::thread::sleep(std::time::Duration::from_millis(50));
        if !stopped && crate::interrupt::requested() {
            stopped = true;
            if streaming {
                bar.suspend(|| {
                    eprintln!(
                        "stopping: completing the outputs with the rows read ({} again quits at once)",
                        crate::interrupt::what_stopped()
                    )
                });
                pipeline.end_input();
            } else {
                pipeline.abort();
            }
        }
    }
    bar.finish_and_clear();
    let report = pipeline.wait().map_err(|e| match e {
        unmix_stream::Error::Aborted => anyhow::Error::new(crate::interrupt::interrupted()),
        e => e.into(),
    })?;
    for (path, clipped) in clipping.iter().filter(|(_, c)| c.samples() > 0) {
        eprintln!("{}", clip_warning(path, clipped.samples(), clipped.peak()));
    }
    // The silence after the input is not a frame of it.
    let frames = (report.frames_out as usize).saturating_sub(latency);
    let input_error = input_error.and_then(|e| e.get()).map(|e| {
        format!(
            "{e} (the stream ended there: the {} before it were separated, the outputs completed)",
            plural(frames, "frame")
        )
    });
    Ok(Applied { frames, pipeline: Some(report), stopped, sample_rate_hz: rate, input_error, stamps })
}

#[cfg(test)]
mod tests {
    #[test]
    fn speeds_keep_two_significant_digits() {
        let said = |input_s, wall_s| super::speed(input_s, wall_s);
        assert_eq!(said(600.0, 1.25), "480× real time");
        assert_eq!(said(3.5, 1.0), "3.5× real time");
        assert_eq!(said(0.00125, 0.05), "0.025× real time");
        assert_eq!(said(0.0, 0.05), "0× real time");
    }
}
