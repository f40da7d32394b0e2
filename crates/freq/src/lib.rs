//! Frequency-domain separation for reverberant rooms, where every microphone hears each
//! source through its own delays and echoes (a convolutive mixture): the STFT turns the
//! convolution into one instantaneous mixture per frequency bin (for echoes shorter than
//! a frame), which independent vector analysis separates with the bins of a source held
//! together by its prior, so that no permutation between bins is left to solve.
//!
//! - [`stft`]: analysis and exact overlap-add resynthesis;
//! - [`iva`]: the demixing per bin, its priors, and projection back to a reference
//!   microphone;
//! - [`online`]: the same demixing frame by frame with forgetting statistics, for live
//!   input;
//! - [`evidence`]: whether a recording's cross-spectra are an instantaneous mixture's
//!   (what tells a room's recording from one for the time domain);
//! - [`separate_recording`]: the whole path on a recording; [`room_model`]: its fit as a
//!   room's model file, [`room_separator`]: that file's separator, frame by frame.

pub mod complex;
pub mod evidence;
pub mod iva;
pub mod mnmf;
pub mod online;
pub mod stft;

use unmix_core::{CancelToken, Recording};

pub use evidence::{MixingEvidence, mixing_evidence};
pub use iva::{Demixing, IvaConfig, IvaFit, Observations, SourcePrior};
pub use mnmf::{MnmfConfig, MnmfFit, SpatialFilter};
pub use online::{OnlineConfig, OnlineIva, RoomHandover, continue_outputs, room_handover, sounding_from};
/// The complex numbers of every spectrum and demixing here.
pub use realfft::num_complex::Complex64;
pub use stft::{Spectrogram, Stft, StftConfig};

/// What frequency-domain separation can refuse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Settings that cannot work.
    #[error("{0}")]
    Config(String),
    /// Arrays of mismatched shapes.
    #[error("{0}")]
    Shape(String),
    /// Data that cannot be separated.
    #[error("{0}")]
    Data(String),
    /// A recording could not be built.
    #[error(transparent)]
    Core(#[from] unmix_core::Error),
    /// Stopped by its cancel token.
    #[error("cancelled")]
    Cancelled,
}

/// What a frequency-domain fit is fitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitStage {
    /// The demixing of every bin (independent vector analysis).
    Demixing,
    /// The spatial model, started from the demixing.
    SpatialModel,
}

/// Where a frequency-domain fit stands: `done` of a stage's `iterations`, in start `start`
/// (from 0) of `starts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FitProgress {
    /// What is being fitted.
    pub stage: FitStage,
    /// The random start, from 0.
    pub start: usize,
    /// Random starts in all.
    pub starts: usize,
    /// Iterations of the stage done in this start.
    pub done: usize,
    /// The stage's iterations.
    pub iterations: usize,
}

/// How a caller follows a fit and stops it: `cancel` stops it at its next iteration
/// ([`Error::Cancelled`]); `progress` sees every iteration start and the stage's end.
#[derive(Clone, Copy, Default)]
pub struct Watch<'a> {
    /// Stops the fit between iterations.
    pub cancel: Option<&'a CancelToken>,
    /// Told where the fit stands, on the fitting thread.
    pub progress: Option<&'a dyn Fn(FitProgress)>,
}

impl<'a> Watch<'a> {
    /// A fit stopped by `cancel`, followed by no one.
    pub fn cancel(cancel: &'a CancelToken) -> Self {
        Self { cancel: Some(cancel), progress: None }
    }

    /// Before an iteration: stops a cancelled fit, and tells `done` of `iterations`.
    fn step(&self, stage: FitStage, done: usize, iterations: usize) -> Result<()> {
        if self.cancel.is_some_and(CancelToken::is_cancelled) {
            return Err(Error::Cancelled);
        }
        self.tell(stage, done, iterations);
        Ok(())
    }

    /// Tells `done` of `iterations` (one start of one).
    fn tell(&self, stage: FitStage, done: usize, iterations: usize) {
        if let Some(progress) = self.progress {
            progress(FitProgress { stage, start: 0, starts: 1, done, iterations });
        }
    }
}

// The allocation-free test of the online separator counts this thread's allocations.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: unmix_test_support::CountingAllocator = unmix_test_support::CountingAllocator;

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A recording separated in the frequency domain.
#[derive(Debug, Clone)]
pub struct FrequencySeparation {
    /// Every source's image at the reference channel, in its units, one channel per
    /// source.
    pub sources: Recording,
    /// The independent vector analysis (its demixing projected back).
    pub fit: IvaFit,
    /// The spatial model fitted from it, when asked for.
    pub spatial: Option<MnmfFit>,
}

