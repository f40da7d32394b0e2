//! A room's model: what `separate --domain stft` fitted, as fixed filters that `apply`
//! runs on other recordings of the same array and talkers' places, and as the demixing
//! `live --domain stft` starts from.
//!
//! Same layout as the time domain's file under the magic [`ROOM_MAGIC`]; its values,
//! complex (real and imaginary parts interleaved), are first every bin's filter per source
//! (`[((f · sources + s) · channels + c) · 2 + {0: re, 1: im}]`: a frame's image of the
//! source at the reference channel is the row times the frame), then every bin's whole
//! `channels × channels` demixing matrix (the sources' rows, then, with more channels than
//! sources, the rows spanning the rest; `[((f · channels + i) · channels + j) · 2 + …]`),
//! then, when [`RoomHeader::spatial`], the spatial model [`RoomSpatial`] holds.

use std::path::Path;

use serde::{Deserialize, Serialize};
use unmix_core::limits::MAX_CHANNELS;

use crate::{Error, ModelFile, Result, read_container, read_model_bytes, write_container};

/// Magic bytes at the start of a room's model file.
pub const ROOM_MAGIC: &[u8; 8] = b"UNMIXRMD";

/// The room model format version this build writes and reads (and older).
pub const ROOM_FORMAT_VERSION: u32 = 1;

/// Everything about a room's model except its demixing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomHeader {
    /// Version of unmix that wrote the file.
    pub unmix_version: String,
    /// Microphones (channels) in.
    pub channels: usize,
    /// Sources out, each its image at [`RoomHeader::reference`].
    pub sources: usize,
    /// Sample rate of the recording it was fitted on, Hz.
    pub sample_rate_hz: u32,
    /// Samples per STFT frame (periodic Hann, the transform's length).
    pub stft_frame: usize,
    /// Samples between STFT frames.
    pub stft_hop: usize,
    /// The channel (from 0) every source is projected back to.
    pub reference: usize,
    /// What the filters are.
    pub filters: RoomFilters,
    /// Whether the spatial model follows the demixing in the values ([`RoomSpatial`]):
    /// `apply` then runs it, its sources' powers learnt frame by frame.
    #[serde(default)]
    pub spatial: bool,
    /// The channels of its input it reads, as picked when it was fitted (`None`: all).
    #[serde(default)]
    pub picked_channels: Option<String>,
    /// The separation's settings.
    pub training_config: serde_json::Value,
    /// What the fit reported.
    pub training_summary: serde_json::Value,
}

/// Where a room's fixed filters come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoomFilters {
    /// The spatial model's multichannel Wiener filter with every source's power its mean
    /// over the recording (its long-term spectrum).
    LongTermWiener,
    /// The demixing's rows, projected back.
    Demixing,
}

impl RoomHeader {
    /// Checks that the header describes a model this build can run: what the sizes of
    /// its values follow from is in range before they are computed.
    pub fn check(&self) -> Result<()> {
        if self.channels == 0 || self.channels > MAX_CHANNELS || self.sources == 0 || self.sources > self.channels {
            return Err(Error::Invalid(format!(
                "{} sources from {} channels (1 to {MAX_CHANNELS} channels, at most one source each)",
                self.sources, self.channels
            )));
        }
        let (frame, hop) = (self.stft_frame, self.stft_hop);
        if frame < 4 || !frame.is_multiple_of(2) || frame > 1 << 16 || hop == 0 || !frame.is_multiple_of(hop) {
            return Err(Error::Invalid(format!("an STFT of {frame} samples every {hop}")));
        }
        if hop > frame / 2 || self.reference >= self.channels || self.sample_rate_hz == 0 {
            return Err(Error::Invalid(format!(
                "a hop of {hop} for frames of {frame}, reference channel {} of {}, {} Hz",
                self.reference.saturating_add(1),
                self.channels,
                self.sample_rate_hz
            )));
        }
        Ok(())
    }

    /// Frequency bins per frame.
    pub fn bins(&self) -> usize {
        self.stft_frame / 2 + 1
    }

    /// Values of the filters: a complex number per bin, source and channel.
    pub fn filter_values(&self) -> usize {
        self.bins() * self.sources * self.channels * 2
    }

    /// Values of the demixing: a complex matrix per bin.
    pub fn demixing_values(&self) -> usize {
        self.bins() * self.channels * self.channels * 2
    }

