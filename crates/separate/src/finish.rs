//! What every trained model gets before it is handed out, whichever kind it is: the
//! evidence per latent and the pruning of `-n auto`, the documented output order and sign,
//! each source's output gain (its level in the recording) and the monitoring score
//! baseline; and the alignment of a refit to its predecessor.
//!
//! Each is measured by running the model's own encoder on the training segment (on the
//! configured kernel), so what is measured is what `apply` will compute.

use serde::{Deserialize, Serialize};
use unmix_core::Recording;
use unmix_dsp::linalg::{Matrix, symmetric_pseudo_inverse};
use unmix_dsp::metrics::{hungarian_min_cost, pearson};
use unmix_format::{ModelFile, ScoreBaseline};
use unmix_infer::{Kernel, Separator};

use crate::{Error, Result, apply};

/// A latent carrying less than this much information about the input (nats, Gaussian
/// estimate `½ ln(1 + var μ_j / σ_j²)`) is uninformative: its posterior is as wide as
/// its spread. Only `-n auto` prunes such latents.
pub const MIN_LATENT_INFORMATION_NATS: f64 = 0.1;

/// Evidence about one latent dimension of the trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentEvidence {
    /// Variance of the posterior mean over the training segment.
    pub mean_variance: f64,
    /// Posterior variance `σ_j²`.
    pub posterior_variance: f64,
    /// `½ ln(1 + mean_variance / posterior_variance)`, nats.
    pub information_nats: f64,
    /// Whether the latent was kept.
    pub kept: bool,
}

/// How the output order and signs were fixed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ordering {
    /// The rule, in words.
    pub rule: String,
    /// Fraction of the standardised input variance each output source explains, in output order.
    pub explained_variance: Vec<f64>,
    /// Which trained latent (index into the training history's per-source curves, dropped
    /// ones included) became each output source.
    pub from_latent: Vec<usize>,
    /// Sign applied to each (±1).
    pub signs: Vec<f32>,
}

/// What every trained model gets before it is handed out, whichever kind it is: the
/// evidence per latent, pruning (with `prune`), the documented order and sign, the sources'
/// gains (and, with `denoise`, the sensor noise in its outputs) and the monitoring
/// baseline, checked at each stage.
pub(crate) fn finish_model(
    mut file: ModelFile,
    segment: &Recording,
    prune: bool,
    denoise: bool,
    kernel: Kernel,
) -> Result<(ModelFile, Vec<LatentEvidence>, Ordering)> {
    file.check()?;
    let latents = latent_evidence(&file, segment, kernel)?;
    let ordering = prune_order_and_sign(&mut file, segment, &latents, prune, kernel)?;
    // Before the gains, which are then measured on the outputs as they will be.
    if denoise {
        file.header.output_noise = crate::denoise::output_noise(&file);
    }
    file.header.source_gains = Some(source_gains(&file, segment, kernel)?);
    file.check()?;
    file.header.score_baseline = Some(score_baseline(&file, segment, kernel)?);
    Ok((file, latents, ordering))
}

/// Drops the latents `latents` marks uninformative when `prune` (`-n auto`), then fixes
/// the output order and signs ([`fix_order_and_sign`]); the ordering names the trained
/// latents, dropped ones counted.
fn prune_order_and_sign(
    file: &mut ModelFile,
    segment: &Recording,
    latents: &[LatentEvidence],
    prune: bool,
    kernel: Kernel,
) -> Result<Ordering> {
    let mut keep: Vec<usize> = (0..latents.len()).collect();
    if prune && latents.iter().any(|l| !l.kept) {
        keep.retain(|&j| latents[j].kept);
        let fill = latent_means(file, segment, kernel)?;
        file.weights.select_sources(&keep, &vec![1.0; keep.len()], &fill)?;
        file.header.sources = keep.len();
    }
    let mut ordering = fix_order_and_sign(file, segment, kernel)?;
    // The order was found among the kept latents.
    for latent in &mut ordering.from_latent {
        *latent = keep[*latent];
    }
    Ok(ordering)
}

/// The posterior means of the model on `segment`, as columns.
fn latent_columns(file: &ModelFile, segment: &Recording, kernel: Kernel) -> Result<Vec<Vec<f32>>> {
    let sources = apply(file, segment, kernel)?;
    Ok((0..sources.channels()).map(|j| sources.channel(j)).collect())
}

