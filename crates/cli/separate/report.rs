//! What `unmix separate` says about a fit: on the terminal, and the priors in report.json.

use unmix_core::plural;
use unmix_format::ModelFile;
use unmix_likelihood::temporal::resonance;
use unmix_separate::{Fitted, MIN_LATENT_INFORMATION_NATS, ModelKind, SeparateConfig};

/// A wait as a person reads it: `0.8 s`, `21 min 51 s`, `3 h 2 min`.
pub(super) fn duration_text(seconds: f64) -> String {
    let whole = seconds.round() as u64;
    match seconds {
        s if s < 60.0 => format!("{s:.1} s"),
        s if s < 3600.0 => format!("{} min {} s", whole / 60, whole % 60),
        _ => format!("{} h {} min", whole / 3600, whole % 3600 / 60),
    }
}

/// Says how training ended — the source count, the restarts and the chosen run's
/// convergence; a run that hit the epoch cap is always reported, quiet or not.
pub(super) fn report_fit(fitted: &Fitted, quiet: bool) {
    if let (Some(count), false) = (&fitted.count, quiet) {
        println!("-n auto: {} ({})", plural(fitted.model.header.sources, "source"), count.reason);
        let dropped = fitted.latents.iter().filter(|l| !l.kept).count();
        if dropped > 0 {
            println!("  {dropped} latent(s) carried < {MIN_LATENT_INFORMATION_NATS} nats and were pruned");
        }
    }
    let selection = &fitted.selection;
    if !quiet {
        println!("model: {} ({})", selection.chosen, selection.reason);
        if let Some(score) = &selection.vae {
            let linear = selection
                .linear
                .as_ref()
                .map_or(String::new(), |l| format!("; the linear model's {:.4}", l.validation_nll));
            match (score.validation_nll, &score.unscored) {
                (Some(nll), _) => println!(
                    "PDGMM-VAE: held-out NLL {nll:.4} nats per frame, its encoder read as a change of variables{linear}"
                ),
                (None, Some(why)) => println!("PDGMM-VAE: no held-out NLL ({why}){linear}"),
                (None, None) => {}
            }
        }
    }
    let Some(vae) = &fitted.vae else {
        if let (Some(linear), false) = (&selection.linear, quiet) {
            println!(
                "linear model: held-out NLL {:.4} nats per frame after {}{}{}",
                linear.validation_nll,
                plural(linear.iterations, "iteration"),
                if linear.converged { "" } else { " (stopped at the cap before its tolerance)" },
                linear.refit.as_ref().map_or(String::new(), |r| format!(
                    "; then {} on all {}",
                    plural(r.iterations, "iteration"),
                    plural(r.frames, "frame")
                ))
            );
        }
        if let (Some(chain), false) = (&selection.chain, quiet) {
            println!(
                "saturating chain: start {} of {} chosen, held-out NLL {:.4} nats per frame on {}; {}",
                chain.chosen + 1,
                chain.starts.len(),
                chain.validation_nll,
                plural(chain.frames, "training frame"),
                match chain.last_change() {
                    Some(change) =>
                        format!("{} steps, the NLL still changing by {change:.1e} over the last tenth", chain.steps),
                    None => format!("stopped at its screening after {} steps", chain.steps),
                }
            );
        }
        if let (Some(curves), false) = (&selection.post_nonlinear, quiet) {
            let straight = curves.straight_nll.map_or(String::new(), |n| format!(", with straight curves {n:.4}"));
            println!(
                "post-nonlinear model: start {} of {} chosen, held-out NLL {:.4} nats per frame on {}{straight}{}",
                curves.chosen + 1,
                curves.starts.len(),
                curves.validation_nll,
                plural(curves.frames, "training frame"),
                if curves.screened_out { "; every start stopped at its screening" } else { "" }
            );
        }
        if let (Some(encoder), false) = (&selection.encoder, quiet) {
            let start = encoder.start.name();
            println!(
                "PDGMM's encoder on {start} ({} hidden units): held-out NLL {:.4} nats per frame after {} \
                 ({}), {} {:.4} on the same frames",
                encoder.hidden,
                encoder.validation_nll,
                plural(encoder.iterations, "iteration"),
                match encoder.kept_iteration {
                    0 => format!("none better than its start, {start}"),
                    k => format!("iteration {k} kept"),
                },
                encoder.start.possessive(),
                encoder.start_nll,
            );
        }
        if let (Some(temporal), false) = (&selection.temporal, quiet) {
            println!(
                "temporal prior (AR({}) with GMM innovations): held-out NLL {:.4} nats per frame on {} after {}, \
                 the linear model's {:.4} on the same frames",
                temporal.config.order,
                temporal.validation_nll,
                plural(temporal.frames, "training frame"),
                plural(temporal.iterations, "iteration"),
                temporal.linear_nll,
            );
            if let Some(prior) = &fitted.model.header.temporal_prior {
                let rate = f64::from(fitted.model.header.sample_rate_hz);
                let peaks: Vec<String> = prior
                    .ar
                    .iter()
                    .enumerate()
                    .map(|(j, c)| match resonance(c, rate) {
                        Some((f, zeta)) => format!("source {}: {f:.3} Hz, damping {:.2} %", j + 1, 100.0 * zeta),
                        None => format!("source {}: none", j + 1),
                    })
                    .collect();
                // The AR polynomial's peak, a rough reading: `unmix modes` fits each
                // resonance over the noise floor.
                println!("  spectral peaks of the AR fit: {}", peaks.join("; "));
            }
        }
        if let (Some(shares), false) = (noise_shares(&fitted.model), quiet) {
            let dropped = fitted.model.header.channels - fitted.model.header.sources;
            let shares: Vec<String> = shares.iter().map(|s| format!("{:.1} %", 100.0 * s)).collect();
            println!(
                "sources given as posterior means: the sensor noise (read from the {} beyond the sources) is {} of \
                 each output's variance",
                plural(dropped, "channel"),
                shares.join(" / ")
            );
        }
        return;
    };
    let c = &vae.consensus;
    if !quiet && c.config.candidates > 1 {
        println!(
            "restarts: {} × {} of {}; chose candidate {} (held-out loss {:.5}, {:.5} at the end)",
            plural(c.config.candidates, "candidate"),
            plural(c.config.rounds, "round"),
            plural(c.config.epochs_per_round, "epoch"),
            c.chosen + 1,
            c.chosen_validation_loss,
            c.final_validation_loss
        );
    }
    let s = &vae.history.summary;
    if s.converged {
        if !quiet {
            println!(
                "training converged after {}: loss {:.5} (last improvement {:.2e} < tolerance {:.0e})",
                plural(s.epochs, "epoch"),
                s.final_loss,
                s.remaining_relative_improvement,
                s.plateau_tolerance
            );
        }
    } else {
        eprintln!(
            "warning: training stopped at the epoch cap ({}) before the loss plateaued: it was still improving by {:.2e} (tolerance {:.0e}); raise --epochs",
            plural(s.epochs, "epoch"),
            s.remaining_relative_improvement,
            s.plateau_tolerance
        );
    }
}

