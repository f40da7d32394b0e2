//! `unmix separate`, `modes` and `monitor` on a recording held in memory, for callers
//! that are not the command line (the Python package, `bindings/python`).
//!
//! The options are the command line's own: the same names (a keyword `max_train_frames`
//! is `--max-train-frames`), parsed by the same parser with the same defaults and the same
//! error messages. The fit and the sources are the same code as `unmix separate`'s, so the
//! same samples and seed give the same sources bit for bit, and the report carries
//! report.json's description of the fit. What concerns files and the terminal (the output
//! directory, plots, `--truth`, monitoring scores, channel picks) is left to the caller.

use std::any::TypeId;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::{ArgAction, CommandFactory, Parser};
use unmix_core::limits::MAX_CHANNELS;
use unmix_core::{CancelToken, Recording, plural};
use unmix_format::{AnyModel, RoomModel};
use unmix_freq::MixingEvidence;
use unmix_modal::Baseline;
use unmix_monitor::WindowSpec;
use unmix_separate::SourceCount;

pub use crate::modes::{ModesJob, ModesRun};
pub use crate::monitor::{MonitorPlan, window_line};
pub use crate::progress::Step;

use crate::apply::WindowArgs;
use crate::monitor::MonitorArgs;
use crate::progress::TrainingSteps;
use crate::separate::SeparateArgs;
use crate::separate::args::DomainArg;

/// Options of `unmix separate` about files and the terminal: a caller holding the
/// recording in memory has its own ways to do what they do (and `-n`, which is an argument
/// of its own).
const NOT_IN_MEMORY: [&str; 16] = [
    "input",
    "sources",
    "output",
    "truth",
    "force",
    "quiet",
    "no_plots",
    "wav_format",
    "stats",
    "scores",
    "window_s",
    "hop_s",
    "alert_share",
    "channels",
    "csv_rate",
    "help",
];

/// The command `unmix separate` as clap builds it.
#[derive(Parser)]
#[command(name = "separate")]
struct Command {
    #[command(flatten)]
    args: SeparateArgs,
}

/// One option of a separation in memory, as `unmix separate --help` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct OptionSpec {
    /// Its name as a keyword: the long option without its dashes, `-` as `_`.
    pub name: String,
    /// Its default as the command line writes it (`None`: unset unless given).
    pub default: Option<String>,
    /// A switch: present or not (`--no-whiten`), its default off.
    pub switch: bool,
    /// The values it takes, when it takes one of a list.
    pub choices: Vec<String>,
    /// It takes a list, comma-separated (`--hidden 64,64`).
    pub list: bool,
    /// What its value (each value of a list) is.
    pub kind: ValueKind,
    /// What it does, from `unmix separate --help`.
    pub help: String,
}

/// What an option's value is, for a caller that types it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// A switch: present or not.
    Switch,
    /// A whole number.
    Integer,
    /// A real number.
    Real,
    /// Text: one of the option's choices, or a name.
    Text,
}

impl ValueKind {
    /// Its name: `switch`, `integer`, `real`, `text`.
    pub fn name(self) -> &'static str {
        match self {
            ValueKind::Switch => "switch",
            ValueKind::Integer => "integer",
            ValueKind::Real => "real",
            ValueKind::Text => "text",
        }
    }

    fn of(arg: &clap::Arg) -> Self {
        let parsed = arg.get_value_parser().type_id();
        let is = |id: TypeId| parsed == id;
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            ValueKind::Switch
        } else if [TypeId::of::<usize>(), TypeId::of::<u64>(), TypeId::of::<u32>(), TypeId::of::<i64>()]
            .into_iter()
            .any(is)
        {
            ValueKind::Integer
        } else if is(TypeId::of::<f64>()) || is(TypeId::of::<f32>()) {
            ValueKind::Real
        } else {
            ValueKind::Text
        }
    }
}

/// Every option of `unmix separate` that a recording in memory takes, in the order
/// `--help` lists them.
pub fn separate_options() -> Vec<OptionSpec> {
    Command::command()
        .get_arguments()
        .filter_map(|arg| {
            let name = arg.get_long()?.replace('-', "_");
            if NOT_IN_MEMORY.contains(&name.as_str()) {
                return None;
            }
            let switch = matches!(arg.get_action(), ArgAction::SetTrue);
            let defaults: Vec<String> =
                arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
            let default = (!switch && !defaults.is_empty()).then(|| defaults.join(","));
            let choices = arg.get_possible_values().iter().map(|v| v.get_name().to_string()).collect();
            let list = arg.get_value_delimiter().is_some();
            let kind = ValueKind::of(arg);
            let help = arg.get_long_help().or(arg.get_help()).map(ToString::to_string).unwrap_or_default();
            Some(OptionSpec { name, default, switch, choices, list, kind, help })
        })
        .collect()
}

