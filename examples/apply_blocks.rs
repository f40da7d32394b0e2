//! Apply a saved model to blocks of samples as they arrive, as an audio callback or a
//! sensor loop would: the separator is built once, then each block goes through
//! `process` into a buffer allocated up front (no allocation, lock or system call per
//! block).
//!
//! Run: `cargo run --release --example apply_blocks [-- MODEL.unmix MIXTURE.wav]`
//! (default: the bundled demo, trained first into `demo-output/` by `unmix demo`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use unmix_format::ModelFile;
use unmix_infer::Separator;
use unmix_io::WavBlockReader;

/// Frames per block: 5.3 ms at 48 kHz, a typical audio period.
const BLOCK_FRAMES: usize = 256;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let model_path = PathBuf::from(args.next().unwrap_or_else(|| "demo-output/model.unmix".into()));
    let input = PathBuf::from(args.next().unwrap_or_else(|| "data/demo/mixture.wav".into()));
    let model = ModelFile::load(&model_path)
        .with_context(|| format!("{} (run `cargo run --release -- demo` first)", model_path.display()))?;

    // Built once: every buffer the encoder needs is allocated here.
    let mut separator = Separator::new(&model);
    let (channels, sources) = (separator.channels(), separator.sources());
    let mut reader = WavBlockReader::open(&input)?;
    anyhow::ensure!(reader.channels() == channels, "the model expects {channels} channels");
    let mut block = Vec::with_capacity(BLOCK_FRAMES * channels);
    let mut out = vec![0.0f32; BLOCK_FRAMES * sources];

    let (mut frames, mut energy) = (0usize, vec![0.0f64; sources]);
    loop {
        let got = reader.read_block(&mut block, BLOCK_FRAMES)?;
        if got == 0 {
            break;
        }
        // The real-time part: one call per block, into the buffer made above.
        separator.process(&block[..got * channels], &mut out[..got * sources])?;
        for frame in out[..got * sources].chunks_exact(sources) {
            for (e, &s) in energy.iter_mut().zip(frame) {
                *e += f64::from(s) * f64::from(s);
            }
        }
        frames += got;
    }
    let rms: Vec<String> = energy.iter().map(|e| format!("{:.4}", (e / frames.max(1) as f64).sqrt())).collect();
    println!("{frames} frames in blocks of {BLOCK_FRAMES} on the {} kernel", separator.kernel_name());
    println!("RMS of each source: {}", rms.join(", "));
    Ok(())
}
