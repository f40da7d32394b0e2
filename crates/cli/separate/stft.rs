//! `unmix separate --domain stft`: a reverberant recording separated in the frequency
//! domain (`unmix_freq`), each source written as its image at the first channel, and the
//! room's model for `apply` and `live`. A stream on the standard input is fitted on its
//! head, and the whole stream then separated by the model's fixed filters as it arrives.

use std::cell::RefCell;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use unmix_core::limits::MAX_BUFFERED_SAMPLES;
use unmix_core::{CancelToken, Recording, plural};
use unmix_format::RoomModel;
use unmix_io::{input_name, is_stdin};
use unmix_separate::SourceCount;

use super::{Outcome, SeparateArgs, check_truth};
use crate::output::Staging;
use crate::progress::{RoomSteps, Step, StepBar};
use crate::score;

const OUTPUTS: [&str; 3] = ["sources.wav", "model.unmix", "report.json"];

/// Runs `separate --domain stft`.
pub(super) fn execute(args: &SeparateArgs) -> Result<Outcome> {
    let started = Instant::now();
    let input = &args.input;
    // The settings are checked before the file is read; the starts follow its length.
    args.stft_config(0.0)?;
    let SourceCount::Fixed(n) = args.sources else {
        bail!("-n auto: --domain stft needs the number of sources");
    };
    let streaming = is_stdin(input);
    if streaming {
        // Refused now rather than after the wait for the stream's head.
        Staging::refuse_existing(&args.output, &OUTPUTS, args.force)?;
    }
    let mut reader = args.input_channels.open(input, None, args.quiet)?;
    let picked = super::picked_channels(args, &reader);
    let (m, rate) = (reader.channels(), reader.sample_rate_hz());
    if m < n {
        let refused = unmix_separate::Error::TooFewChannels { channels: m, sources: n };
        bail!("{}: {refused}", input.display());
    }
    let most = MAX_BUFFERED_SAMPLES / m.max(1);
    let samples = if streaming {
        super::read_stream_head(&mut reader, stream_head_frames(args, rate).min(most), args.quiet)?
    } else {
        let mut samples = Vec::new();
        if reader.read_block(&mut samples, most + 1)? > most {
            bail!("{}: longer than the {most} frames of {m} channels --domain stft holds in memory", input.display());
        }
        samples
    };
    let recording = Recording::from_interleaved(rate, m, samples).with_context(|| input_name(input))?;
    let (stft, iva, spatial) = args.stft_config(recording.frames() as f64 / f64::from(rate))?;
    if let Some(truth) = &args.truth {
        check_truth(truth, (!streaming).then_some(recording.frames()), m, args.sources, rate)?;
    }
    let mut out = Staging::new(&args.output, &OUTPUTS, args.force)?;
    let cancel = crate::interrupt::watch()?;
    let read_s = started.elapsed().as_secs_f64();
    let bar = StepBar::new(!args.quiet);
    let picked = picked.as_ref().map(ToString::to_string);
    let fitted = fit_room(&input_name(input), &recording, args, n, picked, &cancel, &mut |step| bar.show(step));
    bar.finish();
    let fitted = fitted?;
    let (model, separate_s) = (&fitted.model, started.elapsed().as_secs_f64() - read_s);
    let sources_path = out.path("sources.wav");
    model.save(&out.path("model.unmix")).with_context(|| input_name(input))?;
    // A file's sources are the separation's; a stream's, every frame of it through the
    // model's filters, as it arrives.
    let applied = if streaming {
        let path = out.publish("model.unmix")?;
        if !args.quiet {
            eprintln!(
                "{}: model written → {}; separating the stream as it arrives by its filters (Ctrl-C ends it, \
                 outputs complete)",
                input_name(input),
                path.display()
            );
        }
        // The filters as the model file holds them, so that `apply` on the same samples
        // gives the same sources.
        let separator = unmix_freq::room_separator(model).with_context(|| input_name(input))?;
        let outputs = [crate::apply::Output { path: &sources_path, wav_format: args.wav_format.into() }];
        let options =
            crate::apply::ApplyOptions { progress: !args.quiet, monitoring: None, kernel: unmix_infer::Kernel::best() };
        let head = recording.interleaved().to_vec();
        let stage = crate::apply::Stage::Room(Box::new(separator));
        Some(crate::apply::apply_reader(stage, input, reader, head, &outputs, &options)?)
    } else {
        unmix_io::write_wav_f32(&sources_path, &fitted.sources)?;
        None
    };
    let total_frames = applied.as_ref().map_or(recording.frames(), |a| a.frames);
    let score = match &args.truth {
        Some(truth) => Some(score::score_files(truth, &sources_path, &args.output.join("sources.wav"), rate)?),
        None => None,
    };
    let mut report = serde_json::json!({
        "input": input_name(input),
        "frames": total_frames,
        "stopped_by_ctrl_c": applied.as_ref().is_some_and(|a| a.stopped),
        "score": score,
        "timings_s": { "read": read_s, "separate": separate_s, "total": started.elapsed().as_secs_f64() },
    });
    if let serde_json::Value::Object(fields) = &mut report {
        fields.extend(fitted.report.clone());
    }
    crate::output::write_json(&out.path("report.json"), &report)?;
    // A file is abandoned by Ctrl-C; a stream's outputs are complete where it stopped.
    if !streaming {
        crate::interrupt::check()?;
    }
    let written = out.commit()?;
    if !args.quiet {
        let how = if streaming {
            format!(", fitted on its first {} and then by the model's filters", plural(recording.frames(), "frame"))
        } else {
            String::new()
        };
        println!(
            "separated {} of {} into {} in the frequency domain ({} prior, STFT {} / {}, {}{}, {:.1} s{how}), each its image at channel 1{}",
            plural(total_frames, "frame"),
            plural(m, "channel"),
            plural(n, "source"),
            iva.prior,
            stft.frame,
            stft.hop,
            plural(fitted.iterations, "iteration"),
            spatial
                .as_ref()
                .map_or(String::new(), |s| format!(", then the spatial model, {}", plural(s.iterations, "iteration"))),
            separate_s,
            applied.as_ref().map_or("", crate::apply::ending)
        );
        if let Some(s) = &score {
            print!("{}", score::table(s));
        }
        for path in written {
            println!("  {}", path.display());
        }
    }
    if let Some(e) = applied.and_then(|a| a.input_error) {
        bail!(e);
    }
    Ok(Outcome { score })
}

