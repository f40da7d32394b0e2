//! Live output: a device fed from a ring (silence and a count on underrun), and the sinks
//! the processor's sources go to (device, WAV recording, raw stdout).
//!
//! # Real-time safety
//! The output callback ([`Playback`]) pops what the ring holds, fills the rest with silence
//! and counts the underrun; it converts `f32` to the device's format in place. Nothing
//! else.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[cfg(feature = "cpal")]
use cpal::traits::{DeviceTrait, StreamTrait};
#[cfg(feature = "cpal")]
use cpal::{FromSample, SampleFormat, SizedSample};
use unmix_core::{BoxError, Sink};
#[cfg(feature = "cpal")]
use unmix_stream::FrameRing;
use unmix_stream::RingReader;
use unmix_stream::RingWriter;

#[cfg(feature = "cpal")]
use crate::devices::{device_id, find};
#[cfg(feature = "cpal")]
use crate::error::{Error, Result, backend};

/// How long a device may take no samples at all before a blocking write gives it up for
/// lost (its callback runs every few milliseconds while it lives).
const DEVICE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Counters of the output device.
#[derive(Debug, Default)]
pub struct OutputMeter {
    /// Frames played from the ring.
    pub frames_played: AtomicU64,
    /// Frames of silence played because the ring was empty.
    pub underrun_frames: AtomicU64,
    /// Largest callback, frames.
    pub max_callback_frames: AtomicU64,
    /// The device reported a fatal error (unplugged, its server shut down).
    pub device_error: AtomicBool,
}

/// An open output device (the sink that feeds it is returned beside it).
pub struct LiveOutput {
    /// Keeps the stream alive.
    pub keep_alive: Box<dyn std::any::Any + Send>,
    /// Counters.
    pub meter: Arc<OutputMeter>,
    /// Device id.
    pub device: String,
    /// The device's fatal error, if it reported one (set from its error callback).
    pub error: crossbeam_channel::Receiver<String>,
    /// Channels of the device stream.
    pub channels: usize,
}

#[cfg(feature = "cpal")]
/// Opens `device` at `sample_rate_hz` with the fewest channels ≥ `channels` it offers,
/// and returns it with the sink that feeds it. Each sink frame of `sources` values is
/// spread over the device channels by `route` (see [`OutputSink`]).
pub fn open_output(
    device: &str,
    sources: usize,
    listen: Option<usize>,
    sample_rate_hz: u32,
    ring_frames: usize,
) -> Result<(LiveOutput, OutputSink)> {
    let dev = find(device, false)?;
    let name = device_id(&dev);
    let configs: Vec<cpal::SupportedStreamConfigRange> =
        dev.supported_output_configs().map_err(|e| backend(format!("output configurations of '{name}'"), e))?.collect();
    // --listen K plays one source on (up to) two speakers; otherwise every source needs a channel.
    let wanted = if listen.is_some() { 1 } else { sources };
    let at_rate =
        |c: &&cpal::SupportedStreamConfigRange| (c.min_sample_rate()..=c.max_sample_rate()).contains(&sample_rate_hz);
    let mut usable: Vec<&cpal::SupportedStreamConfigRange> =
        configs.iter().filter(|c| usize::from(c.channels()) >= wanted).filter(at_rate).collect();
    if usable.is_empty() {
        let most = configs.iter().map(|c| c.channels()).max().unwrap_or(0);
        if usize::from(most) < wanted {
            return Err(Error::Channels {
                direction: "output",
                device: name,
                channels: wanted,
                supported: format!("at most {most} channels"),
            });
        }
        return Err(Error::SampleRate { direction: "output", device: name, sample_rate_hz, channels: wanted });
    }
    // Prefer stereo for --listen, the exact count otherwise; then float.
    let target = if listen.is_some() { 2 } else { wanted };
    usable.sort_by_key(|c| {
        (usize::from(c.channels()).abs_diff(target), c.sample_format() != SampleFormat::F32, c.channels())
    });
    let chosen = usable[0];
    let channels = usize::from(chosen.channels());
    let config = cpal::StreamConfig {
        channels: chosen.channels(),
        sample_rate: sample_rate_hz,
        buffer_size: cpal::BufferSize::Default,
    };
    let (writer, reader) = FrameRing::new(channels, ring_frames);
    let meter = Arc::new(OutputMeter::default());
    let (error_tx, error) = crossbeam_channel::bounded(1);
    let (err_meter, device_name) = (meter.clone(), name.clone());
    // Underruns are counted by the callback itself; only a lost device matters here.
    let on_error = move |e: cpal::StreamError| {
        if crate::devices::is_fatal(&e) {
            // The message first: whoever sees the flag finds it waiting.
            let _ = error_tx.try_send(format!("output '{device_name}': {e}"));
            err_meter.device_error.store(true, Ordering::Release);
        }
    };
    let m = meter.clone();
    let stream = match chosen.sample_format() {
        SampleFormat::F32 => dev.build_output_stream(&config, play::<f32>(reader, m), on_error, None),
        SampleFormat::I16 => dev.build_output_stream(&config, play::<i16>(reader, m), on_error, None),
        SampleFormat::I32 => dev.build_output_stream(&config, play::<i32>(reader, m), on_error, None),
        SampleFormat::U16 => dev.build_output_stream(&config, play::<u16>(reader, m), on_error, None),
        SampleFormat::F64 => dev.build_output_stream(&config, play::<f64>(reader, m), on_error, None),
        other => return Err(Error::Config(format!("output '{name}' offers only {other} samples"))),
    }
    .map_err(|e| backend(format!("opening output '{name}'"), e))?;
    stream.play().map_err(|e| backend(format!("starting output '{name}'"), e))?;
    let sink = OutputSink::new(writer, sources, listen, meter.clone());
    Ok((LiveOutput { keep_alive: Box::new(stream), meter, device: name, channels, error }, sink))
}

