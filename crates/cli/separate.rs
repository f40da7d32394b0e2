//! `unmix separate`: train on a segment of the input, separate all of it, and write the
//! sources, the model, a report and plots.

pub(crate) mod args;
mod report;
pub(crate) mod stft;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use unmix_core::{Recording, plural};
use unmix_dsp::metrics::Score;
use unmix_freq::MixingEvidence;
use unmix_io::{BlockReader, ChannelSelection, input_name, is_stdin};
use unmix_separate::{EncoderStart, ModelKind, SourceCount};

pub use args::SeparateArgs;
pub(crate) use report::fit_json;
use report::{duration_text, report_fit};

use crate::apply::{ApplyOptions, InputArgs, Output, Stage, apply_file, apply_reader, stamps_json, warn_of_stamps};
use crate::output::Staging;
use crate::progress::TrainingBar;
use crate::{plot, score};

/// What a separation produced.
pub struct Outcome {
    /// Scores against `--truth`, if given.
    pub score: Option<Score>,
}

pub fn run(args: SeparateArgs) -> Result<Outcome> {
    execute(&args)
}

const OUTPUTS: [&str; 9] = [
    "sources.wav",
    "sources.csv",
    "model.unmix",
    "report.json",
    "training.png",
    "priors.png",
    "truth.png",
    "scores.csv",
    "scores.png",
];

/// The channels a model reads, as `apply` will pick them: `--channels`, or a time-stamp
/// column left out remembered as a pick of the others, so that `apply` reads the same
/// columns of a stream without a header.
pub(crate) fn picked_channels(args: &SeparateArgs, reader: &BlockReader) -> Option<ChannelSelection> {
    match (&args.input_channels.channels, reader.time_column()) {
        (None, Some((_, true))) => Some(ChannelSelection::from_indices(&(1..=reader.channels()).collect::<Vec<_>>())),
        (pick, _) => pick.clone(),
    }
}

/// The cross-spectral evidence of how `recording` is mixed (`None` for one channel, more
/// than 16, or where it cannot be measured: a silent or non-finite channel, which the
/// separation then names).
pub(crate) fn mixing_evidence(recording: &Recording) -> Option<MixingEvidence> {
    (recording.channels() >= 2).then(|| unmix_freq::mixing_evidence(recording).ok()).flatten()
}

/// What a recording whose cross-spectra say it is not an instantaneous mixture is warned
/// of, `name` the recording's.
pub(crate) fn convolutive_warning(name: &str, evidence: MixingEvidence) -> String {
    format!(
        "{name}: by its cross-spectra, not independent sources mixed instantaneously ({:.3} of their whitened energy \
         is left by the best real demixing, above {:.3}): the sources reach the channels at different delays, or \
         depend on one another",
        evidence.unexplained,
        evidence.threshold()
    )
}

/// The evidence as `report.json` gives it.
pub(crate) fn evidence_json(evidence: MixingEvidence) -> serde_json::Value {
    serde_json::json!({
        "unexplained": evidence.unexplained,
        "imaginary": evidence.imaginary,
        "threshold": evidence.threshold(),
        "convolutive": evidence.convolutive(),
        "stft_frames": evidence.frames,
        "stft_frame": evidence.frame,
    })
}

