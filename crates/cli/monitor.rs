//! `unmix monitor`: structural-health monitoring of a sensor record or stream — a modal
//! baseline fitted on its head, then one JSON line per window with the modes, a damage
//! index that the environment does not move, and an alarm.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use unmix_core::{Recording, plural};
use unmix_io::{BlockReader, OutputFile, OutputPath, input_name};
use unmix_modal::{Assessment, Baseline, HealthConfig};

use crate::apply::InputArgs;
use crate::bounds;

/// The baseline is held in memory: at most this many samples (frames × channels).
pub const MAX_BASELINE_SAMPLES: usize = 1 << 26;

/// Arguments of `unmix monitor`.
#[derive(Args, Debug)]
pub struct MonitorArgs {
    /// The sensors' record (WAV or CSV), or `-` for a stream on the standard input (CSV
    /// rows as a logger writes them, or a WAV as a recorder writes it), read as it comes
    /// for as long as it lasts.
    pub input: PathBuf,
    /// Modes to follow (default: one per channel).
    #[arg(short = 'n', long = "modes", value_parser = bounds::between(1, unmix_core::limits::MAX_CHANNELS))]
    pub modes: Option<usize>,
    /// The healthy period at the start of the input the baseline is fitted on, e.g.
    /// `600s`, `10min` or `600` (seconds). It should span the environment's range (a
    /// day's temperature, say): what the baseline saw vary is not taken for damage.
    #[arg(long, value_parser = duration_s)]
    pub baseline: f64,
    /// Window length (e.g. `60s`).
    #[arg(long, default_value = "60s", value_parser = duration_s)]
    pub window: f64,
    /// From one window's start to the next's (default: the window length).
    #[arg(long, value_parser = duration_s)]
    pub hop: Option<f64>,
    /// Directions of the baseline's spread taken as the environment's (0: none).
    #[arg(long, default_value_t = 1, value_parser = bounds::between(0, 16))]
    pub environment_factors: usize,
    /// The share of healthy windows allowed to alarm: sets the control limit.
    #[arg(long, default_value_t = 0.01, value_parser = false_alarm_rate)]
    pub false_alarm_rate: f64,
    /// The JSON lines: one for the baseline, one per window as it ends, one summary; `-`
    /// writes them to the standard output. Each line is flushed as it is written, so a run
    /// that ends early keeps every line before.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Also draw the damage index with its limit and every mode's frequency over time
    /// (PNG) at the end.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub input_channels: InputArgs,
    /// No summary on the terminal (alarms still print).
    #[arg(long)]
    pub quiet: bool,
    /// Overwrite an existing output.
    #[arg(long)]
    pub force: bool,
}

/// `600`, `600s`, `10min`, `1.5h`: seconds.
fn duration_s(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let (number, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let scale = match unit.trim() {
        "s" => 1.0,
        "min" | "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("'{text}' is not a duration (600, 600s, 10min, 1.5h)")),
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v * scale),
        _ => Err(format!("'{text}' is not a positive duration (600, 600s, 10min, 1.5h)")),
    }
}

fn false_alarm_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v < 0.5 => Ok(v),
        _ => Err(format!("'{text}' is not a rate between 0 and 0.5")),
    }
}

/// What the run saw, for the summary.
#[derive(Default)]
struct Tally {
    windows: usize,
    alarms: usize,
    unusable: usize,
    first_alarm_s: Option<f64>,
    /// Per window: start, damage index, every mode's frequency (for the plot).
    track: Vec<(f64, Option<f64>, Vec<f64>)>,
}

