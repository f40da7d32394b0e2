//! The options of `unmix separate`, and how they become a checked configuration.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use unmix_core::limits::{MAX_CHANNELS, MAX_HIDDEN_UNITS, MAX_PRIOR_COMPONENTS, MAX_RESTARTS};
use unmix_format::MAX_AR_ORDER;
use unmix_likelihood::chain::{ChainConfig, ChainShape};
use unmix_likelihood::postnonlinear::PostNonlinearConfig;
use unmix_likelihood::residual::ResidualConfig;
use unmix_likelihood::temporal::TemporalConfig;
use unmix_model::{Activation, Backend, TrainingRecipe, VaeLayout};
use unmix_separate::{
    ConsensusConfig, DEFAULT_MAX_TRAIN_FRAMES, ModelChoice, PriorChoice, SeparateConfig, SeparateParams, SourceCount,
};

use unmix_freq::{IvaConfig, MnmfConfig, SourcePrior, StftConfig};

use crate::apply::{InputArgs, WavFormatArg, WindowArgs};
use crate::bounds;

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

/// Where the PDGMM-VAE trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceArg {
    /// The processor, with --backend's CPU backend.
    Cpu,
    /// A GPU, with burn's wgpu backend (a build with `--features wgpu`); none found is an
    /// error.
    Gpu,
    /// A GPU when one is found, else the processor.
    Auto,
}

impl DeviceArg {
    /// The burn backend it trains with, `cpu` the CPU backend asked for.
    pub fn backend(self, cpu: Backend) -> Backend {
        match self {
            DeviceArg::Gpu => Backend::Wgpu,
            DeviceArg::Auto if unmix_model::gpu_available() => Backend::Wgpu,
            DeviceArg::Cpu | DeviceArg::Auto => cpu,
        }
    }
}

/// Which model to train.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModelArg {
    /// The linear model, or a nonlinear model where it explains the held-out frames
    /// better: the post-nonlinear model when there are as many sources as channels (and
    /// then PDGMM's encoder on its curves where that is better still), the saturating
    /// chain when also every sample is inside full scale.
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
    /// (needs as many sources as channels). PDGMM's encoder (a hidden tanh layer beside the
    /// linear path) is then fitted on the curves and kept where it explains the held-out
    /// frames better by the margin.
    #[value(name = "postnonlinear")]
    PostNonlinear,
}

/// Where the mixture is modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DomainArg {
    /// Sample by sample: instantaneous mixtures (one weight per channel and source).
    Time,
    /// Frame by frame and bin by bin (STFT): convolutive mixtures, rooms with echoes.
    Stft,
}

