//! `--kernel`: the encoder kernel of every separator a command builds.

use anyhow::{Result, anyhow};
use clap::Args;
use unmix_infer::Kernel;

/// The option of the commands that run the encoder (`separate`, `apply`, `demo`, `live`).
#[derive(Args, Debug, Clone, Default)]
pub struct KernelArgs {
    /// The encoder's compute kernel (default: the fastest this processor runs). Kernels
    /// agree to about 1e-5, not bit for bit: name one (`portable` runs everywhere) to run
    /// the same arithmetic on every machine. `--stats` and report.json say which one ran.
    #[arg(long, value_name = "KERNEL", value_parser = kernel_ids())]
    pub kernel: Option<String>,
}

impl KernelArgs {
    /// No choice: the fastest kernel.
    pub const NONE: KernelArgs = KernelArgs { kernel: None };

    /// Makes the chosen kernel that of every separator this run builds; one this
    /// processor lacks is refused, naming those it runs.
    pub fn select(&self) -> Result<()> {
        let Some(id) = self.kernel.as_deref() else { return Ok(()) };
        let kernel = Kernel::from_id(id).ok_or_else(|| anyhow!("--kernel {id}: no such kernel in this build"))?;
        kernel.select().map_err(|e| {
            let here: Vec<_> = Kernel::available().map(Kernel::id).collect();
            anyhow!("--kernel {id}: {e} (it runs: {})", here.join(", "))
        })
    }
}

/// The kernels compiled into this build, by their command-line names.
fn kernel_ids() -> clap::builder::PossibleValuesParser {
    Kernel::ALL.iter().map(|k| k.id()).collect::<Vec<_>>().into()
}
