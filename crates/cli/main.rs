//! `unmix`: separate mixed multichannel signals into their independent sources.
//!
//! Run `unmix --help` for the commands; `cargo run --release -- demo` separates the
//! bundled demo mixture and prints its scores.

mod apply;
mod demo;
mod live;
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Synth(a) => synth::run(a),
        Command::Separate(a) => separate::run(a).map(|_| ()),
        Command::Apply(a) => apply::run(a),
        Command::Score(a) => score::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Devices(a) => live::devices(a),
        Command::Live(a) => live::live(a),
        Command::Play(a) => live::play(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes, outermost first.
            let chain: Vec<String> = e.chain().map(ToString::to_string).collect();
            let mut line = String::new();
            for part in chain {
                if !line.contains(&part) {
                    if !line.is_empty() {
                        line.push_str(": ");
                    }
                    line.push_str(&part);
                }
            }
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}
