//! What a command may write over: nothing it should not. An existing file is replaced only
//! with `--force`; a FIFO, a character device or `-` is written through and stays what it
//! was; a symbolic link is followed, never replaced; a directory is refused; an output
//! directory forced again holds the new run's results as a whole.

use std::path::{Path, PathBuf};

use unmix_synth::MixKind;

use crate::util::*;

/// A model of a quick 2-source separation, and its mixture.
fn model_and_mixture(dir: &Path) -> (PathBuf, PathBuf) {
    let (mix, _) = synth_wavs(dir, MixKind::Linear, 2, 2, 2000, 5);
    let out = dir.join("trained");
    let mut args = vec!["separate", mix.to_str().unwrap(), "-n", "2", "-o", out.to_str().unwrap()];
    args.extend_from_slice(QUICK);
    let o = unmix(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    (out.join("model.unmix"), mix)
}

fn apply(model: &Path, mix: &Path, output: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", model.to_str().unwrap(), mix.to_str().unwrap(), "-o", output.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push("--quiet");
    unmix(&args)
}

/// The sources of a WAV that came through a stream (placeholder sizes), read as a
/// recorder's stream is.
fn read_stream(bytes: Vec<u8>) -> Vec<f32> {
    let mut reader =
        unmix_io::WavBlockReader::from_stream(Path::new("stream"), Box::new(std::io::Cursor::new(bytes))).unwrap();
    let (mut all, mut block) = (Vec::new(), Vec::new());
    while reader.read_block(&mut block, 4096).unwrap() > 0 {
        all.extend_from_slice(&block);
    }
    all
}

#[cfg(unix)]
#[test]
fn a_fifo_gets_the_sources_and_stays_a_fifo() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempfile::tempdir().unwrap();
    let (model, mix) = model_and_mixture(dir.path());
    let file = dir.path().join("sources.wav");
    assert!(apply(&model, &mix, &file, &[]).status.success());
    let fifo = dir.path().join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    // No --force: writing into a pipe replaces nothing.
    let o = apply(&model, &mix, &fifo, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let streamed = read_stream(reader.join().unwrap());
    assert_eq!(streamed, read(&file).interleaved(), "the stream carries the file's sources");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced");
}

#[test]
fn dash_writes_the_sources_to_standard_output() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mix) = model_and_mixture(dir.path());
    let file = dir.path().join("sources.wav");
    assert!(apply(&model, &mix, &file, &[]).status.success());
    let o = apply(&model, &mix, Path::new("-"), &["--stats"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_stream(o.stdout.clone()), read(&file).interleaved());
    // What the command says goes to stderr, leaving stdout to the samples.
    let said = stderr(&o);
    assert!(said.contains("separated 2000 frames") && said.contains("encoder kernel"), "{said}");
    assert!(!Path::new("-").exists() && !dir.path().join("-").exists(), "a file named '-' was created");
}

#[cfg(unix)]
#[test]
fn a_link_is_followed_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mix) = model_and_mixture(dir.path());
    let (target, link) = (dir.path().join("target.wav"), dir.path().join("link.wav"));
    std::fs::write(&target, "old").unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_clean_failure(&apply(&model, &mix, &link, &[]), "link.wav", "already exists (-o); pass --force");
    let o = apply(&model, &mix, &link, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link was replaced");
    assert_eq!(read(&target).frames(), 2000, "the link's target holds the sources");
    // A link to nothing is refused, with or without --force.
    std::fs::remove_file(&target).unwrap();
    assert_clean_failure(&apply(&model, &mix, &link, &["--force"]), "link.wav", "symbolic link to nothing");
}

#[test]
fn a_directory_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mix) = model_and_mixture(dir.path());
    let o = apply(&model, &mix, dir.path(), &["--force"]);
    assert_clean_failure(&o, &dir.path().display().to_string(), "is a directory (-o)");
}

/// A plot is a PNG file: another name, or a stream, is refused before anything is
/// written.
#[test]
fn a_plot_that_cannot_be_drawn_is_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mix) = model_and_mixture(dir.path());
    let (sources, scores) = (dir.path().join("s.wav"), dir.path().join("s.csv"));
    let plot = dir.path().join("scores");
    let o = apply(&model, &mix, &sources, &["--scores", scores.to_str().unwrap(), "--plot", plot.to_str().unwrap()]);
    assert_clean_failure(&o, "scores", "a plot is a PNG; name it with .png (--plot)");
    assert!(!sources.exists() && !scores.exists() && !plot.exists(), "{:?}", files_in(dir.path()));
}

/// A CSV run with scores, then a WAV run forced into the same directory: the directory
/// holds the second run's results and none of the first's.
#[test]
fn a_forced_run_replaces_the_results_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 2, 2, 2000, 6);
    let csv = dir.path().join("mixture.csv");
    unmix_io::write_csv(&csv, &read(&mix), &["a".into(), "b".into()]).unwrap();
    let out = dir.path().join("out");
    let run = |input: &Path, extra: &[&str]| {
        let mut args = vec!["separate", input.to_str().unwrap(), "-n", "2", "-o", out.to_str().unwrap()];
        args.extend_from_slice(&["--epochs", "3", "--quiet"]);
        args.extend_from_slice(extra);
        unmix(&args)
    };
    let o = run(&csv, &["--csv-rate", "8000", "--scores"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut first = files_in(&out);
    first.sort();
    assert!(first.contains(&"sources.csv".to_string()) && first.contains(&"scores.png".to_string()), "{first:?}");
    let o = run(&mix, &["--force", "--no-plots"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut second = files_in(&out);
    second.sort();
    assert_eq!(second, ["model.unmix", "report.json", "sources.wav"]);
}

/// In an output directory unmix replaces only its own regular files: a link or a FIFO at
/// a result's name is refused, even with --force, and left as it was.
#[cfg(unix)]
#[test]
fn a_link_at_a_results_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 2, 2, 2000, 6);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let elsewhere = dir.path().join("precious.wav");
    std::fs::write(&elsewhere, "keep").unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join("sources.wav")).unwrap();
    let mut args = vec!["separate", mix.to_str().unwrap(), "-n", "2", "-o", out.to_str().unwrap(), "--force"];
    args.extend_from_slice(QUICK);
    assert_clean_failure(&unmix(&args), "sources.wav", "is not a regular file");
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "keep");
    assert!(std::fs::symlink_metadata(out.join("sources.wav")).unwrap().file_type().is_symlink());
}

/// The demo's own directory is replaced by every run; one named with -o keeps its results
/// unless --force.
#[test]
fn the_demo_keeps_a_named_directory_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("model.unmix"), "an earlier model").unwrap();
    let o = unmix(&["demo", "-o", out.to_str().unwrap()]);
    assert_clean_failure(&o, "demo", "already holds results (model.unmix); pass --force");
    assert_eq!(std::fs::read_to_string(out.join("model.unmix")).unwrap(), "an earlier model");
}
