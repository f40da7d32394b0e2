//! The unmix model file (`*.unmix`): everything needed to apply a trained PDGMM-VAE, in
//! one file that is readable without burn (the real-time inference path must not depend
//! on the training framework).
//!
//! # Layout (all integers little-endian)
//! | bytes | content |
//! |---|---|
//! | 8 | magic `UNMIXMDL` |
//! | 4 | format version (`u32`) |
//! | 8 | header length `h` (`u64`) |
//! | h | header, UTF-8 JSON ([`ModelHeader`]) |
//! | 8 | weights length `w` in bytes (`u64`) |
//! | w | weights: `f32` values in the order of [`ModelWeights::flatten`] |
//! | 4 | CRC-32 of every byte before it |
//!
//! Weights are stored as raw `f32`, so a save → load round trip is bit-exact, and their
//! shapes follow from the header, so the file cannot describe a model it does not hold.
//!
//! A room's model ([`RoomModel`], written by `separate --domain stft`) has the same layout
//! under its own magic, `UNMIXRMD`: a header, every frequency bin's fixed filters and its
//! demixing.
//! [`AnyModel::load`] reads either.

mod error;
mod room;
mod weights;

pub use error::{Error, Result};
pub use room::{AnyModel, ROOM_FORMAT_VERSION, ROOM_MAGIC, RoomFilters, RoomHeader, RoomModel, RoomSpatial};
pub use weights::{
    ATANH_LIMIT, Activation, Architecture, DenseLayer, GmmParams, ModelWeights, MonotoneCurve, clamped_atanh,
};

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use unmix_core::limits::{MAX_CHANNELS, MAX_MODEL_FILE_BYTES, MAX_PRIOR_COMPONENTS};
use unmix_dsp::Normaliser;

/// Magic bytes at the start of every model file.
pub const MAGIC: &[u8; 8] = b"UNMIXMDL";
/// The format version this build writes; it reads this one and older. Version 2 added
/// [`ModelHeader::score_baseline`], version 3 [`ModelHeader::picked_channels`], version 4
/// [`ModelHeader::source_gains`], version 5 [`ModelWeights::architecture`], version 6
/// [`ModelWeights::sensor_curves`] (the post-nonlinear architecture), version 7
/// [`ModelHeader::temporal_prior`], version 8 [`ModelHeader::output_noise`]; older files
/// read as models without them.
pub const FORMAT_VERSION: u32 = 8;

/// Everything about a trained model except its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelHeader {
    /// Version of unmix that wrote the file.
    pub unmix_version: String,
    /// Channels the model expects at its input (before normalisation).
    pub channels: usize,
    /// Sample rate of the training data, in Hz.
    pub sample_rate_hz: u32,
    /// Number of sources (latent dimensions).
    pub sources: usize,
    /// Normalisation fitted on the training segment.
    pub normaliser: Normaliser,
    /// Full training configuration (burn `Config` JSON of the model crate).
    pub training_config: serde_json::Value,
    /// Training summary (epochs, final loss, convergence).
    pub training_summary: serde_json::Value,
    /// How the monitoring scores were spread on the training segment (absent in files of
    /// format version 1).
    #[serde(default)]
    pub score_baseline: Option<ScoreBaseline>,
    /// The channels of its training input the model reads, as picked when it was trained
    /// (`--channels`: numbers from 1, ranges, CSV header names); `None`: every channel
    /// (and in files before format version 3).
    #[serde(default)]
    pub picked_channels: Option<String>,
    /// What each source's posterior mean is multiplied by on output, so that a source comes
    /// out at the level it has in the recording, in the input's units (the RMS over the
    /// channels of its least-squares image, measured on the training segment): a source
    /// of a quiet recording is quiet, and an accelerometer's source is in its units.
    /// `None` (files before format version 4): the posterior means as they are.
    #[serde(default)]
    pub source_gains: Option<Vec<f32>>,
    /// The temporal prior of a linear model fitted with one (`--prior ar-gmm`): each
    /// source's autoregressive process and innovation density. The frame-wise scores of
    /// `apply` and `live` read [`ModelWeights::prior`] (each source's marginal density);
    /// this is what the fit found about the sources' spectra. `None`: sources modelled as
    /// independent samples (and files before format version 7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_prior: Option<TemporalPrior>,
    /// The variance of the sensor noise in each source's encoder output (the units of
    /// [`ModelWeights::prior`], before the gains), estimated from the channels beyond the
    /// sources. When present, each output is the posterior mean `E[s_j | y_j]` of its source
    /// given the encoder's output `y_j = s_j + e_j`, under the source's prior (the fitted
    /// mixture of `y_j` with the noise's variance taken out of every component) and Gaussian
    /// noise `e_j` of this variance: the PDGMM model's posterior for a linear decoder, which
    /// on noisy recordings of sources with peaked or several-moded densities is closer to
    /// the source than any linear demixing. `None`: the encoder's outputs as they are (and
    /// files before format version 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_noise: Option<Vec<f32>>,
}

