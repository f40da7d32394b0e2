//! A separation's settings: [`SeparateParams`] as a user gives them, checked once by
//! [`SeparateParams::check`] into the [`SeparateConfig`] that [`crate::fit`] takes, so that
//! no fit ever starts on settings that cannot work.

use serde::{Deserialize, Serialize};
use unmix_core::limits::{MAX_BUFFERED_SAMPLES, MAX_CHANNELS};
use unmix_format::MAX_AR_ORDER;
use unmix_infer::Kernel;
use unmix_likelihood::chain::{ChainConfig, ChainShape};
use unmix_likelihood::postnonlinear::PostNonlinearConfig;
use unmix_likelihood::residual::ResidualConfig;
use unmix_likelihood::temporal::TemporalConfig;
use unmix_model::consensus::ConsensusConfig;
use unmix_model::{Backend, TrainingRecipe, VaeLayout};

use crate::{Error, Result};

/// Fewest frames a training segment may have.
pub const MIN_TRAIN_FRAMES: usize = 256;

/// Default cap on the training segment: enough frames to fit the per-sample model well,
/// few enough that memory stays bounded and an epoch stays short whatever the input length.
pub const DEFAULT_MAX_TRAIN_FRAMES: usize = 131_072;

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

/// Which model a recording gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelChoice {
    /// The linear model with a GMM per source, or a nonlinear model where its held-out
    /// likelihood beats the linear model's by [`crate::CHAIN_MARGIN_NATS`] per frame (the
    /// lowest of those that do): the post-nonlinear model when there are as many sources
    /// as channels (then PDGMM's encoder on its curves where it beats them by the margin),
    /// the saturating chain when also every sample is inside full scale.
    Auto,
    /// PDGMM-VAE.
    Vae,
    /// The saturating chain (an error when it is not eligible).
    Chain,
    /// The linear model with a GMM per source, fitted by exact maximum likelihood.
    Linear,
    /// The post-nonlinear model: a learned monotone curve per channel, then the linear
    /// model (an error unless there are as many sources as channels); then PDGMM's encoder
    /// on its curves, kept where it beats them by the margin.
    #[serde(rename = "postnonlinear")]
    PostNonlinear,
}

impl ModelChoice {
    /// Its name on the command line (`--model`).
    pub fn name(self) -> &'static str {
        match self {
            ModelChoice::Auto => "auto",
            ModelChoice::Vae => "vae",
            ModelChoice::Chain => "chain",
            ModelChoice::Linear => "linear",
            ModelChoice::PostNonlinear => "postnonlinear",
        }
    }
}

/// Which prior every source of the linear model gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PriorChoice {
    /// The temporal prior where its held-out likelihood (of each frame given the frames
    /// before it) beats every model of independent samples by
    /// [`crate::CHAIN_MARGIN_NATS`] per frame, a GMM of independent samples otherwise.
    Auto,
    /// A GMM per source; the samples independent (the paper's prior).
    Gmm,
    /// Each source an autoregressive process whose innovations have a GMM: the linear
    /// model with the temporal prior ([`unmix_likelihood::temporal`]).
    ArGmm,
}

/// The settings of a separation as a user gives them, not yet checked.
/// [`SeparateParams::new`] gives `unmix separate`'s defaults; change what you need, then
/// [`check`](SeparateParams::check) them into a [`SeparateConfig`].
#[derive(Debug, Clone)]
pub struct SeparateParams {
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
    /// The PDGMM-VAE's architecture; its sizes come from the recording.
    pub layout: VaeLayout,
    /// How the PDGMM-VAE is trained.
    pub recipe: TrainingRecipe,
    /// On a GPU, train with the batch and learning rate of
    /// [`TrainingRecipe::for_gpu`] for the segment instead of `recipe`'s (for a recipe
    /// whose batch and rate nobody chose).
    pub recipe_for_gpu: bool,
    /// burn backend of the training.
    pub backend: Backend,
    /// Which model to train, or how to choose it.
    pub model: ModelChoice,
    /// Settings of the saturating-chain fit (and of the linear model it is weighed
    /// against: the same but for [`ChainConfig::shape`], its starts and its steps).
    pub chain: ChainConfig,
    /// Settings of the post-nonlinear model's fit.
    pub post_nonlinear: PostNonlinearConfig,
    /// Settings of PDGMM's encoder on the post-nonlinear model's curves (its held-out
    /// frames are the curves': [`PostNonlinearConfig::validation_every`] overrides its own).
    pub encoder: ResidualConfig,
    /// Which prior the linear model's sources get, or how to choose it.
    pub prior: PriorChoice,
    /// Settings of the temporal prior's fit ([`SeparateParams::default_temporal`]).
    pub temporal: TemporalConfig,
    /// The encoder kernel that computes every source of the fit (the order, signs, gains
    /// and score baseline are measured with it).
    pub kernel: Kernel,
    /// Give a linear model's sources as their posterior means given the sensor noise it
    /// finds in the channels beyond the sources ([`crate::denoise::output_noise`]), rather
    /// than its outputs as they are.
    pub denoise: bool,
}

