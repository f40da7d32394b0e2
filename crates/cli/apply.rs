//! `unmix apply`, and the streaming application of a model that `separate` shares.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::ProgressBar;
use unmix_core::{Sink, Source};
use unmix_format::ModelFile;
use unmix_infer::Separator;
use unmix_io::{CsvBlockReader, CsvStreamWriter, WavBlockReader, WavStreamWriter, is_csv};
use unmix_stream::{Pipeline, PipelineConfig, PipelineReport};

/// Arguments of `unmix apply`.
#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Model file written by `unmix separate`.
    model: PathBuf,
    /// Input recording (WAV or CSV) with the model's channel count.
    input: PathBuf,
    /// Output file: `.csv` for CSV, anything else a 32-bit float WAV.
    #[arg(short, long)]
    output: PathBuf,
    /// Sample rate given to CSV input (CSV carries none).
    #[arg(long, default_value_t = 1)]
    csv_rate: u32,
    /// Overwrite an existing output file.
    #[arg(long)]
    force: bool,
    /// Print per-stage statistics (frames, ring high-water marks, waits, time per frame).
    #[arg(long)]
    stats: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: ApplyArgs) -> Result<()> {
    let model = ModelFile::load(&args.model).with_context(|| args.model.display().to_string())?;
    if args.output.exists() && !args.force {
        bail!("{}: already exists; pass --force to overwrite", args.output.display());
    }
    let started = Instant::now();
    let applied = apply_file(&model, &args.input, &args.output, args.csv_rate, !args.quiet)?;
    let wall = started.elapsed().as_secs_f64();
    let seconds = applied.frames as f64 / f64::from(model.header.sample_rate_hz.max(1));
    println!(
        "separated {} frames into {} sources in {wall:.2} s ({:.0}× real time) → {}",
        applied.frames,
        model.header.sources,
        seconds / wall.max(1e-9),
        args.output.display()
    );
    if let (true, Some(report)) = (args.stats, &applied.pipeline) {
        print!("{}", stats_table(report));
    }
    Ok(())
}

/// What applying a model to a file did.
pub struct Applied {
    /// Frames processed.
    pub frames: usize,
    /// Pipeline counters, when the input was streamed.
    pub pipeline: Option<PipelineReport>,
}

/// Per-stage and per-ring statistics as a terminal table.
pub fn stats_table(r: &PipelineReport) -> String {
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
    out
}

fn check_channels(model: &ModelFile, input: &Path, channels: usize) -> Result<()> {
    if channels != model.header.channels {
        bail!("{}: has {channels} channels, but the model was trained on {}", input.display(), model.header.channels);
    }
    Ok(())
}

/// Applies `model` to `input` (WAV or CSV) and writes the sources to `output` (CSV by
/// extension, else a float WAV), streaming through the pipeline — reader, separator and
/// writer on their own threads — so memory stays constant whatever the input's length.
pub fn apply_file(model: &ModelFile, input: &Path, output: &Path, csv_rate: u32, progress: bool) -> Result<Applied> {
    let separator = Separator::new(model);
    let n = separator.sources();
    let (source, total, rate): (Box<dyn Source>, Option<usize>, u32) = if is_csv(input) {
        let reader = CsvBlockReader::open(input, csv_rate)?;
        check_channels(model, input, reader.channels())?;
        (Box::new(reader), None, csv_rate)
    } else {
        let reader = WavBlockReader::open(input)?;
        check_channels(model, input, reader.channels())?;
        let (total, rate) = (reader.frames_total(), reader.sample_rate_hz());
        (Box::new(reader), Some(total), rate)
    };
    let sink: Box<dyn Sink> = if is_csv(output) {
        let names: Vec<String> = (1..=n).map(|j| format!("source{j}")).collect();
        Box::new(CsvStreamWriter::create(output, &names)?)
    } else {
        Box::new(WavStreamWriter::create(output, n, rate)?)
    };
    let pipeline = Pipeline::start(source, Box::new(separator), sink, PipelineConfig::file())?;
    let bar = match (progress, total) {
        (true, Some(total)) => crate::progress::frames_bar(total as u64, rate),
        _ => ProgressBar::hidden(),
    };
    while !pipeline.is_finished() {
        bar.set_position(pipeline.frames_out());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bar.finish_and_clear();
    let report = pipeline.wait()?;
    Ok(Applied { frames: report.frames_out as usize, pipeline: Some(report) })
}