/// Each source as an autoregressive process with its own innovation density,
/// `s_jt = Σ_i c_ji s_j(t−i) + e_jt`, `e_jt ~ Σ_k π_jk N(μ_jk, σ²_jk)`, in the units of the
/// sources before their output gains.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemporalPrior {
    /// Each source's coefficients `c_j1 … c_jp` (the same order `p` for every source).
    pub ar: Vec<Vec<f64>>,
    /// Each source's innovation density.
    pub innovations: Vec<InnovationDensity>,
}

/// A 1-D Gaussian mixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InnovationDensity {
    /// Component weights (sum to 1).
    pub weights: Vec<f64>,
    /// Component means.
    pub means: Vec<f64>,
    /// Component variances.
    pub variances: Vec<f64>,
}

/// The highest autoregressive order a model file holds.
pub const MAX_AR_ORDER: usize = 64;

impl TemporalPrior {
    fn check(&self, sources: usize) -> Result<()> {
        let order = self.ar.first().map_or(0, Vec::len);
        if self.ar.len() != sources || self.innovations.len() != sources {
            return Err(Error::Invalid(format!(
                "a temporal prior of {} processes and {} innovation densities for {sources} sources",
                self.ar.len(),
                self.innovations.len()
            )));
        }
        if order > MAX_AR_ORDER || self.ar.iter().any(|c| c.len() != order || c.iter().any(|v| !v.is_finite())) {
            return Err(Error::Invalid(format!(
                "the temporal prior's coefficients are not of one order up to {MAX_AR_ORDER}, or not finite"
            )));
        }
        for d in &self.innovations {
            let k = d.weights.len();
            let total: f64 = d.weights.iter().sum();
            if k == 0
                || k > MAX_PRIOR_COMPONENTS
                || d.means.len() != k
                || d.variances.len() != k
                || d.weights.iter().any(|w| w.is_nan() || *w < 0.0)
                || (total - 1.0).abs() > 1e-6
                || d.means.iter().any(|m| !m.is_finite())
                || d.variances.iter().any(|v| !(v.is_finite() && *v > 0.0))
            {
                return Err(Error::Invalid("a temporal prior's innovation density is not a Gaussian mixture".into()));
            }
        }
        Ok(())
    }
}

/// The per-frame monitoring scores of the training segment, summarised into the
/// thresholds beyond which a frame counts as unlike the training data: on data like the
/// training segment about 1 % of the frames fall beyond each.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreBaseline {
    /// Frames the thresholds were measured on.
    pub frames: usize,
    /// 1st percentile of the per-frame log-prior `Σ_j log p_j(μ_j)` (nats).
    pub log_prior_p01: f32,
    /// Median per-frame log-prior (nats), for reference.
    pub log_prior_median: f32,
    /// 99th percentile of the per-frame reconstruction error `‖ẑ − z‖² / m` (see
    /// `unmix_infer::Separator::process_scored`).
    pub reconstruction_error_p99: f32,
    /// Median per-frame reconstruction error, for reference.
    pub reconstruction_error_median: f32,
}

/// A model file in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile {
    /// Header.
    pub header: ModelHeader,
    /// Weights.
    pub weights: ModelWeights,
}

