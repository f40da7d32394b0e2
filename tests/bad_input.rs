//! Every kind of bad input gets one clear error line naming the file and the problem, a
//! non-zero exit, no panic, and no partial output.

use crate::util::*;
use unmix_synth::MixKind;

fn separate(input: &std::path::Path, n: &str, out: &std::path::Path) -> std::process::Output {
    let mut args = vec!["separate", input.to_str().unwrap(), "-n", n, "-o", out.to_str().unwrap()];
    args.extend_from_slice(QUICK);
    unmix(&args)
}

#[test]
fn not_a_wav() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("notes.wav");
    std::fs::write(&input, "this is not audio\n").unwrap();
    let out = dir.path().join("out");
    assert_clean_failure(&separate(&input, "2", &out), "notes.wav", "not a readable WAV");
    assert!(files_in(&out).is_empty());
}

#[test]
fn truncated_wav() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 2, 2, 2000, 1);
    let bytes = std::fs::read(&mix).unwrap();
    std::fs::write(&mix, &bytes[..bytes.len() / 2 + 3]).unwrap();
    let out = dir.path().join("out");
    assert_clean_failure(&separate(&mix, "2", &out), "mixture.wav", "truncated");
    assert!(files_in(&out).is_empty());
}

#[test]
fn csv_with_a_non_numeric_cell_names_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sensors.csv");
    let mut text = String::from("a,b\n");
    for i in 0..400 {
        text += &format!("{},{}\n", (i as f32 * 0.1).sin(), (i as f32 * 0.37).cos());
    }
    text += "0.5,n/a\n";
    std::fs::write(&input, text).unwrap();
    let out = dir.path().join("out");
    assert_clean_failure(&separate(&input, "2", &out), "sensors.csv", "line 402, column 2");
    assert!(files_in(&out).is_empty());
}

#[test]
fn nan_in_a_wav_and_inf_in_a_csv() {
    let dir = tempfile::tempdir().unwrap();
    let mut samples: Vec<f32> = (0..2000).map(|i| (i as f32 * 0.01).sin()).collect();
    samples[777] = f32::NAN;
    let input = dir.path().join("nan.wav");
    write_wav(&input, 2, &samples);
    // Sample 777 of the interleaved stream: frame 388, the second channel.
    let o = separate(&input, "2", &dir.path().join("o1"));
    assert_clean_failure(
        &o,
        "nan.wav",
        "frame 388 (counted from 0), channel 2 (counted from 1) is not a finite number",
    );
    let csv = dir.path().join("inf.csv");
    std::fs::write(&csv, "1,2\n3,inf\n").unwrap();
    assert_clean_failure(&separate(&csv, "2", &dir.path().join("o2")), "inf.csv", "line 2, column 2");
}

#[test]
fn fewer_channels_than_sources() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 2, 2, 2000, 1);
    let out = dir.path().join("out");
    assert_clean_failure(&separate(&mix, "3", &out), "mixture.wav", "2 channels cannot be separated into 3 sources");
    assert!(files_in(&out).is_empty());
}

#[test]
fn constant_channel() {
    let dir = tempfile::tempdir().unwrap();
    let samples: Vec<f32> = (0..4000).map(|i| if i % 2 == 0 { (i as f32 * 0.01).sin() } else { 0.25 }).collect();
    let input = dir.path().join("silent.wav");
    write_wav(&input, 2, &samples);
    let out = dir.path().join("out");
    assert_clean_failure(&separate(&input, "2", &out), "silent.wav", "channel 2 (counted from 1) is constant");
    assert!(files_in(&out).is_empty());
}

#[test]
fn too_few_samples() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 2, 2, 100, 1);
    assert_clean_failure(&separate(&mix, "2", &dir.path().join("out")), "mixture.wav", "only 100 frames");
}

#[test]
fn corrupt_model_file_and_wrong_channel_count() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 2, 2, 2000, 1);
    let out = dir.path().join("out");
    assert!(separate(&mix, "2", &out).status.success());
    let model = out.join("model.unmix");

    // A flipped byte in the weights.
    let mut bytes = std::fs::read(&model).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0x55;
    let bad = dir.path().join("bad.unmix");
    std::fs::write(&bad, &bytes).unwrap();
    let result = dir.path().join("r.wav");
    let o = unmix(&["apply", bad.to_str().unwrap(), mix.to_str().unwrap(), "-o", result.to_str().unwrap()]);
    assert_clean_failure(&o, "bad.unmix", "corrupt");
    // A truncated model.
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let o = unmix(&["apply", bad.to_str().unwrap(), mix.to_str().unwrap(), "-o", result.to_str().unwrap()]);
    assert_clean_failure(&o, "bad.unmix", "truncated");
    assert!(!result.exists());

    // The good model on a 3-channel input.
    let three = dir.path().join("three");
    std::fs::create_dir(&three).unwrap();
    let (mix3, _) = synth_wavs(&three, MixKind::Linear, 3, 3, 2000, 1);
    let o = unmix(&["apply", model.to_str().unwrap(), mix3.to_str().unwrap(), "-o", result.to_str().unwrap()]);
    assert_clean_failure(&o, "mixture.wav", "has 3 channels, but the model was trained on 2");
    assert!(!result.exists());
}

