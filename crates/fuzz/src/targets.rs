//! What each input is given to, and what must hold whatever it is: an answer (read, or
//! refused with an error), never a panic, and settings that pass a check within the
//! limits they are checked against.

use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use unmix_core::limits::{MAX_BUFFERED_SAMPLES, MAX_CHANNELS, MAX_PRIOR_COMPONENTS, MAX_RESTARTS};
use unmix_format::{AnyModel, RoomModel};
use unmix_freq::{OnlineIva, room_online_config, room_spatial_filter, stored_complex};
use unmix_infer::{Kernel, ScoredSeparator, Separator};
use unmix_io::{BlockReader, ChannelSelection, CsvBlockReader, WavBlockReader};

/// A reader or a family of checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// WAV files and streams (`unmix_io::WavBlockReader`).
    Wav,
    /// RF64 files and streams (the same reader, the `ds64` path).
    Rf64,
    /// Delimited text (`unmix_io::CsvBlockReader`).
    Csv,
    /// Model files of either kind (`AnyModel::from_bytes`), then the inference engine (or
    /// a room's fixed filters, its spatial model and the online separator started from its
    /// demixing) built from what they hold, run on a block.
    Model,
    /// The checks of settings: a separation's, a live session's, monitoring windows,
    /// synthetic data, channel lists, time-stamp names; the input seeds the draw.
    Options,
}

impl Target {
    /// Every target, in the order reports list them.
    pub const ALL: [Target; 5] = [Target::Wav, Target::Rf64, Target::Csv, Target::Model, Target::Options];

    /// Its name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Target::Wav => "wav",
            Target::Rf64 => "rf64",
            Target::Csv => "csv",
            Target::Model => "model",
            Target::Options => "options",
        }
    }

    /// The target called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether mutations should also insert the characters text parsers decide on.
    pub fn is_text(self) -> bool {
        self == Target::Csv
    }

    /// The valid inputs mutations start from.
    pub fn seeds(self) -> Vec<Vec<u8>> {
        match self {
            Target::Wav => crate::corpus::wav(),
            Target::Rf64 => crate::corpus::rf64_seeds(),
            Target::Csv => crate::corpus::csv(),
            Target::Model => crate::corpus::models(),
            Target::Options => (0u64..16).map(|k| k.to_le_bytes().to_vec()).collect(),
        }
    }

    /// The most bytes one input may have the target hold at once: a fixed part for its
    /// buffers and a part proportional to the input (what a reader decodes, at most four
    /// bytes of samples per byte read, twice over while a buffer grows). What a header
    /// claims must not count.
    pub fn memory_bound(self, input_bytes: usize) -> usize {
        let fixed = match self {
            Target::Wav | Target::Rf64 => 4 << 20,
            Target::Csv => 8 << 20,
            Target::Model | Target::Options => 16 << 20,
        };
        fixed + 16 * input_bytes
    }
}

/// What became of one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Read through (`frames` frames, or the settings were accepted).
    Accepted {
        /// Frames read (0 for settings).
        frames: usize,
    },
    /// Refused with an error, as bad input should be.
    Refused(String),
}

/// Frames a reader is asked for at a time.
const BLOCK_FRAMES: usize = 4096;

/// Runs `input` through `target`; `file` is a scratch path to write it to when it should
/// also be read as a file (a file's length changes how a WAV header is read).
pub fn run(target: Target, input: &[u8], file: Option<&Path>) -> Verdict {
    match target {
        Target::Wav | Target::Rf64 => wav(input, file),
        Target::Csv => csv(input, file),
        Target::Model => model(input),
        Target::Options => options(input),
    }
}

fn verdict<E: std::fmt::Display>(result: Result<usize, E>) -> Verdict {
    match result {
        Ok(frames) => Verdict::Accepted { frames },
        Err(e) => Verdict::Refused(e.to_string()),
    }
}

/// Reads every block of `read` until the end or an error.
fn read_all<E>(mut read: impl FnMut(&mut Vec<f32>) -> Result<usize, E>) -> Result<usize, E> {
    let (mut frames, mut block) = (0, Vec::new());
    loop {
        match read(&mut block)? {
            0 => return Ok(frames),
            n => frames += n,
        }
    }
}

