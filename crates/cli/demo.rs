//! `unmix demo`: separate the bundled demo mixture and score it against its truth.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;

use crate::separate::{self, SeparateArgs};

/// The demo's own output directory, replaced by every run.
const DEFAULT_OUTPUT: &str = "demo-output";

/// Arguments of `unmix demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where to write the results (default: demo-output, whose results every run of the
    /// demo replaces; a directory named here keeps earlier results unless --force).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Replace the results already in the directory given with -o.
    #[arg(long)]
    force: bool,
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
    let output = args.output.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_OUTPUT));
    let mut separate_args = SeparateArgs::defaults(dir.join("mixture.wav"), "3", output.clone());
    separate_args.truth = Some(dir.join("truth.wav"));
    separate_args.force = args.force || args.output.is_none();
    separate_args.kernel = args.kernel.clone();
    let outcome = separate::execute(&separate_args)?;
    let Some(score) = outcome.score else { bail!("demo produced no score") };
    println!(
        "\nmean |corr| {:.4}, min |corr| {:.4}, mean SI-SDR {:.1} dB",
        score.mean_abs_corr, score.min_abs_corr, score.mean_si_sdr_db
    );
    println!("results, model, report and plots: {}", output.display());
    Ok(())
}
