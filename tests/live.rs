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

/// Device tests run one at a time: a JACK server starved by an unpaced ALSA session
/// beside it (or by a second server) misses its deadlines, and the paced test then sees
/// repeated periods or a stall that have nothing to do with unmix.
fn one_device_test_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A temporary ALSA setup whose `filecap` device plays `mixture` (interleaved f32).
struct FileCapture {
    _dir: tempfile::TempDir,
    config: PathBuf,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
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
        Self { _dir: dir, config, _one_at_a_time: one_device_test_at_a_time() }
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
    let live_scores = dir.path().join("live-scores.csv");
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
        "--scores",
        live_scores.to_str().unwrap(),
        "--window-s",
        "0.25",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("input alsa:filecap: 3 channels, 48000 Hz, f32"), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("processing load"), "--stats prints the load");
    let kernel = format!("encoder kernel: {}", unmix_infer::Kernel::best().name());
    assert!(String::from_utf8_lossy(&o.stdout).contains(&kernel), "--stats names the kernel");
    // The session ends with the summary `apply` prints, on stderr (stdout may carry samples).
    let summary = err.lines().find(|l| l.starts_with("monitoring: 4 windows; outlier shares")).expect(&err);

    let offline = dir.path().join("offline.wav");
    let offline_scores = dir.path().join("offline-scores.csv");
    #[rustfmt::skip]
    let a = unmix(&[
        "apply", model.to_str().unwrap(), mixture.to_str().unwrap(), "-o", offline.to_str().unwrap(),
        "--scores", offline_scores.to_str().unwrap(), "--window-s", "0.25",
    ]);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(read(&record), read(&offline), "live output differs from offline apply");
    // The live monitoring scores are the offline ones: four windows of a quarter second.
    let live_rows = std::fs::read_to_string(&live_scores).unwrap();
    assert_eq!(live_rows.lines().count(), 1 + 4, "{live_rows}");
    assert_eq!(live_rows, std::fs::read_to_string(&offline_scores).unwrap());
    let offline_summary =
        String::from_utf8_lossy(&a.stdout).lines().find(|l| l.starts_with("monitoring:")).map(String::from);
    assert_eq!(
        Some(summary.to_string()),
        offline_summary.map(|l| l.replace(offline_scores.to_str().unwrap(), live_scores.to_str().unwrap()))
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["end"], "duration");
    assert_eq!(r["separator"], "time_model");
    assert_eq!(r["status"]["frames_in"], rate);
    assert_eq!(r["status"]["dropped_frames"], 0);

    // Recorded as 16-bit PCM: byte for byte what `apply --wav-format int16` writes, the
    // same samples clipped and said.
    let (record16, offline16) = (dir.path().join("live16.wav"), dir.path().join("offline16.wav"));
    #[rustfmt::skip]
    let o = alsa.unmix(&[
        "live", "--input", "filecap", "--channels", "3", "-n", "3", "--model", model.to_str().unwrap(),
        "--duration", "1s", "--rate", "48000", "--ring-seconds", "2", "--quiet",
        "--record", record16.to_str().unwrap(), "--wav-format", "int16",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    #[rustfmt::skip]
    let a = unmix(&[
        "apply", model.to_str().unwrap(), mixture.to_str().unwrap(), "-o", offline16.to_str().unwrap(),
        "--wav-format", "int16",
    ]);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(std::fs::read(&record16).unwrap(), std::fs::read(&offline16).unwrap());
    let clipped = |err: String, path: &Path| {
        err.lines().find(|l| l.contains("clipped")).map(|l| l.replace(path.to_str().unwrap(), "F"))
    };
    assert_eq!(clipped(stderr(&o), &record16), clipped(stderr(&a), &offline16));
}

/// Four microphones in a room, through a real ALSA device into `live --domain stft`: the
/// online separator runs from the first frame, the room's model of the first second
/// (`--warmup 1s`: the file device feeds faster than real time) takes over once fitted, every frame is recorded, and the recording is exactly the online
/// separator up to the hand-over and the room's separator continuing it after, run on
/// the same samples (with `--online-only`, the online separator throughout); `--stats`
/// prints its load and the report its latency. Options of the time domain are refused
/// with the reason.
#[test]
fn live_separates_a_room_in_the_stft_domain() {
    use unmix_synth::room::{RoomConfig, simulate_room};
    let dir = tempfile::tempdir().unwrap();
    let rate = 16_000;
    let speech = crate::util::speech_dir();
    let clips: Vec<Vec<f32>> =
        (1..=3).map(|k| unmix_io::read_wav(&speech.join(format!("talker{k}.wav"))).unwrap().channel(0)).collect();
    // Each talker reads the three sentences in turn (18 s): the file device feeds faster
    // than real time, and the room's model is fitted while the session runs.
    let dry: Vec<Vec<f32>> =
        (0..2).map(|k| (0..3).flat_map(|i| clips[(k + i) % 3].iter().copied()).collect()).collect();
    let room = simulate_room(&RoomConfig::drawn(2, 2, 4, 0.05, 0.3, rate as u32), &dry).unwrap();
    let frames = room.mixture.frames();
    let alsa = FileCapture::new(room.mixture.interleaved());
    let (record, report) = (dir.path().join("live.wav"), dir.path().join("live.json"));
    let saved = dir.path().join("saved.unmix");
    #[rustfmt::skip]
    let o = alsa.unmix(&[
        "live", "--input", "filecap", "--channels", "4", "-n", "2", "--domain", "stft", "--warmup", "1s",
        "--duration", &format!("{}s", frames / rate), "--rate", "16000", "--ring-seconds", "20",
        "--record", record.to_str().unwrap(), "--report", report.to_str().unwrap(), "--stats", "--quiet",
        "--save-model", saved.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stats = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(stats.contains("processing load") && stats.contains("online IVA"), "{stats}");
    assert!(stderr(&o).contains("the sources lag the input by 2047 frames (128 ms)"), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["latency_frames"], 2047);
    assert_eq!(r["separator"], "online_iva_then_room_model");
    assert_eq!(r["first_model_frame"], 0);
    assert_eq!(r["status"]["dropped_frames"], 0);

    assert!(stderr(&o).contains("a room's model of the first 1 s takes over once fitted"), "{}", stderr(&o));
    let at = r["room_model_frame"].as_u64().unwrap_or_else(|| panic!("no hand-over: {r}")) as usize;
    assert!(at > rate && at < frames, "taken over at frame {at}");
    let input = room.mixture.interleaved();
    let online_config = unmix_freq::OnlineConfig::DEFAULT;
    let mut online = unmix_freq::OnlineIva::new(4, 2, online_config).unwrap();
    let mut want = vec![0.0f32; frames * 2];
    online.process(&input[..at * 4], &mut want[..at * 2]);
    let unmix_freq::RoomHandover { separator: mut handed, alignment, model: handed_model } =
        unmix_freq::room_handover(input, rate, 4, 2, rate as u32, online_config, Default::default()).unwrap();
    assert_eq!(r["last_alignment"].as_array().map(Vec::len), Some(alignment.len()));
    assert!(handed.continue_from(&online));
    handed.process(&input[at * 4..], &mut want[at * 2..]);
    let recorded = unmix_io::read_wav(&record).unwrap();
    assert_eq!(recorded.interleaved(), &want[..], "live output differs from the hand-over run offline");

    // The saved model is the one that took over, its sources in the session's order:
    // `apply` runs it on the whole recording as the session ran it from the hand-over on
    // (the same spatial model; the frame-by-frame powers, started at another frame from
    // other estimates, come close but not to the bit: over the last 5 s each source of
    // the one follows the same source of the other, |corr| measured 0.998 to 1 − 3e-7).
    assert!(stderr(&o).contains(&format!("saved the room's model to {}", saved.display())), "{}", stderr(&o));
    assert_eq!(unmix_format::AnyModel::load(&saved).unwrap(), unmix_format::AnyModel::Room(Box::new(handed_model)));
    let (wav, applied) = (dir.path().join("room.wav"), dir.path().join("applied.wav"));
    unmix_io::write_wav_f32(&wav, &room.mixture).unwrap();
    let a =
        crate::util::unmix(&["apply", saved.to_str().unwrap(), wav.to_str().unwrap(), "-o", applied.to_str().unwrap()]);
    assert!(a.status.success(), "{}", stderr(&a));
    let applied = unmix_io::read_wav(&applied).unwrap();
    assert_eq!(applied.frames(), frames, "apply's sources are aligned with its input");
    // Input frames of the last 5 s, from a second after the hand-over at the earliest:
    // the session's output lags by 2047.
    let lag = 2047;
    let from = (at + rate).max(frames - lag - 5 * rate);
    for s in 0..2 {
        let live = &recorded.channel(s)[from + lag..];
        let corr = unmix_dsp::metrics::pearson(live, &applied.channel(s)[from..frames - lag]).abs();
        assert!(corr > 0.99, "source {}: |corr| {corr:.4} between the session's and apply's", s + 1);
    }

    #[rustfmt::skip]
    let o = alsa.unmix(&[
        "live", "--input", "filecap", "--channels", "4", "-n", "2", "--domain", "stft", "--online-only",
        "--duration", &format!("{}s", frames / rate), "--rate", "16000", "--ring-seconds", "20",
        "--record", record.to_str().unwrap(), "--report", report.to_str().unwrap(), "--force", "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["separator"], "online_iva");
    let mut online = unmix_freq::OnlineIva::new(4, 2, online_config).unwrap();
    online.process(input, &mut want);
    let recorded = unmix_io::read_wav(&record).unwrap();
    assert_eq!(recorded.interleaved(), &want[..], "live output differs from the online separator offline");

    // Started from a room's model fitted on the same recording offline: the channels
    // come from the model, and the recording is `starting_from` its demixing run offline.
    let wav = dir.path().join("room.wav");
    unmix_io::write_wav_f32(&wav, &room.mixture).unwrap();
    let fitted = dir.path().join("fitted");
    #[rustfmt::skip]
    let o = crate::util::unmix(&[
        "separate", wav.to_str().unwrap(), "-n", "2", "--domain", "stft", "--stft-spatial-iterations", "0",
        "-o", fitted.to_str().unwrap(), "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let room_model = fitted.join("model.unmix");
    #[rustfmt::skip]
    let o = alsa.unmix(&[
        "live", "--input", "filecap", "-n", "2", "--domain", "stft", "--model", room_model.to_str().unwrap(),
        "--duration", &format!("{}s", frames / rate), "--ring-seconds", "20",
        "--record", record.to_str().unwrap(), "--force", "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let unmix_format::AnyModel::Room(loaded) = unmix_format::AnyModel::load(&room_model).unwrap() else {
        panic!("separate --domain stft writes a room's model");
    };
    let demixing = unmix_freq::stored_complex(&loaded.demixing);
    let mut started = unmix_freq::OnlineIva::starting_from(4, 2, unmix_freq::OnlineConfig::DEFAULT, &demixing).unwrap();
    started.process(room.mixture.interleaved(), &mut want);
    let recorded = unmix_io::read_wav(&record).unwrap();
    assert_eq!(recorded.interleaved(), &want[..], "live from a room's model differs from starting_from offline");

    // The model the first session saved has a spatial model: a session given it runs that
    // fixed from the first frame, as `apply` does (the same samples offline through
    // `OnlineIva::spatial`), and with --adapt the online separator from its demixing.
    let unmix_format::AnyModel::Room(saved_room) = unmix_format::AnyModel::load(&saved).unwrap() else {
        panic!("a session in a room saves a room's model");
    };
    let filter = unmix_freq::room_spatial_filter(&saved_room).expect("the hand-over's model has a spatial model");
    let config = unmix_freq::OnlineConfig::DEFAULT;
    let mut fixed = vec![0.0f32; frames * 2];
    unmix_freq::OnlineIva::spatial(4, 2, config, &filter).unwrap().process(room.mixture.interleaved(), &mut fixed);
    let mut adapted = vec![0.0f32; frames * 2];
    unmix_freq::OnlineIva::starting_from(4, 2, config, &unmix_freq::stored_complex(&saved_room.demixing))
        .unwrap()
        .process(room.mixture.interleaved(), &mut adapted);
    let duration = format!("{}s", frames / rate);
    for (extra, want, what) in [(None, &fixed, "the spatial model"), (Some("--adapt"), &adapted, "--adapt")] {
        #[rustfmt::skip]
        let mut args = vec![
            "live", "--input", "filecap", "-n", "2", "--domain", "stft", "--model", saved.to_str().unwrap(),
            "--duration", &duration, "--ring-seconds", "20",
            "--record", record.to_str().unwrap(), "--report", report.to_str().unwrap(), "--force", "--stats",
        ];
        args.extend(extra);
        let o = alsa.unmix(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let stats = String::from_utf8_lossy(&o.stdout).to_string();
        let label = if extra.is_none() { "separator: a room's spatial model, fixed," } else { "separator: online IVA" };
        assert!(stats.contains(label), "{stats}");
        let fixed_said = stderr(&o).contains("separating by the room's spatial model as the input arrives (fixed");
        assert_eq!(fixed_said, extra.is_none(), "{}", stderr(&o));
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        let kind = if extra.is_none() { "room_model_fixed" } else { "online_iva_from_room_model" };
        assert_eq!(r["separator"], kind);
        let recorded = unmix_io::read_wav(&record).unwrap();
        assert_eq!(recorded.interleaved(), &want[..], "live from a room's model differs from {what} offline");
    }
    assert_ne!(fixed, adapted);

    let model = dir.path().join("m.unmix");
    let o = alsa.unmix(&["live", "--input", "filecap", "-n", "2", "--model", room_model.to_str().unwrap()]);
    assert!(!o.status.success() && stderr(&o).contains("run it with --domain stft"), "{}", stderr(&o));
    let o = alsa.unmix(&[
        "live",
        "--input",
        "filecap",
        "-n",
        "3",
        "--domain",
        "stft",
        "--model",
        room_model.to_str().unwrap(),
    ]);
    assert!(!o.status.success() && stderr(&o).contains("a room's model of 2 sources, not -n 3"), "{}", stderr(&o));
    for (extra, why) in [
        (vec!["--save-model", model.to_str().unwrap(), "--online-only"], "--save-model: --online-only fits no"),
        (
            vec!["--save-model", model.to_str().unwrap(), "--model", room_model.to_str().unwrap()],
            "--save-model: a session started from a room's --model fits no",
        ),
        (vec!["--refit", "2s"], "refits do not apply"),
        (vec!["--online-only", "--model", room_model.to_str().unwrap()], "--online-only: a room's --model"),
        (vec!["--adapt"], "--adapt: starts from a room's --model"),
        (vec!["--forgetting", "1"], "--forgetting 1: a factor between 0 and 1"),
        (vec!["--stft-hop", "300"], "an STFT hop of 300 samples"),
    ] {
        let mut args = vec!["live", "--input", "filecap", "--channels", "4", "-n", "2", "--domain", "stft"];
        args.extend(extra);
        let o = alsa.unmix(&args);
        assert!(!o.status.success());
        assert!(stderr(&o).contains(why), "{}", stderr(&o));
    }
}

/// An array on inputs 2, 4 and 5 of a five-channel interface, the others carrying
/// something else: a model trained on those channels of a recording (`separate
/// --channels 2,4-5`) opens the device wide enough and keeps the same channels without
/// being told, and separates exactly as `apply` does on the recording.
#[test]
fn live_keeps_the_device_channels_the_model_was_trained_on() {
    let dir = tempfile::tempdir().unwrap();
    let rate = 48_000;
    let data =
        generate(&SynthConfig { frames: rate, sample_rate_hz: rate as u32, ..SynthConfig::paper(MixKind::Linear, 2) })
            .unwrap();
    let mut wide = Vec::with_capacity(rate * 5);
    for (t, frame) in data.mixture.interleaved().chunks_exact(3).enumerate() {
        let hum = (t as f32 * 0.05).sin();
        wide.extend_from_slice(&[hum, frame[0], -hum, frame[1], frame[2]]);
    }
    let recording = dir.path().join("interface.wav");
    let alsa = FileCapture::new(&wide);
    unmix_io::write_wav_f32(&recording, &unmix_core::Recording::from_interleaved(rate as u32, 5, wide).unwrap())
        .unwrap();
    let out = dir.path().join("sep");
    #[rustfmt::skip]
    let o = unmix(&[
        "separate", recording.to_str().unwrap(), "-n", "3", "--channels", "2,4-5", "-o", out.to_str().unwrap(),
        "--quiet", "--no-plots",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let model = out.join("model.unmix");

    let record = dir.path().join("live.wav");
    #[rustfmt::skip]
    let o = alsa.unmix(&[
        "live", "--input", "filecap", "-n", "3", "--model", model.to_str().unwrap(), "--duration", "1s",
        "--rate", "48000", "--record", record.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("using device channels 2,4-5 as the model was trained"), "{err}");
    assert!(err.contains("input alsa:filecap: channels 2, 4, 5 of 5, 48000 Hz"), "{err}");
    let offline = dir.path().join("offline.wav");
    let a = unmix(&["apply", model.to_str().unwrap(), recording.to_str().unwrap(), "-o", offline.to_str().unwrap()]);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(read(&record), read(&offline), "live output differs from offline apply");

    // Two channels picked the wrong way round: every window raises an alert as it closes,
    // and the session ends with the summary.
    let scores = dir.path().join("swapped.csv");
    #[rustfmt::skip]
    let o = alsa.unmix(&[
        "live", "--input", "filecap", "-n", "3", "--model", model.to_str().unwrap(), "--pick", "2,5,4",
        "--duration", "1s", "--rate", "48000", "--scores", scores.to_str().unwrap(), "--window-s", "0.25", "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let alerts: Vec<&str> = err.lines().filter(|l| l.starts_with("alert: window at ")).collect();
    assert_eq!(alerts.len(), 4, "{err}");
    assert!(alerts[0].starts_with("alert: window at 0.00 s: outlier shares log-prior "), "{err}");
    assert!(err.contains("monitoring: 4 windows; ") && err.contains("4 above 0.05, the first at 0.00 s"), "{err}");

    // `--pick` overrides the model's channels, and must still give it as many.
    let o = alsa.unmix(&["live", "--input", "filecap", "-n", "3", "--model", model.to_str().unwrap(), "--pick", "1-4"]);
    assert_clean_failure(&o, "filecap", "the model expects 3 channels, the input has 4");
    assert!(!stderr(&o).contains("as the model was trained"), "{}", stderr(&o));
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
    // An earlier take is not replaced by accident: refused before the device opens.
    std::fs::write(&record, b"an earlier take").unwrap();
    let o = alsa.unmix(&["live", "--input", "filecap", "--channels", "2", "-n", "2", "--record", rec]);
    assert_clean_failure(&o, "never.wav", "already exists (--record); pass --force to overwrite");
    assert_eq!(std::fs::read(&record).unwrap(), b"an earlier take");
    let scores = dir.path().join("scores.csv");
    let o = alsa.unmix(&[
        "live",
        "--input",
        "filecap",
        "--channels",
        "2",
        "-n",
        "2",
        "--scores",
        scores.to_str().unwrap(),
        "--report",
        scores.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, "scores.csv", "given to two options (the second is --report)");
}

/// The paper's linear 3 × 3 benchmark, `seconds` long at 48 kHz, as `dir/mixture.wav`.
#[cfg(feature = "jack")]
fn jack_mixture(dir: &Path, seconds: usize, seed: u64) -> (unmix_synth::Synth, PathBuf) {
    let data = generate(&SynthConfig {
        frames: 48_000 * seconds,
        sample_rate_hz: 48_000,
        ..SynthConfig::paper(MixKind::Linear, seed)
    })
    .unwrap();
    let mixture = dir.join("mixture.wav");
    unmix_io::write_wav_f32(&mixture, &data.mixture).unwrap();
    (data, mixture)
}

/// Frames per JACK period in the tests' servers.
#[cfg(feature = "jack")]
const JACK_PERIOD: usize = 256;

/// A JACK server of the test's own (dummy driver, real-time paced), stopped on drop; one
/// at a time (see [`one_device_test_at_a_time`]).
#[cfg(feature = "jack")]
struct JackServer {
    name: String,
    child: std::process::Child,
    /// The server's own output, where it reports every xrun.
    log: tempfile::NamedTempFile,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

#[cfg(feature = "jack")]
impl JackServer {
    fn start() -> Self {
        Self::start_at(48_000)
    }

    /// A server running at `rate` Hz.
    fn start_at(rate: u32) -> Self {
        let guard = one_device_test_at_a_time();
        // Each server of a run has its own name, so one that is slow to go away is never
        // reused; the names repeat from run to run on purpose. JACK keeps a machine-wide
        // registry of 8 servers and frees an entry only when its server exits with no
        // client attached (the vanishing-server test, or a test that fails mid-session,
        // leaves one behind) or when a server of the same name starts again: names unique
        // per process would fill the registry after a few runs and no server would start.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("unmix-test-{n}");
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new("jackd")
            // A client timeout of 5 s instead of 0.5 s: a client slowed down by a busy machine
            // is reported as an xrun, not thrown out of the graph.
            .args([
                "-n",
                &name,
                "--no-realtime",
                "-t",
                "5000",
                "-d",
                "dummy",
                "-r",
                &rate.to_string(),
                "-p",
                &JACK_PERIOD.to_string(),
            ])
            .env("JACK_NO_AUDIO_RESERVATION", "1")
            .stdout(log.reopen().unwrap())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("jackd runs (apt install jackd2)");
        let log_path = log.path().to_owned();
        wait_for_jack_port(&name, "system:playback_1", &mut child, |_| {
            std::fs::read_to_string(&log_path).unwrap_or_default()
        });
        Self { name, child, log, _one_at_a_time: guard }
    }

    /// Cycles in which a client had not finished in time, as the server logged them. In
    /// such a cycle a late client's output ports keep the previous period's samples, so its
    /// readers see one period twice, or, caught mid-write, some ports hold the new period
    /// and others the old one.
    fn xruns(&self) -> usize {
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        log.lines().filter(|l| l.contains("XRun")).count()
    }

    /// Starts `unmix live` on this server's input ports, three channels into three
    /// sources, with `args` added.
    fn live(&self, args: &[&str]) -> std::process::Child {
        let mut all = vec!["live", "--input", "jack:cpal_client_in", "--channels", "3", "-n", "3"];
        all.extend_from_slice(args);
        self.unmix(&all)
    }

    /// Starts `unmix play` on `mixture` (three channels) and connects it to the three input
    /// ports of `live`, an `unmix live` already running on this server.
    fn play_into_live(&self, live: &mut std::process::Child, mixture: &Path) -> std::process::Child {
        self.play_channels_into_live(live, mixture, 3)
    }

    /// [`play_into_live`](Self::play_into_live) for a mixture of `channels` channels.
    fn play_channels_into_live(
        &self,
        live: &mut std::process::Child,
        mixture: &Path,
        channels: usize,
    ) -> std::process::Child {
        let last = channels - 1;
        self.wait_for_port(&format!("cpal_client_in:in_{last}"), live);
        let mut player = self.unmix(&["play", mixture.to_str().unwrap(), "--output", "jack:cpal_client_out"]);
        self.wait_for_port(&format!("cpal_client_out:out_{last}"), &mut player);
        for i in 0..channels {
            let o =
                self.tool("jack_connect", &[&format!("cpal_client_out:out_{i}"), &format!("cpal_client_in:in_{i}")]);
            assert!(o.status.success(), "jack_connect: {}", String::from_utf8_lossy(&o.stderr));
        }
        player
    }

    /// SIGTERM first, so the server removes its shared memory and semaphores; SIGKILL only
    /// if it does not go. Nothing if it has already gone.
    fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn tool(&self, program: &str, args: &[&str]) -> Output {
        jack_tool(&self.name, program, args)
    }

    /// Waits for `port`, which the `unmix` child `owner` is to register; see
    /// [`wait_for_jack_port`].
    fn wait_for_port(&self, port: &str, owner: &mut std::process::Child) {
        wait_for_jack_port(&self.name, port, owner, |child| {
            let mut said = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut said);
            }
            said
        });
    }

    fn unmix(&self, args: &[&str]) -> std::process::Child {
        Command::new(env!("CARGO_BIN_EXE_unmix"))
            .args(args)
            .env("JACK_DEFAULT_SERVER", &self.name)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the unmix binary runs")
    }
}

/// Runs a JACK command-line tool against the server named `server`.
#[cfg(feature = "jack")]
/// Runs a JACK tool against `server`, killed after 15 s: a client of a server that another
/// test's server going away has wedged can block for ever (a CI run hung in `jack_lsp`),
/// and a killed tool reads as a failed one.
fn jack_tool(server: &str, program: &str, args: &[&str]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .env("JACK_DEFAULT_SERVER", server)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("JACK tools run");
    let started = std::time::Instant::now();
    while child.try_wait().expect("JACK tools run").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(15) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("JACK tools run")
}

/// Waits for `port` on the JACK server `server` as long as the harness waits for anything
/// (`wait_for`'s 60 s; with 200 polls of `jack_lsp`, about 10 s, a clean-clone CI run once
/// failed on two cores shared by several dummy servers, and three reruns passed). If
/// `owner`, the process that is to register the port, exits first, the test fails at once
/// with its exit status and what it said (`said` reads it), not a bare timeout.
#[cfg(feature = "jack")]
/// Waits for `child` to end, at most `limit_s` seconds after `started`; past that it is
/// killed and the test fails naming `what`.
fn wait_ending(
    child: &mut std::process::Child,
    started: std::time::Instant,
    limit_s: u64,
    what: &str,
) -> std::process::ExitStatus {
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed().as_secs() >= limit_s {
            let _ = child.kill();
            panic!("{what} did not end within {limit_s} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn wait_for_jack_port(
    server: &str,
    port: &str,
    owner: &mut std::process::Child,
    said: impl FnOnce(&mut std::process::Child) -> String,
) {
    let listed =
        || String::from_utf8_lossy(&jack_tool(server, "jack_lsp", &[]).stdout).lines().any(|l| l.trim() == port);
    let owner = std::cell::RefCell::new(owner);
    let exited = std::cell::Cell::new(None);
    // The port first: an owner that registered it and then ended is not a failure here.
    let appeared = wait_for(|| {
        listed() || {
            exited.set(owner.borrow_mut().try_wait().ok().flatten());
            exited.get().is_some()
        }
    });
    if let (Some(status), false) = (exited.get(), listed()) {
        panic!("JACK port {port} never appeared: its owner exited first ({status}): {}", said(owner.into_inner()));
    }
    assert!(appeared, "JACK port {port} never appeared in 60 s");
}

#[cfg(feature = "jack")]
impl Drop for JackServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// End to end through a real-time JACK server: `unmix play` plays a known 3×3 linear
/// mixture into `unmix live`'s input ports while it warms up, trains, swaps the model in
/// and records. After the warm-up every recorded frame is, bit for bit, the saved model
/// applied offline to one frame of the mixture, at one constant offset (the time between
/// the two clients starting), and the recorded sources match the truth (|corr| ≥ 0.99).
/// The only exceptions allowed are the ones the two clients and the server account for:
/// silence the player reports it played (its ring ran dry) and periods the server logs
/// as xruns.
#[cfg(feature = "jack")]
#[test]
fn live_through_jack_warms_up_and_separates_what_it_hears() {
    let dir = tempfile::tempdir().unwrap();
    let rate = 48_000usize;
    // 31 s: the player starts after live, so it plays until live has recorded its 30 s,
    // then ends on its own and reports its underruns.
    let (data, mixture) = jack_mixture(dir.path(), 31, 4);
    let (record, model, report) = (dir.path().join("live.wav"), dir.path().join("m.unmix"), dir.path().join("r.json"));

    let jack = JackServer::start();
    let mut live = jack.live(&[
        "--warmup",
        "3s",
        "--duration",
        "30s",
        "--rate",
        "48000",
        "--record",
        record.to_str().unwrap(),
        "--save-model",
        model.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        "--quiet",
    ]);
    let mut player = jack.play_into_live(&mut live, &mixture);
    let started = std::time::Instant::now();
    let status = wait_ending(&mut live, started, 180, "unmix live");
    let out = live.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_ending(&mut player, started, 180, "unmix play");
    let played = player.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&played.stderr);
    assert!(played.status.success(), "unmix play: {said}");
    // "played F frames on DEVICE (U frames of silence where the file did not keep up)"
    let underruns: usize = said
        .split_once('(')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("unmix play's report: {said}"));

    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["end"], "duration");
    assert_eq!(r["status"]["frames_out"], 30 * rate);
    let first = r["first_model_frame"].as_u64().expect("the warm-up model was swapped in") as usize;
    assert!(first >= 3 * rate);

    let offline = dir.path().join("offline.wav");
    let a = unmix(&["apply", model.to_str().unwrap(), mixture.to_str().unwrap(), "-o", offline.to_str().unwrap()]);
    assert!(a.status.success(), "{}", stderr(&a));
    // What live makes of a silent input frame: the model applied to a zero frame (after
    // two frames of the mixture, so the file is no constant input).
    let silent_in = dir.path().join("silent-in.wav");
    let mut frames = data.mixture.interleaved()[..6].to_vec();
    frames.extend([0.0; 3]);
    unmix_io::write_wav_f32(&silent_in, &unmix_core::Recording::from_interleaved(48_000, 3, frames).unwrap()).unwrap();
    let silent_out = dir.path().join("silent-out.wav");
    let a = unmix(&["apply", model.to_str().unwrap(), silent_in.to_str().unwrap(), "-o", silent_out.to_str().unwrap()]);
    assert!(a.status.success(), "{}", stderr(&a));
    let (recorded, offline) = (read(&record), read(&offline));
    let key = |f: &[f32]| -> [u32; 3] { [f[0].to_bits(), f[1].to_bits(), f[2].to_bits()] };
    let silence = key(read(&silent_out).frame(2));
    let index: std::collections::HashMap<[u32; 3], usize> =
        offline.interleaved().chunks_exact(3).enumerate().map(|(i, f)| (key(f), i)).collect();
    // Every recorded frame maps to one mixture frame at a constant offset, with two
    // accounted exceptions. The player's ring ran dry: a run of silence, after which the
    // file goes on where it stopped (the offset grows by the run's length), at most as
    // many silent frames as the player reports. A period the server reports as an xrun
    // (here only under heavy load): it repeats, or is silent, and the offset moves by
    // whole periods, at most once per xrun; or live read it while the late player was
    // still writing its ports, and its channels come from two different periods (a torn
    // period: frames of no single mixture frame), at most one period per xrun.
    let (mut offset, mut moves, mut silent, mut run) = (None, 0, 0, 0);
    let mut torn_periods = std::collections::BTreeSet::new();
    let mut source_frame = Vec::new();
    let mut source_at = Vec::new();
    let xruns = jack.xruns();
    let log = || format!("{xruns} xruns logged, the player reports {underruns} frames of silence");
    for (k, frame) in recorded.interleaved().chunks_exact(3).enumerate().skip(first) {
        let Some(&j) = index.get(&key(frame)) else {
            if key(frame) == silence {
                (silent, run) = (silent + 1, run + 1);
            } else {
                torn_periods.insert(k / JACK_PERIOD);
            }
            continue;
        };
        let lag = k as i64 - j as i64;
        let last = *offset.get_or_insert(lag);
        if lag != last && lag - last != run {
            assert_eq!(
                (lag - last) % JACK_PERIOD as i64,
                0,
                "frame {k}: the offset moved by part of a period ({})",
                log()
            );
            moves += 1;
        }
        (offset, run) = (Some(lag), 0);
        source_frame.push(j);
        source_at.push(k);
    }
    assert!(
        moves <= xruns && silent <= underruns + xruns * JACK_PERIOD && torn_periods.len() <= xruns,
        "the offset moved {moves} times, {silent} frames were silent and {} periods held frames that \
         are neither a frame of the mixture nor silence {:?}: {} (a lost, repeated or garbled frame)",
        torn_periods.len(),
        torn_periods.iter().take(8).map(|p| p * JACK_PERIOD).collect::<Vec<_>>(),
        log()
    );
    let est: Vec<Vec<f32>> = (0..3).map(|c| source_at.iter().map(|&k| recorded.frame(k)[c]).collect()).collect();
    let truth: Vec<Vec<f32>> =
        (0..3).map(|c| source_frame.iter().map(|&j| data.truth.interleaved()[j * 3 + c]).collect()).collect();
    let s = unmix_dsp::metrics::score(&truth, &est).unwrap();
    assert!(s.min_abs_corr >= 0.99, "{s:?}");
}

/// End to end through a real-time JACK server at 16 kHz: `unmix play` plays two talkers
/// in a simulated room (RT60 0.2 s, two microphones 5 cm apart, 18 s after 2 s of
/// silence) into `unmix live --domain stft`, which separates from the first frame, the
/// room's model of the first 3 s in which both ports carry sound taking over once fitted.
/// The recorded sources add up to the reference microphone (projection back, and the
/// spatial model's Wiener filters, with as many sources as microphones are exact), which
/// places each recorded second on the mixture's time line (the place moves only by what
/// an xrun explains); after 5 s of speech the sources are each talker's image, well
/// above the microphone.
#[cfg(feature = "jack")]
#[test]
fn live_through_jack_separates_a_room_in_the_stft_domain() {
    use unmix_synth::room::{RoomConfig, simulate_room};
    let dir = tempfile::tempdir().unwrap();
    let rate = 16_000usize;
    let speech = crate::util::speech_dir();
    let clips: Vec<Vec<f32>> =
        (1..=3).map(|k| unmix_io::read_wav(&speech.join(format!("talker{k}.wav"))).unwrap().channel(0)).collect();
    // Each talker reads the three sentences in turn, from a different one.
    let dry: Vec<Vec<f32>> =
        (0..2).map(|k| (0..3).flat_map(|i| clips[(k + i) % 3].iter().copied()).collect()).collect();
    let room = simulate_room(&RoomConfig::drawn(1, 2, 2, 0.05, 0.2, rate as u32), &dry).unwrap();
    // The file starts with 2 s of digital silence, so that the player's ports are all
    // connected (one by one) before the talkers speak: the online separator learns
    // nothing from silence, but a microphone that joins after the others steers its start
    // badly (docs/limitations.md).
    let lead = 2 * rate;
    let mut samples = vec![0.0f32; lead * 2];
    samples.extend_from_slice(room.mixture.interleaved());
    let mixture = dir.path().join("room.wav");
    unmix_io::write_wav_f32(&mixture, &unmix_core::Recording::from_interleaved(rate as u32, 2, samples).unwrap())
        .unwrap();
    let (record, report) = (dir.path().join("live.wav"), dir.path().join("r.json"));

    let jack = JackServer::start_at(rate as u32);
    #[rustfmt::skip]
    let mut live = jack.unmix(&[
        "live", "--input", "jack:cpal_client_in", "--channels", "2", "-n", "2", "--domain", "stft",
        "--duration", "22s", "--rate", "16000", "--record", record.to_str().unwrap(),
        "--report", report.to_str().unwrap(), "--quiet",
    ]);
    let mut player = jack.play_channels_into_live(&mut live, &mixture, 2);
    let started = std::time::Instant::now();
    let status = wait_ending(&mut live, started, 120, "unmix live");
    let out = live.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let _ = player.kill();
    let _ = player.wait();
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["end"], "duration");
    assert_eq!(r["first_model_frame"], 0);
    assert_eq!(r["latency_frames"], 2047);
    // The room's model of the first 3 s in which both ports carried sound took over (its
    // fit takes about a second; the talkers start after 2 s of digital silence).
    let at = r["room_model_frame"].as_u64().unwrap_or_else(|| panic!("no hand-over: {r}")) as usize;
    assert!(at > lead + 3 * rate, "the room's model took over at frame {at}, before 3 s of sound");

    let recorded = read(&record);
    let reference = room.mixture.channel(0);
    let sum: Vec<f32> = recorded.interleaved().chunks_exact(2).map(|f| f[0] + f[1]).collect();
    // The sources add up to the reference microphone, delayed by a lag that places the
    // recording on the mixture's time line. An xrun moves that lag by whole periods (a
    // period repeated or skipped) or garbles one period (read while the player was still
    // writing its ports): so each second of the mixture, from the reference microphone's
    // first word, is placed by its own lag, searched for again when the last one no
    // longer fits.
    let peak = reference.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let onset = |x: &[f32]| x.iter().position(|v| v.abs() > 0.05 * peak).expect("speech");
    let (j0, k0) = (onset(&reference), onset(&sum));
    assert!(k0 > j0, "the recording starts before the mixture");
    let mean_energy = reference.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / reference.len() as f64;
    // Whether `lag` places the second from `a`: the sum's misfit under 1e-6 of the
    // second's energy (floored where the talkers pause), given up as soon as it is above.
    let fits = |a: usize, lag: usize| -> bool {
        let energy: f64 = reference[a..a + rate].iter().map(|&v| f64::from(v).powi(2)).sum();
        let bound = 1e-6 * energy.max(1e-2 * mean_energy * rate as f64);
        let mut misfit = 0.0;
        for (j, &r) in reference[a..a + rate].iter().enumerate() {
            let Some(&s) = sum.get(a + j + lag) else { return false };
            misfit += f64::from(s - r).powi(2);
            if misfit >= bound {
                return false;
            }
        }
        true
    };
    let xruns = jack.xruns();
    let (mut lag, mut placed, mut unplaced) = (None::<usize>, Vec::new(), 0);
    for a in (j0..reference.len().saturating_sub(rate)).step_by(rate) {
        let near = lag.unwrap_or(k0 - j0);
        if a + near + rate > sum.len() {
            break; // the recording ends before this second
        }
        let found = lag.filter(|&l| fits(a, l)).or_else(|| {
            // A skipped period moves the lag back by one, a repeated one on by one.
            (near.saturating_sub(2 * JACK_PERIOD)..near + rate).find(|&l| fits(a, l))
        });
        match found {
            Some(l) => {
                lag = Some(l);
                placed.push((a, l));
            }
            None if placed.is_empty() => {
                panic!("the sources do not add up to the microphone at any lag near {near} ({xruns} xruns)")
            }
            None => unplaced += 1,
        }
    }
    // A second broken by an xrun fits no one lag; without xruns every second fits, at one lag.
    assert!(
        unplaced <= 2 * xruns,
        "{unplaced} seconds of the recording are not the microphone at any lag ({xruns} xruns logged)"
    );
    if xruns == 0 {
        assert!(placed.iter().all(|&(_, l)| l == placed[0].1), "the lag moved without an xrun: {placed:?}");
    }
    let first_lag = placed[0].1;
    assert!(first_lag >= 2047, "the sources came {first_lag} frames after the input, less than the STFT's latency");

    // Every placed second from 5 s of the mixture on.
    let later: Vec<(usize, usize)> = placed.iter().copied().filter(|&(a, _)| a >= 5 * rate).collect();
    assert!(later.len() >= 5, "only {} seconds placed after the first 5 s: {placed:?}", later.len());
    let truth: Vec<Vec<f32>> = (0..2)
        .map(|j| later.iter().flat_map(|&(a, _)| room.truth.channel(j)[a..a + rate].to_vec()).collect())
        .collect();
    let recorded = &recorded;
    let est: Vec<Vec<f32>> = (0..2)
        .map(|j| later.iter().flat_map(|&(a, l)| (a + l..a + l + rate).map(move |t| recorded.frame(t)[j])).collect())
        .collect();
    let microphone: Vec<f32> = later.iter().flat_map(|&(a, _)| reference[a..a + rate].to_vec()).collect();
    let s = unmix_dsp::metrics::score(&truth, &est).unwrap();
    let gain = s
        .sources
        .iter()
        .map(|p| p.si_sdr_db - unmix_dsp::metrics::si_sdr_db(&truth[p.truth], &microphone))
        .sum::<f64>()
        / 2.0;
    assert!(gain > 5.0, "a mean SI-SDR gain of {gain:.1} dB over the microphone after 5 s: {s:?}");
}

/// Ctrl-C (SIGINT) ends a session that has no `--duration` (here on the paced JACK
/// server, so the recording stays small): every thread joins, the recording is a valid
/// WAV, the statistics are printed, the exit is clean.
#[cfg(feature = "jack")]
#[test]
fn ctrl_c_stops_a_live_session_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = generate(&SynthConfig { frames: 4000, ..SynthConfig::paper(MixKind::Linear, 3) }).unwrap();
    let mixture = dir.path().join("mixture.wav");
    unmix_io::write_wav_f32(&mixture, &data.mixture).unwrap();
    let model = separate_model(dir.path(), &mixture);
    let record = dir.path().join("live.wav");
    let jack = JackServer::start();
    let mut child =
        jack.live(&["--quiet", "--stats", "--model", model.to_str().unwrap(), "--record", record.to_str().unwrap()]);
    jack.wait_for_port("cpal_client_in:in_2", &mut child);
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("stopped:"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("processing load"));
    let recorded = read(&record);
    assert_eq!(recorded.channels(), 3);
    assert!(recorded.frames() > 10_000, "{} frames in about a second at 48 kHz", recorded.frames());
}

/// The JACK server going away in the middle of a session (JACK's unplug) ends `unmix live`
/// and `unmix play` with a one-line error naming the device, a non-zero exit and — for
/// live — the recording finalised as a valid WAV; neither waits forever.
#[cfg(feature = "jack")]
#[test]
fn a_vanishing_jack_server_ends_live_and_play_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mixture) = jack_mixture(dir.path(), 60, 2);
    let record = dir.path().join("live.wav");
    let mut jack = JackServer::start();
    let mut live = jack.live(&["--warmup", "2s", "--record", record.to_str().unwrap(), "--quiet"]);
    let player = jack.play_into_live(&mut live, &mixture);
    std::thread::sleep(std::time::Duration::from_secs(3));
    let stopped = std::time::Instant::now();
    jack.stop();
    let (live, player) = (live.wait_with_output().unwrap(), player.wait_with_output().unwrap());
    assert!(stopped.elapsed().as_secs() < 30, "the sessions took {:?} to end", stopped.elapsed());
    // live names the server's shutdown; play says so too, or — if the notification trails
    // its last callback by more than half a second — that the device stopped taking samples.
    for (what, out, device, says) in [
        ("live", &live, "jack:cpal_client_in", "shut down"),
        ("play", &player, "jack:cpal_client_out", "the device went away"),
    ] {
        assert!(!out.status.success(), "{what} exited cleanly after losing its device");
        let err = stderr(out);
        let last = err.lines().last().unwrap_or_default();
        assert!(last.starts_with("error:") && last.contains(device) && last.contains(says), "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
    assert!(stderr(&live).contains("recording was finalised"));
    let recorded = read(&record);
    assert_eq!(recorded.channels(), 3);
    assert!(recorded.frames() >= 48_000, "{} frames recorded", recorded.frames());
}
