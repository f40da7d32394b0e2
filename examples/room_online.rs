//! The live room benchmark: talkers in a simulated room (`unmix_synth::room`), the
//! microphones' samples fed block by block to the online separator that `unmix live
//! --domain stft` runs (`unmix_freq::OnlineIva`), scored by SI-SDR against every talker's
//! image at the reference microphone over successive 5-second stretches, next to the
//! offline separation (`unmix separate --domain stft`'s default, and offline AuxIVA
//! with the online run's prior and STFT) on the same stretch. Prints the processing load
//! (seconds of computation per second of audio, on one thread) too.
//!
//! The talkers speak for 18 s: each reads the three bundled sentences (`data/speech/`)
//! in turn, starting from a different one, so two never say the same sentence at once.
//!
//! Run: `cargo run --release --example room_online [-- --talkers 2 --mics 2 --rt60 0.3
//! --seeds 1,2,3 --frame 1024 --hop 256 --forgetting 0.98 --prior laplace|gauss|low-rank
//! --dry speech|synthetic --delay SAMPLES --stagger SAMPLES --online-only --from-take
//! --from-take-model --handover SECONDS]`.
//!
//! `--handover S`: as `unmix live --domain stft` runs by default (`--warmup S`), a
//! room's model fitted on the first `S` seconds in which every microphone sounds takes
//! over from the online separator once fitted (`unmix_freq::room_handover`), its fit's
//! wall time after; without it, the online separator alone (`live --online-only`).
//!
//! `--from-take`: the online separator starts from the demixing an offline fit (the
//! low-rank demixing, 50 iterations, the online STFT) found on another take in the same
//! room — the same talkers and places, each talker's sentences 7 s further on — as `unmix
//! live --domain stft --model --adapt` starts from a room's model.
//!
//! `--from-take-model`: the whole room's model of that take instead (`separate --domain
//! stft`'s default fit on it), run as `unmix live --domain stft --model` runs it: its
//! spatial model fixed, every source's power learnt frame by frame.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use unmix_dsp::metrics::{score, si_sdr_db};
use unmix_freq::{
    IvaConfig, MnmfConfig, OnlineConfig, OnlineIva, SourcePrior, StftConfig, room_handover, separate_recording,
};
use unmix_synth::room::{RoomConfig, simulate_room};

/// Samples per block fed to the separator, as `unmix live`'s default `--frame`.
const BLOCK: usize = 256;
const RATE: usize = 16_000;