fn mean_and_variance(x: &[f32]) -> (f64, f64) {
    let t = x.len().max(1) as f64;
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / t;
    (mean, x.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / t)
}

fn latent_means(file: &ModelFile, segment: &Recording, kernel: Kernel) -> Result<Vec<f32>> {
    Ok(latent_columns(file, segment, kernel)?.iter().map(|c| mean_and_variance(c).0 as f32).collect())
}

fn latent_evidence(file: &ModelFile, segment: &Recording, kernel: Kernel) -> Result<Vec<LatentEvidence>> {
    let columns = latent_columns(file, segment, kernel)?;
    let posterior: Vec<f64> = file.weights.posterior_log_var.iter().map(|w| f64::from(*w).exp()).collect();
    Ok(columns
        .iter()
        .zip(posterior)
        .map(|(c, posterior_variance)| {
            let mean_variance = mean_and_variance(c).1;
            let information_nats = 0.5 * (1.0 + mean_variance / posterior_variance.max(f64::MIN_POSITIVE)).ln();
            LatentEvidence {
                mean_variance,
                posterior_variance,
                information_nats,
                kept: information_nats >= MIN_LATENT_INFORMATION_NATS,
            }
        })
        .collect())
}

/// The documented output order and sign, applied to the model itself (so `apply` and
/// every later use agree):
///
/// - **order**: by the fraction of the standardised input variance each source explains,
///   `Σ_i cov(x̃_i, s_j)² / var(s_j) / m`, largest first — the loudest source is channel 1;
/// - **sign**: the channel with the largest |covariance| with the source gets a positive
///   one (the source's largest mixing weight is positive).
///
/// Both are properties of the recording and the separated source, not of the seed or the
/// latent the source happened to land in, so runs with different seeds agree.
fn fix_order_and_sign(file: &mut ModelFile, segment: &Recording, kernel: Kernel) -> Result<Ordering> {
    let columns = latent_columns(file, segment, kernel)?;
    let (m, t) = (segment.channels(), segment.frames());
    let norm = &file.header.normaliser;
    let standardised: Vec<Vec<f64>> = (0..m)
        .map(|i| {
            let (mu, sd) = (f64::from(norm.mean[i]), f64::from(norm.scale[i]));
            segment.channel(i).iter().map(|&v| (f64::from(v) - mu) / sd).collect()
        })
        .collect();
    let mut explained = Vec::with_capacity(columns.len());
    let mut signs = Vec::with_capacity(columns.len());
    for s in &columns {
        let (mean, var) = mean_and_variance(s);
        let cov: Vec<f64> = standardised
            .iter()
            .map(|x| x.iter().zip(s).map(|(a, &b)| a * (f64::from(b) - mean)).sum::<f64>() / t as f64)
            .collect();
        explained.push(cov.iter().map(|c| c * c).sum::<f64>() / var.max(f64::MIN_POSITIVE) / m as f64);
        let pivot = cov.iter().copied().fold(0.0f64, |a, b| if b.abs() > a.abs() { b } else { a });
        signs.push(if pivot < 0.0 { -1.0f32 } else { 1.0 });
    }
    let mut order: Vec<usize> = (0..columns.len()).collect();
    order.sort_by(|&a, &b| explained[b].total_cmp(&explained[a]));
    let signs: Vec<f32> = order.iter().map(|&j| signs[j]).collect();
    file.relabel_sources(&order, &signs)?;
    file.check()?;
    Ok(Ordering {
        rule: "by explained variance of the standardised channels, largest first; sign: largest mixing weight positive"
            .into(),
        explained_variance: order.iter().map(|&j| explained[j]).collect(),
        from_latent: order,
        signs,
    })
}

