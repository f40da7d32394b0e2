//! `unmix synth`: the paper's benchmark mixtures, post-nonlinear ones, and a shear
//! building's floor accelerations for structural-health monitoring.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, ValueEnum};
use unmix_core::plural;
use unmix_io::{WavStreamWriter, write_wav_f32};
use unmix_synth::room::{RoomConfig, simulate_room};
use unmix_synth::shm::{Damage, Environment, ShmConfig, simulate};
use unmix_synth::{
    MAX_CONDITION, MIN_CONDITION_BOUND, Marginal, MixKind, SynthConfig, SynthMeta, SynthStream, TANH_INPUT_STD,
    generate,
};

use crate::output::Staging;

/// Mixing kind.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kind {
    /// `x = A s` with a random well-conditioned `A` (condition number ≤ 5,
    /// `--max-condition`).
    Linear,
    /// `x = tanh(A2 tanh(A1 s))`, every tanh input scaled to standard deviation 1.5
    /// (`--tanh-input-std`).
    Nonlinear,
    /// Post-nonlinear: `x = f(A s)`, `A` as for `linear`, each sensor through its own
    /// monotone curve — soft limiter, arctan, logarithmic compression, cubic expansion,
    /// soft-knee clip, in turn, each with drawn parameters (written in `meta.json`).
    Postnonlinear,
    /// A shear building shaken at its base (structural-health monitoring): one
    /// accelerometer per floor, the modes as sources (`--storeys`, `--duration-s`,
    /// `--damage-storey`, `--environment`; 200 Hz unless `--sample-rate`).
    Shm,
    /// A shoebox room by the image-source method (a convolutive mixture): dry talkers
    /// (`--dry`, or the three bundled espeak-ng talkers) heard by a line of `--sensors`
    /// microphones `--spacing` m apart, at reverberation time `--rt60`; the truth is each
    /// talker's image at the first microphone; 16 kHz unless `--sample-rate`.
    Room,
}

