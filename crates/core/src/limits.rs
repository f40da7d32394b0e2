//! The largest sizes unmix accepts, from its input or its options.
//!
//! Every size that decides how much memory or time a job takes — channels, training
//! frames, network widths, restarts, a CSV record, a model file — is checked against one of
//! these before the work starts, so that a mistyped option or a hostile file gets a clear
//! message instead of an allocation failure or hours of computing. Each is well above what
//! the use it bounds needs (`docs/reliability.md` lists them with the reasons).

/// Channels a separation, a model or a live session reads. Microphone arrays and
/// structural monitoring systems have tens; a recording with more can be separated a
/// subset at a time (`--channels`). The whitening's eigendecomposition grows as its cube.
pub const MAX_CHANNELS: usize = 256;

/// Samples (frames × channels) one buffer holds — a training segment, a monitoring
/// window, a live session's warm-up: 256 MiB of `f32`. The default training segment
/// (131 072 frames) stays below it up to 512 channels.
pub const MAX_BUFFERED_SAMPLES: usize = 1 << 26;

/// Gaussian components of one source's prior: a 1-D density needs a handful; each one
/// costs a column of every likelihood evaluation.
pub const MAX_PRIOR_COMPONENTS: usize = 64;

/// Units of one hidden layer of the PDGMM-VAE's encoder or decoder: a per-sample network
/// for tens of channels; a layer of this width already holds a million weights.
pub const MAX_HIDDEN_UNITS: usize = 1024;

/// Hidden layers of the encoder, and of the decoder.
pub const MAX_HIDDEN_LAYERS: usize = 8;

/// Candidates of the consensus restarts, and starts of a likelihood fit: each is a whole
/// training run.
pub const MAX_RESTARTS: usize = 64;

/// Bytes of one CSV record (one row): a million bytes hold a row of tens of thousands of
/// cells. A file without line breaks (not a CSV) is refused at this length instead of
/// being read into memory whole.
pub const MAX_CSV_RECORD_BYTES: usize = 1 << 20;

/// Bytes of a model file. The largest model the limits above allow is a few tens of
/// megabytes; a larger file is not a model, and is not read into memory to find out.
pub const MAX_MODEL_FILE_BYTES: u64 = 256 << 20;

/// Frames of the blocks a live session processes at a time: more than a second at audio
/// rates, where a real-time block is a few milliseconds.
pub const MAX_BLOCK_FRAMES: usize = 1 << 16;
