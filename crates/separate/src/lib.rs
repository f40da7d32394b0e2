//! The offline separation job: fit the normalisation on a training segment, train
//! PDGMM-VAE on it, package everything as a [`ModelFile`], and apply the encoder to whole
//! recordings through the burn-free [`Separator`].
//!
//! Sources written at the end of training and sources from `unmix apply` come from the
//! same exported weights and the same code, so they are identical bit for bit.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};
use unmix_core::Recording;
use unmix_core::parallel::{round_robin, threads_for};
use unmix_dsp::count::{SourceCount as CountEstimate, estimate_sources};
use unmix_dsp::gmm::fit_1d;
use unmix_dsp::ica::{FastIcaConfig, fast_ica};
use unmix_dsp::linalg::{Matrix, symmetric_pseudo_inverse};
use unmix_dsp::metrics::{hungarian_min_cost, pearson};
use unmix_dsp::{Normaliser, NormaliserConfig};
use unmix_format::{GmmParams, ModelFile, ModelHeader, ScoreBaseline};
use unmix_infer::Separator;
use unmix_likelihood::chain::{self, ChainConfig, ChainFit, ChainShape, StartReport};
use unmix_model::consensus::Progress as VaeProgress;
pub use unmix_model::consensus::{ConsensusConfig, ConsensusReport};
use unmix_model::consensus::{WarmStart, fit_with_restarts};
use unmix_model::{Backend, PdgmmVaeConfig, Trainer, TrainingConfig, TrainingHistory};

/// Fewest frames a training segment may have.
pub const MIN_TRAIN_FRAMES: usize = 256;

/// Default cap on the training segment: enough frames to fit the per-sample model well,
/// few enough that memory stays bounded and an epoch stays short whatever the input length.
pub const DEFAULT_MAX_TRAIN_FRAMES: usize = 131_072;

/// What a separation job is doing, for progress display.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A likelihood fit weighed in the model choice, every ~50 ms.
    Chain {
        /// Which model.
        shape: ChainShape,
        /// Adam steps done, over every start.
        done: usize,
        /// Steps of every start run to the end (a fit stopped at its screening ends
        /// below this).
        total: usize,
    },
    /// The PDGMM-VAE's training: the warm start, the restarts' candidates, the final run.
    Vae(VaeProgress<'a>),
}

/// What can go wrong in a separation job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// More sources asked for than there are channels.
    #[error(
        "{channels} channels cannot be separated into {sources} sources (need at least as many channels as sources)"
    )]
    TooFewChannels {
        /// Channels in the input.
        channels: usize,
        /// Sources asked for.
        sources: usize,
    },
    /// The training segment is too short.
    #[error("only {frames} frames to train on; at least {MIN_TRAIN_FRAMES} are needed")]
    TooShort {
        /// Frames available.
        frames: usize,
    },
    /// The model expects another channel count.
    #[error("the model expects {expected} channels, the input has {got}")]
    ChannelMismatch {
        /// Channels the model was trained on.
        expected: usize,
        /// Channels in the input.
        got: usize,
    },
    /// Normalisation failed (silent channel, NaN, rank deficiency).
    #[error(transparent)]
    Dsp(#[from] unmix_dsp::Error),
    /// The fit was cancelled (its cancel flag was set).
    #[error("training was cancelled")]
    Cancelled,
    /// Training failed.
    #[error(transparent)]
    Model(unmix_model::Error),
    /// A likelihood fit failed.
    #[error(transparent)]
    Likelihood(unmix_likelihood::Error),
    /// The model could not be packaged.
    #[error(transparent)]
    Format(#[from] unmix_format::Error),
    /// The encoder refused a block.
    #[error(transparent)]
    Infer(#[from] unmix_infer::Error),
    /// The sources do not form a recording.
    #[error(transparent)]
    Recording(#[from] unmix_core::Error),
    /// Settings that do not go together.
    #[error("{0}")]
    Config(String),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl From<unmix_model::Error> for Error {
    fn from(e: unmix_model::Error) -> Self {
        match e {
            unmix_model::Error::Cancelled => Error::Cancelled,
            e => Error::Model(e),
        }
    }
}

impl From<unmix_likelihood::Error> for Error {
    fn from(e: unmix_likelihood::Error) -> Self {
        match e {
            unmix_likelihood::Error::Cancelled => Error::Cancelled,
            e => Error::Likelihood(e),
        }
    }
}

/// How many sources to separate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceCount {
    /// Exactly this many.
    Fixed(usize),
    /// Estimate it (MDL on the correlation eigenvalues, then pruning of latents that carry
    /// no information), at most `max` if given.
    Auto {
        /// Upper bound (`--max-sources`).
        max: Option<usize>,
    },
}

/// Settings of a separation job.
#[derive(Debug, Clone)]
pub struct SeparateConfig {
    /// Number of sources `n`, or how to find it.
    pub sources: SourceCount,
    /// Train on at most this many frames from the start of the input.
    pub max_train_frames: usize,
    /// Whiten (PCA) to `n` dimensions before the model: decorrelates the channels (and
    /// reduces them to `n` when `m > n`), leaving the model a rotation to find.
    pub whiten: bool,
    /// Distil a linear ICA solution (FastICA on the whitened data) into the encoder and
    /// decoder, and fit the first candidate's prior to it, before the VAE objective takes
    /// over. Needs `whiten`.
    pub warm_start: bool,
    /// Consensus restarts ([`ConsensusConfig::single`] for one plain run).
    pub restarts: ConsensusConfig,
    /// Training settings; `model.inputs` and `model.sources` are filled in by [`fit`].
    pub training: TrainingConfig,
    /// burn backend.
    pub backend: Backend,
    /// Setting this flag stops a running fit at its next epoch with a `Cancelled` error.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Which model to train, or how to choose it.
    pub model: ModelChoice,
    /// Settings of the saturating-chain fit (and of the linear model it is weighed
    /// against: the same but for [`ChainConfig::shape`], its starts and its steps).
    pub chain: ChainConfig,
}

/// Which model a recording gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelChoice {
    /// The saturating chain when it is eligible (as many sources as channels, every
    /// sample inside full scale) and its held-out likelihood beats the linear model's by
    /// [`CHAIN_MARGIN_NATS`] per frame; PDGMM-VAE otherwise.
    Auto,
    /// PDGMM-VAE.
    Vae,
    /// The saturating chain (an error when it is not eligible).
    Chain,
}

/// How much better (nats per held-out frame) the saturating chain's likelihood must be
/// than the linear model's for [`ModelChoice::Auto`] to choose it: well above what its
/// extra `n² + n` parameters gain on a linear mixture (it loses there, README), well below
/// what it gains on the nonlinear benchmark (2.4–3.0 nats per frame on seeds 1–5).
pub const CHAIN_MARGIN_NATS: f64 = 0.05;

/// The maximum-likelihood fit of one model shape, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainSummary {
    /// Which shape.
    pub shape: ChainShape,
    /// Frames it was fitted on (the held-out ones not counted).
    pub frames: usize,
    /// Adam steps the chosen start ran (fewer than asked when the fit stopped at its
    /// screening).
    pub steps: usize,
    /// Mean NLL per training frame of the chosen start (nats, density of the samples as read).
    pub train_nll: f64,
    /// The same on held-out frames: what starts and models are chosen by.
    pub validation_nll: f64,
    /// The chosen start (from 0).
    pub chosen: usize,
    /// Every start.
    pub starts: Vec<StartReport>,
}

impl ChainSummary {
    fn of(fit: &ChainFit, config: &ChainConfig, frames: usize) -> Self {
        let held_out = frames.checked_div(config.validation_every).unwrap_or(0);
        Self {
            shape: fit.shape,
            frames: frames - held_out,
            steps: fit.steps,
            train_nll: fit.train_nll,
            validation_nll: fit.validation_nll,
            chosen: fit.chosen,
            starts: fit.starts.clone(),
        }
    }

    /// The chosen start's relative NLL change over its last tenth of steps.
    pub fn last_change(&self) -> Option<f64> {
        self.starts.get(self.chosen).and_then(|s| s.last_change)
    }
}

/// Which model was trained, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSelection {
    /// What was asked for.
    pub asked: ModelChoice,
    /// `"pdgmm-vae"` or `"saturating-chain"`.
    pub chosen: String,
    /// Why, in words.
    pub reason: String,
    /// The linear model's fit, when the two were weighed.
    pub linear: Option<ChainSummary>,
    /// The saturating chain's fit, when it was tried.
    pub chain: Option<ChainSummary>,
}