/// Which prior the linear model's sources get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PriorArg {
    /// The temporal prior where it explains the held-out frames (each given the frames
    /// before it) better than every model of independent samples, a GMM otherwise.
    Auto,
    /// A GMM per source, the samples independent (the paper's prior).
    Gmm,
    /// Each source an autoregressive process with GMM innovations, fitted with the linear
    /// unmixing by exact maximum likelihood: for sources told apart by their spectra, as a
    /// structure's modes under broadband excitation are (needs 5 000 frames).
    #[value(name = "ar-gmm")]
    ArGmm,
    /// --domain stft: each source's spectral vector with AuxIVA's spherical Laplace
    /// density.
    Laplace,
    /// --domain stft: each source a Gaussian with one variance per frame.
    Gauss,
    /// --domain stft: each source's power a low-rank non-negative model (ILRMA; the
    /// default of --domain stft).
    #[value(name = "low-rank")]
    LowRank,
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
    /// Which model: `auto` fits the linear model and weighs the nonlinear ones against it
    /// by their likelihood of held-out frames (the post-nonlinear model when there are as
    /// many sources as channels, the saturating chain when also every sample is inside
    /// ±1; each stops early where it loses); report.json says which won and why.
    #[arg(long, value_enum, default_value_t = ModelArg::Auto)]
    pub model: ModelArg,
    /// The linear model's prior: `auto` weighs the temporal prior (AR-GMM, on up to 24
    /// blocks of 1000 frames) against the models of independent samples by the held-out
    /// likelihood of each frame given the frames before it; `ar-gmm` fits it on the whole
    /// training segment (with --model auto or linear).
    #[arg(long, value_enum, default_value_t = PriorArg::Auto)]
    pub prior: PriorArg,
    /// `time`: the sample-by-sample models (instantaneous mixtures); `stft`: independent
    /// vector analysis in the frequency domain, for rooms, where every microphone hears
    /// each source through its own echoes (its sources are their images at the first
    /// channel; no model file yet).
    #[arg(long, value_enum, default_value_t = DomainArg::Time)]
    pub domain: DomainArg,
    /// --domain stft: samples per STFT frame (about the room's reverberation time).
    #[arg(long, default_value_t = 2048, value_parser = bounds::between(4, 65_536))]
    pub stft_frame: usize,
    /// --domain stft: samples between frames (a divisor of the frame, at most half).
    #[arg(long, default_value_t = 512, value_parser = bounds::at_least_one())]
    pub stft_hop: usize,
    /// --domain stft: updates of every source's demixing and prior.
    #[arg(long, default_value_t = 50, value_parser = bounds::between(1, 10_000))]
    pub stft_iterations: usize,
    /// --domain stft with --prior low-rank: non-negative bases per source.
    #[arg(long, default_value_t = 2, value_parser = bounds::between(1, 64))]
    pub stft_bases: usize,
    /// --domain stft: updates of the spatial model (every source's power a low-rank model
    /// and its image a diagonal in a basis shared per bin, FastMNMF2's model) started
    /// from the demixing; 0 keeps the demixing's separation.
    #[arg(long, default_value_t = 50, value_parser = bounds::between(0, 10_000))]
    pub stft_spatial_iterations: usize,
    /// --domain stft: NMF components per source of the spatial model.
    #[arg(long, default_value_t = 8, value_parser = bounds::between(1, 64))]
    pub stft_components: usize,
    /// --domain stft: draws of the spatial model's starting spectra (seeds --seed,
    /// --seed + 1, …), the one of highest likelihood kept (each costs one fit); default 3
    /// for a recording of up to 20 s, 1 for a longer one (where the draws measured alike).
    #[arg(long, value_parser = bounds::between(1, 64))]
    pub stft_starts: Option<usize>,
    /// The temporal prior's autoregressive order: a damped mode is order 2, with sensor
    /// noise it needs a few more.
    #[arg(long, default_value_t = 8, value_parser = bounds::between(1, MAX_AR_ORDER))]
    pub ar_order: usize,
    /// PDGMM-VAE: keep all channels instead of PCA-whitening them to the number of
    /// sources (only matters when there are more channels than sources; the linear model
    /// always whitens).
    #[arg(long)]
    pub no_whiten: bool,
    /// The linear model (time domain): write its outputs as they are, not each source's
    /// posterior mean given the sensor noise found in the channels beyond the sources
    /// (with more channels than sources, when that noise is white; see report.json's
    /// `output_noise`).
    #[arg(long)]
    pub no_denoise: bool,
    /// PDGMM-VAE: Gaussian components per source prior (K; the linear model and the
    /// saturating chain use 6, the post-nonlinear model 12).
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
    /// Adam learning rate (default 0.003; on a GPU, scaled with the batch: see
    /// --batch-size).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Maximum number of epochs (training stops earlier when the loss plateaus).
    #[arg(long, default_value_t = 400, value_parser = bounds::at_least_one())]
    pub epochs: usize,
    /// Frames per minibatch (default 256). On a GPU, unless this or --lr is given, the
    /// largest power of two up to 4096 that leaves 32 batches per epoch, with the learning
    /// rate scaled by the square root of its growth: the GPU's time goes to launching the
    /// step's many small kernels, and a larger batch amortises them.
    #[arg(long, value_parser = bounds::at_least_one())]
    pub batch_size: Option<usize>,
    /// Seed of initialisation, shuffling and sampling noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// burn CPU backend of the training (the result is the same up to rounding; flex
    /// measured faster).
    #[arg(long, value_enum, default_value_t = BackendArg::Flex)]
    pub backend: BackendArg,
    /// Where the PDGMM-VAE trains: `gpu` is burn's wgpu backend (Vulkan, Metal or
    /// DirectX 12; unmix built with `--features wgpu`), `auto` a GPU when one is found.
    /// The model file is the same wherever it trained; report.json names the adapter.
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu)]
    pub device: DeviceArg,
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
    pub(crate) fn config(&self, sample_rate_hz: u32) -> Result<SeparateConfig> {
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
        let defaults = TrainingRecipe::new();
        let recipe = TrainingRecipe::new()
            .with_beta(self.beta)
            .with_lambda(self.lambda)
            .with_learning_rate(self.learning_rate())
            .with_max_epochs(self.epochs)
            .with_min_epochs(30.min(self.epochs))
            .with_batch_size(self.batch_size.unwrap_or(defaults.batch_size))
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
            recipe_for_gpu: self.batch_size.is_none() && self.lr.is_none(),
            backend: self.device.backend(match self.backend {
                BackendArg::Flex => Backend::Flex,
                BackendArg::Ndarray => Backend::Ndarray,
            }),
            model: match self.model {
                ModelArg::Auto => ModelChoice::Auto,
                ModelArg::Vae => ModelChoice::Vae,
                ModelArg::Chain => ModelChoice::Chain,
                ModelArg::Linear => ModelChoice::Linear,
                ModelArg::PostNonlinear => ModelChoice::PostNonlinear,
            },
            prior: match self.prior {
                PriorArg::Auto => PriorChoice::Auto,
                PriorArg::Gmm => PriorChoice::Gmm,
                PriorArg::ArGmm => PriorChoice::ArGmm,
                PriorArg::Laplace | PriorArg::Gauss | PriorArg::LowRank => {
                    bail!("--prior {}: a prior of --domain stft", self.prior.name())
                }
            },
            temporal: TemporalConfig { order: self.ar_order, ..SeparateParams::default_temporal() },
            chain: ChainConfig { seed: self.seed, threads: self.threads, ..ChainConfig::new(ChainShape::Saturating) },
            post_nonlinear: PostNonlinearConfig {
                seed: self.seed,
                threads: self.threads,
                ..PostNonlinearConfig::default()
            },
            encoder: ResidualConfig { seed: self.seed, ..ResidualConfig::default() },
            kernel: self.kernel.kernel()?,
            denoise: !self.no_denoise,
        };
        Ok(params.check()?)
    }
}