/// A room's model fitted on a recording in memory: the model, the sources (each its image
/// at the first channel), and report.json's fields about the fit.
pub(crate) struct RoomFit {
    pub model: RoomModel,
    pub sources: Recording,
    pub report: serde_json::Map<String, serde_json::Value>,
    /// Updates of the demixing.
    pub iterations: usize,
}

/// Fits a room's model on `recording` (named `name` in errors) for `n` sources with the
/// frequency-domain settings of `args`: the demixing, then the spatial model where asked.
/// `picked` is the channel pick `apply` repeats. `cancel` stops the fit between updates;
/// `progress` sees every update ([`RoomSteps`]).
pub(crate) fn fit_room(
    name: &str,
    recording: &Recording,
    args: &SeparateArgs,
    n: usize,
    picked: Option<String>,
    cancel: &CancelToken,
    progress: &mut dyn FnMut(Step),
) -> Result<RoomFit> {
    let (m, rate) = (recording.channels(), recording.sample_rate_hz());
    // A silent channel is named before the fit (the demixing would divide by its power).
    unmix_dsp::Normaliser::fit(recording, unmix_dsp::NormaliserConfig { whiten_to: None })
        .with_context(|| name.to_string())?;
    let (stft, iva, spatial) = args.stft_config(recording.frames() as f64 / f64::from(rate))?;
    let steps = RoomSteps::new(iva.iterations, spatial.as_ref().map_or(0, |s| s.iterations));
    // The fit tells its progress through a shared reference; the caller's is `FnMut`.
    let progress = RefCell::new(progress);
    let tell = |event| (progress.borrow_mut())(steps.step(event));
    let watch = unmix_freq::Watch { cancel: Some(cancel), progress: Some(&tell) };
    let separated = unmix_freq::separate_recording(recording, n, stft, &iva, spatial.as_ref(), 0, watch)
        .with_context(|| name.to_string())?;
    let settings = unmix_freq::RoomFitSettings {
        stft,
        separation: &iva,
        spatial: spatial.as_ref(),
        sample_rate_hz: rate,
        frames: recording.frames(),
        picked_channels: picked,
    };
    let model = unmix_freq::room_model(settings, &separated.fit, separated.spatial.as_ref())
        .with_context(|| name.to_string())?;
    let spatial_fit = model.header.training_summary["spatial_fit"].clone();
    let kind = model.header.filters;
    let report = serde_json::json!({
        "fitted_frames": recording.frames(),
        "channels": m,
        "sample_rate_hz": rate,
        "sources": n,
        "domain": "stft",
        "mixing_evidence": super::mixing_evidence(recording).map(super::evidence_json),
        "stft": stft,
        "separation": iva,
        "spatial_model": spatial,
        "spatial_fit": spatial_fit,
        "model_filters": kind,
        "reference_channel": 1,
        "iterations": separated.fit.iterations,
    });
    let serde_json::Value::Object(report) = report else { unreachable!("a JSON object literal") };
    Ok(RoomFit { model, sources: separated.sources, report, iterations: separated.fit.iterations })
}

/// Frames of a stream's head the room's model is fitted on: `--train-seconds` or
/// `--train-frames`, else 20 s (what `--stft-starts` counts as a short recording).
fn stream_head_frames(args: &SeparateArgs, rate: u32) -> usize {
    match (args.train_seconds, args.train_frames) {
        (Some(seconds), _) => (seconds * f64::from(rate)).ceil().max(1.0) as usize,
        (None, Some(frames)) => frames,
        (None, None) => 20 * rate as usize,
    }
}
