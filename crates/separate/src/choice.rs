//! Which model a recording gets: PDGMM-VAE, or the saturating chain where the recording
//! is eligible and the held-out likelihood says it explains the frames better than a
//! linear model does ([`ModelChoice`]).

use serde::{Deserialize, Serialize};
use unmix_core::{CancelToken, Recording};
use unmix_likelihood::chain::{self, ChainConfig, ChainFit, ChainShape, StartReport};

use crate::config::{ModelChoice, SeparateParams};
use crate::{Error, Progress, Result};

/// The kinds of model a recording can get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// PDGMM-VAE.
    PdgmmVae,
    /// The saturating chain, fitted by exact maximum likelihood.
    SaturatingChain,
}

impl ModelKind {
    /// Its name in reports: `pdgmm-vae`, `saturating-chain`.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::PdgmmVae => "pdgmm-vae",
            ModelKind::SaturatingChain => "saturating-chain",
        }
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How much better (nats per held-out frame) the saturating chain's likelihood must be
/// than the linear model's for [`ModelChoice::Auto`] to choose it: well above what its
/// extra `n² + n` parameters gain on a linear mixture (it loses there, `docs/model.md`),
/// well below what it gains on the nonlinear benchmark (2.4–3.0 nats per frame on seeds
/// 1–5).
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
    pub(crate) fn of(fit: &ChainFit, config: &ChainConfig, frames: usize) -> Self {
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
    /// The model trained.
    pub chosen: ModelKind,
    /// Why, in words.
    pub reason: String,
    /// The linear model's fit, when the two were weighed.
    pub linear: Option<ChainSummary>,
    /// The saturating chain's fit, when it was tried.
    pub chain: Option<ChainSummary>,
}

/// Decides between the saturating chain and PDGMM-VAE ([`ModelChoice`]); the chain's fit
/// comes back when it was chosen.
pub(crate) fn select_model(
    segment: &Recording,
    n: usize,
    config: &SeparateParams,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<(ModelSelection, Option<ChainFit>)> {
    let m = segment.channels();
    let vae = |reason: String, linear, chain| ModelSelection {
        asked: config.model,
        chosen: ModelKind::PdgmmVae,
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
    let mut fit_reporting = |chain_config: &ChainConfig, rival: Option<f64>| {
        let shape = chain_config.shape;
        let mut report = |done, total| progress(Progress::Chain { shape, done, total });
        chain::fit_watched(segment.interleaved(), m, chain_config, rival, Some(cancel), &mut report)
    };
    let chain_config = ChainConfig { shape: ChainShape::Saturating, ..config.chain.clone() };
    if config.model == ModelChoice::Chain {
        let chain = fit_reporting(&chain_config, None)?;
        let selection = ModelSelection {
            asked: config.model,
            chosen: ModelKind::SaturatingChain,
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
            chosen: ModelKind::SaturatingChain,
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

#[cfg(test)]
mod tests {
    use unmix_core::Recording;
    use unmix_dsp::metrics::pearson;
    use unmix_format::ModelFile;
    use unmix_infer::Kernel;
    use unmix_synth::{MixKind, SynthConfig, generate};

    use super::*;
    use crate::testing::{fit_with, quick_params};
    use crate::{CancelToken, apply, fit};

    /// `--model chain` on the nonlinear benchmark: the packaged model (a model file of
    /// the saturating-chain architecture, run by the burn-free separator) gives the chain
    /// fit's own sources up to the order, signs and gains it fixed; a linear mixture is
    /// refused with the reason, and `auto` keeps the VAE where the chain is not eligible,
    /// stops the chain at its screening on an eligible linear mixture, and picks the chain
    /// on the nonlinear benchmark.
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
        assert_eq!(auto.selection.chosen, ModelKind::PdgmmVae);
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
        let auto = fit_with(&level, &config).unwrap();
        assert_eq!(auto.selection.chosen, ModelKind::PdgmmVae, "{}", auto.selection.reason);
        let chain = auto.selection.chain.as_ref().unwrap();
        assert_eq!(chain.steps, 150, "{}", auto.selection.reason);
        assert!(chain.starts.iter().all(|s| !s.finished && s.screen_validation_nll.is_some()));
        assert!(chain.validation_nll >= auto.selection.linear.as_ref().unwrap().validation_nll);
        // And the nonlinear benchmark gets the chain, which runs to the end, the progress
        // telling the linear model's steps and then the chain's, up to their totals.
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
        let linear_end = seen.iter().rposition(|e| e.0 == ChainShape::Linear).unwrap();
        assert!(seen[linear_end + 1..].iter().all(|e| e.0 == ChainShape::Saturating) && linear_end + 1 < seen.len());
        assert!(seen.windows(2).all(|w| w[0].0 != w[1].0 || w[0].1 <= w[1].1), "steps only go forward");
        let linear_steps = ChainConfig::new(ChainShape::Linear);
        let last_linear = seen[linear_end];
        assert_eq!((last_linear.1, last_linear.2), (linear_steps.starts * linear_steps.steps, 4000));
        let last = seen.last().unwrap();
        assert_eq!((last.1, last.2), (2 * 600, 2 * 600));
    }
}
