//! `unmix score`: |corr| after optimal matching and SI-SDR.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::Args;
use unmix_dsp::metrics::{Score, score};
use unmix_io::read_recording;

/// Arguments of `unmix score`.
#[derive(Args, Debug)]
pub struct ScoreArgs {
    /// True sources (WAV or CSV), one channel per source.
    #[arg(long)]
    truth: PathBuf,
    /// Estimated sources (WAV or CSV), at least as many channels as true sources.
    #[arg(long)]
    est: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Sample rate assumed for CSV files (as `--csv-rate` of the other commands; only
    /// labels the data here).
    #[arg(long, alias = "sample-rate", default_value_t = 1)]
    csv_rate: u32,
}

pub fn run(args: ScoreArgs) -> Result<()> {
    let s = score_files(&args.truth, &args.est, args.csv_rate)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", table(&s));
    }
    Ok(())
}

/// Reads and scores two files.
pub fn score_files(truth: &Path, est: &Path, csv_rate: u32) -> Result<Score> {
    let t = read_recording(truth, csv_rate)?;
    let e = read_recording(est, csv_rate)?;
    if t.frames() != e.frames() {
        bail!("{}: {} frames, but {} has {}", est.display(), e.frames(), truth.display(), t.frames());
    }
    if e.channels() < t.channels() {
        bail!(
            "{}: {} estimated sources cannot be matched to {} true sources",
            est.display(),
            e.channels(),
            t.channels()
        );
    }
    let tc: Vec<Vec<f32>> = (0..t.channels()).map(|c| t.channel(c)).collect();
    let ec: Vec<Vec<f32>> = (0..e.channels()).map(|c| e.channel(c)).collect();
    Ok(score(&tc, &ec)?)
}

/// A terminal table of a score.
pub fn table(s: &Score) -> String {
    let mut out = String::from("source  estimate  sign   |corr|   SI-SDR dB   |rank corr|\n");
    for r in &s.sources {
        out += &format!(
            "{:>6}  {:>8}  {:>4}  {:>7.4}  {:>9.2}   {:>11.4}\n",
            r.truth + 1,
            r.estimate + 1,
            if r.sign < 0.0 { "-" } else { "+" },
            r.abs_corr,
            r.si_sdr_db,
            r.abs_rank_corr
        );
    }
    out += &format!(
        "  mean                  {:>7.4}  {:>9.2}   {:>11.4}\n",
        s.mean_abs_corr, s.mean_si_sdr_db, s.mean_abs_rank_corr
    );
    out += &format!("   min                  {:>7.4}  {:>9.2}\n", s.min_abs_corr, s.min_si_sdr_db);
    out
}