/// Arguments of `unmix synth`.
#[derive(Args, Debug)]
pub struct SynthArgs {
    /// How the sources are mixed.
    #[arg(value_enum)]
    kind: Kind,
    /// Number of sources. Their marginals cycle through uniform, Laplace, exponential,
    /// bimodal, Student-t(5), sinusoid (arcsine), skewed mixture (`--marginals`).
    #[arg(long, default_value_t = 3)]
    sources: usize,
    /// The sources' marginals, cycled if fewer than the sources: a comma-separated list
    /// of uniform, laplace, exponential, bimodal, student-t5, sinusoid, skewed-mixture.
    #[arg(long, value_delimiter = ',')]
    marginals: Vec<Marginal>,
    /// Nonlinear only: the standard deviation every tanh input is scaled to. Smaller
    /// bends less (0.25 is nearly linear); the paper's benchmark uses 1.5.
    #[arg(long, default_value_t = TANH_INPUT_STD, value_parser = parse_positive)]
    tanh_input_std: f64,
    /// Linear and post-nonlinear: the largest condition number accepted for the mixing
    /// matrix (≥ 1.5).
    /// Matrices are drawn until one passes; a smaller bound leaves every source more of
    /// its own direction, which matters with noise (the noisy over-determined benchmark uses
    /// 3).
    #[arg(long, default_value_t = MAX_CONDITION, value_parser = parse_condition_bound)]
    max_condition: f64,
    /// Number of sensors (channels); defaults to the number of sources.
    #[arg(long)]
    sensors: Option<usize>,
    /// Number of frames (one sample of every channel). Above 4 194 304 the benchmark is
    /// drawn as a stream (flat memory; each source standardised with its marginal's exact
    /// moments rather than the sample's, the nonlinear second layer scaled on a pilot
    /// sample).
    // `--samples`, the name before frames and samples were told apart, still works.
    #[arg(long, alias = "samples", default_value_t = 10_000)]
    frames: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Add white noise to every sensor at this SNR in dB.
    #[arg(long)]
    snr_db: Option<f64>,
    /// Sample rate written into the WAV files: a label for the i.i.d. mixtures (default
    /// 8 000), the accelerometers' rate for `shm` (default 200).
    #[arg(long)]
    sample_rate: Option<u32>,
    /// shm: floors (one accelerometer and one mode each).
    #[arg(long, default_value_t = 4, help_heading = "Structural health (shm)")]
    storeys: usize,
    /// shm: length of the record in seconds.
    #[arg(long, default_value_t = 600.0, value_parser = parse_positive, help_heading = "Structural health (shm)")]
    duration_s: f64,
    /// shm: the first mode's natural frequency in Hz.
    #[arg(long, default_value_t = 2.0, value_parser = parse_positive, help_heading = "Structural health (shm)")]
    first_frequency_hz: f64,
    /// shm: every mode's damping ratio.
    #[arg(long, default_value_t = 0.02, help_heading = "Structural health (shm)")]
    damping: f64,
    /// shm: sensor noise, its standard deviation this fraction of each floor's RMS.
    #[arg(long, default_value_t = 0.05, help_heading = "Structural health (shm)")]
    noise: f64,
    /// shm: a stiffness loss on this storey (from 1, the ground storey).
    #[arg(long, help_heading = "Structural health (shm)")]
    damage_storey: Option<usize>,
    /// shm: the fraction of the storey's stiffness lost.
    #[arg(long, default_value_t = 0.1, help_heading = "Structural health (shm)")]
    damage_loss: f64,
    /// shm: when the loss starts, in seconds (default: half-way).
    #[arg(long, help_heading = "Structural health (shm)")]
    damage_from_s: Option<f64>,
    /// shm: a slow environmental factor on every stiffness, `1 + A sin(2πt/P)`, of this
    /// relative amplitude A (0.015: a ±1.5 % daily temperature cycle).
    #[arg(long, help_heading = "Structural health (shm)")]
    environment: Option<f64>,
    /// shm: the environmental cycle's period P in seconds (a day compressed in time).
    #[arg(long, default_value_t = 120.0, value_parser = parse_positive, help_heading = "Structural health (shm)")]
    environment_period_s: f64,
    /// room: the reverberation time (to −60 dB), seconds.
    #[arg(long, default_value_t = 0.3, value_parser = parse_positive, help_heading = "Room")]
    rt60: f64,
    /// room: the microphones' spacing, metres.
    #[arg(long, default_value_t = 0.05, value_parser = parse_positive, help_heading = "Room")]
    spacing: f64,
    /// room: the dry sources, comma-separated WAV files (the first channel of each, at the
    /// room's sample rate), one per --sources; default the bundled talkers (up to 3).
    #[arg(long, value_delimiter = ',', help_heading = "Room")]
    dry: Vec<PathBuf>,
    /// Output directory: mixture.wav, truth.wav, meta.json.
    #[arg(short, long)]
    output: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    force: bool,
}

fn parse_positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

fn parse_condition_bound(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v >= MIN_CONDITION_BOUND => Ok(v),
        _ => Err(format!("{s:?} is not a number ≥ {MIN_CONDITION_BOUND}")),
    }
}

/// Longer outputs are generated as a stream, so memory stays flat however long the file
/// (an hour of 8 channels at 48 kHz is 5.5 GB per file, RF64).
const STREAM_ABOVE_FRAMES: usize = 1 << 22;