/// Separates `recording` into `sources` sources' images at channel `reference`: STFT,
/// independent vector analysis, then (with `spatial`) the multichannel NMF model started
/// from its demixing — the two run from [`MnmfConfig::starts`] random draws and the
/// start of lowest negative log-likelihood kept — its Wiener filter (or, without it,
/// projection back), overlap-add.
pub fn separate_recording(
    recording: &Recording,
    sources: usize,
    stft: StftConfig,
    config: &IvaConfig,
    spatial: Option<&MnmfConfig>,
    reference: usize,
    watch: Watch<'_>,
) -> Result<FrequencySeparation> {
    let transform = Stft::new(stft)?;
    let (m, len) = (recording.channels(), recording.frames());
    let x = observe(recording, &transform)?;
    let (mut fit, images, spatial) = match spatial {
        Some(spatial) => {
            let (demixing, model) = best_start(&x, sources, config, spatial, watch)?;
            // With more microphones than sources every frame's powers are estimated from
            // more channel powers than there are sources, and learning them frame by
            // frame beats the fit's low-rank powers (+0.1 to +3.8 dB on the six 2 × 3 and
            // 2 × 4 rooms); with as many, the frame's estimate fits its noise too and the
            // low-rank powers are kept (−1.4 to +0.6 dB either way: docs/results.md#rooms).
            let images =
                if sources < m { model.adaptive_images(&x, reference)? } else { model.images(&x, reference)? };
            (demixing, images, Some(model))
        }
        None => (iva::separate(&x, sources, config, watch)?, Vec::new(), None),
    };
    fit.demixing.project_back(&x, reference)?;
    let images = if spatial.is_some() { images } else { fit.demixing.demix(&x) };
    let signals: Vec<Vec<f64>> = images.iter().map(|s| transform.synthesise(s, len)).collect::<Result<_>>()?;
    let interleaved: Vec<f32> = (0..len).flat_map(|t| signals.iter().map(move |s| s[t] as f32)).collect();
    Ok(FrequencySeparation {
        sources: Recording::from_interleaved(recording.sample_rate_hz(), sources, interleaved)?,
        fit,
        spatial,
    })
}

/// The demixing and the spatial model started from it, from [`MnmfConfig::starts`]
/// random draws of both, the start of lowest negative log-likelihood kept.
fn best_start(
    x: &Observations,
    sources: usize,
    config: &IvaConfig,
    spatial: &MnmfConfig,
    watch: Watch<'_>,
) -> Result<(IvaFit, MnmfFit)> {
    let mut best: Option<(IvaFit, MnmfFit)> = None;
    let starts = spatial.starts.max(1);
    for draw in 0..starts {
        let seed = |base: u64| base.wrapping_add(draw as u64);
        // Each start's iterations are told as this start's.
        let relay = |step: FitProgress| {
            if let Some(progress) = watch.progress {
                progress(FitProgress { start: draw, starts, ..step });
            }
        };
        let watch = Watch { cancel: watch.cancel, progress: Some(&relay) };
        let demixing = iva::separate(x, sources, &IvaConfig { seed: seed(config.seed), ..config.clone() }, watch)?;
        let mut model = mnmf::fit(
            x,
            sources,
            &MnmfConfig { seed: seed(spatial.seed), ..spatial.clone() },
            Some(&demixing.full),
            watch,
        )?;
        model.chosen_start = draw;
        if best.as_ref().is_none_or(|(_, b)| model.nll < b.nll) {
            best = Some((demixing, model));
        }
    }
    best.ok_or_else(|| Error::Config("no start".into()))
}

/// A room's model of `recording` without its sources: the STFT, then
/// [`separate_recording`]'s demixing and spatial model (the best of
/// [`MnmfConfig::starts`]). What a live session fits on its latest seconds and runs with
/// [`OnlineIva::spatial`], the demixing's whole matrices ([`IvaFit::full`]) as its
/// sources' directions ([`OnlineIva::with_directions`]).
pub fn fit_room_model(
    recording: &Recording,
    sources: usize,
    stft: StftConfig,
    config: &IvaConfig,
    spatial: &MnmfConfig,
    watch: Watch<'_>,
) -> Result<(IvaFit, MnmfFit)> {
    best_start(&observe(recording, &Stft::new(stft)?)?, sources, config, spatial, watch)
}