pub fn run(args: MonitorArgs) -> Result<()> {
    crate::interrupt::watch()?;
    let out =
        crate::output::check_outputs(&[("-o", Some(&args.output)), ("--plot", args.plot.as_deref())], args.force)?;
    if let Some(plot) = &args.plot {
        crate::output::check_plot("--plot", plot)?;
    }
    let input = input_name(&args.input);
    let mut reader = BlockReader::open_selected(
        &args.input,
        args.input_channels.csv_rate.unwrap_or(1),
        &args.input_channels.channels(),
    )?;
    if let Ok(Some(step)) = reader.time_step_s()
        && args.input_channels.csv_rate.is_none()
    {
        reader.set_csv_sample_rate_hz((1.0 / step).round().max(1.0) as u32);
    }
    // A dropout (NaN, an empty cell) is reported in its window's line, not fatal.
    reader.keep_missing_values();
    let rate = f64::from(reader.sample_rate_hz());
    // A CSV without a time column is read at 1 Hz unless told: a window too short says so.
    let rate_hint = args.input_channels.csv_rate.is_none()
        && reader.time_column().is_none()
        && matches!(reader, BlockReader::Csv(_));
    let plan = MonitorPlan::new(&args, &input, reader.channels(), rate, rate_hint)?;
    let MonitorPlan { channels, modes, baseline_frames, window, hop, .. } = plan;
    let config = plan.config.clone();
    let out = out.into_iter().next().flatten().context("-o is checked")?;
    let quiet = args.quiet || out.is_stdout();

    // 1. The baseline: the head of the input.
    let mut buffer: Vec<f32> = Vec::with_capacity(baseline_frames * channels);
    let mut block = Vec::new();
    while buffer.len() < baseline_frames * channels {
        let want = (baseline_frames - buffer.len() / channels).min(16_384);
        if reader.read_block(&mut block, want)? == 0 {
            bail!(
                "{input}: ends after {:.1} s, before the {} s baseline",
                buffer.len() as f64 / channels as f64 / rate,
                args.baseline
            );
        }
        buffer.extend_from_slice(&block);
        crate::interrupt::check()?;
    }
    let head = Recording::from_interleaved(reader.sample_rate_hz(), channels, buffer)?;
    let started = std::time::Instant::now();
    let baseline = Baseline::fit(&head, modes, &config).with_context(|| format!("{input}: the baseline"))?;
    let fit_s = started.elapsed().as_secs_f64();
    drop(head);
    let stamps = reader.stamp_log();
    let (mut gaps_seen, mut backwards_seen) = stamps.as_ref().map_or((0, 0), |s| (s.gaps(), s.backwards()));
    let mut log = JsonLines::create(&out)?;
    log.write(&plan.baseline_line(&input, &baseline, fit_s, gaps_seen, backwards_seen))?;
    if !quiet {
        let frequencies: Vec<String> = baseline.modes.iter().map(|m| format!("{:.3}", m.frequency_hz)).collect();
        println!(
            "baseline: {} at {} Hz from the first {} s ({} windows), damage limit {:.2}",
            plural(modes, "mode"),
            frequencies.join(", "),
            args.baseline,
            baseline.windows,
            baseline.limit
        );
    }

    // 2. The windows, as the input arrives: only the frames of the window being filled
    // are held.
    let mut tally = Tally::default();
    let mut pending: Vec<f32> = Vec::with_capacity((window + 16_384) * channels);
    let mut next_start = baseline_frames; // the frame the next window starts at
    let mut pending_start = baseline_frames; // the frame pending[0] belongs to
    let monitoring_started = std::time::Instant::now();
    loop {
        if crate::interrupt::requested() {
            break;
        }
        // Read no further than the next window's end, so that what the reader notes on the
        // way (a CSV's gaps and stamps going back) is told in the window it happened in.
        let held_to = pending_start + pending.len() / channels;
        let want = (next_start + window).saturating_sub(held_to).clamp(1, 16_384);
        let got = reader.read_block(&mut block, want)?;
        if got == 0 {
            break;
        }
        pending.extend_from_slice(&block);
        // Frames before the next window's start (a hop longer than the window) go.
        if next_start > pending_start {
            let drop = (next_start - pending_start).min(pending.len() / channels);
            pending.drain(..drop * channels);
            pending_start += drop;
        }
        while pending_start == next_start && pending.len() >= window * channels {
            let assessment = baseline.assess(&pending[..window * channels], &config);
            let (gaps, backwards) = stamps.as_ref().map_or((0, 0), |s| (s.gaps(), s.backwards()));
            let t_start = next_start as f64 / rate;
            log.write(&window_line(
                t_start,
                t_start + window as f64 / rate,
                &assessment,
                &baseline,
                gaps - gaps_seen,
                backwards - backwards_seen,
            ))?;
            (gaps_seen, backwards_seen) = (gaps, backwards);
            tally.windows += 1;
            tally.unusable += usize::from(assessment.features.is_none());
            if assessment.alarm {
                tally.alarms += 1;
                tally.first_alarm_s.get_or_insert(t_start);
                eprintln!(
                    "alarm: window at {t_start:.1} s, damage index {:.2} above the limit {:.2}",
                    assessment.damage_index.unwrap_or(f64::NAN),
                    baseline.limit
                );
            }
            if let Some(reason) = &assessment.unusable {
                eprintln!("warning: window at {t_start:.1} s: {reason}");
            }
            tally.track.push((
                t_start,
                assessment.damage_index,
                assessment.features.as_ref().map_or_else(Vec::new, |f| f.frequencies_hz.clone()),
            ));
            next_start += hop;
            let drop = hop.min(pending.len() / channels);
            pending.drain(..drop * channels);
            pending_start += drop;
        }
    }
    let monitored_s = monitoring_started.elapsed().as_secs_f64();
    let seconds_in = (pending_start + pending.len() / channels) as f64 / rate;
    let stopped = crate::interrupt::requested().then(crate::interrupt::what_stopped);
    log.write(&serde_json::json!({
        "kind": "summary",
        "t_end": seconds_in,
        "windows": tally.windows,
        "alarms": tally.alarms,
        "unusable_windows": tally.unusable,
        "first_alarm_t_start": tally.first_alarm_s,
        "time_stamps": stamps.as_ref().and_then(|s| s.describe()),
        "stopped_by": stopped,
        "monitoring_s": monitored_s,
    }))?;
    log.finish()?;
    if let Some(plot) = &args.plot {
        let track: Vec<(f64, Option<f64>, Vec<f64>)> = std::mem::take(&mut tally.track);
        crate::output::replace_atomically(plot, |path| crate::plot::damage_index(path, &track, &baseline))?;
    }
    if !quiet {
        let after = (seconds_in - args.baseline).max(0.0);
        println!(
            "{} after the baseline ({after:.0} s in {monitored_s:.1} s, {:.0}× real time): {} alarmed{}{}",
            plural(tally.windows, "window"),
            after / monitored_s.max(1e-9),
            tally.alarms,
            tally.first_alarm_s.map_or(String::new(), |t| format!(", the first at {t:.1} s")),
            if tally.unusable > 0 {
                format!("; {} unusable (see the warnings)", tally.unusable)
            } else {
                String::new()
            }
        );
    }
    if let Some(signal) = stopped {
        eprintln!("stopped by {signal}: the lines up to here are complete");
    }
    Ok(())
}

