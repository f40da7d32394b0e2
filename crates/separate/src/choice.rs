//! Which model a recording gets: the linear model with a GMM per source or with the
//! temporal prior, the saturating chain, the post-nonlinear model (alone, or with PDGMM's
//! encoder on its curves), or PDGMM-VAE. All but the last are weighed by one criterion, the
//! exact likelihood of held-out frames ([`ModelChoice`], [`PriorChoice`]): of each frame
//! given the frames before it, which for a model of independent samples is the frame's own
//! density.

use serde::{Deserialize, Serialize};
use unmix_core::{CancelToken, Recording};
use unmix_dsp::{Normaliser, NormaliserConfig};
use unmix_likelihood::chain::{self, ChainConfig, ChainFit, ChainShape, StartReport};
use unmix_likelihood::linear::{LinearConfig, LinearFit, Mixture, fit_linear};
use unmix_likelihood::postnonlinear::{self, PostNonlinearConfig, PostNonlinearFit};
use unmix_likelihood::residual::{ResidualConfig, ResidualFit, fit_residual_watched};
use unmix_likelihood::temporal::{HELD_OUT_BLOCK, TemporalConfig, TemporalFit, fit_temporal_from, held_out_blocks};

use crate::config::{ModelChoice, PriorChoice, SeparateParams};
use crate::{Error, Progress, Result};

/// The kinds of model a recording can get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// PDGMM-VAE.
    PdgmmVae,
    /// The saturating chain, fitted by exact maximum likelihood.
    SaturatingChain,
    /// The linear model with a GMM per source, fitted by exact maximum likelihood.
    Linear,
    /// A learned monotone curve per channel, then the linear model, fitted by exact
    /// maximum likelihood.
    PostNonlinear,
    /// The linear model with the temporal prior (an autoregressive process with GMM
    /// innovations per source), fitted by exact maximum likelihood.
    LinearArGmm,
    /// PDGMM-VAE's encoder with one hidden tanh layer beside its linear path, in its
    /// noiseless limit, on the post-nonlinear model's curves: started at that model and
    /// fitted by exact maximum likelihood (`unmix_likelihood::residual`).
    PdgmmEncoder,
}

impl ModelKind {
    /// Its name in reports: `pdgmm-vae`, `saturating-chain`, `linear`, `post-nonlinear`,
    /// `linear-ar-gmm`, `pdgmm-encoder`.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::PdgmmVae => "pdgmm-vae",
            ModelKind::SaturatingChain => "saturating-chain",
            ModelKind::Linear => "linear",
            ModelKind::PostNonlinear => "post-nonlinear",
            ModelKind::LinearArGmm => "linear-ar-gmm",
            ModelKind::PdgmmEncoder => "pdgmm-encoder",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How much better (nats per held-out frame) a nonlinear model's likelihood must be than
/// the linear model's for [`ModelChoice::Auto`] to choose it: well above what the extra
/// parameters gain on a linear mixture (the saturating chain loses there, the
/// post-nonlinear model's curves gain less than 0.01, `docs/model.md`), well below what
/// they gain where they belong (the chain 2.4–3.0 nats per frame on the nonlinear
/// benchmark, the curves 0.3–0.9 on post-nonlinear mixtures).
pub const CHAIN_MARGIN_NATS: f64 = 0.05;

/// Frames the saturating chain and the post-nonlinear model are fitted on at most when
/// `auto` weighs them, strided evenly over the training segment (`--model chain` fits the
/// whole segment, `--model postnonlinear` this many too: its curves are fitted from
/// 16 segments' worth of frames each, which 13 000 training frames give amply). Its eight starts of
/// full-batch descent take time in proportion to the frames — 2 talkers into 2 channels,
/// 96 000 frames, spent 8 s in the chain's screening before the linear model was kept;
/// 1.5 s with this cap — and it separates its benchmark at 0.98 from 10 000 frames: on
/// 60 000 frames of it the cap gives 0.9811 mean |corr| in 8.9 s, the whole segment
/// 0.9886 in 50 s. The frames are i.i.d. to it, so a strided subset stands for the whole.
pub const CHAIN_MAX_FRAMES: usize = 16_384;

/// Blocks of [`HELD_OUT_BLOCK`] frames the temporal prior is weighed on at most by
/// `auto`, evenly spaced over the training segment (every one of them with `--prior
/// ar-gmm`): its iterations cost in proportion to the frames, and on 24 000 (20 000 of
/// them trained on) it added 0.8 s to the 6 s speech mixtures and 1.6 s to the 10-minute
/// building, whose held-out NLL moves by 0.001 nats per frame with 96 000. Its frames
/// depend on their past, so the subset is whole blocks, not strided frames.
pub const TEMPORAL_MAX_BLOCKS: usize = 24;

/// At most `max_frames` frames of `recording`, evenly strided from its first.
pub(crate) fn strided(recording: &Recording, max_frames: usize) -> Result<Recording> {
    let m = recording.channels();
    let stride = recording.frames().div_ceil(max_frames.max(1)).max(1);
    if stride == 1 {
        return Ok(recording.clone());
    }
    let frames: Vec<f32> = recording.interleaved().chunks_exact(m).step_by(stride).flatten().copied().collect();
    Ok(Recording::from_interleaved(recording.sample_rate_hz(), m, frames)?)
}

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
    /// The linear model's NLL on the chain's held-out frames (nats per frame), what the
    /// chain was weighed against: the chain's frames are a strided subset of a long
    /// segment ([`CHAIN_MAX_FRAMES`]).
    #[serde(default)]
    pub linear_nll: Option<f64>,
}

impl ChainSummary {
    pub(crate) fn of(fit: &ChainFit, config: &ChainConfig, frames: usize, linear_nll: Option<f64>) -> Self {
        let held_out = frames.checked_div(config.validation_every).unwrap_or(0);
        Self {
            shape: fit.shape,
            frames: frames - held_out,
            steps: fit.steps,
            train_nll: fit.train_nll,
            validation_nll: fit.validation_nll,
            chosen: fit.chosen,
            starts: fit.starts.clone(),
            linear_nll,
        }
    }

    /// The chosen start's relative NLL change over its last tenth of steps.
    pub fn last_change(&self) -> Option<f64> {
        self.starts.get(self.chosen).and_then(|s| s.last_change)
    }
}

/// The linear model's fit, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearSummary {
    /// Frames it was fitted on (the held-out ones not counted).
    pub frames: usize,
    /// Iterations run (an EM and a quasi-Newton step each).
    pub iterations: usize,
    /// Whether it met its tolerance.
    pub converged: bool,
    /// Mean NLL per training frame (nats, the density of the samples as read: see
    /// [`unmix_dsp::Normaliser::nll_offset_nats`]).
    pub train_nll: f64,
    /// The same on held-out frames.
    pub validation_nll: f64,
    /// Once chosen, the fit is continued on every frame of the segment, held-out ones
    /// included: how many frames, and how many more iterations it took.
    #[serde(default)]
    pub refit: Option<LinearRefit>,
}

/// The chosen linear model's continuation on every frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearRefit {
    /// Frames (the whole training segment).
    pub frames: usize,
    /// Iterations it took.
    pub iterations: usize,
    /// Whether it met its tolerance.
    pub converged: bool,
}