/// Checked options of a separation in memory.
#[derive(Debug, Clone)]
pub struct SeparateOptions {
    args: SeparateArgs,
}

impl SeparateOptions {
    /// Parses `sources` as `-n` takes it (a count, or `auto`) and `options` as `(keyword,
    /// value)` pairs, every value as the command line writes it (a switch's `true` or
    /// `false`, a list comma-separated). An option that is not one of
    /// [`separate_options`], or a value the command line refuses, is an error that says
    /// so in the command line's words.
    pub fn parse(sources: &str, options: &[(String, String)]) -> Result<Self> {
        let known = separate_options();
        let mut argv: Vec<String> = ["separate", "<memory>", "-n", sources, "-o", "<memory>"].map(String::from).into();
        for (name, value) in options {
            let Some(spec) = known.iter().find(|o| &o.name == name) else {
                if NOT_IN_MEMORY.contains(&name.as_str()) {
                    bail!("{name}: an option of `unmix separate` on files, not of a separation in memory");
                }
                bail!("{name}: no such option of separate");
            };
            let long = format!("--{}", name.replace('_', "-"));
            if spec.switch {
                match value.as_str() {
                    "true" => argv.push(long),
                    "false" => {}
                    _ => bail!("{name}: a switch is true or false, not '{value}'"),
                }
            } else {
                argv.push(format!("{long}={value}"));
            }
        }
        let args = Command::try_parse_from(&argv).map_err(|e| anyhow!(clap_line(&e)))?.args;
        if args.domain == DomainArg::Stft {
            // Its settings are checked now, as the command line checks them before reading.
            args.stft_config(0.0)?;
            if !matches!(args.sources, SourceCount::Fixed(_)) {
                bail!("sources auto: the frequency domain (domain stft) needs the number of sources");
            }
        }
        Ok(Self { args })
    }

    /// The seed of every random draw of the fit.
    pub fn seed(&self) -> u64 {
        self.args.seed
    }
}

/// A clap error as one line, without its `error: ` prefix and usage.
fn clap_line(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid options");
    line.strip_prefix("error: ").unwrap_or(line).to_string()
}

/// What a separation in memory produced.
#[derive(Debug)]
pub struct Separation {
    /// The sources of every frame, `frames × sources`.
    pub sources: Recording,
    /// The model, as `unmix separate` writes it to model.unmix: of the time domain, or a
    /// room's (`domain stft`).
    pub model: AnyModel,
    /// report.json's description of the fit (`unmix separate`'s own fields but for those
    /// about files, plots and monitoring).
    pub report: serde_json::Value,
    /// What `unmix separate` warns of on its standard error, one line each.
    pub warnings: Vec<String>,
}

