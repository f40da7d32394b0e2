//! The separation job: the training segment, the source count, the model choice, the
//! PDGMM-VAE's training (warm start from linear ICA, consensus restarts), and the model
//! file that comes out of it; and the fits of a running stream, each continuing the last.

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use unmix_core::parallel::{round_robin, threads_for};
use unmix_core::{CancelToken, Recording};
use unmix_dsp::count::{SourceCount as CountEstimate, estimate_sources};
use unmix_dsp::gmm::fit_1d;
use unmix_dsp::ica::{FastIcaConfig, fast_ica};
use unmix_dsp::outliers::{GrossOutliers, gross_outliers, without_frames};
use unmix_dsp::{Normaliser, NormaliserConfig};
use unmix_format::{Architecture, GmmParams, ModelFile, ModelHeader, ModelWeights};
use unmix_likelihood::chain::ChainFit;
use unmix_likelihood::encoder::change_of_variables_nll;
use unmix_model::consensus::{ConsensusReport, WarmStart, fit_with_restarts};
use unmix_model::{Trainer, TrainingConfig, TrainingHistory};

use crate::choice::{
    Chosen, LinearCandidate, ModelSelection, PostNonlinearCandidate, TemporalCandidate, VaeScore, encoder_config,
    held_out_frames, select_model, strided,
};
use crate::config::{MIN_TRAIN_FRAMES, ModelChoice, PriorChoice, SeparateConfig, SeparateParams, SourceCount};
use crate::finish::{LatentEvidence, Ordering, align_to, finish_model};
use crate::{Error, Progress, Result};

/// Least-squares epochs of the warm start's distillation: enough to bring the encoder's
/// mismatch to the ICA solution below 1 % on the paper's problems (`docs/model.md`).
pub const WARM_START_EPOCHS: usize = 20;

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
    /// The gross outliers of the training segment, whose frames were left out of the fit
    /// (the separation still carries them through).
    pub gross_outliers: GrossOutliers,
}