/// The output gain of each source of `file` (its posterior means as they are, no gains
/// yet): the RMS over the channels of the source's image in `segment`, so that `g_j μ_j`
/// has the standard deviation its image has at the sensors, on average over them, in the
/// input's units. The images are the columns of the back-projection `Â = C_xμ C_μμ⁻¹`,
/// the regression of the channels on all sources at once (the images then add up to the
/// recording as far as the sources explain it, leakage between estimates included).
/// Whatever scale the model gave its latents, a source comes out at the level it has in
/// the recording (the minimal-distortion choice of scale in blind source separation).
fn source_gains(file: &ModelFile, segment: &Recording, kernel: Kernel) -> Result<Vec<f32>> {
    let columns = latent_columns(file, segment, kernel)?;
    let (m, n) = (segment.channels(), columns.len());
    let t = segment.frames().max(1) as f64;
    let centred = |x: &[f32]| -> Vec<f64> {
        let (mean, _) = mean_and_variance(x);
        x.iter().map(|&v| f64::from(v) - mean).collect()
    };
    let mu: Vec<Vec<f64>> = columns.iter().map(|c| centred(c)).collect();
    let x: Vec<Vec<f64>> = (0..m).map(|i| centred(&segment.channel(i))).collect();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>() / t;
    let cross = |rows: &[Vec<f64>]| {
        Matrix::from_rows(&rows.iter().map(|r| mu.iter().map(|c| dot(r, c)).collect()).collect::<Vec<_>>())
    };
    // C_μμ⁻¹; a direction with (next to) no variance — a silent latent — is left out
    // rather than blown up.
    let inverse = symmetric_pseudo_inverse(&cross(&mu), 1e-12);
    let images = cross(&x).matmul(&inverse);
    Ok((0..n)
        .map(|j| {
            let gain = ((0..m).map(|i| images.data[i * n + j].powi(2)).sum::<f64>() / m as f64).sqrt() as f32;
            // A source with no image at all keeps its means as they are.
            if gain.is_finite() && gain > 0.0 { gain } else { 1.0 }
        })
        .collect())
}

/// Relabels `model`'s sources so that output `k` is the source `reference` gave as
/// output `k`, with the same sign: both models separate `segment`, the sources are paired
/// by the assignment that maximises the total |correlation|, and each pair's sign is made
/// positive. Returns the correlation of each pair after relabelling (for reporting how
/// well a refit agrees with its predecessor).
///
/// This is how a model re-fitted in the background replaces its predecessor without
/// output channels changing places or polarity.
pub fn align_to(reference: &ModelFile, model: &mut ModelFile, segment: &Recording, kernel: Kernel) -> Result<Vec<f64>> {
    let n = model.header.sources;
    if reference.header.sources != n {
        return Err(Error::Config(format!("cannot align {n} sources to a model with {}", reference.header.sources)));
    }
    let old = latent_columns(reference, segment, kernel)?;
    let new = latent_columns(model, segment, kernel)?;
    let corr: Vec<Vec<f64>> = old.iter().map(|a| new.iter().map(|b| pearson(a, b)).collect()).collect();
    let cost: Vec<Vec<f64>> = corr.iter().map(|row| row.iter().map(|c| -c.abs()).collect()).collect();
    let order = hungarian_min_cost(&cost);
    let signs: Vec<f32> = order.iter().enumerate().map(|(j, &k)| if corr[j][k] < 0.0 { -1.0 } else { 1.0 }).collect();
    model.relabel_sources(&order, &signs)?;
    Ok(order.iter().enumerate().map(|(j, &k)| corr[j][k].abs()).collect())
}

/// The model's monitoring scores on its training segment, summarised into outlier
/// thresholds (the 1st percentile of the log-prior, the 99th of the reconstruction error)
/// and medians. Stored in the model, they let the monitoring windows count the frames
/// unlike the training data.
pub fn score_baseline(model: &ModelFile, segment: &Recording, kernel: Kernel) -> Result<ScoreBaseline> {
    if segment.channels() != model.header.channels {
        return Err(Error::ChannelMismatch { expected: model.header.channels, got: segment.channels() });
    }
    let frames = segment.frames();
    if frames == 0 {
        return Err(Error::TooShort { frames });
    }
    let mut separator = Separator::with_kernel(model, kernel)?;
    let mut sources = vec![0.0f32; frames * separator.sources()];
    let (mut log_prior, mut error) = (vec![0.0f32; frames], vec![0.0f32; frames]);
    separator.process_scored(segment.interleaved(), &mut sources, &mut log_prior, &mut error)?;
    log_prior.sort_by(f32::total_cmp);
    error.sort_by(f32::total_cmp);
    // Nearest-rank quantiles: `q` of the frames lie at or below the value.
    let quantile =
        |sorted: &[f32], q: f64| sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    Ok(ScoreBaseline {
        frames,
        log_prior_p01: quantile(&log_prior, 0.01),
        log_prior_median: quantile(&log_prior, 0.5),
        reconstruction_error_p99: quantile(&error, 0.99),
        reconstruction_error_median: quantile(&error, 0.5),
    })
}