/// How a room's model was fitted, as its file records it.
#[derive(Debug, Clone)]
pub struct RoomFitSettings<'a> {
    /// The STFT the fit ran on.
    pub stft: StftConfig,
    /// The demixing's settings.
    pub separation: &'a IvaConfig,
    /// The spatial model's, when one was fitted.
    pub spatial: Option<&'a MnmfConfig>,
    /// Sample rate of the recording, Hz.
    pub sample_rate_hz: u32,
    /// Frames (samples of every channel) fitted on.
    pub frames: usize,
    /// The channels of the input it reads, as picked (`None`: all).
    pub picked_channels: Option<String>,
}

/// The model file of a room's fit (`demixing`, then the `spatial` model started from it
/// when there is one), its sources' images at the first channel: its fixed filters (the
/// spatial model's long-term Wiener filter, else the demixing's rows, which must then be
/// projected back, as [`separate_recording`]'s are), the demixing's whole matrices (what
/// `live --domain stft --model` starts from) and the spatial model (what `apply` runs).
/// What `separate --domain stft` saves, and what a live session in a room saves of the
/// model that took over.
pub fn room_model(
    settings: RoomFitSettings<'_>,
    demixing: &IvaFit,
    spatial: Option<&MnmfFit>,
) -> Result<unmix_format::RoomModel> {
    use unmix_format::{RoomFilters, RoomHeader, RoomModel, RoomSpatial};
    let d = &demixing.demixing;
    let (filters, kind) = match spatial {
        Some(model) => (model.fixed_filters(0)?, RoomFilters::LongTermWiener),
        None => (d.w.clone(), RoomFilters::Demixing),
    };
    let single = |values: &[Complex64]| values.iter().flat_map(|v| [v.re as f32, v.im as f32]).collect();
    let spatial_fit = spatial.map(|s| {
        serde_json::json!({
            "nll_per_bin_and_frame": s.nll,
            "chosen_start": s.chosen_start,
        })
    });
    let model = RoomModel {
        header: RoomHeader {
            unmix_version: env!("CARGO_PKG_VERSION").to_string(),
            channels: d.channels,
            sources: d.sources,
            sample_rate_hz: settings.sample_rate_hz,
            stft_frame: settings.stft.frame,
            stft_hop: settings.stft.hop,
            reference: 0,
            filters: kind,
            spatial: spatial.is_some(),
            picked_channels: settings.picked_channels,
            training_config: serde_json::json!({
                "stft": settings.stft,
                "separation": settings.separation,
                "spatial_model": settings.spatial,
            }),
            training_summary: serde_json::json!({
                "frames": settings.frames,
                "iterations": demixing.iterations,
                "spatial_fit": spatial_fit,
            }),
        },
        filters: single(&filters),
        demixing: single(&demixing.full),
        spatial: spatial.map(|model| {
            let filter = model.spatial_filter();
            let reals = |v: &[f64]| v.iter().map(|&x| x as f32).collect();
            RoomSpatial { q: single(&filter.q), g: reals(&filter.g), power: reals(&filter.power) }
        }),
    };
    model.check().map_err(|e| Error::Data(format!("the room's model: {e}")))?;
    Ok(model)
}

/// The frame-by-frame separator of a room's model file, as [`room_model`] wrote it: its
/// spatial model with every source's power learnt frame by frame where it has one
/// ([`OnlineIva::spatial`]), else its fixed filters ([`OnlineIva::fixed`]). What `apply`
/// and `separate`'s stream after its head run (a live session from the model builds the
/// same separator from [`room_spatial_filter`] with its own settings).
pub fn room_separator(model: &unmix_format::RoomModel) -> Result<OnlineIva> {
    let h = &model.header;
    let config = room_online_config(h);
    match room_spatial_filter(model) {
        Some(filter) => OnlineIva::spatial(h.channels, h.sources, config, &filter),
        None => OnlineIva::fixed(h.channels, h.sources, config, &stored_complex(&model.filters)),
    }
}

/// The STFT and reference microphone a room model file's filters are per bin of, with the
/// online separator's default forgetting and prior (a live session sets its own).
pub fn room_online_config(header: &unmix_format::RoomHeader) -> OnlineConfig {
    OnlineConfig {
        stft: StftConfig { frame: header.stft_frame, hop: header.stft_hop },
        reference: header.reference,
        ..OnlineConfig::DEFAULT
    }
}

