//! Whether a recording mixes its sources instantaneously or by convolution, read from its
//! cross-spectra: what decides the domain a recording is separated in.
//!
//! An instantaneous mixture `x = A s` of independent sources has the cross-spectral
//! matrix `S(f) = A D(f) Aᵀ` at every frequency, `D(f)` the sources' spectra: every
//! `S(f)` is real, and one real matrix diagonalises them all. Once the channels are
//! whitened by their total covariance, that matrix is a rotation, and Jacobi rotations
//! find it (as SOBI does with lagged covariances). A convolutive mixture — a room, where
//! each microphone hears each talker with its own delay and echoes — mixes every band by
//! its own complex gains: the cross-spectra have imaginary parts wherever two microphones
//! hear a source at different delays, and their real parts change their eigenvectors
//! from band to band (the echoes' diffuse field does, even where it is in phase at both
//! microphones).
//!
//! The measure is the share of the whitened cross-spectra's energy that the best real
//! diagonalisation leaves: the off-diagonal real parts after the joint rotation plus
//! every imaginary part, over `Σ_b ‖M_b‖²`, the band matrices' whole energy. It is 0 for
//! an instantaneous mixture but for the estimate's noise (about `(m − 1) / N` for `m`
//! channels and `N` frame-bins per band) and the sensor noise's departure from the model
//! (independent noise on more channels than sources), and a sizeable fraction for most
//! rooms. Not for every room: two microphones a few centimetres apart hearing talkers
//! nearly broadside (both at the same delay at both microphones) have cross-spectra an
//! instantaneous mixture nearly explains, and sources that are not independent — a
//! structure's modes all driven by one ground motion — have complex cross-spectra
//! without any room (measured in `docs/results.md#is-it-a-room`). So the measure is
//! evidence reported with a hint, not a switch of the domain.

use realfft::num_complex::Complex64;
use serde::{Deserialize, Serialize};
use unmix_core::Recording;
use unmix_dsp::linalg::{Matrix, inverse_square_root};
use unmix_dsp::sobi::joint_diagonalise;

use crate::{Error, Result, Spectrogram, Stft, StftConfig};

/// The longest STFT the cross-spectra are estimated with: 1024-sample frames (64 ms at
/// 16 kHz, longer than the delays between the microphones of an array), half overlapping;
/// halved until the recording gives 128 frames.
pub const EVIDENCE_STFT: StftConfig = StftConfig { frame: 1024, hop: 512 };

/// At most this many STFT frames are read (~33 s at 16 kHz).
pub const EVIDENCE_MAX_FRAMES: usize = 1024;

/// Bands of adjacent bins whose cross-spectra are summed into one matrix each.
pub const EVIDENCE_BANDS: usize = 32;

/// The share of the whitened cross-spectral energy above which a mixture is called
/// convolutive: above every instantaneous mixture measured (at most 0.022), below 14 of 22
/// simulated rooms (`docs/results.md#is-it-a-room`).
pub const CONVOLUTIVE_ABOVE: f64 = 0.05;

/// Multiples of the estimate's noise level, `(m − 1) / N`, the share must also exceed
/// (the instantaneous mixtures measured reach 0.8–1.4 of it).
pub const NOISE_MULTIPLE: f64 = 3.0;

/// Channels measured at most: the cross-spectra cost `m²` per frame-bin and their joint
/// diagonalisation `m³` per sweep (16 channels: about 0.1 s); microphone arrays are
/// within it.
pub const EVIDENCE_MAX_CHANNELS: usize = 16;

/// What the cross-spectra of a recording say about its mixing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MixingEvidence {
    /// The share of the whitened band cross-spectra's energy that no real
    /// diagonalisation removes (0 for an instantaneous mixture).
    pub unexplained: f64,
    /// Of it, the imaginary parts' share of the energy.
    pub imaginary: f64,
    /// What the estimate's noise alone leaves, `(m − 1) / N`.
    pub noise_level: f64,
    /// STFT frames the cross-spectra were estimated from.
    pub frames: usize,
    /// Samples per STFT frame.
    pub frame: usize,
}

