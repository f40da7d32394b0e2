//! The structural-health benchmark: a shear building's floor accelerations under ground
//! shaking (`unmix synth shm`), its modes the sources. Prints, per seed, the modal
//! coordinates' |corr| (every mode, mean, worst) for `unmix separate`'s model choice, for
//! SOBI (the second-order reference of operational modal analysis, `unmix-dsp`) and for
//! the AR-GMM temporal model (`unmix-likelihood`, with the frequency and damping of each
//! source's AR spectrum), the last two on the same whitened frames, and for the modal
//! identification (`unmix-modal`: SOBI, a Whittle-fitted resonance per mode, Wiener-smoothed
//! coordinates) with every mode's frequency and damping error and its shape's MAC against
//! the truth; and the wall time of each.
//!
//! Run: `cargo run --release --example shm [-- --seeds 1,2,3 --storeys 4 --duration-s 600 --damping 0.02
//! --noise 0.05 --order 8 --components 4 --skip-slow]` (`--order`, `--components`: the AR-GMM
//! model's; `--skip-slow`: the modal identification alone).

use std::time::Instant;

use anyhow::{Context, Result, bail};
use unmix_dsp::metrics::{Score, score};
use unmix_dsp::sobi::{SobiConfig, sobi};
use unmix_dsp::{Normaliser, NormaliserConfig};
use unmix_likelihood::temporal::{TemporalConfig, fit_temporal};
use unmix_modal::{ModalConfig, identify, mac};
use unmix_separate::{CancelToken, SeparateParams, SourceCount, apply, fit};
use unmix_synth::shm::{ShmConfig, simulate};