/// Runs a whole separation job.
pub fn execute(args: &SeparateArgs) -> Result<Outcome> {
    if args.domain == args::DomainArg::Stft {
        return stft::execute(args);
    }
    let started = Instant::now();
    // An encoder kernel this processor lacks is refused before anything is read.
    args.kernel.kernel()?;
    let input = &args.input;
    // A stream cannot be read twice: its head is kept for the separation, which then goes
    // on with the rest of it.
    let streaming = is_stdin(input);
    if streaming {
        // Refused now rather than after the wait for the training segment.
        Staging::refuse_existing(&args.output, &OUTPUTS, args.force)?;
    }
    // 1. The training segment: the head of the input. The configuration needs the sample
    // rate (for --train-seconds), so it is made once the header is known.
    let mut reader = args.input_channels.open(input, None, args.quiet)?;
    let picked = picked_channels(args, &reader);
    let stamps = reader.stamp_log();
    let config = args.config(reader.sample_rate_hz())?;
    // Too many channels, or a segment beyond the memory bound, is refused before the
    // segment is read.
    let max_train_frames = config.training_frames(reader.channels()).with_context(|| input_name(input))?;
    let kernel = config.params().kernel;
    // Monitoring settings are checked now, not after minutes of training (or of waiting
    // for a stream's head).
    if args.scores {
        let most_sources = match config.params().sources {
            SourceCount::Fixed(n) => n,
            SourceCount::Auto { max } => max.unwrap_or(usize::MAX).min(reader.channels()),
        };
        args.windows.to(PathBuf::new())?.spec(reader.sample_rate_hz())?.check_for(most_sources)?;
    }
    // Ctrl-C stops training at its next epoch, or the separation where it is, and the job
    // then ends leaving nothing in the output directory.
    let cancel = crate::interrupt::watch()?;
    let head = if streaming {
        read_stream_head(&mut reader, max_train_frames, args.quiet)?
    } else {
        let mut head = Vec::new();
        reader.read_block(&mut head, max_train_frames)?;
        head
    };
    let segment = Recording::from_interleaved(reader.sample_rate_hz(), reader.channels(), head)?;
    // A CSV's length shows only at its end, and a bad cell anywhere should stop the run
    // before minutes of training: it is read through once now, a block at a time. A
    // stream's length shows when it ends.
    let total_frames = match reader.frames_total() {
        Some(total) => Some(total),
        None if streaming => None,
        None => {
            let (mut frames, mut block) = (segment.frames(), Vec::new());
            let bar = crate::progress::frames_done("  checking the rest", None, !args.quiet);
            let total = loop {
                crate::interrupt::check()?;
                let got = reader.read_block(&mut block, 1 << 16)?;
                if got == 0 {
                    break Some(frames);
                }
                frames += got;
                bar.set_position(frames as u64);
            };
            bar.finish_and_clear();
            total
        }
    };
    // Said before the training, for a file: the user may rather fix the file first.
    if !streaming {
        warn_of_stamps(input, stamps.as_deref());
    }
    // A room's recording separated sample by sample comes out worse than its microphones:
    // its cross-spectra say so before the training does.
    let mixing = mixing_evidence(&segment);
    if let Some(evidence) = mixing.filter(MixingEvidence::convolutive) {
        let said = convolutive_warning(&input_name(input), evidence);
        eprintln!("warning: {said}; a room's recording is separated by --domain stft");
    }
    // Errors about a channel name it as the file numbers it.
    let file_channels: Vec<usize> = (0..reader.channels()).map(|k| reader.file_channel(k)).collect();
    // CSV input (a file, or rows on a stream) also gets its sources as CSV.
    let csv_input = matches!(reader, BlockReader::Csv(_));
    let stream_rest = streaming.then_some(reader);
    if let SourceCount::Fixed(n) = args.sources
        && segment.channels() < n
    {
        let refused = unmix_separate::Error::TooFewChannels { channels: segment.channels(), sources: n };
        bail!("{}: {refused}", input.display());
    }
    // The truth is checked before any training: a missing file, or one that cannot match
    // the sources, should not throw a separation away.
    if let Some(truth) = &args.truth {
        check_truth(truth, total_frames, segment.channels(), args.sources, segment.sample_rate_hz())?;
    }
    let mut out = Staging::new(&args.output, &OUTPUTS, args.force)?;
    // A stream's CSV outputs are logs in the output directory itself, as `apply -` writes.
    let csv_output = |out: &mut Staging, name: &str| if streaming { out.in_place(name) } else { out.path(name) };
    let monitoring = args.scores.then(|| args.windows.to(csv_output(&mut out, "scores.csv"))).transpose()?;
    let read_s = started.elapsed().as_secs_f64();

    // 2. Training.
    let mut bar = TrainingBar::new(&config.params().restarts, config.params().recipe.max_epochs, !args.quiet);
    let train_started = Instant::now();
    let fitted = unmix_separate::fit(&segment, &config, &cancel, &mut |p| bar.show(p));
    bar.finish();
    crate::interrupt::check()?;
    let fitted = fitted.map_err(|e| match e {
        unmix_separate::Error::Dsp(unmix_dsp::Error::ConstantChannel { channel })
            if file_channels.get(channel).is_some_and(|&c| c != channel) =>
        {
            let what = if csv_input { "column" } else { "channel" };
            anyhow::anyhow!(
                "{}: {what} {} of the file (channel {} read) is constant (silent) over the training segment; \
                 leave it out with --channels or pick another segment",
                input.display(),
                file_channels[channel] + 1,
                channel + 1
            )
        }
        unmix_separate::Error::Model(
            e @ (unmix_model::Error::Diverged { .. } | unmix_model::Error::DivergedWeights),
        ) => anyhow::anyhow!("{}: {e} than --lr {}", input.display(), args.learning_rate()),
        e => anyhow::Error::new(e).context(input.display().to_string()),
    });
    let mut fitted = fitted?;
    // `apply` reads the same channels of its input unless told otherwise.
    fitted.model.header.picked_channels = picked.as_ref().map(ToString::to_string);
    let train_s = train_started.elapsed().as_secs_f64();
    report_fit(&fitted, args.quiet);
    let gross = &fitted.gross_outliers;
    if !gross.is_empty() {
        let channels: Vec<String> = (gross.per_channel.iter().enumerate())
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| {
                format!(
                    "{} in {} {}",
                    plural(*n, "sample"),
                    if csv_input { "column" } else { "channel" },
                    file_channels[c] + 1
                )
            })
            .collect();
        eprintln!(
            "warning: {}: left {} of the training segment out of the fit (the first is frame {}, counted from 0) for \
             gross outliers, samples over {:.0e} times their channel's usual level ({}); the separation carries them \
             through",
            input_name(input),
            plural(gross.frames.len(), "frame"),
            gross.frames[0],
            unmix_dsp::outliers::GROSS_FACTOR,
            channels.join(", ")
        );
    }
    let (model, vae) = (&fitted.model, fitted.vae.as_ref());
    let selection = &fitted.selection;
    let training_frames = report::training_frames(&fitted);
    model.save(&out.path("model.unmix"))?;
    if streaming {
        let path = out.publish("model.unmix")?;
        if !args.quiet {
            eprintln!(
                "{}: model written → {}; separating the stream as it arrives (Ctrl-C ends it, outputs complete)",
                input_name(input),
                path.display()
            );
        }
    }

    // 3. Separation of the whole input, streamed.
    let apply_started = Instant::now();
    let sources_path = out.path("sources.wav");
    // CSV input also gets its sources as CSV, from the same pass.
    let csv_path = csv_input.then(|| csv_output(&mut out, "sources.csv"));
    let outputs: Vec<Output<'_>> = std::iter::once(sources_path.as_path())
        .chain(csv_path.as_deref())
        .map(|path| Output { path, wav_format: args.wav_format.into() })
        .collect();
    let options = ApplyOptions { progress: !args.quiet, monitoring: monitoring.as_ref(), kernel };
    // The same columns at the same rate as the training segment, decided (and said) once.
    let applied = match stream_rest {
        Some(rest) => {
            let head = segment.interleaved().to_vec();
            apply_reader(Stage::Model(model), input, rest, head, &outputs, &options)?
        }
        None => {
            let same_input = InputArgs { channels: picked.clone(), csv_rate: Some(segment.sample_rate_hz()) };
            apply_file(model, input, &outputs, &same_input, &options)?
        }
    };
    if streaming {
        warn_of_stamps(input, stamps.as_deref());
    }
    let total_frames = total_frames.unwrap_or(applied.frames);
    let apply_s = apply_started.elapsed().as_secs_f64();
    let monitoring_summary = monitoring.as_ref().map(|m| m.summary(model.header.sources)).transpose()?;

    // 4. Scores against the truth, on the whole input.
    let score = match &args.truth {
        Some(truth) => {
            let final_name = args.output.join("sources.wav");
            Some(score::score_files(truth, &sources_path, &final_name, segment.sample_rate_hz())?)
        }
        None => None,
    };

    // 5. Plots.
    if !args.no_plots {
        // The priors are learned on the encoder's outputs: they are compared before the
        // gains and the denoising.
        let fitted_segment = unmix_dsp::outliers::without_frames(&segment, &gross.frames)?;
        let segment_sources = unmix_separate::encoder_outputs(model, &fitted_segment, kernel)?;
        if let Some(vae) = vae {
            plot::training_curves(&out.path("training.png"), &vae.history, &fitted.ordering)?;
        }
        plot::priors(&out.path("priors.png"), &segment_sources, &model.weights)?;
        if let (Some(truth), Some(score)) = (&args.truth, &score) {
            // Only the frames shown are read: the files may be hours long.
            let head = |path: &Path| -> Result<Recording> {
                let mut reader = BlockReader::open(path, segment.sample_rate_hz())?;
                let mut samples = Vec::new();
                reader.read_block(&mut samples, plot::TRUTH_PLOT_FRAMES)?;
                Ok(Recording::from_interleaved(reader.sample_rate_hz(), reader.channels(), samples)?)
            };
            let (truth, estimates) = (head(truth)?, head(&sources_path)?);
            let band: Vec<f32> =
                model.weights.posterior_std().iter().zip(model.source_gains()).map(|(s, g)| s * g).collect();
            plot::truth_vs_estimate(&out.path("truth.png"), &truth, &estimates, score, &band)?;
        }
        if let Some(monitoring) = &monitoring {
            let scores = unmix_io::read_csv(&monitoring.path, 1)?;
            plot::monitoring(&out.path("scores.png"), &scores, model.header.sources, monitoring.alert_share)?;
        }
    }

    // 6. Report.
    let mut report = serde_json::json!({
        "input": input_name(input),
        "stopped_by_ctrl_c": applied.stopped,
        "frames": total_frames,
        "picked_channels": model.header.picked_channels,
        "time_stamps": stamps_json(stamps.as_deref()),
        "mixing_evidence": mixing.map(evidence_json),
        "timings_s": { "read": read_s, "train": train_s, "apply": apply_s, "total": started.elapsed().as_secs_f64() },
        "pipeline": applied.pipeline,
        // Kernels agree to 1e-5, not bit for bit: say which one computed the sources.
        "encoder_kernel": kernel.name(),
        "monitoring": monitoring.as_ref().zip(monitoring_summary.as_ref()).map(|(m, s)| serde_json::json!({
            "window_s": m.window_s,
            "hop_s": m.hop_s,
            "windows": s.windows,
            "log_prior_outliers_max": s.log_prior_outliers_max.map(|(share, at)| serde_json::json!({ "share": share, "window_start_s": at })),
            "reconstruction_outliers_max": s.reconstruction_outliers_max.map(|(share, at)| serde_json::json!({ "share": share, "window_start_s": at })),
            "alert_share": s.alert_share,
            "unusual_windows": s.unusual_windows,
            "first_unusual_s": s.first_unusual_s,
        })),
        "score": score,
    });
    // What the fit itself was, as every caller of the job reports it.
    if let serde_json::Value::Object(fields) = &mut report {
        fields.extend(report::fit_json(&fitted, &config));
    }
    crate::output::write_json(&out.path("report.json"), &report)?;
    if !streaming {
        // A file's run stopped now leaves nothing; a stream's Ctrl-C has ended its input.
        crate::interrupt::check()?;
    }
    let written = out.commit()?;

    if !args.quiet {
        let how = match (vae, selection.chosen) {
            (Some(v), _) => plural(v.history.summary.epochs, "epoch").to_string(),
            (None, ModelKind::Linear) => {
                let iterations = selection
                    .linear
                    .as_ref()
                    .map_or(0, |l| l.iterations + l.refit.as_ref().map_or(0, |r| r.iterations));
                format!("linear, {}", plural(iterations, "iteration"))
            }
            (None, ModelKind::PostNonlinear) => "post-nonlinear".into(),
            (None, ModelKind::PdgmmEncoder) => {
                let (on, iterations) = match &selection.encoder {
                    Some(e) if e.start == EncoderStart::Linear => ("the linear model", e.iterations),
                    e => ("post-nonlinear curves", e.as_ref().map_or(0, |e| e.iterations)),
                };
                format!("PDGMM's encoder on {on}, {}", plural(iterations, "iteration"))
            }
            (None, ModelKind::LinearArGmm) => {
                let iterations = selection.temporal.as_ref().map_or(0, |t| t.iterations);
                format!("linear with the temporal prior, {}", plural(iterations, "iteration"))
            }
            (None, _) => "saturating chain".into(),
        };
        println!(
            "separated {} of {} into {} (trained on {}, {how}, {train_s:.1} s){}",
            plural(total_frames, "frame"),
            plural(model.header.channels, "channel"),
            plural(model.header.sources, "source"),
            plural(training_frames, "frame"),
            crate::apply::ending(&applied)
        );
        if let Some(s) = &score {
            print!("{}", score::table(s));
        }
        if let Some(summary) = &monitoring_summary {
            println!("monitoring: {summary}");
        }
        for w in written {
            println!("  {}", w.display());
        }
    } else if let Some(summary) = monitoring_summary.as_ref().filter(|s| s.unusual_windows > 0) {
        // What monitoring is for is said even to a quiet run (a job run by a scheduler).
        println!("monitoring: {summary}");
    }
    if let (true, Some(report)) = (args.stats, &applied.pipeline) {
        print!("{}", crate::apply::stats_table(report, Some(kernel)));
    }
    if let Some(e) = applied.input_error {
        bail!(e);
    }
    Ok(Outcome { score })
}

