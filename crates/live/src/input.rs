//! A live input device feeding a ring: format negotiation and the audio callback.
//!
//! # Real-time safety
//! The callback only converts samples to `f32` (through `dasp_sample`, in a scratch array
//! that lives in the closure, allocated when the stream is built), pushes them into the
//! ring with [`RingWriter::push_or_drop`] and bumps atomic counters: no allocation, lock,
//! I/O, logging or wake-up. A full ring drops the frames and counts them; the stream is
//! never rebuilt on an overrun. The consumer polls (the ring's reader parks 2 ms at a
//! time), as in cpal's `feedback.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

#[cfg(feature = "cpal")]
use cpal::traits::{DeviceTrait, StreamTrait};
#[cfg(feature = "cpal")]
use cpal::{SampleFormat, SupportedStreamConfigRange};
use dasp_sample::{FromSample, Sample};
use serde::Serialize;
#[cfg(feature = "cpal")]
use unmix_stream::FrameRing;
use unmix_stream::{RingReader, RingWriter};

#[cfg(feature = "cpal")]
use crate::devices::{device_id, find};
#[cfg(feature = "cpal")]
use crate::error::{Error, Result, backend};

/// Most channels a live input may have (the callback's per-channel peak meter is a fixed
/// array, so nothing is allocated per callback).
pub const MAX_CHANNELS: usize = 64;

/// Samples converted per step in the callback (a multiple of every channel count up to
/// [`MAX_CHANNELS`] is not needed: chunks are cut on whole frames).
const SCRATCH_SAMPLES: usize = 4096;

/// Sample formats in order of preference: float first (no conversion loss), then the
/// widest integers.
#[cfg(feature = "cpal")]
const FORMAT_PREFERENCE: [SampleFormat; 8] = [
    SampleFormat::F32,
    SampleFormat::I32,
    SampleFormat::I16,
    SampleFormat::F64,
    SampleFormat::U32,
    SampleFormat::U16,
    SampleFormat::I8,
    SampleFormat::U8,
];

/// What to open.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputSpec {
    /// Device id or name (`default`, `alsa:hw:1,0`, `filecap`, …).
    pub device: String,
    /// Channels `M` kept per frame.
    pub channels: usize,
    /// The device channels kept, zero-based, in this order (`channels` of them): a
    /// microphone array on inputs 3–6 of an interface, say. `None` keeps the first
    /// `channels`.
    pub pick: Option<Vec<usize>>,
    /// Sample rate; `None` takes the device's default rate.
    pub sample_rate_hz: Option<u32>,
    /// Device buffer in frames; `None` leaves it to the device.
    pub buffer_frames: Option<u32>,
    /// Capacity of the callback's ring, seconds (frames at the negotiated rate).
    pub ring_s: f64,
    /// Stop capturing after this many seconds of input (`--duration`), counted in frames
    /// at the negotiated rate, if set.
    pub stop_after_s: Option<f64>,
}

impl InputSpec {
    /// The device channels kept, zero-based, in order.
    pub fn kept(&self) -> Vec<usize> {
        self.pick.clone().unwrap_or_else(|| (0..self.channels).collect())
    }

    /// How many device channels must be opened to deliver them.
    pub fn device_channels(&self) -> usize {
        self.kept().iter().max().map_or(0, |c| c + 1)
    }
}

/// What was negotiated with the device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Negotiated {
    /// Device id.
    pub device: String,
    /// Channels kept per frame.
    pub channels: usize,
    /// Channels opened on the device (≥ `channels`).
    pub device_channels: usize,
    /// The device channels kept, numbered from 1, if not simply the first `channels`.
    pub picked: Option<Vec<usize>>,
    /// Sample rate.
    pub sample_rate_hz: u32,
    /// Sample format delivered by the device (converted to `f32` in the callback).
    pub sample_format: String,
    /// Device buffer, frames, if fixed.
    pub buffer_frames: Option<u32>,
    /// Fallbacks taken, in words.
    pub notes: Vec<String>,
}