/// Draws the benchmark block by block into the two WAV files; returns what was drawn.
fn write_streamed(config: &SynthConfig, mixture_path: &Path, truth_path: &Path) -> Result<SynthMeta> {
    const BLOCK_FRAMES: usize = 65_536;
    let mut stream = SynthStream::new(config)?;
    let mut mixture = WavStreamWriter::create(mixture_path, config.sensors, config.sample_rate_hz)?;
    let mut truth = WavStreamWriter::create(truth_path, config.sources, config.sample_rate_hz)?;
    let (mut x, mut s) = (Vec::new(), Vec::new());
    // Said before the work: what it will write (float WAV, 4 bytes a sample).
    let bytes = config.frames as f64 * (config.sensors + config.sources) as f64 * 4.0;
    let size = if bytes < 1e9 { format!("{:.0} MB", bytes / 1e6) } else { format!("{:.1} GB", bytes / 1e9) };
    eprintln!("drawing {} into two files of {size} in all", plural(config.frames, "frame"));
    let bar = crate::progress::frames_done("drawing", Some(config.frames as u64), true);
    let mut done = 0;
    loop {
        let got = stream.draw(&mut x, Some(&mut s), BLOCK_FRAMES);
        if got == 0 {
            break;
        }
        // Ctrl-C: the writers are dropped unfinished, their temporary files with them.
        crate::interrupt::check()?;
        mixture.write(&x)?;
        truth.write(&s)?;
        done += got as u64;
        bar.set_position(done);
    }
    bar.finish_and_clear();
    mixture.finish()?;
    truth.finish()?;
    Ok(stream.meta())
}

/// `meta.json` in the staging directory, whole or not at all.
fn write_meta(out: &mut Staging, meta: &impl serde::Serialize) -> Result<()> {
    crate::output::write_json(&out.path("meta.json"), meta)
}

/// `unmix synth shm`: the simulated building's record.
fn run_shm(args: SynthArgs) -> Result<()> {
    let config = ShmConfig {
        storeys: args.storeys,
        duration_s: args.duration_s,
        sample_rate_hz: args.sample_rate.unwrap_or(200),
        first_frequency_hz: args.first_frequency_hz,
        damping_ratio: args.damping,
        noise: args.noise,
        damage: args.damage_storey.map(|storey| Damage {
            storey,
            loss: args.damage_loss,
            from_s: args.damage_from_s.unwrap_or(args.duration_s / 2.0),
        }),
        environment: args.environment.map(|amplitude| Environment { amplitude, period_s: args.environment_period_s }),
        seed: args.seed,
    };
    crate::interrupt::watch()?;
    let mut out = Staging::new(&args.output, &["mixture.wav", "truth.wav", "meta.json"], args.force)?;
    let record = simulate(&config)?;
    write_wav_f32(&out.path("mixture.wav"), &record.mixture)?;
    write_wav_f32(&out.path("truth.wav"), &record.truth)?;
    write_meta(&mut out, &record.meta)?;
    crate::interrupt::check()?;
    out.commit()?;
    let frequencies: Vec<String> = record.meta.modes.frequencies_hz.iter().map(|f| format!("{f:.2}")).collect();
    println!(
        "wrote {} s of a {}-storey building at {} Hz (modes at {} Hz{}, seed {}) to {}",
        config.duration_s,
        config.storeys,
        config.sample_rate_hz,
        frequencies.join(", "),
        config.damage.map_or(String::new(), |d| format!(
            "; storey {} loses {:.0} % of its stiffness from {} s",
            d.storey,
            100.0 * d.loss,
            d.from_s
        )),
        config.seed,
        args.output.display()
    );
    Ok(())
}

/// The talkers `synth room` uses without `--dry` (`data/speech/`, rendered by espeak-ng,
/// 16-bit at 16 kHz).
const BUNDLED_TALKERS: [&[u8]; 3] = [
    include_bytes!("../../data/speech/talker1.wav"),
    include_bytes!("../../data/speech/talker2.wav"),
    include_bytes!("../../data/speech/talker3.wav"),
];

