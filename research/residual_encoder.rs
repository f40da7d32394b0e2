//! Does PDGMM's encoder with a hidden layer beside a linear path, started at the linear
//! model and fitted in its noiseless limit (`unmix_likelihood::residual`), beat the linear
//! model on held-out likelihood, and does it then separate better?
//!
//! Two kinds of input:
//! - `bent FAMILY SEED`: the sources of `unmix synth linear` (3, or `--sources N`; 10 000
//!   frames), mixed,
//!   each channel standardised and bent, mixed again: `x = A2 g(A1 s)`. FAMILY is `linear`
//!   (no bend), `cubic` (`u + (0.15 + 0.1 c) u³` on channel `c`), `arctan`
//!   (`atan((1 + 0.5 c) u)`) or `bilinear` (`u_c + 0.3 u_c u_{c+1}`): bends that neither
//!   the saturating chain nor the per-channel curves describe. `--out DIR` writes
//!   `mixture.wav` and `truth.wav` for `unmix separate DIR/mixture.wav -n N --truth
//!   DIR/truth.wav` (`N` the number of sources).
//! - `wav MIXTURE TRUTH`: any recording with its truth (as `unmix synth` writes them),
//!   whitened to as many dimensions as the truth has sources.
//!
//! Prints both models' held-out NLL (nats per frame of the whitened frames, every 5th frame
//! held out) and mean / worst |corr| against the truth. With `--curves` (as many channels
//! as sources), also the post-nonlinear model (on the standardised channels) and the
//! residual encoder started at it instead (`fit_residual_from` on the curved frames), with
//! its gain over the curves — how `auto` would weigh it against the curves where they win —
//! and the two starts' held-out NLL on one scale (the density of the samples as read).
//!
//! Run: `cargo run --release --example residual_encoder -- bent cubic 2 [--sources 3]
//! [--hidden 16] [--seed 0] [--curves] [--out DIR]`, or `-- wav DIR/mixture.wav
//! DIR/truth.wav`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use unmix_core::Recording;
use unmix_dsp::metrics::score;
use unmix_dsp::{Normaliser, NormaliserConfig};
use unmix_likelihood::linear::{LinearConfig, fit_linear};
use unmix_likelihood::postnonlinear::{self, PostNonlinearConfig};
use unmix_likelihood::residual::{ResidualConfig, fit_residual, fit_residual_from};
use unmix_synth::{MixKind, SynthConfig, bend_between_mixings, generate};

