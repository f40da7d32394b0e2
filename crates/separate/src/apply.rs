//! Applying a trained model to a whole recording in memory, through the burn-free
//! encoder of `unmix-infer`: the same code, weights and kernel as `unmix apply`'s stream,
//! so the sources are the same bit for bit.

use unmix_core::Recording;
use unmix_format::ModelFile;
use unmix_infer::{Kernel, Separator};

use crate::{Error, Result};

/// The encoder's outputs of `model` on `recording`: the sources before the model's output
/// gains and before the sensor noise is taken out of them, what its priors are learned on
/// (for comparing them with the priors).
pub fn encoder_outputs(model: &ModelFile, recording: &Recording, kernel: Kernel) -> Result<Recording> {
    let mut unscaled = model.clone();
    unscaled.header.source_gains = None;
    unscaled.header.output_noise = None;
    apply(&unscaled, recording, kernel)
}

/// Applies a model's encoder to every frame of `recording` on `kernel`: the sources (the
/// posterior means times the model's output gains).
pub fn apply(model: &ModelFile, recording: &Recording, kernel: Kernel) -> Result<Recording> {
    if recording.channels() != model.header.channels {
        return Err(Error::ChannelMismatch { expected: model.header.channels, got: recording.channels() });
    }
    let mut separator = Separator::with_kernel(model, kernel)?;
    let n = separator.sources();
    let mut out = vec![0.0f32; recording.frames() * n];
    separator.process(recording.interleaved(), &mut out)?;
    Ok(Recording::from_interleaved(recording.sample_rate_hz(), n, out)?)
}

#[cfg(test)]
mod tests {
    use unmix_model::{Backend, PdgmmVae};
    use unmix_synth::{MixKind, SynthConfig, generate};

    use super::*;
    use crate::SeparateParams;
    use crate::testing::{fit_with, quick_params};

    /// The plain-Rust encoder and burn's forward pass agree to 1e-5 relative, for an MLP
    /// and for a linear encoder, with and without dimension reduction.
    #[test]
    fn separator_matches_the_burn_forward_pass() {
        for (sensors, hidden) in [(3, vec![16, 8]), (5, vec![]), (3, vec![32])] {
            let data =
                generate(&SynthConfig { sensors, frames: 3000, ..SynthConfig::paper(MixKind::Nonlinear, 2) }).unwrap();
            let model = fit_with(&data.mixture, &quick_params(3, hidden)).unwrap().model;
            let ours = apply(&model, &data.mixture, Kernel::best()).unwrap();
            let device = Backend::default_compiled().unwrap().device().unwrap();
            let burn_model = PdgmmVae::from_weights(&model.weights, &device).unwrap();
            let normalised = model.header.normaliser.transform(&data.mixture).unwrap();
            let gains = model.source_gains();
            let theirs: Vec<f32> = burn_model
                .encode_all(&normalised, model.header.normaliser.output_dims(), &device)
                .iter()
                .enumerate()
                .map(|(i, mu)| mu * gains[i % gains.len()])
                .collect();
            assert_eq!(ours.interleaved().len(), theirs.len());
            let scale = theirs.iter().fold(0.0f32, |a, b| a.max(b.abs()));
            for (a, b) in ours.interleaved().iter().zip(&theirs) {
                assert!((a - b).abs() <= 1e-5 * scale.max(1.0), "{a} vs {b}");
            }
        }
    }

