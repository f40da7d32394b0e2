//! `unmix separate`: train on a segment of the input, separate all of it, and write the
//! sources, the model, a report and plots.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use unmix_core::{Recording, plural};
use unmix_dsp::metrics::Score;
use unmix_format::ModelFile;
use unmix_io::{BlockReader, ChannelSelection, input_name, is_stdin};
use unmix_likelihood::chain::{ChainConfig, ChainShape};
use unmix_likelihood::postnonlinear::PostNonlinearConfig;
use unmix_model::{Activation, Backend, TrainingRecipe, VaeLayout};
use unmix_separate::{
    ConsensusConfig, DEFAULT_MAX_TRAIN_FRAMES, Fitted, MIN_LATENT_INFORMATION_NATS, ModelChoice, ModelKind,
    SeparateConfig, SeparateParams, SourceCount,
};

use unmix_core::limits::{MAX_CHANNELS, MAX_HIDDEN_UNITS, MAX_PRIOR_COMPONENTS, MAX_RESTARTS};

use crate::apply::{
    ApplyOptions, InputArgs, Output, WavFormatArg, WindowArgs, apply_file, apply_reader, stamps_json, warn_of_stamps,
};
use crate::output::Staging;
use crate::progress::TrainingBar;
use crate::{bounds, plot, score};

/// Activation between hidden layers.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ActivationArg {
    /// Hyperbolic tangent.
    Tanh,
    /// Rectified linear unit.
    Relu,
    /// Leaky ReLU (slope 0.01).
    LeakyRelu,
    /// SiLU (swish).
    Silu,
}

/// burn backend of the training.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BackendArg {
    /// burn's pure-Rust `flex` CPU backend.
    Flex,
    /// burn's `ndarray` CPU backend.
    Ndarray,
}

/// Which model to train.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModelArg {
    /// The linear model, or a nonlinear model where it explains the held-out frames
    /// better: the post-nonlinear model when there are as many sources as channels, the
    /// saturating chain when also every sample is inside full scale.
    Auto,
    /// PDGMM-VAE.
    Vae,
    /// The saturating chain, `s = W1 atanh(W2 atanh(x) / ρ)` fitted by exact maximum
    /// likelihood: for sensors and amplifiers that saturate (`x = tanh(A2 tanh(A1 s))`).
    Chain,
    /// The linear model `s = W x̃` with a GMM per source, fitted by exact maximum
    /// likelihood: for instantaneous (linear) mixtures.
    Linear,
    /// A learned monotone curve per channel, then the linear model, fitted by exact
    /// maximum likelihood: for sensors that each compress, expand or clip in their own way
    /// (needs as many sources as channels).
    #[value(name = "postnonlinear")]
    PostNonlinear,
}