impl ModelFile {
    /// Serialises to bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = serde_json::to_vec(&HeaderOnDisk { header: self.header.clone(), layout: self.weights.layout() })
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(write_container(MAGIC, FORMAT_VERSION, &header, &self.weights.flatten()))
    }

    /// Parses bytes, checking magic, version, lengths, checksum and shapes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.starts_with(ROOM_MAGIC) {
            return Err(Error::RoomModel);
        }
        let (header_bytes, values) = read_container(bytes, MAGIC, FORMAT_VERSION)?;
        let on_disk: HeaderOnDisk =
            serde_json::from_slice(header_bytes).map_err(|e| Error::Corrupt(format!("header: {e}")))?;
        let weights = ModelWeights::unflatten(&on_disk.layout, &values)?;
        let file = ModelFile { header: on_disk.header, weights };
        file.check()?;
        Ok(file)
    }

    /// Checks that header and weights describe the same model.
    pub fn check(&self) -> Result<()> {
        self.weights.check()?;
        let h = &self.header;
        h.normaliser.check().map_err(|e| Error::Invalid(e.to_string()))?;
        if h.channels > MAX_CHANNELS || self.weights.prior.components > MAX_PRIOR_COMPONENTS {
            return Err(Error::Invalid(format!(
                "{} channels and {} components a prior, beyond the {MAX_CHANNELS} and {MAX_PRIOR_COMPONENTS} unmix \
                 trains",
                h.channels, self.weights.prior.components
            )));
        }
        if h.normaliser.input_channels() != h.channels {
            return Err(Error::Invalid(format!(
                "normaliser expects {} channels, header says {}",
                h.normaliser.input_channels(),
                h.channels
            )));
        }
        if self.weights.inputs() != h.normaliser.output_dims() {
            return Err(Error::Invalid(format!(
                "encoder takes {} inputs, normaliser gives {}",
                self.weights.inputs(),
                h.normaliser.output_dims()
            )));
        }
        if self.weights.architecture == Architecture::SaturatingChain && h.normaliser.whitening.is_some() {
            return Err(Error::Invalid("a saturating chain reads its channels unwhitened".into()));
        }
        if self.weights.architecture == Architecture::PostNonlinear && h.normaliser.whitening.is_some() {
            return Err(Error::Invalid("a post-nonlinear model reads its channels unwhitened".into()));
        }
        if self.weights.sources() != h.sources {
            return Err(Error::Invalid(format!(
                "encoder gives {} sources, header says {}",
                self.weights.sources(),
                h.sources
            )));
        }
        if let Some(prior) = &h.temporal_prior {
            prior.check(h.sources)?;
        }
        if let Some(noise) = &h.output_noise
            && (noise.len() != h.sources || noise.iter().any(|v| !(v.is_finite() && *v >= 0.0)))
        {
            return Err(Error::Invalid(format!(
                "{} output noise variances for {} sources, or one negative or not finite",
                noise.len(),
                h.sources
            )));
        }
        if let Some(gains) = &h.source_gains
            && (gains.len() != h.sources || gains.iter().any(|g| !(g.is_finite() && *g > 0.0)))
        {
            return Err(Error::Invalid(format!(
                "{} source gains for {} sources, or one not positive",
                gains.len(),
                h.sources
            )));
        }
        Ok(())
    }

    /// The output gain of every source (1 without [`ModelHeader::source_gains`]).
    pub fn source_gains(&self) -> Vec<f32> {
        self.header.source_gains.clone().unwrap_or_else(|| vec![1.0; self.header.sources])
    }

    /// Reorders and re-signs the sources as [`ModelWeights::relabel_sources`] does, their
    /// output gains, output noise and temporal prior with them (a source's sign leaves its
    /// AR coefficients and noise as they are and mirrors its innovation density).
    pub fn relabel_sources(&mut self, order: &[usize], signs: &[f32]) -> Result<()> {
        self.weights.relabel_sources(order, signs)?;
        if let Some(gains) = &mut self.header.source_gains {
            *gains = order.iter().map(|&j| gains[j]).collect();
        }
        if let Some(noise) = &mut self.header.output_noise {
            *noise = order.iter().map(|&j| noise[j]).collect();
        }
        if let Some(prior) = &mut self.header.temporal_prior {
            prior.ar = order.iter().map(|&j| prior.ar[j].clone()).collect();
            prior.innovations = order
                .iter()
                .zip(signs)
                .map(|(&j, &sign)| {
                    let mut d = prior.innovations[j].clone();
                    d.means.iter_mut().for_each(|m| *m *= f64::from(sign));
                    d
                })
                .collect();
        }
        Ok(())
    }

    /// Writes the file by `unmix_io`'s output rules: whole or not at all (a temporary file
    /// beside it, synced, then renamed), or through a FIFO or to standard output (`-`).
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        unmix_io::write_atomically(path, |out| {
            out.write_all(&bytes).map_err(|source| unmix_io::Error::Io { path: path.to_path_buf(), source })
        })?;
        Ok(())
    }

    /// Reads and validates a model file. What is not one is told by its first bytes, and
    /// nothing beyond [`MAX_MODEL_FILE_BYTES`] is read: a recording given as the model, or
    /// `/dev/zero`, is refused at once instead of being read into memory.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_bytes(&read_model_bytes(path)?)
    }
}