    /// The engine's per-frame scores agree with burn's: the log-prior of the sources and
    /// the decoder's reconstruction error, with and without whitening.
    #[test]
    fn frame_scores_match_the_burn_model() {
        for (sensors, hidden, whiten) in [(3, vec![16], true), (5, vec![8, 8], false), (5, vec![], true)] {
            let data =
                generate(&SynthConfig { sensors, frames: 3000, ..SynthConfig::paper(MixKind::Nonlinear, 3) }).unwrap();
            let config = SeparateParams { whiten, ..quick_params(3, hidden) };
            let model = fit_with(&data.mixture, &config).unwrap().model;
            let frames = data.mixture.frames();
            let mut separator = unmix_infer::Separator::new(&model);
            let (mut mu, mut log_prior, mut error) = (vec![0.0; frames * 3], vec![0.0; frames], vec![0.0; frames]);
            separator.process_scored(data.mixture.interleaved(), &mut mu, &mut log_prior, &mut error).unwrap();
            let device = Backend::default_compiled().unwrap().device().unwrap();
            let burn_model = PdgmmVae::from_weights(&model.weights, &device).unwrap();
            let norm = &model.header.normaliser;
            let normalised = norm.transform(&data.mixture).unwrap();
            let dims = norm.output_dims();
            let (want_prior, decoded) = burn_model.score_all(&normalised, dims, &device);
            // The reconstruction error, from its definition: the decoded frame mapped back
            // to the standardised channels (`U Λ^{1/2} g` with whitening) against the
            // standardised input frame.
            let want_error: Vec<f32> = (0..frames)
                .map(|t| {
                    let g = &decoded[t * dims..(t + 1) * dims];
                    let x = &data.mixture.interleaved()[t * sensors..(t + 1) * sensors];
                    let squares: f64 = (0..sensors)
                        .map(|c| {
                            let z = (f64::from(x[c]) - f64::from(norm.mean[c])) / f64::from(norm.scale[c]);
                            let z_hat = match &norm.whitening {
                                None => f64::from(g[c]),
                                Some(w) => (0..dims)
                                    .map(|k| {
                                        f64::from(w[k * sensors + c]) * f64::from(norm.eigenvalues[k]) * f64::from(g[k])
                                    })
                                    .sum(),
                            };
                            (z_hat - z).powi(2)
                        })
                        .sum();
                    (squares / sensors as f64) as f32
                })
                .collect();
            for t in 0..frames {
                let (a, b) = (log_prior[t], want_prior[t]);
                assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "frame {t}: log-prior {a} vs {b}");
                let (a, b) = (error[t], want_error[t]);
                assert!((a - b).abs() <= 1e-4 * b.max(1e-2), "frame {t}: reconstruction error {a} vs {b}");
            }
            // The scores vary from frame to frame (they are not a constant both sides share).
            assert!(error.iter().all(|e| e.is_finite() && *e >= 0.0));
            assert!(error.iter().any(|&e| e != error[0]) && log_prior.iter().any(|&p| p != log_prior[0]));
        }
    }

    /// A disturbance outside the subspace the whitening keeps does not move the sources,
    /// and the reconstruction error (measured on the standardised channels) rises by
    /// exactly its energy: a change the model cannot see still shows in the scores.
    #[test]
    fn energy_outside_the_kept_subspace_shows_in_the_reconstruction_error() {
        let data =
            generate(&SynthConfig { sensors: 5, frames: 3000, ..SynthConfig::paper(MixKind::Linear, 5) }).unwrap();
        let model = fit_with(&data.mixture, &quick_params(3, vec![16])).unwrap().model;
        let norm = &model.header.normaliser;
        let (m, dims) = (5, norm.output_dims());
        let whitening = norm.whitening.as_ref().expect("5 sensors, 3 sources: whitened");
        // A direction of the standardised channels orthogonal to every kept eigenvector.
        let mut v: Vec<f64> = (0..m).map(|c| [0.3, -1.1, 0.7, 0.2, -0.5][c]).collect();
        for k in 0..dims {
            let u: Vec<f64> =
                (0..m).map(|c| f64::from(whitening[k * m + c]) * f64::from(norm.eigenvalues[k]).sqrt()).collect();
            let along: f64 = u.iter().zip(&v).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(&u).for_each(|(x, a)| *x -= along * a);
        }
        let size = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter_mut().for_each(|x| *x /= size);
        // Frame t gets a(t) v in standardised units, i.e. a(t) v_c scale_c in channel units.
        let amplitude = |t: usize| ((t * 37 % 101) as f64 / 50.0 - 1.0) * 2.0;
        let mut disturbed = data.mixture.interleaved().to_vec();
        for (t, frame) in disturbed.chunks_exact_mut(m).enumerate() {
            for c in 0..m {
                frame[c] += (amplitude(t) * v[c] * f64::from(norm.scale[c])) as f32;
            }
        }
        let disturbed = Recording::from_interleaved(8000, m, disturbed).unwrap();
        let frames = data.mixture.frames();
        let scores = |rec: &Recording| {
            let mut separator = unmix_infer::Separator::new(&model);
            let (mut mu, mut lp, mut error) = (vec![0.0; frames * 3], vec![0.0; frames], vec![0.0; frames]);
            separator.process_scored(rec.interleaved(), &mut mu, &mut lp, &mut error).unwrap();
            (mu, error)
        };
        let ((mu, error), (mu_disturbed, error_disturbed)) = (scores(&data.mixture), scores(&disturbed));
        for (a, b) in mu.iter().zip(&mu_disturbed) {
            assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "the sources moved: {a} vs {b}");
        }
        for t in 0..frames {
            let want = f64::from(error[t]) + amplitude(t).powi(2) / m as f64;
            let got = f64::from(error_disturbed[t]);
            assert!((got - want).abs() <= 1e-3 * want.max(1e-2), "frame {t}: error {got} vs {want}");
        }
    }

    /// The decoder takes the sources back to the channels: to rounding for the linear
    /// model, with as many channels as sources and with more (the mixture lies in the
    /// sources' subspace); for a PDGMM-VAE (with and without whitening), to the frames
    /// whose error the scores measure.
    #[test]
    fn reconstruct_gives_the_mixture_back() {
        for sensors in [3, 5] {
            let data =
                generate(&SynthConfig { sensors, frames: 4000, ..SynthConfig::paper(MixKind::Linear, 3) }).unwrap();
            let params = SeparateParams { model: crate::ModelChoice::Linear, ..quick_params(3, vec![16]) };
            let model = fit_with(&data.mixture, &params).unwrap().model;
            let back = reconstructed(&model, &data.mixture);
            for c in 0..sensors {
                let channel = data.mixture.channel(c);
                let spread = f64::from(model.header.normaliser.scale[c]);
                let squares: f64 =
                    back.iter().skip(c).step_by(sensors).zip(&channel).map(|(a, b)| f64::from(a - b).powi(2)).sum();
                let rms = (squares / channel.len() as f64).sqrt();
                assert!(rms <= 1e-4 * spread, "{sensors} sensors, channel {c}: off by {rms} of {spread}");
            }
        }
        for (sensors, whiten) in [(3, true), (5, true), (5, false)] {
            let data =
                generate(&SynthConfig { sensors, frames: 3000, ..SynthConfig::paper(MixKind::Nonlinear, 3) }).unwrap();
            let model = fit_with(&data.mixture, &SeparateParams { whiten, ..quick_params(3, vec![16]) }).unwrap().model;
            let back = reconstructed(&model, &data.mixture);
            let frames = data.mixture.frames();
            let mut separator = Separator::new(&model);
            let (mut mu, mut lp, mut error) = (vec![0.0; frames * 3], vec![0.0; frames], vec![0.0; frames]);
            separator.process_scored(data.mixture.interleaved(), &mut mu, &mut lp, &mut error).unwrap();
            let norm = &model.header.normaliser;
            for (t, (x, x_hat)) in data.mixture.iter_frames().zip(back.chunks_exact(sensors)).enumerate() {
                let ours: f32 =
                    (0..sensors).map(|c| ((x_hat[c] - x[c]) / norm.scale[c]).powi(2)).sum::<f32>() / sensors as f32;
                assert!((ours - error[t]).abs() <= 1e-3 * error[t].max(1e-2), "frame {t}: {ours} vs {}", error[t]);
            }
        }
    }

    /// The frames `model`'s decoder gives back from its sources of `recording`.
    fn reconstructed(model: &ModelFile, recording: &Recording) -> Vec<f32> {
        let sources = apply(model, recording, Kernel::best()).unwrap();
        let mut separator = Separator::new(model);
        let mut back = vec![0.0f32; recording.interleaved().len()];
        separator.reconstruct(sources.interleaved(), &mut back).unwrap();
        let mut short = vec![0.0f32; 5];
        assert!(separator.reconstruct(sources.interleaved(), &mut short).is_err());
        back
    }

    /// A model whose encoder is affine gives its map, which computes its sources; an MLP
    /// with a hidden layer has none.
    #[test]
    fn an_affine_model_gives_its_map() {
        let data =
            generate(&SynthConfig { sensors: 5, frames: 4000, ..SynthConfig::paper(MixKind::Linear, 4) }).unwrap();
        let params = SeparateParams { model: crate::ModelChoice::Linear, ..quick_params(3, vec![16]) };
        let model = fit_with(&data.mixture, &params).unwrap().model;
        let (w, b) = unmix_infer::affine_map(&model).expect("the linear model is affine");
        let sources = apply(&model, &data.mixture, Kernel::best()).unwrap();
        for (x, s) in data.mixture.iter_frames().zip(sources.iter_frames()) {
            for (j, &got) in s.iter().enumerate() {
                let want: f64 = b[j] + (0..5).map(|c| w[j * 5 + c] * f64::from(x[c])).sum::<f64>();
                assert!((f64::from(got) - want).abs() <= 1e-4 * want.abs().max(1.0), "{got} vs {want}");
            }
        }
        let vae = fit_with(&data.mixture, &quick_params(3, vec![16])).unwrap().model;
        assert!(unmix_infer::affine_map(&vae).is_none());
    }
}
