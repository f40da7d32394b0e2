//! Errors reading or writing a model file.

use std::path::PathBuf;

/// What is wrong with a model file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file could not be written where it was asked to (a directory, an existing file
    /// not to be replaced, …).
    #[error(transparent)]
    Output(#[from] unmix_io::Error),
    /// The magic bytes are missing.
    #[error("not an unmix model file (bad magic bytes)")]
    NotAModel,
    /// A room's model where a model of the time domain is needed.
    #[error(
        "a room's model (the frequency domain, from `separate --domain stft`): `unmix apply` and `unmix live \
         --domain stft` read it, this needs a model of the time domain"
    )]
    RoomModel,
    /// Written by a newer unmix.
    #[error("model file format version {found} is newer than this unmix reads (up to {supported}); upgrade unmix")]
    NewerVersion {
        /// Version in the file.
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// The file is larger than a model can be.
    #[error("larger than the {most} bytes a model file can hold: not a model file")]
    TooLarge {
        /// The bound ([`unmix_core::limits::MAX_MODEL_FILE_BYTES`]).
        most: u64,
    },
    /// The file ends early.
    #[error("model file is truncated")]
    Truncated,
    /// The bytes are damaged.
    #[error("model file is corrupt: {0}")]
    Corrupt(String),
    /// The content is inconsistent.
    #[error("model file is inconsistent: {0}")]
    Invalid(String),
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