fn wav(input: &[u8], file: Option<&Path>) -> Verdict {
    let stream = WavBlockReader::from_stream(Path::new("fuzz"), Box::new(Cursor::new(input.to_vec())))
        .and_then(|mut r| read_all(|b| r.read_block(b, BLOCK_FRAMES)));
    let Some(path) = file else { return verdict(stream) };
    std::fs::write(path, input).expect("the scratch file is writable");
    // A file by the same rules; its first channel picked, as `--channels 1` reads it.
    let pick: ChannelSelection = "1".parse().expect("a valid list");
    let from_file =
        WavBlockReader::open_selected(path, &pick).and_then(|mut r| read_all(|b| r.read_block(b, BLOCK_FRAMES)));
    match (stream, from_file) {
        (Ok(_), Err(e)) | (Err(_), Err(e)) => Verdict::Refused(e.to_string()),
        (Err(e), Ok(_)) => Verdict::Refused(e.to_string()),
        (Ok(frames), Ok(_)) => Verdict::Accepted { frames },
    }
}

fn csv(input: &[u8], file: Option<&Path>) -> Verdict {
    // Every other input picks columns by name and number, as `--channels` does.
    let pick: ChannelSelection =
        if input.len().is_multiple_of(2) { ChannelSelection::all() } else { "2,x,1-2".parse().expect("a valid list") };
    let stream = CsvBlockReader::from_reader(Path::new("fuzz"), Box::new(Cursor::new(input.to_vec())), 100, &pick)
        .and_then(|mut r| {
            r.time_step_s()?;
            let frames = read_all(|b| r.read_block(b, BLOCK_FRAMES))?;
            let _ = r.stamp_log().map(|log| log.describe());
            Ok(frames)
        });
    let Some(path) = file else { return verdict(stream) };
    std::fs::write(path, input).expect("the scratch file is writable");
    let from_file = BlockReader::open(path, 100).and_then(|mut r| read_all(|b| r.read_block(b, BLOCK_FRAMES)));
    match (stream, from_file) {
        (_, Err(e)) | (Err(e), _) => Verdict::Refused(e.to_string()),
        (Ok(frames), Ok(_)) => Verdict::Accepted { frames },
    }
}

fn model(input: &[u8]) -> Verdict {
    let model = match AnyModel::from_bytes(input) {
        Ok(AnyModel::Time(model)) => model,
        Ok(AnyModel::Room(room)) => return room_model(&room),
        Err(e) => return Verdict::Refused(e.to_string()),
    };
    // What parses must run: a block of frames through both engines.
    let (m, n) = (model.header.channels, model.header.sources);
    let frames = 64;
    let block: Vec<f32> = (0..frames * m).map(|k| ((k * 37 % 101) as f32 - 50.0) / 50.0).collect();
    let mut sources = vec![0.0; frames * n];
    if let Err(e) = Separator::with_kernel(&model, Kernel::best()).and_then(|mut s| s.process(&block, &mut sources)) {
        return Verdict::Refused(e.to_string());
    }
    let mut scored = vec![0.0; frames * (n + unmix_core::SCORE_CHANNELS)];
    match ScoredSeparator::with_kernel(&model, Kernel::best()) {
        Ok(mut s) => {
            if let Err(e) = unmix_core::Processor::process(&mut s, &block, &mut scored) {
                return Verdict::Refused(e.to_string());
            }
        }
        Err(e) => return Verdict::Refused(e.to_string()),
    }
    Verdict::Accepted { frames }
}

/// A room's model that parsed: a block through its fixed filters and through the online
/// separator started from its demixing.
fn room_model(room: &RoomModel) -> Verdict {
    let h = &room.header;
    let (m, n) = (h.channels, h.sources);
    let config = room_online_config(h);
    let frames = 2 * h.stft_frame;
    let block: Vec<f32> = (0..frames * m).map(|k| ((k * 37 % 101) as f32 - 50.0) / 50.0).collect();
    let mut sources = vec![0.0; frames * n];
    let spatial = room_spatial_filter(room).map(|filter| OnlineIva::spatial(m, n, config, &filter));
    let separators = [
        OnlineIva::fixed(m, n, config, &stored_complex(&room.filters)),
        OnlineIva::starting_from(m, n, config, &stored_complex(&room.demixing)),
    ]
    .into_iter()
    .chain(spatial);
    for separator in separators {
        match separator {
            Ok(mut s) => s.process(&block, &mut sources),
            Err(e) => return Verdict::Refused(e.to_string()),
        }
    }
    Verdict::Accepted { frames }
}

/// Counts a mistyped option may hold.
const COUNTS: [usize; 16] = [0, 1, 2, 3, 4, 8, 63, 64, 65, 255, 256, 257, 1024, 1025, 1 << 30, usize::MAX];

