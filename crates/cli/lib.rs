//! The `unmix` command line as a library: [`main`] is the whole program (`main.rs` only
//! calls it), and [`embedded`] runs its separation job on a recording held in memory, with
//! the command line's own options, defaults and report, for the Python package
//! (`bindings/python`).

mod apply;
mod bounds;
mod demo;
pub mod embedded;
mod interrupt;
mod kernel;
mod live;
mod modes;
mod monitor;
mod output;
mod plot;
mod progress;
mod score;
mod separate;
mod synth;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Separate mixed multichannel signals into their independent sources with PDGMM-VAE, a
/// variational autoencoder with a learnable Gaussian-mixture prior per source.
#[derive(Parser, Debug)]
#[command(name = "unmix", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write a synthetic benchmark mixture (the PDGMM-VAE paper's problems) with its truth.
    Synth(synth::SynthArgs),
    /// Train PDGMM-VAE on a recording and write the separated sources, model and report.
    Separate(separate::SeparateArgs),
    /// Identify a structure's modes from its sensors: natural frequencies, damping ratios
    /// and mode shapes with their standard errors, and every mode's coordinate.
    Modes(modes::ModesArgs),
    /// Watch a structure's sensors: a modal baseline from the input's head, then per
    /// window the modes, a damage index the environment does not move, and an alarm.
    Monitor(monitor::MonitorArgs),
    /// Apply a saved model to a recording with the model's channel count.
    Apply(apply::ApplyArgs),
    /// Score estimated sources against the true ones (|corr| and SI-SDR).
    Score(score::ScoreArgs),
    /// Separate the bundled demo mixture (data/demo) and print the scores.
    Demo(demo::DemoArgs),
    /// List audio hosts and devices with their channels, rates and formats (`live` feature).
    Devices(live::DevicesArgs),
    /// Separate a live multichannel audio input as it arrives (`live` feature).
    Live(live::LiveArgs),
    /// Play a multichannel WAV on an output device (`live` feature), e.g. to feed a
    /// mixture into a session through JACK.
    Play(live::PlayArgs),
}

/// Runs the command line on the process's arguments: what `unmix` does.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = check_environment().and_then(|()| match cli.command {
        Command::Synth(a) => synth::run(a),
        Command::Separate(a) => separate::run(a).map(|_| ()),
        Command::Apply(a) => apply::run(a),
        Command::Modes(a) => modes::run(a),
        Command::Monitor(a) => monitor::run(a),
        Command::Score(a) => score::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Devices(a) => live::devices(a),
        Command::Live(a) => live::live(a),
        Command::Play(a) => live::play(a),
    });
    if !interrupt::claim_end() {
        // A second signal is ending the process at once; its line is the last word.
        loop {
            std::thread::park();
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = one_line(&e);
            eprintln!("error: {line}");
            if let Some(stopped) = e.chain().find_map(|cause| cause.downcast_ref::<interrupt::Interrupted>()) {
                ExitCode::from(stopped.exit_status())
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The environment variables unmix reads, checked before any work: `UNMIX_VECTOR_UNIT`
/// caps the vector unit to measure a narrower path, and a misspelt name, left to the
/// library (which ignores it), would give the figures of the unit it meant to leave.
fn check_environment() -> anyhow::Result<()> {
    use std::env::VarError;
    const NAME: &str = "UNMIX_VECTOR_UNIT";
    match std::env::var(NAME) {
        Err(VarError::NotPresent) => Ok(()),
        Ok(unit) if unmix_vecmath::VectorUnit::named(&unit).is_some() => Ok(()),
        Ok(unit) => anyhow::bail!("{NAME}={unit}: not a vector unit (scalar, avx2 or avx512)"),
        Err(VarError::NotUnicode(unit)) => {
            anyhow::bail!("{NAME}={}: not a vector unit (scalar, avx2 or avx512)", unit.to_string_lossy())
        }
    }
}

/// The error and its causes on one line, outermost first. A cause that repeats what the
/// line already says (a path added as context by the caller and again by the library, say)
/// is not said twice.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut previous = String::new();
    for part in error.chain().map(ToString::to_string) {
        let new = part.strip_prefix(previous.as_str()).and_then(|rest| rest.strip_prefix(": ")).unwrap_or(&part);
        if !new.is_empty() && !line.contains(new) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(new);
        }
        previous = part;
    }
    line
}

#[cfg(test)]
mod tests {
    use super::one_line;
    use anyhow::Context;

    #[test]
    fn one_line_says_each_part_once() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let library = anyhow::Error::new(inner).context("m.unmix: No such file or directory");
        let e = Err::<(), _>(library).context("m.unmix").unwrap_err();
        assert_eq!(one_line(&e), "m.unmix: No such file or directory");
        let e = anyhow::anyhow!("disk full").context("cannot write out.wav");
        assert_eq!(one_line(&e), "cannot write out.wav: disk full");
    }
}
