//! `unmix modes`: a simulated building's modes from its floor accelerations, compared
//! with the simulator's truth, and bad requests refused before any work.

use crate::util::{assert_clean_failure, files_in, stdout, unmix, write_wav};

/// A 3-storey building, 2 minutes at 200 Hz, written by `unmix synth shm`.
fn building(dir: &std::path::Path) -> std::path::PathBuf {
    let out =
        unmix(&["synth", "shm", "--storeys", "3", "--duration-s", "120", "--seed", "2", "-o", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", crate::util::stderr(&out));
    dir.to_path_buf()
}

#[test]
fn modes_of_a_simulated_building_match_its_truth() {
    let dir = tempfile::tempdir().unwrap();
    let data = building(&dir.path().join("building"));
    let results = dir.path().join("modes");
    let out = unmix(&[
        "modes",
        data.join("mixture.wav").to_str().unwrap(),
        "-n",
        "3",
        "-o",
        results.to_str().unwrap(),
        "--reference",
        data.join("meta.json").to_str().unwrap(),
        "--truth",
        data.join("truth.wav").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", crate::util::stderr(&out));
    let mut files = files_in(&results);
    files.sort();
    assert_eq!(files, ["coordinates.wav", "modes.json", "shapes.png", "spectra.png"]);
    assert!(stdout(&out).contains("mode | frequency (Hz) | damping (%) | shape"), "{}", stdout(&out));

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("modes.json")).unwrap()).unwrap();
    let modes = report["modes"].as_array().unwrap();
    assert_eq!(modes.len(), 3);
    let frequencies: Vec<f64> = modes.iter().map(|m| m["frequency_hz"].as_f64().unwrap()).collect();
    assert!(frequencies.windows(2).all(|w| w[0] < w[1]), "lowest first: {frequencies:?}");
    for (j, matched) in report["reference"]["matched"].as_array().unwrap().iter().enumerate() {
        assert_eq!(matched["reference"], j + 1, "mode {j} matched to another: {matched}");
        assert!(matched["mac"].as_f64().unwrap() > 0.99, "{matched}");
        assert!(matched["frequency_change_percent"].as_f64().unwrap().abs() < 1.0, "{matched}");
        assert!(matched["damping_change_percent"].as_f64().unwrap().abs() < 40.0, "{matched}");
        assert!(modes[j]["frequency_std_hz"].as_f64().unwrap() > 0.0);
    }
    assert!(report["score"]["mean_abs_corr"].as_f64().unwrap() > 0.97, "{}", report["score"]);
    let coordinates = crate::util::read(&results.join("coordinates.wav"));
    assert_eq!((coordinates.channels(), coordinates.frames()), (3, 24_000));
    let reference = results.join("modes.json");

    // An earlier run's modes.json is a reference too: a second run matches it exactly.
    let again = dir.path().join("again");
    let out = unmix(&[
        "modes",
        data.join("mixture.wav").to_str().unwrap(),
        "-n",
        "3",
        "-o",
        again.to_str().unwrap(),
        "--reference",
        reference.to_str().unwrap(),
        "--no-plots",
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", crate::util::stderr(&out));
    assert!(stdout(&out).is_empty());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(again.join("modes.json")).unwrap()).unwrap();
    for matched in report["reference"]["matched"].as_array().unwrap() {
        assert!((matched["mac"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{matched}");
        assert!(matched["frequency_change_percent"].as_f64().unwrap().abs() < 1e-9, "{matched}");
    }
}

#[test]
fn modes_refuses_bad_requests_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let data = building(&dir.path().join("building"));
    let mixture = data.join("mixture.wav");
    let results = dir.path().join("modes");
    let run = |extra: &[&str]| {
        let mut args = vec!["modes", mixture.to_str().unwrap(), "-o", results.to_str().unwrap()];
        args.extend_from_slice(extra);
        unmix(&args)
    };
    assert_clean_failure(&run(&["-n", "4"]), "mixture.wav", "4 modes asked for, but the record has 3 channels");

    let two_channel = dir.path().join("reference.json");
    std::fs::write(&two_channel, r#"{"modes": [{"frequency_hz": 2.0, "shape": [0.6, 0.8]}]}"#).unwrap();
    assert_clean_failure(
        &run(&["-n", "3", "--reference", two_channel.to_str().unwrap()]),
        "reference.json",
        "shape over 2 channels",
    );
    std::fs::write(&two_channel, "not json").unwrap();
    assert_clean_failure(
        &run(&["-n", "3", "--reference", two_channel.to_str().unwrap()]),
        "reference.json",
        "not JSON",
    );

    // A CSV with no clock cannot give frequencies in Hz without --csv-rate.
    let no_clock = dir.path().join("no-clock.csv");
    std::fs::write(&no_clock, "a,b,c\n".to_string() + &"0.1,0.2,0.3\n".repeat(100)).unwrap();
    let out = unmix(&["modes", no_clock.to_str().unwrap(), "-n", "3", "-o", results.to_str().unwrap()]);
    assert_clean_failure(&out, "no-clock.csv", "needs --csv-rate");

    // A dead sensor (constant) is named.
    let record = crate::util::read(&mixture);
    let mut samples = record.interleaved().to_vec();
    samples.iter_mut().skip(1).step_by(3).for_each(|v| *v = 0.25);
    let dead = dir.path().join("dead.wav");
    write_wav(&dead, 3, &samples);
    let out = unmix(&["modes", dead.to_str().unwrap(), "-n", "3", "-o", results.to_str().unwrap()]);
    assert_clean_failure(&out, "dead.wav", "channel 2 (counted from 1) is constant");
    assert!(files_in(&results).is_empty(), "nothing written: {:?}", files_in(&results));
}

/// `separate --prior ar-gmm` on the same building: the modes separated, the temporal
/// prior in report.json and in the model file (its processes in the output's order, the
/// spectral peaks on the terminal), and `apply` with the saved model gives the same
/// sources bit for bit.
#[test]
fn separate_with_the_temporal_prior_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let data = building(&dir.path().join("building"));
    let out = dir.path().join("out");
    let o = unmix(&[
        "separate",
        data.join("mixture.wav").to_str().unwrap(),
        "-n",
        "3",
        "--prior",
        "ar-gmm",
        "-o",
        out.to_str().unwrap(),
        "--truth",
        data.join("truth.wav").to_str().unwrap(),
        "--no-plots",
    ]);
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    let said = stdout(&o);
    assert!(said.contains("model: linear-ar-gmm (asked for (--prior ar-gmm))"), "{said}");
    assert!(said.contains("spectral peaks of the AR fit: source 1: "), "{said}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["model"]["chosen"], "linear-ar-gmm");
    assert_eq!(report["temporal_prior"]["ar"].as_array().unwrap().len(), 3);
    assert!(report["score"]["min_abs_corr"].as_f64().unwrap() > 0.95, "{}", report["score"]);
    let model = unmix_format::ModelFile::load(&out.join("model.unmix")).unwrap();
    assert_eq!(model.header.temporal_prior.as_ref().map(|p| p.ar.len()), Some(3));
    let applied = dir.path().join("applied.wav");
    let o = unmix(&[
        "apply",
        out.join("model.unmix").to_str().unwrap(),
        data.join("mixture.wav").to_str().unwrap(),
        "-o",
        applied.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    let read = |p: &std::path::Path| unmix_io::read_wav(p).unwrap();
    assert_eq!(read(&applied), read(&out.join("sources.wav")));
}