#[test]
fn existing_results_need_force() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 2, 2, 2000, 1);
    let out = dir.path().join("out");
    assert!(separate(&mix, "2", &out).status.success());
    let before = std::fs::read(out.join("sources.wav")).unwrap();
    assert_clean_failure(&separate(&mix, "2", &out), "out", "already holds results");
    assert_eq!(std::fs::read(out.join("sources.wav")).unwrap(), before, "results were touched");
    let mut args = vec!["separate", mix.to_str().unwrap(), "-n", "2", "-o", out.to_str().unwrap(), "--force"];
    args.extend_from_slice(QUICK);
    assert!(unmix(&args).status.success());
}

#[test]
fn missing_files_and_unwritable_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 2, 2, 2000, 1);
    let mix = mix.to_str().unwrap();
    let missing = dir.path().join("nowhere.unmix");
    let o = unmix(&["apply", missing.to_str().unwrap(), mix, "-o", dir.path().join("r.wav").to_str().unwrap()]);
    assert_clean_failure(&o, "nowhere.unmix", "No such file");
    assert_eq!(stderr(&o).matches("nowhere.unmix").count(), 1, "the path is said once: {}", stderr(&o));

    let out = dir.path().join("out");
    assert!(separate(std::path::Path::new(mix), "2", &out).status.success());
    let model = out.join("model.unmix");
    // Into a directory that does not exist: the message names the requested file, not
    // the temporary one it would have been written through.
    let unreachable = dir.path().join("no-such-dir").join("r.wav");
    let o = unmix(&["apply", model.to_str().unwrap(), mix, "-o", unreachable.to_str().unwrap()]);
    assert_clean_failure(&o, "no-such-dir/r.wav", "No such file or directory");
    assert!(!stderr(&o).contains(".part"), "{}", stderr(&o));

    // An output "directory" that is a file.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    assert_clean_failure(&separate(std::path::Path::new(mix), "2", &file), "plain-file", "not a directory");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