#[cfg(test)]
mod tests {
    use unmix_model::consensus::ConsensusConfig;
    use unmix_synth::{MixKind, SynthConfig, generate};

    use super::*;
    use crate::config::{SeparateParams, SourceCount};
    use crate::testing::{fit_with, quick_params};

    /// Sources come out at the level they have in the recording: each output's RMS is the
    /// RMS over the sensors of its true source's image, and a recording 40 dB quieter
    /// gives sources 40 dB quieter.
    #[test]
    fn sources_come_out_at_their_level_in_the_recording() {
        let data = generate(&SynthConfig { frames: 4000, ..SynthConfig::paper(MixKind::Linear, 3) }).unwrap();
        let mut config = SeparateParams::new(SourceCount::Fixed(3));
        config.restarts = ConsensusConfig::single();
        config.recipe.max_epochs = 30;
        let quiet_mixture = Recording::from_interleaved(
            data.mixture.sample_rate_hz(),
            3,
            data.mixture.interleaved().iter().map(|v| v * 0.01).collect(),
        )
        .unwrap();
        let rms = |x: &[f32]| {
            let (mean, var) = mean_and_variance(x);
            (var + mean * mean).sqrt()
        };
        let mut levels = Vec::new();
        for (mixture, level) in [(&data.mixture, 1.0), (&quiet_mixture, 0.01)] {
            let model = fit_with(mixture, &config).unwrap().model;
            let sources = apply(&model, mixture, Kernel::best()).unwrap();
            let truth: Vec<Vec<f32>> = (0..3).map(|j| data.truth.channel(j)).collect();
            let estimates: Vec<Vec<f32>> = (0..3).map(|j| sources.channel(j)).collect();
            let score = unmix_dsp::metrics::score(&truth, &estimates).unwrap();
            assert!(score.min_abs_corr > 0.99, "{score:?}");
            for s in &score.sources {
                // The true source's image at sensor i (the regression of x_i on it) has the
                // variance cov(x_i, s)² / var(s) = corr(x_i, s)² var(x_i).
                let t = &truth[s.truth];
                let image: f64 = (0..3)
                    .map(|i| {
                        let x = mixture.channel(i);
                        (pearson(&x, t) * mean_and_variance(&x).1.sqrt()).powi(2)
                    })
                    .sum::<f64>()
                    / 3.0;
                let (want, got) = (image.sqrt(), rms(&estimates[s.estimate]));
                // Leakage from the louder sources (|corr| 0.9985 here) moves the weakest
                // source's level by up to about 16 %; the others are within 1 %.
                assert!((got / want - 1.0).abs() < 0.2, "source {}: RMS {got} vs its image's {want}", s.truth);
                levels.push(got / level);
            }
        }
        // The same recording 40 dB down gives the same sources 40 dB down.
        for (loud, quiet) in levels[..3].iter().zip(&levels[3..]) {
            assert!((quiet / loud - 1.0).abs() < 1e-3, "{levels:?}");
        }
    }

