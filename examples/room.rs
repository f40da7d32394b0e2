//! The room benchmark: talkers (`data/speech/`, rendered by espeak-ng) in a simulated
//! shoebox room (`unmix_synth::room`, image-source method), heard by a small microphone
//! array; separated in the frequency domain (`unmix_freq`) with each prior, scored by
//! SI-SDR against every talker's image at the reference microphone, next to the
//! unprocessed reference microphone. Writes the files (`--out DIR`) for
//! `benches/room/compare.py` (pyroomacoustics' AuxIVA, ILRMA and FastMNMF2 on the same
//! files and STFT settings).
//!
//! Run: `cargo run --release --example room [-- --talkers 2 --mics 2 --rt60 0.3 --seeds
//! 1,2,3 --frame 2048 --hop 512 --iterations 50 --out DIR]`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use unmix_core::Recording;
use unmix_dsp::metrics::{score, si_sdr_db};
use unmix_freq::{IvaConfig, MnmfConfig, SourcePrior, StftConfig, separate_recording};
use unmix_synth::room::{RoomConfig, simulate_room};

/// What `--help` prints: every option, at its default where it has one (each is
/// described at the top of this file).
const USAGE: &str = "the room benchmark: each prior's SI-SDR on simulated rooms, beside the reference microphone\n\n\
     usage: cargo run --release --example room -- [--talkers 2] [--mics 2] [--rt60 0.3] [--seeds \
     1,2,3] [--frame 2048] [--hop 512] [--iterations 50] [--spacing 0.05] [--bases 2] [--out \
     DIR]";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut talkers, mut mics, mut rt60, mut seeds, mut out) =
        (2usize, 2usize, 0.3f64, vec![1u64, 2, 3], None::<PathBuf>);
    let mut stft = StftConfig::DEFAULT;
    let (mut iterations, mut spacing, mut bases) = (50, 0.05, 2);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--talkers" => talkers = value()?.parse()?,
            "--mics" => mics = value()?.parse()?,
            "--rt60" => rt60 = value()?.parse()?,
            "--seeds" => seeds = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--frame" => stft.frame = value()?.parse()?,
            "--hop" => stft.hop = value()?.parse()?,
            "--iterations" => iterations = value()?.parse()?,
            "--spacing" => spacing = value()?.parse()?,
            "--bases" => bases = value()?.parse()?,
            "--out" => out = Some(PathBuf::from(value()?)),
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if !(1..=3).contains(&talkers) || mics < talkers {
        bail!("1 to 3 talkers, at least as many microphones");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/speech");
    let dry: Vec<Vec<f32>> = (1..=talkers)
        .map(|k| {
            let path = dir.join(format!("talker{k}.wav"));
            Ok(unmix_io::read_wav(&path).with_context(|| format!("{}", path.display()))?.channel(0))
        })
        .collect::<Result<_>>()?;
    println!(
        "{talkers} talkers, {mics} microphones {spacing} m apart, RT60 {rt60} s, STFT {} / {}, {iterations} iterations; SI-SDR (dB) per talker at the reference microphone",
        stft.frame, stft.hop
    );
    println!("seed | mixture | laplace | gauss | low-rank | low-rank then spatial | wall per prior");
    for &seed in &seeds {
        let room = RoomConfig::drawn(seed, talkers, mics, spacing, rt60, 16_000);
        let record = simulate_room(&room, &dry)?;
        let truth: Vec<Vec<f32>> = (0..talkers).map(|j| record.truth.channel(j)).collect();
        let reference = record.mixture.channel(0);
        let unprocessed: Vec<f64> = truth.iter().map(|t| si_sdr_db(t, &reference)).collect();
        let mut row = vec![format!("{seed}"), per(&unprocessed)];
        let mut walls = Vec::new();
        // `unmix separate --domain stft`'s defaults: seed 1, 3 starts of the spatial model.
        let spatial = MnmfConfig { iterations, ..MnmfConfig::default() };
        let low_rank = SourcePrior::LowRank { bases };
        for (prior, spatial) in
            [(SourcePrior::Laplace, None), (SourcePrior::Gauss, None), (low_rank, None), (low_rank, Some(&spatial))]
        {
            let start = Instant::now();
            let config = IvaConfig { prior, iterations, seed: 1 };
            let separated =
                separate_recording(&record.mixture, talkers, stft, &config, spatial, 0, Default::default())?;
            walls.push(format!("{:.2} s", start.elapsed().as_secs_f64()));
            let estimates: Vec<Vec<f32>> = (0..talkers).map(|j| separated.sources.channel(j)).collect();
            let s = score(&truth, &estimates)?;
            let mut by_truth: Vec<(usize, f64)> = s.sources.iter().map(|p| (p.truth, p.si_sdr_db)).collect();
            by_truth.sort_by_key(|p| p.0);
            let values: Vec<f64> = by_truth.iter().map(|p| p.1).collect();
            let gain = values.iter().zip(&unprocessed).map(|(a, b)| a - b).sum::<f64>() / talkers as f64;
            row.push(format!("{} (+{gain:.1})", per(&values)));
        }
        row.push(walls.join(" / "));
        println!("{}", row.join(" | "));
        if let Some(out) = &out {
            let dir = out.join(format!("seed{seed}"));
            std::fs::create_dir_all(&dir)?;
            unmix_io::write_wav_f32(&dir.join("mixture.wav"), &record.mixture)?;
            unmix_io::write_wav_f32(&dir.join("truth.wav"), &record.truth)?;
            let _: &Recording = &record.truth;
        }
    }
    Ok(())
}

fn per(values: &[f64]) -> String {
    values.iter().map(|v| format!("{v:.1}")).collect::<Vec<_>>().join(" / ")
}
