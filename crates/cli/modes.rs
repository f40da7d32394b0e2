//! `unmix modes`: a structure's modes from its sensors — natural frequency, damping ratio,
//! mode shape, each with its standard error — and every mode's coordinate over the record.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use unmix_core::limits::MAX_CHANNELS;
use unmix_core::{Recording, plural};
use unmix_io::{BlockReader, input_name, is_stdin};
use unmix_modal::{ModalAnalysis, ModalConfig, identify, mac_matrix};

use crate::apply::InputArgs;
use crate::output::Staging;
use crate::{bounds, plot};

/// `modes` holds the whole record in memory (the modes' spectra are fitted over all of it):
/// at most this many samples (frames × channels), 1 GiB as 32-bit floats.
pub const MAX_SAMPLES: usize = 1 << 28;

/// Arguments of `unmix modes`.
#[derive(Args, Debug)]
pub struct ModesArgs {
    /// The sensors' record: WAV or CSV, one channel per sensor (accelerometers, strain
    /// gauges, …), under ambient broadband excitation.
    pub input: PathBuf,
    /// Number of modes to identify (at most the number of channels).
    #[arg(short = 'n', long = "modes", value_parser = bounds::between(1, MAX_CHANNELS))]
    pub modes: usize,
    /// Output directory: modes.json, coordinates.wav (every mode's coordinate, lowest
    /// mode first), spectra.png and shapes.png.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Modes to compare with (their shapes by MAC, their frequencies and damping): a
    /// modes.json of an earlier run (a baseline), or the meta.json of `unmix synth shm`.
    #[arg(long, value_name = "JSON")]
    pub reference: Option<PathBuf>,
    /// True modal coordinates (WAV or CSV) to score coordinates.wav against.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Contiguous blocks the record is cut into for the standard errors (each identified on
    /// its own; fewer than 2, or blocks under 4 000 frames: no standard errors).
    #[arg(long, default_value_t = ModalConfig::default().blocks, value_parser = bounds::between(0, unmix_modal::MAX_BLOCKS))]
    pub blocks: usize,
    #[command(flatten)]
    pub input_channels: InputArgs,
    /// Skip the PNG plots.
    #[arg(long)]
    pub no_plots: bool,
    /// Print nothing but warnings.
    #[arg(long)]
    pub quiet: bool,
    /// Overwrite results already in the output directory.
    #[arg(long)]
    pub force: bool,
}

const OUTPUTS: [&str; 4] = ["modes.json", "coordinates.wav", "spectra.png", "shapes.png"];

/// A mode to compare with, from `--reference`.
struct ReferenceMode {
    frequency_hz: f64,
    damping_ratio: Option<f64>,
    shape: Vec<f64>,
}

pub fn run(args: ModesArgs) -> Result<()> {
    crate::interrupt::watch()?;
    if is_stdin(&args.input) {
        bail!("-: modes fits the whole record at once; give a file (a stream is for `unmix separate -`)");
    }
    // Every input is checked before the work.
    let recording = read_whole(&args.input, &args.input_channels)?;
    let input = input_name(&args.input);
    let truth = args
        .truth
        .as_deref()
        .map(|p| {
            let label = format!("--truth {}", p.display());
            let truth = unmix_io::read_recording(p, recording.sample_rate_hz()).with_context(|| label.clone())?;
            anyhow::Ok((label, truth))
        })
        .transpose()?;
    let job = ModesJob::new(&input, &recording, args.modes, args.blocks, args.reference.as_deref(), truth)?;
    let mut out = Staging::new(&args.output, &OUTPUTS, args.force)?;

    let run = job.run(&recording)?;
    crate::interrupt::check()?;
    unmix_io::write_wav_f32(&out.path("coordinates.wav"), &run.analysis.coordinates)?;
    crate::output::write_json(&out.path("modes.json"), &run.report)?;
    if !args.no_plots {
        plot::mode_spectra(&out.path("spectra.png"), &run.analysis)?;
        plot::mode_shapes(&out.path("shapes.png"), &run.analysis)?;
    }
    crate::interrupt::check()?;
    out.commit()?;

    if !args.quiet {
        println!(
            "{} of {input} ({}, {} s at {} Hz) in {:.1} s → {}",
            plural(args.modes, "mode"),
            plural(recording.channels(), "channel"),
            recording.duration_s(),
            recording.sample_rate_hz(),
            run.seconds,
            args.output.display()
        );
        print!("{}", table(&run.analysis, run.comparison.as_ref()));
        if let Some(score) = &run.score {
            println!(
                "coordinates against --truth: mean |corr| {:.4}, worst {:.4}",
                score.mean_abs_corr, score.min_abs_corr
            );
        }
    }
    Ok(())
}

/// The job of `unmix modes` on a record in memory, its inputs checked: the command line's
/// and the Python package's (`embedded::modes`).
pub struct ModesJob {
    input: String,
    modes: usize,
    config: ModalConfig,
    reference: Option<(PathBuf, Vec<ReferenceMode>)>,
    truth: Option<Recording>,
}