/// What `--help` prints: every option, at its default where it has one (each is
/// described at the top of this file).
const USAGE: &str = "the live room benchmark: the online separator's SI-SDR over successive 5-second stretches, beside the offline one\n\n\
     usage: cargo run --release --example room_online -- [--talkers 2] [--mics 2] [--rt60 0.3] \
     [--seeds 1,2,3] [--frame 2048] [--hop 512] [--forgetting 0.99] [--spacing 0.05] [--prior \
     low-rank|laplace|gauss] [--dry speech|synthetic] [--delay SAMPLES] [--stagger SAMPLES] \
     [--online-only] [--from-take] [--from-take-model] [--handover SECONDS]";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut talkers, mut mics, mut rt60, mut seeds) = (2usize, 2usize, 0.3f64, vec![1u64, 2, 3]);
    let mut config = OnlineConfig::DEFAULT;
    let (mut spacing, mut synthetic, mut offline, mut delay, mut stagger) = (0.05, false, true, 0usize, 0usize);
    // Another take's fit to start from: its demixing (adapted), or its spatial model (fixed).
    let (mut from_take, mut from_take_model) = (false, false);
    // Seconds of sound the room's model is fitted on before it takes over (`live`'s
    // --warmup), as `unmix live --domain stft` runs; none: the online separator alone.
    let mut handover = None::<f64>;
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--talkers" => talkers = value()?.parse()?,
            "--mics" => mics = value()?.parse()?,
            "--rt60" => rt60 = value()?.parse()?,
            "--seeds" => seeds = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--frame" => config.stft.frame = value()?.parse()?,
            "--hop" => config.stft.hop = value()?.parse()?,
            "--forgetting" => config.forgetting = value()?.parse()?,
            "--spacing" => spacing = value()?.parse()?,
            "--prior" => {
                config.prior = match value()?.as_str() {
                    "laplace" => SourcePrior::Laplace,
                    "gauss" => SourcePrior::Gauss,
                    "low-rank" => SourcePrior::LowRank { bases: 2 },
                    other => bail!("--prior {other}: laplace, gauss or low-rank"),
                }
            }
            "--dry" => synthetic = value()? == "synthetic",
            "--online-only" => offline = false,
            "--delay" => delay = value()?.parse()?,
            "--stagger" => stagger = value()?.parse()?,
            "--from-take" => from_take = true,
            "--from-take-model" => from_take_model = true,
            "--handover" => handover = Some(value()?.parse()?),
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
    let dry = if synthetic { synthetic_talkers(talkers, 18 * RATE) } else { bundled_talkers(talkers)? };
    let len = dry[0].len();
    println!(
        "{talkers} talkers ({}), {mics} microphones {spacing} m apart, RT60 {rt60} s; online: STFT {} / {}, forgetting {}, {:?}",
        if synthetic { "speech-like noise" } else { "bundled sentences" },
        config.stft.frame,
        config.stft.hop,
        config.forgetting,
        config.prior
    );
    println!("mean SI-SDR gain (dB) over the reference microphone, per 5-s stretch of input");
    println!(
        "seed | online 0–5 s | 5–10 s | 10–15 s | 15–18 s | order kept | offline default 5–18 s | offline AuxIVA 5–18 s | online load"
    );
    for &seed in &seeds {
        let room = RoomConfig::drawn(seed, talkers, mics, spacing, rt60, RATE as u32);
        let record = simulate_room(&room, &dry)?;
        let truth: Vec<Vec<f32>> = (0..talkers).map(|j| record.truth.channel(j)[..len].to_vec()).collect();
        let reference = &record.mixture.channel(0)[..len];

        let mut online = if from_take || from_take_model {
            let other: Vec<Vec<f32>> = dry.iter().map(|d| [&d[7 * RATE..], &d[..7 * RATE]].concat()).collect();
            let take = simulate_room(&room, &other)?;
            let iva = IvaConfig { prior: SourcePrior::LowRank { bases: 2 }, iterations: 50, seed: 1 };
            let spatial = from_take_model.then(MnmfConfig::default);
            let fitted =
                separate_recording(&take.mixture, talkers, config.stft, &iva, spatial.as_ref(), 0, Default::default())?;
            match &fitted.spatial {
                Some(model) => OnlineIva::spatial(mics, talkers, config, &model.spatial_filter())?,
                None => OnlineIva::starting_from(mics, talkers, config, &fitted.fit.full)?,
            }
        } else {
            OnlineIva::new(mics, talkers, config)?
        };
        // Silence before the talkers (a device opened before anyone speaks) shifts the
        // frames' grid against the speech.
        let mut input = vec![0.0f32; delay * mics];
        input.extend_from_slice(record.mixture.interleaved());
        // Channel c connected `c · stagger` samples after the first (ports joined one by
        // one): silent until then.
        for (t, frame) in input.chunks_exact_mut(mics).enumerate() {
            for (c, v) in frame.iter_mut().enumerate() {
                if t < delay + c * stagger {
                    *v = 0.0;
                }
            }
        }
        let mut output = vec![0.0f32; input.len() / mics * talkers];
        let start = Instant::now();
        // As `unmix live --domain stft`'s trainer: a room's model of the first `handover`
        // seconds in which every microphone sounds, taken over from the online separator
        // once it would be fitted (its wall time later).
        let warm = handover.map(|s| (s * RATE as f64) as usize);
        let sounding = unmix_freq::sounding_from(&input, &mut vec![false; mics]).unwrap_or(input.len());
        let mut fit_at = warm.map(|w| sounding + w);
        let mut pending: Option<(usize, OnlineIva)> = None;
        let (mut fit_time, mut alignment) = (0.0, Vec::new());
        for (k, (x, y)) in input.chunks(BLOCK * mics).zip(output.chunks_mut(BLOCK * talkers)).enumerate() {
            let fed = k * BLOCK;
            if let Some((_, mut next)) = pending.take_if(|(at, _)| fed >= *at) {
                if !next.continue_from(&online) {
                    bail!("the room's model does not continue the separator");
                }
                online = next;
            }
            if let (Some(at), Some(warm)) = (fit_at, warm)
                && fed >= at
            {
                let began = Instant::now();
                let handover =
                    room_handover(&input[..fed * mics], warm, mics, talkers, RATE as u32, config, Default::default())?;
                let (next, corr) = (handover.separator, handover.alignment);
                fit_time = began.elapsed().as_secs_f64();
                alignment = corr;
                pending = Some((fed + (fit_time * RATE as f64) as usize, next));
                fit_at = None;
            }
            online.process(x, y);
        }
        if handover.is_some() {
            println!(
                "  seed {seed}: the room's model took {fit_time:.2} s to fit; |corr| with the outputs continued {alignment:.2?}"
            );
        }
        let load = (start.elapsed().as_secs_f64() - fit_time) / (input.len() / mics) as f64 * RATE as f64;
        // Output sample t + latency is input sample t's.
        let lag = online.latency() + delay;
        let estimates: Vec<Vec<f32>> = (0..talkers)
            .map(|j| (0..len).map(|t| output.get((t + lag) * talkers + j).copied().unwrap_or(0.0)).collect())
            .collect();
        let stretches = [(0, 5), (5, 10), (10, 15), (15, 18)];
        let mut row = vec![seed.to_string()];
        let mut orders = Vec::new();
        for (from, to) in stretches {
            let (a, b) = (from * RATE, (to * RATE).min(len - lag));
            let (gain, order) = gain_over(&truth, &estimates, reference, a, b)?;
            row.push(format!("{gain:+.1}"));
            orders.push(order);
        }
        // Across the first hand-over too: the 2 s before it against the 5–10 s stretch.
        if let Some(at) = handover.filter(|&at| at >= 2.0) {
            let end = (at * RATE as f64) as usize;
            let (_, before) = gain_over(&truth, &estimates, reference, end - 2 * RATE, end)?;
            orders.push(before);
        }
        row.push(if orders[1..].windows(2).all(|w| w[0] == w[1]) { "yes".into() } else { format!("{orders:?}") });
        let offline_runs = if offline { 2 } else { 0 };
        for (config, spatial) in [
            (
                IvaConfig { prior: SourcePrior::LowRank { bases: 2 }, iterations: 50, seed: 1 },
                Some(MnmfConfig::default()),
            ),
            (IvaConfig { prior: config.prior, iterations: 50, seed: 1 }, None),
        ]
        .into_iter()
        .take(offline_runs)
        {
            let stft = if spatial.is_some() { StftConfig::DEFAULT } else { online.config().stft };
            let separated =
                separate_recording(&record.mixture, talkers, stft, &config, spatial.as_ref(), 0, Default::default())?;
            let offline: Vec<Vec<f32>> = (0..talkers).map(|j| separated.sources.channel(j)[..len].to_vec()).collect();
            let (gain, _) = gain_over(&truth, &offline, reference, 5 * RATE, len - lag)?;
            row.push(format!("{gain:+.1}"));
        }
        row.push(format!("{:.1} %", 100.0 * load));
        println!("{}", row.join(" | "));
    }
    Ok(())
}