impl SeparateParams {
    /// The defaults of `unmix separate` for `sources`: the model chosen automatically
    /// ([`ModelChoice::Auto`]), whitening, warm start, consensus restarts, the default
    /// architecture and recipe, the default compiled backend, the fastest kernel.
    pub fn new(sources: SourceCount) -> Self {
        Self {
            sources,
            max_train_frames: DEFAULT_MAX_TRAIN_FRAMES,
            whiten: true,
            warm_start: true,
            restarts: ConsensusConfig::default(),
            layout: VaeLayout::new(),
            recipe: TrainingRecipe::new(),
            recipe_for_gpu: true,
            // A build without a backend is told so by `check`.
            backend: Backend::default_compiled().unwrap_or(Backend::Flex),
            model: ModelChoice::Auto,
            chain: ChainConfig::new(ChainShape::Saturating),
            post_nonlinear: PostNonlinearConfig::default(),
            encoder: ResidualConfig::default(),
            prior: PriorChoice::Auto,
            temporal: Self::default_temporal(),
            kernel: Kernel::best(),
            denoise: true,
        }
    }

    /// The temporal prior's settings of `unmix separate`: AR(8), 4 innovation components,
    /// at most 150 iterations (the held-out NLL of the building benchmark moves by 0.004
    /// nats per frame from 150 to 500), the unmixing the better start's, not refitted
    /// ([`TemporalConfig::fit_unmixing`]).
    pub fn default_temporal() -> TemporalConfig {
        TemporalConfig { fit_unmixing: false, max_iterations: 150, ..TemporalConfig::default() }
    }

    /// Checks every setting once; only the [`SeparateConfig`] it returns can fit.
    ///
    /// Refused: a warm start without whitening; an invalid architecture, recipe,
    /// restart or chain setting; a backend not compiled into this build; a kernel this
    /// processor does not run. What depends on the recording (enough channels and frames
    /// for the sources) is checked by the fit.
    pub fn check(self) -> Result<SeparateConfig> {
        match self.sources {
            SourceCount::Fixed(n) if !(1..=MAX_CHANNELS).contains(&n) => {
                return Err(Error::Config(format!("{n} sources: a separation gives 1 to {MAX_CHANNELS}")));
            }
            SourceCount::Auto { max: Some(0) } => {
                return Err(Error::Config("a maximum of 0 sources leaves nothing to separate".into()));
            }
            _ => {}
        }
        if self.max_train_frames == 0 {
            return Err(Error::Config("a training segment of 0 frames leaves nothing to train on".into()));
        }
        if self.warm_start && !self.whiten {
            return Err(Error::Config(
                "the warm start needs whitening (drop --no-whiten or use --no-warm-start)".into(),
            ));
        }
        self.layout.check()?;
        self.recipe.check()?;
        self.restarts.check()?;
        self.chain.check()?;
        self.post_nonlinear.check()?;
        self.encoder.check()?;
        if self.prior == PriorChoice::ArGmm && !matches!(self.model, ModelChoice::Auto | ModelChoice::Linear) {
            return Err(Error::Config(format!(
                "the temporal prior (ar-gmm) is the linear model's: --model {} has none (use --model auto or linear)",
                self.model.name()
            )));
        }
        if self.temporal.order > MAX_AR_ORDER {
            return Err(Error::Config(format!(
                "an autoregressive order of {}: at most {MAX_AR_ORDER}",
                self.temporal.order
            )));
        }
        self.backend.device()?;
        if !self.kernel.is_available() {
            return Err(unmix_infer::Error::KernelUnavailable(self.kernel.name()).into());
        }
        Ok(SeparateConfig(self))
    }
}

/// Settings that passed [`SeparateParams::check`]: the only settings [`crate::fit`] takes.
#[derive(Debug, Clone)]
pub struct SeparateConfig(SeparateParams);

impl SeparateConfig {
    /// `unmix separate`'s defaults for `sources`, checked.
    pub fn defaults(sources: SourceCount) -> Result<Self> {
        SeparateParams::new(sources).check()
    }

    /// The settings.
    pub fn params(&self) -> &SeparateParams {
        &self.0
    }

    /// The frames of the training segment of a recording of `channels` channels, or why
    /// such a recording cannot be separated whatever its length: more than
    /// [`MAX_CHANNELS`] channels, or a segment above [`MAX_BUFFERED_SAMPLES`] samples.
    /// What a reader checks once it knows the channels, before it reads the segment.
    pub fn training_frames(&self, channels: usize) -> Result<usize> {
        if channels > MAX_CHANNELS {
            return Err(Error::TooManyChannels { channels });
        }
        let frames = self.0.max_train_frames;
        if frames.saturating_mul(channels) > MAX_BUFFERED_SAMPLES {
            return Err(Error::SegmentTooLarge { frames, channels });
        }
        Ok(frames)
    }