/// The output callback: ring → device, silence on underrun.
#[cfg(feature = "cpal")]
fn play<T>(reader: RingReader, meter: Arc<OutputMeter>) -> impl FnMut(&mut [T], &cpal::OutputCallbackInfo) + Send
where
    T: SizedSample + FromSample<f32>,
{
    let mut playback = Playback::new(reader, meter);
    move |data: &mut [T], _info| playback.fill(data)
}

/// What the output callback does with each buffer the device asks for, apart from the
/// device: the frames the ring holds, then silence for the rest, counted as underrun.
///
/// # Real-time safety
/// [`Playback::fill`] pops into a fixed scratch array, converts in place and bumps atomic
/// counters: no allocation, lock or wait, whatever the ring holds.
pub struct Playback {
    reader: RingReader,
    meter: Arc<OutputMeter>,
    scratch: [f32; Playback::SCRATCH_SAMPLES],
}

impl Playback {
    /// Samples popped from the ring at a time (a device buffer larger than this is
    /// filled in several pops).
    const SCRATCH_SAMPLES: usize = 4096;

    /// Plays what `reader` holds, counting into `meter`.
    pub fn new(reader: RingReader, meter: Arc<OutputMeter>) -> Self {
        Self { reader, meter, scratch: [0.0; Self::SCRATCH_SAMPLES] }
    }

    /// Fills one device buffer of interleaved frames: the ring's frames first, silence
    /// after them (counted in [`OutputMeter::underrun_frames`]), each sample converted to
    /// the device's format.
    pub fn fill<T: dasp_sample::FromSample<f32>>(&mut self, data: &mut [T]) {
        let channels = self.reader.channels();
        let frames = data.len() / channels;
        self.meter.max_callback_frames.fetch_max(frames as u64, Ordering::Relaxed);
        let chunk_frames = (Self::SCRATCH_SAMPLES / channels).max(1);
        let (mut played, mut silent) = (0u64, 0u64);
        for chunk in data.chunks_mut(chunk_frames * channels) {
            let got = self.reader.pop(&mut self.scratch[..chunk.len()]);
            played += got as u64;
            silent += (chunk.len() / channels - got) as u64;
            for (i, o) in chunk.iter_mut().enumerate() {
                let v = if i < got * channels { self.scratch[i] } else { 0.0 };
                *o = T::from_sample_(v);
            }
        }
        self.meter.frames_played.fetch_add(played, Ordering::Relaxed);
        if silent > 0 {
            self.meter.underrun_frames.fetch_add(silent, Ordering::Relaxed);
        }
    }
}