/// Arguments of `unmix separate`.
#[derive(Args, Debug, Clone)]
pub struct SeparateArgs {
    /// Input recording: WAV (8/16/24/32-bit integer or float, any rate) or CSV (numeric
    /// columns, optional header); see --channels to use only some channels. `-` reads a
    /// stream from the standard input (CSV rows as a logger writes them, or a WAV as a
    /// recorder writes it): training waits for the training segment (the first
    /// --train-seconds, --train-frames or --max-train-frames), model.unmix is written as
    /// soon as it is trained, and the rest of the stream is separated as it arrives
    /// (sources.csv and scores.csv are then logs flushed as they grow, alerts print at
    /// once); Ctrl-C before the model is written stops with nothing written, after it ends
    /// the stream there with every output complete (as a bad row does, which the command
    /// then fails on).
    pub input: PathBuf,
    /// Number of sources to separate (at most the number of channels), or `auto` to
    /// estimate it (MDL on the channels' eigenvalues, then pruning of latents that carry
    /// no information; the evidence goes to report.json).
    #[arg(short = 'n', long = "sources", value_parser = parse_sources)]
    pub sources: SourceCount,
    /// With `-n auto`: never more than this many sources.
    #[arg(long, value_parser = bounds::between(1, MAX_CHANNELS))]
    pub max_sources: Option<usize>,
    /// Output directory: sources.wav (+ sources.csv for CSV input), model.unmix,
    /// report.json and plots.
    #[arg(short, long)]
    pub output: PathBuf,
    /// True sources (WAV or CSV) to score against and plot.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Train on the first this many seconds of the input.
    #[arg(long, conflicts_with = "train_frames")]
    pub train_seconds: Option<f64>,
    /// Train on the first this many frames of the input (a frame is one sample of every
    /// channel).
    // `--train-samples`, the name before frames and samples were told apart, still works.
    #[arg(long, alias = "train-samples", value_parser = bounds::at_least_one())]
    pub train_frames: Option<usize>,
    /// Cap on the training segment, in frames, when neither of the above is given.
    #[arg(long, alias = "max-train-samples", default_value_t = DEFAULT_MAX_TRAIN_FRAMES, value_parser = bounds::at_least_one())]
    pub max_train_frames: usize,
    /// Which model: `auto` weighs a saturating-chain model against a linear one on
    /// held-out frames when the recording is eligible (as many sources as channels, every
    /// sample inside ±1; a few seconds for 3 channels here, the chain stopping early
    /// where it loses) and trains PDGMM-VAE unless the chain wins; report.json says which
    /// and why.
    #[arg(long, value_enum, default_value_t = ModelArg::Auto)]
    pub model: ModelArg,
    /// PDGMM-VAE: keep all channels instead of PCA-whitening them to the number of
    /// sources (only matters when there are more channels than sources; the linear model
    /// always whitens).
    #[arg(long)]
    pub no_whiten: bool,
    /// PDGMM-VAE: Gaussian components per source prior (K; the linear model and the
    /// saturating chain use 6).
    #[arg(long, default_value_t = 4, value_parser = bounds::between(1, MAX_PRIOR_COMPONENTS))]
    pub components: usize,
    /// Hidden layer widths of the encoder and decoder, comma-separated; "" for linear.
    #[arg(long, default_value = "32", value_delimiter = ',')]
    pub hidden: Vec<String>,
    /// Activation between hidden layers.
    #[arg(long, value_enum, default_value_t = ActivationArg::Tanh)]
    pub activation: ActivationArg,
    /// Weight β of the KL term.
    #[arg(long, default_value_t = 0.1)]
    pub beta: f64,
    /// Weight λ of the auxiliary reconstruction of the posterior mean (0 = off); λ = 1
    /// makes the result insensitive to β up to β = 1 (docs/results.md).
    #[arg(long, default_value_t = 1.0)]
    pub lambda: f64,
    /// Consensus restarts: candidates trained side by side with different prior
    /// initialisations, the best on held-out frames kept and finished (1 = a single run).
    #[arg(long, default_value_t = ConsensusConfig::default().candidates, value_parser = bounds::between(1, MAX_RESTARTS))]
    pub restarts: usize,
    /// Selection rounds of the restarts.
    #[arg(long, default_value_t = ConsensusConfig::default().rounds, value_parser = bounds::at_least_one())]
    pub restart_rounds: usize,
    /// Epochs every candidate trains per round.
    #[arg(long, default_value_t = ConsensusConfig::default().epochs_per_round, value_parser = bounds::at_least_one())]
    pub restart_epochs: usize,
    /// Threads that train the restarts' candidates side by side and fit the warm start's
    /// priors (0 = one per core). The result is the same for any number.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Start from random weights instead of the linear ICA solution (FastICA on the
    /// whitened channels, distilled into the encoder and decoder).
    #[arg(long)]
    pub no_warm_start: bool,
    /// Adam learning rate.
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// Maximum number of epochs (training stops earlier when the loss plateaus).
    #[arg(long, default_value_t = 400, value_parser = bounds::at_least_one())]
    pub epochs: usize,
    /// Frames per minibatch.
    #[arg(long, default_value_t = 256, value_parser = bounds::at_least_one())]
    pub batch_size: usize,
    /// Seed of initialisation, shuffling and sampling noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// burn CPU backend of the training (the result is the same up to rounding; flex
    /// measured faster).
    #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
    pub backend: BackendArg,
    #[command(flatten)]
    pub input_channels: InputArgs,
    /// Sample format of sources.wav: 32-bit float keeps any level; 16- or 24-bit integer
    /// PCM clips what is beyond full scale (counted, and warned about).
    #[arg(long, value_enum, default_value_t = WavFormatArg::Float)]
    pub wav_format: WavFormatArg,
    /// Skip the PNG plots.
    #[arg(long)]
    pub no_plots: bool,
    /// No progress bar and no summary. Warnings still show, and so does the monitoring
    /// summary when a window is above --alert-share.
    #[arg(long)]
    pub quiet: bool,
    /// Overwrite results already in the output directory.
    #[arg(long)]
    pub force: bool,
    /// Print per-stage statistics of the separation stream.
    #[arg(long)]
    pub stats: bool,
    /// Also write per-window monitoring scores of the whole input to scores.csv (and plot
    /// them in scores.png): each window's start time, frame count, RMS of every source,
    /// mean and lowest log-prior, mean and highest reconstruction error, and the shares of
    /// outlying frames (as `unmix apply --scores`).
    #[arg(long)]
    pub scores: bool,
    #[command(flatten)]
    pub windows: WindowArgs,
    #[command(flatten)]
    pub kernel: crate::kernel::KernelArgs,
}