/// The frames the chosen model was trained on.
pub(crate) fn training_frames(fitted: &Fitted) -> usize {
    let selection = &fitted.selection;
    match (&fitted.vae, selection.chosen) {
        (Some(v), _) => v.history.summary.frames,
        (None, ModelKind::Linear) => {
            selection.linear.as_ref().map_or(0, |l| l.refit.as_ref().map_or(l.frames, |r| r.frames))
        }
        (None, ModelKind::PostNonlinear) => selection.post_nonlinear.as_ref().map_or(0, |c| c.frames),
        (None, ModelKind::PdgmmEncoder) => selection.encoder.as_ref().map_or(0, |e| e.frames),
        (None, ModelKind::LinearArGmm) => selection.temporal.as_ref().map_or(0, |t| t.frames),
        (None, _) => selection.chain.as_ref().map_or(0, |c| c.frames),
    }
}

/// The part of report.json that describes the fit: the model choice and every candidate's
/// score, the training, the normalisation, the source count and order, the priors. The
/// same for a file (`unmix separate`) and for a recording in memory (the Python package).
pub(crate) fn fit_json(fitted: &Fitted, config: &SeparateConfig) -> serde_json::Map<String, serde_json::Value> {
    let (model, vae, gross) = (&fitted.model, fitted.vae.as_ref(), &fitted.gross_outliers);
    let report = serde_json::json!({
        "channels": model.header.channels,
        "sample_rate_hz": model.header.sample_rate_hz,
        "sources": model.header.sources,
        "training_frames": training_frames(fitted),
        "gross_outliers": {
            "frames": gross.frames.len(),
            "first_frames": &gross.frames[..gross.frames.len().min(100)],
            "per_channel": &gross.per_channel,
            "worst_levels": &gross.worst_levels,
        },
        "model": fitted.selection,
        "config": model.header.training_config,
        "training": vae.map(|v| &v.history.summary),
        // Where the PDGMM-VAE trained (when it did): the backend and, on a GPU, its adapter.
        "training_device": vae.map(|_| {
            let backend = config.params().backend;
            serde_json::json!({ "backend": backend.name(), "gpu": backend.is_gpu(), "adapter": backend.adapter() })
        }),
        "score_baseline": model.header.score_baseline,
        "normalisation": {
            "whitened": model.header.normaliser.whitening.is_some(),
            "eigenvalues": model.header.normaliser.eigenvalues,
        },
        "source_count": fitted.count,
        "latents": fitted.latents,
        "ordering": fitted.ordering,
        "linear_ica": vae.map(|v| &v.ica),
        "restarts": vae.map(|v| &v.consensus),
        "priors": priors_json(model),
        // A temporal prior's processes, in the output's order (the priors above are then
        // the sources' marginal densities).
        "temporal_prior": model.header.temporal_prior,
        // The sensor noise in each output before the gains (the sources are then their
        // posterior means), and its share of the output's variance.
        "output_noise": model.header.output_noise.as_ref().map(|variances| serde_json::json!({
            "variances": variances,
            "share_of_output": noise_shares(model),
        })),
        "history": vae.map(|v| &v.history.epochs),
    });
    match report {
        serde_json::Value::Object(fields) => fields,
        _ => unreachable!("a JSON object literal"),
    }
}

