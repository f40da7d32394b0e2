//! Helpers shared by the integration tests.

#![allow(dead_code)] // each test module uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use unmix_core::Recording;
use unmix_synth::{MixKind, SynthConfig, generate};

/// Runs the `unmix` binary with `args`.
pub fn unmix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_unmix")).args(args).output().expect("the unmix binary runs")
}

/// Starts the `unmix` binary with `args` reading a pipe the test writes (a logger, a
/// recorder); its output is collected when it ends.
pub fn unmix_on_a_pipe(args: &[&str]) -> (std::process::Child, std::process::ChildStdin) {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_unmix"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the unmix binary runs");
    let stdin = child.stdin.take().expect("piped stdin");
    (child, stdin)
}

/// Waits up to a minute for `ready`; whether it came.
pub fn wait_for(ready: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    ready()
}

/// Runs the `unmix` binary with `args`, `input` written to its standard input (from a
/// thread, so a child that stops reading early cannot block the test).
pub fn unmix_fed(args: &[&str], input: Vec<u8>) -> Output {
    use std::io::Write;
    let (child, mut stdin) = unmix_on_a_pipe(args);
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input); // a closed pipe is the child's business
    });
    let out = child.wait_with_output().expect("the unmix binary ends");
    writer.join().expect("the writer thread ends");
    out
}

/// Stdout as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a clean failure: non-zero exit, no panic, one `error:` line naming `file` and
/// containing `problem`.
pub fn assert_clean_failure(out: &Output, file: &str, problem: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "expected failure, got success; stderr: {err}");
    assert_ne!(out.status.code(), Some(101), "exit code 101 is a panic: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {err}");
    assert!(lines[0].contains(file), "error does not name {file}: {err}");
    assert!(lines[0].contains(problem), "error does not say '{problem}': {err}");
}

/// The bundled talkers' directory (`data/speech`).
pub fn speech_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/speech")
}

/// Names of the files in `dir` (empty if it does not exist).
pub fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

/// Writes a synthetic mixture and its truth as float WAVs into `dir`.
pub fn synth_wavs(
    dir: &Path,
    kind: MixKind,
    sources: usize,
    sensors: usize,
    frames: usize,
    seed: u64,
) -> (PathBuf, PathBuf) {
    let data = generate(&SynthConfig { sources, sensors, frames, ..SynthConfig::paper(kind, seed) })
        .expect("valid synth settings");
    let mix = dir.join("mixture.wav");
    let truth = dir.join("truth.wav");
    unmix_io::write_wav_f32(&mix, &data.mixture).expect("write mixture");
    unmix_io::write_wav_f32(&truth, &data.truth).expect("write truth");
    (mix, truth)
}

/// Writes interleaved samples as a WAV with hound's own writer.
pub fn write_wav(path: &Path, channels: u16, samples: &[f32]) {
    let spec =
        hound::WavSpec { channels, sample_rate: 8000, bits_per_sample: 32, sample_format: hound::SampleFormat::Float };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    for &s in samples {
        w.write_sample(s).expect("write sample");
    }
    w.finalize().expect("finalize wav");
}

/// Reads a WAV into a recording.
pub fn read(path: &Path) -> Recording {
    unmix_io::read_wav(path).expect("readable wav")
}

/// Fast training options for tests that only need a model, not a good one.
pub const QUICK: &[&str] = &["--epochs", "3", "--quiet", "--no-plots"];

/// Asserts `got` and `want` have the same samples within `tolerance` × the largest
/// |sample| of `want` (outputs of two encoder kernels, say).
pub fn assert_close_to(got: &Recording, want: &Recording, tolerance: f32) {
    let scale = want.interleaved().iter().fold(0.0f32, |a, v| a.max(v.abs()));
    for (i, (g, w)) in got.interleaved().iter().zip(want.interleaved()).enumerate() {
        assert!((g - w).abs() <= tolerance * scale, "sample {i}: {g} vs {w} (scale {scale})");
    }
}