    /// Values of the spatial model, when there is one: `Q` (a complex matrix per bin),
    /// the sources' weights (`sources × channels`) and mean powers (`sources × bins`).
    pub fn spatial_values(&self) -> [usize; 3] {
        if self.spatial {
            [self.demixing_values(), self.sources * self.channels, self.sources * self.bins()]
        } else {
            [0; 3]
        }
    }
}

/// The spatial model of a room's recording (FastMNMF2's, as `separate --domain stft`
/// fits it): every bin's `Q` that makes the channels' covariances diagonal, every
/// source's non-negative weights over `Q`'s channels, and every source's power per bin
/// averaged over the recording (where `apply` starts each frame's estimate).
#[derive(Debug, Clone, PartialEq)]
pub struct RoomSpatial {
    /// `Q(f)`, complex, `[((f · channels + i) · channels + j) · 2 + {re, im}]`.
    pub q: Vec<f32>,
    /// Every source's weights, `[s · channels + i]`, non-negative.
    pub g: Vec<f32>,
    /// Every source's mean power per bin, `[s · bins + f]`, non-negative.
    pub power: Vec<f32>,
}

/// A room's model in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomModel {
    /// Header.
    pub header: RoomHeader,
    /// Every bin's filter per source (module docs).
    pub filters: Vec<f32>,
    /// Every bin's demixing matrix (module docs).
    pub demixing: Vec<f32>,
    /// The spatial model, when the header says so.
    pub spatial: Option<RoomSpatial>,
}

impl RoomModel {
    /// Checks that the header describes a model this build can run and the demixing is
    /// one of its shape, finite.
    pub fn check(&self) -> Result<()> {
        let h = &self.header;
        h.check()?;
        if self.filters.len() != h.filter_values() || self.demixing.len() != h.demixing_values() {
            return Err(Error::Invalid(format!(
                "{} filter and {} demixing values for {} bins of {} sources from {} channels ({} and {})",
                self.filters.len(),
                self.demixing.len(),
                h.bins(),
                h.sources,
                h.channels,
                h.filter_values(),
                h.demixing_values()
            )));
        }
        if self.filters.iter().chain(&self.demixing).any(|v| !v.is_finite()) {
            return Err(Error::Invalid("the filters or the demixing hold NaN or infinite values".into()));
        }
        match (&self.spatial, h.spatial_values()) {
            (None, [0, 0, 0]) => Ok(()),
            (Some(sp), [q, g, power]) if sp.q.len() == q && sp.g.len() == g && sp.power.len() == power => {
                if sp.q.iter().any(|v| !v.is_finite())
                    || sp.g.iter().chain(&sp.power).any(|v| !(v.is_finite() && *v >= 0.0))
                {
                    return Err(Error::Invalid("the spatial model holds NaN, infinite or negative values".into()));
                }
                Ok(())
            }
            _ => Err(Error::Invalid("the spatial model does not match the header".into())),
        }
    }

    /// The same model with its sources in `order`: source `i` of the result is source
    /// `order[i]` of this one — its filters, its demixing's row and its spatial model's
    /// weights and powers. A live session puts the model it fitted in the order of the
    /// outputs it was already giving; the file keeps that order.
    pub fn reordered(&self, order: &[usize]) -> Result<RoomModel> {
        self.check()?;
        let h = &self.header;
        let (m, n, bins) = (h.channels, h.sources, h.bins());
        let mut seen = vec![false; n];
        if order.len() != n || order.iter().any(|&k| k >= n || std::mem::replace(&mut seen[k], true)) {
            return Err(Error::Invalid(format!("{order:?} is not an order of {n} sources")));
        }
        // Complex values: two floats each.
        let filters = (0..bins)
            .flat_map(|f| order.iter().map(move |&k| (f * n + k) * m * 2))
            .flat_map(|at| self.filters[at..at + m * 2].iter().copied())
            .collect();
        let mut demixing = self.demixing.clone();
        for f in 0..bins {
            let block = f * m * m * 2;
            for (i, &k) in order.iter().enumerate() {
                let (to, from) = (block + i * m * 2, block + k * m * 2);
                demixing[to..to + m * 2].copy_from_slice(&self.demixing[from..from + m * 2]);
            }
        }
        let spatial = self.spatial.as_ref().map(|sp| RoomSpatial {
            q: sp.q.clone(),
            g: order.iter().flat_map(|&k| sp.g[k * m..(k + 1) * m].iter().copied()).collect(),
            power: order.iter().flat_map(|&k| sp.power[k * bins..(k + 1) * bins].iter().copied()).collect(),
        });
        Ok(RoomModel { header: self.header.clone(), filters, demixing, spatial })
    }

