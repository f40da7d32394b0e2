//! `--kernel`: the encoder kernel of every separator a command builds.

use anyhow::{Result, anyhow, bail};
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
    /// The chosen kernel, or the fastest this processor runs; one this processor lacks is
    /// refused, naming those it runs.
    pub fn kernel(&self) -> Result<Kernel> {
        let Some(id) = self.kernel.as_deref() else { return Ok(Kernel::best()) };
        let kernel = Kernel::from_id(id).ok_or_else(|| anyhow!("--kernel {id}: no such kernel in this build"))?;
        if !kernel.is_available() {
            let e = unmix_infer::Error::KernelUnavailable(kernel.name());
            let here: Vec<_> = Kernel::available().map(Kernel::id).collect();
            bail!("--kernel {id}: {e} (it runs: {})", here.join(", "));
        }
        Ok(kernel)
    }
}

/// The kernels compiled into this build, by their command-line names.
fn kernel_ids() -> clap::builder::PossibleValuesParser {
    Kernel::ALL.iter().map(|k| k.id()).collect::<Vec<_>>().into()
}