/// How a PDGMM-VAE was trained.
#[derive(Debug)]
pub struct VaeTraining {
    /// The chosen candidate's training history.
    pub history: TrainingHistory,
    /// Restarts, candidates, validation losses.
    pub consensus: ConsensusReport,
    /// The warm start's linear ICA, if used.
    pub ica: Option<IcaSummary>,
}

impl SeparateConfig {
    /// The defaults of `unmix separate` for `sources`: the model chosen automatically
    /// ([`ModelChoice::Auto`]), whitening, warm start, consensus restarts, the default
    /// model and training settings, the default compiled backend.
    pub fn new(sources: SourceCount) -> Result<Self> {
        let n = match sources {
            SourceCount::Fixed(n) => n.max(1),
            SourceCount::Auto { .. } => 1,
        };
        Ok(Self {
            sources,
            max_train_frames: DEFAULT_MAX_TRAIN_FRAMES,
            whiten: true,
            warm_start: true,
            restarts: ConsensusConfig::default(),
            training: TrainingConfig::new(PdgmmVaeConfig::new(n, n)),
            backend: Backend::default_compiled()?,
            cancel: None,
            model: ModelChoice::Auto,
            chain: ChainConfig::new(ChainShape::Saturating),
        })
    }
}

/// Least-squares epochs of the warm start's distillation: enough to bring the encoder's
/// mismatch to the ICA solution below 1 % on the paper's problems (README).
pub const WARM_START_EPOCHS: usize = 20;

/// A latent carrying less than this much information about the input (nats, Gaussian
/// estimate `½ ln(1 + var μ_j / σ_j²)`) is uninformative: its posterior is as wide as
/// its spread. Only `-n auto` prunes such latents.
pub const MIN_LATENT_INFORMATION_NATS: f64 = 0.1;

/// Evidence about one latent dimension of the trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentEvidence {
    /// Variance of the posterior mean over the training segment.
    pub mean_variance: f64,
    /// Posterior variance `σ_j²`.
    pub posterior_variance: f64,
    /// `½ ln(1 + mean_variance / posterior_variance)`, nats.
    pub information_nats: f64,
    /// Whether the latent was kept.
    pub kept: bool,
}

/// How the output order and signs were fixed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ordering {
    /// The rule, in words.
    pub rule: String,
    /// Fraction of the standardised input variance each output source explains, in output order.
    pub explained_variance: Vec<f64>,
    /// Which trained latent (index into the training history's per-source curves, dropped
    /// ones included) became each output source.
    pub from_latent: Vec<usize>,
    /// Sign applied to each (±1).
    pub signs: Vec<f32>,
}

/// The linear ICA used for the warm start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IcaSummary {
    /// FastICA iterations.
    pub iterations: usize,
    /// Whether FastICA converged.
    pub converged: bool,
}

/// Everything a fit produced.
#[derive(Debug)]
pub struct Fitted {
    /// The model, ready to save and apply (sources in their deterministic order and sign).
    pub model: ModelFile,
    /// Which model was trained and why.
    pub selection: ModelSelection,
    /// How the PDGMM-VAE was trained (`None` when the saturating chain was chosen).
    pub vae: Option<VaeTraining>,
    /// The source-count estimate, for `-n auto`.
    pub count: Option<CountEstimate>,
    /// Per latent of the trained model (before pruning and ordering).
    pub latents: Vec<LatentEvidence>,
    /// How the output order and signs were chosen.
    pub ordering: Ordering,
}

