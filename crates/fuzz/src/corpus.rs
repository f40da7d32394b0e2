//! The valid inputs mutations start from, made by the project's own code from seeded
//! data: WAV files written by hound (every sample format, extra chunks, an odd-sized chunk
//! with its pad byte) and by unmix's stream writer, RF64 files as EBU Tech 3306 lays them
//! out, sensor CSVs in the shapes loggers write, and model files of both architectures
//! fitted by `unmix_separate`.

use std::io::Cursor;

use unmix_core::Recording;
use unmix_separate::{ConsensusConfig, ModelChoice, SeparateParams, SourceCount};
use unmix_synth::{MixKind, SynthConfig, generate};

/// A small mixture: `channels` channels of `frames` frames, seeded.
fn mixture(channels: usize, frames: usize, seed: u64) -> Recording {
    let config =
        SynthConfig { sources: channels, sensors: channels, frames, ..SynthConfig::paper(MixKind::Linear, seed) };
    generate(&config).expect("valid synth settings").mixture
}

/// A WAV of `recording` in hound's `spec` (full scale ±1 for floats, scaled for integers).
fn hound_wav(recording: &Recording, bits: u16, float: bool) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: recording.channels() as u16,
        sample_rate: 8000,
        bits_per_sample: bits,
        sample_format: if float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
    };
    let mut bytes = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut bytes, spec).expect("a valid spec");
    let peak = recording.interleaved().iter().fold(1e-9f32, |a, v| a.max(v.abs()));
    for &v in recording.interleaved() {
        let v = v / peak * 0.9;
        match (float, bits) {
            (true, _) => writer.write_sample(v),
            (false, 8) => writer.write_sample((v * 127.0) as i8),
            (false, 16) => writer.write_sample((v * 32767.0) as i16),
            (false, _) => writer.write_sample((v * ((1i64 << (bits - 1)) - 1) as f32) as i32),
        }
        .expect("in memory");
    }
    writer.finalize().expect("in memory");
    bytes.into_inner()
}

/// `wav` with an extra chunk of `len` bytes (odd lengths get their pad byte) before `data`.
fn with_chunk(wav: &[u8], id: &[u8; 4], len: usize) -> Vec<u8> {
    let data_at = wav.windows(4).position(|w| w == b"data").expect("a data chunk");
    let mut chunk = id.to_vec();
    chunk.extend_from_slice(&(len as u32).to_le_bytes());
    chunk.extend((0..len).map(|k| k as u8));
    if len % 2 == 1 {
        chunk.push(0);
    }
    let mut out = wav[..data_at].to_vec();
    out.extend_from_slice(&chunk);
    out.extend_from_slice(&wav[data_at..]);
    let riff = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff.to_le_bytes());
    out
}

/// The same samples as RF64 (EBU Tech 3306): `RF64` and `data` sizes 0xFFFFFFFF, the real
/// ones in a `ds64` chunk.
fn rf64(wav: &[u8]) -> Vec<u8> {
    let fmt_at = wav.windows(4).position(|w| w == b"fmt ").expect("a fmt chunk");
    let fmt_len = u32::from_le_bytes(wav[fmt_at + 4..fmt_at + 8].try_into().expect("4 bytes")) as usize;
    let fmt = &wav[fmt_at..fmt_at + 8 + fmt_len];
    let data_at = wav.windows(4).position(|w| w == b"data").expect("a data chunk");
    let data_len = u32::from_le_bytes(wav[data_at + 4..data_at + 8].try_into().expect("4 bytes")) as u64;
    let samples = &wav[data_at + 8..];
    let riff_len = 4 + (8 + 28) + fmt.len() as u64 + 8 + data_len;
    let mut out = b"RF64".to_vec();
    out.extend_from_slice(&u32::MAX.to_le_bytes());
    out.extend_from_slice(b"WAVEds64");
    out.extend_from_slice(&28u32.to_le_bytes());
    out.extend_from_slice(&riff_len.to_le_bytes());
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // sample count: unused for PCM
    out.extend_from_slice(&0u32.to_le_bytes()); // no table
    out.extend_from_slice(fmt);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&u32::MAX.to_le_bytes());
    out.extend_from_slice(samples);
    out
}

/// WAV seeds: every sample format hound writes, 1 to 4 channels, an extra chunk of odd
/// length (pad byte), and unmix's own stream writer's output (a `JUNK` chunk reserved).
pub fn wav() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (k, (bits, float)) in [(8, false), (16, false), (24, false), (32, false), (32, true)].into_iter().enumerate() {
        let channels = 1 + k % 4;
        out.push(hound_wav(&mixture(channels, 64, k as u64 + 1), bits, float));
    }
    out.push(with_chunk(&hound_wav(&mixture(2, 48, 9), 16, false), b"LIST", 13));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("stream.wav");
    unmix_io::write_wav_f32(&path, &mixture(3, 40, 11)).expect("a writable temporary file");
    out.push(std::fs::read(&path).expect("just written"));
    out
}

/// RF64 seeds: the WAV seeds' samples in RF64 form.
pub fn rf64_seeds() -> Vec<Vec<u8>> {
    wav().iter().map(|w| rf64(w)).collect()
}