/// What a [`ModesJob`] found: the analysis, modes.json's fields, and the comparisons.
#[derive(Debug)]
pub struct ModesRun {
    /// The modes, their coordinates and the demixing.
    pub analysis: ModalAnalysis,
    /// modes.json's fields.
    pub report: serde_json::Value,
    comparison: Option<Comparison>,
    score: Option<unmix_dsp::metrics::Score>,
    seconds: f64,
}

impl ModesJob {
    /// Checks `modes` against the record `input` names, reads the `reference` modes
    /// (`--reference`) and checks the `truth` coordinates (`--truth`, with the name errors
    /// give them) against it.
    pub fn new(
        input: &str,
        recording: &Recording,
        modes: usize,
        blocks: usize,
        reference: Option<&Path>,
        truth: Option<(String, Recording)>,
    ) -> Result<Self> {
        if modes > recording.channels() {
            bail!(
                "{input}: {} asked for, but the record has {}: a mode needs a sensor of its own",
                plural(modes, "mode"),
                plural(recording.channels(), "channel")
            );
        }
        let reference =
            reference.map(|p| Ok::<_, anyhow::Error>((p.to_path_buf(), read_reference(p, recording.channels())?)));
        let reference = reference.transpose()?;
        if let Some((label, truth)) = &truth
            && truth.frames() != recording.frames()
        {
            bail!("{label}: {}, but {input} has {}", plural(truth.frames(), "frame"), recording.frames());
        }
        let truth = truth.map(|(_, truth)| truth);
        let config = ModalConfig { blocks, ..ModalConfig::default() };
        Ok(Self { input: input.to_string(), modes, config, reference, truth })
    }

    /// Identifies the modes of `recording` (the one [`Self::new`] checked).
    pub fn run(&self, recording: &Recording) -> Result<ModesRun> {
        let started = std::time::Instant::now();
        let analysis = identify(recording, self.modes, &self.config).with_context(|| self.input.clone())?;
        let seconds = started.elapsed().as_secs_f64();
        let score = self
            .truth
            .as_ref()
            .map(|truth| {
                let channels = |r: &Recording| (0..r.channels()).map(|c| r.channel(c)).collect::<Vec<_>>();
                unmix_dsp::metrics::score(&channels(truth), &channels(&analysis.coordinates))
            })
            .transpose()?;
        let comparison = self.reference.as_ref().map(|(_, modes)| compare(&analysis, modes));
        let report = serde_json::json!({
            "input": self.input,
            "frames": recording.frames(),
            "channels": recording.channels(),
            "sample_rate_hz": recording.sample_rate_hz(),
            "modes": &analysis.modes,
            "blocks": analysis.blocks,
            "demixing": &analysis.demixing,
            "reference": comparison.as_ref().map(|c| serde_json::json!({
                "path": self.reference.as_ref().map(|(p, _)| p.display().to_string()),
                "mac": &c.mac,
                "matched": &c.matched,
            })),
            "score": score,
            "seconds": seconds,
        });
        Ok(ModesRun { analysis, report, comparison, score, seconds })
    }
}

/// Reads the whole record (its picked channels), refusing one beyond [`MAX_SAMPLES`].
fn read_whole(path: &Path, channels: &InputArgs) -> Result<Recording> {
    let mut reader = BlockReader::open_selected(path, channels.csv_rate.unwrap_or(1), &channels.channels())?;
    // Frequencies in Hz need the true rate: a CSV's from its time column, or --csv-rate.
    if matches!(reader, BlockReader::Csv(_)) && channels.csv_rate.is_none() {
        match reader.time_step_s()? {
            Some(step) => reader.set_csv_sample_rate_hz((1.0 / step).round().max(1.0) as u32),
            None => bail!("{}: a CSV without a time column needs --csv-rate (frequencies are in Hz)", path.display()),
        }
    }
    let width = reader.channels();
    let limit = MAX_SAMPLES / width.max(1);
    if let Some(total) = reader.frames_total()
        && total > limit
    {
        bail!(
            "{}: {} of {width} channels; modes holds at most {limit} in memory — cut the record",
            path.display(),
            plural(total, "frame")
        );
    }
    let mut samples = Vec::new();
    let mut block = Vec::new();
    while reader.read_block(&mut block, 65_536)? > 0 {
        samples.extend_from_slice(&block);
        if samples.len() / width > limit {
            bail!(
                "{}: more than {limit} frames of {width} channels; modes holds no more in memory — cut the record",
                path.display()
            );
        }
        crate::interrupt::check()?;
    }
    Ok(Recording::from_interleaved(reader.sample_rate_hz(), width, samples)?)
}