/// The post-nonlinear model's fit, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostNonlinearSummary {
    /// Frames it was fitted on (the held-out ones not counted).
    pub frames: usize,
    /// Mean NLL per training frame of the chosen start (nats, the density of the samples
    /// as read).
    pub train_nll: f64,
    /// The same on held-out frames: what starts and models are chosen by.
    pub validation_nll: f64,
    /// The chosen start (from 0).
    pub chosen: usize,
    /// Every start, its NLLs as the density of the samples as read.
    pub starts: Vec<postnonlinear::StartReport>,
    /// Whether every start stopped at the screening, not ahead of the linear model by the
    /// margin: the figures are then of the best screened start.
    pub screened_out: bool,
    /// The linear model's NLL on the same held-out frames.
    pub linear_nll: Option<f64>,
    /// The same model's with every curve straight (its densities and optimiser, no
    /// curves), fitted first: the curves are weighed against the lower of this and
    /// [`PostNonlinearSummary::linear_nll`], so that what richer densities gain is not
    /// taken for a gain of the curves.
    #[serde(default)]
    pub straight_nll: Option<f64>,
    /// Iterations of the straight fit.
    #[serde(default)]
    pub straight_iterations: usize,
}

/// The model PDGMM's encoder is started at: the one the choice preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EncoderStart {
    /// The post-nonlinear model: the encoder reads the frames through its curves.
    Curves,
    /// The linear model: the encoder reads its whitened frames.
    Linear,
}

impl EncoderStart {
    /// What the reports call it.
    pub fn name(self) -> &'static str {
        match self {
            EncoderStart::Curves => "the curves",
            EncoderStart::Linear => "the linear model",
        }
    }

    /// Its name, possessive.
    pub fn possessive(self) -> &'static str {
        match self {
            EncoderStart::Curves => "the curves'",
            EncoderStart::Linear => "the linear model's",
        }
    }
}

/// PDGMM's encoder started at the model the choice preferred, as reported: its held-out
/// NLL starts at that model's and what it gains is over it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderSummary {
    /// The model it started at (files before it was recorded started at the curves).
    #[serde(default = "curves_start")]
    pub start: EncoderStart,
    /// Hidden tanh units beside the linear path.
    pub hidden: usize,
    /// Frames it was fitted on (the held-out ones not counted): the curves' frames, or the
    /// same subset of the segment for the linear model.
    pub frames: usize,
    /// L-BFGS iterations run.
    pub iterations: usize,
    /// The iteration whose point was kept (0: the model it started at).
    pub kept_iteration: usize,
    /// Mean NLL per held-out frame (nats, the density of the samples as read).
    pub validation_nll: f64,
    /// The NLL of the model it started at on the same frames: what it is weighed against.
    #[serde(alias = "curves_nll")]
    pub start_nll: f64,
}

fn curves_start() -> EncoderStart {
    EncoderStart::Curves
}

/// The temporal prior's fit, as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemporalSummary {
    /// Its settings.
    pub config: TemporalConfig,
    /// Frames it was fitted on (the held-out blocks not counted), in blocks of
    /// [`HELD_OUT_BLOCK`] evenly spaced over the segment.
    pub frames: usize,
    /// L-BFGS iterations.
    pub iterations: usize,
    /// Mean NLL per training frame given the `order` frames before it (nats, the density
    /// of the samples as read).
    pub train_nll: f64,
    /// The same on the held-out blocks: what it is weighed by.
    pub validation_nll: f64,
    /// The linear model's NLL on the same held-out frames, what it was weighed against.
    pub linear_nll: f64,
}

/// Which model was trained, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSelection {
    /// What was asked for.
    pub asked: ModelChoice,
    /// The model trained.
    pub chosen: ModelKind,
    /// Why, in words.
    pub reason: String,
    /// The linear model's fit, when it was fitted.
    pub linear: Option<LinearSummary>,
    /// The saturating chain's fit, when it was tried.
    pub chain: Option<ChainSummary>,
    /// The post-nonlinear model's fit, when it was tried.
    #[serde(default)]
    pub post_nonlinear: Option<PostNonlinearSummary>,
    /// PDGMM-VAE's held-out NLL, its encoder read as a change of variables, when it was
    /// trained.
    #[serde(default)]
    pub vae: Option<VaeScore>,
    /// The temporal prior's fit, when it was weighed or asked for.
    #[serde(default)]
    pub temporal: Option<TemporalSummary>,
    /// PDGMM's encoder, when it was weighed: on the curves after the post-nonlinear model
    /// won (or was asked for), on the linear model after it won with as many sources as
    /// channels.
    #[serde(default)]
    pub encoder: Option<EncoderSummary>,
}

/// PDGMM-VAE judged by the criterion of the other models: its encoder read as a change of
/// variables ([`unmix_likelihood::encoder`]) on the same held-out frames (which, unlike the
/// others, it trained on: its restarts hold out frames of their own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VaeScore {
    /// Mean NLL per frame (nats, the density of the samples as read), where the encoder is
    /// a change of variables of the frames.
    pub validation_nll: Option<f64>,
    /// Why it has none, otherwise.
    pub unscored: Option<String>,
}

/// The linear model fitted in the choice, with the whitening its frames went through.
#[derive(Debug)]
pub(crate) struct LinearCandidate {
    pub(crate) fit: LinearFit,
    pub(crate) normaliser: Normaliser,
    config: LinearConfig,
    /// Its continuation on every frame, once run.
    refit: Option<LinearRefit>,
    /// PDGMM's encoder started at it, when it beat it by the margin.
    pub(crate) encoder: Option<ResidualFit>,
}

impl LinearCandidate {
    /// Fits the linear model to `segment` whitened to `n` dimensions.
    fn fit(segment: &Recording, n: usize, config: &SeparateParams, cancel: &CancelToken) -> Result<Self> {
        let normaliser = Normaliser::fit(segment, NormaliserConfig { whiten_to: Some(n) })?;
        let whitened = normaliser.transform(segment)?;
        let linear_config = LinearConfig {
            components: config.chain.components,
            validation_every: config.chain.validation_every,
            seed: config.chain.seed,
            ..LinearConfig::default()
        };
        let fit = fit_linear(&whitened, n, &linear_config, Some(cancel))?;
        Ok(Self { fit, normaliser, config: linear_config, refit: None, encoder: None })
    }

    /// The chosen model continued on every frame of `segment`, the held-out ones included
    /// ([`LinearFit::refit_on_every_frame`]).
    pub(crate) fn refit_on_every_frame(self, segment: &Recording, cancel: &CancelToken) -> Result<(Self, LinearRefit)> {
        if let Some(refit) = self.refit.clone() {
            return Ok((self, refit));
        }
        let whitened = self.normaliser.transform(segment)?;
        let fit = self.fit.refit_on_every_frame(&whitened, &self.config, Some(cancel))?;
        let refit = LinearRefit {
            frames: segment.frames(),
            iterations: fit.iterations - self.fit.iterations,
            converged: fit.converged,
        };
        Ok((Self { fit, refit: Some(refit.clone()), ..self }, refit))
    }

    /// Mean NLL per frame of `frames` (nats, the density of the samples as read).
    fn nll_of(&self, frames: &Recording) -> Result<f64> {
        Ok(self.fit.nll(&self.normaliser.transform(frames)?) + self.normaliser.nll_offset_nats())
    }