    /// Serialises to bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.check()?;
        let header = serde_json::to_vec(&self.header).map_err(|e| Error::Invalid(e.to_string()))?;
        let spatial = self.spatial.iter().flat_map(|sp| sp.q.iter().chain(&sp.g).chain(&sp.power));
        let values: Vec<f32> = self.filters.iter().chain(&self.demixing).chain(spatial).copied().collect();
        Ok(write_container(ROOM_MAGIC, ROOM_FORMAT_VERSION, &header, &values))
    }

    /// Parses bytes, checking magic, version, lengths, checksum and shapes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let (header, mut values) = read_container(bytes, ROOM_MAGIC, ROOM_FORMAT_VERSION)?;
        let header: RoomHeader = serde_json::from_slice(header).map_err(|e| Error::Corrupt(format!("header: {e}")))?;
        header.check()?;
        let split = header.filter_values();
        let [q, g, power] = header.spatial_values();
        let expected = split + header.demixing_values() + q + g + power;
        if values.len() != expected {
            return Err(Error::Invalid(format!(
                "{} values where the header asks for {expected} (filters, demixing{})",
                values.len(),
                if header.spatial { ", spatial model" } else { "" }
            )));
        }
        let spatial = header.spatial.then(|| {
            let mut rest = values.split_off(split + header.demixing_values());
            let mut g = rest.split_off(q);
            let power = g.split_off(g.len() - power);
            RoomSpatial { q: rest, g, power }
        });
        let demixing = values.split_off(split);
        let model = Self { header, filters: values, demixing, spatial };
        model.check()?;
        Ok(model)
    }

    /// Writes the file whole or not at all, as [`ModelFile::save`] does.
    pub fn save(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        let bytes = self.to_bytes()?;
        unmix_io::write_atomically(path, |out| {
            out.write_all(&bytes).map_err(|source| unmix_io::Error::Io { path: path.to_path_buf(), source })
        })?;
        Ok(())
    }
}

/// A model file of either kind.
#[derive(Debug, Clone, PartialEq)]
pub enum AnyModel {
    /// A model of the time domain (PDGMM-VAE and the models of `separate --domain time`).
    Time(Box<ModelFile>),
    /// A room's model (`separate --domain stft`).
    Room(Box<RoomModel>),
}