/// Separates `recording` (the caller's name for it, `name`, heads its error messages)
/// as `unmix separate` separates a file: the model fitted on its head (`max_train_frames`,
/// `train_frames` or `train_seconds` of it), then applied to all of it. `cancel` stops
/// the training at its next epoch (the error is then [`Interrupted`]); `progress` sees
/// the training's steps as the command line's bar shows them.
pub fn separate(
    name: &str,
    recording: &Recording,
    options: &SeparateOptions,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(Step),
) -> Result<Separation> {
    let started = Instant::now();
    let args = &options.args;
    let kernel = args.kernel.kernel()?;
    let (rate, m) = (recording.sample_rate_hz(), recording.channels());
    if let Some((t, c, x)) = first_non_finite(recording) {
        bail!("{name}: sample {x} at frame {t}, channel {}: every sample must be a finite number", c + 1);
    }
    if let SourceCount::Fixed(n) = args.sources
        && m < n
    {
        let refused = unmix_separate::Error::TooFewChannels { channels: m, sources: n };
        bail!("{name}: {refused}");
    }
    if args.domain == DomainArg::Stft {
        return separate_room(name, recording, args, cancel, progress, started);
    }
    let config = args.config(rate)?;
    let max_train_frames = config.training_frames(m).map_err(|e| anyhow!("{name}: {e}"))?;
    let segment = recording.head(max_train_frames);
    let mut warnings = Vec::new();
    let mixing = crate::separate::mixing_evidence(&segment);
    if let Some(evidence) = mixing.filter(MixingEvidence::convolutive) {
        warnings.push(crate::separate::convolutive_warning(name, evidence));
    }
    let train_started = Instant::now();
    let mut steps = TrainingSteps::new(&config.params().restarts, config.params().recipe.max_epochs);
    let fitted = unmix_separate::fit(&segment, &config, cancel, &mut |event| progress(steps.step(event)));
    if cancel.is_cancelled() {
        return Err(Interrupted.into());
    }
    let fitted = fitted.map_err(|e| match e {
        unmix_separate::Error::Dsp(unmix_dsp::Error::ConstantChannel { channel }) => anyhow!(
            "{name}: channel {} is constant (silent) over the training segment; leave it out or pick another \
             segment",
            channel + 1
        ),
        unmix_separate::Error::Model(
            e @ (unmix_model::Error::Diverged { .. } | unmix_model::Error::DivergedWeights),
        ) => anyhow!("{name}: {e} than lr {}", args.learning_rate()),
        e => anyhow!("{name}: {e}"),
    })?;
    let train_s = train_started.elapsed().as_secs_f64();
    if !fitted.gross_outliers.is_empty() {
        warnings.push(format!(
            "{name}: left {} of the training segment out of the fit for gross outliers (samples over {:.0e} times \
             their channel's usual level); the separation carries them through",
            unmix_core::plural(fitted.gross_outliers.frames.len(), "frame"),
            unmix_dsp::outliers::GROSS_FACTOR
        ));
    }
    let apply_started = Instant::now();
    let sources = unmix_separate::apply(&fitted.model, recording, kernel).map_err(|e| anyhow!("{name}: {e}"))?;
    let apply_s = apply_started.elapsed().as_secs_f64();
    let mut report = serde_json::json!({
        "input": name,
        "frames": recording.frames(),
        "mixing_evidence": mixing.map(crate::separate::evidence_json),
        "encoder_kernel": kernel.name(),
        "timings_s": { "train": train_s, "apply": apply_s, "total": started.elapsed().as_secs_f64() },
        "warnings": warnings,
    });
    if let serde_json::Value::Object(fields) = &mut report {
        fields.extend(crate::separate::fit_json(&fitted, &config));
    }
    Ok(Separation { sources, model: AnyModel::Time(Box::new(fitted.model)), report, warnings })
}

/// `separate` in the frequency domain: a room's model fitted on all of `recording`, and its
/// sources, each the source's image at the first channel.
fn separate_room(
    name: &str,
    recording: &Recording,
    args: &SeparateArgs,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(Step),
    started: Instant,
) -> Result<Separation> {
    let SourceCount::Fixed(n) = args.sources else {
        bail!("sources auto: the frequency domain (domain stft) needs the number of sources");
    };
    let fitted = crate::separate::stft::fit_room(name, recording, args, n, None, cancel, progress);
    if cancel.is_cancelled() {
        return Err(Interrupted.into());
    }
    let fitted = fitted?;
    let mut report = serde_json::json!({
        "input": name,
        "frames": recording.frames(),
        "timings_s": { "separate": started.elapsed().as_secs_f64(), "total": started.elapsed().as_secs_f64() },
        "warnings": [],
    });
    if let serde_json::Value::Object(fields) = &mut report {
        fields.extend(fitted.report);
    }
    Ok(Separation {
        sources: fitted.sources,
        model: AnyModel::Room(Box::new(fitted.model)),
        report,
        warnings: Vec::new(),
    })
}

/// A room's model applied to a recording in memory, as `unmix apply` applies it to a file:
/// frame by frame through its filters, the output's lag (its STFT frame less one sample)
/// taken off, so that output frame `t` is the sources' image of input frame `t`. The
/// recording must have the model's channels and sample rate (its filters are per
/// frequency).
pub fn apply_room(model: &RoomModel, recording: &Recording) -> Result<Recording> {
    let h = &model.header;
    let (m, rate) = (recording.channels(), recording.sample_rate_hz());
    if m != h.channels {
        bail!("{m} channels, but the room's model reads {}", h.channels);
    }
    if rate != h.sample_rate_hz {
        bail!("{rate} Hz, but the room's model was fitted at {} Hz (its filters are per frequency)", h.sample_rate_hz);
    }
    let mut separator = unmix_freq::room_separator(model)?;
    let (n, lag, frames) = (separator.sources(), separator.latency(), recording.frames());
    let mut output = vec![0.0f32; (frames + lag) * n];
    separator.process(recording.interleaved(), &mut output[..frames * n]);
    // The input followed by the lag's silence, which brings its last frames out.
    separator.process(&vec![0.0f32; lag * m], &mut output[frames * n..]);
    output.drain(..lag * n);
    Ok(Recording::from_interleaved(rate, n, output)?)
}