/// Counters shared by the callback and everyone else.
#[derive(Debug)]
pub struct InputMeter {
    /// Frames the device delivered (and we kept: at most the duration, and none after
    /// [`InputMeter::released`]).
    pub frames_captured: AtomicU64,
    /// Callbacks run.
    pub callbacks: AtomicU64,
    /// Largest callback, frames.
    pub max_callback_frames: AtomicU64,
    /// Peak |sample| per channel since the last [`InputMeter::take_peaks`], as `f32` bits
    /// (for non-negative floats the bit patterns order as the values do, so `fetch_max`
    /// on the bits is a max on the values).
    peaks: Vec<AtomicU32>,
    /// The device reported a fatal error (unplugged, stream invalidated).
    pub device_error: AtomicBool,
    /// Over- and underruns the device reported (counted, never fatal; the stream is not
    /// rebuilt), and other non-fatal backend errors.
    pub device_xruns: AtomicU64,
    /// The duration was reached.
    pub ended: AtomicBool,
    /// The pipeline has stopped reading: the device may go on delivering until the
    /// session lets go of it (after the trainer has given up its fit), but those frames
    /// are neither kept nor counted, so `frames_captured` is what the session took in.
    pub released: AtomicBool,
}

impl InputMeter {
    /// Zeroed counters for `channels` channels.
    pub fn new(channels: usize) -> Self {
        Self {
            frames_captured: AtomicU64::new(0),
            callbacks: AtomicU64::new(0),
            max_callback_frames: AtomicU64::new(0),
            peaks: (0..channels).map(|_| AtomicU32::new(0)).collect(),
            device_error: AtomicBool::new(false),
            device_xruns: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            released: AtomicBool::new(false),
        }
    }

    /// Peak |sample| per channel since the last call, and resets them.
    pub fn take_peaks(&self) -> Vec<f32> {
        self.peaks.iter().map(|p| f32::from_bits(p.swap(0, Ordering::Relaxed))).collect()
    }
}

/// A running input: what keeps it alive, the ring it fills and its counters.
pub struct LiveInput {
    /// Keeps the stream alive (a `cpal::Stream`, or a feeder's handle); dropping it stops
    /// the input.
    pub keep_alive: Box<dyn std::any::Any + Send>,
    /// The consuming end of the callback's ring.
    pub reader: RingReader,
    /// Counters.
    pub meter: Arc<InputMeter>,
    /// The negotiated format.
    pub negotiated: Negotiated,
    /// The device's error, if it reported one (set from its error callback).
    pub error: crossbeam_channel::Receiver<String>,
}