/// `unmix synth room`: talkers in a simulated room.
fn run_room(args: SynthArgs) -> Result<()> {
    let rate = args.sample_rate.unwrap_or(16_000);
    let n = args.sources;
    let m = args.sensors.unwrap_or(n);
    let dry: Vec<Vec<f32>> = if args.dry.is_empty() {
        if n > BUNDLED_TALKERS.len() || rate != 16_000 {
            anyhow::bail!("the bundled talkers are 3, at 16 kHz: give --dry files for {n} sources at {rate} Hz");
        }
        BUNDLED_TALKERS[..n]
            .iter()
            .map(|bytes| {
                let reader = hound::WavReader::new(std::io::Cursor::new(*bytes))?;
                reader.into_samples::<i16>().map(|v| Ok(f32::from(v?) / 32_768.0)).collect::<Result<Vec<f32>>>()
            })
            .collect::<Result<_>>()?
    } else {
        if args.dry.len() != n {
            anyhow::bail!("{} --dry files for {n} sources", args.dry.len());
        }
        args.dry
            .iter()
            .map(|path| {
                let recording = unmix_io::read_wav(path)?;
                if recording.sample_rate_hz() != rate {
                    anyhow::bail!(
                        "{}: {} Hz, the room's rate is {rate} Hz (--sample-rate)",
                        path.display(),
                        recording.sample_rate_hz()
                    );
                }
                Ok(recording.channel(0))
            })
            .collect::<Result<_>>()?
    };
    let config = RoomConfig::drawn(args.seed, n, m, args.spacing, args.rt60, rate);
    crate::interrupt::watch()?;
    let mut out = Staging::new(&args.output, &["mixture.wav", "truth.wav", "meta.json"], args.force)?;
    let record = simulate_room(&config, &dry)?;
    write_wav_f32(&out.path("mixture.wav"), &record.mixture)?;
    write_wav_f32(&out.path("truth.wav"), &record.truth)?;
    write_meta(&mut out, &config)?;
    crate::interrupt::check()?;
    out.commit()?;
    let [x, y, z] = config.dimensions;
    println!(
        "wrote {} s of {} in a {x:.1} × {y:.1} × {z:.1} m room (RT60 {} s) heard by {} {} m apart (seed {}) to {}",
        record.mixture.frames() / rate as usize,
        plural(n, "talker"),
        config.rt60_s,
        plural(m, "microphone"),
        args.spacing,
        args.seed,
        args.output.display()
    );
    Ok(())
}

pub fn run(args: SynthArgs) -> Result<()> {
    let kind = match args.kind {
        Kind::Linear => MixKind::Linear,
        Kind::Nonlinear => MixKind::Nonlinear,
        Kind::Postnonlinear => MixKind::PostNonlinear,
        Kind::Shm => return run_shm(args),
        Kind::Room => return run_room(args),
    };
    let config = SynthConfig {
        kind,
        sources: args.sources,
        sensors: args.sensors.unwrap_or(args.sources),
        frames: args.frames,
        seed: args.seed,
        sample_rate_hz: args.sample_rate.unwrap_or(8_000),
        snr_db: args.snr_db,
        marginals: args.marginals,
        tanh_input_std: args.tanh_input_std,
        max_condition: args.max_condition,
    };
    let names = ["mixture.wav", "truth.wav", "meta.json"];
    crate::interrupt::watch()?;
    let mut out = Staging::new(&args.output, &names, args.force)?;
    let meta = if config.frames <= STREAM_ABOVE_FRAMES {
        let data = generate(&config)?;
        write_wav_f32(&out.path("mixture.wav"), &data.mixture)?;
        write_wav_f32(&out.path("truth.wav"), &data.truth)?;
        data.meta
    } else {
        write_streamed(&config, &out.path("mixture.wav"), &out.path("truth.wav"))?
    };
    write_meta(&mut out, &meta)?;
    crate::interrupt::check()?;
    out.commit()?;
    println!(
        "wrote {} of {} mixed into {} ({:?}, seed {}) to {}",
        plural(config.frames, "frame"),
        plural(config.sources, "source"),
        plural(config.sensors, "sensor"),
        config.kind,
        config.seed,
        args.output.display()
    );
    Ok(())
}