/// `unmix modes` on a record in memory: `modes` modes of `recording` (the caller's name
/// for it, `name`) with standard errors from `blocks` blocks, compared with the modes of a
/// `reference` file (a modes.json, or a synth meta.json) and scored against `truth`
/// coordinates, as `--reference` and `--truth` do. Every sample must be finite (the
/// command line refuses a file with a missing value too).
pub fn modes(
    name: &str,
    recording: &Recording,
    modes: usize,
    blocks: usize,
    reference: Option<&Path>,
    truth: Option<Recording>,
) -> Result<ModesRun> {
    if let Some((t, c, x)) = first_non_finite(recording) {
        bail!("{name}: sample {x} at frame {t}, channel {}: every sample must be a finite number", c + 1);
    }
    if !(1..=MAX_CHANNELS).contains(&modes) || blocks > unmix_modal::MAX_BLOCKS {
        bail!(
            "{name}: {} and {}: at least one mode (at most {MAX_CHANNELS}), at most {} blocks",
            plural(modes, "mode"),
            plural(blocks, "block"),
            unmix_modal::MAX_BLOCKS
        );
    }
    let truth = truth.map(|t| ("truth".to_string(), t));
    ModesJob::new(name, recording, modes, blocks, reference, truth)?.run(recording)
}

/// The options of `unmix monitor` a monitor in memory takes; `baseline` may be left out
/// (then the whole head given to [`Monitor::fit`] is the baseline).
pub const MONITOR_OPTIONS: [&str; 6] =
    ["modes", "baseline", "window", "hop", "environment_factors", "false_alarm_rate"];

/// The command `unmix monitor` as clap builds it.
#[derive(Parser)]
#[command(name = "monitor")]
struct MonitorCommand {
    #[command(flatten)]
    args: MonitorArgs,
}

/// `unmix monitor` on frames in memory: a baseline fitted on a healthy head, then any
/// window assessed against it, each described by the command line's JSON line.
#[derive(Debug, Clone)]
pub struct Monitor {
    /// The settings, checked against the head.
    pub plan: MonitorPlan,
    /// The healthy baseline.
    pub baseline: Baseline,
    /// The baseline's JSON line, as the command line writes it first.
    pub baseline_line: serde_json::Value,
    name: String,
}

impl Monitor {
    /// Fits the baseline on the first `baseline` seconds of `head` (all of it when
    /// `options` leave `baseline` out); `options` are `(keyword, value)` pairs of
    /// [`MONITOR_OPTIONS`], each value as the command line writes it (`10min`, `600s`,
    /// `600`). A missing value (NaN) in the head is left out of the features, as a dropout
    /// in a file is.
    pub fn fit(name: &str, head: &Recording, options: &[(String, String)]) -> Result<Self> {
        let rate = f64::from(head.sample_rate_hz());
        let mut argv: Vec<String> = ["monitor", "<memory>", "-o", "<memory>"].map(String::from).into();
        for (option, value) in options {
            if !MONITOR_OPTIONS.contains(&option.as_str()) {
                bail!("{option}: no such option of a monitor in memory (its options: {})", MONITOR_OPTIONS.join(", "));
            }
            argv.push(format!("--{}={value}", option.replace('_', "-")));
        }
        if !options.iter().any(|(option, _)| option == "baseline") {
            argv.push(format!("--baseline={}", head.frames() as f64 / rate));
        }
        let args = MonitorCommand::try_parse_from(&argv).map_err(|e| anyhow!(clap_line(&e)))?.args;
        let plan = MonitorPlan::new(&args, name, head.channels(), rate, false)?;
        if head.frames() < plan.baseline_frames {
            bail!("{name}: ends after {:.1} s, before the {} s baseline", head.duration_s(), args.baseline);
        }
        let samples = &head.interleaved()[..plan.baseline_frames * plan.channels];
        let head = Recording::from_interleaved(head.sample_rate_hz(), plan.channels, samples.to_vec())?;
        let started = Instant::now();
        let baseline =
            Baseline::fit(&head, plan.modes, &plan.config).with_context(|| format!("{name}: the baseline"))?;
        let baseline_line = plan.baseline_line(name, &baseline, started.elapsed().as_secs_f64(), 0, 0);
        Ok(Self { plan, baseline, baseline_line, name: name.to_string() })
    }