/// Opens and starts the input described by `spec`.
#[cfg(feature = "cpal")]
pub fn open_input(spec: &InputSpec) -> Result<LiveInput> {
    if spec.channels == 0 || spec.channels > MAX_CHANNELS {
        return Err(Error::Config(format!("--channels must be 1–{MAX_CHANNELS}, got {}", spec.channels)));
    }
    if spec.pick.as_ref().is_some_and(|p| p.len() != spec.channels) {
        return Err(Error::Config(format!("{} channels picked, but {} asked for", spec.kept().len(), spec.channels)));
    }
    let device = find(&spec.device, true)?;
    let name = device_id(&device);
    let configs: Vec<SupportedStreamConfigRange> = device
        .supported_input_configs()
        .map_err(|e| backend(format!("input configurations of '{name}'"), e))?
        .collect();
    let (config, negotiated) = negotiate(&name, &configs, device.default_input_config().ok(), spec)?;
    let meter = Arc::new(InputMeter::new(spec.channels));
    let rate = f64::from(negotiated.sample_rate_hz);
    let (writer, reader) = FrameRing::new(spec.channels, ((spec.ring_s * rate) as usize).max(1024));
    let (error_tx, error) = crossbeam_channel::bounded(1);
    let err_meter = meter.clone();
    // An xrun (or another passing backend complaint, e.g. JACK changing its buffer size) is
    // counted; a device that is gone or a stream that must be rebuilt ends the session. A
    // device that dies without saying so is caught by the stall timeout.
    let device_name = name.clone();
    let on_error = move |e: cpal::StreamError| {
        if crate::devices::is_fatal(&e) {
            // The message first: whoever sees the flag finds it waiting.
            let _ = error_tx.try_send(format!("input '{device_name}': {e}"));
            err_meter.device_error.store(true, Ordering::Release);
        } else {
            err_meter.device_xruns.fetch_add(1, Ordering::Relaxed);
        }
    };
    let ctx = Capture {
        writer,
        meter: meter.clone(),
        channels: spec.channels,
        pick: spec.pick.clone(),
        device_channels: usize::from(config.channels),
        stop_after: spec.stop_after_s.map(|s| (s * rate).round() as u64),
    };
    let format = FORMAT_PREFERENCE
        .iter()
        .copied()
        .find(|f| f.to_string() == negotiated.sample_format)
        .unwrap_or(SampleFormat::F32);
    let stream = match format {
        SampleFormat::F32 => device.build_input_stream(&config, cpal_fn(ctx.into_fn::<f32>()), on_error, None),
        SampleFormat::I32 => device.build_input_stream(&config, cpal_fn(ctx.into_fn::<i32>()), on_error, None),
        SampleFormat::I16 => device.build_input_stream(&config, cpal_fn(ctx.into_fn::<i16>()), on_error, None),
        SampleFormat::F64 => device.build_input_stream(&config, cpal_fn(ctx.into_fn::<f64>()), on_error, None),
        SampleFormat::U32 => device.build_input_stream(&config, cpal_fn(ctx.into_fn::<u32>()), on_error, None),
        SampleFormat::U16 => device.build_input_stream(&config, cpal_fn(ctx.into_fn::<u16>()), on_error, None),
        SampleFormat::I8 => device.build_input_stream(&config, cpal_fn(ctx.into_fn::<i8>()), on_error, None),
        _ => device.build_input_stream(&config, cpal_fn(ctx.into_fn::<u8>()), on_error, None),
    }
    .map_err(|e| backend(format!("opening input '{name}'"), e))?;
    stream.play().map_err(|e| backend(format!("starting input '{name}'"), e))?;
    Ok(LiveInput { keep_alive: Box::new(stream), reader, meter, negotiated, error })
}