/// `score` defines its degenerate cases: a silent estimate scores |corr| 0 and the SI-SDR
/// floor, in numbers (it was +∞, `null` in JSON); a one-frame input and a constant true
/// source are one clear error naming the truth (one frame was −∞).
#[test]
fn score_of_a_silent_estimate_or_a_single_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (truth, silent, one) =
        (dir.path().join("truth.wav"), dir.path().join("silent.wav"), dir.path().join("one.wav"));
    let samples: Vec<f32> = (0..400).flat_map(|i| [(i as f32 * 0.3).sin(), (i as f32 * 0.11).cos()]).collect();
    write_wav(&truth, 2, &samples);
    let quiet: Vec<f32> = samples.iter().enumerate().map(|(i, &v)| if i % 2 == 0 { v } else { 0.0 }).collect();
    write_wav(&silent, 2, &quiet);
    let o = unmix(&["score", "--truth", truth.to_str().unwrap(), "--est", silent.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let floor = unmix_dsp::metrics::SI_SDR_FLOOR_DB;
    assert_eq!(s["min_si_sdr_db"], floor, "{s}");
    assert!(s["mean_si_sdr_db"].is_number() && s["sources"][1]["abs_corr"] == 0.0, "{s}");
    write_wav(&one, 2, &[0.5, -0.5]);
    let o = unmix(&["score", "--truth", one.to_str().unwrap(), "--est", one.to_str().unwrap()]);
    assert_clean_failure(&o, "one.wav", "1 frame to score; a correlation needs at least 2");
    let o = unmix(&["score", "--truth", silent.to_str().unwrap(), "--est", truth.to_str().unwrap()]);
    assert_clean_failure(&o, "silent.wav", "true source 2 is constant");
}

/// `--truth` is checked before any training: a missing file, too many true sources or a
/// length unlike the input's fail at once, naming the truth, with nothing written; a
/// stream's truth, whose length shows only at the end, is named with the output's own
/// path, not the staging directory's.
#[test]
fn truth_is_checked_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, truth) = synth_wavs(dir.path(), MixKind::Linear, 2, 2, 2000, 3);
    let out = dir.path().join("out");
    let separate_with = |truth: &std::path::Path| {
        let mut args = vec!["separate", mix.to_str().unwrap(), "-n", "2", "-o", out.to_str().unwrap()];
        args.extend_from_slice(&["--truth", truth.to_str().unwrap(), "--epochs", "400", "--quiet"]);
        let started = std::time::Instant::now();
        (unmix(&args), started.elapsed())
    };
    let (o, took) = separate_with(&dir.path().join("missing.wav"));
    assert_clean_failure(&o, "missing.wav", "No such file");
    assert!(took < std::time::Duration::from_secs(5), "refused after {took:?}: trained first");
    let short = dir.path().join("short.wav");
    unmix_io::write_wav_f32(&short, &read(&truth).head(1500)).unwrap();
    let (o, _) = separate_with(&short);
    assert_clean_failure(&o, "short.wav", "1500 frames, but the input has 2000 (--truth)");
    let three = dir.path().join("three");
    std::fs::create_dir(&three).unwrap();
    let (_, wide) = synth_wavs(&three, MixKind::Linear, 3, 3, 2000, 3);
    let (o, _) = separate_with(&wide);
    assert_clean_failure(&o, "truth.wav", "3 true sources cannot be matched to at most 2");
    assert!(!out.exists(), "{:?}", files_in(&out));

    // A recorder's stream, whose header does not know its length: the mismatch shows at
    // the end, and names out/sources.wav.
    let mut bytes = std::fs::read(&mix).unwrap();
    let data = bytes.windows(4).position(|w| w == b"data").unwrap();
    bytes[data + 4..data + 8].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut args = vec!["separate", "-", "-n", "2", "-o", out.to_str().unwrap(), "--truth", short.to_str().unwrap()];
    args.extend_from_slice(QUICK);
    let o = unmix_fed(&args, bytes);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains(&out.join("sources.wav").display().to_string()), "{err}");
    assert!(!err.contains(".unmix-staging"), "{err}");
}

