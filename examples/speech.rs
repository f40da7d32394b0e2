//! The speech benchmark: talkers rendered by a speech synthesiser (`data/speech/`, made by
//! `benches/speech/render.sh` with espeak-ng), mixed instantaneously into `m` channels by a
//! seeded random matrix. Prints, per mixing seed, each talker's SI-SDR for `unmix
//! separate`'s model choice and for the project's own FastICA (symmetric, `log cosh`) on
//! the same whitened frames, and the wall time of each; writes the mixture and the truth
//! as WAVs (`--out DIR`) for `unmix separate` and `benches/speech/compare.py`
//! (scikit-learn's FastICA and Picard).
//!
//! Run: `cargo run --release --example speech [-- --talkers 3 --channels 4 --seeds 1,2,3
//! --snr-db 40 --out DIR]` (`--snr-db`: white sensor noise that far below each channel's
//! power; none without).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use unmix_core::Recording;
use unmix_dsp::ica::{FastIcaConfig, fast_ica};
use unmix_dsp::metrics::{Score, score};
use unmix_dsp::{Normaliser, NormaliserConfig};
use unmix_separate::{CancelToken, SeparateParams, SourceCount, apply, fit};

/// Ratio of the largest to the smallest singular value a mixing matrix may have: a
/// recording whose mixing is nearly singular is a different benchmark (noise bounds).
const MAX_CONDITION: f64 = 10.0;

/// What `--help` prints: every option, at its default where it has one (each is
/// described at the top of this file).
const USAGE: &str = "the speech benchmark: each talker's SI-SDR for the model choice and the project's FastICA\n\n\
     usage: cargo run --release --example speech -- [--talkers 3] [--channels 4] [--seeds 1,2,3] \
     [--snr-db DB] [--out DIR]";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut talkers, mut channels, mut seeds, mut out) = (3usize, 4usize, vec![1u64, 2, 3], None::<PathBuf>);
    let mut snr_db = None;
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--talkers" => talkers = value()?.parse()?,
            "--channels" => channels = value()?.parse()?,
            "--seeds" => seeds = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--out" => out = Some(PathBuf::from(value()?)),
            "--snr-db" => snr_db = Some(value()?.parse::<f64>()?),
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if !(1..=3).contains(&talkers) || channels < talkers {
        bail!("1 to 3 talkers into at least as many channels");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/speech");
    let voices: Vec<Recording> = (1..=talkers)
        .map(|k| {
            let path = dir.join(format!("talker{k}.wav"));
            unmix_io::read_wav(&path).with_context(|| format!("{}", path.display()))
        })
        .collect::<Result<_>>()?;
    let rate = voices[0].sample_rate_hz();
    let frames = voices.iter().map(Recording::frames).min().unwrap_or(0);
    let truth: Vec<Vec<f32>> = voices.iter().map(|v| v.channel(0)[..frames].to_vec()).collect();
    let noise = snr_db.map_or("no sensor noise".to_string(), |db| format!("sensor noise {db} dB below each channel"));
    println!(
        "{talkers} talkers into {channels} channels, {frames} frames at {rate} Hz, condition ≤ {MAX_CONDITION}, {noise}"
    );
    println!("seed | model | SI-SDR per talker (dB) | mean | time || FastICA per talker | mean | time");
    for &seed in &seeds {
        let mixture = mix(&truth, channels, rate, seed, snr_db)?;
        if let Some(out) = &out {
            let case = out.join(format!("seed{seed}"));
            std::fs::create_dir_all(&case)?;
            unmix_io::write_wav_f32(&case.join("mixture.wav"), &mixture)?;
            let interleaved = (0..frames).flat_map(|t| truth.iter().map(move |s| s[t])).collect();
            unmix_io::write_wav_f32(
                &case.join("truth.wav"),
                &Recording::from_interleaved(rate, talkers, interleaved)?,
            )?;
        }
        let start = Instant::now();
        let config = SeparateParams::new(SourceCount::Fixed(talkers)).check()?;
        let fitted = fit(&mixture, &config, &CancelToken::new(), &mut |_| {})?;
        let separated = apply(&fitted.model, &mixture, config.params().kernel)?;
        let ours_time = start.elapsed().as_secs_f64();
        let ours = score(&truth, &(0..talkers).map(|j| separated.channel(j)).collect::<Vec<_>>())?;

        let start = Instant::now();
        let normaliser = Normaliser::fit(&mixture, NormaliserConfig { whiten_to: Some(talkers) })?;
        let whitened = normaliser.transform(&mixture)?;
        let ica = fast_ica(&whitened, talkers, &FastIcaConfig { max_frames: usize::MAX, ..FastIcaConfig::default() })?;
        let sources = ica.apply(&whitened);
        let ica_time = start.elapsed().as_secs_f64();
        let columns: Vec<Vec<f32>> =
            (0..talkers).map(|j| sources.iter().skip(j).step_by(talkers).copied().collect()).collect();
        let theirs = score(&truth, &columns)?;
        println!(
            "{seed} | {} | {} | {:.1} | {ours_time:.2} s || {} | {:.1} | {ica_time:.2} s",
            fitted.selection.chosen,
            per_source(&ours),
            mean(&ours),
            per_source(&theirs),
            mean(&theirs),
        );
    }
    Ok(())
}

/// `x = A s + e`, `A` Gaussian with its condition number at most [`MAX_CONDITION`]
/// (redrawn until it is), `e` white Gaussian sensor noise at `snr_db` below each channel's
/// power (none without), the whole scaled so that the loudest channel peaks at 0.9 of full
/// scale.
fn mix(truth: &[Vec<f32>], channels: usize, rate: u32, seed: u64, snr_db: Option<f64>) -> Result<Recording> {
    let n = truth.len();
    let frames = truth[0].len();
    let mut rng = StdRng::seed_from_u64(seed);
    let a = loop {
        let a: Vec<f64> = (0..channels * n).map(|_| rng.sample(StandardNormal)).collect();
        let m = unmix_dsp::linalg::Matrix { rows: channels, cols: n, data: a.clone() };
        if m.condition_number() <= MAX_CONDITION {
            break a;
        }
    };
    let mut x: Vec<f64> = vec![0.0; frames * channels];
    for (t, frame) in x.chunks_exact_mut(channels).enumerate() {
        for (c, v) in frame.iter_mut().enumerate() {
            *v = (0..n).map(|j| a[c * n + j] * f64::from(truth[j][t])).sum();
        }
    }
    if let Some(snr_db) = snr_db {
        for c in 0..channels {
            let power = x.iter().skip(c).step_by(channels).map(|v| v * v).sum::<f64>() / frames as f64;
            let sd = (power / 10f64.powf(snr_db / 10.0)).sqrt();
            for v in x.iter_mut().skip(c).step_by(channels) {
                *v += sd * rng.sample::<f64, _>(StandardNormal);
            }
        }
    }
    let peak = x.iter().fold(0.0f64, |p, v| p.max(v.abs()));
    Ok(Recording::from_interleaved(rate, channels, x.iter().map(|v| (0.9 * v / peak) as f32).collect())?)
}

fn per_source(s: &Score) -> String {
    s.sources.iter().map(|p| format!("{:.1}", p.si_sdr_db)).collect::<Vec<_>>().join(" / ")
}

fn mean(s: &Score) -> f64 {
    s.mean_si_sdr_db
}