/// A monitoring run's settings checked against its input: the modes followed, and the
/// baseline, a window and a hop in frames. The command line's and the Python package's
/// (`embedded::Monitor`).
#[derive(Debug, Clone)]
pub struct MonitorPlan {
    /// Channels of the input.
    pub channels: usize,
    /// Sample rate of the input, in hertz.
    pub rate: f64,
    /// Modes followed.
    pub modes: usize,
    /// Frames of the baseline (the input's head).
    pub baseline_frames: usize,
    /// Frames of a window.
    pub window: usize,
    /// Frames from one window's start to the next's.
    pub hop: usize,
    /// The monitor's settings.
    pub config: HealthConfig,
}

impl MonitorPlan {
    /// `args` for an input of `channels` at `rate` hertz that `input` names; `rate_hint`:
    /// the rate is a CSV's default, which a window too short blames.
    pub fn new(args: &MonitorArgs, input: &str, channels: usize, rate: f64, rate_hint: bool) -> Result<Self> {
        let modes = args.modes.unwrap_or(channels);
        if modes > channels {
            bail!("{input}: {} asked for, but the input has {}", plural(modes, "mode"), plural(channels, "channel"));
        }
        let frames_of = |seconds: f64| (seconds * rate).round() as usize;
        let (baseline_frames, window) = (frames_of(args.baseline), frames_of(args.window));
        let hop = args.hop.map_or(window, frames_of).max(1);
        if baseline_frames.checked_mul(channels).is_none_or(|samples| samples > MAX_BASELINE_SAMPLES) {
            bail!(
                "--baseline {} s: {} of {channels} channels is more than the {MAX_BASELINE_SAMPLES} samples held in memory",
                args.baseline,
                plural(baseline_frames, "frame")
            );
        }
        if window < 64 {
            let hint = if rate_hint { " (a CSV without a time column needs --csv-rate)" } else { "" };
            bail!(
                "--window {} s is {} at {rate} Hz; a window needs at least 64{hint}",
                args.window,
                plural(window, "frame")
            );
        }
        if baseline_frames < 2 * window {
            bail!("--baseline {} s holds fewer than two windows of {} s", args.baseline, args.window);
        }
        let config = HealthConfig {
            environment_factors: args.environment_factors,
            false_alarm_rate: args.false_alarm_rate,
            ..HealthConfig::new(window, hop)
        };
        Ok(Self { channels, rate, modes, baseline_frames, window, hop, config })
    }

