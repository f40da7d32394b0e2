//! How much sensor noise each output of a linear model carries, so that the model can give
//! each source's posterior mean given its output instead of the output itself
//! ([`unmix_format::ModelHeader::output_noise`]).
//!
//! With more channels than sources, the whitening keeps the top `n` principal components of
//! the standardised channels; the `m − n` it drops hold what no source reaches, and when
//! they are about equal they are white sensor noise of that variance `σ²` (the standard
//! estimate of probabilistic PCA). The same noise is in every kept direction `k` at
//! `σ² / λ_k` after whitening, and in output `j` of the unmixing `W` at
//! `σ_j² = σ² Σ_k W_jk² / λ_k`.

use unmix_format::{Architecture, ModelFile};

/// The most the dropped eigenvalues may differ (largest over smallest) and still be read as
/// one white noise: more, and they hold a source or channels of very different noise.
pub const MAX_NOISE_SPREAD: f64 = 2.0;

/// How far above the noise the weakest kept direction must be (its eigenvalue over `σ²`):
/// closer, and the kept and dropped directions are not told apart.
pub const MIN_SIGNAL_OVER_NOISE: f64 = 2.0;

/// An output whose noise is below this share of its variance is left as it is by the
/// posterior mean; when every output's is, the model is not given the noise at all.
pub const MIN_NOISE_SHARE: f64 = 1e-3;

/// The sensor noise in each output of `file` (before the gains, in its prior's units), or
/// `None` when it is not identified: not a linear model on whitened channels, as many
/// channels as sources, dropped eigenvalues that are not one noise level, or noise too weak
/// to matter ([`MIN_NOISE_SHARE`]).
pub fn output_noise(file: &ModelFile) -> Option<Vec<f32>> {
    let weights = &file.weights;
    let normaliser = &file.header.normaliser;
    let [layer] = weights.encoder.as_slice() else { return None };
    let whitening = normaliser.whitening.as_ref()?;
    let (m, d, n) = (normaliser.input_channels(), normaliser.output_dims(), layer.outputs);
    if weights.architecture != Architecture::Mlp || m <= d || normaliser.eigenvalues.len() != m {
        return None;
    }
    let eigenvalues: Vec<f64> = normaliser.eigenvalues.iter().map(|&v| f64::from(v)).collect();
    let dropped = &eigenvalues[d..];
    let (low, high) = dropped.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let noise = dropped.iter().sum::<f64>() / dropped.len() as f64;
    if !(low > 0.0 && high <= MAX_NOISE_SPREAD * low && eigenvalues[d - 1] >= MIN_SIGNAL_OVER_NOISE * noise) {
        return None;
    }
    // Output j's noise: σ² ‖(W P)_j‖², P the whitening (`d × m`, rows `u_k / √λ_k`).
    let variances: Vec<f64> = (0..n)
        .map(|j| {
            let row = (0..m).map(|c| {
                (0..d).map(|k| f64::from(layer.weight[k * n + j]) * f64::from(whitening[k * m + c])).sum::<f64>()
            });
            noise * row.map(|v| v * v).sum::<f64>()
        })
        .collect();
    let matters = variances.iter().enumerate().any(|(j, &v)| v > MIN_NOISE_SHARE * prior_variance(file, j));
    matters.then(|| variances.iter().map(|&v| v as f32).collect())
}

/// The variance of source `j`'s prior mixture.
pub fn prior_variance(file: &ModelFile, j: usize) -> f64 {
    let prior = &file.weights.prior;
    let k = prior.components;
    let rows = j * k..(j + 1) * k;
    let (mut mean, mut second) = (0.0, 0.0);
    for ((w, &mu), &log_var) in prior.weights(j).into_iter().zip(&prior.means[rows.clone()]).zip(&prior.log_vars[rows])
    {
        let (w, mu) = (f64::from(w), f64::from(mu));
        mean += w * mu;
        second += w * (f64::from(log_var).exp() + mu * mu);
    }
    second - mean * mean
}

#[cfg(test)]
mod tests {
    use unmix_synth::{Marginal, MixKind, SynthConfig, generate};

    use unmix_infer::Kernel;

    use crate::ModelChoice;
    use crate::encoder_outputs;
    use crate::testing::{fit_with, quick_params};

