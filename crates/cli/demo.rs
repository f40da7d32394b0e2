//! `unmix demo`: separate the bundled demo mixture and score it against its truth.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use crate::separate::{self, SeparateArgs};

/// Arguments of `unmix demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where to write the results (overwritten on every run).
    #[arg(short, long, default_value = "demo-output")]
    output: PathBuf,
    #[command(flatten)]
    pub kernel: crate::kernel::KernelArgs,
}

pub fn run(args: DemoArgs) -> Result<()> {
    // From the repository root (`cargo run`) or anywhere else, find the bundled data.
    let candidates = [PathBuf::from("data/demo"), PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/demo")];
    let Some(dir) = candidates.iter().find(|d| d.join("mixture.wav").exists()) else {
        bail!("data/demo/mixture.wav: not found; run the demo from the unmix repository");
    };
    println!(
        "unmix demo: separating {} (3 sources, linear mixture made by `unmix synth`)",
        dir.join("mixture.wav").display()
    );
    let mut separate_args = SeparateArgs::defaults(dir.join("mixture.wav"), "3", args.output.clone());
    separate_args.truth = Some(dir.join("truth.wav"));
    separate_args.force = true;
    separate_args.kernel = args.kernel.clone();
    let outcome = separate::execute(&separate_args)?;
    let Some(score) = outcome.score else { bail!("demo produced no score") };
    println!(
        "\nmean |corr| {:.4}, min |corr| {:.4}, mean SI-SDR {:.1} dB",
        score.mean_abs_corr, score.min_abs_corr, score.mean_si_sdr_db
    );
    println!("results, model, report and plots: {}", args.output.display());
    Ok(())
}