const USAGE: &str = "the residual encoder against the linear model: held-out NLL and |corr|\n\n\
     usage: cargo run --release --example residual_encoder -- bent linear|cubic|arctan|bilinear SEED \
     [--sources 3] [--hidden 16] [--seed 0] [--curves] [--out DIR]\n\
     \x20      cargo run --release --example residual_encoder -- wav MIXTURE.wav TRUTH.wav [--hidden 16] [--seed 0] \
     [--curves]";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return Ok(());
    }
    if args.len() < 3 {
        bail!("expected an input kind and two values\n\n{USAGE}");
    }
    let mut config = ResidualConfig::default();
    let mut out = None::<PathBuf>;
    let mut sources = 3usize;
    let mut curves = false;
    let mut rest = args[3..].iter();
    while let Some(arg) = rest.next() {
        let mut value = || rest.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--hidden" => config.hidden = value()?.parse()?,
            "--seed" => config.seed = value()?.parse()?,
            "--out" => out = Some(PathBuf::from(value()?)),
            "--sources" => sources = value()?.parse()?,
            "--curves" => curves = true,
            other => bail!("unknown argument {other}"),
        }
    }
    let (mixture, truth) = match args[0].as_str() {
        "bent" => bent(&args[1], args[2].parse().context("SEED")?, sources)?,
        "wav" => (read(Path::new(&args[1]))?, read(Path::new(&args[2]))?),
        other => bail!("unknown input kind {other} (bent or wav)"),
    };
    if let Some(dir) = out {
        std::fs::create_dir_all(&dir)?;
        unmix_io::write_wav_f32(&dir.join("mixture.wav"), &mixture)?;
        unmix_io::write_wav_f32(&dir.join("truth.wav"), &truth)?;
    }
    let n = truth.channels();
    if curves && mixture.channels() != n {
        bail!("--curves needs as many channels as sources ({} channels, {n} sources)", mixture.channels());
    }
    let normaliser = Normaliser::fit(&mixture, NormaliserConfig { whiten_to: Some(n) })?;
    let whitened = normaliser.transform(&mixture)?;
    let truth: Vec<Vec<f32>> = (0..n).map(|j| truth.channel(j)).collect();
    let columns = |interleaved: Vec<f64>| -> Vec<Vec<f32>> {
        (0..n).map(|j| interleaved.iter().skip(j).step_by(n).map(|&v| v as f32).collect()).collect()
    };
    let started = Instant::now();
    let linear = fit_linear(&whitened, n, &LinearConfig::default(), None)?;
    let linear_wall = started.elapsed().as_secs_f64();
    let linear_score = score(&truth, &columns(linear.demix(&whitened)))?;
    let started = Instant::now();
    let fit = fit_residual(&whitened, &linear, &config, None)?;
    let wall = started.elapsed().as_secs_f64();
    let ours = score(&truth, &columns(fit.demix(&whitened)))?;
    let residual_nll = fit.validation_nll;
    println!(
        "linear: held-out NLL {:.4}, |corr| mean {:.4} worst {:.4}, {linear_wall:.2} s",
        linear.validation_nll, linear_score.mean_abs_corr, linear_score.min_abs_corr
    );
    println!(
        "residual ({} hidden): held-out NLL {:.4} ({:+.4} against linear; kept iteration {} of {}), \
         |corr| mean {:.4} worst {:.4}, {wall:.2} s",
        fit.hidden,
        fit.validation_nll,
        fit.validation_nll - linear.validation_nll,
        fit.kept_iteration,
        fit.iterations,
        ours.mean_abs_corr,
        ours.min_abs_corr
    );
    if curves {
        let standardiser = Normaliser::fit(&mixture, NormaliserConfig { whiten_to: None })?;
        let standardised = standardiser.transform(&mixture)?;
        let started = Instant::now();
        let pnl = postnonlinear::fit(&standardised, n, &PostNonlinearConfig::default(), None)?;
        let pnl_wall = started.elapsed().as_secs_f64();
        let pnl_score = score(&truth, &columns(pnl.demix(&standardised)))?;
        let straight = pnl.straight_validation_nll.unwrap_or(f64::NAN);
        println!(
            "curves: held-out NLL {:.4} (standardised; {:+.4} against their straight fit), \
             |corr| mean {:.4} worst {:.4}, {pnl_wall:.2} s",
            pnl.validation_nll,
            pnl.validation_nll - straight,
            pnl_score.mean_abs_corr,
            pnl_score.min_abs_corr
        );
        let curved = pnl.curved(&standardised);
        let started = Instant::now();
        let fit = fit_residual_from(&curved, &pnl.unmixing, &pnl.priors, &config, None)?;
        let wall = started.elapsed().as_secs_f64();
        let ours = score(&truth, &columns(fit.demix(&curved)))?;
        println!(
            "residual from the curves: {:+.4} against the curves (kept iteration {} of {}), \
             |corr| mean {:.4} worst {:.4}, {wall:.2} s",
            fit.validation_nll - fit.start_nll,
            fit.kept_iteration,
            fit.iterations,
            ours.mean_abs_corr,
            ours.min_abs_corr
        );
        // The two starts on one scale: the density of the samples as read, the same
        // held-out frames (every 5th of the same frames, whitened or standardised).
        let from_linear = residual_nll + normaliser.nll_offset_nats();
        // (its own NLL is of the curved frames: its gain over its start is its gain over
        // the curves, whose NLL includes their log-slope)
        let from_curves = pnl.validation_nll - (fit.start_nll - fit.validation_nll) + standardiser.nll_offset_nats();
        let better = if from_curves < from_linear { "the curves" } else { "the linear model" };
        println!(
            "on the samples' scale: from the linear model {from_linear:.4}, from the curves {from_curves:.4} \
             (the start at {better} is {:.4} nats per frame ahead)",
            (from_linear - from_curves).abs()
        );
    }
    Ok(())
}

fn read(path: &Path) -> Result<Recording> {
    unmix_io::read_wav(path).with_context(|| format!("{}", path.display()))
}

/// `x = A2 g(A1 s)` for `sources` sources of `unmix synth linear` (seed `seed`), `A1` its
/// mixing, `A2` drawn from seed `1000 + seed` ([`bend_between_mixings`]). Gives the
/// mixture and the truth.
fn bent(family: &str, seed: u64, sources: usize) -> Result<(Recording, Recording)> {
    let config = SynthConfig { frames: 10_000, sources, sensors: sources, ..SynthConfig::paper(MixKind::Linear, seed) };
    let data = generate(&config)?;
    let bend: fn(usize, &[f64]) -> f64 = match family {
        "linear" => |c: usize, u: &[f64]| u[c],
        "cubic" => |c: usize, u: &[f64]| u[c] + (0.15 + 0.1 * c as f64) * u[c].powi(3),
        "arctan" => |c: usize, u: &[f64]| (u[c] * (1.0 + 0.5 * c as f64)).atan(),
        "bilinear" => |c: usize, u: &[f64]| u[c] + 0.3 * u[c] * u[(c + 1) % u.len()],
        other => bail!("unknown family {other} (linear, cubic, arctan or bilinear)"),
    };
    Ok((bend_between_mixings(&data.mixture, 1000 + seed, bend)?, data.truth))
}