/// Checks the true sources before any work: readable, no more of them than the sources
/// (or, with `-n auto`, than the channels), and as long as the input when both lengths are
/// known (a CSV's rows are counted; a stream's length shows only at its end, where the
/// scores are computed).
fn check_truth(
    truth: &Path,
    input_frames: Option<usize>,
    channels: usize,
    sources: SourceCount,
    sample_rate_hz: u32,
) -> Result<()> {
    let mut reader =
        BlockReader::open(truth, sample_rate_hz).with_context(|| format!("--truth {}", truth.display()))?;
    let most = match sources {
        SourceCount::Fixed(n) => n,
        SourceCount::Auto { max } => max.unwrap_or(channels).min(channels),
    };
    if reader.channels() > most {
        bail!(
            "{}: {} true sources cannot be matched to at most {most} separated ones (--truth)",
            truth.display(),
            reader.channels()
        );
    }
    let truth_frames = match reader.frames_total() {
        Some(frames) => frames,
        None => {
            let (mut frames, mut block) = (0, Vec::new());
            loop {
                crate::interrupt::check()?;
                match reader.read_block(&mut block, 1 << 16)? {
                    0 => break frames,
                    got => frames += got,
                }
            }
        }
    };
    if let Some(input_frames) = input_frames
        && input_frames != truth_frames
    {
        bail!("{}: {}, but the input has {input_frames} (--truth)", truth.display(), plural(truth_frames, "frame"));
    }
    Ok(())
}

