//! Monitoring scores from the command line: `separate --scores` and `apply --scores`
//! write one row per window, aligned with the sources they describe, and the scores move
//! when the recording stops looking like the training data.

use crate::util::{files_in, read, stderr, unmix, unmix_fed, unmix_on_a_pipe, wait_for, write_wav};
use unmix_synth::{MixKind, SynthConfig, generate};

/// Rows of a score CSV, without its header.
fn rows(path: &std::path::Path) -> (Vec<String>, Vec<Vec<f64>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines.map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()).collect()).collect();
    (header, rows)
}

/// Two seconds of three sensors at 8 kHz: the first as recorded; in the second the
/// sensors' cables are swapped round, so a model trained on the first no longer fits — its
/// "sources" are mixtures.
fn swapped_sensors() -> unmix_core::Recording {
    let data = generate(&SynthConfig {
        sources: 3,
        sensors: 3,
        frames: 16_000,
        sample_rate_hz: 8000,
        ..SynthConfig::paper(MixKind::Linear, 3)
    })
    .unwrap();
    let mut samples = data.mixture.interleaved().to_vec();
    for frame in samples[8000 * 3..].chunks_exact_mut(3) {
        frame.rotate_left(1);
    }
    unmix_core::Recording::from_interleaved(8000, 3, samples).unwrap()
}

