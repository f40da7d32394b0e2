//! The offline separation job: fit the normalisation on a training segment, train
//! PDGMM-VAE on it, package everything as a [`ModelFile`], and apply the encoder to whole
//! recordings through the burn-free [`Separator`].
//!
//! Sources written at the end of training and sources from `unmix apply` come from the
//! same exported weights and the same code, so they are identical bit for bit.

use unmix_core::Recording;
use unmix_dsp::{Normaliser, NormaliserConfig};
use unmix_format::{ModelFile, ModelHeader};
use unmix_infer::Separator;
use unmix_model::{Backend, EpochRecord, ShuffledRows, Trainer, TrainingConfig, TrainingHistory};

/// Fewest frames a training segment may have.
pub const MIN_TRAIN_FRAMES: usize = 256;

/// Default cap on the training segment: enough frames to fit the per-sample model well,
/// few enough that memory stays bounded and an epoch stays short whatever the input length.
pub const DEFAULT_MAX_TRAIN_FRAMES: usize = 131_072;

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
    /// Training failed.
    #[error(transparent)]
    Model(#[from] unmix_model::Error),
    /// The model could not be packaged.
    #[error(transparent)]
    Format(#[from] unmix_format::Error),
    /// The encoder refused a block.
    #[error(transparent)]
    Infer(#[from] unmix_infer::Error),
    /// The sources do not form a recording.
    #[error(transparent)]
    Recording(#[from] unmix_core::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Settings of a separation job.
#[derive(Debug, Clone)]
pub struct SeparateConfig {
    /// Number of sources `n`.
    pub sources: usize,
    /// Train on at most this many frames from the start of the input.
    pub max_train_frames: usize,
    /// Whiten (PCA) to `n` dimensions before the model: decorrelates the channels (and
    /// reduces them to `n` when `m > n`), leaving the model a rotation to find.
    pub whiten: bool,
    /// Training settings; `model.inputs` and `model.sources` are filled in by [`fit`].
    pub training: TrainingConfig,
    /// burn backend.
    pub backend: Backend,
}

/// Trains a model on the head of `recording`.
pub fn fit(
    recording: &Recording,
    config: &SeparateConfig,
    on_epoch: &mut dyn FnMut(&EpochRecord),
) -> Result<(ModelFile, TrainingHistory)> {
    let (m, n) = (recording.channels(), config.sources);
    if n == 0 || m < n {
        return Err(Error::TooFewChannels { channels: m, sources: n });
    }
    let segment = recording.head(config.max_train_frames);
    if segment.frames() < MIN_TRAIN_FRAMES {
        return Err(Error::TooShort { frames: segment.frames() });
    }
    let whiten_to = config.whiten.then_some(n);
    let normaliser = Normaliser::fit(&segment, NormaliserConfig { whiten_to })?;
    let data = normaliser.transform(&segment)?;
    let mut training = config.training.clone();
    training.model.inputs = normaliser.output_dims();
    training.model.sources = n;
    let trainer = Trainer::new(training.clone(), config.backend)?;
    let mut plan = ShuffledRows { batch_size: training.batch_size };
    let (model, history) = trainer.fit(&data, &mut plan, on_epoch)?;
    let file = ModelFile {
        header: ModelHeader {
            unmix_version: env!("CARGO_PKG_VERSION").to_string(),
            channels: m,
            sample_rate_hz: recording.sample_rate_hz(),
            sources: n,
            normaliser,
            training_config: serde_json::to_value(&training).unwrap_or_default(),
            training_summary: serde_json::to_value(&history.summary).unwrap_or_default(),
        },
        weights: model.export(),
    };
    file.check()?;
    Ok((file, history))
}

/// Applies a model's encoder to every frame of `recording`: the posterior means.
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
            sources,
            max_train_frames: 2000,
            whiten: true,
            training: TrainingConfig::new(model).with_max_epochs(3).with_min_epochs(3),
            backend: Backend::default_compiled().unwrap(),
        }
    }

    /// The plain-Rust encoder and burn's forward pass agree to 1e-5 relative, for an MLP
    /// and for a linear encoder, with and without dimension reduction.
    #[test]
    fn separator_matches_the_burn_forward_pass() {
        for (sensors, hidden) in [(3, vec![16, 8]), (5, vec![]), (3, vec![32])] {
            let data =
                generate(&SynthConfig { sensors, frames: 3000, ..SynthConfig::paper(MixKind::Nonlinear, 2) }).unwrap();
            let (model, _) = fit(&data.mixture, &quick_config(3, hidden), &mut |_| {}).unwrap();
            let ours = apply(&model, &data.mixture).unwrap();
            let device = Backend::default_compiled().unwrap().device().unwrap();
            let burn_model = PdgmmVae::from_weights(&model.weights, &device).unwrap();
            let normalised = model.header.normaliser.transform(&data.mixture).unwrap();
            let theirs = burn_model.encode_all(&normalised, model.header.normaliser.output_dims(), &device);
            assert_eq!(ours.interleaved().len(), theirs.len());
            let scale = theirs.iter().fold(0.0f32, |a, b| a.max(b.abs()));
            for (a, b) in ours.interleaved().iter().zip(&theirs) {
                assert!((a - b).abs() <= 1e-5 * scale.max(1.0), "{a} vs {b}");
            }
        }
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
        let (model, _) = fit(&data.mixture, &quick_config(2, vec![]), &mut |_| {}).unwrap();
        let two = Recording::from_interleaved(8000, 2, vec![0.0; 20]).unwrap();
        assert!(matches!(apply(&model, &two), Err(Error::ChannelMismatch { expected: 3, got: 2 })));
    }

    #[test]
    fn seeded_training_is_reproducible() {
        let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 3) }).unwrap();
        let (a, _) = fit(&data.mixture, &quick_config(3, vec![8]), &mut |_| {}).unwrap();
        let (b, _) = fit(&data.mixture, &quick_config(3, vec![8]), &mut |_| {}).unwrap();
        assert_eq!(a.weights, b.weights);
    }
}