    /// The baseline's JSON line: its modes, windows and control limit; `gaps` and
    /// `backwards` are the time stamps' faults seen so far.
    pub fn baseline_line(
        &self,
        input: &str,
        baseline: &Baseline,
        fit_s: f64,
        gaps: u64,
        backwards: u64,
    ) -> serde_json::Value {
        serde_json::json!({
            "kind": "baseline",
            "input": input,
            "t_start": 0.0,
            "t_end": self.baseline_frames as f64 / self.rate,
            "channels": self.channels,
            "sample_rate_hz": self.rate,
            "window_s": self.window as f64 / self.rate,
            "hop_s": self.hop as f64 / self.rate,
            "modes": &baseline.modes.iter().map(|m| serde_json::json!({
                "frequency_hz": m.frequency_hz,
                "damping_ratio": m.damping_ratio,
                "shape": &m.shape,
            })).collect::<Vec<_>>(),
            "windows": baseline.windows,
            "environment_factors": baseline.environment.len(),
            "index_directions": baseline.index_directions(),
            "limit": baseline.limit,
            "false_alarm_rate": self.config.false_alarm_rate,
            "time_gaps": gaps,
            "time_backwards": backwards,
            "fit_s": fit_s,
        })
    }
}

/// One window's JSON line: `gaps` and `backwards` are the time stamps' faults within it.
pub fn window_line(
    t_start: f64,
    t_end: f64,
    a: &Assessment,
    baseline: &Baseline,
    gaps: u64,
    backwards: u64,
) -> serde_json::Value {
    let modes: Option<Vec<serde_json::Value>> = a.features.as_ref().map(|f| {
        (0..f.frequencies_hz.len())
            .map(|j| {
                serde_json::json!({
                    "frequency_hz": f.frequencies_hz[j],
                    "frequency_change_percent": 100.0 * (f.frequencies_hz[j] / baseline.modes[j].frequency_hz - 1.0),
                    "damping_ratio": f.damping_ratios[j],
                    "mac": f.mac[j],
                })
            })
            .collect()
    });
    serde_json::json!({
        "kind": "window",
        "t_start": t_start,
        "t_end": t_end,
        "modes": modes,
        "reconstruction_error": a.features.as_ref().map(|f| f.reconstruction_error),
        "damage_index": a.damage_index,
        "limit": baseline.limit,
        "alarm": a.alarm,
        "bad_frames": a.bad_frames,
        "dead_channels": a.dead_channels.iter().map(|c| c + 1).collect::<Vec<_>>(),
        "time_gaps": gaps,
        "time_backwards": backwards,
        "unusable": a.unusable,
    })
}

/// JSON lines written where they are read: each line whole and flushed as it is written.
struct JsonLines {
    path: PathBuf,
    out: OutputFile,
}

impl JsonLines {
    fn create(out: &OutputPath) -> Result<Self> {
        Ok(Self { path: out.path().to_path_buf(), out: OutputFile::log(out)? })
    }

    fn write(&mut self, value: &serde_json::Value) -> Result<()> {
        let mut line = serde_json::to_string(value)?;
        line.push('\n');
        self.out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.flush())
            .with_context(|| format!("{}: cannot write", self.path.display()))
    }

    fn finish(self) -> Result<()> {
        Ok(self.out.commit()?)
    }
}

#[cfg(test)]
mod tests {
    use super::duration_s;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(duration_s("600"), Ok(600.0));
        assert_eq!(duration_s("600s"), Ok(600.0));
        assert_eq!(duration_s("10min"), Ok(600.0));
        assert_eq!(duration_s("1.5h"), Ok(5400.0));
        for bad in ["0", "-5s", "NaN", "10 parsecs", "s"] {
            assert!(duration_s(bad).is_err(), "{bad}");
        }
    }
}