/// What `--help` prints: every option, at its default where it has one (each is
/// described at the top of this file).
const USAGE: &str = "the building benchmark: every mode's |corr| for the model choice, SOBI, the AR-GMM model and the modal identification\n\n\
     usage: cargo run --release --example shm -- [--seeds 1,2,3] [--storeys 4] [--duration-s 600] \
     [--damping 0.02] [--noise 0.05] [--order 8] [--components 4] [--skip-slow]";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut seeds = vec![1u64, 2, 3];
    let mut config = ShmConfig::benchmark(1);
    let mut temporal_config = TemporalConfig::default();
    let mut skip_slow = false;
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seeds" => seeds = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?,
            "--storeys" => config.storeys = value()?.parse()?,
            "--duration-s" => config.duration_s = value()?.parse()?,
            "--noise" => config.noise = value()?.parse()?,
            "--damping" => config.damping_ratio = value()?.parse()?,
            "--skip-slow" => skip_slow = true,
            "--order" => temporal_config.order = value()?.parse()?,
            "--components" => temporal_config.components = value()?.parse()?,
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let n = config.storeys;
    println!(
        "{n}-storey shear building, {} s at {} Hz, {:.0} % damping, {:.0} % sensor noise",
        config.duration_s,
        config.sample_rate_hz,
        100.0 * config.damping_ratio,
        100.0 * config.noise
    );
    println!(
        "seed | modes (Hz) | model | |corr| per mode | mean | worst | time || SOBI per mode | mean | worst | time"
    );
    for &seed in &seeds {
        let record = simulate(&ShmConfig { seed, ..config.clone() })?;
        let truth: Vec<Vec<f32>> = (0..n).map(|j| record.truth.channel(j)).collect();
        let frequencies: Vec<String> = record.meta.modes.frequencies_hz.iter().map(|f| format!("{f:.2}")).collect();

        let start = Instant::now();
        let analysis = identify(&record.mixture, n, &ModalConfig::default())?;
        let modal_time = start.elapsed().as_secs_f64();
        let coordinates: Vec<Vec<f32>> = (0..n).map(|j| analysis.coordinates.channel(j)).collect();
        let modal = score(&truth, &coordinates)?;
        let truth_modes = &record.meta.modes;
        let (mut worst_f, mut worst_z, mut worst_mac) = (0.0f64, 0.0f64, 1.0f64);
        let mut rows = Vec::new();
        for (j, mode) in analysis.modes.iter().enumerate() {
            let f_error = mode.frequency_hz / truth_modes.frequencies_hz[j] - 1.0;
            let z_error = mode.damping_ratio / truth_modes.damping_ratios[j] - 1.0;
            let shape_mac = mac(&mode.shape, &truth_modes.shapes[j]);
            worst_f = worst_f.max(f_error.abs());
            worst_z = worst_z.max(z_error.abs());
            worst_mac = worst_mac.min(shape_mac);
            rows.push(format!(
                "{:.3} Hz ± {:.3} ({:+.2} %), ζ {:.4} ± {:.4} ({:+.0} %), MAC {:.5}",
                mode.frequency_hz,
                mode.frequency_std_hz.unwrap_or(f64::NAN),
                100.0 * f_error,
                mode.damping_ratio,
                mode.damping_std.unwrap_or(f64::NAN),
                100.0 * z_error,
                shape_mac
            ));
        }
        println!(
            "{seed} | modal: {} | {:.4} | {:.4} | worst: frequency {:.2} %, damping {:.0} %, MAC {:.5} | {modal_time:.2} s",
            per_mode(&modal),
            modal.mean_abs_corr,
            modal.min_abs_corr,
            100.0 * worst_f,
            100.0 * worst_z,
            worst_mac
        );
        for row in rows {
            println!("    {row}");
        }
        if skip_slow {
            continue;
        }

        let start = Instant::now();
        let params = SeparateParams::new(SourceCount::Fixed(n)).check()?;
        let fitted = fit(&record.mixture, &params, &CancelToken::new(), &mut |_| {})?;
        let separated = apply(&fitted.model, &record.mixture, params.params().kernel)?;
        let ours_time = start.elapsed().as_secs_f64();
        let ours = score(&truth, &(0..n).map(|j| separated.channel(j)).collect::<Vec<_>>())?;

        let start = Instant::now();
        let normaliser = Normaliser::fit(&record.mixture, NormaliserConfig { whiten_to: Some(n) })?;
        let whitened = normaliser.transform(&record.mixture)?;
        let reference = sobi(&whitened, n, &SobiConfig::default())?;
        let sources = reference.apply(&whitened);
        let sobi_time = start.elapsed().as_secs_f64();
        let columns: Vec<Vec<f32>> = (0..n).map(|j| sources.iter().skip(j).step_by(n).copied().collect()).collect();
        let theirs = score(&truth, &columns)?;
        let start = Instant::now();
        let temporal = fit_temporal(&whitened, n, &temporal_config, None)?;
        let sources = temporal.demix(&whitened);
        let temporal_time = start.elapsed().as_secs_f64();
        let columns: Vec<Vec<f32>> =
            (0..n).map(|j| sources.iter().skip(j).step_by(n).map(|&v| v as f32).collect()).collect();
        let with_ar = score(&truth, &columns)?;
        let resonances = temporal.resonances(f64::from(config.sample_rate_hz));
        let mut matched: Vec<(usize, Option<(f64, f64)>)> =
            with_ar.sources.iter().map(|p| (p.truth, resonances[p.estimate])).collect();
        matched.sort_by_key(|(t, _)| *t);
        let show = |f: &dyn Fn((f64, f64)) -> String| {
            matched.iter().map(|(_, r)| r.map_or("—".into(), f)).collect::<Vec<_>>().join(" ")
        };
        println!(
            "{seed} | AR-GMM: {} | {:.4} | {:.4} | {} | {} | {temporal_time:.2} s ({} iterations)",
            per_mode(&with_ar),
            with_ar.mean_abs_corr,
            with_ar.min_abs_corr,
            show(&|(f, _)| format!("{f:.3}")),
            show(&|(_, z)| format!("{z:.4}")),
            temporal.iterations
        );
        println!(
            "{seed} | {} | {} | {} | {:.4} | {:.4} | {ours_time:.2} s || {} | {:.4} | {:.4} | {sobi_time:.2} s",
            frequencies.join(" "),
            fitted.selection.chosen,
            per_mode(&ours),
            ours.mean_abs_corr,
            ours.min_abs_corr,
            per_mode(&theirs),
            theirs.mean_abs_corr,
            theirs.min_abs_corr,
        );
    }
    Ok(())
}

/// |corr| of every true mode with its matched estimate, lowest mode first.
fn per_mode(s: &Score) -> String {
    let mut by_truth: Vec<(usize, f64)> = s.sources.iter().map(|p| (p.truth, p.abs_corr)).collect();
    by_truth.sort_by_key(|(t, _)| *t);
    by_truth.iter().map(|(_, c)| format!("{c:.3}")).collect::<Vec<_>>().join(" / ")
}
