//! `unmix score`: |corr| after optimal matching and SI-SDR.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use unmix_core::limits::MAX_CHANNELS;
use unmix_core::plural;
use unmix_dsp::metrics::{Score, ScoreAccumulator};
use unmix_io::BlockReader;

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
    let s = score_files(&args.truth, &args.est, &args.est, args.csv_rate)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", table(&s));
    }
    Ok(())
}

/// Reads and scores two files, block by block: memory does not grow with their length.
/// Messages call the estimates `est_name` (the name a user knows them by: `separate`
/// scores its sources before they are moved into place).
pub fn score_files(truth: &Path, est: &Path, est_name: &Path, csv_rate: u32) -> Result<Score> {
    let mut t = BlockReader::open(truth, csv_rate)?;
    let mut e = BlockReader::open(est, csv_rate).with_context(|| est_name.display().to_string())?;
    let est = est_name;
    // Checked before a block of either is read: a block is channels wide.
    for (path, channels) in [(truth, t.channels()), (est, e.channels())] {
        if channels > MAX_CHANNELS {
            bail!("{}: {} to score; at most {MAX_CHANNELS}", path.display(), plural(channels, "source"));
        }
    }
    if e.channels() < t.channels() {
        bail!(
            "{}: {} estimated sources cannot be matched to {} true sources",
            est.display(),
            e.channels(),
            t.channels()
        );
    }
    if let (Some(a), Some(b)) = (t.frames_total(), e.frames_total())
        && a != b
    {
        bail!("{}: {}, but {} has {a}", est.display(), plural(b, "frame"), truth.display());
    }
    let mut acc = ScoreAccumulator::new(t.channels(), e.channels())?;
    const BLOCK: usize = 16_384;
    let (mut tb, mut eb) = (Vec::new(), Vec::new());
    loop {
        let (got_t, got_e) = (t.read_block(&mut tb, BLOCK)?, e.read_block(&mut eb, BLOCK)?);
        if got_t != got_e {
            // A CSV's length shows only at its end.
            let (short, long) = if got_t < got_e { (truth, est) } else { (est, truth) };
            let frames = acc.frames() + got_t.min(got_e) as u64;
            bail!(
                "{}: ends after {}, but {} goes on",
                short.display(),
                plural(frames as usize, "frame"),
                long.display()
            );
        }
        if got_t == 0 {
            break;
        }
        acc.push(&tb, &eb)?;
    }
    // A constant true source or a single frame cannot be scored: the truth says so.
    acc.finish().with_context(|| truth.display().to_string())
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