/// Reads a stream's training segment as its rows arrive, a block of 50 ms at a time so
/// that Ctrl-C is seen between blocks, and says what it is waiting for: at a logger's
/// rate the default segment can take minutes.
fn read_stream_head(reader: &mut BlockReader, frames: usize, quiet: bool) -> Result<Vec<f32>> {
    let (rate, channels) = (reader.sample_rate_hz(), reader.channels());
    let bar = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let seconds = frames as f64 / f64::from(rate.max(1));
        eprintln!(
            "{}: training on its first {frames} frames ({} at {rate} Hz; --train-seconds sets it), then separating the rest as it arrives",
            unmix_io::STDIN_NAME,
            duration_text(seconds)
        );
        crate::progress::segment_bar(frames as u64)
    };
    let block = crate::apply::stream_block_frames(rate, unmix_stream::PipelineConfig::file().frame_len);
    let (mut head, mut rows) = (Vec::with_capacity(frames.min(1 << 16) * channels), Vec::new());
    while head.len() < frames * channels {
        crate::interrupt::check()?;
        let got = reader.read_block(&mut rows, block.min(frames - head.len() / channels))?;
        if got == 0 {
            break; // the stream ended first: it is all there is to train on
        }
        head.extend_from_slice(&rows);
        bar.set_position((head.len() / channels) as u64);
    }
    bar.finish_and_clear();
    Ok(head)
}