/// Routes source frames to the output device's ring: all sources to the first channels
/// (the rest silent), or with `--listen K` source `K` on every channel. Runs on the sink
/// thread, never in a callback; a full ring drops and counts (the device is the clock).
pub struct OutputSink {
    writer: RingWriter,
    sources: usize,
    listen: Option<usize>,
    scratch: Vec<f32>,
    /// Drop-and-count for live sessions (the device is the clock); backpressure to play a file.
    policy: unmix_stream::Policy,
    /// The device's counters: a lost device ends a backpressured write instead of
    /// leaving it waiting for space that never comes.
    meter: Arc<OutputMeter>,
}

/// Plays a WAV file on `device` at the file's rate and channel count, waiting while the
/// device's ring is full (the device is the clock), until every frame has been played.
/// Returns the frames played and the underrun frames (silence the device played because
/// the ring ran dry: only at start-up, if ever).
#[cfg(feature = "cpal")]
pub fn play_wav(path: &std::path::Path, device: &str) -> Result<(u64, u64)> {
    let mut reader = unmix_io::WavBlockReader::open(path)?;
    let (channels, rate) = (reader.channels(), reader.sample_rate_hz());
    // A device with more channels than the file plays silence on the extra ones.
    let (output, mut sink) = open_output(device, channels, None, rate, rate as usize)?;
    sink.policy = unmix_stream::Policy::Backpressure;
    let mut block = Vec::new();
    let mut total = 0u64;
    let lost = |output: &LiveOutput| {
        // A device that went silent may still be telling why: JACK's notification thread
        // can trail its last callback.
        Error::DeviceLost(
            output
                .error
                .recv_timeout(std::time::Duration::from_millis(500))
                .unwrap_or_else(|_| format!("output '{}': it stopped taking samples", output.device)),
        )
    };
    loop {
        let frames = reader.read_block(&mut block, 4096)?;
        if frames == 0 {
            break;
        }
        total += frames as u64;
        if sink.write(&block[..frames * channels]).is_err() {
            return Err(lost(&output));
        }
    }
    // The rest plays out; a device that stops taking samples (without saying why) for
    // DEVICE_TIMEOUT counts as lost too, so this never waits forever.
    let (mut played, mut progress) = (0, std::time::Instant::now());
    while played < total {
        if output.meter.device_error.load(Ordering::Acquire) || progress.elapsed() >= DEVICE_TIMEOUT {
            return Err(lost(&output));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
        let now = output.meter.frames_played.load(Ordering::Relaxed);
        if now > played {
            (played, progress) = (now, std::time::Instant::now());
        }
    }
    Ok((total, output.meter.underrun_frames.load(Ordering::Relaxed)))
}

impl OutputSink {
    /// Routes `sources`-wide frames into `writer` (device channels wide); `listen` picks
    /// one source (0-based) for every channel.
    pub fn new(writer: RingWriter, sources: usize, listen: Option<usize>, meter: Arc<OutputMeter>) -> Self {
        Self { writer, sources, listen, scratch: Vec::new(), policy: unmix_stream::Policy::DropAndCount, meter }
    }
}

impl Sink for OutputSink {
    fn write(&mut self, samples: &[f32]) -> std::result::Result<(), BoxError> {
        let channels = self.writer.channels();
        let frames = samples.len() / self.sources;
        self.scratch.clear();
        self.scratch.resize(frames * channels, 0.0);
        for (src, dst) in samples.chunks_exact(self.sources).zip(self.scratch.chunks_exact_mut(channels)) {
            match self.listen {
                Some(k) => dst.fill(src[k]),
                None => dst[..self.sources].copy_from_slice(src),
            }
        }
        if self.policy == unmix_stream::Policy::DropAndCount {
            self.writer.push_or_drop(&self.scratch);
            return Ok(());
        }
        let (mut done, mut progress) = (0, std::time::Instant::now());
        while done < self.scratch.len() {
            let pushed = self.writer.push(&self.scratch[done..]) * channels;
            if pushed > 0 {
                (done, progress) = (done + pushed, std::time::Instant::now());
            } else if self.meter.device_error.load(Ordering::Acquire) || progress.elapsed() >= DEVICE_TIMEOUT {
                return Err("the output device went away".into());
            } else {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> std::result::Result<(), BoxError> {
        self.writer.close();
        Ok(())
    }
}

/// Interleaved little-endian `f32` to stdout (`--raw -`), for piping into other tools.
pub struct RawSink {
    out: std::io::BufWriter<std::io::Stdout>,
    bytes: Vec<u8>,
}

impl RawSink {
    /// A sink on this process's stdout.
    pub fn stdout() -> Self {
        Self { out: std::io::BufWriter::new(std::io::stdout()), bytes: Vec::new() }
    }
}

impl Sink for RawSink {
    fn write(&mut self, samples: &[f32]) -> std::result::Result<(), BoxError> {
        self.bytes.clear();
        self.bytes.extend(samples.iter().flat_map(|v| v.to_le_bytes()));
        self.out.write_all(&self.bytes)?;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> std::result::Result<(), BoxError> {
        self.out.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use unmix_stream::FrameRing;

    use super::*;

    /// An empty ring plays silence and counts it: a buffer larger than what the ring holds
    /// gets the ring's frames first, in order, then zeros, and the counters say how many
    /// of each; the device's format is converted to (here 16-bit integers). No allocation.
    #[test]
    fn an_empty_ring_plays_silence_and_is_counted() {
        let (mut writer, reader) = FrameRing::new(2, 64);
        let meter = Arc::new(OutputMeter::default());
        let mut playback = Playback::new(reader, meter.clone());
        // Three frames queued, a device buffer of five frames.
        let queued = [0.5f32, -0.5, 0.25, -0.25, 1.0, -1.0];
        assert_eq!(writer.push(&queued), 3);
        let mut buffer = [7i16; 10];
        let before = unmix_test_support::allocations();
        playback.fill(&mut buffer);
        assert_eq!(unmix_test_support::allocations() - before, 0, "the callback allocated");
        let played: Vec<i16> = queued.iter().map(|&v| dasp_sample::FromSample::from_sample_(v)).collect();
        assert_eq!(&buffer[..6], &played[..]);
        assert_eq!(&buffer[6..], &[0; 4], "the missing frames are silence");
        assert_eq!(meter.frames_played.load(Ordering::Relaxed), 3);
        assert_eq!(meter.underrun_frames.load(Ordering::Relaxed), 2);
        assert_eq!(meter.max_callback_frames.load(Ordering::Relaxed), 5);
        // A ring left empty: the whole buffer is silence, all of it counted.
        let mut buffer = [1.0f32; 8];
        playback.fill(&mut buffer);
        assert_eq!(buffer, [0.0; 8]);
        assert_eq!(meter.underrun_frames.load(Ordering::Relaxed), 6);
        assert_eq!(meter.frames_played.load(Ordering::Relaxed), 3);
    }

    /// A device buffer larger than the scratch array is filled in several pops, the
    /// frames still in order and none lost.
    #[test]
    fn a_large_buffer_is_filled_in_order() {
        let frames = 3000;
        let (mut writer, reader) = FrameRing::new(3, frames);
        let samples: Vec<f32> = (0..frames * 3).map(|i| i as f32 * 1e-4).collect();
        assert_eq!(writer.push(&samples), frames);
        let meter = Arc::new(OutputMeter::default());
        let mut playback = Playback::new(reader, meter.clone());
        let mut buffer = vec![0.0f32; frames * 3];
        playback.fill(&mut buffer);
        assert_eq!(buffer, samples);
        assert_eq!(meter.underrun_frames.load(Ordering::Relaxed), 0);
        assert_eq!(meter.frames_played.load(Ordering::Relaxed), frames as u64);
    }
}