/// Reals a mistyped option may hold.
const REALS: [f64; 16] = [
    0.0,
    -0.0,
    1e-300,
    1e-9,
    0.05,
    0.5,
    1.0,
    2.0,
    1e3,
    1e300,
    -1.0,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::MAX,
    5e-324,
];

/// A count: most often `usual`, one time in eight mistyped, so that a draw of a dozen
/// settings often passes every check (and the limits of what passes are tested too).
fn count_or(rng: &mut StdRng, usual: usize) -> usize {
    match rng.random_range(0..16) {
        0 => rng.random_range(0..100_000),
        1 => COUNTS[rng.random_range(0..COUNTS.len())],
        _ => usual,
    }
}

/// A real: most often `usual`, one time in eight mistyped.
fn real_or(rng: &mut StdRng, usual: f64) -> f64 {
    match rng.random_range(0..16) {
        0 => rng.random_range(-10.0..10.0),
        1 => REALS[rng.random_range(0..REALS.len())],
        _ => usual,
    }
}

/// Any count at all.
fn count(rng: &mut StdRng) -> usize {
    if rng.random_bool(0.5) { COUNTS[rng.random_range(0..COUNTS.len())] } else { rng.random_range(0..100_000) }
}

fn options(input: &[u8]) -> Verdict {
    let mut seed = [0u8; 8];
    for (k, b) in input.iter().enumerate() {
        seed[k % 8] ^= b.rotate_left(k as u32 / 8);
    }
    let mut rng = StdRng::seed_from_u64(u64::from_le_bytes(seed));
    let mut accepted = 0;
    let mut refused = Vec::new();
    let mut tally = |ok: Result<(), String>| match ok {
        Ok(()) => accepted += 1,
        Err(e) => refused.push(e),
    };
    tally(separation(&mut rng));
    tally(live(&mut rng));
    tally(windows(&mut rng));
    tally(synth(&mut rng));
    // A channel list as typed, resolved against a header.
    let text: String = input.iter().map(|&b| char::from(b'0' + b % 48)).collect();
    if let Ok(pick) = text.parse::<ChannelSelection>() {
        let _ = pick.numbers();
    }
    let _ = unmix_io::time_unit_s(&String::from_utf8_lossy(input));
    // Accepted when every family of settings passed.
    match refused.len() {
        0 => Verdict::Accepted { frames: 0 },
        _ => Verdict::Refused(refused.join("; ")),
    }
}