    /// Assesses one window (interleaved, the baseline's channels, a window's frames)
    /// starting `t_start` seconds into the input: its JSON line.
    pub fn assess(&self, window: &[f32], t_start: f64) -> Result<serde_json::Value> {
        let plan = &self.plan;
        if window.len() != plan.window * plan.channels {
            bail!(
                "a window of {} of {}, but the monitor's windows are {} ({} s at {} Hz) of {}",
                plural(window.len() / plan.channels.max(1), "frame"),
                plural(plan.channels, "channel"),
                plural(plan.window, "frame"),
                plan.window as f64 / plan.rate,
                plan.rate,
                plural(plan.channels, "channel")
            );
        }
        let assessment = self.baseline.assess(window, &plan.config);
        Ok(window_line(t_start, t_start + plan.window as f64 / plan.rate, &assessment, &self.baseline, 0, 0))
    }

    /// The name the monitor's input goes by in its messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The command line's monitoring windows (`--window-s`, `--hop-s`) as clap builds them.
#[derive(Parser)]
#[command(name = "scores")]
struct WindowCommand {
    #[command(flatten)]
    windows: WindowArgs,
}

/// The windows `unmix apply --scores` scores, checked as the command line checks them, in
/// frames at `sample_rate_hz`: `window_s` long (`None`: the command line's default), one
/// every `hop_s` (`None`: the window).
pub fn score_windows(window_s: Option<f64>, hop_s: Option<f64>, sample_rate_hz: u32) -> Result<WindowSpec> {
    let mut argv = vec!["scores".to_string()];
    argv.extend(window_s.map(|s| format!("--window-s={s}")));
    argv.extend(hop_s.map(|s| format!("--hop-s={s}")));
    let windows = WindowCommand::try_parse_from(&argv).map_err(|e| anyhow!(clap_line(&e)))?.windows;
    windows.to(std::path::PathBuf::new())?.spec(sample_rate_hz)
}

/// The first sample that is NaN or infinite: frame, channel and value.
fn first_non_finite(recording: &Recording) -> Option<(usize, usize, f32)> {
    let m = recording.channels();
    let at = recording.interleaved().iter().position(|x| !x.is_finite())?;
    Some((at / m, at % m, recording.interleaved()[at]))
}

/// A separation stopped through its cancel token before it finished.
#[derive(Debug, Clone, Copy)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted: the training stopped at its next epoch")
    }
}

impl std::error::Error for Interrupted {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_the_command_lines_with_their_defaults() {
        let options = separate_options();
        let find = |name: &str| options.iter().find(|o| o.name == name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(find("epochs").default.as_deref(), Some("400"));
        assert_eq!(find("hidden").default.as_deref(), Some("32"));
        assert_eq!(find("max_train_frames").default.as_deref(), Some("131072"));
        assert!(find("no_whiten").switch);
        assert!(find("hidden").list && !find("epochs").list);
        let kinds =
            ["epochs", "lambda", "lr", "seed", "model", "no_whiten", "hidden", "train_seconds"].map(|o| find(o).kind);
        use ValueKind::*;
        assert_eq!(kinds, [Integer, Real, Real, Integer, Text, Switch, Text, Real]);
        assert_eq!(find("model").choices, ["auto", "vae", "chain", "linear", "postnonlinear"]);
        assert!(find("seed").help.contains("Seed"));
        for file_only in ["output", "truth", "no_plots", "channels", "sources", "input"] {
            assert!(options.iter().all(|o| o.name != file_only), "{file_only}");
        }
    }

