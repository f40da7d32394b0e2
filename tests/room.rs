//! Rooms: `unmix synth room` writes a reverberant microphone-array recording, and
//! `unmix separate --domain stft` separates it into the talkers' images at the first
//! microphone; what cannot work is refused before anything is written.

use crate::util::{assert_clean_failure, stdout, unmix};

fn room(dir: &std::path::Path, talkers: &str, mics: &str) -> std::path::PathBuf {
    room_with(dir, talkers, mics, &[])
}

/// The same room (seed 1, RT60 0.2 s), with `extra` options of `synth room`.
fn room_with(dir: &std::path::Path, talkers: &str, mics: &str, extra: &[&str]) -> std::path::PathBuf {
    let mut args = vec!["synth", "room", "--sources", talkers, "--sensors", mics, "--rt60", "0.2", "--seed", "1", "-o"];
    args.push(dir.to_str().unwrap());
    args.extend_from_slice(extra);
    let out = unmix(&args);
    assert!(out.status.success(), "{}", crate::util::stderr(&out));
    dir.to_path_buf()
}

fn mean_gain_db(truth: &std::path::Path, estimates: &std::path::Path, mixture: &std::path::Path) -> (f64, f64) {
    let truth = unmix_io::read_wav(truth).unwrap();
    let estimates = unmix_io::read_wav(estimates).unwrap();
    let mixture = unmix_io::read_wav(mixture).unwrap();
    assert_eq!(estimates.frames(), mixture.frames(), "one output frame per input frame");
    let t: Vec<Vec<f32>> = (0..truth.channels()).map(|j| truth.channel(j)).collect();
    let e: Vec<Vec<f32>> = (0..estimates.channels()).map(|j| estimates.channel(j)).collect();
    let separated = unmix_dsp::metrics::score(&t, &e).unwrap().mean_si_sdr_db;
    let unprocessed = t.iter().map(|t| unmix_dsp::metrics::si_sdr_db(t, &mixture.channel(0))).sum::<f64>() / 2.0;
    (separated, unprocessed)
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

    // The room's model separates another take in the same room — other sentences, the
    // talkers' places the same — by its demixing alone.
    let take = room_with(
        &dir.path().join("take2"),
        "2",
        "2",
        &["--dry", &format!("{0}/talker3.wav,{0}/talker1.wav", crate::util::speech_dir().display())],
    );
    let applied = dir.path().join("take2.wav");
    let model = out.join("model.unmix");
    let o = unmix(
        &["apply", model.to_str().unwrap(), take.join("mixture.wav").to_str().unwrap(), "-o"]
            .into_iter()
            .chain([applied.to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    assert!(stdout(&o).contains("by the room's spatial model"), "{}", stdout(&o));
    let (separated, unprocessed) = mean_gain_db(&take.join("truth.wav"), &applied, &take.join("mixture.wav"));
    assert!(separated > unprocessed + 3.0, "another take: {separated:.1} dB against {unprocessed:.1} dB unprocessed");
}

/// What a room's model cannot take is refused with one line naming the file, nothing
/// written: another sample rate or channel count, monitoring scores, a damaged model.
#[test]
fn a_room_model_refuses_what_it_cannot_apply() {
    let dir = tempfile::tempdir().unwrap();
    let data = room(&dir.path().join("room"), "2", "2");
    let out = dir.path().join("out");
    let mixture = data.join("mixture.wav");
    let fitted = unmix(&[
        "separate",
        mixture.to_str().unwrap(),
        "-n",
        "2",
        "--domain",
        "stft",
        "--stft-spatial-iterations",
        "0",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(fitted.status.success(), "{}", crate::util::stderr(&fitted));
    let model = out.join("model.unmix");
    let written = dir.path().join("s.wav");
    let apply = |model: &std::path::Path, input: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["apply", model.to_str().unwrap(), input.to_str().unwrap(), "-o", written.to_str().unwrap()];
        args.extend_from_slice(extra);
        unmix(&args)
    };
    // The same samples labelled 8 kHz: every filter would be at the wrong frequency.
    let recording = unmix_io::read_wav(&mixture).unwrap();
    let slow = dir.path().join("slow.wav");
    let relabelled = unmix_core::Recording::from_interleaved(8_000, 2, recording.interleaved().to_vec()).unwrap();
    unmix_io::write_wav_f32(&slow, &relabelled).unwrap();
    assert_clean_failure(&apply(&model, &slow, &[]), "slow.wav", "fitted at 16000 Hz");
    let three = room(&dir.path().join("three"), "2", "3");
    assert_clean_failure(&apply(&model, &three.join("mixture.wav"), &[]), "mixture.wav", "has 3 channels");
    let scores = dir.path().join("scores.csv");
    let o = apply(&model, &mixture, &["--scores", scores.to_str().unwrap()]);
    assert_clean_failure(&o, "model.unmix", "no learned priors");
    let bytes = std::fs::read(&model).unwrap();
    let damaged = dir.path().join("damaged.unmix");
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    assert_clean_failure(&apply(&damaged, &mixture, &[]), "damaged.unmix", "truncated");
    assert!(!written.exists() && !scores.exists(), "nothing written");
    // Its own recording comes back as `separate` separated it (no spatial model).
    let o = apply(&model, &mixture, &[]);
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    let (a, b) = (unmix_io::read_wav(&written).unwrap(), unmix_io::read_wav(&out.join("sources.wav")).unwrap());
    assert_eq!(a.frames(), b.frames());
    let worst = a.interleaved().iter().zip(b.interleaved()).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "applied and separated differ by {worst}");
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

/// A room recorded as a stream on the standard input: the model is fitted on its head
/// (`--train-seconds`) and written at once, then every frame is separated by its filters
/// as it arrives, the same sources as `apply` gives on the file.
#[test]
fn a_streamed_room_is_fitted_on_its_head_and_separated_whole() {
    let dir = tempfile::tempdir().unwrap();
    let data = room(&dir.path().join("room"), "2", "2");
    let mixture = data.join("mixture.wav");
    let out = dir.path().join("out");
    #[rustfmt::skip]
    let o = crate::util::unmix_fed(
        &["separate", "-", "-n", "2", "--domain", "stft", "--train-seconds", "4", "-o", out.to_str().unwrap()],
        std::fs::read(&mixture).unwrap(),
    );
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    assert!(crate::util::stderr(&o).contains("model written"), "{}", crate::util::stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["fitted_frames"], 64_000);
    assert_eq!(report["frames"], 96_000);
    let applied = dir.path().join("applied.wav");
    let model = out.join("model.unmix");
    let o = unmix(&["apply", model.to_str().unwrap(), mixture.to_str().unwrap(), "-o", applied.to_str().unwrap()]);
    assert!(o.status.success(), "{}", crate::util::stderr(&o));
    let (streamed, applied) =
        (unmix_io::read_wav(&out.join("sources.wav")).unwrap(), unmix_io::read_wav(&applied).unwrap());
    assert_eq!(streamed.frames(), 96_000);
    assert_eq!(streamed.interleaved(), applied.interleaved());
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