/// The bytes of a model file of either kind: what is not one is told by its first bytes,
/// and nothing beyond [`MAX_MODEL_FILE_BYTES`] is read.
fn read_model_bytes(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |source| Error::Io { path: path.to_path_buf(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    Read::by_ref(&mut file).take(MAGIC.len() as u64).read_to_end(&mut bytes).map_err(io)?;
    if bytes != MAGIC && bytes != ROOM_MAGIC {
        return Err(Error::NotAModel);
    }
    let too_large = Error::TooLarge { most: MAX_MODEL_FILE_BYTES };
    if file.metadata().map_err(io)?.len() > MAX_MODEL_FILE_BYTES {
        return Err(too_large);
    }
    // A FIFO's length shows only as it is read.
    file.take(MAX_MODEL_FILE_BYTES + 1 - MAGIC.len() as u64).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_MODEL_FILE_BYTES {
        return Err(too_large);
    }
    Ok(bytes)
}

/// The layout both kinds share: `magic`, `version`, the header's length and bytes, the
/// values' length and `f32` bytes, the CRC-32 of everything before it.
fn write_container(magic: &[u8; 8], version: u32, header: &[u8], values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + header.len() + 4 * values.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header);
    out.extend_from_slice(&((values.len() * 4) as u64).to_le_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Reads [`write_container`]'s layout under `magic`, of a version up to `supported`: the
/// header's bytes and the values, the checksum and lengths checked.
fn read_container<'a>(bytes: &'a [u8], magic: &[u8; 8], supported: u32) -> Result<(&'a [u8], Vec<f32>)> {
    if !bytes.starts_with(magic) {
        return Err(Error::NotAModel);
    }
    let mut cursor = Cursor { bytes, at: magic.len() };
    let version = u32::from_le_bytes(cursor.take(4)?.try_into().map_err(|_| Error::Truncated)?);
    if version > supported {
        return Err(Error::NewerVersion { found: version, supported });
    }
    if version == 0 {
        return Err(Error::Corrupt("format version 0 does not exist".into()));
    }
    let header_len = cursor.u64_len()?;
    let header_bytes = cursor.take(header_len)?;
    let values_len = cursor.u64_len()?;
    let value_bytes = cursor.take(values_len)?;
    let crc_at = cursor.at;
    let stored = u32::from_le_bytes(cursor.take(4)?.try_into().map_err(|_| Error::Truncated)?);
    if cursor.at != bytes.len() {
        return Err(Error::Corrupt(format!("{} unexpected bytes after the checksum", bytes.len() - cursor.at)));
    }
    if crc32fast::hash(&bytes[..crc_at]) != stored {
        return Err(Error::Corrupt("checksum mismatch".into()));
    }
    if !value_bytes.len().is_multiple_of(4) {
        return Err(Error::Corrupt("weights are not a whole number of f32 values".into()));
    }
    let values = value_bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok((header_bytes, values))
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderOnDisk {
    header: ModelHeader,
    layout: weights::Layout,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or(Error::Truncated)?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u64_len(&mut self) -> Result<usize> {
        let v = u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| Error::Truncated)?);
        usize::try_from(v).map_err(|_| Error::Truncated)
    }
}

#[cfg(test)]
mod tests;