impl SeparateArgs {
    /// The defaults of every option, for `demo` and tests.
    pub fn defaults(input: PathBuf, sources: &str, output: PathBuf) -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            args: SeparateArgs,
        }
        let n = sources;
        let (i, o) = (input.to_string_lossy().into_owned(), output.to_string_lossy().into_owned());
        Wrapper::parse_from(["separate", i.as_str(), "-n", n, "-o", o.as_str()]).args
    }

    /// Turns the options into a checked separation configuration.
    fn config(&self, sample_rate_hz: u32) -> Result<SeparateConfig> {
        let hidden: Vec<usize> = self
            .hidden
            .iter()
            .filter(|h| !h.trim().is_empty())
            .map(|h| match h.trim().parse::<usize>() {
                Ok(units) if (1..=MAX_HIDDEN_UNITS).contains(&units) => Ok(units),
                Ok(units) => bail!("--hidden: a layer of {units} units; a layer has 1 to {MAX_HIDDEN_UNITS}"),
                Err(_) => bail!("--hidden: '{h}' is not a layer width"),
            })
            .collect::<Result<_>>()?;
        let activation = match self.activation {
            ActivationArg::Tanh => Activation::Tanh,
            ActivationArg::Relu => Activation::Relu,
            ActivationArg::LeakyRelu => Activation::LeakyRelu,
            ActivationArg::Silu => Activation::Silu,
        };
        let layout = VaeLayout::new()
            .with_components(self.components)
            .with_encoder_hidden(hidden.clone())
            .with_decoder_hidden(hidden)
            .with_activation(activation);
        let recipe = TrainingRecipe::new()
            .with_beta(self.beta)
            .with_lambda(self.lambda)
            .with_learning_rate(self.lr)
            .with_max_epochs(self.epochs)
            .with_min_epochs(30.min(self.epochs))
            .with_batch_size(self.batch_size)
            .with_seed(self.seed);
        let max_train_frames = match (self.train_seconds, self.train_frames) {
            (Some(s), _) if !(s.is_finite() && s > 0.0) => bail!("--train-seconds must be positive"),
            (Some(s), _) => (s * f64::from(sample_rate_hz)).round() as usize,
            (None, Some(n)) => n,
            (None, None) => self.max_train_frames,
        };
        let sources = match self.sources {
            SourceCount::Auto { .. } => SourceCount::Auto { max: self.max_sources },
            fixed => fixed,
        };
        if self.max_sources.is_some() && matches!(sources, SourceCount::Fixed(_)) {
            bail!("--max-sources only applies to -n auto");
        }
        let restarts = if self.restarts <= 1 {
            ConsensusConfig { threads: self.threads, ..ConsensusConfig::single() }
        } else {
            ConsensusConfig {
                candidates: self.restarts,
                rounds: self.restart_rounds,
                epochs_per_round: self.restart_epochs,
                threads: self.threads,
                ..ConsensusConfig::default()
            }
        };
        let params = SeparateParams {
            sources,
            max_train_frames,
            whiten: !self.no_whiten,
            warm_start: !self.no_warm_start && !self.no_whiten,
            restarts,
            layout,
            recipe,
            backend: match self.backend {
                BackendArg::Flex => Backend::Flex,
                BackendArg::Ndarray => Backend::Ndarray,
            },
            model: match self.model {
                ModelArg::Auto => ModelChoice::Auto,
                ModelArg::Vae => ModelChoice::Vae,
                ModelArg::Chain => ModelChoice::Chain,
                ModelArg::Linear => ModelChoice::Linear,
                ModelArg::PostNonlinear => ModelChoice::PostNonlinear,
            },
            chain: ChainConfig { seed: self.seed, threads: self.threads, ..ChainConfig::new(ChainShape::Saturating) },
            post_nonlinear: PostNonlinearConfig {
                seed: self.seed,
                threads: self.threads,
                ..PostNonlinearConfig::default()
            },
            kernel: self.kernel.kernel()?,
        };
        Ok(params.check()?)
    }
}

/// What a separation produced.
pub struct Outcome {
    /// Scores against `--truth`, if given.
    pub score: Option<Score>,
}

pub fn run(args: SeparateArgs) -> Result<Outcome> {
    execute(&args)
}

const OUTPUTS: [&str; 9] = [
    "sources.wav",
    "sources.csv",
    "model.unmix",
    "report.json",
    "training.png",
    "priors.png",
    "truth.png",
    "scores.csv",
    "scores.png",
];