/// Each output's sensor noise over its variance, for a model that takes it out.
fn noise_shares(model: &ModelFile) -> Option<Vec<f64>> {
    let noise = model.header.output_noise.as_ref()?;
    Some(
        noise
            .iter()
            .enumerate()
            .map(|(j, &v)| f64::from(v) / unmix_separate::denoise::prior_variance(model, j))
            .collect(),
    )
}

pub(super) fn priors_json(model: &ModelFile) -> serde_json::Value {
    let w = &model.weights;
    let k = w.prior.components;
    let sd = w.posterior_std();
    let gains = model.source_gains();
    let per_source: Vec<serde_json::Value> = (0..w.sources())
        .map(|j| {
            serde_json::json!({
                "source": j + 1,
                "output_gain": gains[j],
                "posterior_std": sd[j],
                "weights": w.prior.weights(j),
                "means": &w.prior.means[j * k..(j + 1) * k],
                "variances": w.prior.log_vars[j * k..(j + 1) * k].iter().map(|v| v.exp()).collect::<Vec<f32>>(),
            })
        })
        .collect();
    serde_json::Value::Array(per_source)
}

#[cfg(test)]
mod tests {
    use super::duration_text;

    #[test]
    fn waits_read_as_a_person_says_them() {
        assert_eq!(duration_text(0.75), "0.8 s");
        assert_eq!(duration_text(59.94), "59.9 s");
        assert_eq!(duration_text(1310.72), "21 min 51 s");
        assert_eq!(duration_text(10_920.0), "3 h 2 min");
    }
}
