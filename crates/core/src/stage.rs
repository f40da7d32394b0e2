//! The stage traits of the streaming pipeline. They live here, in the crate everything
//! depends on, so that file and device readers (`unmix-io`), the inference engine
//! (`unmix-infer`) and the pipeline (`unmix-stream`) meet without depending on each other.

/// Any error a stage reports; the pipeline passes it on unchanged.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Produces interleaved frames (a file reader, a device, a generator).
pub trait Source: Send {
    /// Channels per frame.
    fn channels(&self) -> usize;
    /// Sample rate in Hz.
    fn sample_rate_hz(&self) -> u32;
    /// Frames the source will produce, if known (for progress display).
    fn frames_total(&self) -> Option<usize>;
    /// Replaces `out` with up to `max_frames` frames; returns the frames read, 0 at the end.
    fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize, BoxError>;
}

/// A boxed source is a source, so sources wrap sources whatever they are.
impl<S: Source + ?Sized> Source for Box<S> {
    fn channels(&self) -> usize {
        (**self).channels()
    }
    fn sample_rate_hz(&self) -> u32 {
        (**self).sample_rate_hz()
    }
    fn frames_total(&self) -> Option<usize> {
        (**self).frames_total()
    }
    fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize, BoxError> {
        (**self).read(out, max_frames)
    }
}

/// Turns frames of `input_channels` into frames of `output_channels`, frame for frame.
pub trait Processor: Send {
    /// Channels per input frame.
    fn input_channels(&self) -> usize;
    /// Channels per output frame.
    fn output_channels(&self) -> usize;
    /// Processes whole frames; `output` holds as many frames as `input`.
    fn process(&mut self, input: &[f32], output: &mut [f32]) -> Result<(), BoxError>;
}

/// Consumes interleaved frames (a file writer, a device, a report).
pub trait Sink: Send {
    /// Appends whole frames.
    fn write(&mut self, samples: &[f32]) -> Result<(), BoxError>;
    /// Completes the output at the end of the stream. A sink dropped without `finish`
    /// (the stream ended in error) must leave no partial output behind.
    fn finish(self: Box<Self>) -> Result<(), BoxError>;
}

/// Score channels a scoring processor appends to every frame of sources, in this order:
/// 0. `log_prior`: `Σ_j log p_j(μ_j)` under the learned priors (nats; NaN: no model yet);
/// 1. `reconstruction_error`: `‖ẑ − z‖² / m`, the decoder's error on the standardised
///    channels;
/// 2. `log_prior_outlier`: 1 when the log-prior is below the training segment's 1st
///    percentile, else 0 (NaN when the model carries no baseline);
/// 3. `reconstruction_outlier`: 1 when the reconstruction error is above the training
///    segment's 99th percentile, else 0 (NaN likewise).
///
/// The scoring encoder (`unmix-infer`) writes them, the monitoring windows
/// (`unmix-monitor`) read them; the layout lives here so that both agree.
pub const SCORE_CHANNELS: usize = 4;