/// Runs a whole separation job.
pub fn execute(args: &SeparateArgs) -> Result<Outcome> {
    let started = Instant::now();
    // An encoder kernel this processor lacks is refused before anything is read.
    args.kernel.kernel()?;
    let input = &args.input;
    // A stream cannot be read twice: its head is kept for the separation, which then goes
    // on with the rest of it.
    let streaming = is_stdin(input);
    if streaming {
        // Refused now rather than after the wait for the training segment.
        Staging::refuse_existing(&args.output, &OUTPUTS, args.force)?;
    }
    // 1. The training segment: the head of the input. The configuration needs the sample
    // rate (for --train-seconds), so it is made once the header is known.
    let mut reader = args.input_channels.open(input, None, args.quiet)?;
    // A time-stamp column left out is remembered as a pick of the others, so `apply` reads
    // the same columns of a stream without a header.
    let picked = match (&args.input_channels.channels, reader.time_column()) {
        (None, Some((_, true))) => Some(ChannelSelection::from_indices(&(1..=reader.channels()).collect::<Vec<_>>())),
        (pick, _) => pick.clone(),
    };
    let stamps = reader.stamp_log();
    let config = args.config(reader.sample_rate_hz())?;
    // Too many channels, or a segment beyond the memory bound, is refused before the
    // segment is read.
    let max_train_frames = config.training_frames(reader.channels()).with_context(|| input_name(input))?;
    let kernel = config.params().kernel;
    // Monitoring settings are checked now, not after minutes of training (or of waiting
    // for a stream's head).
    if args.scores {
        let most_sources = match config.params().sources {
            SourceCount::Fixed(n) => n,
            SourceCount::Auto { max } => max.unwrap_or(usize::MAX).min(reader.channels()),
        };
        args.windows.to(PathBuf::new())?.spec(reader.sample_rate_hz())?.check_for(most_sources)?;
    }
    // Ctrl-C stops training at its next epoch, or the separation where it is, and the job
    // then ends leaving nothing in the output directory.
    let cancel = crate::interrupt::watch()?;
    let head = if streaming {
        read_stream_head(&mut reader, max_train_frames, args.quiet)?
    } else {
        let mut head = Vec::new();
        reader.read_block(&mut head, max_train_frames)?;
        head
    };
    let segment = Recording::from_interleaved(reader.sample_rate_hz(), reader.channels(), head)?;
    // A CSV's length shows only at its end, and a bad cell anywhere should stop the run
    // before minutes of training: it is read through once now, a block at a time. A
    // stream's length shows when it ends.
    let total_frames = match reader.frames_total() {
        Some(total) => Some(total),
        None if streaming => None,
        None => {
            let (mut frames, mut block) = (segment.frames(), Vec::new());
            let bar = crate::progress::frames_done("  checking the rest", None, !args.quiet);
            let total = loop {
                crate::interrupt::check()?;
                let got = reader.read_block(&mut block, 1 << 16)?;
                if got == 0 {
                    break Some(frames);
                }
                frames += got;
                bar.set_position(frames as u64);
            };
            bar.finish_and_clear();
            total
        }
    };
    // Said before the training, for a file: the user may rather fix the file first.
    if !streaming {
        warn_of_stamps(input, stamps.as_deref());
    }
    // Errors about a channel name it as the file numbers it.
    let file_channels: Vec<usize> = (0..reader.channels()).map(|k| reader.file_channel(k)).collect();
    // CSV input (a file, or rows on a stream) also gets its sources as CSV.
    let csv_input = matches!(reader, BlockReader::Csv(_));
    let stream_rest = streaming.then_some(reader);
    if let SourceCount::Fixed(n) = args.sources
        && segment.channels() < n
    {
        let refused = unmix_separate::Error::TooFewChannels { channels: segment.channels(), sources: n };
        bail!("{}: {refused}", input.display());
    }
    // The truth is checked before any training: a missing file, or one that cannot match
    // the sources, should not throw a separation away.
    if let Some(truth) = &args.truth {
        check_truth(truth, total_frames, segment.channels(), args.sources, segment.sample_rate_hz())?;
    }
    let mut out = Staging::new(&args.output, &OUTPUTS, args.force)?;
    // A stream's CSV outputs are logs in the output directory itself, as `apply -` writes.
    let csv_output = |out: &mut Staging, name: &str| if streaming { out.in_place(name) } else { out.path(name) };
    let monitoring = args.scores.then(|| args.windows.to(csv_output(&mut out, "scores.csv"))).transpose()?;
    let read_s = started.elapsed().as_secs_f64();

    // 2. Training.
    let mut bar = TrainingBar::new(&config.params().restarts, config.params().recipe.max_epochs, !args.quiet);
    let train_started = Instant::now();
    let fitted = unmix_separate::fit(&segment, &config, &cancel, &mut |p| bar.show(p));
    bar.finish();
    crate::interrupt::check()?;
    let fitted = fitted.map_err(|e| match e {
        unmix_separate::Error::Dsp(unmix_dsp::Error::ConstantChannel { channel })
            if file_channels.get(channel).is_some_and(|&c| c != channel) =>
        {
            let what = if csv_input { "column" } else { "channel" };
            anyhow::anyhow!(
                "{}: {what} {} of the file (channel {} read) is constant (silent) over the training segment; \
                 leave it out with --channels or pick another segment",
                input.display(),
                file_channels[channel] + 1,
                channel + 1
            )
        }
        unmix_separate::Error::Model(
            e @ (unmix_model::Error::Diverged { .. } | unmix_model::Error::DivergedWeights),
        ) => anyhow::anyhow!("{}: {e} than --lr {}", input.display(), args.lr),
        e => anyhow::Error::new(e).context(input.display().to_string()),
    });
    let mut fitted = fitted?;
    // `apply` reads the same channels of its input unless told otherwise.
    fitted.model.header.picked_channels = picked.as_ref().map(ToString::to_string);
    let train_s = train_started.elapsed().as_secs_f64();
    report_fit(&fitted, args.quiet);
    let gross = &fitted.gross_outliers;
    if !gross.is_empty() {
        let channels: Vec<String> = (gross.per_channel.iter().enumerate())
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| {
                format!(
                    "{} in {} {}",
                    plural(*n, "sample"),
                    if csv_input { "column" } else { "channel" },
                    file_channels[c] + 1
                )
            })
            .collect();
        eprintln!(
            "warning: {}: left {} of the training segment out of the fit (the first is frame {}, counted from 0) for \
             gross outliers, samples over {:.0e} times their channel's usual level ({}); the separation carries them \
             through",
            input_name(input),
            plural(gross.frames.len(), "frame"),
            gross.frames[0],
            unmix_dsp::outliers::GROSS_FACTOR,
            channels.join(", ")
        );
    }
    let (model, vae) = (&fitted.model, fitted.vae.as_ref());
    let selection = &fitted.selection;
    let training_frames = match (vae, selection.chosen) {
        (Some(v), _) => v.history.summary.frames,
        (None, ModelKind::Linear) => {
            selection.linear.as_ref().map_or(0, |l| l.refit.as_ref().map_or(l.frames, |r| r.frames))
        }
        (None, ModelKind::PostNonlinear) => selection.post_nonlinear.as_ref().map_or(0, |c| c.frames),
        (None, _) => selection.chain.as_ref().map_or(0, |c| c.frames),
    };
    model.save(&out.path("model.unmix"))?;
    if streaming {
        let path = out.publish("model.unmix")?;
        if !args.quiet {
            eprintln!(
                "{}: model written → {}; separating the stream as it arrives (Ctrl-C ends it, outputs complete)",
                input_name(input),
                path.display()
            );
        }
    }

    // 3. Separation of the whole input, streamed.
    let apply_started = Instant::now();
    let sources_path = out.path("sources.wav");
    // CSV input also gets its sources as CSV, from the same pass.
    let csv_path = csv_input.then(|| csv_output(&mut out, "sources.csv"));
    let outputs: Vec<Output<'_>> = std::iter::once(sources_path.as_path())
        .chain(csv_path.as_deref())
        .map(|path| Output { path, wav_format: args.wav_format.into() })
        .collect();
    let options = ApplyOptions { progress: !args.quiet, monitoring: monitoring.as_ref(), kernel };
    // The same columns at the same rate as the training segment, decided (and said) once.
    let applied = match stream_rest {
        Some(rest) => {
            let head = segment.interleaved().to_vec();
            apply_reader(model, input, rest, head, &outputs, &options)?
        }
        None => {
            let same_input = InputArgs { channels: picked.clone(), csv_rate: Some(segment.sample_rate_hz()) };
            apply_file(model, input, &outputs, &same_input, &options)?
        }
    };
    if streaming {
        warn_of_stamps(input, stamps.as_deref());
    }
    let total_frames = total_frames.unwrap_or(applied.frames);
    let apply_s = apply_started.elapsed().as_secs_f64();
    let monitoring_summary = monitoring.as_ref().map(|m| m.summary(model.header.sources)).transpose()?;

    // 4. Scores against the truth, on the whole input.
    let score = match &args.truth {
        Some(truth) => {
            let final_name = args.output.join("sources.wav");
            Some(score::score_files(truth, &sources_path, &final_name, segment.sample_rate_hz())?)
        }
        None => None,
    };

    // 5. Plots.
    if !args.no_plots {
        // The priors are learned on the posterior means: they are compared before the gains.
        let fitted_segment = unmix_dsp::outliers::without_frames(&segment, &gross.frames)?;
        let segment_sources = unmix_separate::posterior_means(model, &fitted_segment, kernel)?;
        if let Some(vae) = vae {
            plot::training_curves(&out.path("training.png"), &vae.history, &fitted.ordering)?;
        }
        plot::priors(&out.path("priors.png"), &segment_sources, &model.weights)?;
        if let (Some(truth), Some(score)) = (&args.truth, &score) {
            // Only the frames shown are read: the files may be hours long.
            let head = |path: &Path| -> Result<Recording> {
                let mut reader = BlockReader::open(path, segment.sample_rate_hz())?;
                let mut samples = Vec::new();
                reader.read_block(&mut samples, plot::TRUTH_PLOT_FRAMES)?;
                Ok(Recording::from_interleaved(reader.sample_rate_hz(), reader.channels(), samples)?)
            };
            let (truth, estimates) = (head(truth)?, head(&sources_path)?);
            let band: Vec<f32> =
                model.weights.posterior_std().iter().zip(model.source_gains()).map(|(s, g)| s * g).collect();
            plot::truth_vs_estimate(&out.path("truth.png"), &truth, &estimates, score, &band)?;
        }
        if let Some(monitoring) = &monitoring {
            let scores = unmix_io::read_csv(&monitoring.path, 1)?;
            plot::monitoring(&out.path("scores.png"), &scores, model.header.sources, monitoring.alert_share)?;
        }
    }

    // 6. Report.
    let report = serde_json::json!({
        "input": input_name(input),
        "stopped_by_ctrl_c": applied.stopped,
        "frames": total_frames,
        "channels": model.header.channels,
        "picked_channels": model.header.picked_channels,
        "sample_rate_hz": model.header.sample_rate_hz,
        "time_stamps": stamps_json(stamps.as_deref()),
        "sources": model.header.sources,
        "training_frames": training_frames,
        "gross_outliers": {
            "frames": gross.frames.len(),
            "first_frames": &gross.frames[..gross.frames.len().min(100)],
            "per_channel": &gross.per_channel,
            "worst_levels": &gross.worst_levels,
        },
        "model": fitted.selection,
        "config": model.header.training_config,
        "training": vae.map(|v| &v.history.summary),
        "timings_s": { "read": read_s, "train": train_s, "apply": apply_s, "total": started.elapsed().as_secs_f64() },
        "pipeline": applied.pipeline,
        // Kernels agree to 1e-5, not bit for bit: say which one computed the sources.
        "encoder_kernel": kernel.name(),
        "monitoring": monitoring.as_ref().zip(monitoring_summary.as_ref()).map(|(m, s)| serde_json::json!({
            "window_s": m.window_s,
            "hop_s": m.hop_s,
            "windows": s.windows,
            "log_prior_outliers_max": s.log_prior_outliers_max.map(|(share, at)| serde_json::json!({ "share": share, "window_start_s": at })),
            "reconstruction_outliers_max": s.reconstruction_outliers_max.map(|(share, at)| serde_json::json!({ "share": share, "window_start_s": at })),
            "alert_share": s.alert_share,
            "unusual_windows": s.unusual_windows,
            "first_unusual_s": s.first_unusual_s,
        })),
        "score_baseline": model.header.score_baseline,
        "normalisation": {
            "whitened": model.header.normaliser.whitening.is_some(),
            "eigenvalues": model.header.normaliser.eigenvalues,
        },
        "source_count": fitted.count,
        "latents": fitted.latents,
        "ordering": fitted.ordering,
        "linear_ica": vae.map(|v| &v.ica),
        "restarts": vae.map(|v| &v.consensus),
        "priors": priors_json(model),
        "score": score,
        "history": vae.map(|v| &v.history.epochs),
    });
    let report_path = out.path("report.json");
    let report = serde_json::to_string_pretty(&report)?;
    unmix_io::write_atomically(&report_path, |out| {
        std::io::Write::write_all(out, report.as_bytes())
            .map_err(|source| unmix_io::Error::Io { path: report_path.clone(), source })
    })?;
    if !streaming {
        // A file's run stopped now leaves nothing; a stream's Ctrl-C has ended its input.
        crate::interrupt::check()?;
    }
    let written = out.commit()?;

    if !args.quiet {
        let how = match (vae, selection.chosen) {
            (Some(v), _) => plural(v.history.summary.epochs, "epoch").to_string(),
            (None, ModelKind::Linear) => {
                let iterations = selection
                    .linear
                    .as_ref()
                    .map_or(0, |l| l.iterations + l.refit.as_ref().map_or(0, |r| r.iterations));
                format!("linear, {}", plural(iterations, "iteration"))
            }
            (None, ModelKind::PostNonlinear) => "post-nonlinear".into(),
            (None, _) => "saturating chain".into(),
        };
        println!(
            "separated {} of {} into {} (trained on {}, {how}, {train_s:.1} s){}",
            plural(total_frames, "frame"),
            plural(model.header.channels, "channel"),
            plural(model.header.sources, "source"),
            plural(training_frames, "frame"),
            crate::apply::ending(&applied)
        );
        if let Some(s) = &score {
            print!("{}", score::table(s));
        }
        if let Some(summary) = &monitoring_summary {
            println!("monitoring: {summary}");
        }
        for w in written {
            println!("  {}", w.display());
        }
    } else if let Some(summary) = monitoring_summary.as_ref().filter(|s| s.unusual_windows > 0) {
        // What monitoring is for is said even to a quiet run (a job run by a scheduler).
        println!("monitoring: {summary}");
    }
    if let (true, Some(report)) = (args.stats, &applied.pipeline) {
        print!("{}", crate::apply::stats_table(report, kernel));
    }
    if let Some(e) = applied.input_error {
        bail!(e);
    }
    Ok(Outcome { score })
}