/// Reads `--reference`: a modes.json of `unmix modes` or the meta.json of `unmix synth shm`.
fn read_reference(path: &Path, channels: usize) -> Result<Vec<ReferenceMode>> {
    let name = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("--reference {name}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("--reference {name}: not JSON"))?;
    let modes: Option<Vec<ReferenceMode>> = match &json["modes"] {
        // unmix modes: a list of modes.
        serde_json::Value::Array(list) => list
            .iter()
            .map(|m| {
                Some(ReferenceMode {
                    frequency_hz: m["frequency_hz"].as_f64()?,
                    damping_ratio: m["damping_ratio"].as_f64(),
                    shape: numbers(&m["shape"])?,
                })
            })
            .collect(),
        // unmix synth shm: columns of frequencies, damping ratios and shapes.
        serde_json::Value::Object(table) => synth_modes(table),
        _ => None,
    };
    let modes = modes.with_context(|| {
        format!("--reference {name}: no modes with a frequency_hz and a shape (a modes.json of unmix modes, or the meta.json of unmix synth shm)")
    })?;
    if modes.is_empty() {
        bail!("--reference {name}: no modes");
    }
    if let Some(m) = modes.iter().find(|m| m.shape.len() != channels || !m.frequency_hz.is_finite()) {
        bail!(
            "--reference {name}: a mode at {} Hz has a shape over {}, the record {}",
            m.frequency_hz,
            plural(m.shape.len(), "channel"),
            plural(channels, "channel")
        );
    }
    Ok(modes)
}

/// A JSON array of numbers.
fn numbers(v: &serde_json::Value) -> Option<Vec<f64>> {
    v.as_array()?.iter().map(|x| x.as_f64()).collect()
}

/// The modes of a synth meta.json's `modes` table: `frequencies_hz`, `damping_ratios` and
/// `shapes` in columns.
fn synth_modes(table: &serde_json::Map<String, serde_json::Value>) -> Option<Vec<ReferenceMode>> {
    let frequencies = numbers(table.get("frequencies_hz")?)?;
    let damping = table.get("damping_ratios").and_then(numbers);
    let shapes: Vec<Vec<f64>> = table.get("shapes")?.as_array()?.iter().map(numbers).collect::<Option<_>>()?;
    (shapes.len() == frequencies.len()).then(|| {
        frequencies
            .iter()
            .zip(shapes)
            .enumerate()
            .map(|(j, (&f, shape))| ReferenceMode {
                frequency_hz: f,
                damping_ratio: damping.as_ref().and_then(|d| d.get(j).copied()),
                shape,
            })
            .collect()
    })
}

/// The identified modes against the reference.
#[derive(Debug)]
struct Comparison {
    /// MAC of every identified mode (rows) against every reference mode (columns).
    mac: Vec<Vec<f64>>,
    /// For every identified mode, its closest reference mode by MAC.
    matched: Vec<serde_json::Value>,
}

fn compare(analysis: &ModalAnalysis, reference: &[ReferenceMode]) -> Comparison {
    let shapes: Vec<Vec<f64>> = analysis.modes.iter().map(|m| m.shape.clone()).collect();
    let theirs: Vec<Vec<f64>> = reference.iter().map(|m| m.shape.clone()).collect();
    let matrix = mac_matrix(&shapes, &theirs);
    let matched = analysis
        .modes
        .iter()
        .enumerate()
        .map(|(j, mode)| {
            let (k, best) = matrix[j]
                .iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |a, (k, &v)| if v > a.1 { (k, v) } else { a });
            let other = &reference[k];
            serde_json::json!({
                "mode": j + 1,
                "reference": k + 1,
                "mac": best,
                "frequency_change_percent": 100.0 * (mode.frequency_hz / other.frequency_hz - 1.0),
                "damping_change_percent": other.damping_ratio.map(|z| 100.0 * (mode.damping_ratio / z - 1.0)),
            })
        })
        .collect();
    Comparison { mac: matrix, matched }
}

/// The modes as a table, with the reference's match when there is one.
fn table(analysis: &ModalAnalysis, comparison: Option<&Comparison>) -> String {
    let with_std = |value: f64, std: Option<f64>, digits: usize| match std {
        Some(s) if s.is_finite() => format!("{value:.digits$} ± {s:.digits$}"),
        _ => format!("{value:.digits$}"),
    };
    let mut text = String::from("mode | frequency (Hz) | damping (%) | shape");
    if comparison.is_some() {
        text.push_str(" | reference: mode, MAC, frequency, damping");
    }
    text.push('\n');
    for (j, mode) in analysis.modes.iter().enumerate() {
        let shape: Vec<String> = mode.shape.iter().map(|v| format!("{v:+.3}")).collect();
        text.push_str(&format!(
            "{} | {} | {} | {}",
            j + 1,
            with_std(mode.frequency_hz, mode.frequency_std_hz, 3),
            with_std(100.0 * mode.damping_ratio, mode.damping_std.map(|s| 100.0 * s), 2),
            shape.join(" ")
        ));
        if let Some(m) = comparison.map(|c| &c.matched[j]) {
            text.push_str(&format!(
                " | {}, {:.4}, {:+.2} %{}",
                m["reference"],
                m["mac"].as_f64().unwrap_or(f64::NAN),
                m["frequency_change_percent"].as_f64().unwrap_or(f64::NAN),
                m["damping_change_percent"].as_f64().map_or(String::new(), |d| format!(", {d:+.0} %"))
            ));
        }
        text.push('\n');
    }
    text
}