/// Adapts a capture function to cpal's callback signature.
#[cfg(feature = "cpal")]
fn cpal_fn<T>(mut f: impl FnMut(&[T]) + Send + 'static) -> impl FnMut(&[T], &cpal::InputCallbackInfo) + Send + 'static {
    move |data, _info| f(data)
}

/// Picks channels, rate, format and buffer from what the device supports, saying which
/// fallbacks were taken.
#[cfg(feature = "cpal")]
fn negotiate(
    name: &str,
    configs: &[SupportedStreamConfigRange],
    default: Option<cpal::SupportedStreamConfig>,
    spec: &InputSpec,
) -> Result<(cpal::StreamConfig, Negotiated)> {
    // `m` channels opened (enough to reach the last one picked), `spec.channels` kept.
    let m = spec.device_channels();
    let mut notes = Vec::new();
    let mut with_channels: Vec<&SupportedStreamConfigRange> =
        configs.iter().filter(|c| usize::from(c.channels()) == m).collect();
    if with_channels.is_empty() {
        // No exact match: open the fewest channels above M and keep what was asked for
        // (JACK, for one, offers only 1, 2, 4, 6, 8, … channels).
        if let Some(wider) = configs.iter().map(|c| usize::from(c.channels())).filter(|&c| c > m).min() {
            with_channels = configs.iter().filter(|c| usize::from(c.channels()) == wider).collect();
            let using =
                if spec.pick.is_some() { "using the ones picked".to_string() } else { format!("using the first {m}") };
            notes.push(format!("no {m}-channel input: opened {wider} channels, {using}"));
        }
    }
    if with_channels.is_empty() {
        let mut counts: Vec<u16> = configs.iter().map(|c| c.channels()).collect();
        counts.sort_unstable();
        counts.dedup();
        let supported = if counts.is_empty() { "no input at all".to_string() } else { runs(&counts) + " channels" };
        return Err(Error::Channels { direction: "input", device: name.into(), channels: m, supported });
    }
    let supports =
        |rate: u32| with_channels.iter().any(|c| (c.min_sample_rate()..=c.max_sample_rate()).contains(&rate));
    let rate = match spec.sample_rate_hz {
        Some(r) if supports(r) => r,
        Some(r) => {
            return Err(Error::SampleRate { direction: "input", device: name.into(), sample_rate_hz: r, channels: m });
        }
        None => {
            let default_rate = default.as_ref().map(|d| d.sample_rate());
            match default_rate.filter(|&r| supports(r)) {
                Some(r) => r,
                None => {
                    let r = [48_000, 44_100, 96_000, 16_000]
                        .into_iter()
                        .find(|&r| supports(r))
                        .unwrap_or_else(|| with_channels[0].max_sample_rate());
                    notes.push(format!("the default rate does not work with {m} channels: {r} Hz instead"));
                    r
                }
            }
        }
    };
    let at_rate: Vec<&&SupportedStreamConfigRange> =
        with_channels.iter().filter(|c| (c.min_sample_rate()..=c.max_sample_rate()).contains(&rate)).collect();
    let chosen = FORMAT_PREFERENCE
        .iter()
        .find_map(|f| at_rate.iter().find(|c| c.sample_format() == *f))
        .ok_or_else(|| Error::Config(format!("input '{name}' offers no sample format unmix can convert")))?;
    if chosen.sample_format() != SampleFormat::F32 {
        notes.push(format!("no f32 input: {} converted to f32", chosen.sample_format()));
    }
    let buffer_size = match (spec.buffer_frames, chosen.buffer_size()) {
        (None, _) => cpal::BufferSize::Default,
        (Some(b), cpal::SupportedBufferSize::Range { min, max }) if (*min..=*max).contains(&b) => {
            cpal::BufferSize::Fixed(b)
        }
        (Some(b), range) => {
            notes.push(format!("buffer of {b} frames not supported ({range:?}): device default instead"));
            cpal::BufferSize::Default
        }
    };
    let buffer_frames = match buffer_size {
        cpal::BufferSize::Fixed(b) => Some(b),
        cpal::BufferSize::Default => None,
    };
    let config = cpal::StreamConfig { channels: chosen.channels(), sample_rate: rate, buffer_size };
    let negotiated = Negotiated {
        device: name.into(),
        channels: spec.channels,
        device_channels: usize::from(config.channels),
        picked: spec.pick.as_ref().map(|p| p.iter().map(|c| c + 1).collect()),
        sample_rate_hz: rate,
        sample_format: chosen.sample_format().to_string(),
        buffer_frames,
        notes,
    };
    Ok((config, negotiated))
}

/// Sorted counts as runs: `[1, 2, 3, 6]` → `1–3, 6`.
#[cfg(feature = "cpal")]
fn runs(counts: &[u16]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < counts.len() {
        let mut j = i;
        while j + 1 < counts.len() && counts[j + 1] == counts[j] + 1 {
            j += 1;
        }
        parts.push(if j > i { format!("{}–{}", counts[i], counts[j]) } else { counts[i].to_string() });
        i = j + 1;
    }
    parts.join(", ")
}

/// What the audio callback owns: the ring's writing end, the counters, and the duration.
pub struct Capture {
    /// Where frames go.
    pub writer: RingWriter,
    /// Counters shared with the session.
    pub meter: Arc<InputMeter>,
    /// Channels kept per frame (the first `channels` of the device's unless picked).
    pub channels: usize,
    /// The device channels kept, zero-based, in this order (`channels` of them), if not
    /// the first `channels`.
    pub pick: Option<Vec<usize>>,
    /// Channels per frame as the device delivers them (more than any channel kept).
    pub device_channels: usize,
    /// Keep at most this many frames.
    pub stop_after: Option<u64>,
}

impl Capture {
    /// The audio callback for samples of type `T`, built once (its scratch buffer is part
    /// of the closure); see the module's `# Real-time safety`.
    pub fn into_fn<T>(self) -> impl FnMut(&[T]) + Send + 'static
    where
        T: Sample + Send + 'static,
        f32: FromSample<T>,
    {
        let Capture { mut writer, meter, channels, pick, device_channels, stop_after } = self;
        let kept = pick.unwrap_or_else(|| (0..channels).collect());
        assert_eq!(kept.len(), channels, "a capture keeps `channels` channels");
        let device_channels = device_channels.max(kept.iter().max().map_or(0, |c| c + 1)).max(1);
        let mut scratch = [0.0f32; SCRATCH_SAMPLES];
        let chunk_frames = (SCRATCH_SAMPLES / device_channels).max(1);
        move |data: &[T]| {
            meter.callbacks.fetch_add(1, Ordering::Relaxed);
            if meter.released.load(Ordering::Acquire) {
                return;
            }
            let mut frames = data.len() / device_channels;
            meter.max_callback_frames.fetch_max(frames as u64, Ordering::Relaxed);
            if let Some(limit) = stop_after {
                let captured = meter.frames_captured.load(Ordering::Relaxed);
                frames = frames.min(limit.saturating_sub(captured) as usize);
                if frames == 0 {
                    meter.ended.store(true, Ordering::Release);
                    return;
                }
            }
            let mut peaks = [0.0f32; MAX_CHANNELS];
            for chunk in data[..frames * device_channels].chunks(chunk_frames * device_channels) {
                let out = &mut scratch[..chunk.len() / device_channels * channels];
                for (o, frame) in out.chunks_exact_mut(channels).zip(chunk.chunks_exact(device_channels)) {
                    for (o, &c) in o.iter_mut().zip(&kept) {
                        *o = f32::from_sample_(frame[c]);
                    }
                }
                for frame in out.chunks_exact(channels) {
                    for (p, v) in peaks.iter_mut().zip(frame) {
                        *p = p.max(v.abs());
                    }
                }
                writer.push_or_drop(out);
            }
            for (atomic, p) in meter.peaks.iter().zip(peaks) {
                atomic.fetch_max(p.to_bits(), Ordering::Relaxed);
            }
            let total = meter.frames_captured.fetch_add(frames as u64, Ordering::Relaxed) + frames as u64;
            if stop_after.is_some_and(|limit| total >= limit) {
                // The reader polls this flag; closing the ring would wake it (a syscall).
                meter.ended.store(true, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "cpal")]
    fn range(channels: u16, min: u32, max: u32, format: SampleFormat) -> SupportedStreamConfigRange {
        SupportedStreamConfigRange::new(
            channels,
            min,
            max,
            cpal::SupportedBufferSize::Range { min: 64, max: 4096 },
            format,
        )
    }

    #[cfg(feature = "cpal")]
    fn spec(channels: usize, rate: Option<u32>, buffer: Option<u32>) -> InputSpec {
        InputSpec {
            device: "x".into(),
            channels,
            pick: None,
            sample_rate_hz: rate,
            buffer_frames: buffer,
            ring_s: 1.0,
            stop_after_s: None,
        }
    }

    #[cfg(feature = "cpal")]
    #[test]
    fn prefers_float_and_the_default_rate() {
        let configs = [range(2, 8000, 96_000, SampleFormat::I16), range(2, 8000, 96_000, SampleFormat::F32)];
        let default = cpal::SupportedStreamConfig::new(
            2,
            44_100,
            cpal::SupportedBufferSize::Range { min: 64, max: 4096 },
            SampleFormat::I16,
        );
        let (config, n) = negotiate("x", &configs, Some(default), &spec(2, None, Some(256))).unwrap();
        assert_eq!((n.sample_rate_hz, n.sample_format.as_str(), n.buffer_frames), (44_100, "f32", Some(256)));
        assert_eq!(config.buffer_size, cpal::BufferSize::Fixed(256));
        assert!(n.notes.is_empty(), "{:?}", n.notes);
    }

    #[cfg(feature = "cpal")]
    #[test]
    fn falls_back_and_says_so() {
        let configs = [range(4, 44_100, 48_000, SampleFormat::I16)];
        let (_, n) = negotiate("x", &configs, None, &spec(4, None, Some(10_000))).unwrap();
        assert_eq!((n.sample_rate_hz, n.sample_format.as_str(), n.buffer_frames), (48_000, "i16", None));
        assert_eq!(n.notes.len(), 3, "{:?}", n.notes);
    }

    /// The callback converts, keeps every frame in order, counts what does not fit, stops
    /// at the duration, and allocates nothing while doing so.
    #[test]
    fn callback_keeps_order_counts_drops_and_allocates_nothing() {
        let channels = 3;
        let (writer, mut reader) = unmix_stream::FrameRing::new(channels, 5000);
        let meter = Arc::new(InputMeter::new(channels));
        let ctx = Capture {
            writer,
            meter: meter.clone(),
            channels,
            pick: None,
            device_channels: channels,
            stop_after: Some(6000),
        };
        let mut callback = ctx.into_fn::<i16>();
        let data: Vec<i16> = (0..7000 * channels).map(|i| (i % 30_000) as i16).collect();
        let before = unmix_test_support::allocations();
        let mut at = 0;
        for frames in [1usize, 7, 256, 1000, 1733, 3] {
            callback(&data[at * channels..(at + frames) * channels]);
            at += frames;
        }
        assert_eq!(unmix_test_support::allocations() - before, 0, "the callback allocated");
        assert_eq!(meter.frames_captured.load(Ordering::Relaxed), at as u64);
        let mut out = vec![0.0f32; 5000 * channels];
        let got = reader.pop(&mut out);
        assert_eq!(got, at);
        for (i, v) in out[..got * channels].iter().enumerate() {
            assert_eq!(*v, f32::from_sample_(data[i]), "sample {i}");
        }
        // A full ring drops and counts; the duration caps what is kept.
        callback(&data[at * channels..]);
        let captured = meter.frames_captured.load(Ordering::Relaxed);
        assert_eq!(captured, 6000);
        assert_eq!(reader.stats().dropped_frames.load(Ordering::Relaxed), 0, "room was made by the pop");
        assert!(meter.ended.load(Ordering::Acquire));
        assert!(meter.take_peaks().iter().all(|&p| p > 0.0));
    }

    /// Once the session has released the input, the callback neither keeps nor counts
    /// frames, though the device goes on calling it until the stream is dropped.
    #[test]
    fn released_input_keeps_and_counts_nothing() {
        let (writer, mut reader) = unmix_stream::FrameRing::new(2, 1000);
        let meter = Arc::new(InputMeter::new(2));
        let ctx =
            Capture { writer, meter: meter.clone(), channels: 2, pick: None, device_channels: 2, stop_after: None };
        let mut callback = ctx.into_fn::<f32>();
        let data = vec![0.5f32; 100 * 2];
        callback(&data);
        meter.released.store(true, Ordering::Release);
        callback(&data);
        assert_eq!(meter.frames_captured.load(Ordering::Relaxed), 100);
        assert_eq!(meter.callbacks.load(Ordering::Relaxed), 2);
        let mut out = vec![0.0f32; 1000 * 2];
        assert_eq!(reader.pop(&mut out), 100);
    }

    /// Picked channels arrive in the order asked for, the others are skipped, and the
    /// callback still allocates nothing.
    #[test]
    fn callback_keeps_the_picked_channels_in_their_order() {
        let (writer, mut reader) = unmix_stream::FrameRing::new(3, 1000);
        let meter = Arc::new(InputMeter::new(3));
        let pick = Some(vec![4, 1, 3]);
        let ctx = Capture { writer, meter: meter.clone(), channels: 3, pick, device_channels: 5, stop_after: None };
        let mut callback = ctx.into_fn::<f32>();
        let data: Vec<f32> = (0..600 * 5).map(|i| i as f32).collect();
        let before = unmix_test_support::allocations();
        callback(&data[..250 * 5]);
        callback(&data[250 * 5..]);
        assert_eq!(unmix_test_support::allocations() - before, 0, "the callback allocated");
        let mut out = vec![0.0f32; 600 * 3];
        assert_eq!(reader.pop(&mut out), 600);
        for (t, frame) in out.chunks_exact(3).enumerate() {
            let at = (t * 5) as f32;
            assert_eq!(frame, [at + 4.0, at + 1.0, at + 3.0], "frame {t}");
        }
    }

    #[cfg(feature = "cpal")]
    #[test]
    fn opens_enough_channels_to_reach_the_ones_picked() {
        let configs = [range(2, 48_000, 48_000, SampleFormat::F32), range(8, 48_000, 48_000, SampleFormat::F32)];
        let picked = InputSpec { pick: Some(vec![5, 2]), ..spec(2, None, None) };
        let (config, n) = negotiate("interface", &configs, None, &picked).unwrap();
        assert_eq!((config.channels, n.channels, n.device_channels), (8, 2, 8));
        assert_eq!(n.picked, Some(vec![6, 3]));
        assert!(n.notes[0].contains("no 6-channel input: opened 8 channels, using the ones picked"), "{:?}", n.notes);
        let beyond = InputSpec { pick: Some(vec![8]), ..spec(1, None, None) };
        let e = negotiate("interface", &configs, None, &beyond).unwrap_err();
        assert!(e.to_string().contains("does not support 9 channels"), "{e}");
    }

    #[cfg(feature = "cpal")]
    #[test]
    fn refuses_what_the_device_cannot_do() {
        let configs = [range(1, 8000, 48_000, SampleFormat::F32), range(2, 8000, 48_000, SampleFormat::F32)];
        let e = negotiate("mic", &configs, None, &spec(8, None, None)).unwrap_err();
        // Fewer channels than the device's next count: open more, keep the first M.
        let (config, n) = negotiate("mic", &configs, None, &spec(1, None, None)).unwrap();
        assert_eq!((config.channels, n.channels), (1, 1));
        let jack_like = [range(2, 48_000, 48_000, SampleFormat::F32), range(4, 48_000, 48_000, SampleFormat::F32)];
        let (config, n) = negotiate("jack", &jack_like, None, &spec(3, None, None)).unwrap();
        assert_eq!((config.channels, n.channels), (4, 3));
        assert!(n.notes[0].contains("opened 4 channels, using the first 3"), "{:?}", n.notes);
        assert_eq!(e.to_string(), "input device 'mic' does not support 8 channels (it supports 1–2 channels)");
        assert_eq!(runs(&[1, 2, 3, 6, 8, 9]), "1–3, 6, 8–9");
        let e = negotiate("mic", &configs, None, &spec(2, Some(96_000), None)).unwrap_err();
        assert!(matches!(e, Error::SampleRate { sample_rate_hz: 96_000, .. }), "{e}");
    }
}