/// Checks the true sources before any work: readable, no more of them than the sources
/// (or, with `-n auto`, than the channels), and as long as the input when both lengths are
/// known (a CSV's rows are counted; a stream's length shows only at its end, where the
/// scores are computed).
fn check_truth(
    truth: &Path,
    input_frames: Option<usize>,
    channels: usize,
    sources: SourceCount,
    sample_rate_hz: u32,
) -> Result<()> {
    let mut reader =
        BlockReader::open(truth, sample_rate_hz).with_context(|| format!("--truth {}", truth.display()))?;
    let most = match sources {
        SourceCount::Fixed(n) => n,
        SourceCount::Auto { max } => max.unwrap_or(channels).min(channels),
    };
    if reader.channels() > most {
        bail!(
            "{}: {} true sources cannot be matched to at most {most} separated ones (--truth)",
            truth.display(),
            reader.channels()
        );
    }
    let truth_frames = match reader.frames_total() {
        Some(frames) => frames,
        None => {
            let (mut frames, mut block) = (0, Vec::new());
            loop {
                crate::interrupt::check()?;
                match reader.read_block(&mut block, 1 << 16)? {
                    0 => break frames,
                    got => frames += got,
                }
            }
        }
    };
    if let Some(input_frames) = input_frames
        && input_frames != truth_frames
    {
        bail!("{}: {}, but the input has {input_frames} (--truth)", truth.display(), plural(truth_frames, "frame"));
    }
    Ok(())
}