/// A separation's settings: what passes the check is within every limit.
fn separation(rng: &mut StdRng) -> Result<(), String> {
    use unmix_likelihood::chain::ChainConfig;
    use unmix_model::{Activation, TrainingRecipe, VaeLayout};
    use unmix_separate::{ConsensusConfig, ModelChoice, SeparateParams, SourceCount};
    let mut p = SeparateParams::new(if rng.random_bool(0.5) {
        SourceCount::Fixed(count_or(rng, 3))
    } else {
        SourceCount::Auto { max: rng.random_bool(0.5).then(|| count_or(rng, 4)) }
    });
    let (c, layout, recipe, chain) =
        (ConsensusConfig::default(), VaeLayout::new(), TrainingRecipe::new(), p.chain.clone());
    p.max_train_frames = count_or(rng, p.max_train_frames);
    p.whiten = rng.random_bool(0.9);
    p.warm_start = rng.random_bool(0.8);
    p.restarts = ConsensusConfig {
        candidates: count_or(rng, c.candidates),
        rounds: count_or(rng, c.rounds),
        epochs_per_round: count_or(rng, c.epochs_per_round),
        validation_fraction: real_or(rng, c.validation_fraction),
        max_validation_frames: count_or(rng, c.max_validation_frames),
        perturbation: real_or(rng, c.perturbation),
        threads: count_or(rng, 0),
    };
    let hidden: Vec<usize> = (0..count_or(rng, 1).min(12)).map(|_| count_or(rng, 32)).collect();
    let activation =
        [Activation::Tanh, Activation::Relu, Activation::LeakyRelu, Activation::Silu][rng.random_range(0..4)];
    p.layout = VaeLayout::new()
        .with_components(count_or(rng, layout.components))
        .with_encoder_hidden(hidden.clone())
        .with_decoder_hidden(if rng.random_bool(0.8) { hidden } else { vec![count(rng)] })
        .with_activation(activation)
        .with_initial_posterior_log_var(real_or(rng, layout.initial_posterior_log_var));
    p.recipe = TrainingRecipe::new()
        .with_beta(real_or(rng, recipe.beta))
        .with_lambda(real_or(rng, recipe.lambda))
        .with_learning_rate(real_or(rng, recipe.learning_rate))
        .with_batch_size(count_or(rng, recipe.batch_size))
        .with_max_epochs(count_or(rng, recipe.max_epochs))
        .with_min_epochs(count_or(rng, recipe.min_epochs))
        .with_patience(count_or(rng, recipe.patience))
        .with_plateau_tolerance(real_or(rng, recipe.plateau_tolerance))
        .with_lr_decays(count_or(rng, recipe.lr_decays))
        .with_lr_decay_factor(real_or(rng, recipe.lr_decay_factor));
    p.model =
        [ModelChoice::Auto, ModelChoice::Vae, ModelChoice::Chain, ModelChoice::Linear, ModelChoice::PostNonlinear]
            [rng.random_range(0..5)];
    p.chain = ChainConfig {
        starts: count_or(rng, chain.starts),
        steps: count_or(rng, chain.steps),
        screen_steps: count_or(rng, chain.screen_steps),
        learning_rate: real_or(rng, chain.learning_rate),
        components: count_or(rng, chain.components),
        validation_every: count_or(rng, chain.validation_every),
        ..chain
    };
    let curves = p.post_nonlinear.clone();
    p.post_nonlinear = unmix_likelihood::postnonlinear::PostNonlinearConfig {
        segments: count_or(rng, curves.segments),
        components: count_or(rng, curves.components),
        starts: count_or(rng, curves.starts),
        max_iterations: count_or(rng, curves.max_iterations),
        screen_iterations: count_or(rng, curves.screen_iterations),
        validation_every: count_or(rng, curves.validation_every),
        ..curves
    };
    p.kernel = Kernel::ALL[rng.random_range(0..Kernel::ALL.len())];
    let config = p.check().map_err(|e| e.to_string())?;
    let p = config.params();
    assert!((1..=MAX_PRIOR_COMPONENTS).contains(&p.layout.components), "{:?}", p.layout);
    assert!((1..=MAX_RESTARTS).contains(&p.restarts.candidates), "{:?}", p.restarts);
    assert!(p.layout.encoder_hidden.iter().chain(&p.layout.decoder_hidden).all(|&h| (1..=1024).contains(&h)));
    let channels = count(rng);
    if let Ok(frames) = config.training_frames(channels) {
        assert!(channels <= MAX_CHANNELS && frames * channels <= MAX_BUFFERED_SAMPLES, "{frames} × {channels}");
    }
    let within = p.restarts.within_epochs(p.recipe.max_epochs);
    assert!(within.rounds * within.epochs_per_round <= p.recipe.max_epochs.max(within.rounds), "{within:?}");
    Ok(())
}