    /// Fits PDGMM's encoder started at this model on `subset` whitened as its frames
    /// (holding out the frames the curves hold out there), and keeps it when it beats this
    /// model on them by [`CHAIN_MARGIN_NATS`], as [`PostNonlinearCandidate::weigh_encoder`]
    /// does on the curves.
    fn weigh_encoder(
        &mut self,
        subset: &Recording,
        config: &SeparateParams,
        cancel: &CancelToken,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(EncoderSummary, String)> {
        let whitened = self.normaliser.transform(subset)?;
        let offset = self.normaliser.nll_offset_nats();
        let start = EncoderStart::Linear;
        let (encoder, summary, verdict) = weigh_encoder(
            start,
            &whitened,
            (&self.fit.unmixing, &self.fit.priors),
            |_| offset,
            subset.frames(),
            config,
            cancel,
            progress,
        )?;
        self.encoder = encoder;
        Ok((summary, verdict))
    }

    fn summary(&self, frames: usize, validation_every: usize) -> LinearSummary {
        let offset = self.normaliser.nll_offset_nats();
        LinearSummary {
            frames: frames - frames.checked_div(validation_every).unwrap_or(0),
            iterations: self.fit.iterations,
            converged: self.fit.converged,
            train_nll: self.fit.train_nll + offset,
            validation_nll: self.fit.validation_nll + offset,
            refit: None,
        }
    }
}

/// Every `every`-th frame of `segment` (the held-out frames of the likelihood fits).
pub(crate) fn held_out_frames(segment: &Recording, every: usize) -> Result<Option<Recording>> {
    let m = segment.channels();
    if every == 0 || segment.frames() < every {
        return Ok(None);
    }
    let frames: Vec<f32> =
        segment.interleaved().chunks_exact(m).skip(every - 1).step_by(every).flatten().copied().collect();
    Ok(Some(Recording::from_interleaved(segment.sample_rate_hz(), m, frames)?))
}

/// The post-nonlinear model fitted in the choice, with the standardisation its frames went
/// through.
#[derive(Debug)]
pub(crate) struct PostNonlinearCandidate {
    pub(crate) fit: PostNonlinearFit,
    pub(crate) normaliser: Normaliser,
    /// PDGMM's encoder on the curves, when it beat them by the margin.
    pub(crate) encoder: Option<ResidualFit>,
}

/// PDGMM's encoder's settings on the curves: `config.encoder`, holding out the curves'
/// held-out frames.
pub(crate) fn encoder_config(config: &SeparateParams) -> ResidualConfig {
    ResidualConfig { validation_every: config.post_nonlinear.validation_every, ..config.encoder.clone() }
}

/// Fits PDGMM's encoder on `frames` (what the model it starts at reads, interleaved)
/// started at that model, `s = unmixing · frame` with `priors`, and weighs it against it:
/// its summary (its NLLs plus `offset` of the fit, the density of the samples as read),
/// the verdict, and the fit when it beats the model by
/// [`CHAIN_MARGIN_NATS`] — the margin every candidate has. `subset_frames`: the frames it
/// was fitted on, held-out ones included.
#[allow(clippy::too_many_arguments)]
fn weigh_encoder(
    start: EncoderStart,
    frames: &[f32],
    (unmixing, priors): (&[f64], &[Mixture]),
    offset: impl FnOnce(&ResidualFit) -> f64,
    subset_frames: usize,
    config: &SeparateParams,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(Option<ResidualFit>, EncoderSummary, String)> {
    let residual = encoder_config(config);
    let mut report = |done, total| progress(Progress::Encoder { done, total });
    let encoder = fit_residual_watched(frames, unmixing, priors, &residual, Some(cancel), &mut report)?;
    let offset = offset(&encoder);
    let gain = encoder.start_nll - encoder.validation_nll;
    let summary = EncoderSummary {
        start,
        hidden: encoder.hidden,
        frames: subset_frames - subset_frames.checked_div(residual.validation_every).unwrap_or(0),
        iterations: encoder.iterations,
        kept_iteration: encoder.kept_iteration,
        validation_nll: encoder.validation_nll + offset,
        start_nll: encoder.start_nll + offset,
    };
    let kept = gain > CHAIN_MARGIN_NATS;
    let above = if kept { ">" } else { "not >" };
    let them = if start == EncoderStart::Curves { "them" } else { "it" };
    let verdict = format!(
        "PDGMM's encoder on {} is {gain:.3} nats per frame above {them} ({above} {CHAIN_MARGIN_NATS})",
        start.name()
    );
    Ok((kept.then_some(encoder), summary, verdict))
}

impl PostNonlinearCandidate {
    /// Fits the model to `subset` standardised by `normaliser` (fitted on the whole
    /// segment), against `rival` (nats per frame of the samples as read) when given.
    fn fit(
        subset: &Recording,
        normaliser: Normaliser,
        config: &SeparateParams,
        rival: Option<f64>,
        cancel: &CancelToken,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<Self> {
        let standardised = normaliser.transform(subset)?;
        let offset = normaliser.nll_offset_nats();
        let mut report = |done, total| progress(Progress::PostNonlinear { done, total });
        let curves = PostNonlinearConfig { margin: CHAIN_MARGIN_NATS, ..config.post_nonlinear.clone() };
        let fit = postnonlinear::fit_watched(
            &standardised,
            subset.channels(),
            &curves,
            rival.map(|r| r - offset),
            Some(cancel),
            &mut report,
        )?;
        Ok(Self { fit, normaliser, encoder: None })
    }

    /// Fits PDGMM's encoder on this model's curves of `subset` (the frames the curves were
    /// fitted on, holding out the same ones), started at this model, and keeps it when it
    /// beats the curves on the held-out frames by [`CHAIN_MARGIN_NATS`]: the margin every
    /// candidate has. A hidden layer this flexible can also buy likelihood with a worse
    /// separation (`docs/results.md`); started at the curves, it gained more than the
    /// margin on one post-nonlinear file of ten, which it separated better.
    fn weigh_encoder(
        &mut self,
        subset: &Recording,
        config: &SeparateParams,
        cancel: &CancelToken,
        progress: &mut dyn FnMut(Progress<'_>),
    ) -> Result<(EncoderSummary, String)> {
        let curved = self.fit.curved(&self.normaliser.transform(subset)?);
        // Its NLL is of the curved frames: its gain over its start is its gain over the
        // curves, whose NLL (of the standardised frames) includes their log-slope.
        let curves_nll = self.fit.validation_nll + self.normaliser.nll_offset_nats();
        let offset = |encoder: &ResidualFit| curves_nll - encoder.start_nll;
        let start = EncoderStart::Curves;
        let (encoder, summary, verdict) = weigh_encoder(
            start,
            &curved,
            (&self.fit.unmixing, &self.fit.priors),
            offset,
            subset.frames(),
            config,
            cancel,
            progress,
        )?;
        self.encoder = encoder;
        Ok((summary, verdict))
    }

    fn summary(&self, frames: usize, linear_nll: Option<f64>, every: usize) -> PostNonlinearSummary {
        let offset = self.normaliser.nll_offset_nats();
        let shift = |v: Option<f64>| v.map(|v| v + offset);
        PostNonlinearSummary {
            frames: frames - frames.checked_div(every).unwrap_or(0),
            train_nll: self.fit.train_nll + offset,
            validation_nll: self.fit.validation_nll + offset,
            chosen: self.fit.chosen_start,
            starts: self
                .fit
                .starts
                .iter()
                .map(|s| postnonlinear::StartReport {
                    train_nll: shift(s.train_nll),
                    validation_nll: shift(s.validation_nll),
                    screening_nll: shift(s.screening_nll),
                    ..s.clone()
                })
                .collect(),
            screened_out: self.fit.screened_out,
            linear_nll,
            straight_nll: shift(self.fit.straight_validation_nll),
            straight_iterations: self.fit.straight_iterations,
        }
    }
}

/// The linear model with the temporal prior, fitted in the choice on blocks of the
/// segment whitened as the linear model's.
#[derive(Debug)]
pub(crate) struct TemporalCandidate {
    pub(crate) fit: TemporalFit,
    pub(crate) normaliser: Normaliser,
    /// The whitened frames it was fitted to (its export's unit variances and marginals).
    pub(crate) whitened: Vec<f32>,
    pub(crate) summary: TemporalSummary,
}

impl TemporalCandidate {
    /// Fits the temporal prior on at most `max_blocks` blocks of `segment`, from SOBI's
    /// rotation and from the linear model's unmixing, and weighs it against the linear
    /// model on its held-out blocks; `None` when the segment has too few blocks.
    fn fit(
        segment: &Recording,
        linear: &LinearCandidate,
        config: &SeparateParams,
        max_blocks: usize,
        cancel: &CancelToken,
    ) -> Result<Option<Self>> {
        let n = linear.fit.sources;
        let temporal = config.temporal.clone();
        let blocks = segment.frames() / HELD_OUT_BLOCK;
        if blocks < temporal.validation_every {
            return Ok(None);
        }
        let whitened = linear.normaliser.transform(segment)?;
        let picked = blocks.min(max_blocks.max(temporal.validation_every));
        let width = HELD_OUT_BLOCK * n;
        let whitened: Vec<f32> =
            (0..picked).flat_map(|i| &whitened[i * blocks / picked * width..][..width]).copied().collect();
        let fit = fit_temporal_from(&whitened, n, &temporal, std::slice::from_ref(&linear.fit.unmixing), Some(cancel))?;
        let held_out: Vec<f32> = held_out_blocks(whitened.len() / n, temporal.validation_every)
            .into_iter()
            .flat_map(|r| &whitened[(r.start + temporal.order).min(r.end) * n..r.end * n])
            .copied()
            .collect();
        let offset = linear.normaliser.nll_offset_nats();
        let held = held_out_blocks(picked * HELD_OUT_BLOCK, temporal.validation_every).len();
        let summary = TemporalSummary {
            frames: (picked - held) * HELD_OUT_BLOCK,
            iterations: fit.iterations,
            train_nll: fit.train_nll + offset,
            validation_nll: fit.validation_nll + offset,
            linear_nll: linear.fit.nll(&held_out) + offset,
            config: temporal,
        };
        Ok(Some(Self { fit, normaliser: linear.normaliser.clone(), whitened, summary }))
    }
}

/// The model the choice settled on, fitted already unless it is PDGMM-VAE.
#[derive(Debug)]
pub(crate) enum Chosen {
    Vae,
    Chain(Box<ChainFit>),
    Linear(Box<LinearCandidate>),
    PostNonlinear(Box<PostNonlinearCandidate>),
    LinearArGmm(Box<TemporalCandidate>),
}

/// Decides between the linear model, the saturating chain and PDGMM-VAE ([`ModelChoice`]),
/// and gives the fit of the one chosen when it is not the VAE.
pub(crate) fn select_model(
    segment: &Recording,
    n: usize,
    config: &SeparateParams,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(ModelSelection, Chosen)> {
    let m = segment.channels();
    let frames = segment.frames();
    let selection = |chosen, reason: String, linear, chain| ModelSelection {
        asked: config.model,
        chosen,
        reason,
        linear,
        chain,
        post_nonlinear: None,
        vae: None,
        temporal: None,
        encoder: None,
    };
    if config.model == ModelChoice::Vae {
        // The linear model too (well under a second against the VAE's training), so that
        // the report weighs the two; where it cannot be fitted the VAE still is.
        let linear = LinearCandidate::fit(segment, n, config, cancel)
            .ok()
            .map(|l| l.summary(segment.frames(), config.chain.validation_every));
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        return Ok((selection(ModelKind::PdgmmVae, "asked for (--model vae)".into(), linear, None), Chosen::Vae));
    }
    let chain_config = ChainConfig { shape: ChainShape::Saturating, ..config.chain.clone() };
    // `--model chain` gets the chain at its best, on the whole segment; `auto` weighs it on
    // a subset, so that a recording it does not fit costs little.
    let chain_frames = if config.model == ModelChoice::Chain { frames } else { CHAIN_MAX_FRAMES };
    let chain_segment = strided(segment, chain_frames)?;
    let fit_chain = |rival: Option<f64>, progress: &mut dyn FnMut(Progress<'_>)| {
        let shape = chain_config.shape;
        let mut report = |done, total| progress(Progress::Chain { shape, done, total });
        chain::fit_watched(chain_segment.interleaved(), m, &chain_config, rival, Some(cancel), &mut report)
    };
    let peak = segment.interleaved().iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let square = (n != m).then(|| format!("as many sources as channels ({n} sources, {m} channels)"));
    let ineligible = if let Some(why) = &square {
        Some(format!("the saturating chain needs {why}"))
    } else if peak.is_nan() || peak >= 1.0 {
        Some(format!(
            "the saturating chain needs every sample inside full scale (±1); the training segment peaks at {peak}"
        ))
    } else {
        None
    };
    if config.model == ModelChoice::Chain {
        if let Some(why) = ineligible {
            return Err(Error::Config(format!("--model chain: {why}")));
        }
        let chain = fit_chain(None, progress)?;
        let summary = ChainSummary::of(&chain, &chain_config, chain_segment.frames(), None);
        let chosen = selection(ModelKind::SaturatingChain, "asked for (--model chain)".into(), None, Some(summary));
        return Ok((chosen, Chosen::Chain(Box::new(chain))));
    }
    // The post-nonlinear model reads the channels standardised over the whole segment.
    let standardise = || Normaliser::fit(segment, NormaliserConfig { whiten_to: None });
    let curves_segment = strided(segment, CHAIN_MAX_FRAMES)?;
    if config.model == ModelChoice::PostNonlinear {
        if let Some(why) = square {
            return Err(Error::Config(format!("--model postnonlinear: the post-nonlinear model needs {why}")));
        }
        let mut fitted = PostNonlinearCandidate::fit(&curves_segment, standardise()?, config, None, cancel, progress)?;
        let summary = fitted.summary(curves_segment.frames(), None, config.post_nonlinear.validation_every);
        // The post-nonlinear family: the curves, and PDGMM's encoder on them where it beats
        // them by the margin (so that a stream's refit keeps a model that has one).
        let (encoder, verdict) = fitted.weigh_encoder(&curves_segment, config, cancel, progress)?;
        let kind = if fitted.encoder.is_some() { ModelKind::PdgmmEncoder } else { ModelKind::PostNonlinear };
        let reason = format!("asked for (--model postnonlinear); held-out likelihood: {verdict}");
        let mut chosen = selection(kind, reason, None, None);
        chosen.post_nonlinear = Some(summary);
        chosen.encoder = Some(encoder);
        return Ok((chosen, Chosen::PostNonlinear(Box::new(fitted))));
    }
    // The linear model first (well under a second): the nonlinear models stop at their
    // screening unless they are already ahead of it there.
    let mut linear = LinearCandidate::fit(segment, n, config, cancel)?;
    let mut linear_summary = linear.summary(frames, config.chain.validation_every);
    let linear_nll = linear_summary.validation_nll;
    let too_short = || {
        format!(
            "the temporal prior needs {} blocks of {HELD_OUT_BLOCK} frames, the segment has {frames} frames",
            config.temporal.validation_every
        )
    };
    if config.prior == PriorChoice::ArGmm {
        // Its unmixing starts from the linear model's best: continued on every frame.
        let refit;
        (linear, refit) = linear.refit_on_every_frame(segment, cancel)?;
        linear_summary.refit = Some(refit);
        let temporal = TemporalCandidate::fit(segment, &linear, config, usize::MAX, cancel)?
            .ok_or_else(|| Error::Config(format!("--prior ar-gmm: {}", too_short())))?;
        let mut chosen =
            selection(ModelKind::LinearArGmm, "asked for (--prior ar-gmm)".into(), Some(linear_summary), None);
        chosen.temporal = Some(temporal.summary.clone());
        return Ok((chosen, Chosen::LinearArGmm(Box::new(temporal))));
    }
    if config.model == ModelChoice::Linear && config.prior == PriorChoice::Gmm {
        let chosen = selection(ModelKind::Linear, "asked for (--model linear)".into(), Some(linear_summary), None);
        return Ok((chosen, Chosen::Linear(Box::new(linear))));
    }
    // The nonlinear models are weighed on the held-out frames of a subset when the segment
    // is long: the linear model's NLL on those same frames is their rival.
    let rival_on = |subset: &Recording, every: usize| -> Result<f64> {
        match held_out_frames(subset, every)? {
            Some(held_out) if subset.frames() < frames => linear.nll_of(&held_out),
            _ => Ok(linear_nll),
        }
    };
    let mut verdicts: Vec<String> = Vec::new();
    // (kind, nats per frame above the linear model on the candidate's own held-out frames)
    let mut winner: Option<(ModelKind, f64)> = None;
    // `yardstick`: what the candidate must beat by the margin; `rival`: the linear model's
    // NLL on the same frames, the gain over which ranks the candidates that do.
    let mut consider =
        |kind: ModelKind, nll: f64, yardstick: f64, rival: f64, finished: bool, verdicts: &mut Vec<String>| {
            let gain = yardstick - nll;
            let (name, against) = match kind {
                ModelKind::SaturatingChain => ("the saturating chain's", "the linear model's"),
                ModelKind::LinearArGmm => ("the temporal prior's", "the linear model's on the same frames"),
                _ => ("the post-nonlinear model's", "the linear model's and its own with straight curves"),
            };
            if finished {
                let above = if gain > CHAIN_MARGIN_NATS { ">" } else { "not >" };
                verdicts
                    .push(format!("{name} is {gain:.3} nats per frame above {against} ({above} {CHAIN_MARGIN_NATS})"));
            } else {
                verdicts.push(format!("{name} stopped at its screening, {gain:+.3} nats per frame against {against}"));
            }
            // Each must beat its yardstick by the margin; between those that do, the one
            // furthest above the linear model on its own held-out frames wins (with the
            // defaults the chain and the curves hold out the same frames of one subset).
            let lead = rival - nll;
            if finished && gain > CHAIN_MARGIN_NATS && winner.is_none_or(|(_, best)| lead > best) {
                winner = Some((kind, lead));
            }
        };
    let iid_only = config.model == ModelChoice::Linear;
    let mut chain_fit = None;
    let mut chain_summary = None;
    if ineligible.is_none() && !iid_only {
        let rival = rival_on(&chain_segment, chain_config.validation_every)?;
        let chain = fit_chain(Some(rival), progress)?;
        chain_summary = Some(ChainSummary::of(&chain, &chain_config, chain_segment.frames(), Some(rival)));
        consider(
            ModelKind::SaturatingChain,
            chain.validation_nll,
            rival,
            rival,
            chain.steps == chain_config.steps,
            &mut verdicts,
        );
        chain_fit = Some(chain);
    }
    let mut curves_fit = None;
    let mut curves_summary = None;
    if square.is_none() && !iid_only {
        let every = config.post_nonlinear.validation_every;
        let rival = rival_on(&curves_segment, every)?;
        // Screened against the linear model and its own straight fit, by the margin: a
        // start not that far ahead by then could not be chosen.
        let fitted =
            PostNonlinearCandidate::fit(&curves_segment, standardise()?, config, Some(rival), cancel, progress)?;
        let summary = fitted.summary(curves_segment.frames(), Some(rival), every);
        let yardstick = summary.straight_nll.map_or(rival, |straight| straight.min(rival));
        let nll = summary.validation_nll;
        consider(ModelKind::PostNonlinear, nll, yardstick, rival, !summary.screened_out, &mut verdicts);
        curves_summary = Some(summary);
        curves_fit = Some(fitted);
    }
    let mut not_weighed: Vec<String> = ineligible.into_iter().filter(|_| !iid_only).collect();
    let mut temporal_fit = None;
    if config.prior == PriorChoice::Auto {
        // Its unmixing starts from the linear model's best: continued on every frame, as
        // it is once chosen (a few iterations, kept for the linear model).
        let refit;
        (linear, refit) = linear.refit_on_every_frame(segment, cancel)?;
        linear_summary.refit = Some(refit);
        match TemporalCandidate::fit(segment, &linear, config, TEMPORAL_MAX_BLOCKS, cancel)? {
            Some(temporal) => {
                let t = &temporal.summary;
                consider(ModelKind::LinearArGmm, t.validation_nll, t.linear_nll, t.linear_nll, true, &mut verdicts);
                temporal_fit = Some(temporal);
            }
            None => not_weighed.push(too_short()),
        }
    }
    let mut kind = winner.map_or(ModelKind::Linear, |(kind, _)| kind);
    // PDGMM's encoder, started at the model preferred so far where it has a linear path
    // on as many channels as sources: kept if it beats it by the margin.
    let mut encoder_summary = None;
    if kind == ModelKind::PostNonlinear
        && let Some(curves) = curves_fit.as_mut()
    {
        let (summary, verdict) = curves.weigh_encoder(&curves_segment, config, cancel, progress)?;
        verdicts.push(verdict);
        if curves.encoder.is_some() {
            kind = ModelKind::PdgmmEncoder;
        }
        encoder_summary = Some(summary);
    } else if kind == ModelKind::Linear && square.is_none() && !iid_only {
        let (summary, verdict) = linear.weigh_encoder(&curves_segment, config, cancel, progress)?;
        verdicts.push(verdict);
        if linear.encoder.is_some() {
            kind = ModelKind::PdgmmEncoder;
        }
        encoder_summary = Some(summary);
    }
    let reason = match (verdicts.is_empty(), not_weighed.is_empty()) {
        _ if iid_only && verdicts.is_empty() => "asked for (--model linear)".to_string(),
        _ if iid_only => {
            format!("asked for (--model linear), its prior by held-out likelihood: {}", verdicts.join("; "))
        }
        (true, _) => format!("the only candidate: {}", not_weighed.join("; ")),
        (false, true) => format!("held-out likelihood: {}", verdicts.join("; ")),
        (false, false) => {
            format!("held-out likelihood: {} (not weighed: {})", verdicts.join("; "), not_weighed.join("; "))
        }
    };
    let mut chosen = selection(kind, reason, Some(linear_summary), chain_summary);
    chosen.post_nonlinear = curves_summary;
    chosen.encoder = encoder_summary;
    chosen.temporal = temporal_fit.as_ref().map(|t| t.summary.clone());
    let on_linear = linear.encoder.is_some();
    let fitted = match (kind, chain_fit, curves_fit, temporal_fit) {
        (ModelKind::SaturatingChain, Some(chain), ..) => Chosen::Chain(Box::new(chain)),
        (ModelKind::PostNonlinear, _, Some(curves), _) => Chosen::PostNonlinear(Box::new(curves)),
        (ModelKind::PdgmmEncoder, _, Some(curves), _) if !on_linear => Chosen::PostNonlinear(Box::new(curves)),
        (ModelKind::LinearArGmm, .., Some(temporal)) => Chosen::LinearArGmm(Box::new(temporal)),
        _ => Chosen::Linear(Box::new(linear)),
    };
    Ok((chosen, fitted))
}

#[cfg(test)]
mod tests {
    use unmix_core::Recording;
    use unmix_dsp::metrics::pearson;
    use unmix_format::ModelFile;
    use unmix_infer::Kernel;
    use unmix_synth::{MixKind, SynthConfig, generate};

    use unmix_likelihood::linear::{LinearConfig, fit_linear};

    use super::*;
    use crate::testing::{fit_with, quick_params};
    use crate::{CancelToken, apply, fit};

    /// `--model chain` on the nonlinear benchmark: the packaged model (a model file of
    /// the saturating-chain architecture, run by the burn-free separator) gives the chain
    /// fit's own sources up to the order, signs and gains it fixed; a linear mixture is
    /// refused with the reason, and `auto` takes the linear model where the chain is not
    /// eligible, stops the chain at its screening on an eligible linear mixture (the linear
    /// model again), and picks the chain on the nonlinear benchmark.
    #[test]
    fn the_saturating_chain_is_packaged_and_applied() {
        let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Nonlinear, 1) }).unwrap();
        let mut config = quick_params(3, vec![8]);
        config.model = ModelChoice::Chain;
        config.chain = ChainConfig { starts: 2, steps: 150, threads: 2, ..ChainConfig::new(ChainShape::Saturating) };
        let fitted = fit_with(&data.mixture, &config).unwrap();
        assert!(fitted.vae.is_none());
        assert_eq!(fitted.model.weights.architecture, unmix_format::Architecture::SaturatingChain);
        let bytes = fitted.model.to_bytes().unwrap();
        let model = ModelFile::from_bytes(&bytes).unwrap();
        let applied = apply(&model, &data.mixture, Kernel::best()).unwrap();
        let direct = chain::fit(data.mixture.interleaved(), 3, &config.chain, None).unwrap();
        let (sources, _) = direct.demix(data.mixture.interleaved());
        for (j, (&from, &sign)) in fitted.ordering.from_latent.iter().zip(&fitted.ordering.signs).enumerate() {
            let reference: Vec<f32> = sources.iter().skip(from).step_by(3).map(|&v| v as f32).collect();
            let c = pearson(&applied.channel(j), &reference);
            assert!(c * f64::from(sign) > 0.99999, "source {j}: corr {c} with the chain's own latent {from}");
        }
        let linear = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 1) }).unwrap();
        let err = fit_with(&linear.mixture, &config).unwrap_err().to_string();
        assert!(err.contains("full scale") || err.contains("sources as channels"), "{err}");
        config.model = ModelChoice::Auto;
        let auto = fit_with(&linear.mixture, &config).unwrap();
        assert_eq!(auto.selection.chosen, ModelKind::Linear);
        assert!(auto.vae.is_none());
        assert!(auto.selection.chain.is_none(), "ineligible: {}", auto.selection.reason);
        assert!(auto.selection.reason.contains("not weighed: the saturating chain needs"), "{}", auto.selection.reason);
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
        let auto = fit_with(&level, &config).unwrap();
        assert_eq!(auto.selection.chosen, ModelKind::Linear, "{}", auto.selection.reason);
        let chain = auto.selection.chain.as_ref().unwrap();
        assert_eq!(chain.steps, 150, "{}", auto.selection.reason);
        assert!(chain.starts.iter().all(|s| !s.finished && s.screen_validation_nll.is_some()));
        assert!(chain.validation_nll >= auto.selection.linear.as_ref().unwrap().validation_nll);
        // And the nonlinear benchmark gets the chain, which runs to the end, its progress
        // told up to its total.
        let mut seen: Vec<(ChainShape, usize, usize)> = Vec::new();
        let auto = fit(&data.mixture, &config.clone().check().unwrap(), &CancelToken::new(), &mut |event| {
            if let Progress::Chain { shape, done, total } = event {
                seen.push((shape, done, total));
            }
        })
        .unwrap();
        assert_eq!(auto.selection.chosen, ModelKind::SaturatingChain, "{}", auto.selection.reason);
        assert_eq!(auto.selection.chain.as_ref().unwrap().steps, 600);
        assert!(auto.vae.is_none());
        assert!(!seen.is_empty() && seen.iter().all(|e| e.0 == ChainShape::Saturating));
        assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1), "steps only go forward");
        let last = seen.last().unwrap();
        assert_eq!((last.1, last.2), (2 * 600, 2 * 600));
    }

    /// `auto` on a linear mixture into more channels than sources (4 into 6, sensor noise):
    /// the linear model, packaged as a PDGMM-VAE without hidden layers, whose file gives
    /// the fit's own sources (continued on every frame once chosen) up to the order and
    /// signs it fixed, each the truth's to |corr| > 0.99; its held-out NLL is reported;
    /// `--model linear` asks for it by name.
    #[test]
    fn the_linear_model_is_packaged_and_applied() {
        let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::noisy_benchmark(2) }).unwrap();
        let mut config = quick_params(4, vec![8]);
        config.model = ModelChoice::Auto;
        let fitted = fit_with(&data.mixture, &config).unwrap();
        assert_eq!(fitted.selection.chosen, ModelKind::Linear, "{}", fitted.selection.reason);
        assert!(fitted.vae.is_none() && fitted.selection.chain.is_none());
        let summary = fitted.selection.linear.as_ref().unwrap();
        assert!(summary.validation_nll.is_finite() && summary.frames == 2000 - 2000 / 5, "{summary:?}");
        let weights = &fitted.model.weights;
        assert_eq!(weights.architecture, unmix_format::Architecture::Mlp);
        assert_eq!((weights.encoder.len(), weights.decoder.len()), (1, 1));
        let model = ModelFile::from_bytes(&fitted.model.to_bytes().unwrap()).unwrap();
        let applied = apply(&model, &data.mixture, Kernel::best()).unwrap();
        let whitened = model.header.normaliser.transform(&data.mixture).unwrap();
        let linear_config = LinearConfig { components: config.chain.components, ..LinearConfig::default() };
        let direct = fit_linear(&whitened, 4, &linear_config, None).unwrap();
        let refit = summary.refit.as_ref().unwrap();
        assert_eq!(refit.frames, 2000);
        let direct = direct.refit_on_every_frame(&whitened, &linear_config, None).unwrap();
        let sources = direct.demix(&whitened);
        // The encoder is the fit's unmixing; the outputs are its sources with the sensor
        // noise taken out.
        assert!(model.header.output_noise.is_some());
        let outputs = crate::encoder_outputs(&model, &data.mixture, Kernel::best()).unwrap();
        for (j, (&from, &sign)) in fitted.ordering.from_latent.iter().zip(&fitted.ordering.signs).enumerate() {
            let reference: Vec<f32> = sources.iter().skip(from).step_by(4).map(|&v| v as f32).collect();
            let c = pearson(&outputs.channel(j), &reference);
            assert!(c * f64::from(sign) > 0.99999, "source {j}: corr {c} with the fit's own latent {from}");
        }
        let truth: Vec<Vec<f32>> = (0..4).map(|j| data.truth.channel(j)).collect();
        let estimates: Vec<Vec<f32>> = (0..4).map(|j| applied.channel(j)).collect();
        let score = unmix_dsp::metrics::score(&truth, &estimates).unwrap();
        assert!(score.min_abs_corr > 0.99, "{score:?}");
        config.model = ModelChoice::Linear;
        let asked = fit_with(&data.mixture, &config).unwrap();
        assert_eq!(asked.selection.reason, "asked for (--model linear)");
        assert_eq!(asked.model.weights, fitted.model.weights);
    }

    /// `auto` on a post-nonlinear mixture (each sensor its own kind of curve): the
    /// post-nonlinear model wins by far, is packaged (curves in the model file) and applied
    /// by the inference engine to the fit's own sources, which are the truth's; the
    /// saturating chain was weighed too and lost. On the paper's linear mixture the curves
    /// gain nothing and the linear model is kept.
    #[test]
    fn auto_chooses_the_curves_for_sensors_that_bend_and_only_there() {
        let data = generate(&SynthConfig { frames: 8000, ..SynthConfig::paper(MixKind::PostNonlinear, 2) }).unwrap();
        // At a recording's level, inside full scale, so that the chain is weighed too.
        let top = data.mixture.interleaved().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let mixture = Recording::from_interleaved(
            data.mixture.sample_rate_hz(),
            3,
            data.mixture.interleaved().iter().map(|v| 0.5 * v / top).collect(),
        )
        .unwrap();
        let mut config = quick_params(3, vec![8]);
        config.model = ModelChoice::Auto;
        config.chain = ChainConfig { starts: 2, threads: 2, ..ChainConfig::new(ChainShape::Saturating) };
        config.post_nonlinear.threads = 2;
        let fitted = fit_with(&mixture, &config).unwrap();
        let selection = &fitted.selection;
        assert_eq!(selection.chosen, ModelKind::PostNonlinear, "{}", selection.reason);
        let curves = selection.post_nonlinear.as_ref().unwrap();
        let linear = selection.linear.as_ref().unwrap().validation_nll;
        assert!(curves.validation_nll < linear - 0.2, "{curves:?} vs linear {linear}");
        assert!(selection.chain.is_some(), "the chain was weighed too: {}", selection.reason);
        assert!(selection.reason.contains("post-nonlinear model's is"), "{}", selection.reason);
        let model = ModelFile::from_bytes(&fitted.model.to_bytes().unwrap()).unwrap();
        assert_eq!(model.weights.architecture, unmix_format::Architecture::PostNonlinear);
        assert!(model.header.normaliser.whitening.is_none());
        let applied = apply(&model, &mixture, Kernel::best()).unwrap();
        let truth: Vec<Vec<f32>> = (0..3).map(|j| data.truth.channel(j)).collect();
        let estimates: Vec<Vec<f32>> = (0..3).map(|j| applied.channel(j)).collect();
        let score = unmix_dsp::metrics::score(&truth, &estimates).unwrap();
        assert!(score.mean_abs_corr > 0.97 && score.min_abs_corr > 0.95, "{score:?}");

        let linear_data = generate(&SynthConfig { frames: 8000, ..SynthConfig::paper(MixKind::Linear, 2) }).unwrap();
        // Every frame, so that the temporal prior has blocks enough to be weighed.
        config.max_train_frames = 8000;
        let fitted = fit_with(&linear_data.mixture, &config).unwrap();
        assert_eq!(fitted.selection.chosen, ModelKind::Linear, "{}", fitted.selection.reason);
        assert!(fitted.selection.post_nonlinear.is_some());
        // PDGMM's encoder was weighed on the linear model and gained nothing either.
        let encoder = fitted.selection.encoder.as_ref().unwrap();
        assert_eq!(encoder.start, EncoderStart::Linear);
        assert!(encoder.start_nll - encoder.validation_nll < CHAIN_MARGIN_NATS, "{encoder:?}");
        assert_eq!(fitted.model.weights.encoder.len(), 1);
        // Independent samples: the temporal prior was weighed and gained nothing.
        let temporal = fitted.selection.temporal.as_ref().unwrap();
        assert!(temporal.linear_nll - temporal.validation_nll < CHAIN_MARGIN_NATS, "{temporal:?}");
        assert!(fitted.model.header.temporal_prior.is_none());
    }

    /// Sensors that bend between two mixings (`x = A2 g(A1 s)`, a cubic expansion per
    /// channel: a shape neither the chain nor the curves have): `auto` prefers the curves to
    /// the linear model, then PDGMM's encoder on them by more than the margin, and the
    /// packaged model (the post-nonlinear architecture with a hidden layer, run by the
    /// separator) separates what the curves alone leave mixed (0.83 mean |corr| for them
    /// on this file, `docs/results.md`).
    #[test]
    fn auto_puts_pdgmm_encoder_on_the_curves_where_sensors_bend_between_mixings() {
        use unmix_synth::bend_between_mixings;
        let data = generate(&SynthConfig { frames: 10_000, ..SynthConfig::paper(MixKind::Linear, 4) }).unwrap();
        let cubic = |c: usize, u: &[f64]| u[c] + (0.15 + 0.1 * c as f64) * u[c].powi(3);
        let recording = bend_between_mixings(&data.mixture, 1004, cubic).unwrap();
        let mut config = quick_params(3, vec![8]);
        config.model = ModelChoice::Auto;
        config.max_train_frames = 10_000;
        config.post_nonlinear.threads = 2;
        let fitted = fit_with(&recording, &config).unwrap();
        let selection = &fitted.selection;
        assert_eq!(selection.chosen, ModelKind::PdgmmEncoder, "{}", selection.reason);
        assert!(selection.reason.contains("PDGMM's encoder on the curves is"), "{}", selection.reason);
        let encoder = selection.encoder.as_ref().unwrap();
        assert_eq!(encoder.start, EncoderStart::Curves);
        assert!(encoder.start_nll - encoder.validation_nll > CHAIN_MARGIN_NATS, "{encoder:?}");
        let curves = selection.post_nonlinear.as_ref().unwrap();
        assert!((curves.validation_nll - encoder.start_nll).abs() < 1e-9, "{curves:?} {encoder:?}");
        let model = ModelFile::from_bytes(&fitted.model.to_bytes().unwrap()).unwrap();
        assert_eq!(model.weights.architecture, unmix_format::Architecture::PostNonlinear);
        assert_eq!(model.weights.encoder.len(), 2);
        // The file says how both parts were fitted.
        let header = &model.header;
        assert_eq!(header.training_config["encoder"]["hidden"], 16, "{}", header.training_config);
        assert_eq!(header.training_config["curves"]["segments"], config.post_nonlinear.segments);
        assert_eq!(header.training_summary["encoder"]["kept_iteration"], encoder.kept_iteration);
        assert_eq!(header.training_summary["curves"]["chosen"], curves.chosen);
        let applied = apply(&model, &recording, Kernel::best()).unwrap();
        let truth: Vec<Vec<f32>> = (0..3).map(|j| data.truth.channel(j)).collect();
        let estimates: Vec<Vec<f32>> = (0..3).map(|j| applied.channel(j)).collect();
        let score = unmix_dsp::metrics::score(&truth, &estimates).unwrap();
        assert!(score.mean_abs_corr > 0.92, "{score:?}");
    }

    /// Sensors bent between two mixings where the curves do not win (a cubic bend, seed 5):
    /// `auto` keeps the linear model over the curves, then PDGMM's encoder started at it
    /// beats it by more than the margin, and the packaged model (an MLP with a hidden layer
    /// on the whitened channels, run by the separator) separates what the linear model
    /// leaves mixed (0.73 mean |corr| for it on this file, 0.88 for the encoder:
    /// `docs/results.md`).
    #[test]
    fn auto_puts_pdgmm_encoder_on_the_linear_model_where_the_curves_do_not_win() {
        use unmix_synth::bend_between_mixings;
        let data = generate(&SynthConfig { frames: 10_000, ..SynthConfig::paper(MixKind::Linear, 5) }).unwrap();
        let cubic = |c: usize, u: &[f64]| u[c] + (0.15 + 0.1 * c as f64) * u[c].powi(3);
        let recording = bend_between_mixings(&data.mixture, 1005, cubic).unwrap();
        let mut config = quick_params(3, vec![8]);
        (config.model, config.max_train_frames, config.post_nonlinear.threads) = (ModelChoice::Auto, 10_000, 2);
        let fitted = fit_with(&recording, &config).unwrap();
        let selection = &fitted.selection;
        assert_eq!(selection.chosen, ModelKind::PdgmmEncoder, "{}", selection.reason);
        assert!(selection.reason.contains("PDGMM's encoder on the linear model is"), "{}", selection.reason);
        assert!(selection.post_nonlinear.as_ref().is_some_and(|c| c.screened_out), "{}", selection.reason);
        let encoder = selection.encoder.as_ref().unwrap();
        assert_eq!(encoder.start, EncoderStart::Linear);
        assert!(encoder.start_nll - encoder.validation_nll > CHAIN_MARGIN_NATS, "{encoder:?}");
        let model = ModelFile::from_bytes(&fitted.model.to_bytes().unwrap()).unwrap();
        assert_eq!(model.weights.architecture, unmix_format::Architecture::Mlp);
        assert_eq!((model.weights.encoder.len(), model.weights.decoder.len()), (2, 1));
        assert!(model.header.normaliser.whitening.is_some());
        assert_eq!(model.header.training_config["encoder"]["hidden"], 16, "{}", model.header.training_config);
        assert_eq!(model.header.training_summary["encoder"]["start"], "linear");
        let applied = apply(&model, &recording, Kernel::best()).unwrap();
        let truth: Vec<Vec<f32>> = (0..3).map(|j| data.truth.channel(j)).collect();
        let estimates: Vec<Vec<f32>> = (0..3).map(|j| applied.channel(j)).collect();
        let score = unmix_dsp::metrics::score(&truth, &estimates).unwrap();
        assert!(score.mean_abs_corr > 0.85, "{score:?}");
    }

    /// `auto` on a building's floor accelerations (broadband excitation: nearly Gaussian
    /// modes told apart by their spectra): the temporal prior wins by far, its unmixing
    /// separates every mode, and the model file carries each source's AR process in the
    /// output's order, whose spectral peak is its mode's frequency. `--prior ar-gmm` on a
    /// segment too short for its held-out blocks is refused with the reason.
    #[test]
    fn auto_gives_sources_told_apart_by_their_spectra_the_temporal_prior() {
        use unmix_synth::shm::{ShmConfig, simulate};
        let record = simulate(&ShmConfig { duration_s: 60.0, ..ShmConfig::benchmark(1) }).unwrap();
        let mut config = quick_params(4, vec![8]);
        (config.model, config.max_train_frames) = (ModelChoice::Auto, record.mixture.frames());
        config.post_nonlinear.threads = 2;
        let fitted = fit_with(&record.mixture, &config).unwrap();
        let selection = &fitted.selection;
        assert_eq!(selection.chosen, ModelKind::LinearArGmm, "{}", selection.reason);
        let temporal = selection.temporal.as_ref().unwrap();
        assert!(temporal.linear_nll - temporal.validation_nll > 1.0, "{temporal:?}");
        assert!(selection.reason.contains("the temporal prior's is"), "{}", selection.reason);
        let model = ModelFile::from_bytes(&fitted.model.to_bytes().unwrap()).unwrap();
        let prior = model.header.temporal_prior.clone().unwrap();
        assert_eq!((prior.ar.len(), prior.ar[0].len()), (4, config.temporal.order));
        let applied = apply(&model, &record.mixture, Kernel::best()).unwrap();
        let truth: Vec<Vec<f32>> = (0..4).map(|j| record.truth.channel(j)).collect();
        let estimates: Vec<Vec<f32>> = (0..4).map(|j| applied.channel(j)).collect();
        let score = unmix_dsp::metrics::score(&truth, &estimates).unwrap();
        assert!(score.min_abs_corr > 0.95 && score.mean_abs_corr > 0.98, "{score:?}");
        for pair in &score.sources {
            let (f, _) = unmix_likelihood::temporal::resonance(&prior.ar[pair.estimate], 200.0).unwrap();
            let truth = record.meta.modes.frequencies_hz[pair.truth];
            assert!((f / truth - 1.0).abs() < 0.03, "source {}: {f} Hz, mode {truth} Hz", pair.estimate + 1);
        }
        let short = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 1) }).unwrap();
        let mut config = quick_params(3, vec![8]);
        (config.model, config.prior) = (ModelChoice::Auto, PriorChoice::ArGmm);
        let err = fit_with(&short.mixture, &config).unwrap_err().to_string();
        assert!(err.contains("--prior ar-gmm: the temporal prior needs 5 blocks of 1000 frames"), "{err}");
    }

    /// `--model vae`: the linear model is fitted beside it for the report, and the VAE's
    /// encoder is scored as a change of variables on the same held-out frames, in the same
    /// units; kept channels without whitening are not a change of variables, and the
    /// report says so.
    #[test]
    fn the_vae_is_scored_beside_the_linear_model() {
        let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 1) }).unwrap();
        let fitted = fit_with(&data.mixture, &quick_params(3, vec![8])).unwrap();
        assert_eq!(fitted.selection.chosen, ModelKind::PdgmmVae);
        let linear = fitted.selection.linear.as_ref().unwrap();
        let vae = fitted.selection.vae.as_ref().unwrap().validation_nll.unwrap();
        // Three epochs from a cold start: the VAE is far from the linear optimum.
        assert!(vae.is_finite() && vae > linear.validation_nll, "VAE {vae}, linear {}", linear.validation_nll);
        let noisy = generate(&SynthConfig { frames: 2000, ..SynthConfig::noisy_benchmark(1) }).unwrap();
        let mut kept = quick_params(4, vec![8]);
        kept.whiten = false;
        let fitted = fit_with(&noisy.mixture, &kept).unwrap();
        let why = fitted.selection.vae.as_ref().unwrap().unscored.clone().unwrap();
        assert!(why.contains("maps 6 dimensions to 4 sources"), "{why}");
    }

    /// On a segment longer than [`CHAIN_MAX_FRAMES`], `auto` weighs the chain on a strided
    /// subset, against the linear model's NLL on the subset's held-out frames; `--model
    /// chain` fits it on the whole segment.
    #[test]
    fn auto_weighs_the_chain_on_a_subset_of_a_long_segment() {
        let frames = 2 * CHAIN_MAX_FRAMES + 100;
        let data = generate(&SynthConfig { frames, ..SynthConfig::paper(MixKind::Linear, 3) }).unwrap();
        let top = data.mixture.interleaved().iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let level =
            Recording::from_interleaved(8000, 3, data.mixture.interleaved().iter().map(|v| 0.5 * v / top).collect())
                .unwrap();
        let mut config = quick_params(3, vec![8]);
        (config.model, config.max_train_frames) = (ModelChoice::Auto, frames);
        config.chain = ChainConfig { starts: 2, steps: 40, screen_steps: 20, threads: 2, ..config.chain };
        let auto = fit_with(&level, &config).unwrap();
        let chain = auto.selection.chain.as_ref().unwrap();
        let subset = frames.div_ceil(frames.div_ceil(CHAIN_MAX_FRAMES));
        assert_eq!(chain.frames, subset - subset / 5);
        let rival = chain.linear_nll.unwrap();
        assert!(rival.is_finite() && rival != auto.selection.linear.as_ref().unwrap().validation_nll);
        config.model = ModelChoice::Chain;
        let asked = fit_with(&level, &config).unwrap();
        assert_eq!(asked.selection.chain.as_ref().unwrap().frames, frames - frames / 5);
    }
}