/// Reads a stream's training segment as its rows arrive, a block of 50 ms at a time so
/// that Ctrl-C is seen between blocks, and says what it is waiting for: at a logger's
/// rate the default segment can take minutes.
fn read_stream_head(reader: &mut BlockReader, frames: usize, quiet: bool) -> Result<Vec<f32>> {
    let (rate, channels) = (reader.sample_rate_hz(), reader.channels());
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let seconds = frames as f64 / f64::from(rate.max(1));
        eprintln!(
            "{}: training on its first {frames} frames ({} at {rate} Hz; --train-seconds sets it), then separating the rest as it arrives",
            unmix_io::STDIN_NAME,
            duration_text(seconds)
        );
        crate::progress::segment_bar(frames as u64)
    };
    let block = crate::apply::stream_block_frames(rate, unmix_stream::PipelineConfig::file().frame_len);
    let (mut head, mut rows) = (Vec::with_capacity(frames.min(1 << 16) * channels), Vec::new());
    while head.len() < frames * channels {
        crate::interrupt::check()?;
        let got = reader.read_block(&mut rows, block.min(frames - head.len() / channels))?;
        if got == 0 {
            break; // the stream ended first: it is all there is to train on
        }
        head.extend_from_slice(&rows);
        bar.set_position((head.len() / channels) as u64);
    }
    bar.finish_and_clear();
    Ok(head)
}

