//! Rooms: `unmix synth room` writes a reverberant microphone-array recording, and
//! `unmix separate --domain stft` separates it into the talkers' images at the first
//! microphone; what cannot work is refused before anything is written.

use crate::util::{assert_clean_failure, stdout, unmix};

fn room(dir: &std::path::Path, talkers: &str, mics: &str) -> std::path::PathBuf {
    let out = unmix(&[
        "synth",
        "room",
        "--sources",
        talkers,
        "--sensors",
        mics,
        "--rt60",
        "0.2",
        "--seed",
        "1",
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", crate::util::stderr(&out));
    dir.to_path_buf()
}

#[test]
fn separate_in_the_frequency_domain_gains_over_the_microphones() {
    let dir = tempfile::tempdir().unwrap();
    let data = room(&dir.path().join("room"), "2", "2");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(data.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["microphones"].as_array().unwrap().len(), 2);
    let mixture = unmix_io::read_wav(&data.join("mixture.wav")).unwrap();
    let truth = unmix_io::read_wav(&data.join("truth.wav")).unwrap();
    assert_eq!((mixture.channels(), truth.channels(), mixture.sample_rate_hz()), (2, 2, 16_000));
    let unprocessed: f64 =
        (0..2).map(|j| unmix_dsp::metrics::si_sdr_db(&truth.channel(j), &mixture.channel(0))).sum::<f64>() / 2.0;
    let out = dir.path().join("out");
    let o = unmix(&[
        "separate",
        data.join("mixture.wav").to_str().unwrap(),
        "-n",
        "2",
        "--domain",
        "stft",
        "-o",
        out.to_str().unwrap(),
        "--truth",
        data.join("truth.wav").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    assert!(stdout(&o).contains("in the frequency domain"), "{}", stdout(&o));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["domain"], "stft");
    assert_eq!(report["mixing_evidence"]["convolutive"], true, "{}", report["mixing_evidence"]);
    let separated = report["score"]["mean_si_sdr_db"].as_f64().unwrap();
    assert!(separated > unprocessed + 3.0, "{separated:.1} dB against {unprocessed:.1} dB unprocessed");
    assert_eq!(unmix_io::read_wav(&out.join("sources.wav")).unwrap().channels(), 2);
}

/// Separated sample by sample, the room's recording gets a warning naming `--domain stft`
/// before the training, and its cross-spectral evidence in the report; an instantaneous
/// mixture gets neither.
#[test]
fn the_time_domain_warns_of_a_room() {
    let dir = tempfile::tempdir().unwrap();
    let room = room(&dir.path().join("room"), "2", "2");
    let linear = dir.path().join("linear");
    let o = unmix(&["synth", "linear", "--sources", "2", "--seed", "1", "-o", linear.to_str().unwrap()]);
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    for (data, convolutive) in [(room, true), (linear, false)] {
        let out = dir.path().join(format!("out-{convolutive}"));
        let mixture = data.join("mixture.wav");
        let args = ["separate", mixture.to_str().unwrap(), "-n", "2", "--model", "linear", "--prior", "gmm"];
        let o = unmix(&[&args[..], &["-o", out.to_str().unwrap()]].concat());
        let stderr = crate::util::stderr(&o);
        assert!(o.status.success(), "{stderr}");
        let warned = stderr.contains("not independent sources mixed instantaneously");
        assert_eq!(warned, convolutive, "{stderr}");
        assert_eq!(stderr.contains("--domain stft"), convolutive, "{stderr}");
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
        let evidence = &report["mixing_evidence"];
        assert_eq!(evidence["convolutive"], convolutive, "{evidence}");
        assert!(evidence["unexplained"].as_f64().unwrap() >= 0.0, "{evidence}");
    }
}

#[test]
fn what_the_frequency_domain_cannot_do_is_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let data = room(&dir.path().join("room"), "2", "2");
    let mixture = data.join("mixture.wav");
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        let mut args = vec!["separate", mixture.to_str().unwrap(), "--domain", "stft", "-o", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        unmix(&args)
    };
    assert_clean_failure(&run(&["-n", "3"]), "mixture.wav", "cannot be separated into 3 sources");
    let o = run(&["-n", "2", "--prior", "ar-gmm"]);
    assert!(!o.status.success() && crate::util::stderr(&o).contains("a prior of --domain time"));
    let o = run(&["-n", "2", "--stft-hop", "300"]);
    assert!(!o.status.success() && crate::util::stderr(&o).contains("a divisor of the frame"));
    assert!(!out.exists(), "nothing written");
    let o = unmix(&["synth", "room", "--sources", "4", "-o", dir.path().join("r4").to_str().unwrap()]);
    assert!(!o.status.success() && crate::util::stderr(&o).contains("give --dry files"));
}