impl PriorArg {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PriorArg::Auto => "auto",
            PriorArg::Gmm => "gmm",
            PriorArg::ArGmm => "ar-gmm",
            PriorArg::Laplace => "laplace",
            PriorArg::Gauss => "gauss",
            PriorArg::LowRank => "low-rank",
        }
    }
}

impl SeparateArgs {
    /// Adam's learning rate as given, or the recipe's default (before a GPU's scaling:
    /// giving one turns that off).
    pub fn learning_rate(&self) -> f64 {
        self.lr.unwrap_or(TrainingRecipe::new().learning_rate)
    }

    /// The frequency-domain settings of `--domain stft` for a recording of `seconds`,
    /// checked: its prior (`auto`: low-rank), STFT and iterations, and the spatial model's
    /// (its starts by [`MnmfConfig::starts_for`] unless given); the time-domain priors
    /// are refused.
    pub fn stft_config(&self, seconds: f64) -> Result<(StftConfig, IvaConfig, Option<MnmfConfig>)> {
        let prior = match self.prior {
            PriorArg::Auto | PriorArg::LowRank => SourcePrior::LowRank { bases: self.stft_bases },
            PriorArg::Laplace => SourcePrior::Laplace,
            PriorArg::Gauss => SourcePrior::Gauss,
            PriorArg::Gmm | PriorArg::ArGmm => {
                bail!(
                    "--prior {}: a prior of --domain time (with --domain stft: laplace, gauss or low-rank)",
                    self.prior.name()
                )
            }
        };
        let stft = StftConfig { frame: self.stft_frame, hop: self.stft_hop };
        stft.check()?;
        let spatial = (self.stft_spatial_iterations > 0).then_some(MnmfConfig {
            iterations: self.stft_spatial_iterations,
            components: self.stft_components,
            seed: self.seed,
            starts: self.stft_starts.unwrap_or_else(|| MnmfConfig::starts_for(seconds)),
        });
        Ok((stft, IvaConfig { prior, iterations: self.stft_iterations, seed: self.seed }, spatial))
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
