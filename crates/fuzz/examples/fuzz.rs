//! The long fuzz campaign: a million mutated inputs per reader (and settings drawn at
//! random for the checks), each answered without a panic, an abort, or more memory than
//! its bound; prints each target's figures, writes every finding to `--findings`, and
//! exits non-zero if there is one.
//!
//! ```sh
//! cargo run --release -p unmix-fuzz --example fuzz -- --inputs 1000000
//! cargo run --release -p unmix-fuzz --example fuzz -- --target csv --first 4711 --inputs 1   # one input again
//! ```
//!
//! Input `k` depends only on `--seed` and `k`: a finding's index reproduces it, and an
//! abort (which no harness can catch) is found again from the last index printed.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use unmix_fuzz::{Campaign, Target};

#[global_allocator]
static ALLOCATOR: unmix_test_support::CountingAllocator = unmix_test_support::CountingAllocator;

struct Args {
    targets: Vec<Target>,
    inputs: u64,
    first: u64,
    seed: u64,
    findings: PathBuf,
}

fn parse() -> Result<Args, String> {
    let mut args =
        Args { targets: Target::ALL.to_vec(), inputs: 1_000_000, first: 0, seed: 1, findings: "fuzz-findings".into() };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|_| format!("{flag}: '{v}' is not a count"));
        match flag.as_str() {
            "--target" => {
                let v = value()?;
                args.targets = match v.as_str() {
                    "all" => Target::ALL.to_vec(),
                    name => vec![Target::from_name(name).ok_or(format!("--target: no target '{name}'"))?],
                };
            }
            "--inputs" => args.inputs = number(value()?)?,
            "--first" => args.first = number(value()?)?,
            "--seed" => args.seed = number(value()?)?,
            "--findings" => args.findings = value()?.into(),
            "-h" | "--help" => {
                println!(
                    "fuzz [--target all|wav|rf64|csv|model|options] [--inputs N] [--first K] [--seed S] [--findings DIR]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown option {other} (--help)")),
        }
    }
    Ok(args)
}

fn main() {
    let args = parse().unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    });
    println!(
        "| target | inputs | read | refused | findings | largest input | most held | bound at that size | inputs/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut found = 0;
    for &target in &args.targets {
        let campaign = Campaign { target, inputs: args.inputs, first: args.first, seed: args.seed, file_every: 16 };
        let seeds = target.seeds();
        // On a terminal, where it is: after an abort, the input to start again from.
        let terminal = std::io::stderr().is_terminal();
        let report = unmix_fuzz::run(&campaign, &seeds, &mut |done| {
            if terminal {
                eprint!("\r{}: {} inputs done", target.name(), args.first + done);
                let _ = std::io::stderr().flush();
            }
        });
        if terminal {
            eprint!("\r\x1b[2K");
        }
        let peak = report.peak_bytes.map_or("—".into(), |b| format!("{:.1} MiB", b as f64 / f64::from(1 << 20)));
        println!(
            "| {} | {} | {} | {} | {} | {} B | {peak} | {:.1} MiB | {:.0} |",
            target.name(),
            report.inputs,
            report.accepted,
            report.refused,
            report.findings.len(),
            report.largest_input,
            target.memory_bound(report.largest_input) as f64 / f64::from(1 << 20),
            report.inputs as f64 / report.seconds,
        );
        for finding in &report.findings {
            found += 1;
            let _ = std::fs::create_dir_all(&args.findings);
            let path = args.findings.join(format!("{}-{}.bin", target.name(), finding.index));
            let _ = std::fs::write(&path, &finding.input);
            eprintln!("finding: {} input {}: {} → {}", target.name(), finding.index, finding.what, path.display());
        }
    }
    if found > 0 {
        std::process::exit(1);
    }
}
