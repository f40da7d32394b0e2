//! The PDGMM-VAE paper's experiments (section 4) on unmix's own `synth` data: 3 sources,
//! T = 10 000, linear and nonlinear mixing, data seeds 1–5, default settings. Prints
//! |corr| per source, mean, min, SI-SDR and wall time per seed.
//!
//! Run: `cargo run --release --example paper` (add `-- linear` or `-- nonlinear` for one
//! case, `-- --seeds 1,2` for other seeds).

use std::time::Instant;

use anyhow::Result;
use unmix_dsp::metrics::score;
use unmix_model::{Backend, PdgmmVaeConfig, TrainingConfig};
use unmix_separate::{DEFAULT_MAX_TRAIN_FRAMES, SeparateConfig, apply, fit};
use unmix_synth::{MixKind, SynthConfig, generate};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut kinds = vec![MixKind::Linear, MixKind::Nonlinear];
    let mut seeds: Vec<u64> = (1..=5).collect();
    let mut overrides: Vec<(String, f64)> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "linear" => kinds = vec![MixKind::Linear],
            "nonlinear" => kinds = vec![MixKind::Nonlinear],
            "--seeds" => {
                i += 1;
                seeds = args[i].split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            other if other.starts_with("--") => {
                i += 1;
                overrides.push((other[2..].to_string(), args[i].parse()?));
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
        i += 1;
    }
    for kind in kinds {
        println!(
            "\n{kind:?} mixing, 3 sources, T = 10 000 (paper: {})",
            match kind {
                MixKind::Linear => "0.9988 / 0.9963 / 0.9907",
                MixKind::Nonlinear => "0.9943 / 0.9693 / 0.9593",
            }
        );
        println!(
            "{:>4}  {:>7} {:>7} {:>7}  {:>7} {:>7}  {:>8}  {:>6}  {:>6}",
            "seed", "|c|1", "|c|2", "|c|3", "mean", "min", "SI-SDR", "epochs", "wall s"
        );
        let mut means = Vec::new();
        for &seed in &seeds {
            let data = generate(&SynthConfig::paper(kind, seed))?;
            let mut training = TrainingConfig::new(PdgmmVaeConfig::new(3, 3));
            let mut whiten = true;
            for (name, value) in &overrides {
                match name.as_str() {
                    "beta" => training.beta = *value,
                    "lambda" => training.lambda = *value,
                    "lr" => training.learning_rate = *value,
                    "batch" => training.batch_size = *value as usize,
                    "k" => training.model.components = *value as usize,
                    "hidden" => {
                        let h = *value as usize;
                        training.model.encoder_hidden = if h == 0 { vec![] } else { vec![h] };
                        training.model.decoder_hidden = training.model.encoder_hidden.clone();
                    }
                    "hidden2" => {
                        let h = *value as usize;
                        training.model.encoder_hidden = vec![h, h];
                        training.model.decoder_hidden = vec![h, h];
                    }
                    "act" => {
                        training.model.activation = match *value as usize {
                            0 => unmix_model::Activation::Tanh,
                            1 => unmix_model::Activation::Relu,
                            2 => unmix_model::Activation::LeakyRelu,
                            _ => unmix_model::Activation::Silu,
                        }
                    }
                    "max-epochs" => training.max_epochs = *value as usize,
                    "min-epochs" => training.min_epochs = *value as usize,
                    "tol" => training.plateau_tolerance = *value,
                    "omega" => training.model.initial_posterior_log_var = *value,
                    "whiten" => whiten = *value != 0.0,
                    other => anyhow::bail!("unknown override --{other}"),
                }
            }
            let config = SeparateConfig {
                sources: 3,
                max_train_frames: DEFAULT_MAX_TRAIN_FRAMES,
                whiten,
                training,
                backend: Backend::default_compiled()?,
            };
            let started = Instant::now();
            let (model, history) = fit(&data.mixture, &config, &mut |_| {})?;
            let estimates = apply(&model, &data.mixture)?;
            let wall = started.elapsed().as_secs_f64();
            let truth: Vec<Vec<f32>> = (0..3).map(|c| data.truth.channel(c)).collect();
            let est: Vec<Vec<f32>> = (0..3).map(|c| estimates.channel(c)).collect();
            let s = score(&truth, &est)?;
            println!(
                "{seed:>4}  {:>7.4} {:>7.4} {:>7.4}  {:>7.4} {:>7.4}  {:>6.1} dB  {:>6}  {:>6.2}",
                s.sources[0].abs_corr,
                s.sources[1].abs_corr,
                s.sources[2].abs_corr,
                s.mean_abs_corr,
                s.min_abs_corr,
                s.mean_si_sdr_db,
                history.summary.epochs,
                wall
            );
            means.push(s.mean_abs_corr);
        }
        let avg = means.iter().sum::<f64>() / means.len() as f64;
        println!("mean over seeds: {avg:.4}");
    }
    Ok(())
}