/// CSV seeds in the shapes loggers and spreadsheets write.
pub fn csv() -> Vec<Vec<u8>> {
    let rows = |recording: &Recording, sep: &str, decimal_comma: bool, stamp: Option<f64>| -> String {
        let mut text = String::new();
        for (k, frame) in recording.iter_frames().enumerate() {
            let mut cells: Vec<String> = stamp.map(|dt| format!("{}", k as f64 * dt)).into_iter().collect();
            cells.extend(frame.iter().map(|v| {
                let cell = format!("{v}");
                if decimal_comma { cell.replace('.', ",") } else { cell }
            }));
            text += &cells.join(sep);
            text += "\n";
        }
        text
    };
    let r = mixture(3, 24, 21);
    vec![
        format!("a,b,c\n{}", rows(&r, ",", false, None)),
        rows(&r, ",", false, None),
        format!("time_ms;x;y;z\n{}", rows(&r, ";", true, Some(10.0))),
        format!("Time (s)\tx\ty\tz\n{}", rows(&r, "\t", false, Some(0.01))),
        format!("# logger v2\n# units: g\n\n\"x\",\"y\",\"z\"\n{}", rows(&r, ",", false, None)),
        format!("x,y,z,\r\n{}", rows(&r, ",", false, None).replace('\n', ",\r\n")),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

/// Model-file seeds: a PDGMM-VAE (whitened, warm-started, with a score baseline and
/// source gains), a saturating chain, a linear model and a post-nonlinear model, each
/// fitted by `unmix_separate` on a small mixture.
pub fn models() -> Vec<Vec<u8>> {
    let fit = |choice: ModelChoice, kind: MixKind| {
        let data = generate(&SynthConfig { frames: 600, ..SynthConfig::paper(kind, 3) }).expect("valid synth settings");
        let mut params = SeparateParams::new(SourceCount::Fixed(3));
        params.model = choice;
        params.restarts = ConsensusConfig::single();
        params.layout = params.layout.with_encoder_hidden(vec![4]).with_decoder_hidden(vec![4]);
        params.recipe = params.recipe.with_max_epochs(2).with_min_epochs(1);
        params.chain.starts = 1;
        params.chain.steps = 20;
        params.chain.screen_steps = 0;
        params.post_nonlinear.starts = 1;
        params.post_nonlinear.max_iterations = 20;
        let config = params.check().expect("valid settings");
        let fitted = unmix_separate::fit(&data.mixture, &config, &unmix_core::CancelToken::new(), &mut |_| {})
            .expect("a small fit succeeds");
        fitted.model.to_bytes().expect("a fitted model serialises")
    };
    vec![
        fit(ModelChoice::Vae, MixKind::Linear),
        fit(ModelChoice::Chain, MixKind::Nonlinear),
        fit(ModelChoice::Linear, MixKind::Linear),
        fit(ModelChoice::PostNonlinear, MixKind::PostNonlinear),
        room_model(),
    ]
}

/// A room's model: a small frequency-domain fit of a linear mixture with its spatial model
/// (a 64-sample STFT, so that the file stays small for the mutations).
fn room_model() -> Vec<u8> {
    let data = generate(&SynthConfig { frames: 4000, sensors: 3, ..SynthConfig::paper(MixKind::Linear, 3) })
        .expect("valid synth settings");
    let stft = unmix_freq::StftConfig { frame: 64, hop: 16 };
    let iva = unmix_freq::IvaConfig { prior: unmix_freq::SourcePrior::Laplace, iterations: 5, seed: 1 };
    let mnmf = unmix_freq::MnmfConfig { iterations: 3, components: 2, seed: 1, starts: 1 };
    let fit = unmix_freq::separate_recording(&data.mixture, 2, stft, &iva, Some(&mnmf), 0, Default::default())
        .expect("a small fit");
    let filter = fit.spatial.as_ref().expect("the spatial model ran").spatial_filter();
    let reals = |v: &[f64]| v.iter().map(|&x| x as f32).collect();
    let single = |v: &[unmix_freq::Complex64]| v.iter().flat_map(|c| [c.re as f32, c.im as f32]).collect();
    let model = unmix_format::RoomModel {
        header: unmix_format::RoomHeader {
            unmix_version: "fuzz".into(),
            channels: 3,
            sources: 2,
            sample_rate_hz: data.mixture.sample_rate_hz(),
            stft_frame: stft.frame,
            stft_hop: stft.hop,
            reference: 0,
            filters: unmix_format::RoomFilters::Demixing,
            spatial: true,
            picked_channels: None,
            training_config: Default::default(),
            training_summary: Default::default(),
        },
        filters: single(&fit.fit.demixing.w),
        demixing: single(&fit.fit.full),
        spatial: Some(unmix_format::RoomSpatial {
            q: single(&filter.q),
            g: reals(&filter.g),
            power: reals(&filter.power),
        }),
    };
    model.to_bytes().expect("a fitted room model serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed is valid: mutations start from inputs the readers take.
    #[test]
    fn every_seed_reads() {
        for (k, bytes) in wav().into_iter().chain(rf64_seeds()).enumerate() {
            let mut reader =
                unmix_io::WavBlockReader::from_stream(std::path::Path::new("seed"), Box::new(Cursor::new(bytes)))
                    .unwrap_or_else(|e| panic!("seed {k}: {e}"));
            let mut out = Vec::new();
            assert!(reader.read_block(&mut out, 1 << 16).unwrap() > 0, "seed {k}");
        }
        for (k, bytes) in csv().into_iter().enumerate() {
            let all = unmix_io::ChannelSelection::all();
            let mut reader = unmix_io::CsvBlockReader::from_reader(
                std::path::Path::new("seed"),
                Box::new(Cursor::new(bytes)),
                100,
                &all,
            )
            .unwrap_or_else(|e| panic!("csv seed {k}: {e}"));
            let mut out = Vec::new();
            assert_eq!(
                reader.read_block(&mut out, 1000).unwrap_or_else(|e| panic!("csv seed {k}: {e}")),
                24,
                "csv seed {k}"
            );
        }
        for bytes in models() {
            unmix_format::AnyModel::from_bytes(&bytes).unwrap();
        }
    }
}
