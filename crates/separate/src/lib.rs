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
    #[error("{channels} channels cannot be separated into {sources} sources (need at least as many channels as sources)")]
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
    /// Whiten (PCA) to `n` dimensions before the model; only meaningful when `m > n`.
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
    let whiten_to = (config.whiten && m > n).then_some(n);
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
    separator
        .process(recording.interleaved(), &mut out)
        .map_err(|e| Error::Format(unmix_format::Error::Invalid(e.to_string())))?;
    Ok(Recording::from_interleaved(recording.sample_rate_hz(), n, out).map_err(|e| {
        Error::Format(unmix_format::Error::Invalid(e.to_string()))
    })?)
}