    /// The settings, to change and check again.
    pub fn into_params(self) -> SeparateParams {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> SeparateParams {
        SeparateParams::new(SourceCount::Fixed(3))
    }

    fn refused(params: SeparateParams) -> String {
        params.check().expect_err("refused").to_string()
    }

    #[test]
    fn the_defaults_are_valid() {
        let config = defaults().check().unwrap();
        assert_eq!(config.params().model, ModelChoice::Auto);
        assert_eq!(config.clone().into_params().kernel, Kernel::best());
    }

    #[test]
    fn a_warm_start_needs_whitening() {
        let e = refused(SeparateParams { whiten: false, ..defaults() });
        assert!(e.contains("the warm start needs whitening"), "{e}");
        SeparateParams { whiten: false, warm_start: false, ..defaults() }.check().unwrap();
    }

    #[test]
    fn the_architecture_is_checked() {
        let e = refused(SeparateParams { layout: VaeLayout::new().with_components(0), ..defaults() });
        assert!(e.contains("1 to 64 components, not 0"), "{e}");
    }

    #[test]
    fn the_recipe_is_checked() {
        let e = refused(SeparateParams { recipe: TrainingRecipe::new().with_learning_rate(-1.0), ..defaults() });
        assert!(e.contains("learning rate must be positive"), "{e}");
    }

    #[test]
    fn the_restarts_are_checked() {
        let e =
            refused(SeparateParams { restarts: ConsensusConfig { candidates: 0, ..Default::default() }, ..defaults() });
        assert!(e.contains("1 to 64 candidates, not 0"), "{e}");
    }

    #[test]
    fn the_chain_settings_are_checked() {
        let e = refused(SeparateParams { chain: ChainConfig { starts: 0, ..defaults().chain }, ..defaults() });
        assert!(e.contains("at least one start"), "{e}");
    }

    #[test]
    fn the_temporal_prior_is_the_linear_models() {
        for model in [ModelChoice::Vae, ModelChoice::Chain, ModelChoice::PostNonlinear] {
            let e = refused(SeparateParams { prior: PriorChoice::ArGmm, model, ..defaults() });
            assert!(e.contains(&format!("--model {} has none", model.name())), "{e}");
        }
        for model in [ModelChoice::Auto, ModelChoice::Linear] {
            SeparateParams { prior: PriorChoice::ArGmm, model, ..defaults() }.check().unwrap();
        }
        let mut params = SeparateParams { prior: PriorChoice::ArGmm, ..defaults() };
        params.temporal.order = 65;
        assert!(refused(params).contains("at most 64"));
    }

    #[test]
    fn the_source_count_and_segment_are_checked() {
        let e = refused(SeparateParams { sources: SourceCount::Auto { max: Some(0) }, ..defaults() });
        assert!(e.contains("a maximum of 0 sources"), "{e}");
        let e = refused(SeparateParams { sources: SourceCount::Fixed(1000), ..defaults() });
        assert!(e.contains("1000 sources: a separation gives 1 to 256"), "{e}");
        let e = refused(SeparateParams { max_train_frames: 0, ..defaults() });
        assert!(e.contains("0 frames"), "{e}");
    }

    #[test]
    fn a_recording_too_wide_or_a_segment_too_long_is_refused_before_reading() {
        let config = defaults().check().unwrap();
        assert_eq!(config.training_frames(256).unwrap(), DEFAULT_MAX_TRAIN_FRAMES);
        let e = config.training_frames(1000).unwrap_err().to_string();
        assert!(e.contains("1000 channels"), "{e}");
        let long = SeparateParams { max_train_frames: 100_000_000, ..defaults() }.check().unwrap();
        let e = long.training_frames(3).unwrap_err().to_string();
        assert!(e.contains("100000000 frames of 3 channels"), "{e}");
    }

    #[test]
    fn the_backend_is_compiled_in() {
        for backend in [Backend::Flex, Backend::Ndarray] {
            match (SeparateParams { backend, ..defaults() }).check() {
                Ok(_) => assert!(backend.device().is_ok()),
                Err(e) => assert!(e.to_string().contains("not compiled into this build"), "{e}"),
            }
        }
    }

    #[test]
    fn the_kernel_runs_on_this_processor() {
        for kernel in Kernel::ALL.iter().copied() {
            let checked = SeparateParams { kernel, ..defaults() }.check();
            assert_eq!(checked.is_ok(), kernel.is_available(), "{}", kernel.name());
        }
    }
}