    /// `-n auto` dropping a latent: the output keeps the others, and the ordering names
    /// the trained latent of every output (its posterior means, signed), not its place
    /// among the kept ones.
    #[test]
    fn a_dropped_latent_leaves_the_others_named_by_their_trained_index() {
        let data = generate(&SynthConfig { frames: 3000, ..SynthConfig::paper(MixKind::Linear, 2) }).unwrap();
        // The fitted file without its gains stands for the trained model here: its
        // sources, in the order `fit` left them, are the "trained latents".
        let mut as_trained = fit_with(&data.mixture, &quick_params(3, vec![16])).unwrap().model;
        as_trained.header.source_gains = None;
        as_trained.header.score_baseline = None;
        let columns = latent_columns(&as_trained, &data.mixture, Kernel::best()).unwrap();
        let mut latents = latent_evidence(&as_trained, &data.mixture, Kernel::best()).unwrap();
        assert!(latents.iter().all(|l| l.kept));
        for dropped in 0..3 {
            latents.iter_mut().enumerate().for_each(|(j, l)| l.kept = j != dropped);
            let mut pruned = as_trained.clone();
            let ordering = prune_order_and_sign(&mut pruned, &data.mixture, &latents, true, Kernel::best()).unwrap();
            assert_eq!(pruned.header.sources, 2);
            assert!(!ordering.from_latent.contains(&dropped), "{ordering:?}");
            let out = latent_columns(&pruned, &data.mixture, Kernel::best()).unwrap();
            for (i, (&latent, &sign)) in ordering.from_latent.iter().zip(&ordering.signs).enumerate() {
                for (a, b) in out[i].iter().zip(&columns[latent]) {
                    assert!((a - sign * b).abs() <= 1e-5 * b.abs().max(1.0), "output {i} is not latent {latent}");
                }
            }
            // Without `-n auto` nothing is dropped.
            let mut whole = as_trained.clone();
            prune_order_and_sign(&mut whole, &data.mixture, &latents, false, Kernel::best()).unwrap();
            assert_eq!(whole.header.sources, 3);
        }
    }

    /// The fitted model carries its score baseline: on fresh frames of the same mixture
    /// about 1 % of them fall beyond each threshold.
    #[test]
    fn the_score_baseline_flags_about_one_frame_in_a_hundred() {
        let data = generate(&SynthConfig { frames: 22_000, ..SynthConfig::paper(MixKind::Linear, 4) }).unwrap();
        let config = SeparateParams { max_train_frames: 2000, ..quick_params(3, vec![16]) };
        let model = fit_with(&data.mixture, &config).unwrap().model;
        let baseline = model.header.score_baseline.expect("fit measures the baseline");
        assert_eq!(baseline.frames, 2000);
        assert!(baseline.log_prior_p01 < baseline.log_prior_median);
        assert!(baseline.reconstruction_error_p99 > baseline.reconstruction_error_median);
        let fresh = Recording::from_interleaved(8000, 3, data.mixture.interleaved()[2000 * 3..].to_vec()).unwrap();
        let frames = fresh.frames();
        let mut separator = unmix_infer::Separator::new(&model);
        let (mut mu, mut log_prior, mut error) = (vec![0.0; frames * 3], vec![0.0; frames], vec![0.0; frames]);
        separator.process_scored(fresh.interleaved(), &mut mu, &mut log_prior, &mut error).unwrap();
        let low = log_prior.iter().filter(|&&v| v < baseline.log_prior_p01).count() as f64 / frames as f64;
        let high = error.iter().filter(|&&v| v > baseline.reconstruction_error_p99).count() as f64 / frames as f64;
        assert!((0.002..0.03).contains(&low), "{low}");
        assert!((0.002..0.03).contains(&high), "{high}");
        assert!(matches!(score_baseline(&model, &fresh.head(0), Kernel::best()), Err(Error::TooShort { frames: 0 })));
    }

    /// A model aligned to a relabelled copy of itself undoes the relabelling exactly.
    #[test]
    fn alignment_restores_order_and_sign() {
        let data = generate(&SynthConfig { frames: 2000, ..SynthConfig::paper(MixKind::Linear, 5) }).unwrap();
        let model = fit_with(&data.mixture, &quick_params(3, vec![8])).unwrap().model;
        let mut shuffled = model.clone();
        shuffled.relabel_sources(&[2, 0, 1], &[-1.0, 1.0, -1.0]).unwrap();
        let corr = align_to(&model, &mut shuffled, &data.mixture, Kernel::best()).unwrap();
        assert!(corr.iter().all(|&c| c > 0.999_999), "{corr:?}");
        let (a, b) = (
            apply(&model, &data.mixture, Kernel::best()).unwrap(),
            apply(&shuffled, &data.mixture, Kernel::best()).unwrap(),
        );
        for (x, y) in a.interleaved().iter().zip(b.interleaved()) {
            assert!((x - y).abs() <= 1e-6 * x.abs().max(1.0), "{x} vs {y}");
        }
    }
}