/// A wait as a person reads it: `0.8 s`, `21 min 51 s`, `3 h 2 min`.
fn duration_text(seconds: f64) -> String {
    let whole = seconds.round() as u64;
    match seconds {
        s if s < 60.0 => format!("{s:.1} s"),
        s if s < 3600.0 => format!("{} min {} s", whole / 60, whole % 60),
        _ => format!("{} h {} min", whole / 3600, whole % 3600 / 60),
    }
}

/// Says how training ended — the source count, the restarts and the chosen run's
/// convergence; a run that hit the epoch cap is always reported, quiet or not.
fn report_fit(fitted: &Fitted, quiet: bool) {
    if let (Some(count), false) = (&fitted.count, quiet) {
        println!("-n auto: {} ({})", plural(fitted.model.header.sources, "source"), count.reason);
        let dropped = fitted.latents.iter().filter(|l| !l.kept).count();
        if dropped > 0 {
            println!("  {dropped} latent(s) carried < {MIN_LATENT_INFORMATION_NATS} nats and were pruned");
        }
    }
    let selection = &fitted.selection;
    if !quiet {
        println!("model: {} ({})", selection.chosen, selection.reason);
        if let Some(score) = &selection.vae {
            let linear = selection
                .linear
                .as_ref()
                .map_or(String::new(), |l| format!("; the linear model's {:.4}", l.validation_nll));
            match (score.validation_nll, &score.unscored) {
                (Some(nll), _) => println!(
                    "PDGMM-VAE: held-out NLL {nll:.4} nats per frame, its encoder read as a change of variables{linear}"
                ),
                (None, Some(why)) => println!("PDGMM-VAE: no held-out NLL ({why}){linear}"),
                (None, None) => {}
            }
        }
    }
    let Some(vae) = &fitted.vae else {
        if let (Some(linear), false) = (&selection.linear, quiet) {
            println!(
                "linear model: held-out NLL {:.4} nats per frame after {}{}{}",
                linear.validation_nll,
                plural(linear.iterations, "iteration"),
                if linear.converged { "" } else { " (stopped at the cap before its tolerance)" },
                linear.refit.as_ref().map_or(String::new(), |r| format!(
                    "; then {} on all {}",
                    plural(r.iterations, "iteration"),
                    plural(r.frames, "frame")
                ))
            );
        }
        if let (Some(chain), false) = (&selection.chain, quiet) {
            println!(
                "saturating chain: start {} of {} chosen, held-out NLL {:.4} nats per frame on {}; {}",
                chain.chosen + 1,
                chain.starts.len(),
                chain.validation_nll,
                plural(chain.frames, "training frame"),
                match chain.last_change() {
                    Some(change) =>
                        format!("{} steps, the NLL still changing by {change:.1e} over the last tenth", chain.steps),
                    None => format!("stopped at its screening after {} steps", chain.steps),
                }
            );
        }
        return;
    };
    let c = &vae.consensus;
    if !quiet && c.config.candidates > 1 {
        println!(
            "restarts: {} × {} of {}; chose candidate {} (held-out loss {:.5}, {:.5} at the end)",
            plural(c.config.candidates, "candidate"),
            plural(c.config.rounds, "round"),
            plural(c.config.epochs_per_round, "epoch"),
            c.chosen + 1,
            c.chosen_validation_loss,
            c.final_validation_loss
        );
    }
    let s = &vae.history.summary;
    if s.converged {
        if !quiet {
            println!(
                "training converged after {}: loss {:.5} (last improvement {:.2e} < tolerance {:.0e})",
                plural(s.epochs, "epoch"),
                s.final_loss,
                s.remaining_relative_improvement,
                s.plateau_tolerance
            );
        }
    } else {
        eprintln!(
            "warning: training stopped at the epoch cap ({}) before the loss plateaued: it was still improving by {:.2e} (tolerance {:.0e}); raise --epochs",
            plural(s.epochs, "epoch"),
            s.remaining_relative_improvement,
            s.plateau_tolerance
        );
    }
}