impl AnyModel {
    /// Parses either kind by its magic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.starts_with(ROOM_MAGIC) {
            Ok(Self::Room(Box::new(RoomModel::from_bytes(bytes)?)))
        } else {
            Ok(Self::Time(Box::new(ModelFile::from_bytes(bytes)?)))
        }
    }

    /// Reads and validates a model file of either kind (bounded as [`ModelFile::load`]).
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_bytes(&read_model_bytes(path)?)
    }

    /// Writes the file whole or not at all ([`ModelFile::save`], [`RoomModel::save`]).
    pub fn save(&self, path: &Path) -> Result<()> {
        match self {
            Self::Time(model) => model.save(path),
            Self::Room(model) => model.save(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(channels: usize, sources: usize) -> RoomModel {
        let header = RoomHeader {
            unmix_version: "test".into(),
            channels,
            sources,
            sample_rate_hz: 16_000,
            stft_frame: 16,
            stft_hop: 4,
            reference: 0,
            filters: RoomFilters::LongTermWiener,
            spatial: true,
            picked_channels: None,
            training_config: serde_json::json!({ "prior": "low-rank" }),
            training_summary: serde_json::json!({ "iterations": 3 }),
        };
        let values = |len: usize, phase: f32| (0..len).map(|i| (i as f32 * 0.37 + phase).sin()).collect();
        let [q, g, power] = header.spatial_values();
        let positive = |len: usize| (0..len).map(|i| 0.1 + (i % 7) as f32).collect();
        RoomModel {
            filters: values(header.filter_values(), 0.0),
            demixing: values(header.demixing_values(), 1.0),
            spatial: Some(RoomSpatial { q: values(q, 2.0), g: positive(g), power: positive(power) }),
            header,
        }
    }

    /// A room's model comes back bit for bit, by either reader, and the time domain's
    /// reader names it instead of calling it no model.
    #[test]
    fn a_room_model_round_trips() {
        let model = room(3, 2);
        let bytes = model.to_bytes().unwrap();
        assert_eq!(RoomModel::from_bytes(&bytes).unwrap(), model);
        assert_eq!(AnyModel::from_bytes(&bytes).unwrap(), AnyModel::Room(Box::new(model)));
        assert!(matches!(ModelFile::from_bytes(&bytes), Err(Error::RoomModel)));
    }

    /// Damage anywhere is caught: truncation, a flipped byte (the checksum), a newer
    /// version, and a header that does not fit its demixing.
    #[test]
    fn a_damaged_room_model_is_refused() {
        let bytes = room(2, 2).to_bytes().unwrap();
        assert!(matches!(RoomModel::from_bytes(&bytes[..bytes.len() - 3]), Err(Error::Truncated)));
        let mut flipped = bytes.clone();
        flipped[40] ^= 0x10;
        assert!(RoomModel::from_bytes(&flipped).is_err());
        let mut newer = bytes.clone();
        newer[8..12].copy_from_slice(&(ROOM_FORMAT_VERSION + 1).to_le_bytes());
        assert!(matches!(RoomModel::from_bytes(&newer), Err(Error::NewerVersion { .. })));
        for broken in [
            RoomModel { demixing: vec![0.0; 4], ..room(2, 2) },
            RoomModel { header: RoomHeader { sources: 3, ..room(2, 2).header }, ..room(2, 2) },
            RoomModel { header: RoomHeader { stft_hop: 5, ..room(2, 2).header }, ..room(2, 2) },
            RoomModel { header: RoomHeader { reference: 2, ..room(2, 2).header }, ..room(2, 2) },
        ] {
            assert!(matches!(broken.to_bytes(), Err(Error::Invalid(_))), "{:?}", broken.header);
        }
        let mut nan = room(2, 1);
        nan.demixing[5] = f32::NAN;
        assert!(nan.to_bytes().is_err());
        let mut negative = room(2, 1);
        negative.spatial.as_mut().unwrap().g[1] = -1.0;
        assert!(negative.to_bytes().is_err());
        // Without the spatial model, as the header says, it round-trips too; a header
        // that promises one the values lack does not.
        let mut plain = room(3, 2);
        (plain.header.spatial, plain.spatial) = (false, None);
        assert_eq!(RoomModel::from_bytes(&plain.to_bytes().unwrap()).unwrap(), plain);
        plain.header.spatial = true;
        assert!(plain.to_bytes().is_err());
    }

    /// Reordering moves each source's filter, demixing row, weights and powers together,
    /// leaves the demixing's rows beyond the sources and `Q` where they were, and undoes
    /// itself with the inverse order; an order that is no permutation is refused.
    #[test]
    fn reordering_moves_every_part_of_a_source() {
        let model = room(4, 3);
        let order = [2, 0, 1];
        let moved = model.reordered(&order).unwrap();
        moved.check().unwrap();
        let (m, n, bins) = (4, 3, model.header.bins());
        let spatial = (model.spatial.as_ref().unwrap(), moved.spatial.as_ref().unwrap());
        for (i, &k) in order.iter().enumerate() {
            for f in 0..bins {
                let row = |values: &[f32], rows: usize, s: usize| values[((f * rows + s) * m) * 2..][..m * 2].to_vec();
                assert_eq!(row(&moved.filters, n, i), row(&model.filters, n, k));
                assert_eq!(row(&moved.demixing, m, i), row(&model.demixing, m, k));
                assert_eq!(row(&moved.demixing, m, n), row(&model.demixing, m, n), "the fourth row stays");
            }
            assert_eq!(spatial.1.g[i * m..(i + 1) * m], spatial.0.g[k * m..(k + 1) * m]);
            assert_eq!(spatial.1.power[i * bins..(i + 1) * bins], spatial.0.power[k * bins..(k + 1) * bins]);
        }
        assert_eq!(spatial.1.q, spatial.0.q);
        assert_eq!(moved.reordered(&[1, 2, 0]).unwrap(), model);
        for wrong in [&[0, 1][..], &[0, 1, 1], &[0, 1, 3]] {
            assert!(matches!(model.reordered(wrong), Err(Error::Invalid(_))), "{wrong:?}");
        }
    }
}