    #[test]
    fn options_parse_as_on_the_command_line() {
        let pairs = |p: &[(&str, &str)]| p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>();
        let parsed =
            SeparateOptions::parse("3", &pairs(&[("seed", "7"), ("no_whiten", "true"), ("hidden", "16,8")])).unwrap();
        assert_eq!(parsed.args.seed, 7);
        assert!(parsed.args.no_whiten);
        assert_eq!(parsed.args.hidden, ["16", "8"]);
        let defaults = SeparateOptions::parse("auto", &[]).unwrap();
        assert_eq!(defaults.args.epochs, 400);
        assert!(matches!(defaults.args.sources, SourceCount::Auto { .. }));
        let e = SeparateOptions::parse("3", &pairs(&[("epochs", "many")])).unwrap_err().to_string();
        assert!(e.contains("--epochs") && e.contains("many"), "{e}");
        let e = SeparateOptions::parse("3", &pairs(&[("epoch", "9")])).unwrap_err().to_string();
        assert_eq!(e, "epoch: no such option of separate");
        let e = SeparateOptions::parse("3", &pairs(&[("truth", "t.wav")])).unwrap_err().to_string();
        assert!(e.contains("on files"), "{e}");
        let e = SeparateOptions::parse("auto", &pairs(&[("domain", "stft")])).unwrap_err().to_string();
        assert!(e.contains("needs the number of sources"), "{e}");
        let e = SeparateOptions::parse("2", &pairs(&[("domain", "stft"), ("stft_hop", "3")])).unwrap_err().to_string();
        assert!(e.contains("hop"), "{e}");
        let e = SeparateOptions::parse("0", &[]).unwrap_err().to_string();
        assert!(e.contains("'0'") || e.contains("0 is not"), "{e}");
    }

    /// Options as `(keyword, value)` pairs.
    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_monitor_in_memory_takes_the_command_lines_options() {
        let config = unmix_synth::shm::ShmConfig { duration_s: 240.0, ..unmix_synth::shm::ShmConfig::benchmark(2) };
        let record = unmix_synth::shm::simulate(&config).unwrap().mixture;
        // No baseline given: all of the head is one.
        let monitor = Monitor::fit("x", &record, &pairs(&[("window", "20s"), ("hop", "0.25min")])).unwrap();
        assert_eq!((monitor.plan.baseline_frames, monitor.plan.window, monitor.plan.hop), (48_000, 4000, 3000));
        assert_eq!(monitor.baseline_line["t_end"], 240.0);
        let line = monitor.assess(&record.interleaved()[..4000 * 4], 0.0).unwrap();
        assert_eq!((line["kind"].as_str(), line["t_end"].as_f64()), (Some("window"), Some(20.0)));
        assert!(line["damage_index"].as_f64().is_some_and(f64::is_finite), "{line}");
        let e = monitor.assess(&record.interleaved()[..400], 0.0).unwrap_err().to_string();
        assert!(e.contains("windows are 4000 frames"), "{e}");

        let fit = |options: &[(&str, &str)]| Monitor::fit("x", &record, &pairs(options)).unwrap_err().to_string();
        assert!(fit(&[("output", "-")]).starts_with("output: no such option"));
        assert!(fit(&[("window", "a while")]).contains("is not a duration"));
        assert_eq!(fit(&[("baseline", "300s")]), "x: ends after 240.0 s, before the 300 s baseline");
        assert_eq!(fit(&[("window", "200s")]), "--baseline 240 s holds fewer than two windows of 200 s");
    }

    #[test]
    fn modes_in_memory_refuse_what_the_command_line_refuses() {
        let record = Recording::from_interleaved(100, 2, vec![0.0; 2000]).unwrap();
        let e = modes("x", &record, 3, 4, None, None).unwrap_err().to_string();
        assert_eq!(e, "x: 3 modes asked for, but the record has 2 channels: a mode needs a sensor of its own");
        // The bounds of `unmix modes -n` and `--blocks`.
        for (n, blocks) in [(0, 4), (MAX_CHANNELS + 1, 4), (1, unmix_modal::MAX_BLOCKS + 1)] {
            let e = modes("x", &record, n, blocks, None, None).unwrap_err().to_string();
            assert!(e.contains("at least one mode (at most 256), at most 64 blocks"), "{e}");
        }
        let truth = Recording::from_interleaved(100, 1, vec![0.0; 10]).unwrap();
        let e = modes("x", &record, 1, 4, None, Some(truth)).unwrap_err().to_string();
        assert_eq!(e, "truth: 10 frames, but x has 1000");
    }

    #[test]
    fn a_non_finite_sample_is_named() {
        let recording = Recording::from_interleaved(100, 2, vec![0.0, 1.0, 2.0, f32::NAN]).unwrap();
        let options = SeparateOptions::parse("2", &[]).unwrap();
        let e = separate("x", &recording, &options, &CancelToken::new(), &mut |_| {}).unwrap_err();
        assert_eq!(e.to_string(), "x: sample NaN at frame 1, channel 2: every sample must be a finite number");
    }
}