/// Trains a model on the head of `recording` (at most
/// [`SeparateParams::max_train_frames`] frames). Cancelling `cancel` stops the fit at its
/// next epoch (a likelihood fit within a few dozen steps) with [`Error::Cancelled`];
/// `progress` hears of every step worth showing.
pub fn fit(
    recording: &Recording,
    config: &SeparateConfig,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Fitted> {
    let m = recording.channels();
    let segment = recording.head(config.training_frames(m)?);
    let config = config.params();
    // One absurd sample would set its channel's scale and the whitening: the frames that
    // hold one are left out of the fit, and reported.
    let gross = gross_outliers(&segment);
    let segment = if gross.is_empty() { segment } else { without_frames(&segment, &gross.frames)? };
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
    // Fitted first for its checks too (a silent or non-finite channel is named here,
    // whichever model follows).
    let whiten_to = config.whiten.then_some(n);
    let normaliser = Normaliser::fit(&segment, NormaliserConfig { whiten_to })?;
    let (selection, chosen) = select_model(&segment, n, config, cancel, progress)?;
    let fitted = match chosen {
        Chosen::Chain(chain) => package_chain(recording, &segment, *chain, selection, config, count),
        Chosen::Linear(linear) => {
            let (linear, refit) = linear.refit_on_every_frame(&segment, cancel)?;
            let mut selection = selection;
            if let Some(summary) = selection.linear.as_mut() {
                summary.refit = Some(refit);
            }
            package_linear(recording, &segment, linear, selection, config, count)
        }
        Chosen::PostNonlinear(curves) => package_post_nonlinear(recording, &segment, *curves, selection, config, count),
        Chosen::LinearArGmm(temporal) => package_temporal(recording, &segment, *temporal, selection, config, count),
        Chosen::Vae => fit_vae(recording, &segment, normaliser, n, selection, count, config, cancel, progress),
    };
    Ok(Fitted { gross_outliers: gross, ..fitted? })
}

/// PDGMM-VAE on `segment`: the warm start, the restarts, and the finished model file.
#[allow(clippy::too_many_arguments)]
fn fit_vae(
    recording: &Recording,
    segment: &Recording,
    normaliser: Normaliser,
    n: usize,
    selection: ModelSelection,
    count: Option<CountEstimate>,
    config: &SeparateParams,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Fitted> {
    let data = normaliser.transform(segment)?;
    let recipe = match config.recipe_for_gpu && config.backend.is_gpu() {
        true => config.recipe.clone().for_gpu(segment.frames()),
        false => config.recipe.clone(),
    };
    let training = TrainingConfig::new(config.layout.clone().with_sizes(normaliser.output_dims(), n), recipe);
    let trainer = Trainer::new(training.clone(), config.backend)?.with_cancel(cancel.clone());
    let (warm, ica) = if config.warm_start {
        let ica = fast_ica(&data, n, &FastIcaConfig { seed: training.recipe.seed, ..FastIcaConfig::default() })?;
        let targets = ica.apply(&data);
        let prior = warm_prior(&targets, n, training.model.layout.components, config.restarts.threads);
        let summary = IcaSummary { iterations: ica.iterations, converged: ica.converged };
        (Some(WarmStart { targets, prior: Some(prior), epochs: WARM_START_EPOCHS }), Some(summary))
    } else {
        (None, None)
    };
    let fitted =
        fit_with_restarts(&trainer, &data, warm.as_ref(), &config.restarts, &mut |e| progress(Progress::Vae(e)))?;
    let weights = fitted.model.export();
    let mut selection = selection;
    selection.vae = Some(vae_score(&weights, &normaliser, segment, config.chain.validation_every));
    let header = new_header(
        recording,
        n,
        normaliser,
        serde_json::to_value(&training).unwrap_or_default(),
        serde_json::to_value(&fitted.history.summary).unwrap_or_default(),
    );
    // `-n auto` drops the latents that carry no information.
    let (file, latents, ordering) =
        finish_model(ModelFile { header, weights }, segment, count.is_some(), false, config.kernel)?;
    let vae = VaeTraining { history: fitted.history, consensus: fitted.consensus, ica };
    Ok(Fitted { model: file, selection, vae: Some(vae), count, latents, ordering, gross_outliers: Default::default() })
}

/// PDGMM-VAE's held-out NLL with its encoder read as a change of variables, on the frames
/// the likelihood fits hold out, in nats per frame of the samples as read.
fn vae_score(weights: &ModelWeights, normaliser: &Normaliser, segment: &Recording, every: usize) -> VaeScore {
    let scored = held_out_frames(segment, every)
        .and_then(|frames| {
            let frames = frames.ok_or_else(|| Error::Config("no frames are held out".into()))?;
            Ok(normaliser.transform(&frames)?)
        })
        .and_then(|whitened| Ok(change_of_variables_nll(weights, &whitened)?));
    match scored {
        Ok(nll) => VaeScore { validation_nll: Some(nll + normaliser.nll_offset_nats()), unscored: None },
        Err(e) => VaeScore { validation_nll: None, unscored: Some(e.to_string()) },
    }
}

/// The saturating chain as a model file: the samples as read (full scale), its sources in
/// the documented order and sign, their gains and the monitoring baseline as for the VAE.
fn package_chain(
    recording: &Recording,
    segment: &Recording,
    chain: ChainFit,
    selection: ModelSelection,
    config: &SeparateParams,
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
    let (file, latents, ordering) = finish_model(ModelFile { header, weights }, segment, false, false, config.kernel)?;
    Ok(Fitted { model: file, selection, vae: None, count, latents, ordering, gross_outliers: Default::default() })
}

/// The post-nonlinear model as a model file: the channels standardised, not whitened, each
/// through its curve, then its unmixing; its sources in the documented order and sign, their
/// gains and the monitoring baseline as for the VAE.
fn package_post_nonlinear(
    recording: &Recording,
    segment: &Recording,
    curves: PostNonlinearCandidate,
    selection: ModelSelection,
    config: &SeparateParams,
    count: Option<CountEstimate>,
) -> Result<Fitted> {
    // With PDGMM's encoder on the curves when it won: its layers after the same curves,
    // and the file's settings and summary of both parts.
    let curves_config = serde_json::to_value(&config.post_nonlinear).unwrap_or_default();
    let curves_summary = serde_json::to_value(&selection.post_nonlinear).unwrap_or_default();
    let (weights, training_config, training_summary) = match &curves.encoder {
        Some(encoder) => (
            curves.fit.export_with_encoder(encoder).ok_or_else(|| {
                Error::Config(
                    "PDGMM's encoder on the curves cannot be written: its linear path is singular, or a curve's \
                     knots coincide in single precision"
                        .into(),
                )
            })?,
            serde_json::json!({ "curves": curves_config, "encoder": encoder_config(config) }),
            serde_json::json!({ "curves": curves_summary, "encoder": selection.encoder }),
        ),
        None => (
            curves.fit.export().ok_or_else(|| {
                Error::Config(
                    "the post-nonlinear model cannot be written: its unmixing is singular, or a curve's knots \
                     coincide in single precision"
                        .into(),
                )
            })?,
            curves_config,
            curves_summary,
        ),
    };
    let header = new_header(recording, curves.fit.sources, curves.normaliser, training_config, training_summary);
    // Never pruned: every source is one of its channels' worth.
    let (file, latents, ordering) = finish_model(ModelFile { header, weights }, segment, false, false, config.kernel)?;
    Ok(Fitted { model: file, selection, vae: None, count, latents, ordering, gross_outliers: Default::default() })
}

/// The linear model as a model file: a PDGMM-VAE without hidden layers on the whitened
/// channels, its sources in the documented order and sign, their gains and the monitoring
/// baseline as for the VAE.
fn package_linear(
    recording: &Recording,
    segment: &Recording,
    linear: LinearCandidate,
    selection: ModelSelection,
    config: &SeparateParams,
    count: Option<CountEstimate>,
) -> Result<Fitted> {
    let n = linear.fit.sources;
    let linear_config = serde_json::json!({
        "components": config.chain.components,
        "validation_every": config.chain.validation_every,
        "seed": config.chain.seed,
    });
    let linear_summary = serde_json::to_value(&selection.linear).unwrap_or_default();
    // With PDGMM's encoder on it when that won: its layers on the same whitened frames, and
    // the file's settings and summary of both parts.
    let (weights, training_config, training_summary) = match &linear.encoder {
        Some(encoder) => (
            encoder.export().ok_or_else(|| {
                Error::Config(
                    "PDGMM's encoder on the linear model cannot be written: its linear path is singular".into(),
                )
            })?,
            serde_json::json!({ "linear": linear_config, "encoder": encoder_config(config) }),
            serde_json::json!({ "linear": linear_summary, "encoder": selection.encoder }),
        ),
        None => (
            linear.fit.export().ok_or_else(|| Error::Config("the linear model's unmixing is singular".into()))?,
            linear_config,
            linear_summary,
        ),
    };
    let header = new_header(recording, n, linear.normaliser, training_config, training_summary);
    // Never pruned: every latent of the linear model is a direction of the whitened space.
    let (file, latents, ordering) =
        finish_model(ModelFile { header, weights }, segment, false, config.denoise, config.kernel)?;
    Ok(Fitted { model: file, selection, vae: None, count, latents, ordering, gross_outliers: Default::default() })
}

/// The linear model with the temporal prior as a model file: the linear model's layout
/// ([`package_linear`]) with each source's marginal density as the weights' prior and its
/// AR process and innovation density in the header.
fn package_temporal(
    recording: &Recording,
    segment: &Recording,
    temporal: TemporalCandidate,
    selection: ModelSelection,
    config: &SeparateParams,
    count: Option<CountEstimate>,
) -> Result<Fitted> {
    let n = temporal.fit.sources;
    let (weights, prior) = temporal
        .fit
        .export(&temporal.whitened, config.chain.components)
        .ok_or_else(|| Error::Config("the temporal model's unmixing is singular".into()))?;
    let mut header = new_header(
        recording,
        n,
        temporal.normaliser,
        serde_json::to_value(&temporal.summary.config).unwrap_or_default(),
        serde_json::to_value(&selection.temporal).unwrap_or_default(),
    );
    header.temporal_prior = Some(prior);
    // Never pruned: every latent is a direction of the whitened space.
    let (file, latents, ordering) =
        finish_model(ModelFile { header, weights }, segment, false, config.denoise, config.kernel)?;
    Ok(Fitted { model: file, selection, vae: None, count, latents, ordering, gross_outliers: Default::default() })
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
        temporal_prior: None,
        output_noise: None,
    }
}

/// A model fitted on a stream's latest segment ([`fit_for_stream`]).
#[derive(Debug)]
pub struct StreamFit {
    /// The model: sources in the documented order and sign, or in its predecessor's.
    pub model: ModelFile,
    /// With a predecessor, each source's |corr| with the predecessor's same source on the
    /// segment (how well the two agree); empty without one.
    pub alignment: Vec<f64>,
}

/// The fit of a running stream (a live session's warm-up, then its refits): a model of
/// `segment` that continues `previous` when there is one.
///
/// - The segment is thinned to at most [`SeparateParams::max_train_frames`] evenly
///   strided frames: the models treat frames as independent, so a strided subset trains
///   them as well as the whole, in a fraction of the time.
/// - A predecessor keeps its kind: a saturating chain is refitted as a chain, a
///   post-nonlinear model as one (PDGMM's encoder on its curves weighed again, whether
///   the predecessor had it or not) and a linear model with the temporal prior with it,
///   whatever `config` chooses, so that a refit never swaps it for a model that separates
///   such data far worse. A thinned segment gets no temporal prior (its frames are no
///   longer in time order).
/// - The new model's sources are relabelled to be its predecessor's in order and sign
///   ([`align_to`]), so a stream's output channel `k` stays the same source.
pub fn fit_for_stream(
    segment: &Recording,
    previous: Option<&ModelFile>,
    config: &SeparateConfig,
    cancel: &CancelToken,
) -> Result<StreamFit> {
    let params = config.params();
    let m = segment.channels();
    let thinned = strided(segment, config.training_frames(m)?)?;
    let kept = match previous.map(|p| p.weights.architecture) {
        Some(Architecture::SaturatingChain) => Some(ModelChoice::Chain),
        Some(Architecture::PostNonlinear) => Some(ModelChoice::PostNonlinear),
        _ => None,
    };
    // The temporal prior reads frames in time order: not on a thinned segment; a
    // predecessor with one keeps it otherwise.
    let prior = if thinned.frames() < segment.frames() || kept.is_some() {
        PriorChoice::Gmm
    } else if previous.is_some_and(|p| p.header.temporal_prior.is_some()) {
        PriorChoice::ArGmm
    } else {
        params.prior
    };
    let kept_config;
    let config = match kept {
        Some(kind) if params.model != kind || params.prior != prior => {
            kept_config = SeparateParams { model: kind, prior, ..params.clone() }.check()?;
            &kept_config
        }
        None if params.prior != prior => {
            kept_config = SeparateParams { prior, ..params.clone() }.check()?;
            &kept_config
        }
        _ => config,
    };
    let mut model = fit(&thinned, config, cancel, &mut |_| {})?.model;
    let alignment = match previous {
        Some(previous) => align_to(previous, &mut model, &thinned, params.kernel)?,
        None => Vec::new(),
    };
    Ok(StreamFit { model, alignment })
}

#[cfg(test)]
mod tests {
    use unmix_dsp::metrics::pearson;
    use unmix_infer::Kernel;
    use unmix_likelihood::chain::{ChainConfig, ChainShape};
    use unmix_model::consensus::{ConsensusConfig, Progress as VaeProgress};
    use unmix_synth::{MixKind, SynthConfig, generate};

    use super::*;
    use crate::apply;
    use crate::testing::{fit_with, quick_params};

    #[test]
    fn each_refusal_is_specific() {
        let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 1) }).unwrap();
        assert!(matches!(
            fit_with(&data.mixture, &quick_params(4, vec![])),
            Err(Error::TooFewChannels { channels: 3, sources: 4 })
        ));
        let short = data.mixture.head(100);
        assert!(matches!(fit_with(&short, &quick_params(3, vec![])), Err(Error::TooShort { frames: 100 })));
        let model = fit_with(&data.mixture, &quick_params(2, vec![])).unwrap().model;
        let two = Recording::from_interleaved(8000, 2, vec![0.0; 20]).unwrap();
        assert!(matches!(apply(&model, &two, Kernel::best()), Err(Error::ChannelMismatch { expected: 3, got: 2 })));
    }

    /// A cancelled token stops a fit with a `Cancelled` error instead of a model.
    #[test]
    fn a_cancelled_fit_says_so() {
        let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 2) }).unwrap();
        let config = quick_params(3, vec![8]).check().unwrap();
        let cancel = CancelToken::new();
        cancel.cancel();
        let e = fit(&data.mixture, &config, &cancel, &mut |_| {}).unwrap_err();
        assert!(matches!(e, Error::Cancelled), "{e}");
    }

    #[test]
    fn seeded_training_is_reproducible() {
        let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 3) }).unwrap();
        let mut config = quick_params(3, vec![8]);
        config.warm_start = true;
        config.restarts =
            ConsensusConfig { candidates: 3, rounds: 2, epochs_per_round: 1, ..ConsensusConfig::default() };
        let a = fit_with(&data.mixture, &config).unwrap();
        let b = fit_with(&data.mixture, &config).unwrap();
        assert_eq!(a.model.weights, b.model.weights);
        assert_eq!(a.vae.as_ref().unwrap().consensus, b.vae.as_ref().unwrap().consensus);
    }

    /// Candidates trained side by side end exactly as one after the other, the warm
    /// start's priors too, and every candidate epoch is still reported.
    #[test]
    fn the_result_does_not_depend_on_the_threads() {
        let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 3) }).unwrap();
        let mut config = quick_params(3, vec![8]);
        config.warm_start = true;
        config.recipe.max_epochs = 6;
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
            let fitted = fit(&data.mixture, &config.clone().check().unwrap(), &CancelToken::new(), &mut |event| {
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

    /// A stream's fit continues its predecessor: a saturating chain stays a chain though
    /// the configuration asks for PDGMM-VAE, and the new model's sources are the old one's
    /// in order and sign; a long segment is thinned to the training cap. Without a
    /// predecessor the configuration decides.
    #[test]
    fn a_stream_fit_continues_its_predecessor() {
        let data = generate(&SynthConfig { frames: 6000, ..SynthConfig::paper(MixKind::Nonlinear, 2) }).unwrap();
        let mut chain = quick_params(3, vec![8]);
        chain.model = ModelChoice::Chain;
        chain.chain = ChainConfig { starts: 2, steps: 100, threads: 1, ..ChainConfig::new(ChainShape::Saturating) };
        let previous = fit_with(&data.mixture.head(3000), &chain).unwrap().model;
        let as_live = SeparateParams { model: ModelChoice::Vae, max_train_frames: 1000, ..chain }.check().unwrap();
        let refit = fit_for_stream(&data.mixture, Some(&previous), &as_live, &CancelToken::new()).unwrap();
        assert_eq!(refit.model.weights.architecture, Architecture::SaturatingChain);
        assert_eq!(refit.model.header.score_baseline.unwrap().frames, 1000, "6000 frames thinned to 1000");
        assert_eq!(refit.alignment.len(), 3);
        assert!(refit.alignment.iter().all(|&c| c > 0.9), "{:?}", refit.alignment);
        let old = apply(&previous, &data.mixture, Kernel::best()).unwrap();
        let new = apply(&refit.model, &data.mixture, Kernel::best()).unwrap();
        for j in 0..3 {
            let c = pearson(&old.channel(j), &new.channel(j));
            assert!(c > 0.9, "output {j}: corr {c} with the predecessor's output {j}");
        }
        let first = fit_for_stream(&data.mixture, None, &as_live, &CancelToken::new()).unwrap();
        assert_eq!(first.model.weights.architecture, Architecture::Mlp);
        assert!(first.alignment.is_empty());
    }

    /// A post-nonlinear predecessor keeps its kind too, whatever the stream's settings
    /// ask, and the refit's outputs are its predecessor's sources in order and sign.
    #[test]
    fn a_stream_fit_continues_a_post_nonlinear_predecessor() {
        let data = generate(&SynthConfig { frames: 6000, ..SynthConfig::paper(MixKind::PostNonlinear, 1) }).unwrap();
        let mut curves = quick_params(3, vec![8]);
        curves.model = ModelChoice::PostNonlinear;
        curves.post_nonlinear.threads = 1;
        let previous = fit_with(&data.mixture.head(3000), &curves).unwrap().model;
        assert_eq!(previous.weights.architecture, Architecture::PostNonlinear);
        let as_live = SeparateParams { model: ModelChoice::Linear, ..curves }.check().unwrap();
        let refit = fit_for_stream(&data.mixture, Some(&previous), &as_live, &CancelToken::new()).unwrap();
        assert_eq!(refit.model.weights.architecture, Architecture::PostNonlinear);
        assert!(refit.alignment.iter().all(|&c| c > 0.95), "{:?}", refit.alignment);
        let old = apply(&previous, &data.mixture, Kernel::best()).unwrap();
        let new = apply(&refit.model, &data.mixture, Kernel::best()).unwrap();
        for j in 0..3 {
            let c = pearson(&old.channel(j), &new.channel(j));
            assert!(c > 0.95, "output {j}: corr {c} with the predecessor's output {j}");
        }
    }
}
