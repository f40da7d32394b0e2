//! The commands end to end on real files.

use crate::util::*;
use unmix_synth::MixKind;

#[test]
fn synth_writes_mixture_truth_and_meta() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bench");
    let o =
        unmix(&["synth", "nonlinear", "--sources", "3", "--frames", "500", "--seed", "4", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mix = read(&out.join("mixture.wav"));
    let truth = read(&out.join("truth.wav"));
    assert_eq!((mix.channels(), mix.frames()), (3, 500));
    assert_eq!((truth.channels(), truth.frames()), (3, 500));
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["kind"], "nonlinear");
    assert_eq!(meta["marginals"][2], "exponential");
    // The same seed gives the same file.
    let again = dir.path().join("again");
    unmix(&["synth", "nonlinear", "--sources", "3", "--frames", "500", "--seed", "4", "-o", again.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.join("mixture.wav")).unwrap(), std::fs::read(again.join("mixture.wav")).unwrap());
}

/// `synth postnonlinear`: each sensor's curve is in meta.json, one per sensor, with its
/// parameters.
#[test]
fn synth_writes_post_nonlinear_mixtures_and_their_curves() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pnl");
    #[rustfmt::skip]
    let o = unmix(&["synth", "postnonlinear", "--sources", "3", "--sensors", "5", "--frames", "500", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&out.join("mixture.wav")).channels(), 5);
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["kind"], "postnonlinear");
    let curves = meta["curves"].as_array().unwrap();
    let mut kinds: Vec<&str> = curves.iter().map(|c| c["curve"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["arctan", "cubic-expansion", "logarithmic", "soft-knee-clip", "soft-limiter"]);
}

/// `--marginals`, `--tanh-input-std` and `--max-condition` shape the data exactly as the
/// library does, are recorded in meta.json, and a bad value is a usage error that writes
/// nothing.
#[test]
fn synth_takes_marginals_and_tanh_spread() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bent");
    let args = ["synth", "nonlinear", "--sources", "3", "--frames", "800", "--seed", "6"];
    let o = unmix(
        &[&args[..], &["--marginals", "bimodal,sinusoid", "--tanh-input-std", "0.5", "-o"], &[out.to_str().unwrap()]]
            .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let config = unmix_synth::SynthConfig {
        frames: 800,
        marginals: vec![unmix_synth::Marginal::Bimodal, unmix_synth::Marginal::Sinusoid],
        tanh_input_std: 0.5,
        ..unmix_synth::SynthConfig::paper(MixKind::Nonlinear, 6)
    };
    let want = unmix_synth::generate(&config).unwrap();
    assert_eq!(read(&out.join("mixture.wav")).interleaved(), want.mixture.interleaved());
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["marginals"], serde_json::json!(["bimodal", "sinusoid", "bimodal"]));
    assert_eq!(meta["tanh_input_std"], 0.5);
    // The noisy over-determined benchmark, condition bound and all, from the command line.
    let noisy = dir.path().join("noisy");
    let o = unmix(&[
        "synth",
        "linear",
        "--sources",
        "4",
        "--sensors",
        "6",
        "--snr-db",
        "20",
        "--max-condition",
        "3",
        "--frames",
        "800",
        "--seed",
        "2",
        "-o",
        noisy.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let want = unmix_synth::generate(&unmix_synth::SynthConfig {
        frames: 800,
        ..unmix_synth::SynthConfig::noisy_benchmark(2)
    })
    .unwrap();
    assert_eq!(read(&noisy.join("mixture.wav")).interleaved(), want.mixture.interleaved());
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(noisy.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["max_condition"], 3.0);
    for (flag, value, says) in [
        ("--marginals", "uniform,gaussian", "unknown marginal \"gaussian\""),
        ("--tanh-input-std", "0", "not a positive"),
        ("--max-condition", "1.2", "is not a number ≥ 1.5"),
    ] {
        let bad = dir.path().join(format!("bad{flag}"));
        let o = unmix(&[&args[..], &[flag, value, "-o", bad.to_str().unwrap()]].concat());
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{flag} {value}: {}", stderr(&o));
        assert!(!bad.exists(), "{flag} {value} wrote output");
    }
}

/// Long benchmarks are drawn as a stream: the files hold exactly what `SynthStream` draws
/// for the same configuration, and `meta.json` describes that stream.
#[test]
fn long_synth_output_is_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("long");
    let frames = (1usize << 22) + 1;
    let o = unmix(&[
        "synth",
        "linear",
        "--sources",
        "2",
        "--frames",
        &frames.to_string(),
        "--seed",
        "9",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let config = unmix_synth::SynthConfig {
        sources: 2,
        sensors: 2,
        frames,
        ..unmix_synth::SynthConfig::paper(MixKind::Linear, 9)
    };
    let mut stream = unmix_synth::SynthStream::new(&config).unwrap();
    let (mut want_mix, mut want_truth) = (Vec::new(), Vec::new());
    stream.draw(&mut want_mix, Some(&mut want_truth), frames);
    let (mix, truth) = (read(&out.join("mixture.wav")), read(&out.join("truth.wav")));
    assert_eq!(mix.frames(), frames);
    assert!(mix.interleaved() == &want_mix[..] && truth.interleaved() == &want_truth[..]);
    let meta: unmix_synth::SynthMeta = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta, stream.meta());
}

/// `separate` with its default model choice on a linear mixture: the linear model (the
/// temporal prior weighed beside it), its held-out likelihood and iterations in the
/// report and on the terminal, every output
/// but the VAE's training curve, and `apply` with the saved model gives the same sources
/// bit for bit.
#[test]
fn the_default_linear_model_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, truth) = synth_wavs(dir.path(), MixKind::Linear, 3, 4, 6000, 4);
    let out = dir.path().join("out");
    #[rustfmt::skip]
    let o = unmix(&["separate", mix.to_str().unwrap(), "-n", "3", "-o", out.to_str().unwrap(), "--truth", truth.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let said = stdout(&o);
    // Independent samples: the temporal prior is weighed and loses; the chain is not.
    assert!(said.contains("model: linear (held-out likelihood: the temporal prior's is "), "{said}");
    assert!(said.contains("(not weighed: the saturating chain needs"), "{said}");
    assert!(said.contains("temporal prior (AR(8) with GMM innovations): held-out NLL "), "{said}");
    assert!(said.contains("linear model: held-out NLL ") && said.contains(" on all 6000 frames"), "{said}");
    assert!(said.contains("(trained on 6000 frames, linear, "), "{said}");
    let mut names = files_in(&out);
    names.sort();
    assert_eq!(names, ["model.unmix", "priors.png", "report.json", "sources.wav", "truth.png"]);
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["model"]["chosen"], "linear");
    assert!(report["model"]["linear"]["validation_nll"].as_f64().unwrap().is_finite());
    assert!(report["score"]["min_abs_corr"].as_f64().unwrap() > 0.999, "{}", report["score"]);
    let applied = dir.path().join("applied.wav");
    let o = unmix(&[
        "apply",
        out.join("model.unmix").to_str().unwrap(),
        mix.to_str().unwrap(),
        "-o",
        applied.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&applied), read(&out.join("sources.wav")));
}

