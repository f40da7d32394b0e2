//! `unmix monitor`: a building's record monitored window by window — alarms after damage
//! and not before, a stream read as its file is, and dropouts, dead sensors and clock
//! trouble reported and survived.

use std::path::{Path, PathBuf};

use unmix_core::Recording;

use crate::util::{assert_clean_failure, stderr, stdout, unmix, unmix_fed};

/// A 3-storey building, 480 s at 200 Hz, the first storey losing 20 % of its stiffness
/// from 360 s, written by `unmix synth shm`.
fn damaged_building(dir: &Path) -> PathBuf {
    let out = unmix(&[
        "synth",
        "shm",
        "--storeys",
        "3",
        "--duration-s",
        "480",
        "--damage-storey",
        "1",
        "--damage-loss",
        "0.2",
        "--damage-from-s",
        "360",
        "--seed",
        "4",
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    dir.join("mixture.wav")
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

const WINDOWS: &[&str] = &["--baseline", "240s", "--window", "30s"];

#[test]
fn monitor_alarms_after_damage_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let mixture = damaged_building(&dir.path().join("building"));
    let report = dir.path().join("report.jsonl");
    let plot = dir.path().join("damage.png");
    let mut args = vec!["monitor", mixture.to_str().unwrap(), "-o", report.to_str().unwrap()];
    args.extend_from_slice(WINDOWS);
    args.extend_from_slice(&["--plot", plot.to_str().unwrap()]);
    let out = unmix(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(plot.exists());
    assert!(stdout(&out).contains("baseline: 3 modes"), "{}", stdout(&out));

    let lines = lines(&report);
    assert_eq!(lines[0]["kind"], "baseline");
    assert_eq!(lines[0]["modes"].as_array().unwrap().len(), 3);
    let summary = lines.last().unwrap();
    assert_eq!(summary["kind"], "summary");
    let windows: Vec<&serde_json::Value> = lines.iter().filter(|l| l["kind"] == "window").collect();
    assert_eq!(windows.len(), 8, "(480 − 240) / 30 windows");
    assert_eq!(summary["windows"], 8);
    let healthy_alarms =
        windows.iter().filter(|w| w["t_start"].as_f64().unwrap() < 360.0 && w["alarm"] == true).count();
    assert!(healthy_alarms <= 1, "{healthy_alarms} of 4 healthy windows alarmed");
    let damaged: Vec<bool> =
        windows.iter().filter(|w| w["t_start"].as_f64().unwrap() >= 360.0).map(|w| w["alarm"] == true).collect();
    assert!(damaged.iter().take(3).any(|a| *a), "no alarm in the first damaged windows: {damaged:?}");
    assert!(stderr(&out).contains("alarm: window at"), "{}", stderr(&out));
    for w in &windows {
        assert_eq!(w["modes"].as_array().unwrap().len(), 3);
        assert!(w["t_end"].as_f64().unwrap() - w["t_start"].as_f64().unwrap() == 30.0);
    }
}

#[test]
fn a_stream_is_monitored_as_its_file_is() {
    let dir = tempfile::tempdir().unwrap();
    let mixture = damaged_building(&dir.path().join("building"));
    let (from_file, from_pipe) = (dir.path().join("file.jsonl"), dir.path().join("pipe.jsonl"));
    let mut args = vec!["monitor", mixture.to_str().unwrap(), "-o", from_file.to_str().unwrap(), "--quiet"];
    args.extend_from_slice(WINDOWS);
    assert!(unmix(&args).status.success());
    let mut args = vec!["monitor", "-", "-o", from_pipe.to_str().unwrap(), "--quiet"];
    args.extend_from_slice(WINDOWS);
    let out = unmix_fed(&args, std::fs::read(&mixture).unwrap());
    assert!(out.status.success(), "{}", stderr(&out));
    let strip = |mut v: serde_json::Value| {
        for timing in ["input", "fit_s", "monitoring_s"] {
            v.as_object_mut().unwrap().remove(timing);
        }
        v
    };
    let (a, b) = (lines(&from_file), lines(&from_pipe));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.into_iter().zip(b) {
        assert_eq!(strip(x), strip(y));
    }
}

#[test]
fn dropouts_dead_sensors_and_clock_trouble_are_reported_and_survived() {
    let dir = tempfile::tempdir().unwrap();
    let mixture = damaged_building(&dir.path().join("building"));
    let record = crate::util::read(&mixture);
    let (rate, channels) = (200usize, 3usize);
    let mut samples = record.interleaved().to_vec();
    let mut spoil = |from_s: usize, to_s: usize, channel: Option<usize>, value: f32| {
        for t in from_s * rate..to_s * rate {
            for c in 0..channels {
                if channel.is_none_or(|k| k == c) {
                    samples[t * channels + c] = value;
                }
            }
        }
    };
    spoil(250, 251, None, f32::NAN); // 1 s of dropouts in the window at 240 s: reported, used
    spoil(275, 285, None, f32::NAN); // 10 s in the window at 270 s: too many, unusable
    spoil(300, 330, Some(1), 0.25); // channel 2 stuck for the window at 300 s
    let spoilt = dir.path().join("spoilt.wav");
    unmix_io::write_wav_f32(&spoilt, &Recording::from_interleaved(200, channels, samples.clone()).unwrap()).unwrap();
    let report = dir.path().join("report.jsonl");
    let mut args = vec!["monitor", spoilt.to_str().unwrap(), "-o", report.to_str().unwrap()];
    args.extend_from_slice(WINDOWS);
    let out = unmix(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let windows: Vec<serde_json::Value> = lines(&report).into_iter().filter(|l| l["kind"] == "window").collect();
    let at = |t: f64| windows.iter().find(|w| w["t_start"].as_f64() == Some(t)).unwrap();
    assert_eq!(at(240.0)["bad_frames"], 200);
    assert!(at(240.0)["damage_index"].is_number() && at(240.0)["unusable"].is_null());
    assert_eq!(at(270.0)["bad_frames"], 2000);
    assert!(at(270.0)["damage_index"].is_null() && at(270.0)["alarm"] == false);
    assert_eq!(at(300.0)["dead_channels"], serde_json::json!([2]));
    assert!(at(300.0)["unusable"].as_str().unwrap().contains("dead sensor"));
    assert!(at(300.0)["alarm"] == false);
    assert!(stderr(&out).contains("warning: window at 300.0 s: channel 2 constant"), "{}", stderr(&out));
    assert!(windows.iter().all(|w| w["t_start"].as_f64().unwrap() >= 360.0 || w["alarm"] == false));

    // A logger's CSV on the standard input, with empty cells, a gap of a second and a
    // stamp that stands still: each reported in the window it falls in.
    let mut csv = String::from("time,floor1,floor2,floor3\n");
    for t in 0..record.frames() {
        if (260 * rate..261 * rate).contains(&t) {
            continue; // the gap
        }
        let stamp = if t == 300 * rate { (t - 1) as f64 / rate as f64 } else { t as f64 / rate as f64 };
        let cell = |c: usize| {
            let v = samples[t * channels + c];
            if v.is_nan() { String::new() } else { v.to_string() }
        };
        csv.push_str(&format!("{stamp},{},{},{}\n", cell(0), cell(1), cell(2)));
    }
    let from_csv = dir.path().join("csv.jsonl");
    let mut args = vec!["monitor", "-", "-o", from_csv.to_str().unwrap()];
    args.extend_from_slice(WINDOWS);
    let out = unmix_fed(&args, csv.into_bytes());
    assert!(out.status.success(), "{}", stderr(&out));
    let windows: Vec<serde_json::Value> = lines(&from_csv).into_iter().filter(|l| l["kind"] == "window").collect();
    let at = |t: f64| windows.iter().find(|w| w["t_start"].as_f64() == Some(t)).unwrap();
    // The rows go on being counted as frames: the gap shifts later windows by a second.
    assert_eq!(at(240.0)["time_gaps"], 1, "{}", at(240.0));
    assert_eq!(windows.iter().map(|w| w["time_backwards"].as_u64().unwrap()).sum::<u64>(), 1);
    assert!(windows.iter().any(|w| w["bad_frames"].as_u64().unwrap() > 0));
    let summary = lines(&from_csv).pop().unwrap();
    assert!(summary["time_stamps"].as_str().unwrap().contains("skip ahead"), "{summary}");
    // The stuck sensor, a second later by the rows' count, is still found (stuck for all
    // but a second of its window) and raises no alarm.
    assert_eq!(at(300.0)["dead_channels"], serde_json::json!([2]), "{}", at(300.0));
    assert!(windows.iter().all(|w| w["t_start"].as_f64().unwrap() >= 360.0 || w["alarm"] == false));
}

#[test]
fn monitor_refuses_what_it_cannot_do_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mixture = damaged_building(&dir.path().join("building"));
    let report = dir.path().join("report.jsonl");
    let run = |extra: &[&str]| {
        let mut args = vec!["monitor", mixture.to_str().unwrap(), "-o", report.to_str().unwrap()];
        args.extend_from_slice(extra);
        unmix(&args)
    };
    assert_clean_failure(&run(&["--baseline", "600s"]), "mixture.wav", "before the 600 s baseline");
    assert_clean_failure(&run(&["--baseline", "240s", "-n", "4"]), "mixture.wav", "4 modes asked for");
    assert_clean_failure(&run(&["--baseline", "240s", "--window", "0.2s"]), "--window", "at least 64");
    let no_clock = dir.path().join("no-clock.csv");
    std::fs::write(&no_clock, "a,b,c\n".to_string() + &"0.1,0.2,0.3\n".repeat(1000)).unwrap();
    let out = unmix(&["monitor", no_clock.to_str().unwrap(), "--baseline", "240s", "-o", report.to_str().unwrap()]);
    assert_clean_failure(&out, "--window", "needs --csv-rate");
    assert!(!report.exists(), "nothing written");
    std::fs::write(&report, "earlier").unwrap();
    assert_clean_failure(&run(&["--baseline", "240s"]), "report.jsonl", "already exists");
    assert_eq!(std::fs::read_to_string(&report).unwrap(), "earlier");
}