/// A live session's settings.
fn live(rng: &mut StdRng) -> Result<(), String> {
    use unmix_live::{InputSpec, LiveParams, LiveScores};
    let channels = count_or(rng, 4);
    let mut params = LiveParams {
        input: InputSpec {
            device: "fuzz".into(),
            channels,
            pick: rng.random_bool(0.3).then(|| (0..channels.min(8)).map(|k| count_or(rng, k)).collect()),
            sample_rate_hz: rng.random_bool(0.5).then(|| if rng.random_bool(0.5) { 48_000 } else { rng.random() }),
            buffer_frames: rng.random_bool(0.5).then(|| rng.random()),
            ring_s: real_or(rng, 2.0),
            stop_after_s: rng.random_bool(0.5).then(|| real_or(rng, 30.0)),
        },
        sources: count_or(rng, 2),
        warmup_s: real_or(rng, 10.0),
        model: None,
        refit_s: rng.random_bool(0.5).then(|| real_or(rng, 60.0)),
        frame_len: count_or(rng, 256),
        output: rng.random_bool(0.3).then(|| ("out".to_string(), rng.random_bool(0.5).then(|| count_or(rng, 0)))),
        record: None,
        record_format: unmix_io::WavFormat::Float32,
        raw_stdout: false,
        scores: rng.random_bool(0.3).then(|| LiveScores {
            path: "scores.csv".into(),
            window_s: real_or(rng, 1.0),
            hop_s: real_or(rng, 0.5),
            alert_share: real_or(rng, 0.05) as f32,
        }),
        stall_timeout: Duration::from_millis(rng.random_range(0..10_000)),
        kernel: Kernel::ALL[rng.random_range(0..Kernel::ALL.len())],
        domain: unmix_live::LiveDomain::Time,
    };
    let domain = rng.random_range(0..4);
    if domain > 0 {
        let prior = match rng.random_range(0..4) {
            0 => unmix_freq::SourcePrior::Laplace,
            1 => unmix_freq::SourcePrior::Gauss,
            _ => unmix_freq::SourcePrior::LowRank { bases: count_or(rng, 2) },
        };
        let online = unmix_freq::OnlineConfig {
            stft: unmix_freq::StftConfig { frame: count_or(rng, 2048), hop: count_or(rng, 512) },
            forgetting: real_or(rng, 0.99),
            prior,
            reference: count_or(rng, 0),
        };
        params.domain = if domain == 1 {
            unmix_live::LiveDomain::Stft(online)
        } else if domain == 3 {
            unmix_live::LiveDomain::Room(online)
        } else {
            // A room's model to start from: its demixing the right size for the input
            // (small frames only, to keep it small), or not.
            let right = online.stft.frame <= 4096 && params.input.channels <= 16;
            let values = if right && rng.random_bool(0.7) {
                online.stft.bins() * params.input.channels * params.input.channels
            } else {
                rng.random_range(0..4096)
            };
            let sample_rate_hz = if rng.random_bool(0.5) { 48_000 } else { rng.random() };
            let demixing = vec![unmix_freq::Complex64::new(1.0, 0.0); values];
            unmix_live::LiveDomain::StftFrom(std::sync::Arc::new(unmix_live::RoomStart {
                online,
                demixing,
                spatial: None,
                sample_rate_hz,
            }))
        };
    }
    let config = params.check().map_err(|e| e.to_string())?;
    let p = config.params();
    assert!(p.input.channels <= MAX_CHANNELS && p.frame_len <= unmix_core::limits::MAX_BLOCK_FRAMES);
    assert!(p.warmup_s.is_finite() && p.warmup_s > 0.0 && p.input.ring_s.is_finite());
    if let Some(online) = p.domain.online() {
        // What passes makes a separator: a frame it can transform, a forgetting factor
        // that forgets, a reference among the channels, and none of a model's options.
        assert!(online.stft.check().is_ok() && online.forgetting > 0.0 && online.forgetting < 1.0);
        assert!(online.reference < p.input.channels && p.model.is_none() && p.refit_s.is_none());
        assert!(!config.fits() && config.latency_frames() + 1 == online.stft.frame);
    }
    // Only a room without a model fits its model on the trainer thread.
    assert_eq!(config.fits_room(), matches!(p.domain, unmix_live::LiveDomain::Room(_)));
    if let unmix_live::LiveDomain::StftFrom(start) = &p.domain {
        // A room's start passes only with every bin's whole demixing.
        assert_eq!(start.demixing.len(), start.online.stft.bins() * p.input.channels * p.input.channels);
    }
    Ok(())
}

/// Monitoring windows in seconds, and a monitor's bound for some sources.
fn windows(rng: &mut StdRng) -> Result<(), String> {
    let rate = [0u32, 1, 100, 8000, 48_000, 384_000, u32::MAX][rng.random_range(0..7)];
    let spec = unmix_monitor::WindowSpec::from_seconds(real_or(rng, 1.0), real_or(rng, 0.5), rate)
        .map_err(|e| e.to_string())?;
    assert!(spec.hop_frames() >= 1 && spec.hop_frames() <= spec.window_frames());
    let sources = count(rng) % 1024;
    if spec.check_for(sources).is_ok() {
        assert!(spec.window_frames().saturating_mul(sources + unmix_core::SCORE_CHANNELS) <= MAX_BUFFERED_SAMPLES);
    }
    Ok(())
}

/// Synthetic data settings: what passes draws finite data (a NaN SNR once wrote NaN).
fn synth(rng: &mut StdRng) -> Result<(), String> {
    use unmix_synth::{MixKind, SynthConfig, generate};
    let small = [0usize, 1, 2, 3, 3, 3, 4, 8, 300];
    let config = SynthConfig {
        sources: small[rng.random_range(0..small.len())],
        sensors: small[rng.random_range(0..small.len())],
        frames: rng.random_range(0..48),
        snr_db: rng.random_bool(0.5).then(|| real_or(rng, 20.0)),
        tanh_input_std: real_or(rng, 1.5),
        max_condition: real_or(rng, 5.0),
        ..SynthConfig::paper(if rng.random_bool(0.5) { MixKind::Linear } else { MixKind::Nonlinear }, rng.random())
    };
    let data = generate(&config).map_err(|e| e.to_string())?;
    assert!(data.mixture.interleaved().iter().all(|v| v.is_finite()), "{config:?}");
    Ok(())
}
