//! The structural-health monitoring benchmark: per seed, one long record of `unmix synth
//! shm`'s building — a healthy baseline, a healthy stretch, then a storey losing part of
//! its stiffness — monitored as `unmix monitor` does (`unmix_modal::Baseline`). Prints,
//! per seed, the alarm rate over the healthy windows after the baseline, the first
//! damaged window that alarms (1 = the first window wholly after the loss starts) and the
//! alarm rate over the damaged windows; then the rates over all seeds.
//!
//! Run: `cargo run --release --example shm_monitor [-- --seeds 1-20 --loss 0.1
//! --environment 0.015 --environment-period-s 600 --baseline-s 600 --window-s 60
//! --healthy-s 1200 --damaged-s 600 --storey 2 --false-alarm-rate 0.01]`.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use unmix_modal::{Baseline, HealthConfig};
use unmix_synth::shm::{Damage, Environment, ShmConfig, simulate};

/// What `--help` prints: every option, at its default where it has one (each is
/// described at the top of this file).
const USAGE: &str = "the monitoring benchmark: alarm rates on healthy and damaged windows of a building losing stiffness\n\n\
     usage: cargo run --release --example shm_monitor -- [--seeds 1-5] [--loss 0.1] [--storey 2] \
     [--storeys 4] [--environment 0] [--environment-period-s 600] [--baseline-s 600] \
     [--window-s 60] [--healthy-s 1200] [--damaged-s 600] [--false-alarm-rate 0.01]";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut first_seed, mut last_seed) = (1u64, 5u64);
    let (mut loss, mut storey, mut environment, mut period_s) = (0.1, 2usize, 0.0, 600.0);
    let (mut baseline_s, mut window_s, mut healthy_s, mut damaged_s) = (600.0, 60.0, 1200.0, 600.0);
    let (mut storeys, mut false_alarm_rate) = (4usize, 0.01);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seeds" => {
                let v = value()?;
                let (a, b) = v.split_once('-').unwrap_or((&v, &v));
                (first_seed, last_seed) = (a.parse()?, b.parse()?);
            }
            "--loss" => loss = value()?.parse()?,
            "--storey" => storey = value()?.parse()?,
            "--storeys" => storeys = value()?.parse()?,
            "--environment" => environment = value()?.parse()?,
            "--environment-period-s" => period_s = value()?.parse()?,
            "--baseline-s" => baseline_s = value()?.parse()?,
            "--window-s" => window_s = value()?.parse()?,
            "--healthy-s" => healthy_s = value()?.parse()?,
            "--damaged-s" => damaged_s = value()?.parse()?,
            "--false-alarm-rate" => false_alarm_rate = value()?.parse()?,
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let damage_from_s = baseline_s + healthy_s;
    println!(
        "{storeys}-storey building; baseline {baseline_s} s, healthy {healthy_s} s, then storey {storey} loses {:.0} % for {damaged_s} s; windows of {window_s} s; environment ±{:.1} % over {period_s} s; false-alarm rate {false_alarm_rate}",
        100.0 * loss,
        100.0 * environment
    );
    println!("seed | healthy alarms | first damaged alarm | damaged alarms | limit | wall");
    let (mut healthy_alarms, mut healthy_windows, mut damaged_alarms, mut damaged_windows) = (0, 0, 0, 0);
    let mut late = 0;
    for seed in first_seed..=last_seed {
        let config = ShmConfig {
            storeys,
            duration_s: damage_from_s + damaged_s,
            damage: Some(Damage { storey, loss, from_s: damage_from_s }),
            environment: (environment > 0.0).then_some(Environment { amplitude: environment, period_s }),
            ..ShmConfig::benchmark(seed)
        };
        let record = simulate(&config)?;
        let started = Instant::now();
        let rate = f64::from(config.sample_rate_hz);
        let window = (window_s * rate) as usize;
        let health = HealthConfig { false_alarm_rate, ..HealthConfig::new(window, window) };
        let baseline_frames = (baseline_s * rate) as usize;
        let baseline = Baseline::fit(&record.mixture.head(baseline_frames), storeys, &health)?;
        let channels = record.mixture.channels();
        let samples = record.mixture.interleaved();
        let (mut h, mut hw, mut d, mut dw, mut first) = (0, 0, 0, 0, None);
        let mut start = baseline_frames;
        while start + window <= record.mixture.frames() {
            let assessment = baseline.assess(&samples[start * channels..(start + window) * channels], &health);
            let damaged = start as f64 / rate >= damage_from_s;
            if damaged {
                dw += 1;
                if assessment.alarm {
                    d += 1;
                    first.get_or_insert(dw);
                }
            } else if (start + window) as f64 / rate <= damage_from_s {
                hw += 1;
                h += usize::from(assessment.alarm);
            }
            start += window;
        }
        let wall = started.elapsed().as_secs_f64();
        println!(
            "{seed} | {h}/{hw} | {} | {d}/{dw} | {:.2} | {wall:.1} s",
            first.map_or("none".into(), |w: usize| w.to_string()),
            baseline.limit
        );
        healthy_alarms += h;
        healthy_windows += hw;
        damaged_alarms += d;
        damaged_windows += dw;
        late += usize::from(first.is_none_or(|w| w > 3));
    }
    println!(
        "all: healthy alarm rate {:.3} ({healthy_alarms}/{healthy_windows}), damaged alarm rate {:.3} ({damaged_alarms}/{damaged_windows}), seeds without an alarm in the first three damaged windows: {late}",
        healthy_alarms as f64 / healthy_windows.max(1) as f64,
        damaged_alarms as f64 / damaged_windows.max(1) as f64
    );
    Ok(())
}