/// Trains a model on the head of `recording`.
pub fn fit(recording: &Recording, config: &SeparateConfig, progress: &mut dyn FnMut(Progress<'_>)) -> Result<Fitted> {
    let m = recording.channels();
    let segment = recording.head(config.max_train_frames);
    if segment.frames() < MIN_TRAIN_FRAMES {
        return Err(Error::TooShort { frames: segment.frames() });
    }
    let (n, count) = match config.sources {
        SourceCount::Fixed(n) => (n, None),
        SourceCount::Auto { max } => {
            let probe = Normaliser::fit(&segment, NormaliserConfig { whiten_to: None })?;
            let eig: Vec<f64> = probe.eigenvalues.iter().map(|&v| f64::from(v)).collect();
            let est = estimate_sources(&eig, segment.frames(), max);
            (est.sources, Some(est))
        }
    };
    if n == 0 || m < n {
        return Err(Error::TooFewChannels { channels: m, sources: n });
    }
    if config.warm_start && !config.whiten {
        return Err(Error::Config("the warm start needs whitening (drop --no-whiten or use --no-warm-start)".into()));
    }
    // Fitted first for its checks too (a silent or non-finite channel is named here,
    // whichever model follows).
    let whiten_to = config.whiten.then_some(n);
    let normaliser = Normaliser::fit(&segment, NormaliserConfig { whiten_to })?;
    let (selection, chain) = select_model(&segment, n, config, progress)?;
    if let Some(chain) = chain {
        return package_chain(recording, &segment, chain, selection, config, count);
    }
    let data = normaliser.transform(&segment)?;
    let mut training = config.training.clone();
    training.model.inputs = normaliser.output_dims();
    training.model.sources = n;
    let mut trainer = Trainer::new(training.clone(), config.backend)?;
    if let Some(flag) = &config.cancel {
        trainer = trainer.with_cancel(flag.clone());
    }

    let (warm, ica) = if config.warm_start {
        let ica = fast_ica(&data, n, &FastIcaConfig { seed: training.seed, ..FastIcaConfig::default() })?;
        let targets = ica.apply(&data);
        let prior = warm_prior(&targets, n, training.model.components, config.restarts.threads);
        let summary = IcaSummary { iterations: ica.iterations, converged: ica.converged };
        (Some(WarmStart { targets, prior: Some(prior), epochs: WARM_START_EPOCHS }), Some(summary))
    } else {
        (None, None)
    };
    let fitted =
        fit_with_restarts(&trainer, &data, warm.as_ref(), &config.restarts, &mut |e| progress(Progress::Vae(e)))?;
    let header = new_header(
        recording,
        n,
        normaliser,
        serde_json::to_value(&training).unwrap_or_default(),
        serde_json::to_value(&fitted.history.summary).unwrap_or_default(),
    );
    // `-n auto` drops the latents that carry no information.
    let (file, latents, ordering) =
        finish_model(ModelFile { header, weights: fitted.model.export() }, &segment, count.is_some())?;
    let vae = VaeTraining { history: fitted.history, consensus: fitted.consensus, ica };
    Ok(Fitted { model: file, selection, vae: Some(vae), count, latents, ordering })
}

/// Decides between the saturating chain and PDGMM-VAE ([`ModelChoice`]); the chain's fit
/// comes back when it was chosen.
fn select_model(
    segment: &Recording,
    n: usize,
    config: &SeparateConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(ModelSelection, Option<ChainFit>)> {
    let m = segment.channels();
    let vae = |reason: String, linear, chain| ModelSelection {
        asked: config.model,
        chosen: "pdgmm-vae".into(),
        reason,
        linear,
        chain,
    };
    if config.model == ModelChoice::Vae {
        return Ok((vae("asked for (--model vae)".into(), None, None), None));
    }
    let peak = segment.interleaved().iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let ineligible = if n != m {
        Some(format!("the saturating chain needs as many sources as channels ({n} sources, {m} channels)"))
    } else if peak.is_nan() || peak >= 1.0 {
        Some(format!(
            "the saturating chain needs every sample inside full scale (±1); the training segment peaks at {peak}"
        ))
    } else {
        None
    };
    if let Some(why) = ineligible {
        return match config.model {
            ModelChoice::Chain => Err(Error::Config(format!("--model chain: {why}"))),
            _ => Ok((vae(why, None, None), None)),
        };
    }
    let frames = segment.frames();
    let cancel = config.cancel.as_deref();
    let mut fit_reporting = |chain_config: &ChainConfig, rival: Option<f64>| {
        let shape = chain_config.shape;
        let mut report = |done, total| progress(Progress::Chain { shape, done, total });
        chain::fit_watched(segment.interleaved(), m, chain_config, rival, cancel, &mut report)
    };
    let chain_config = ChainConfig { shape: ChainShape::Saturating, ..config.chain.clone() };
    if config.model == ModelChoice::Chain {
        let chain = fit_reporting(&chain_config, None)?;
        let selection = ModelSelection {
            asked: config.model,
            chosen: "saturating-chain".into(),
            reason: "asked for (--model chain)".into(),
            linear: None,
            chain: Some(ChainSummary::of(&chain, &chain_config, frames)),
        };
        return Ok((selection, Some(chain)));
    }
    // The linear model first (a few seconds): the chain stops at its screening unless it
    // is already below the linear model's held-out NLL there.
    let linear_defaults = ChainConfig::new(ChainShape::Linear);
    let linear_config = ChainConfig {
        shape: ChainShape::Linear,
        starts: linear_defaults.starts,
        steps: linear_defaults.steps,
        screen_steps: 0,
        ..config.chain.clone()
    };
    let linear = fit_reporting(&linear_config, None)?;
    let linear_summary = ChainSummary::of(&linear, &linear_config, frames);
    let chain = fit_reporting(&chain_config, Some(linear.validation_nll))?;
    let chain_summary = ChainSummary::of(&chain, &chain_config, frames);
    let gain = linear.validation_nll - chain.validation_nll;
    if chain.steps < chain_config.steps {
        let reason = format!(
            "held-out likelihood: after {} of {} steps the saturating chain's best start was {:.3} nats per frame below the linear model's, so it stopped there and the mixture is taken as near-linear",
            chain.steps, chain_config.steps, -gain
        );
        Ok((vae(reason, Some(linear_summary), Some(chain_summary)), None))
    } else if gain > CHAIN_MARGIN_NATS {
        let reason = format!(
            "held-out likelihood: the saturating chain's is {gain:.3} nats per frame above the linear model's (> {CHAIN_MARGIN_NATS})"
        );
        let selection = ModelSelection {
            asked: config.model,
            chosen: "saturating-chain".into(),
            reason,
            linear: Some(linear_summary),
            chain: Some(chain_summary),
        };
        Ok((selection, Some(chain)))
    } else {
        let reason = format!(
            "held-out likelihood: the saturating chain's is {gain:.3} nats per frame above the linear model's (not > {CHAIN_MARGIN_NATS}), so the mixture is taken as near-linear"
        );
        Ok((vae(reason, Some(linear_summary), Some(chain_summary)), None))
    }
}

/// The saturating chain as a model file: the samples as read (full scale), its sources in
/// the documented order and sign, their gains and the monitoring baseline as for the VAE.
fn package_chain(
    recording: &Recording,
    segment: &Recording,
    chain: ChainFit,
    selection: ModelSelection,
    config: &SeparateConfig,
    count: Option<CountEstimate>,
) -> Result<Fitted> {
    let m = segment.channels();
    let normaliser = Normaliser::fit(segment, NormaliserConfig { whiten_to: None })?.full_scale();
    let weights = chain.export().ok_or_else(|| Error::Config("the chain fit is not a saturating chain".into()))?;
    let header = new_header(
        recording,
        m,
        normaliser,
        serde_json::to_value(&config.chain).unwrap_or_default(),
        serde_json::to_value(&selection.chain).unwrap_or_default(),
    );
    // Never pruned: the chain's layers are square, every source is one of its channels' worth.
    let (file, latents, ordering) = finish_model(ModelFile { header, weights }, segment, false)?;
    Ok(Fitted { model: file, selection, vae: None, count, latents, ordering })
}

/// One GMM per ICA source, as the model's prior parameters (log-variances clamped to the
/// model's range). The sources are fitted side by side on `threads` threads (0 = one per
/// core): each fit is 200 EM iterations over the whole segment, the longest step before
/// training starts.
fn warm_prior(targets: &[f32], n: usize, components: usize, threads: usize) -> GmmParams {
    let threads = threads_for(threads, n);
    let fit = |j: usize| {
        let column: Vec<f32> = targets.iter().skip(j).step_by(n).copied().collect();
        fit_1d(&column, components, 200)
    };
    let fit = &fit;
    let fits = round_robin(0..n, threads, || move |j, _| ControlFlow::Continue(fit(j)), || ());
    let (mut logits, mut means, mut log_vars) = (Vec::new(), Vec::new(), Vec::new());
    for (_, g) in fits {
        logits.extend(g.weights.iter().map(|w| w.ln() as f32));
        means.extend(g.means.iter().map(|&v| v as f32));
        log_vars.extend(g.variances.iter().map(|v| v.ln().clamp(-9.0, 4.0) as f32));
    }
    GmmParams { components, logits, means, log_vars }
}

/// Drops the latents `latents` marks uninformative when `prune` (`-n auto`), then fixes
/// the output order and signs ([`fix_order_and_sign`]); the ordering names the trained
/// latents, dropped ones counted.
/// A model file's header as training leaves it (no gains, baseline or pick yet).
fn new_header(
    recording: &Recording,
    sources: usize,
    normaliser: Normaliser,
    training_config: serde_json::Value,
    training_summary: serde_json::Value,
) -> ModelHeader {
    ModelHeader {
        unmix_version: env!("CARGO_PKG_VERSION").to_string(),
        channels: recording.channels(),
        sample_rate_hz: recording.sample_rate_hz(),
        sources,
        normaliser,
        training_config,
        training_summary,
        score_baseline: None,
        picked_channels: None,
        source_gains: None,
    }
}

/// What every trained model gets before it is handed out, whichever kind it is: the
/// evidence per latent, pruning (with `prune`), the documented order and sign, the sources'
/// gains and the monitoring baseline, checked at each stage.
fn finish_model(
    mut file: ModelFile,
    segment: &Recording,
    prune: bool,
) -> Result<(ModelFile, Vec<LatentEvidence>, Ordering)> {
    file.check()?;
    let latents = latent_evidence(&file, segment)?;
    let ordering = prune_order_and_sign(&mut file, segment, &latents, prune)?;
    file.header.source_gains = Some(source_gains(&file, segment)?);
    file.check()?;
    file.header.score_baseline = Some(score_baseline(&file, segment)?);
    Ok((file, latents, ordering))
}

fn prune_order_and_sign(
    file: &mut ModelFile,
    segment: &Recording,
    latents: &[LatentEvidence],
    prune: bool,
) -> Result<Ordering> {
    let mut keep: Vec<usize> = (0..latents.len()).collect();
    if prune && latents.iter().any(|l| !l.kept) {
        keep.retain(|&j| latents[j].kept);
        let fill = latent_means(file, segment)?;
        file.weights.select_sources(&keep, &vec![1.0; keep.len()], &fill)?;
        file.header.sources = keep.len();
    }
    let mut ordering = fix_order_and_sign(file, segment)?;
    // The order was found among the kept latents.
    for latent in &mut ordering.from_latent {
        *latent = keep[*latent];
    }
    Ok(ordering)
}

/// The posterior means of the model on `segment`, as columns.
fn latent_columns(file: &ModelFile, segment: &Recording) -> Result<Vec<Vec<f32>>> {
    let sources = apply(file, segment)?;
    Ok((0..sources.channels()).map(|j| sources.channel(j)).collect())
}

fn mean_and_variance(x: &[f32]) -> (f64, f64) {
    let t = x.len().max(1) as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / t;
    (mean, x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / t)
}

fn latent_means(file: &ModelFile, segment: &Recording) -> Result<Vec<f32>> {
    Ok(latent_columns(file, segment)?.iter().map(|c| mean_and_variance(c).0 as f32).collect())
}

fn latent_evidence(file: &ModelFile, segment: &Recording) -> Result<Vec<LatentEvidence>> {
    let columns = latent_columns(file, segment)?;
    let posterior: Vec<f64> = file.weights.posterior_log_var.iter().map(|w| f64::from(*w).exp()).collect();
    Ok(columns
        .iter()
        .zip(posterior)
        .map(|(c, posterior_variance)| {
            let mean_variance = mean_and_variance(c).1;
            let information_nats = 0.5 * (1.0 + mean_variance / posterior_variance.max(f64::MIN_POSITIVE)).ln();
            LatentEvidence {
                mean_variance,
                posterior_variance,
                information_nats,
                kept: information_nats >= MIN_LATENT_INFORMATION_NATS,
            }
        })
        .collect())
}

/// The documented output order and sign, applied to the model itself (so `apply` and
/// every later use agree):
///
/// - **order**: by the fraction of the standardised input variance each source explains,
///   `Σ_i cov(x̃_i, s_j)² / var(s_j) / m`, largest first — the loudest source is channel 1;
/// - **sign**: the channel with the largest |covariance| with the source gets a positive
///   one (the source's largest mixing weight is positive).
///
/// Both are properties of the recording and the separated source, not of the seed or the
/// latent the source happened to land in, so runs with different seeds agree.
fn fix_order_and_sign(file: &mut ModelFile, segment: &Recording) -> Result<Ordering> {
    let columns = latent_columns(file, segment)?;
    let (m, t) = (segment.channels(), segment.frames());
    let norm = &file.header.normaliser;
    let standardised: Vec<Vec<f64>> = (0..m)
        .map(|i| {
            let (mu, sd) = (f64::from(norm.mean[i]), f64::from(norm.scale[i]));
            segment.channel(i).iter().map(|&v| (f64::from(v) - mu) / sd).collect()
        })
        .collect();
    let mut explained = Vec::with_capacity(columns.len());
    let mut signs = Vec::with_capacity(columns.len());
    for s in &columns {
        let (mean, var) = mean_and_variance(s);
        let cov: Vec<f64> = standardised
            .iter()
            .map(|x| x.iter().zip(s).map(|(a, &b)| a * (f64::from(b) - mean)).sum::<f64>() / t as f64)
            .collect();
        explained.push(cov.iter().map(|c| c * c).sum::<f64>() / var.max(f64::MIN_POSITIVE) / m as f64);
        let pivot = cov.iter().copied().fold(0.0f64, |a, b| if b.abs() > a.abs() { b } else { a });
        signs.push(if pivot < 0.0 { -1.0f32 } else { 1.0 });
    }
    let mut order: Vec<usize> = (0..columns.len()).collect();
    order.sort_by(|&a, &b| explained[b].total_cmp(&explained[a]));
    let signs: Vec<f32> = order.iter().map(|&j| signs[j]).collect();
    file.relabel_sources(&order, &signs)?;
    file.check()?;
    Ok(Ordering {
        rule: "by explained variance of the standardised channels, largest first; sign: largest mixing weight positive"
            .into(),
        explained_variance: order.iter().map(|&j| explained[j]).collect(),
        from_latent: order,
        signs,
    })
}

/// The output gain of each source of `file` (its posterior means as they are, no gains
/// yet): the RMS over the channels of the source's image in `segment`, so that `g_j μ_j`
/// has the standard deviation its image has at the sensors, on average over them, in the
/// input's units. The images are the columns of the back-projection `Â = C_xμ C_μμ⁻¹`,
/// the regression of the channels on all sources at once (the images then add up to the
/// recording as far as the sources explain it, leakage between estimates included).
/// Whatever scale the model gave its latents, a source comes out at the level it has in
/// the recording (the minimal-distortion choice of scale in blind source separation).
fn source_gains(file: &ModelFile, segment: &Recording) -> Result<Vec<f32>> {
    let columns = latent_columns(file, segment)?;
    let (m, n) = (segment.channels(), columns.len());
    let t = segment.frames().max(1) as f64;
    let centred = |x: &[f32]| -> Vec<f64> {
        let (mean, _) = mean_and_variance(x);
        x.iter().map(|&v| f64::from(v) - mean).collect()
    };
    let mu: Vec<Vec<f64>> = columns.iter().map(|c| centred(c)).collect();
    let x: Vec<Vec<f64>> = (0..m).map(|i| centred(&segment.channel(i))).collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>() / t;
    let cross = |rows: &[Vec<f64>]| {
        Matrix::from_rows(&rows.iter().map(|r| mu.iter().map(|c| dot(r, c)).collect()).collect::<Vec<_>>())
    };
    // C_μμ⁻¹; a direction with (next to) no variance — a silent latent — is left out
    // rather than blown up.
    let inverse = symmetric_pseudo_inverse(&cross(&mu), 1e-12);
    let images = cross(&x).matmul(&inverse);
    Ok((0..n)
        .map(|j| {
            let gain = ((0..m).map(|i| images.data[i * n + j].powi(2)).sum::<f64>() / m as f64).sqrt() as f32;
            // A source with no image at all keeps its means as they are.
            if gain.is_finite() && gain > 0.0 { gain } else { 1.0 }
        })
        .collect())
}

/// Relabels `model`'s sources so that output `k` is the source `reference` gave as
/// output `k`, with the same sign: both models separate `segment`, the sources are paired
/// by the assignment that maximises the total |correlation|, and each pair's sign is made
/// positive. Returns the correlation of each pair after relabelling (for reporting how
/// well a refit agrees with its predecessor).
///
/// This is how a model re-fitted in the background replaces its predecessor without
/// output channels changing places or polarity.
pub fn align_to(reference: &ModelFile, model: &mut ModelFile, segment: &Recording) -> Result<Vec<f64>> {
    let n = model.header.sources;
    if reference.header.sources != n {
        return Err(Error::Config(format!("cannot align {n} sources to a model with {}", reference.header.sources)));
    }
    let old = latent_columns(reference, segment)?;
    let new = latent_columns(model, segment)?;
    let corr: Vec<Vec<f64>> = old.iter().map(|a| new.iter().map(|b| pearson(a, b)).collect()).collect();
    let cost: Vec<Vec<f64>> = corr.iter().map(|row| row.iter().map(|c| -c.abs()).collect()).collect();
    let order = hungarian_min_cost(&cost);
    let signs: Vec<f32> = order.iter().enumerate().map(|(j, &k)| if corr[j][k] < 0.0 { -1.0 } else { 1.0 }).collect();
    model.relabel_sources(&order, &signs)?;
    Ok(order.iter().enumerate().map(|(j, &k)| corr[j][k].abs()).collect())
}

/// The model's monitoring scores on its training segment, summarised into outlier
/// thresholds (the 1st percentile of the log-prior, the 99th of the reconstruction error)
/// and medians. Stored in the model, they let the monitoring windows count the frames
/// unlike the training data.
pub fn score_baseline(model: &ModelFile, segment: &Recording) -> Result<ScoreBaseline> {
    if segment.channels() != model.header.channels {
        return Err(Error::ChannelMismatch { expected: model.header.channels, got: segment.channels() });
    }
    let frames = segment.frames();
    if frames == 0 {
        return Err(Error::TooShort { frames });
    }
    let mut separator = Separator::new(model);
    let mut sources = vec![0.0f32; frames * separator.sources()];
    let (mut log_prior, mut error) = (vec![0.0f32; frames], vec![0.0f32; frames]);
    separator.process_scored(segment.interleaved(), &mut sources, &mut log_prior, &mut error)?;
    log_prior.sort_by(f32::total_cmp);
    error.sort_by(f32::total_cmp);
    // Nearest-rank quantiles: `q` of the frames lie at or below the value.
    let quantile =
        |sorted: &[f32], q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    Ok(ScoreBaseline {
        frames,
        log_prior_p01: quantile(&log_prior, 0.01),
        log_prior_median: quantile(&log_prior, 0.5),
        reconstruction_error_p99: quantile(&error, 0.99),
        reconstruction_error_median: quantile(&error, 0.5),
    })
}

/// The posterior means of `model` on `recording`: the sources before the model's output
/// gains, in the units its priors are learned in (for comparing them with the priors).
pub fn posterior_means(model: &ModelFile, recording: &Recording) -> Result<Recording> {
    let mut unscaled = model.clone();
    unscaled.header.source_gains = None;
    apply(&unscaled, recording)
}

/// Applies a model's encoder to every frame of `recording`: the sources (the posterior
/// means times the model's output gains).
pub fn apply(model: &ModelFile, recording: &Recording) -> Result<Recording> {
    if recording.channels() != model.header.channels {
        return Err(Error::ChannelMismatch { expected: model.header.channels, got: recording.channels() });
    }
    let mut separator = Separator::new(model);
    let n = separator.sources();
    let mut out = vec![0.0f32; recording.frames() * n];
    separator.process(recording.interleaved(), &mut out)?;
    Ok(Recording::from_interleaved(recording.sample_rate_hz(), n, out)?)
}

#[cfg(test)]
mod tests {
    use unmix_model::{PdgmmVae, PdgmmVaeConfig};
    use unmix_synth::{MixKind, SynthConfig, generate};

    use super::*;

    fn quick_config(sources: usize, hidden: Vec<usize>) -> SeparateConfig {
        let model = PdgmmVaeConfig::new(1, 1).with_encoder_hidden(hidden.clone()).with_decoder_hidden(hidden);
        SeparateConfig {
            sources: SourceCount::Fixed(sources),
            max_train_frames: 2000,
            whiten: true,
            warm_start: false,
            restarts: ConsensusConfig::single(),
            training: TrainingConfig::new(model).with_max_epochs(3).with_min_epochs(3),
            backend: Backend::default_compiled().unwrap(),
            cancel: None,
            model: ModelChoice::Vae,
            chain: ChainConfig::new(ChainShape::Saturating),
        }
    }

    /// `--model chain` on the nonlinear benchmark: the packaged model (a model file of
    /// the saturating-chain architecture, run by the burn-free separator) gives the chain
    /// fit's own sources up to the order, signs and gains it fixed; a linear mixture is
    /// refused with the reason, and `auto` keeps the VAE where the chain is not eligible,
    /// stops the chain at its screening on an eligible linear mixture, and picks the chain
    /// on the nonlinear benchmark.
    #[test]
    fn the_saturating_chain_is_packaged_and_applied() {
        let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Nonlinear, 1) }).unwrap();
        let mut config = quick_config(3, vec![8]);
        config.model = ModelChoice::Chain;
        config.chain = ChainConfig { starts: 2, steps: 150, threads: 2, ..ChainConfig::new(ChainShape::Saturating) };
        let fitted = fit(&data.mixture, &config, &mut |_| {}).unwrap();
        assert!(fitted.vae.is_none());
        assert_eq!(fitted.model.weights.architecture, unmix_format::Architecture::SaturatingChain);
        let bytes = fitted.model.to_bytes().unwrap();
        let model = ModelFile::from_bytes(&bytes).unwrap();
        let applied = apply(&model, &data.mixture).unwrap();
        let direct = chain::fit(data.mixture.interleaved(), 3, &config.chain, None).unwrap();
        let (sources, _) = direct.demix(data.mixture.interleaved());
        for (j, (&from, &sign)) in fitted.ordering.from_latent.iter().zip(&fitted.ordering.signs).enumerate() {
            let reference: Vec<f32> = sources.iter().skip(from).step_by(3).map(|&v| v as f32).collect();
            let c = pearson(&applied.channel(j), &reference);
            assert!(c * f64::from(sign) > 0.99999, "source {j}: corr {c} with the chain's own latent {from}");
        }
        let linear = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 1) }).unwrap();
        let err = fit(&linear.mixture, &config, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("full scale") || err.contains("sources as channels"), "{err}");
        config.model = ModelChoice::Auto;
        let auto = fit(&linear.mixture, &config, &mut |_| {}).unwrap();
        assert_eq!(auto.selection.chosen, "pdgmm-vae");
        assert!(auto.selection.chain.is_none(), "ineligible: {}", auto.selection.reason);
        // The same linear mixture at a recording's level (inside full scale) is eligible:
        // the chain is weighed against the linear model and stops at its screening.
        let top = linear.mixture.interleaved().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let level = Recording::from_interleaved(
            linear.mixture.sample_rate_hz(),
            3,
            linear.mixture.interleaved().iter().map(|v| 0.5 * v / top).collect(),
        )
        .unwrap();
        config.chain = ChainConfig { starts: 2, steps: 600, screen_steps: 150, threads: 2, ..config.chain };
        let auto = fit(&level, &config, &mut |_| {}).unwrap();
        assert_eq!(auto.selection.chosen, "pdgmm-vae", "{}", auto.selection.reason);
        let chain = auto.selection.chain.as_ref().unwrap();
        assert_eq!(chain.steps, 150, "{}", auto.selection.reason);
        assert!(chain.starts.iter().all(|s| !s.finished && s.screen_validation_nll.is_some()));
        assert!(chain.validation_nll >= auto.selection.linear.as_ref().unwrap().validation_nll);
        // And the nonlinear benchmark gets the chain, which runs to the end, the progress
        // telling the linear model's steps and then the chain's, up to their totals.
        let mut seen: Vec<(ChainShape, usize, usize)> = Vec::new();
        let auto = fit(&data.mixture, &config, &mut |event| {
            if let Progress::Chain { shape, done, total } = event {
                seen.push((shape, done, total));
            }
        })
        .unwrap();
        assert_eq!(auto.selection.chosen, "saturating-chain", "{}", auto.selection.reason);
        assert_eq!(auto.selection.chain.as_ref().unwrap().steps, 600);
        assert!(auto.vae.is_none());
        let linear_end = seen.iter().rposition(|e| e.0 == ChainShape::Linear).unwrap();
        assert!(seen[linear_end + 1..].iter().all(|e| e.0 == ChainShape::Saturating) && linear_end + 1 < seen.len());
        assert!(seen.windows(2).all(|w| w[0].0 != w[1].0 || w[0].1 <= w[1].1), "steps only go forward");
        let linear_steps = ChainConfig::new(ChainShape::Linear);
        let last_linear = seen[linear_end];
        assert_eq!((last_linear.1, last_linear.2), (linear_steps.starts * linear_steps.steps, 4000));
        let last = seen.last().unwrap();
        assert_eq!((last.1, last.2), (2 * 600, 2 * 600));
    }

    /// The plain-Rust encoder and burn's forward pass agree to 1e-5 relative, for an MLP
    /// and for a linear encoder, with and without dimension reduction.
    #[test]
    fn separator_matches_the_burn_forward_pass() {
        for (sensors, hidden) in [(3, vec![16, 8]), (5, vec![]), (3, vec![32])] {
            let data =
                generate(&SynthConfig { sensors, frames: 3000, ..SynthConfig::paper(MixKind::Nonlinear, 2) }).unwrap();
            let model = fit(&data.mixture, &quick_config(3, hidden), &mut |_| {}).unwrap().model;
            let ours = apply(&model, &data.mixture).unwrap();
            let device = Backend::default_compiled().unwrap().device().unwrap();
            let burn_model = PdgmmVae::from_weights(&model.weights, &device).unwrap();
            let normalised = model.header.normaliser.transform(&data.mixture).unwrap();
            let gains = model.source_gains();
            let theirs: Vec<f32> = burn_model
                .encode_all(&normalised, model.header.normaliser.output_dims(), &device)
                .iter()
                .enumerate()
                .map(|(i, mu)| mu * gains[i % gains.len()])
                .collect();
            assert_eq!(ours.interleaved().len(), theirs.len());
            let scale = theirs.iter().fold(0.0f32, |a, b| a.max(b.abs()));
            for (a, b) in ours.interleaved().iter().zip(&theirs) {
                assert!((a - b).abs() <= 1e-5 * scale.max(1.0), "{a} vs {b}");
            }
        }
    }

    /// Sources come out at the level they have in the recording: each output's RMS is the
    /// RMS over the sensors of its true source's image, and a recording 40 dB quieter
    /// gives sources 40 dB quieter.
    #[test]
    fn sources_come_out_at_their_level_in_the_recording() {
        let data = generate(&SynthConfig { frames: 4000, ..SynthConfig::paper(MixKind::Linear, 3) }).unwrap();
        let mut config = SeparateConfig::new(SourceCount::Fixed(3)).unwrap();
        config.restarts = ConsensusConfig::single();
        config.training.max_epochs = 30;
        let quiet_mixture = Recording::from_interleaved(
            data.mixture.sample_rate_hz(),
            3,
            data.mixture.interleaved().iter().map(|v| v * 0.01).collect(),
        )
        .unwrap();
        let rms = |x: &[f32]| {
            let (mean, var) = mean_and_variance(x);
            (var + mean * mean).sqrt()
        };
        let mut levels = Vec::new();
        for (mixture, level) in [(&data.mixture, 1.0), (&quiet_mixture, 0.01)] {
            let model = fit(mixture, &config, &mut |_| {}).unwrap().model;
            let sources = apply(&model, mixture).unwrap();
            let truth: Vec<Vec<f32>> = (0..3).map(|j| data.truth.channel(j)).collect();
            let estimates: Vec<Vec<f32>> = (0..3).map(|j| sources.channel(j)).collect();
            let score = unmix_dsp::metrics::score(&truth, &estimates).unwrap();
            assert!(score.min_abs_corr > 0.99, "{score:?}");
            for s in &score.sources {
                // The true source's image at sensor i (the regression of x_i on it) has the
                // variance cov(x_i, s)² / var(s) = corr(x_i, s)² var(x_i).
                let t = &truth[s.truth];
                let image: f64 = (0..3)
                    .map(|i| {
                        let x = mixture.channel(i);
                        (pearson(&x, t) * mean_and_variance(&x).1.sqrt()).powi(2)
                    })
                    .sum::<f64>()
                    / 3.0;
                let (want, got) = (image.sqrt(), rms(&estimates[s.estimate]));
                // Leakage from the louder sources (|corr| 0.9985 here) moves the weakest
                // source's level by up to about 16 %; the others are within 1 %.
                assert!((got / want - 1.0).abs() < 0.2, "source {}: RMS {got} vs its image's {want}", s.truth);
                levels.push(got / level);
            }
        }
        // The same recording 40 dB down gives the same sources 40 dB down.
        for (loud, quiet) in levels[..3].iter().zip(&levels[3..]) {
            assert!((quiet / loud - 1.0).abs() < 1e-3, "{levels:?}");
        }
    }

    /// The engine's per-frame scores agree with burn's: the log-prior of the sources and
    /// the decoder's reconstruction error, with and without whitening.
    #[test]
    fn frame_scores_match_the_burn_model() {
        for (sensors, hidden, whiten) in [(3, vec![16], true), (5, vec![8, 8], false), (5, vec![], true)] {
            let data =
                generate(&SynthConfig { sensors, frames: 3000, ..SynthConfig::paper(MixKind::Nonlinear, 3) }).unwrap();
            let config = SeparateConfig { whiten, ..quick_config(3, hidden) };
            let model = fit(&data.mixture, &config, &mut |_| {}).unwrap().model;
            let frames = data.mixture.frames();
            let mut separator = unmix_infer::Separator::new(&model);
            let (mut mu, mut log_prior, mut error) = (vec![0.0; frames * 3], vec![0.0; frames], vec![0.0; frames]);
            separator.process_scored(data.mixture.interleaved(), &mut mu, &mut log_prior, &mut error).unwrap();
            let device = Backend::default_compiled().unwrap().device().unwrap();
            let burn_model = PdgmmVae::from_weights(&model.weights, &device).unwrap();
            let norm = &model.header.normaliser;
            let normalised = norm.transform(&data.mixture).unwrap();
            let dims = norm.output_dims();
            let (want_prior, decoded) = burn_model.score_all(&normalised, dims, &device);
            // The reconstruction error, from its definition: the decoded frame mapped back
            // to the standardised channels (`U Λ^{1/2} g` with whitening) against the
            // standardised input frame.
            let want_error: Vec<f32> = (0..frames)
                .map(|t| {
                    let g = &decoded[t * dims..(t + 1) * dims];
                    let x = &data.mixture.interleaved()[t * sensors..(t + 1) * sensors];
                    let squares: f64 = (0..sensors)
                        .map(|c| {
                            let z = (f64::from(x[c]) - f64::from(norm.mean[c])) / f64::from(norm.scale[c]);
                            let z_hat = match &norm.whitening {
                                None => f64::from(g[c]),
                                Some(w) => (0..dims)
                                    .map(|k| {
                                        f64::from(w[k * sensors + c]) * f64::from(norm.eigenvalues[k]) * f64::from(g[k])
                                    })
                                    .sum(),
                            };
                            (z_hat - z).powi(2)
                        })
                        .sum();
                    (squares / sensors as f64) as f32
                })
                .collect();
            for t in 0..frames {
                let (a, b) = (log_prior[t], want_prior[t]);
                assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "frame {t}: log-prior {a} vs {b}");
                let (a, b) = (error[t], want_error[t]);
                assert!((a - b).abs() <= 1e-4 * b.max(1e-2), "frame {t}: reconstruction error {a} vs {b}");
            }
            // The scores vary from frame to frame (they are not a constant both sides share).
            assert!(error.iter().all(|e| e.is_finite() && *e >= 0.0));
            assert!(error.iter().any(|&e| e != error[0]) && log_prior.iter().any(|&p| p != log_prior[0]));
        }
    }

    /// A disturbance outside the subspace the whitening keeps does not move the sources,
    /// and the reconstruction error (measured on the standardised channels) rises by
    /// exactly its energy: a change the model cannot see still shows in the scores.
    #[test]
    fn energy_outside_the_kept_subspace_shows_in_the_reconstruction_error() {
        let data =
            generate(&SynthConfig { sensors: 5, frames: 3000, ..SynthConfig::paper(MixKind::Linear, 5) }).unwrap();
        let model = fit(&data.mixture, &quick_config(3, vec![16]), &mut |_| {}).unwrap().model;
        let norm = &model.header.normaliser;
        let (m, dims) = (5, norm.output_dims());
        let whitening = norm.whitening.as_ref().expect("5 sensors, 3 sources: whitened");
        // A direction of the standardised channels orthogonal to every kept eigenvector.
        let mut v: Vec<f64> = (0..m).map(|c| [0.3, -1.1, 0.7, 0.2, -0.5][c]).collect();
        for k in 0..dims {
            let u: Vec<f64> =
                (0..m).map(|c| f64::from(whitening[k * m + c]) * f64::from(norm.eigenvalues[k]).sqrt()).collect();
            let along: f64 = u.iter().zip(&v).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(&u).for_each(|(x, a)| *x -= along * a);
        }
        let size = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter_mut().for_each(|x| *x /= size);
        // Frame t gets a(t) v in standardised units, i.e. a(t) v_c scale_c in channel units.
        let amplitude = |t: usize| ((t * 37 % 101) as f64 / 50.0 - 1.0) * 2.0;
        let mut disturbed = data.mixture.interleaved().to_vec();
        for (t, frame) in disturbed.chunks_exact_mut(m).enumerate() {
            for c in 0..m {
                frame[c] += (amplitude(t) * v[c] * f64::from(norm.scale[c])) as f32;
            }
        }
        let disturbed = Recording::from_interleaved(8000, m, disturbed).unwrap();
        let frames = data.mixture.frames();
        let scores = |rec: &Recording| {
            let mut separator = unmix_infer::Separator::new(&model);
            let (mut mu, mut lp, mut error) = (vec![0.0; frames * 3], vec![0.0; frames], vec![0.0; frames]);
            separator.process_scored(rec.interleaved(), &mut mu, &mut lp, &mut error).unwrap();
            (mu, error)
        };
        let ((mu, error), (mu_disturbed, error_disturbed)) = (scores(&data.mixture), scores(&disturbed));
        for (a, b) in mu.iter().zip(&mu_disturbed) {
            assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "the sources moved: {a} vs {b}");
        }
        for t in 0..frames {
            let want = f64::from(error[t]) + amplitude(t).powi(2) / m as f64;
            let got = f64::from(error_disturbed[t]);
            assert!((got - want).abs() <= 1e-3 * want.max(1e-2), "frame {t}: error {got} vs {want}");
        }
    }

    /// `-n auto` dropping a latent: the output keeps the others, and the ordering names
    /// the trained latent of every output (its posterior means, signed), not its place
    /// among the kept ones.
    #[test]
    fn a_dropped_latent_leaves_the_others_named_by_their_trained_index() {
        let data = generate(&SynthConfig { frames: 3000, ..SynthConfig::paper(MixKind::Linear, 2) }).unwrap();
        // The fitted file without its gains stands for the trained model here: its
        // sources, in the order `fit` left them, are the "trained latents".
        let mut as_trained = fit(&data.mixture, &quick_config(3, vec![16]), &mut |_| {}).unwrap().model;
        as_trained.header.source_gains = None;
        as_trained.header.score_baseline = None;
        let columns = latent_columns(&as_trained, &data.mixture).unwrap();
        let mut latents = latent_evidence(&as_trained, &data.mixture).unwrap();
        assert!(latents.iter().all(|l| l.kept));
        for dropped in 0..3 {
            latents.iter_mut().enumerate().for_each(|(j, l)| l.kept = j != dropped);
            let mut pruned = as_trained.clone();
            let ordering = prune_order_and_sign(&mut pruned, &data.mixture, &latents, true).unwrap();
            assert_eq!(pruned.header.sources, 2);
            assert!(!ordering.from_latent.contains(&dropped), "{ordering:?}");
            let out = latent_columns(&pruned, &data.mixture).unwrap();
            for (i, (&latent, &sign)) in ordering.from_latent.iter().zip(&ordering.signs).enumerate() {
                for (a, b) in out[i].iter().zip(&columns[latent]) {
                    assert!((a - sign * b).abs() <= 1e-5 * b.abs().max(1.0), "output {i} is not latent {latent}");
                }
            }
            // Without `-n auto` nothing is dropped.
            let mut whole = as_trained.clone();
            prune_order_and_sign(&mut whole, &data.mixture, &latents, false).unwrap();
            assert_eq!(whole.header.sources, 3);
        }
    }

    /// The fitted model carries its score baseline: on fresh frames of the same mixture
    /// about 1 % of them fall beyond each threshold.
    #[test]
    fn the_score_baseline_flags_about_one_frame_in_a_hundred() {
        let data = generate(&SynthConfig { frames: 22_000, ..SynthConfig::paper(MixKind::Linear, 4) }).unwrap();
        let config = SeparateConfig { max_train_frames: 2000, ..quick_config(3, vec![16]) };
        let model = fit(&data.mixture, &config, &mut |_| {}).unwrap().model;
        let baseline = model.header.score_baseline.expect("fit measures the baseline");
        assert_eq!(baseline.frames, 2000);
        assert!(baseline.log_prior_p01 < baseline.log_prior_median);
        assert!(baseline.reconstruction_error_p99 > baseline.reconstruction_error_median);
        let fresh = Recording::from_interleaved(8000, 3, data.mixture.interleaved()[2000 * 3..].to_vec()).unwrap();
        let frames = fresh.frames();
        let mut separator = unmix_infer::Separator::new(&model);
        let (mut mu, mut log_prior, mut error) = (vec![0.0; frames * 3], vec![0.0; frames], vec![0.0; frames]);
        separator.process_scored(fresh.interleaved(), &mut mu, &mut log_prior, &mut error).unwrap();
        let low = log_prior.iter().filter(|&&v| v < baseline.log_prior_p01).count() as f64 / frames as f64;
        let high = error.iter().filter(|&&v| v > baseline.reconstruction_error_p99).count() as f64 / frames as f64;
        assert!((0.002..0.03).contains(&low), "{low}");
        assert!((0.002..0.03).contains(&high), "{high}");
        assert!(matches!(score_baseline(&model, &fresh.head(0)), Err(Error::TooShort { frames: 0 })));
    }

    #[test]
    fn each_refusal_is_specific() {
        let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 1) }).unwrap();
        assert!(matches!(
            fit(&data.mixture, &quick_config(4, vec![]), &mut |_| {}),
            Err(Error::TooFewChannels { channels: 3, sources: 4 })
        ));
        let short = data.mixture.head(100);
        assert!(matches!(fit(&short, &quick_config(3, vec![]), &mut |_| {}), Err(Error::TooShort { frames: 100 })));
        let model = fit(&data.mixture, &quick_config(2, vec![]), &mut |_| {}).unwrap().model;
        let two = Recording::from_interleaved(8000, 2, vec![0.0; 20]).unwrap();
        assert!(matches!(apply(&model, &two), Err(Error::ChannelMismatch { expected: 3, got: 2 })));
    }

    /// A model aligned to a relabelled copy of itself undoes the relabelling exactly.
    #[test]
    fn alignment_restores_order_and_sign() {
        let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 5) }).unwrap();
        let model = fit(&data.mixture, &quick_config(3, vec![8]), &mut |_| {}).unwrap().model;
        let mut shuffled = model.clone();
        shuffled.relabel_sources(&[2, 0, 1], &[-1.0, 1.0, -1.0]).unwrap();
        let corr = align_to(&model, &mut shuffled, &data.mixture).unwrap();
        assert!(corr.iter().all(|&c| c > 0.999_999), "{corr:?}");
        let (a, b) = (apply(&model, &data.mixture).unwrap(), apply(&shuffled, &data.mixture).unwrap());
        for (x, y) in a.interleaved().iter().zip(b.interleaved()) {
            assert!((x - y).abs() <= 1e-6 * x.abs().max(1.0), "{x} vs {y}");
        }
    }

    /// A set cancel flag stops a fit with a `Cancelled` error instead of a model.
    #[test]
    fn a_cancelled_fit_says_so() {
        let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 2) }).unwrap();
        let mut config = quick_config(3, vec![8]);
        config.cancel = Some(Arc::new(AtomicBool::new(true)));
        let e = fit(&data.mixture, &config, &mut |_| {}).unwrap_err();
        assert!(matches!(e, Error::Cancelled), "{e}");
    }

    #[test]
    fn seeded_training_is_reproducible() {
        let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 3) }).unwrap();
        let mut config = quick_config(3, vec![8]);
        config.warm_start = true;
        config.restarts =
            ConsensusConfig { candidates: 3, rounds: 2, epochs_per_round: 1, ..ConsensusConfig::default() };
        let a = fit(&data.mixture, &config, &mut |_| {}).unwrap();
        let b = fit(&data.mixture, &config, &mut |_| {}).unwrap();
        assert_eq!(a.model.weights, b.model.weights);
        assert_eq!(a.vae.as_ref().unwrap().consensus, b.vae.as_ref().unwrap().consensus);
    }

    /// Candidates trained side by side end exactly as one after the other, the warm
    /// start's priors too, and every candidate epoch is still reported.
    #[test]
    fn the_result_does_not_depend_on_the_threads() {
        let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 3) }).unwrap();
        let mut config = quick_config(3, vec![8]);
        config.warm_start = true;
        config.training.max_epochs = 6;
        let run = |threads: usize| {
            let mut config = config.clone();
            config.restarts = ConsensusConfig {
                candidates: 3,
                rounds: 2,
                epochs_per_round: 2,
                threads,
                ..ConsensusConfig::default()
            };
            let mut candidate_epochs = vec![0usize; 3];
            let fitted = fit(&data.mixture, &config, &mut |event| {
                if let Progress::Vae(VaeProgress::Candidate { candidate, .. }) = event {
                    candidate_epochs[candidate] += 1;
                }
            })
            .unwrap();
            (fitted, candidate_epochs)
        };
        let (one, one_epochs) = run(1);
        let (three, three_epochs) = run(3);
        assert_eq!(one.model.weights, three.model.weights);
        let losses =
            |f: &Fitted| f.vae.as_ref().unwrap().history.epochs.iter().map(|e| (e.loss, e.kl)).collect::<Vec<_>>();
        assert_eq!(losses(&one), losses(&three));
        assert_eq!(one.vae.as_ref().unwrap().consensus.rounds, three.vae.as_ref().unwrap().consensus.rounds);
        assert_eq!(
            one.vae.as_ref().unwrap().consensus.candidate_traces,
            three.vae.as_ref().unwrap().consensus.candidate_traces
        );
        assert_eq!(one_epochs, vec![4; 3]);
        assert_eq!(three_epochs, one_epochs);
        assert_eq!(three.vae.as_ref().unwrap().consensus.config.worker_threads(), 3);
    }
}
