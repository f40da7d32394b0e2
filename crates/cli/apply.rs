//! `unmix apply`, and the streaming application of a model that `separate` shares.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use unmix_core::Recording;
use unmix_format::ModelFile;
use unmix_infer::Separator;
use unmix_io::{WavBlockReader, WavStreamWriter, read_csv, write_csv, write_wav_f32};

/// Frames per block when streaming a file through the encoder.
const BLOCK_FRAMES: usize = 16_384;

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
}

pub fn run(args: ApplyArgs) -> Result<()> {
    let model = ModelFile::load(&args.model).with_context(|| args.model.display().to_string())?;
    if args.output.exists() && !args.force {
        bail!("{}: already exists; pass --force to overwrite", args.output.display());
    }
    let started = Instant::now();
    let frames = apply_file(&model, &args.input, &args.output, args.csv_rate)?;
    println!(
        "separated {frames} frames into {} sources in {:.2} s → {}",
        model.header.sources,
        started.elapsed().as_secs_f64(),
        args.output.display()
    );
    Ok(())
}

fn is_csv(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

fn check_channels(model: &ModelFile, input: &Path, channels: usize) -> Result<()> {
    if channels != model.header.channels {
        bail!("{}: has {channels} channels, but the model was trained on {}", input.display(), model.header.channels);
    }
    Ok(())
}

/// Applies `model` to `input` and writes the sources to `output` (WAV, or CSV by
/// extension). WAV input is streamed block by block, so memory stays constant whatever
/// the file's length. Returns the number of frames processed.
pub fn apply_file(model: &ModelFile, input: &Path, output: &Path, csv_rate: u32) -> Result<usize> {
    let mut separator = Separator::new(model);
    let n = separator.sources();
    if is_csv(input) {
        let rec = read_csv(input, csv_rate)?;
        check_channels(model, input, rec.channels())?;
        let sources = apply_recording(&mut separator, &rec)?;
        write_sources(output, &sources)?;
        return Ok(rec.frames());
    }
    let mut reader = WavBlockReader::open(input)?;
    check_channels(model, input, reader.channels())?;
    if is_csv(output) {
        // CSV output is for sensor-sized data: read whole, write whole.
        let rec = unmix_io::read_wav(input)?;
        let sources = apply_recording(&mut separator, &rec)?;
        write_sources(output, &sources)?;
        return Ok(rec.frames());
    }
    let mut writer = WavStreamWriter::create(output, n, reader.sample_rate_hz())?;
    let mut block = Vec::with_capacity(BLOCK_FRAMES * reader.channels());
    let mut out = vec![0.0f32; BLOCK_FRAMES * n];
    let mut frames = 0usize;
    loop {
        let got = reader.read_block(&mut block, BLOCK_FRAMES)?;
        if got == 0 {
            break;
        }
        separator.process(&block, &mut out[..got * n])?;
        writer.write(&out[..got * n])?;
        frames += got;
    }
    writer.finish()?;
    Ok(frames)
}

/// Applies the separator to a recording held in memory.
pub fn apply_recording(separator: &mut Separator, rec: &Recording) -> Result<Recording> {
    let n = separator.sources();
    let mut out = vec![0.0f32; rec.frames() * n];
    separator.process(rec.interleaved(), &mut out)?;
    Ok(Recording::from_interleaved(rec.sample_rate_hz(), n, out)?)
}

/// Writes sources as WAV or CSV by the path's extension.
pub fn write_sources(path: &Path, sources: &Recording) -> Result<()> {
    if is_csv(path) {
        let names: Vec<String> = (1..=sources.channels()).map(|j| format!("source{j}")).collect();
        write_csv(path, sources, &names)?;
    } else {
        write_wav_f32(path, sources)?;
    }
    Ok(())
}
