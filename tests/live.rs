//! `unmix live` and `unmix devices` through a real ALSA device with no sound card: the
//! `file` plugin (`pcm.filecap`) captures from a raw F32_LE file, set up by each test in
//! its own `ALSA_CONFIG_PATH`. The plugin is not paced (frames arrive as fast as the CPU
//! allows) and repeats stale data after the file's end, so these tests stop by
//! `--duration` at the file's length; the paced session (warm-up, refits) is tested in
//! `unmix-live` with a real-time feeder. Only built with `--features live`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use unmix_synth::{MixKind, SynthConfig, generate};

use crate::util::*;

/// A temporary ALSA setup whose `filecap` device plays `mixture` (interleaved f32).
struct FileCapture {
    _dir: tempfile::TempDir,
    config: PathBuf,
}

impl FileCapture {
    fn new(samples: &[f32]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("input.raw");
        let bytes: Vec<u8> = samples.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&raw, bytes).unwrap();
        let config = dir.path().join("asound.conf");
        std::fs::write(
            &config,
            format!(
                "pcm.filecap {{\n type file\n slave.pcm \"null\"\n file \"/dev/null\"\n infile \"{}\"\n format \"raw\"\n}}\n",
                raw.display()
            ),
        )
        .unwrap();
        Self { _dir: dir, config }
    }

    fn unmix(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_unmix"))
            .args(args)
            .env("ALSA_CONFIG_PATH", format!("/usr/share/alsa/alsa.conf:{}", self.config.display()))
            .output()
            .expect("the unmix binary runs")
    }
}

fn separate_model(dir: &Path, mixture: &Path) -> PathBuf {
    let out = dir.join("sep");
    let o = unmix(&[
        "separate",
        mixture.to_str().unwrap(),
        "-n",
        "3",
        "-o",
        out.to_str().unwrap(),
        "--quiet",
        "--no-plots",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    out.join("model.unmix")
}

/// With a saved model, every frame the device delivers is separated, in order, exactly as
/// `unmix apply` separates the same frames offline; the recording is a valid WAV.
#[test]
fn live_from_alsa_with_a_model_records_exactly_the_offline_sources() {
    let dir = tempfile::tempdir().unwrap();
    let rate = 48_000;
    let data =
        generate(&SynthConfig { frames: rate, sample_rate_hz: rate as u32, ..SynthConfig::paper(MixKind::Linear, 5) })
            .unwrap();
    let mixture = dir.path().join("mixture.wav");
    unmix_io::write_wav_f32(&mixture, &data.mixture).unwrap();
    let model = separate_model(dir.path(), &mixture);
    let alsa = FileCapture::new(data.mixture.interleaved());

    let o = alsa.unmix(&["devices"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("alsa:filecap"), "{}", String::from_utf8_lossy(&o.stdout));

    let record = dir.path().join("live.wav");
    let report = dir.path().join("live.json");
    let o = alsa.unmix(&[
        "live",
        "--input",
        "filecap",
        "--channels",
        "3",
        "-n",
        "3",
        "--model",
        model.to_str().unwrap(),
        "--duration",
        "1s",
        "--rate",
        "48000",
        "--ring-seconds",
        "2",
        "--record",
        record.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--stats",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("input alsa:filecap: 3 channels, 48000 Hz, f32"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("processing load"), "--stats prints the load");

    let offline = dir.path().join("offline.wav");
    let a = unmix(&["apply", model.to_str().unwrap(), mixture.to_str().unwrap(), "-o", offline.to_str().unwrap()]);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(read(&record), read(&offline), "live output differs from offline apply");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["end"], "duration");
    assert_eq!(r["status"]["frames_in"], rate);
    assert_eq!(r["status"]["dropped_frames"], 0);
}

/// Missing devices, impossible channel counts and bad options fail with one clear line,
/// no panic and no recording.
#[test]
fn live_refuses_what_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let alsa = FileCapture::new(&[0.0; 300]);
    let record = dir.path().join("never.wav");
    let rec = record.to_str().unwrap();
    let o = alsa.unmix(&["live", "--input", "no-such-mic", "--channels", "2", "-n", "2", "--record", rec]);
    assert_clean_failure(&o, "no-such-mic", "no input device 'no-such-mic'");
    assert!(stderr(&o).contains("alsa:filecap"), "the error lists what exists: {}", stderr(&o));
    let o = alsa.unmix(&["live", "--input", "filecap", "--channels", "40", "-n", "2", "--record", rec]);
    assert_clean_failure(&o, "filecap", "does not support 40 channels (it supports 1–32 channels)");
    let o = alsa.unmix(&["live", "--input", "filecap", "--channels", "2", "-n", "3", "--record", rec]);
    assert_clean_failure(&o, "filecap", "2 channels cannot be separated into 3 sources");
    let o = alsa.unmix(&["live", "--input", "filecap", "--channels", "2", "-n", "2", "--warmup", "soon"]);
    assert!(!o.status.success() && stderr(&o).contains("not a positive duration"), "{}", stderr(&o));
    assert!(!record.exists(), "no recording for a session that never started");
}