/// The default model of a square recording is the linear model, the exact inverse of its
/// decoder: its reconstruction error is zero by construction, and its log-prior alone
/// watches the mixing — and flags the swap, window by window.
#[test]
fn a_square_linear_model_flags_a_changed_mixing_by_its_prior() {
    let dir = tempfile::tempdir().unwrap();
    let mix = dir.path().join("changed.wav");
    write_wav(&mix, 3, swapped_sensors().interleaved());
    let out = dir.path().join("out");
    #[rustfmt::skip]
    let o = unmix(&[
        "separate", mix.to_str().unwrap(), "-n", "3", "-o", out.to_str().unwrap(), "--train-frames", "8000",
        "--quiet", "--no-plots", "--scores", "--window-s", "0.25", "--hop-s", "0.125",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["model"]["chosen"], "linear");
    let (_, scores) = rows(&out.join("scores.csv"));
    let (before, after) = (&scores[..7], &scores[8..]);
    let lowest_before = before.iter().map(|r| r[5]).fold(f64::INFINITY, f64::min);
    let highest_after = after.iter().map(|r| r[5]).fold(f64::NEG_INFINITY, f64::max);
    assert!(
        highest_after < lowest_before - 0.5,
        "log-prior {highest_after:.3} after the swap, {lowest_before:.3} before"
    );
    assert!(scores.iter().all(|r| r[7] < 1e-4), "an exact inverse reconstructs every frame");
    for (k, row) in scores.iter().enumerate() {
        if k < 7 {
            assert!(row[9] <= 0.03, "window {k} before the swap: outlier share {}", row[9]);
        } else if k > 7 {
            assert!(row[9] >= 0.1, "window {k} after the swap: outlier share {}", row[9]);
        }
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.starts_with("monitoring: 15 windows;") && stdout.contains(" above 0.05"), "{stdout}");
}

/// PDGMM-VAE on the same recording: both features move, its reconstruction error too.
#[test]
fn scores_follow_the_windows_and_flag_a_changed_mixing() {
    let dir = tempfile::tempdir().unwrap();
    let mix = dir.path().join("changed.wav");
    write_wav(&mix, 3, swapped_sensors().interleaved());

    let out = dir.path().join("out");
    #[rustfmt::skip]
    let o = unmix(&[
        "separate", mix.to_str().unwrap(), "-n", "3", "-o", out.to_str().unwrap(), "--model", "vae",
        "--train-frames", "8000", "--epochs", "40", "--quiet",
        "--scores", "--window-s", "0.25", "--hop-s", "0.125",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Quiet, but windows above the alert level are still said: that line and no other.
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.lines().count() == 1 && stdout.starts_with("monitoring: 15 windows;") && stdout.contains(" above 0.05"),
        "{stdout}"
    );
    let names = files_in(&out);
    assert!(names.contains(&"scores.csv".to_string()) && names.contains(&"scores.png".to_string()), "{names:?}");
    let (header, scores) = rows(&out.join("scores.csv"));
    assert_eq!(header, unmix_monitor::score_columns(3));
    // 2000-frame windows every 1000 frames over 16 000 frames: 15 windows, none partial.
    assert_eq!(scores.len(), 15);
    let sources = read(&out.join("sources.wav"));
    for (k, row) in scores.iter().enumerate() {
        assert!((row[0] - k as f64 * 0.125).abs() < 1e-6, "start of window {k}: {row:?}");
        assert_eq!(row[1], 2000.0);
        // Each RMS is that of the written sources over the window's frames.
        let window = &sources.interleaved()[k * 1000 * 3..(k * 1000 + 2000) * 3];
        for j in 0..3 {
            let rms = (window.chunks_exact(3).map(|f| f64::from(f[j]).powi(2)).sum::<f64>() / 2000.0).sqrt();
            assert!((row[2 + j] - rms).abs() <= 1e-5 * rms.max(1.0), "window {k} source {j}: {} vs {rms}", row[2 + j]);
        }
        assert!(row[5] >= row[6] && row[8] >= row[7], "a mean beyond its extreme: {row:?}");
    }
    // Windows 0–6 lie in the training second, 8–14 after the swap (7 straddles it).
    let (before, after) = (&scores[..7], &scores[8..]);
    let lowest_before = before.iter().map(|r| r[5]).fold(f64::INFINITY, f64::min);
    let highest_after = after.iter().map(|r| r[5]).fold(f64::NEG_INFINITY, f64::max);
    assert!(
        highest_after < lowest_before - 0.5,
        "log-prior after the swap {highest_after:.3} not clearly below {lowest_before:.3} before"
    );
    let worst_before = before.iter().map(|r| r[7]).fold(0.0, f64::max);
    let best_after = after.iter().map(|r| r[7]).fold(f64::INFINITY, f64::min);
    assert!(
        best_after > 5.0 * worst_before,
        "reconstruction error after the swap {best_after:.4} not clearly above {worst_before:.4} before"
    );
    // The model's baseline (its training second's 1st / 99th percentiles) flags about 1 %
    // of the frames before the swap and many times more after it.
    for (k, row) in scores.iter().enumerate() {
        let (lp, re) = (row[9], row[10]);
        if k < 7 {
            assert!(lp <= 0.03 && re <= 0.03, "window {k} before the swap: outlier shares {lp}, {re}");
        } else if k > 7 {
            assert!(lp >= 0.1 && re >= 0.1, "window {k} after the swap: outlier shares {lp}, {re}");
        }
    }

    // `apply --scores` writes the same rows for the same windows.
    let applied = dir.path().join("applied.wav");
    let applied_scores = dir.path().join("applied.csv");
    let applied_plot = dir.path().join("applied.png");
    #[rustfmt::skip]
    let o = unmix(&[
        "apply", out.join("model.unmix").to_str().unwrap(), mix.to_str().unwrap(),
        "-o", applied.to_str().unwrap(), "--scores", applied_scores.to_str().unwrap(),
        "--window-s", "0.25", "--hop-s", "0.125", "--quiet", "--plot", applied_plot.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The plot is a whole 1200 × 1200 PNG, readable by others, its temporary file gone.
    let png = std::fs::read(&applied_plot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!((&png[16..20], &png[20..24]), (&1200u32.to_be_bytes()[..], &1200u32.to_be_bytes()[..]));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&applied_plot).unwrap().permissions().mode();
        assert_eq!(mode & 0o044, 0o044, "group and others may read it: {mode:o}");
    }
    assert!(!files_in(dir.path()).iter().any(|f| f.contains(".part")), "{:?}", files_in(dir.path()));
    assert_eq!(read(&applied), sources);
    assert_eq!(rows(&applied_scores).1, scores);
    // Its summary line names the windows after the swap: every one from 1 s on, and the
    // one straddling it (from 0.875 s) perhaps.
    let written = unmix_io::read_csv(&applied_scores, 1).unwrap();
    let summary = unmix_monitor::ScoresSummary::of(written.interleaved(), 3, 0.05);
    assert_eq!(summary.windows, 15);
    assert!(
        matches!((summary.unusual_windows, summary.first_unusual_s), (7, Some(1.0)) | (8, Some(0.875))),
        "{summary:?}"
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains(&format!("monitoring: {summary} → ")), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["monitoring"]["unusual_windows"], summary.unusual_windows);
}

/// The swapped-sensor recording as a logger writes it: a CSV with columns x, y, z.
fn logger_csv(dir: &std::path::Path) -> std::path::PathBuf {
    let logged = dir.join("logger.csv");
    let names = ["x".to_string(), "y".to_string(), "z".to_string()];
    unmix_io::write_csv(&logged, &swapped_sensors(), &names).unwrap();
    logged
}

/// A logger piped into `apply -`: rows are separated and scored as they arrive (the
/// outputs can be read before the input ends), the windows after a change raise alerts
/// at once, and at the end everything equals `apply` on the same rows as a file.
#[test]
fn a_logger_piped_into_apply_is_monitored_as_it_writes() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let logged = logger_csv(dir.path());
    let out = dir.path().join("out");
    #[rustfmt::skip]
    let o = unmix(&[
        "separate", logged.to_str().unwrap(), "-n", "3", "-o", out.to_str().unwrap(), "--csv-rate", "8000",
        "--train-frames", "8000", "--epochs", "40", "--quiet", "--no-plots",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = out.join("model.unmix");

    let (piped, piped_scores) = (dir.path().join("piped.csv"), dir.path().join("piped-scores.csv"));
    #[rustfmt::skip]
    let (child, mut stdin) = unmix_on_a_pipe(&[
        "apply", model.to_str().unwrap(), "-", "--csv-rate", "8000", "-o", piped.to_str().unwrap(),
        "--scores", piped_scores.to_str().unwrap(), "--window-s", "0.25", "--quiet",
    ]);
    let text = std::fs::read_to_string(&logged).unwrap();
    let half = text.match_indices('\n').nth(8000).unwrap().0 + 1; // the header and 8000 rows
    stdin.write_all(&text.as_bytes()[..half]).unwrap();
    stdin.flush().unwrap();
    // The first second's four windows reach the disk while the logger is still "writing".
    let rows_on_disk = || std::fs::read_to_string(&piped_scores).map_or(0, |t| t.lines().count().saturating_sub(1));
    assert!(wait_for(|| rows_on_disk() == 4), "the windows of the rows written so far, before the input ends");
    assert!(std::fs::read_to_string(&piped).unwrap().lines().count() > 1, "sources so far on disk");
    stdin.write_all(&text.as_bytes()[half..]).unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let alerts: Vec<&str> = err.lines().filter(|l| l.starts_with("alert: window at ")).collect();
    assert_eq!(alerts.len(), 4, "{err}");
    for (alert, at) in alerts.iter().zip(["1.00", "1.25", "1.50", "1.75"]) {
        assert!(alert.starts_with(&format!("alert: window at {at} s: ")), "{err}");
    }

    let (file, file_scores) = (dir.path().join("file.csv"), dir.path().join("file-scores.csv"));
    #[rustfmt::skip]
    let o = unmix(&[
        "apply", model.to_str().unwrap(), logged.to_str().unwrap(), "--csv-rate", "8000",
        "-o", file.to_str().unwrap(), "--scores", file_scores.to_str().unwrap(), "--window-s", "0.25", "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("alert:"), "a file gets the summary, not a line per window");
    assert_eq!(std::fs::read(&piped).unwrap(), std::fs::read(&file).unwrap());
    assert_eq!(std::fs::read(&piped_scores).unwrap(), std::fs::read(&file_scores).unwrap());

    // Ctrl-C on a logger that is still writing ends the stream where it is: every row
    // read is in the outputs, which are complete (the WAV's header finalised), exit 0.
    let stopped_wav = dir.path().join("stopped.wav");
    let stopped_scores = dir.path().join("stopped-scores.csv");
    #[rustfmt::skip]
    let (child, mut stdin) = unmix_on_a_pipe(&[
        "apply", model.to_str().unwrap(), "-", "--csv-rate", "8000", "-o", stopped_wav.to_str().unwrap(),
        "--scores", stopped_scores.to_str().unwrap(), "--window-s", "0.25", "--quiet",
    ]);
    stdin.write_all(&text.as_bytes()[..half]).unwrap();
    stdin.flush().unwrap();
    let rows_on_disk = || std::fs::read_to_string(&stopped_scores).map_or(0, |t| t.lines().count().saturating_sub(1));
    assert!(wait_for(|| rows_on_disk() == 4));
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap(); // the logger (stdin) is still open
    drop(stdin);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("stopping: completing the outputs"), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("separated 8000 frames into 3 sources"));
    assert!(String::from_utf8_lossy(&o.stdout).contains("(stopped by Ctrl-C)"));
    // The same sources as the file gives for its first 8000 rows.
    let wav = read(&stopped_wav);
    assert_eq!(wav.frames(), 8000);
    let csv = unmix_io::read_csv(&file, 1).unwrap();
    assert_eq!(wav.interleaved(), &csv.interleaved()[..8000 * 3]);
    let head: Vec<String> = std::fs::read_to_string(&file_scores).unwrap().lines().take(5).map(String::from).collect();
    assert_eq!(std::fs::read_to_string(&stopped_scores).unwrap().lines().collect::<Vec<_>>(), head);

    // A stream of the wrong width is named as what it is.
    let never = dir.path().join("never.csv");
    let o =
        unmix_fed(&["apply", model.to_str().unwrap(), "-", "-o", never.to_str().unwrap()], b"a,b\n0.1,0.2\n".to_vec());
    crate::util::assert_clean_failure(&o, "stdin", "has 2 channels, but the model was trained on 3");
    assert!(!dir.path().join("never.csv").exists());
}

/// A logger piped into `separate -`: it trains on the stream's head as it arrives, writes
/// the model at once, separates and scores the rest as it comes (alerts at once), and
/// ends with what `separate` gives on the same rows as a file; Ctrl-C after the model
/// ends the stream with every output complete, before it leaves nothing.
#[test]
fn a_logger_piped_into_separate_trains_on_its_head_then_separates_as_it_writes() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let logged = logger_csv(dir.path());
    let text = std::fs::read_to_string(&logged).unwrap();
    let half = text.match_indices('\n').nth(8000).unwrap().0 + 1; // the header and 8000 rows
    #[rustfmt::skip]
    let options = [
        "-n", "3", "--csv-rate", "8000", "--train-frames", "8000", "--epochs", "40", "--no-plots",
        "--scores", "--window-s", "0.25",
    ];
    let file_out = dir.path().join("file");
    let o = unmix(&[&["separate", logged.to_str().unwrap(), "-o", file_out.to_str().unwrap()], &options[..]].concat());
    assert!(o.status.success(), "{}", stderr(&o));

    let piped = dir.path().join("piped");
    let (child, mut stdin) =
        unmix_on_a_pipe(&[&["separate", "-", "-o", piped.to_str().unwrap()], &options[..]].concat());
    stdin.write_all(&text.as_bytes()[..half]).unwrap();
    stdin.flush().unwrap();
    // While the logger is still writing: the model is there, and the head's four windows.
    let score_rows = |dir: &std::path::Path| {
        std::fs::read_to_string(dir.join("scores.csv")).map_or(0, |t| t.lines().count().saturating_sub(1))
    };
    assert!(wait_for(|| score_rows(&piped) == 4), "the head's windows, before the input ends");
    let model = piped.join("model.unmix");
    assert!(unmix_format::ModelFile::load(&model).is_ok(), "the model is complete once it is there");
    let mut visible: Vec<String> = files_in(&piped).into_iter().filter(|f| !f.starts_with('.')).collect();
    visible.sort();
    assert_eq!(visible, ["model.unmix", "scores.csv", "sources.csv"], "the WAV and report come at the end");
    stdin.write_all(&text.as_bytes()[half..]).unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("stdin: training on its first 8000 frames (1.0 s at 8000 Hz"), "{err}");
    let alerts: Vec<&str> = err.lines().filter(|l| l.starts_with("alert: window at ")).collect();
    assert_eq!(alerts.len(), 4, "the swapped second, window by window as it closes: {err}");
    // The same as separating the file: the same segment, model and stream.
    for name in ["sources.wav", "sources.csv", "scores.csv"] {
        assert_eq!(std::fs::read(piped.join(name)).unwrap(), std::fs::read(file_out.join(name)).unwrap(), "{name}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(piped.join("report.json")).unwrap()).unwrap();
    assert_eq!((report["input"].as_str(), report["frames"].as_u64()), (Some("stdin"), Some(16_000)));

    // Ctrl-C once the model is written ends the stream there, every output complete; so
    // does SIGTERM (a service manager, `timeout`) and SIGHUP (a closed terminal).
    let sorted = |dir: &std::path::Path| {
        let mut files = files_in(dir);
        files.sort();
        files
    };
    for (signal, said) in [("INT", "Ctrl-C"), ("TERM", "SIGTERM"), ("HUP", "SIGHUP")] {
        let stopped = dir.path().join(format!("stopped-{signal}"));
        let (child, mut stdin) =
            unmix_on_a_pipe(&[&["separate", "-", "-o", stopped.to_str().unwrap()], &options[..]].concat());
        stdin.write_all(&text.as_bytes()[..half]).unwrap();
        stdin.flush().unwrap();
        assert!(wait_for(|| score_rows(&stopped) == 4));
        let kill = std::process::Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status();
        assert!(kill.unwrap().success());
        let o = child.wait_with_output().unwrap(); // the logger is still open
        drop(stdin);
        assert!(o.status.success(), "{signal}: {}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        let stopped_by = format!("(stopped by {said})");
        assert!(
            out.contains("separated 8000 frames of 3 channels into 3 sources") && out.contains(&stopped_by),
            "{out}"
        );
        let wav = read(&stopped.join("sources.wav"));
        assert_eq!(wav.interleaved(), &read(&file_out.join("sources.wav")).interleaved()[..8000 * 3]);
        assert_eq!(sorted(&stopped), sorted(&file_out), "{signal}: every output, as for the whole file");
    }

    // A bad row ends the stream there: the rows before it are all in the outputs, which
    // are complete, and the run still fails, naming the row.
    let bad = dir.path().join("bad");
    let (child, mut stdin) = unmix_on_a_pipe(&[&["separate", "-", "-o", bad.to_str().unwrap()], &options[..]].concat());
    let row = text.match_indices('\n').nth(12_000).unwrap().0 + 1; // the header and 12 000 rows
    let broken = format!("{}0.5,x,0.25\n{}", &text[..row], &text[row..]);
    let _ = stdin.write_all(broken.as_bytes()); // the rows after the bad one may meet a closed pipe
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("error: stdin: line 12002, column 2: 'x' is not a number (the stream ended there: the 12000 frames before it were separated"),
        "{err}"
    );
    assert_eq!(
        read(&bad.join("sources.wav")).interleaved(),
        &read(&file_out.join("sources.wav")).interleaved()[..12_000 * 3]
    );
    assert_eq!(sorted(&bad), sorted(&file_out));

    // Ctrl-C while the training segment arrives: nothing is written, not even the directory.
    let early = dir.path().join("early");
    let (child, mut stdin) =
        unmix_on_a_pipe(&[&["separate", "-", "-o", early.to_str().unwrap()], &options[..]].concat());
    let tenth = text.match_indices('\n').nth(800).unwrap().0 + 1;
    stdin.write_all(&text.as_bytes()[..tenth]).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let kill = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    // The next rows let the blocked read return and see the request.
    let _ = stdin.write_all(&text.as_bytes()[tenth..half]);
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("interrupted (Ctrl-C): nothing was written"), "{}", stderr(&o));
    assert!(!early.exists());

    // Existing results are refused before the wait for the segment, not after it.
    let (child, stdin) = unmix_on_a_pipe(&[&["separate", "-", "-o", piped.to_str().unwrap()], &options[..]].concat());
    let o = child.wait_with_output().unwrap();
    drop(stdin);
    assert!(!o.status.success() && stderr(&o).contains("already holds results"), "{}", stderr(&o));
}

#[test]
fn bad_monitoring_windows_are_refused_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let mix = dir.path().join("mix.wav");
    write_wav(&mix, 2, &[0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8]);
    let out = dir.path().join("out");
    for (window, hop, problem) in [
        ("0.5", "1", "longer than --window-s"),
        ("0", "0", "'0' is not a positive number of seconds"),
        ("NaN", "1", "'NaN' is not a positive number of seconds"),
        ("0.00001", "0.00001", "less than one frame"),
    ] {
        #[rustfmt::skip]
        let o = unmix(&[
            "separate", mix.to_str().unwrap(), "-n", "2", "-o", out.to_str().unwrap(),
            "--scores", "--window-s", window, "--hop-s", hop, "--quiet",
        ]);
        let err = stderr(&o);
        assert!(!o.status.success() && err.contains(problem), "{window}/{hop}: {err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(files_in(&out).iter().all(|f| f.starts_with('.')), "{:?}", files_in(&out));
    }
    // A share that means nothing is refused, monitoring or not (NaN and 5 were taken).
    for (share, scores) in [("1.5", true), ("NaN", false), ("5", false)] {
        let mut args = vec!["separate", mix.to_str().unwrap(), "-n", "2", "-o", out.to_str().unwrap()];
        args.extend(["--alert-share", share, "--quiet"]);
        if scores {
            args.push("--scores");
        }
        let o = unmix(&args);
        let said = format!(
            "invalid value '{share}' for '--alert-share <ALERT_SHARE>': '{share}' is not a share between 0 and 1"
        );
        assert!(!o.status.success() && stderr(&o).contains(&said), "{}", stderr(&o));
    }
}

/// A logger whose clock went back, or that lost rows, was read as a steady rate without a
/// word: the separation says so before it trains, and its report counts them; a steady
/// log says nothing.
#[test]
fn time_stamps_that_go_back_or_skip_ahead_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(&SynthConfig { frames: 3000, ..SynthConfig::paper(MixKind::Linear, 4) }).unwrap();
    let write = |name: &str, stamp: &dyn Fn(usize) -> f64| {
        let mut text = String::from("time_ms,a,b,c\n");
        for (k, frame) in data.mixture.iter_frames().enumerate() {
            text += &format!("{},{},{},{}\n", stamp(k), frame[0], frame[1], frame[2]);
        }
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let steady = write("steady.csv", &|k| 10.0 * k as f64);
    let uneven = write("uneven.csv", &|k| match k {
        _ if k < 1000 => 10.0 * k as f64,
        1000 => 9000.0,
        _ if k < 2000 => 10.0 * k as f64,
        _ => 10.0 * k as f64 + 500.0,
    });
    let separate = |input: &std::path::Path, out: &str| {
        let out = dir.path().join(out);
        let o = unmix(&[
            "separate",
            input.to_str().unwrap(),
            "-n",
            "3",
            "-o",
            out.to_str().unwrap(),
            "--epochs",
            "2",
            "--quiet",
            "--no-plots",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
        (stderr(&o), report["time_stamps"].clone())
    };
    let (said, stamps) = separate(&steady, "s");
    assert!(!said.contains("time stamps"), "{said}");
    assert_eq!(stamps, serde_json::json!({"backwards": 0, "gaps": 0, "largest_gap_s": null}));
    let (said, stamps) = separate(&uneven, "u");
    assert!(
        said.contains("uneven.csv: its time stamps go back or stand still once (first at line 1002) and skip ahead 2 times (first at line 1003, by up to 1.010000 s); rows are taken as evenly spaced"),
        "{said}"
    );
    assert_eq!(stamps["backwards"], 1);
    assert_eq!(stamps["gaps"], 2);
}