impl MixingEvidence {
    /// The share above which the mixture is called convolutive.
    pub fn threshold(&self) -> f64 {
        CONVOLUTIVE_ABOVE.max(NOISE_MULTIPLE * self.noise_level)
    }

    /// Whether the cross-spectra are clearly not those of an instantaneous mixture.
    pub fn convolutive(&self) -> bool {
        self.unexplained > self.threshold()
    }
}

/// The mixing evidence of `recording` (2 to [`EVIDENCE_MAX_CHANNELS`] channels), from its
/// first [`EVIDENCE_MAX_FRAMES`] STFT frames.
pub fn mixing_evidence(recording: &Recording) -> Result<MixingEvidence> {
    let m = recording.channels();
    if !(2..=EVIDENCE_MAX_CHANNELS).contains(&m) {
        return Err(Error::Data(format!(
            "the mixing evidence measures 2 to {EVIDENCE_MAX_CHANNELS} channels' cross-spectra, not {m}"
        )));
    }
    let mut config = EVIDENCE_STFT;
    while config.frame > 32 && recording.frames() < 128 * config.hop {
        config = StftConfig { frame: config.frame / 2, hop: config.hop / 2 };
    }
    let transform = Stft::new(config)?;
    let samples = recording.frames().min(EVIDENCE_MAX_FRAMES * config.hop);
    let spectrograms: Vec<Spectrogram> = (0..m)
        .map(|c| {
            let channel: Vec<f64> = recording.channel(c)[..samples].iter().map(|&v| f64::from(v)).collect();
            transform.analyse(&channel)
        })
        .collect();
    let (frames, bins) = (spectrograms[0].frames, spectrograms[0].bins);
    // The DC and Nyquist bins are real for any mixing: left out.
    let inner = bins - 2;
    let bands = EVIDENCE_BANDS.min(inner);
    let mut band_spectra = vec![vec![Complex64::new(0.0, 0.0); m * m]; bands];
    for f in 1..bins - 1 {
        let band = &mut band_spectra[(f - 1) * bands / inner];
        for t in 0..frames {
            for i in 0..m {
                let xi = spectrograms[i].at(t, f);
                for j in i..m {
                    band[i * m + j] += xi * spectrograms[j].at(t, f).conj();
                }
            }
        }
    }
    for band in &mut band_spectra {
        for i in 0..m {
            for j in 0..i {
                band[i * m + j] = band[j * m + i].conj();
            }
        }
    }
    let mut total = Matrix::zeros(m, m);
    for band in &band_spectra {
        for (t, v) in total.data.iter_mut().zip(band) {
            *t += v.re;
        }
    }
    if !total.data.iter().all(|v| v.is_finite()) || (0..m).any(|c| total[(c, c)] <= 0.0) {
        return Err(Error::Data("a channel holds no power to compare".into()));
    }
    let w = inverse_square_root(&total, 1e-12);
    // `W S_b Wᵀ`, its real and imaginary parts.
    let whiten = |part: &dyn Fn(&Complex64) -> f64, band: &[Complex64]| {
        let s = Matrix { rows: m, cols: m, data: band.iter().map(part).collect() };
        w.matmul(&s).matmul(&w.transpose())
    };
    let mut real: Vec<Matrix> = band_spectra.iter().map(|b| whiten(&|v| v.re, b)).collect();
    let imaginary: Vec<Matrix> = band_spectra.iter().map(|b| whiten(&|v| v.im, b)).collect();
    let energy = |ms: &[Matrix]| ms.iter().flat_map(|a| &a.data).map(|v| v * v).sum::<f64>();
    let imaginary_energy = energy(&imaginary);
    let whole = energy(&real) + imaginary_energy;
    joint_diagonalise(&mut real, 100, 1e-10);
    let off_diagonal: f64 = real
        .iter()
        .map(|a| {
            (0..m)
                .flat_map(|i| (0..m).filter(move |&j| j != i).map(move |j| (i, j)))
                .map(|(i, j)| a[(i, j)].powi(2))
                .sum::<f64>()
        })
        .sum();
    if !(whole > 0.0 && whole.is_finite()) {
        return Err(Error::Data("the channels' cross-spectra are not finite".into()));
    }
    Ok(MixingEvidence {
        unexplained: (off_diagonal + imaginary_energy) / whole,
        imaginary: imaginary_energy / whole,
        noise_level: (m - 1) as f64 / (frames * inner / bands) as f64,
        frames,
        frame: config.frame,
    })
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::StandardNormal;

    use super::*;
    use crate::tests::convolutive;

    /// `sources` coloured sources (each white noise through its own resonance, under its
    /// own envelope: every band a different `D(f)`) mixed by a random real matrix into
    /// `channels`, with white sensor noise at `noise` of each channel's level.
    fn instantaneous(len: usize, sources: usize, channels: usize, noise: f64, seed: u64) -> Recording {
        let mut rng = StdRng::seed_from_u64(seed);
        let signals: Vec<Vec<f64>> = (0..sources)
            .map(|j| {
                let (radius, angle) = (0.95, 0.3 + 0.7 * j as f64);
                let (a1, a2) = (2.0 * radius * f64::cos(angle), -radius * radius);
                let (mut y1, mut y2, mut level) = (0.0, 0.0, 1.0);
                (0..len)
                    .map(|t| {
                        if t % 320 == 0 {
                            level = rng.random_range(0.0f64..1.0).powi(3);
                        }
                        let y = a1 * y1 + a2 * y2 + level * rng.sample::<f64, _>(StandardNormal);
                        (y2, y1) = (y1, y);
                        y
                    })
                    .collect()
            })
            .collect();
        let mixing: Vec<f64> = (0..channels * sources).map(|_| rng.sample(StandardNormal)).collect();
        let mut mixed: Vec<f64> = (0..len)
            .flat_map(|t| {
                let (signals, mixing) = (&signals, &mixing);
                (0..channels).map(move |c| (0..sources).map(|j| mixing[c * sources + j] * signals[j][t]).sum::<f64>())
            })
            .collect();
        for c in 0..channels {
            let power = mixed.iter().skip(c).step_by(channels).map(|v| v * v).sum::<f64>() / len as f64;
            for v in mixed.iter_mut().skip(c).step_by(channels) {
                *v += noise * power.sqrt() * rng.sample::<f64, _>(StandardNormal);
            }
        }
        Recording::from_interleaved(16_000, channels, mixed.iter().map(|&v| v as f32).collect()).unwrap()
    }

    /// Instantaneous mixtures of sources with different spectra — square, and into more
    /// channels with sensor noise, long and short — leave almost nothing to the best real
    /// diagonalisation and are not called convolutive; mixtures through short random
    /// filters (every microphone its own six echoes) are.
    #[test]
    fn instantaneous_mixtures_are_told_from_convolutive_ones() {
        for (sources, channels, noise, len) in [(2, 2, 0.0, 48_000), (3, 5, 0.05, 48_000), (4, 8, 0.01, 4_000)] {
            let evidence = mixing_evidence(&instantaneous(len, sources, channels, noise, 3)).unwrap();
            assert!(!evidence.convolutive(), "{sources} into {channels}: {evidence:?}");
            assert!(evidence.unexplained < 0.5 * evidence.threshold(), "{sources} into {channels}: {evidence:?}");
        }
        for mics in [2, 3] {
            let (mixture, _) = convolutive(48_000, mics, 5);
            let evidence = mixing_evidence(&mixture).unwrap();
            assert!(evidence.convolutive(), "{mics} microphones: {evidence:?}");
            assert!(evidence.imaginary > 0.0 && evidence.imaginary <= evidence.unexplained);
        }
    }

    /// One channel has no cross-spectrum, a silent channel no power to compare, and more
    /// than 16 channels are not measured: each is refused rather than answered.
    #[test]
    fn what_cannot_be_measured_is_refused() {
        let one = Recording::from_interleaved(16_000, 1, vec![0.5; 8_000]).unwrap();
        assert!(mixing_evidence(&one).is_err());
        let many = instantaneous(4_000, 2, EVIDENCE_MAX_CHANNELS + 1, 0.1, 1);
        assert!(mixing_evidence(&many).is_err());
        let silent = Recording::from_interleaved(16_000, 2, (0..16_000).map(|i| (i % 2) as f32 * 0.0).collect());
        assert!(mixing_evidence(&silent.unwrap()).is_err());
    }
}