/// A `.tsv` is tab-separated text, read as CSV (it was read as a WAV and refused), and
/// the sources of `apply -o x.tsv` are written with tabs.
#[test]
fn a_tsv_is_delimited_text() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("sensors.tsv");
    let mut text = String::from("a\tb\n");
    for i in 0..600 {
        text += &format!("{}\t{}\n", (i as f32 * 0.1).sin(), ((i * 37 % 101) as f32 / 50.0 - 1.0));
    }
    std::fs::write(&input, text).unwrap();
    let out = dir.path().join("out");
    let mut args =
        vec!["separate", input.to_str().unwrap(), "-n", "2", "-o", out.to_str().unwrap(), "--csv-rate", "100"];
    args.extend_from_slice(QUICK);
    let o = unmix(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let tsv = dir.path().join("sources.tsv");
    let (model, input) = (out.join("model.unmix"), input.to_str().unwrap().to_string());
    let o = unmix(&["apply", model.to_str().unwrap(), &input, "-o", tsv.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let written = std::fs::read_to_string(&tsv).unwrap();
    assert!(written.starts_with("source1\tsource2\n"), "{}", &written[..40]);
    assert_eq!(unmix_io::read_csv(&tsv, 100).unwrap().frames(), 600);
}

/// One absurd sample (3·10³⁸ in a float WAV) once set its channel's scale and the
/// whitening, and the separation was ruined without a word. Its frame is left out of the
/// fit and reported; the sources of every other frame are as good as without it.
#[test]
fn a_gross_outlier_is_left_out_of_the_fit_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, truth) = synth_wavs(dir.path(), MixKind::Linear, 3, 3, 4000, 2);
    let mut samples = read(&mix).interleaved().to_vec();
    let (frame, channel) = (1000, 1);
    samples[frame * 3 + channel] = 3e38;
    let spiked = dir.path().join("spiked.wav");
    write_wav(&spiked, 3, &samples);
    let out = dir.path().join("out");
    let o =
        unmix(&["separate", spiked.to_str().unwrap(), "-n", "3", "-o", out.to_str().unwrap(), "--quiet", "--no-plots"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("spiked.wav: left 1 frame of the training segment out of the fit (the first is frame 1000")
            && stderr(&o).contains("usual level (1 sample in channel 2)"),
        "{}",
        stderr(&o)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["gross_outliers"]["frames"], 1);
    assert_eq!(report["gross_outliers"]["first_frames"][0], frame);
    // Scored on every frame but the spiked one, which the separation carries through.
    let without = |r: unmix_core::Recording| -> Vec<Vec<f32>> {
        (0..r.channels())
            .map(|c| r.channel(c).into_iter().enumerate().filter(|(k, _)| *k != frame).map(|(_, v)| v).collect())
            .collect()
    };
    let s = unmix_dsp::metrics::score(&without(read(&truth)), &without(read(&out.join("sources.wav")))).unwrap();
    assert!(s.min_abs_corr > 0.95, "{s:?}");
}

/// Sizes from options that once aborted on a failed allocation (`--hidden 100000000`,
/// exit 134 and a staging folder left), or ran for minutes (`--components 100000`,
/// `--restarts 100000`), are refused at once, with the option's name and its range.
#[test]
fn sizes_from_options_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 3, 3, 2000, 1);
    let out = dir.path().join("out");
    let cases = [
        (&["--hidden", "100000000"][..], "--hidden: a layer of 100000000 units; a layer has 1 to 1024"),
        (&["--hidden", "8,8,8,8,8,8,8,8,8"], "the encoder has 9 hidden layers; at most 8"),
        (
            &["--components", "100000"],
            "invalid value '100000' for '--components <COMPONENTS>': 100000 is not in 1..=64",
        ),
        (&["--restarts", "100000"], "invalid value '100000' for '--restarts <RESTARTS>': 100000 is not in 1..=64"),
        (&["--epochs", "0"], "invalid value '0' for '--epochs <EPOCHS>'"),
        (&["--train-frames", "100000000"], "a training segment of 100000000 frames of 3 channels is more than"),
    ];
    for (options, problem) in cases {
        let started = std::time::Instant::now();
        let mut args = vec!["separate", mix.to_str().unwrap(), "-n", "3", "-o", out.to_str().unwrap()];
        args.extend_from_slice(options);
        let o = unmix(&args);
        assert!(!o.status.success() && stderr(&o).contains(problem), "{options:?}: {}", stderr(&o));
        assert_eq!(o.status.code(), Some(if problem.starts_with("invalid value") { 2 } else { 1 }), "{options:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{options:?} took {:?}", started.elapsed());
        assert!(!out.exists(), "{options:?} left {:?}", files_in(&out));
    }
    // `--epochs` no longer speaks of a "patience" that is no option.
    let o = unmix(&["separate", mix.to_str().unwrap(), "-n", "3", "-o", out.to_str().unwrap(), "--epochs", "0"]);
    assert!(!stderr(&o).contains("patience"), "{}", stderr(&o));
}

/// A recording of 1 000 channels was still in its eigendecomposition after 400 s: it is
/// refused before its training segment is read, with the way out (`--channels`).
#[test]
fn too_many_channels_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let wide = dir.path().join("wide.wav");
    let noise = |k: u64| (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
    let samples: Vec<f32> = (0..400 * 1000).map(noise).collect();
    write_wav(&wide, 1000, &samples);
    let out = dir.path().join("out");
    let o = unmix(&["separate", wide.to_str().unwrap(), "-n", "3", "-o", out.to_str().unwrap(), "--quiet"]);
    assert_clean_failure(
        &o,
        "wide.wav",
        "1000 channels: unmix separates at most 256 at a time (pick some with --channels)",
    );
    assert!(!out.exists());
    let o = unmix(&[
        "separate",
        wide.to_str().unwrap(),
        "-n",
        "3",
        "--channels",
        "1-4",
        "-o",
        out.to_str().unwrap(),
        "--epochs",
        "2",
        "--quiet",
        "--no-plots",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A CSV without line breaks grew memory until the allocator failed (2.1 GB for a 300 MB
/// line): a row is refused at its bound, naming its line.
#[test]
fn a_csv_without_line_breaks_is_refused_at_the_row_bound() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = unmix_fed(&["separate", "-", "-n", "1", "-o", out.to_str().unwrap(), "--quiet"], vec![b'1'; 3 << 20]);
    assert_clean_failure(
        &o,
        "stdin",
        "line 1: a row longer than 1048576 bytes (is this a CSV file, with a line per row?)",
    );
    let flat = dir.path().join("flat.csv");
    std::fs::write(&flat, "0.5,".repeat(1 << 19)).unwrap();
    let o = unmix(&["separate", flat.to_str().unwrap(), "-n", "1", "-o", out.to_str().unwrap(), "--quiet"]);
    assert_clean_failure(&o, "flat.csv", "line 1: a row longer than 1048576 bytes");
    assert!(!out.exists());
}