/// `separate --model vae` writes every output, and `apply` with the saved model reproduces
/// the sources bit for bit (the model file round trip is exact).
#[test]
fn separate_then_apply_gives_identical_sources() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, truth) = synth_wavs(dir.path(), MixKind::Linear, 2, 3, 3000, 2);
    let out = dir.path().join("out");
    let o = unmix(&[
        "separate",
        mix.to_str().unwrap(),
        "-n",
        "2",
        "-o",
        out.to_str().unwrap(),
        "--truth",
        truth.to_str().unwrap(),
        "--model",
        "vae",
        "--epochs",
        "5",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut names = files_in(&out);
    names.sort();
    assert_eq!(names, ["model.unmix", "priors.png", "report.json", "sources.wav", "training.png", "truth.png"]);
    let sources = read(&out.join("sources.wav"));
    assert_eq!((sources.channels(), sources.frames(), sources.sample_rate_hz()), (2, 3000, 8000));

    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["training"]["epochs"], 5);
    assert_eq!(report["training"]["converged"], false, "5 epochs cannot reach the plateau rule");
    assert_eq!(report["history"].as_array().unwrap().len(), 5);
    assert_eq!(report["priors"].as_array().unwrap().len(), 2);
    assert!(report["score"]["mean_abs_corr"].as_f64().unwrap() > 0.0);
    assert!(stderr(&o).contains("warning: training stopped at the epoch cap"), "{}", stderr(&o));
    assert_eq!(report["restarts"]["config"]["candidates"], 4);
    // The threads that trained the candidates: one per core, at most one per candidate.
    let cores = std::thread::available_parallelism().map_or(1, usize::from).min(4);
    assert_eq!(report["restarts"]["config"]["threads"], cores);
    assert!(report["restarts"]["final_validation_loss"].as_f64().unwrap().is_finite());
    assert_eq!(report["ordering"]["signs"].as_array().unwrap().len(), 2);
    assert!(report["linear_ica"]["iterations"].as_u64().unwrap() > 0);
    assert_eq!(report["encoder_kernel"], unmix_infer::Kernel::best().name());

    let applied = dir.path().join("applied.wav");
    let o = unmix(&[
        "apply",
        out.join("model.unmix").to_str().unwrap(),
        mix.to_str().unwrap(),
        "-o",
        applied.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&applied), sources);

    // The restarts' candidates trained on one thread give the same sources, byte for byte.
    let serial = dir.path().join("serial");
    let mut args = vec!["separate", mix.to_str().unwrap(), "-n", "2", "-o", serial.to_str().unwrap()];
    args.extend_from_slice(&["--model", "vae", "--epochs", "5", "--quiet", "--no-plots", "--threads", "1"]);
    let o = unmix(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(serial.join("sources.wav")).unwrap(), std::fs::read(out.join("sources.wav")).unwrap());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(serial.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["restarts"]["config"]["threads"], 1);

    // Another encoder kernel: the report says so, and the sources agree to 1e-5 of the
    // largest (the same training; ordering, gains and sources computed by that kernel).
    let portable = dir.path().join("portable");
    let mut args = vec!["separate", mix.to_str().unwrap(), "-n", "2", "-o", portable.to_str().unwrap()];
    args.extend_from_slice(&["--model", "vae", "--epochs", "5", "--quiet", "--no-plots", "--kernel", "portable"]);
    let o = unmix(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(portable.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["encoder_kernel"], "portable");
    assert_close_to(&read(&portable.join("sources.wav")), &sources, 1e-5);
}

#[test]
fn csv_input_gives_csv_and_wav_sources() {
    let dir = tempfile::tempdir().unwrap();
    let data = unmix_synth::generate(&unmix_synth::SynthConfig {
        sources: 2,
        sensors: 2,
        frames: 1000,
        sample_rate_hz: 100,
        ..unmix_synth::SynthConfig::paper(MixKind::Linear, 3)
    })
    .unwrap();
    let input = dir.path().join("bridge.csv");
    unmix_io::write_csv(&input, &data.mixture, &["acc1".into(), "acc2".into()]).unwrap();
    let out = dir.path().join("out");
    let mut args =
        vec!["separate", input.to_str().unwrap(), "-n", "2", "-o", out.to_str().unwrap(), "--csv-rate", "100"];
    args.extend_from_slice(QUICK);
    let o = unmix(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let wav = read(&out.join("sources.wav"));
    let csv = unmix_io::read_csv(&out.join("sources.csv"), 100).unwrap();
    assert_eq!(wav.sample_rate_hz(), 100);
    assert_eq!(wav.channels(), 2);
    for (a, b) in wav.interleaved().iter().zip(csv.interleaved()) {
        assert!((a - b).abs() <= 1e-6 * a.abs().max(1.0));
    }
}

/// A data logger's export: `;`-separated with decimal commas, a time column, the sensors,
/// and a temperature column. `--channels` picks the sensors by name or number, and the
/// result is the same as from a plain CSV holding only them; `apply` with that model reads
/// the same columns by itself.
#[test]
fn logger_csv_with_picked_columns() {
    let dir = tempfile::tempdir().unwrap();
    let data = unmix_synth::generate(&unmix_synth::SynthConfig {
        sources: 2,
        sensors: 2,
        frames: 1000,
        sample_rate_hz: 100,
        ..unmix_synth::SynthConfig::paper(MixKind::Linear, 4)
    })
    .unwrap();
    let plain = dir.path().join("plain.csv");
    unmix_io::write_csv(&plain, &data.mixture, &["acc1".into(), "acc2".into()]).unwrap();
    let plain_rows = unmix_io::read_csv(&plain, 100).unwrap();
    let mut text = String::from("time;acc1;acc2;temp_C\n");
    for (t, frame) in plain_rows.interleaved().chunks(2).enumerate() {
        // `{}` writes the shortest text that reads back to the same f32.
        let row = format!("{:.2};{};{};21.5\n", t as f64 / 100.0, frame[0], frame[1]);
        text.push_str(&row.replace('.', ","));
    }
    let logger = dir.path().join("logger.csv");
    std::fs::write(&logger, text).unwrap();

    let expected = separate_quick(&plain, &dir.path().join("plain"), &["--csv-rate", "100"]);
    let by_name = dir.path().join("by-name");
    let picked = ["--csv-rate", "100", "--channels", "acc1,acc2"];
    assert_eq!(separate_quick(&logger, &by_name, &picked), expected);
    let by_number = dir.path().join("by-number");
    assert_eq!(separate_quick(&logger, &by_number, &["--csv-rate", "100", "--channels", "2-3"]), expected);
    // The model remembers the pick: `apply` on the logger file needs no --channels.
    let model = by_name.join("model.unmix");
    let applied = dir.path().join("applied.csv");
    let o = unmix(&["apply", model.to_str().unwrap(), logger.to_str().unwrap(), "-o", applied.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("reading channels acc1,acc2 of"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&applied).unwrap(), expected);
    // On a WAV the names mean nothing: the user is told to pick by number.
    let wav = dir.path().join("same.wav");
    write_wav(&wav, 2, plain_rows.interleaved());
    let o =
        unmix(&["apply", model.to_str().unwrap(), wav.to_str().unwrap(), "-o", applied.to_str().unwrap(), "--force"]);
    assert_clean_failure(&o, "model.unmix", "same.wav is read as WAV; pick its channels by number with --channels");
    let o = unmix(&[
        "apply",
        model.to_str().unwrap(),
        wav.to_str().unwrap(),
        "-o",
        applied.to_str().unwrap(),
        "--force",
        "--channels",
        "1-2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Without the pick the time column is left out by itself, but the temperature would be
    // a channel: being constant, it is refused.
    let (all, x) = (dir.path().join("all"), dir.path().join("x"));
    let mut args = vec!["separate", logger.to_str().unwrap(), "-n", "2", "-o", all.to_str().unwrap()];
    args.extend_from_slice(QUICK);
    assert_clean_failure(&unmix(&args), "logger.csv", "column 4 of the file (channel 3 read) is constant (silent)");
    // A name the header does not have.
    let mut args = vec!["separate", logger.to_str().unwrap(), "-n", "2", "-o", x.to_str().unwrap()];
    args.extend_from_slice(&["--channels", "acc1,acc3"]);
    assert_clean_failure(
        &unmix(&args),
        "logger.csv",
        "no column named 'acc3' (the header has: time, acc1, acc2, temp_C)",
    );
}

/// A logger's CSV with a time-stamp column needs neither `--channels` nor `--csv-rate`:
/// the column is left out and its steps give the rate, which the model keeps with the
/// pick, so `apply` reads the logger's file or its headerless stream the same way.
#[test]
fn a_logger_csv_with_time_stamps_needs_no_options() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let data = unmix_synth::generate(&unmix_synth::SynthConfig {
        sources: 2,
        sensors: 2,
        frames: 2000,
        sample_rate_hz: 200,
        ..unmix_synth::SynthConfig::paper(MixKind::Linear, 6)
    })
    .unwrap();
    let plain = dir.path().join("plain.csv");
    unmix_io::write_csv(&plain, &data.mixture, &["acc1".into(), "acc2".into()]).unwrap();
    let rows = unmix_io::read_csv(&plain, 200).unwrap();
    let stamped = |step_s: f64| -> String {
        let body: String = rows
            .interleaved()
            .chunks(2)
            .enumerate()
            .map(|(k, f)| format!("{:.3},{},{}\n", 86_400.0 + step_s * k as f64, f[0], f[1]))
            .collect();
        format!("time_s,acc1,acc2\n{body}")
    };
    let logger = dir.path().join("logger.csv");
    std::fs::write(&logger, stamped(0.005)).unwrap();
    let expected = separate_quick(&plain, &dir.path().join("plain"), &["--csv-rate", "200"]);
    let out = dir.path().join("out");
    let o = unmix(&[
        "separate",
        logger.to_str().unwrap(),
        "-n",
        "2",
        "-o",
        out.to_str().unwrap(),
        "--epochs",
        "3",
        "--no-plots",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("logger.csv: column 'time_s' is its time stamps (not a channel): 200 Hz"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(out.join("sources.csv")).unwrap(), expected);
    let model = unmix_format::ModelFile::load(&out.join("model.unmix")).unwrap();
    assert_eq!((model.header.sample_rate_hz, model.header.picked_channels.as_deref()), (200, Some("2-3")));

    // `apply` on the file: the model's pick, the rate from the stamps.
    let applied = dir.path().join("applied.csv");
    let model = out.join("model.unmix");
    let o = unmix(&["apply", model.to_str().unwrap(), logger.to_str().unwrap(), "-o", applied.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("column 'time_s' is its time stamps: 200 Hz"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&applied).unwrap(), expected);
    // A stream without the header: the model's pick and rate.
    let piped = dir.path().join("piped.csv");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_unmix"))
        .args(["apply", model.to_str().unwrap(), "-", "-o", piped.to_str().unwrap()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let text = stamped(0.005);
    child.stdin.take().unwrap().write_all(text.split_once('\n').unwrap().1.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("stdin: rows taken at the model's rate, 200 Hz"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&piped).unwrap(), expected);

    // A model that read the stamps as a channel (trained on the rows without the header,
    // or before stamps were recognised): the mismatch says how to read them so again.
    let headerless = dir.path().join("rows.csv");
    std::fs::write(&headerless, text.split_once('\n').unwrap().1).unwrap();
    let three = dir.path().join("three");
    let mut args = vec!["separate", headerless.to_str().unwrap(), "-n", "2", "-o", three.to_str().unwrap()];
    args.extend_from_slice(QUICK);
    assert!(unmix(&args).status.success());
    let o = unmix(&[
        "apply",
        three.join("model.unmix").to_str().unwrap(),
        logger.to_str().unwrap(),
        "-o",
        dir.path().join("never.csv").to_str().unwrap(),
    ]);
    assert_clean_failure(
        &o,
        "logger.csv",
        "has 2 channels, but the model was trained on 3 (column 'time_s' was taken as time stamps; --channels 1-3 reads it as a channel)",
    );

    // Stamps 0.4 s apart make 2.5 Hz, which no whole-hertz rate is: the user says.
    let odd = dir.path().join("odd.csv");
    std::fs::write(&odd, stamped(0.4)).unwrap();
    let odd_out = dir.path().join("odd-out");
    let mut args = vec!["separate", odd.to_str().unwrap(), "-n", "2", "-o", odd_out.to_str().unwrap()];
    args.extend_from_slice(QUICK);
    assert_clean_failure(
        &unmix(&args),
        "odd.csv",
        "(2.5000 Hz), not a whole number of hertz; give the rate with --csv-rate",
    );
}

/// A recorder's WAV with a channel that is not a microphone: `--channels` leaves it out,
/// and the result is that of a file without it.
/// A recorder piped in (`arecord -t wav | unmix …`) writes its WAV header before it knows
/// how long the recording will be, so the length there is a placeholder: the stream is
/// read to its end, and `separate -` and `apply -` give the same sources, byte for byte, as
/// on the file. A stream cut inside a frame keeps every whole frame before it, and fails.
#[test]
fn a_recorder_piped_in_is_separated_like_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 3, 3, 12_000, 5);
    // 16-bit PCM, as a sound card records.
    let recorded = dir.path().join("recorded.wav");
    let spec =
        hound::WavSpec { channels: 3, sample_rate: 8000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(&recorded, spec).unwrap();
    for &v in read(&mix).interleaved() {
        w.write_sample((v * 6000.0).clamp(-32768.0, 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    let mut stream = std::fs::read(&recorded).unwrap();
    let data = stream.windows(4).position(|w| w == b"data").unwrap() + 4;
    for at in [4, data] {
        stream[at..at + 4].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
    }

    let (file_out, piped) = (dir.path().join("file"), dir.path().join("piped"));
    let options = ["-n", "3", "--train-frames", "6000", "--epochs", "30", "--no-plots"];
    let o =
        unmix(&[&["separate", recorded.to_str().unwrap(), "-o", file_out.to_str().unwrap()], &options[..]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = unmix_fed(&[&["separate", "-", "-o", piped.to_str().unwrap()], &options[..]].concat(), stream.clone());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("stdin: training on its first 6000 frames (0.8 s at 8000 Hz"), "{}", stderr(&o));
    assert_eq!(std::fs::read(piped.join("sources.wav")).unwrap(), std::fs::read(file_out.join("sources.wav")).unwrap());
    let mut written = files_in(&piped);
    written.sort();
    assert_eq!(
        written,
        ["model.unmix", "report.json", "sources.wav"],
        "a WAV stream gives WAV sources, as its file does"
    );

    let model = file_out.join("model.unmix");
    let (from_file, from_stream) = (dir.path().join("from-file.wav"), dir.path().join("from-stream.wav"));
    let o = unmix(&["apply", model.to_str().unwrap(), recorded.to_str().unwrap(), "-o", from_file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = unmix_fed(&["apply", model.to_str().unwrap(), "-", "-o", from_stream.to_str().unwrap()], stream.clone());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&from_stream).unwrap(), std::fs::read(&from_file).unwrap());

    // Cut inside the last frame: the frames before it are separated, and the run fails.
    let cut = dir.path().join("cut.wav");
    let o = unmix_fed(
        &["apply", model.to_str().unwrap(), "-", "-o", cut.to_str().unwrap()],
        stream[..stream.len() - 1].to_vec(),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("error: stdin: not a readable WAV file (the stream ends inside frame 11999 (5 of its 6 bytes))"),
        "{}",
        stderr(&o)
    );
    assert_eq!(read(&cut).interleaved(), &read(&from_file).interleaved()[..11_999 * 3]);
}

#[test]
fn wav_with_picked_channels() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 2, 2, 2000, 5);
    let two = read(&mix);
    // A third channel in front: a slow ramp (a timecode, say).
    let wide: Vec<f32> =
        two.interleaved().chunks(2).enumerate().flat_map(|(t, f)| [t as f32 * 1e-4, f[0], f[1]]).collect();
    let recorder = dir.path().join("recorder.wav");
    write_wav(&recorder, 3, &wide);
    let expected = separate_quick(&mix, &dir.path().join("plain"), &[]);
    let picked = dir.path().join("picked");
    assert_eq!(separate_quick(&recorder, &picked, &["--channels", "2-3"]), expected);
    let model = picked.join("model.unmix");
    let run = |extra: &[&str]| {
        let out = dir.path().join("applied.wav");
        let mut args = vec!["apply", model.to_str().unwrap(), recorder.to_str().unwrap(), "-o", out.to_str().unwrap()];
        args.extend_from_slice(&["--force", "--quiet"]);
        args.extend_from_slice(extra);
        unmix(&args)
    };
    let o = run(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(dir.path().join("applied.wav")).unwrap(), expected);
    // --channels overrides the model's pick; the wrong count is a clear error.
    assert_clean_failure(
        &run(&["--channels", "1-3"]),
        "recorder.wav",
        "has 3 channels, but the model was trained on 2",
    );
    assert_clean_failure(&run(&["--channels", "acc1"]), "recorder.wav", "picked by number");
    // A silent track picked is named as the file numbers it.
    let silent: Vec<f32> = two.interleaved().chunks(2).flat_map(|f| [f[0], 0.0, f[1]]).collect();
    let with_silence = dir.path().join("silent-track.wav");
    write_wav(&with_silence, 3, &silent);
    let unused = dir.path().join("unused");
    let mut args = vec![
        "separate",
        with_silence.to_str().unwrap(),
        "-n",
        "2",
        "-o",
        unused.to_str().unwrap(),
        "--channels",
        "1,3,2",
    ];
    args.extend_from_slice(QUICK);
    let o = unmix(&args);
    assert_clean_failure(&o, "silent-track.wav", "channel 2 of the file (channel 3 read) is constant (silent)");
    assert!(!unused.exists(), "a failed run removes the output directory it created");
}

/// `--wav-format int16/int24`: integer PCM within half a step of the float output, and
/// what goes beyond full scale is clipped, counted and said.
#[test]
fn integer_wav_output_and_its_clipping() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 2, 2, 4000, 7);
    // A tenth of the benchmark's level: nothing reaches full scale.
    let quiet = dir.path().join("quiet.wav");
    write_wav(&quiet, 2, &read(&mix).interleaved().iter().map(|v| v * 0.1).collect::<Vec<_>>());
    separate_quick(&quiet, &dir.path().join("float"), &[]);
    let (int16, float) = (dir.path().join("int16"), read(&dir.path().join("float/sources.wav")));
    let mut args = vec!["separate", quiet.to_str().unwrap(), "-n", "2", "-o", int16.to_str().unwrap()];
    args.extend_from_slice(&["--wav-format", "int16"]);
    args.extend_from_slice(QUICK);
    let o = unmix(&args);
    assert!(o.status.success() && !stderr(&o).contains("clipped"), "{}", stderr(&o));
    let reader = hound::WavReader::open(int16.join("sources.wav")).unwrap();
    assert_eq!((reader.spec().bits_per_sample, reader.spec().sample_format), (16, hound::SampleFormat::Int));
    let got = read(&int16.join("sources.wav"));
    assert!(float.interleaved().iter().all(|v| v.abs() < 0.99), "the quiet sources stay below full scale");
    let worst = got.interleaved().iter().zip(float.interleaved()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
    assert!(worst <= 0.5 / 32_768.0 + 1e-7, "{worst}");

    // At the benchmark's level (unit-variance sources) the peaks are beyond full scale.
    separate_quick(&mix, &dir.path().join("full"), &[]);
    let model = dir.path().join("full/model.unmix");
    let (loud_float, loud) = (dir.path().join("full/sources.wav"), dir.path().join("loud.wav"));
    let o = unmix(&[
        "apply",
        model.to_str().unwrap(),
        mix.to_str().unwrap(),
        "-o",
        loud.to_str().unwrap(),
        "--wav-format",
        "int24",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let full = read(&loud_float);
    let beyond = full.interleaved().iter().filter(|v| (**v * 8_388_608.0).round() >= 8_388_608.0 || **v < -1.0).count();
    let peak = full.interleaved().iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(beyond > 0);
    let said = format!(
        "warning: {}: {beyond} samples clipped at full scale (peak {:+.1} dBFS)",
        loud.display(),
        20.0 * peak.log10()
    );
    assert!(stderr(&o).contains(&said), "{}\nwanted: {said}", stderr(&o));
    let clipped = read(&loud);
    assert!(clipped.interleaved().iter().all(|v| (-1.0..1.0).contains(v)));
}

/// `separate` with the quick settings and `extra` options; returns `sources.wav`'s bytes,
/// or `sources.csv`'s for CSV input.
fn separate_quick(input: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["separate", input.to_str().unwrap(), "-n", "2", "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(QUICK);
    let o = unmix(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let name = if unmix_io::is_csv(input) { "sources.csv" } else { "sources.wav" };
    std::fs::read(out.join(name)).unwrap()
}

#[test]
fn score_prints_a_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (_, truth) = synth_wavs(dir.path(), MixKind::Linear, 3, 3, 1000, 5);
    // Estimates: the truth permuted and sign-flipped, so the scores are perfect.
    let t = read(&truth);
    let est: Vec<Vec<f32>> = vec![t.channel(2), t.channel(0).iter().map(|v| -v).collect(), t.channel(1)];
    let est_path = dir.path().join("est.wav");
    unmix_io::write_wav_f32(&est_path, &unmix_core::Recording::from_channels(8000, &est).unwrap()).unwrap();
    let o = unmix(&["score", "--truth", truth.to_str().unwrap(), "--est", est_path.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(s["min_abs_corr"].as_f64().unwrap() > 0.999_999);
    assert_eq!(s["sources"][0]["estimate"], 1);
    assert_eq!(s["sources"][0]["sign"], -1.0);
    let o = unmix(&["score", "--truth", truth.to_str().unwrap(), "--est", est_path.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("mean"));

    // Scored block by block, a CSV against a WAV gives the same table as two WAVs.
    let est_csv = dir.path().join("est.csv");
    let names = ["a".to_string(), "b".to_string(), "c".to_string()];
    unmix_io::write_csv(&est_csv, &unmix_core::Recording::from_channels(8000, &est).unwrap(), &names).unwrap();
    let c = unmix(&["score", "--truth", truth.to_str().unwrap(), "--est", est_csv.to_str().unwrap()]);
    assert!(c.status.success(), "{}", stderr(&c));
    assert_eq!(c.stdout, o.stdout);
    // Lengths that differ: told before reading for WAVs, at the shorter end for CSV.
    let short = dir.path().join("short.wav");
    let cut: Vec<Vec<f32>> = est.iter().map(|c| c[..999].to_vec()).collect();
    unmix_io::write_wav_f32(&short, &unmix_core::Recording::from_channels(8000, &cut).unwrap()).unwrap();
    let o = unmix(&["score", "--truth", truth.to_str().unwrap(), "--est", short.to_str().unwrap()]);
    assert_clean_failure(&o, "short.wav", "999 frames, but");
    let short_csv = dir.path().join("short.csv");
    unmix_io::write_csv(&short_csv, &unmix_core::Recording::from_channels(8000, &cut).unwrap(), &names).unwrap();
    let o = unmix(&["score", "--truth", truth.to_str().unwrap(), "--est", short_csv.to_str().unwrap()]);
    assert_clean_failure(&o, "short.csv", "ends after 999 frames, but");
}

/// The streamed `apply` (reader, separator and writer on their
/// own threads, blocks of every size) gives the same sources, bit for bit, as applying
/// the model to the whole recording at once.
#[test]
fn streamed_output_equals_whole_file_output() {
    let dir = tempfile::tempdir().unwrap();
    // 50 001 frames: not a multiple of any block size in the pipeline.
    let (mix, _) = synth_wavs(dir.path(), MixKind::Nonlinear, 3, 4, 50_001, 7);
    let out = dir.path().join("out");
    let mut args = vec!["separate", mix.to_str().unwrap(), "-n", "3", "-o", out.to_str().unwrap()];
    args.extend_from_slice(QUICK);
    assert!(unmix(&args).status.success());
    let model = unmix_format::ModelFile::load(&out.join("model.unmix")).unwrap();
    let whole = unmix_separate::apply(&model, &read(&mix), unmix_infer::Kernel::best()).unwrap();
    let streamed = read(&out.join("sources.wav"));
    assert_eq!(streamed.interleaved().len(), whole.interleaved().len());
    assert!(streamed.interleaved().iter().zip(whole.interleaved()).all(|(a, b)| a.to_bits() == b.to_bits()));
    // `apply --stats` reports every frame through every stage.
    let applied = dir.path().join("applied.wav");
    let o = unmix(&[
        "apply",
        out.join("model.unmix").to_str().unwrap(),
        mix.to_str().unwrap(),
        "-o",
        applied.to_str().unwrap(),
        "--stats",
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("processor       50001        50001"), "{text}");
    // … and which encoder kernel ran them.
    assert!(text.contains(&format!("encoder kernel: {}", unmix_infer::Kernel::best().name())), "{text}");
    assert_eq!(read(&applied), streamed);

    // `--kernel` picks another: the portable kernel says so and agrees to 1e-5.
    let portable = dir.path().join("portable.wav");
    let model_path = out.join("model.unmix");
    let apply_to = |to: &std::path::Path| -> Vec<String> {
        let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
        vec!["apply".into(), path(&model_path), path(&mix), "-o".into(), path(to), "--stats".into(), "--quiet".into()]
    };
    let apply_on = |kernel: &str, to: &std::path::Path| {
        let mut args = apply_to(to);
        args.extend(["--kernel".to_owned(), kernel.to_owned()]);
        unmix(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let o = apply_on("portable", &portable);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("encoder kernel: portable"));
    assert_close_to(&read(&portable), &streamed, 1e-5);
    // UNMIX_VECTOR_UNIT caps the unit: at `scalar` the default kernel is the portable one,
    // bit for bit; a name that is no unit is refused before anything is written.
    let capped_at = |unit: &str, to: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_unmix"))
            .env("UNMIX_VECTOR_UNIT", unit)
            .args(apply_to(to))
            .output()
            .unwrap()
    };
    let scalar = dir.path().join("scalar.wav");
    let o = capped_at("scalar", &scalar);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("encoder kernel: portable"));
    assert_eq!(std::fs::read(&scalar).unwrap(), std::fs::read(&portable).unwrap());
    let misspelt = dir.path().join("misspelt.wav");
    assert_clean_failure(&capped_at("avx3", &misspelt), "UNMIX_VECTOR_UNIT=avx3", "not a vector unit");
    assert!(!misspelt.exists());
    // A kernel this processor lacks is refused on one line, before anything is written.
    for kernel in unmix_infer::Kernel::ALL.iter().filter(|k| !k.is_available()) {
        let refused = dir.path().join("refused.wav");
        let o = apply_on(kernel.id(), &refused);
        assert!(!o.status.success());
        let e = stderr(&o);
        assert_eq!(e.trim_end().lines().count(), 1, "{e}");
        assert!(
            e.contains(&format!("--kernel {}", kernel.id())) && e.contains("does not run on this processor"),
            "{e}"
        );
        assert!(!refused.exists());
    }
    // One that is not compiled in is a usage error listing those that are.
    let o = apply_on("sse9", &dir.path().join("none.wav"));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("portable"), "{}", stderr(&o));
}

/// A reader error in the middle of the stream stops the pipeline with an error naming
/// the file, and leaves no output file behind.
#[test]
fn truncated_input_mid_stream_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 2, 2, 100_000, 8);
    let out = dir.path().join("out");
    let mut args =
        vec!["separate", mix.to_str().unwrap(), "-n", "2", "-o", out.to_str().unwrap(), "--train-frames", "2000"];
    args.extend_from_slice(QUICK);
    assert!(unmix(&args).status.success());
    // Cut the file at 80 %: the header still promises 100 000 frames.
    let bytes = std::fs::read(&mix).unwrap();
    let cut = dir.path().join("cut.wav");
    std::fs::write(&cut, &bytes[..bytes.len() * 4 / 5]).unwrap();
    let result = dir.path().join("result.wav");
    let o = unmix(&[
        "apply",
        out.join("model.unmix").to_str().unwrap(),
        cut.to_str().unwrap(),
        "-o",
        result.to_str().unwrap(),
        "--quiet",
    ]);
    assert_clean_failure(&o, "cut.wav", "truncated");
    assert!(!result.exists());
    assert_eq!(files_in(dir.path()).iter().filter(|f| f.ends_with(".part")).count(), 0, "temporary file left behind");
}

/// Ctrl-C (or SIGTERM, SIGHUP) during training ends `separate` at the next epoch with one
/// line and the signal's status (130, 143, 129), and the output directory it created is
/// gone again — staging directory and all.
#[test]
fn ctrl_c_stops_separate_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 3, 3, 40_000, 9);
    // Ctrl-C, and the signals of a service manager (SIGTERM) and a closed terminal (SIGHUP).
    for (signal, said, status) in [("INT", "Ctrl-C", 130), ("TERM", "SIGTERM", 143), ("HUP", "SIGHUP", 129)] {
        let o = stop_separate_with(&mix, &dir.path().join(format!("out-{signal}")), &[signal]);
        assert_eq!(o.status.code(), Some(status), "{}", stderr(&o));
        assert_eq!(stderr(&o).trim(), format!("error: interrupted ({said}): nothing was written"));
    }
}

/// `timeout` sends its SIGTERM to the command and again to the command's process group
/// (a service manager and a closed terminal may do the same): the same signal twice in a
/// second is one request, and once exited at once leaving the staging folder behind. A
/// different signal after it still exits at once, its staging removed first.
#[test]
fn a_repeated_signal_is_one_request_and_an_exit_at_once_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 3, 3, 40_000, 9);
    let o = stop_separate_with(&mix, &dir.path().join("twice"), &["TERM", "TERM"]);
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim(), "error: interrupted (SIGTERM): nothing was written");
    // Sent at once, the two may be seen in either order — or the first may have ended
    // the run before the second arrives (a loaded machine delivers it late): an orderly
    // stop by that one alone, nothing left behind either way.
    let o = stop_separate_with(&mix, &dir.path().join("then-int"), &["TERM", "INT"]);
    let said = stderr(&o);
    let (int_last, term_last) = (said.contains("Ctrl-C after SIGTERM"), said.contains("SIGTERM after Ctrl-C"));
    if int_last || term_last {
        assert!(said.contains("exiting at once"), "{said}");
        assert_eq!(o.status.code(), Some(if int_last { 130 } else { 143 }), "{said}");
    } else {
        let alone = [
            ("error: interrupted (SIGTERM): nothing was written", 143),
            ("error: interrupted (Ctrl-C): nothing was written", 130),
        ];
        assert!(alone.iter().any(|(line, code)| said.trim() == *line && o.status.code() == Some(*code)), "{said}");
    }
    // And `timeout` itself, whose two signals may come as one.
    let out = dir.path().join("timeout");
    #[rustfmt::skip]
    let o = std::process::Command::new("timeout")
        .args(["--preserve-status", "3", env!("CARGO_BIN_EXE_unmix"), "separate", mix.to_str().unwrap(), "-n", "3",
               "-o", out.to_str().unwrap(), "--model", "vae", "--batch-size", "16", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(143), "{}", stderr(&o));
    assert!(!out.exists(), "left behind: {:?}", files_in(&out));
}

/// A run killed outright (SIGKILL, a crash, the power) cannot clean up: its staging folder
/// is removed by the next run into the same directory, which sees its owner gone, while
/// the staging of a run still going is left alone.
#[cfg(target_os = "linux")]
#[test]
fn the_staging_of_a_killed_run_is_removed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 3, 3, 40_000, 9);
    let out = dir.path().join("out");
    // Starts a run and waits for its staging folder (one not in `known`) and owner file.
    let start = |known: &[String]| {
        #[rustfmt::skip]
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_unmix"))
            .args(["separate", mix.to_str().unwrap(), "-n", "3", "-o", out.to_str().unwrap(), "--model", "vae", "--batch-size", "16", "--quiet"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let new_staging =
            || files_in(&out).into_iter().any(|f| !known.contains(&f) && out.join(&f).join(".owner").exists());
        assert!(wait_for(new_staging));
        child
    };
    let mut killed = start(&[]);
    killed.kill().unwrap();
    killed.wait().unwrap();
    let abandoned = files_in(&out);
    assert_eq!(abandoned.len(), 1, "{abandoned:?}");
    let mut running = start(&abandoned);
    assert!(wait_for(|| !files_in(&out).contains(&abandoned[0])));
    let left = files_in(&out);
    assert!(!left.contains(&abandoned[0]) && left.len() == 1, "{abandoned:?} then {left:?}");
    // A third run sees the second still running: its staging stays.
    let o = unmix(&[
        "separate",
        mix.to_str().unwrap(),
        "-n",
        "3",
        "-o",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--quiet",
        "--no-plots",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(files_in(&out).contains(&left[0]));
    running.kill().unwrap();
    running.wait().unwrap();
}

/// Starts a long `separate` of `mix` into `out`, sends `signals` once training has begun,
/// and checks that it stopped within seconds with nothing left.
fn stop_separate_with(mix: &std::path::Path, out: &std::path::Path, signals: &[&str]) -> std::process::Output {
    // Small batches: minutes of training, epochs of a fraction of a second.
    #[rustfmt::skip]
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_unmix"))
        .args(["separate", mix.to_str().unwrap(), "-n", "3", "-o", out.to_str().unwrap(), "--model", "vae", "--batch-size", "16", "--quiet"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Training has begun once the staging directory exists.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while files_in(out).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(files_in(out).iter().any(|f| f.starts_with(".unmix-staging-")), "{:?}", files_in(out));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let asked = std::time::Instant::now();
    for (k, signal) in signals.iter().enumerate() {
        // The same signal again comes 0.1 s later, as a second delivery would; another
        // at once, while the first is still being acted on (an epoch takes seconds).
        if k > 0 && signals[k - 1] == *signal {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let kill = std::process::Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status();
        assert!(kill.unwrap().success());
    }
    let o = child.wait_with_output().unwrap();
    let waited = asked.elapsed();
    assert!(!out.exists(), "left behind: {:?}", files_in(out));
    assert!(waited < std::time::Duration::from_secs(20), "took {waited:?} to stop");
    o
}

/// `-n auto` reports its evidence and honours `--max-sources`; a bad `-n` is refused.
#[test]
fn auto_source_count_on_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 3, 4, 3000, 8);
    let out = dir.path().join("out");
    let mut args =
        vec!["separate", mix.to_str().unwrap(), "-n", "auto", "--max-sources", "2", "-o", out.to_str().unwrap()];
    args.extend_from_slice(QUICK);
    let o = unmix(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["sources"], 2);
    assert_eq!(report["source_count"]["cap"], 2);
    assert_eq!(report["source_count"]["mdl"].as_array().unwrap().len(), 4);
    assert_eq!(read(&out.join("sources.wav")).channels(), 2);

    let o = unmix(&["separate", mix.to_str().unwrap(), "-n", "some", "-o", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("neither a number of sources nor 'auto'"), "{}", stderr(&o));
    let o = unmix(&["separate", mix.to_str().unwrap(), "-n", "2", "--max-sources", "2", "-o", out.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--max-sources only applies to -n auto"), "{}", stderr(&o));
}

/// Without the `live` feature, `unmix live` and `unmix devices` say how to get it.
#[cfg(not(feature = "live"))]
#[test]
fn live_without_the_feature_says_how_to_enable_it() {
    for args in [&["devices"][..], &["live", "--channels", "2", "-n", "2"][..]] {
        let o = unmix(args);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("--features live"), "{}", stderr(&o));
        assert!(stderr(&o).contains("libasound2-dev"), "{}", stderr(&o));
    }
}

/// The frame counts' old names (`--samples`, `--train-samples`, `--max-train-samples`,
/// from before frames and samples were told apart) still work, unlisted in the help.
#[test]
fn the_old_frame_count_names_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let bench = dir.path().join("bench");
    let o = unmix(&["synth", "linear", "--sources", "2", "--samples", "400", "-o", bench.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read(&bench.join("mixture.wav")).frames(), 400);
    let mix = bench.join("mixture.wav");
    let out = dir.path().join("out");
    for option in ["--train-samples", "--max-train-samples", "--train-frames", "--max-train-frames"] {
        let o = unmix(&["separate", mix.to_str().unwrap(), "-n", "2", "-o", out.to_str().unwrap(), option, "100"]);
        assert!(!o.status.success());
        assert!(stderr(&o).contains("only 100 frames to train on"), "{option}: {}", stderr(&o));
    }
    let help = stdout(&unmix(&["separate", "--help"]));
    assert!(help.contains("--train-frames") && help.contains("--max-train-frames"), "{help}");
    assert!(!help.contains("train-samples"), "{help}");
    let synth_help = stdout(&unmix(&["synth", "--help"]));
    assert!(synth_help.contains("--frames") && !synth_help.contains("--samples"), "{synth_help}");
}

/// A learning rate that makes the training diverge said "weights: model file is
/// inconsistent"; it says the training diverged, and which option to lower.
#[test]
fn a_diverging_training_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 3, 3, 2000, 1);
    let out = dir.path().join("out");
    let o = unmix(&[
        "separate",
        mix.to_str().unwrap(),
        "-n",
        "3",
        "-o",
        out.to_str().unwrap(),
        "--lr",
        "1e30",
        "--model",
        "vae",
        "--quiet",
    ]);
    assert_clean_failure(&o, "mixture.wav", "training diverged");
    assert!(
        stderr(&o).contains("try a lower learning rate than --lr 1000000000000000000000000000000"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

/// Counts are said as a person says them, and a short input's speed is not "0×".
#[test]
fn one_frame_one_source_and_a_short_input_are_said_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let (mix, _) = synth_wavs(dir.path(), MixKind::Linear, 1, 1, 2000, 1);
    let out = dir.path().join("out");
    let o = unmix(&[
        "separate",
        mix.to_str().unwrap(),
        "-n",
        "1",
        "-o",
        out.to_str().unwrap(),
        "--model",
        "vae",
        "--epochs",
        "1",
        "--no-plots",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("of 1 channel into 1 source (trained on"), "{}", stdout(&o));
    assert!(stdout(&o).contains("1 epoch,"), "{}", stdout(&o));
    let tiny = dir.path().join("tiny.wav");
    write_wav(&tiny, 1, &[0.25]);
    let o = unmix(&[
        "apply",
        out.join("model.unmix").to_str().unwrap(),
        tiny.to_str().unwrap(),
        "-o",
        dir.path().join("s.wav").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("separated 1 frame into 1 source"), "{}", stdout(&o));
    assert!(!stdout(&o).contains(" 0× real time"), "{}", stdout(&o));
}