    fn bimodal(sensors: usize, snr_db: Option<f64>, seed: u64) -> unmix_synth::Synth {
        generate(&SynthConfig {
            sources: 3,
            sensors,
            frames: 6000,
            snr_db,
            max_condition: 3.0,
            marginals: vec![Marginal::Bimodal],
            ..SynthConfig::paper(MixKind::Linear, seed)
        })
        .unwrap()
    }

    fn score(data: &unmix_synth::Synth, sources: &unmix_core::Recording) -> unmix_dsp::metrics::Score {
        let columns = |r: &unmix_core::Recording| (0..r.channels()).map(|j| r.channel(j)).collect::<Vec<_>>();
        unmix_dsp::metrics::score(&columns(&data.truth), &columns(sources)).unwrap()
    }

    /// Three two-moded sources into six sensors at 5 dB: the noise each output carries is
    /// what regressing it on the true sources leaves, and the posterior means are closer
    /// to the sources than the outputs on every seed (the oracle gain is about 0.03).
    #[test]
    fn the_posterior_means_of_noisy_outputs_are_closer_to_the_sources() {
        let mut config = quick_params(3, vec![]);
        config.model = ModelChoice::Linear;
        for seed in 1..=3 {
            let data = bimodal(6, Some(5.0), seed);
            let fitted = fit_with(&data.mixture, &config).unwrap().model;
            let noise = fitted.header.output_noise.clone().expect("the noise is identified");
            let outputs = encoder_outputs(&fitted, &data.mixture, Kernel::best()).unwrap();
            for (j, &noise) in noise.iter().enumerate() {
                let residual = residual_variance(&outputs.channel(j), &data.truth);
                let ratio = f64::from(noise) / residual;
                assert!((0.8..1.25).contains(&ratio), "seed {seed} output {j}: noise {noise} vs residual {residual}");
            }
            let denoised = score(&data, &crate::apply(&fitted, &data.mixture, Kernel::best()).unwrap());
            let plain = score(&data, &outputs);
            assert!(
                denoised.mean_abs_corr > plain.mean_abs_corr + 0.01 && denoised.min_abs_corr > plain.min_abs_corr,
                "seed {seed}: {denoised:?} vs {plain:?}"
            );
            config.denoise = false;
            assert_eq!(fit_with(&data.mixture, &config).unwrap().model.header.output_noise, None);
            config.denoise = true;
        }
    }

    /// No channel beyond the sources, or none that holds noise: the outputs are left as
    /// they are.
    #[test]
    fn without_noise_beyond_the_sources_nothing_is_taken_out() {
        let mut config = quick_params(3, vec![]);
        config.model = ModelChoice::Linear;
        for (sensors, snr_db) in [(3, Some(5.0)), (5, None)] {
            let data = bimodal(sensors, snr_db, 1);
            let fitted = fit_with(&data.mixture, &config).unwrap().model;
            assert_eq!(fitted.header.output_noise, None, "{sensors} sensors at {snr_db:?} dB");
        }
    }

    /// The variance of `y` left after its least-squares fit on the true sources (their
    /// centred columns made orthonormal, Gram–Schmidt).
    fn residual_variance(y: &[f32], truth: &unmix_core::Recording) -> f64 {
        let centred = |c: &[f32]| {
            let mean = c.iter().map(|&v| f64::from(v)).sum::<f64>() / c.len() as f64;
            c.iter().map(|&v| f64::from(v) - mean).collect::<Vec<f64>>()
        };
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
        let mut basis: Vec<Vec<f64>> = Vec::new();
        for j in 0..truth.channels() {
            let mut q = centred(&truth.channel(j));
            for e in &basis {
                let along = dot(&q, e);
                q.iter_mut().zip(e).for_each(|(v, e)| *v -= along * e);
            }
            let norm = dot(&q, &q).sqrt();
            q.iter_mut().for_each(|v| *v /= norm);
            basis.push(q);
        }
        let mut residual = centred(y);
        for e in &basis {
            let along = dot(&residual, e);
            residual.iter_mut().zip(e).for_each(|(v, e)| *v -= along * e);
        }
        dot(&residual, &residual) / y.len() as f64
    }
}