/// A room model file's spatial model as [`OnlineIva::spatial`] takes it, when it has one.
pub fn room_spatial_filter(model: &unmix_format::RoomModel) -> Option<SpatialFilter> {
    let reals = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect();
    model.spatial.as_ref().map(|sp| SpatialFilter {
        q: stored_complex(&sp.q),
        g: reals(&sp.g),
        power: reals(&sp.power),
    })
}

/// Complex values as a room model file stores them, their real and imaginary parts in
/// turn (its `filters`, `demixing` and the spatial model's `q`).
pub fn stored_complex(values: &[f32]) -> Vec<Complex64> {
    values.chunks_exact(2).map(|c| Complex64::new(c[0].into(), c[1].into())).collect()
}

/// Every channel of `recording` through `transform`, as the fits take them.
fn observe(recording: &Recording, transform: &Stft) -> Result<Observations> {
    let spectrograms: Vec<Spectrogram> = (0..recording.channels())
        .map(|c| transform.analyse(&recording.channel(c).iter().map(|&v| f64::from(v)).collect::<Vec<_>>()))
        .collect();
    Observations::from_spectrograms(&spectrograms)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;
    use realfft::num_complex::Complex64;
    use unmix_dsp::metrics::score;

    use super::*;

    /// Two speech-like sources (white noise under independent envelopes that change
    /// every 40 ms) through short random filters into 2 and 3 microphones, `len` samples.
    pub(crate) fn convolutive(len: usize, mics: usize, seed: u64) -> (Recording, Vec<Vec<f32>>) {
        let mut rng = StdRng::seed_from_u64(seed);
        let sources: Vec<Vec<f64>> = (0..2)
            .map(|_| {
                let mut level = 1.0;
                (0..len)
                    .map(|t| {
                        if t % 320 == 0 {
                            level = rng.random_range(0.0f64..1.0).powi(3);
                        }
                        level * rng.sample::<f64, _>(StandardNormal)
                    })
                    .collect()
            })
            .collect();
        let taps = 6;
        let filters: Vec<Vec<Vec<f64>>> = (0..mics)
            .map(|_| {
                (0..2)
                    .map(|_| (0..taps).map(|k| rng.sample::<f64, _>(StandardNormal) * 0.6f64.powi(k)).collect())
                    .collect()
            })
            .collect();
        let convolve = |x: &[f64], h: &[f64]| -> Vec<f64> {
            (0..len).map(|t| h.iter().enumerate().filter(|(k, _)| *k <= t).map(|(k, v)| v * x[t - k]).sum()).collect()
        };
        let images: Vec<Vec<Vec<f64>>> =
            filters.iter().map(|per| per.iter().zip(&sources).map(|(h, s)| convolve(s, h)).collect()).collect();
        let mixed: Vec<f32> =
            (0..len).flat_map(|t| images.iter().map(move |per| (per[0][t] + per[1][t]) as f32)).collect();
        let truth = (0..2).map(|j| images[0][j].iter().map(|&v| v as f32).collect()).collect();
        (Recording::from_interleaved(16_000, mics, mixed).unwrap(), truth)
    }

    /// Every prior separates short convolutive mixtures, square and over-determined, into
    /// the sources' images at the reference microphone.
    #[test]
    fn each_prior_separates_a_convolutive_mixture() {
        for mics in [2, 3] {
            let (mixture, truth) = convolutive(48_000, mics, 5);
            let stft = StftConfig { frame: 512, hop: 128 };
            for prior in [SourcePrior::Laplace, SourcePrior::Gauss, SourcePrior::LowRank { bases: 2 }] {
                let config = IvaConfig { prior, iterations: 30, seed: 1 };
                let separated = separate_recording(&mixture, 2, stft, &config, None, 0, Watch::default()).unwrap();
                let estimates: Vec<Vec<f32>> = (0..2).map(|j| separated.sources.channel(j)).collect();
                let s = score(&truth, &estimates).unwrap();
                let worst = s.sources.iter().map(|p| p.si_sdr_db).fold(f64::INFINITY, f64::min);
                assert!(worst > 15.0, "{mics} microphones, {prior:?}: worst source {worst:.1} dB");
            }
        }
    }

    /// The spatial model started from the low-rank demixing separates the same mixtures,
    /// over-determined too, and its Wiener filter's images sum to the reference channel.
    #[test]
    fn the_spatial_model_separates_from_the_demixing_start() {
        for mics in [2, 3] {
            let (mixture, truth) = convolutive(48_000, mics, 5);
            let stft = StftConfig { frame: 512, hop: 128 };
            let config = IvaConfig { prior: SourcePrior::LowRank { bases: 2 }, iterations: 30, seed: 1 };
            let spatial = MnmfConfig { iterations: 30, components: 4, seed: 1, starts: 1 };
            let separated =
                separate_recording(&mixture, 2, stft, &config, Some(&spatial), 0, Watch::default()).unwrap();
            let estimates: Vec<Vec<f32>> = (0..2).map(|j| separated.sources.channel(j)).collect();
            let s = score(&truth, &estimates).unwrap();
            let worst = s.sources.iter().map(|p| p.si_sdr_db).fold(f64::INFINITY, f64::min);
            assert!(worst > 15.0, "{mics} microphones: worst source {worst:.1} dB");
            let reference = mixture.channel(0);
            let sum: Vec<f32> = (0..mixture.frames()).map(|t| estimates[0][t] + estimates[1][t]).collect();
            let error = reference.iter().zip(&sum).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>();
            let power = reference.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>();
            assert!(error < 1e-6 * power, "the images sum to the reference to {:.1e}", error / power);
        }
    }

    /// Of several starts the one of lowest negative log-likelihood is kept: the same as
    /// each start run alone with its seeds.
    #[test]
    fn the_start_of_highest_likelihood_is_kept() {
        let (mixture, _) = convolutive(16_000, 2, 7);
        let stft = StftConfig { frame: 256, hop: 64 };
        let run = |seed: u64, starts: usize| {
            let config = IvaConfig { prior: SourcePrior::LowRank { bases: 2 }, iterations: 10, seed };
            let spatial = MnmfConfig { iterations: 10, components: 4, seed, starts };
            separate_recording(&mixture, 2, stft, &config, Some(&spatial), 0, Watch::default())
                .unwrap()
                .spatial
                .unwrap()
        };
        let alone: Vec<f64> = (0..3).map(|d| run(4 + d, 1).nll).collect();
        let together = run(4, 3);
        let best = (0..3).min_by(|&a, &b| alone[a].total_cmp(&alone[b])).unwrap();
        assert_eq!(together.chosen_start, best, "{alone:?}");
        assert_eq!(together.nll, alone[best]);
    }

    /// Projection back gives each source's image at the reference channel exactly when
    /// the demixing is the mixing's inverse, whatever scale it leaves each source in
    /// each bin.
    #[test]
    fn projection_back_recovers_the_images_of_a_known_mixing() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut c = || Complex64::new(rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0));
        let (m, frames, bins) = (2, 200, 3);
        let a: Vec<Complex64> = (0..bins * m * m).map(|_| c()).collect();
        let s: Vec<Complex64> = (0..bins * frames * m).map(|_| c()).collect();
        let mut spectrograms = vec![Spectrogram { frames, bins, data: vec![Complex64::default(); frames * bins] }; m];
        for f in 0..bins {
            for t in 0..frames {
                for (i, spectrogram) in spectrograms.iter_mut().enumerate() {
                    spectrogram.data[t * bins + f] =
                        (0..m).map(|k| a[f * m * m + i * m + k] * s[(f * frames + t) * m + k]).sum();
                }
            }
        }
        let x = Observations::from_spectrograms(&spectrograms).unwrap();
        let mut w = Vec::new();
        for f in 0..bins {
            let a = &a[f * m * m..(f + 1) * m * m];
            let det = a[0] * a[3] - a[1] * a[2];
            let inverse = [a[3] / det, -a[1] / det, -a[2] / det, a[0] / det];
            // Scaled per source and bin, as a blind demixing leaves it.
            for k in 0..m {
                let scale = c();
                w.extend(inverse[k * m..(k + 1) * m].iter().map(|v| v * scale));
            }
        }
        let mut demixing = Demixing { sources: m, channels: m, bins, w };
        demixing.project_back(&x, 0).unwrap();
        let images = demixing.demix(&x);
        for (k, image) in images.iter().enumerate() {
            for f in 0..bins {
                for t in 0..frames {
                    let want = a[f * m * m + k] * s[(f * frames + t) * m + k];
                    assert!((image.at(t, f) - want).norm() < 1e-9, "source {k}, bin {f}, frame {t}");
                }
            }
        }
        assert!(demixing.project_back(&x, 2).is_err());
    }
}