/// The mean SI-SDR gain over the reference microphone on samples `a..b`, and which
/// estimate each talker was matched to.
fn gain_over(
    truth: &[Vec<f32>],
    estimates: &[Vec<f32>],
    reference: &[f32],
    a: usize,
    b: usize,
) -> Result<(f64, Vec<usize>)> {
    let cut = |v: &Vec<f32>| v[a..b].to_vec();
    let t: Vec<Vec<f32>> = truth.iter().map(cut).collect();
    let e: Vec<Vec<f32>> = estimates.iter().map(cut).collect();
    let s = score(&t, &e)?;
    let mut gain = 0.0;
    let mut order = vec![0; truth.len()];
    for p in &s.sources {
        gain += p.si_sdr_db - si_sdr_db(&t[p.truth], &reference[a..b]);
        order[p.truth] = p.estimate;
    }
    Ok((gain / truth.len() as f64, order))
}

/// Talker `k` reads the bundled sentences `k, k + 1, k + 2` (mod 3) one after another.
fn bundled_talkers(talkers: usize) -> Result<Vec<Vec<f32>>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/speech");
    let clips: Vec<Vec<f32>> = (1..=3)
        .map(|k| {
            let path = dir.join(format!("talker{k}.wav"));
            Ok(unmix_io::read_wav(&path).with_context(|| format!("{}", path.display()))?.channel(0))
        })
        .collect::<Result<_>>()?;
    Ok((0..talkers).map(|k| (0..3).flat_map(|i| clips[(k + i) % 3].iter().copied()).collect()).collect())
}

/// Speech-like noise: white noise under a syllable-rate envelope with pauses, seeded per
/// talker, of a family the bundled sentences do not come from.
fn synthetic_talkers(talkers: usize, len: usize) -> Vec<Vec<f32>> {
    use rand::{Rng, SeedableRng};
    (0..talkers)
        .map(|k| {
            let mut rng = rand::rngs::StdRng::seed_from_u64(100 + k as u64);
            let mut level = 0.0f32;
            let mut low = 0.0f32;
            (0..len)
                .map(|t| {
                    if t % 1600 == 0 {
                        level = if rng.random_bool(0.25) { 0.0 } else { rng.random_range(0.1f32..1.0) };
                    }
                    // A one-pole low-pass: more energy low, as voices have.
                    low = 0.9 * low + 0.1 * rng.random_range(-1.0f32..1.0);
                    level * low * 3.0
                })
                .collect()
        })
        .collect()
}