/// `-n`: a count or `auto`.
fn parse_sources(s: &str) -> std::result::Result<SourceCount, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(SourceCount::Auto { max: None });
    }
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_CHANNELS).contains(&n) => Ok(SourceCount::Fixed(n)),
        Ok(n) => Err(format!("{n} is not in 1..={MAX_CHANNELS}")),
        Err(_) => Err(format!("'{s}' is neither a number of sources nor 'auto'")),
    }
}

fn priors_json(model: &ModelFile) -> serde_json::Value {
    let w = &model.weights;
    let k = w.prior.components;
    let sd = w.posterior_std();
    let gains = model.source_gains();
    let per_source: Vec<serde_json::Value> = (0..w.sources())
        .map(|j| {
            serde_json::json!({
                "source": j + 1,
                "output_gain": gains[j],
                "posterior_std": sd[j],
                "weights": w.prior.weights(j),
                "means": &w.prior.means[j * k..(j + 1) * k],
                "variances": w.prior.log_vars[j * k..(j + 1) * k].iter().map(|v| v.exp()).collect::<Vec<f32>>(),
            })
        })
        .collect();
    serde_json::Value::Array(per_source)
}

#[cfg(test)]
mod tests {
    use super::duration_text;

    #[test]
    fn waits_read_as_a_person_says_them() {
        assert_eq!(duration_text(0.75), "0.8 s");
        assert_eq!(duration_text(59.94), "59.9 s");
        assert_eq!(duration_text(1310.72), "21 min 51 s");
        assert_eq!(duration_text(10_920.0), "3 h 2 min");
    }
}
