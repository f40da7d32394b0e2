//! Separate a multichannel WAV in a few lines: train on it with `unmix separate`'s
//! defaults, write the sources and keep the model.
//!
//! Run: `cargo run --release --example separate_file [-- MIXTURE.wav SOURCES OUT.wav]`
//! (default: the bundled demo, `data/demo/mixture.wav`, 3 sources, `demo-sources.wav`).

use std::path::PathBuf;

use anyhow::Result;
use unmix_separate::{CancelToken, SeparateConfig, SourceCount, apply, fit};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let input = PathBuf::from(args.next().unwrap_or_else(|| "data/demo/mixture.wav".into()));
    let sources: usize = args.next().map_or(Ok(3), |n| n.parse())?;
    let output = PathBuf::from(args.next().unwrap_or_else(|| "demo-sources.wav".into()));

    let recording = unmix_io::read_wav(&input)?;
    let config = SeparateConfig::defaults(SourceCount::Fixed(sources))?;
    let fitted = fit(&recording, &config, &CancelToken::new(), &mut |_| {})?;
    println!("model: {} ({})", fitted.selection.chosen, fitted.selection.reason);

    let separated = apply(&fitted.model, &recording, config.params().kernel)?;
    unmix_io::write_wav_f32(&output, &separated)?;
    fitted.model.save(&output.with_extension("unmix"))?;
    println!("{} sources → {} (model beside it)", separated.channels(), output.display());
    Ok(())
}
