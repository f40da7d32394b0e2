//! Signal processing for unmix: per-channel normalisation and PCA whitening fitted on a
//! training segment, the small dense linear algebra they need, and the separation metrics
//! (|corr| after optimal matching, SI-SDR) used to score estimated sources; linear ICA
//! (FastICA) for warm starts and the source-count estimate (MDL); second-order blind
//! identification (SOBI), the reference for sources told apart by their spectra; and the
//! gross outliers a fit leaves out; the Fourier transform of real signals.

pub mod count;
mod error;
pub mod gmm;
pub mod ica;
pub mod linalg;
pub mod metrics;
mod normalise;
pub mod outliers;
pub mod sobi;
pub mod spectrum;

pub use error::{Error, Result};
pub use normalise::{Normaliser, NormaliserConfig};
