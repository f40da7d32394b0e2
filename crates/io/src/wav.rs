//! WAV input (8/16/24/32-bit integer PCM and 32-bit float, plain or
//! `WAVE_FORMAT_EXTENSIBLE`, RIFF or RF64, from a file or a stream by one parser and one set
//! of rules) and WAV output as 32-bit float or 16/24-bit integer PCM (RF64 beyond 4 GiB).

use std::path::Path;

use hound::{SampleFormat, WavSpec};
use unmix_core::Recording;

use crate::{ChannelSelection, Error, OutputFile, OutputPath, Result};

mod rf64;

/// Reads a whole WAV file into a recording of `f32` samples in `[-1, 1)`.
///
/// Integer PCM is scaled by `2^(bits-1)`; float WAV is taken as is. A truncated file
/// (fewer samples than its header promises) is an error, as is a non-finite sample.
pub fn read_wav(path: &Path) -> Result<Recording> {
    let mut reader = WavBlockReader::open(path)?;
    let mut samples = Vec::with_capacity(reader.frames_total().unwrap_or(0) * reader.channels());
    let mut block = Vec::new();
    while reader.read_block(&mut block, 1 << 16)? > 0 {
        samples.extend_from_slice(&block);
    }
    Recording::from_interleaved(reader.sample_rate_hz(), reader.channels(), samples)
        .map_err(|source| Error::Shape { path: path.to_path_buf(), source })
}

/// Writes a recording as a 32-bit float WAV (RF64 beyond 4 GiB), atomically.
pub fn write_wav_f32(path: &Path, recording: &Recording) -> Result<()> {
    let mut writer = WavStreamWriter::create(path, recording.channels(), recording.sample_rate_hz())?;
    for block in recording.interleaved().chunks(recording.channels() * 65_536) {
        writer.write(block)?;
    }
    writer.finish()
}

/// Size of the byte buffers between the file and the sample conversion.
const IO_BUFFER_BYTES: usize = 1 << 20;

/// How a WAV stores one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    U8,
    I16,
    I24,
    I32,
    F32,
}

/// Reads a WAV file block by block, so memory does not grow with the file's length.
///
/// The header is parsed by `rf64::read_header`, the same for a file and a stream (every
/// chunk's pad byte skipped); the sample data are read as raw bytes in large blocks
/// and converted with `dasp_sample` (`i16`, 24-bit and `i32` are scaled by `2^(bits-1)`,
/// unsigned 8-bit is centred first), which is several times faster than per-sample reads.
pub struct WavBlockReader {
    path: std::path::PathBuf,
    file: std::io::BufReader<Box<dyn std::io::Read + Send>>,
    channels: usize,
    sample_rate_hz: u32,
    encoding: Encoding,
    bytes_per_sample: usize,
    /// Frames the header promises; `None` for a stream whose header does not know (read
    /// to its end).
    frames_total: Option<usize>,
    frames_read: usize,
    bytes: Vec<u8>,
    /// The file's channels that are read, in output order (zero-based); `None`: all.
    selected: Option<Vec<usize>>,
    /// A block of every channel, when only some are selected.
    all: Vec<f32>,
    /// The end met inside a frame, after whole frames in the same block: reported by the
    /// next read.
    deferred_error: Option<Error>,
    /// Whether NaN and infinite samples are handed on (a monitor that reports and
    /// survives a sensor's dropouts) instead of refused.
    keep_non_finite: bool,
}

impl WavBlockReader {
    /// Opens `path` and reads its header: RIFF or RF64, by the same rules as a stream
    /// ([`from_stream`](Self::from_stream)), every chunk's pad byte skipped. A header that
    /// does not know the length (0, or a placeholder near 2³¹ or 2³² bytes beyond the
    /// file's end: a recording saved from a pipe) is read to the end of the file.
    pub fn open(path: &Path) -> Result<Self> {
        let io = |source| Error::Io { path: path.to_path_buf(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        let metadata = file.metadata().map_err(io)?;
        // A directory opens on Unix, and only its first read fails: said as what it is.
        if metadata.is_dir() {
            return Err(io(std::io::Error::new(std::io::ErrorKind::IsADirectory, "a directory, not a file")));
        }
        let file_bytes = metadata.len();
        let file: Box<dyn std::io::Read + Send> = Box::new(file);
        let mut file = std::io::BufReader::with_capacity(IO_BUFFER_BYTES, file);
        let mut counted = Counted { inner: &mut file, bytes: 0 };
        let (spec, bytes) =
            rf64::read_header(&mut counted).map_err(|detail| Error::Wav { path: path.to_path_buf(), detail })?;
        let available = file_bytes.saturating_sub(counted.bytes);
        let to_the_end = bytes == 0 || (bytes > available && bytes >= PLACEHOLDER_BYTES);
        let frames_total = match (to_the_end, frame_bytes(&spec)) {
            (false, frame) => Some(bytes / frame),
            (true, frame) if available.is_multiple_of(frame) => Some(available / frame),
            // Read to the end as a stream is, which ends inside a frame: the error says where.
            (true, _) => None,
        };
        let frames_total = frames_total
            .map(usize::try_from)
            .transpose()
            .map_err(|_| Error::Wav { path: path.to_path_buf(), detail: "too large for this machine".into() })?;
        Self::start(path, file, spec, frames_total)
    }

    /// Reads a WAV arriving on a stream (`-`: a recorder piped in, `arecord -t wav`), whose
    /// header may not know the length: a recorder that cannot go back to fill it in writes
    /// 0 or a placeholder near 2³¹ or 2³² bytes, and such a stream is read to its end (which
    /// must fall between two frames). A length below 2 GiB is taken as given (a whole file
    /// piped in, chunks after its data not read as samples).
    pub fn from_stream(path: &Path, stream: Box<dyn std::io::Read + Send>) -> Result<Self> {
        let mut file = std::io::BufReader::with_capacity(IO_BUFFER_BYTES, stream);
        let (spec, bytes) =
            rf64::read_header(&mut file).map_err(|detail| Error::Wav { path: path.to_path_buf(), detail })?;
        let frames_total = (bytes != 0 && bytes < PLACEHOLDER_BYTES).then(|| (bytes / frame_bytes(&spec)) as usize);
        Self::start(path, file, spec, frames_total)
    }

    /// The reader at the first sample byte of `file`, once its header said `spec`.
    fn start(
        path: &Path,
        file: std::io::BufReader<Box<dyn std::io::Read + Send>>,
        spec: WavSpec,
        frames_total: Option<usize>,
    ) -> Result<Self> {
        let wav_err = |detail: String| Error::Wav { path: path.to_path_buf(), detail };
        let channels = usize::from(spec.channels);
        // Containers are as wide as the sample (hound's own rule when it writes).
        let bytes_per_sample = usize::from(spec.bits_per_sample).div_ceil(8);
        let encoding = match (spec.sample_format, spec.bits_per_sample, bytes_per_sample) {
            (SampleFormat::Float, 32, 4) => Encoding::F32,
            (SampleFormat::Int, 8, 1) => Encoding::U8,
            (SampleFormat::Int, 16, 2) => Encoding::I16,
            (SampleFormat::Int, 24, 3) => Encoding::I24,
            (SampleFormat::Int, 32, 4) => Encoding::I32,
            (format, bits, bytes) => {
                return Err(wav_err(format!(
                    "unsupported sample format ({format:?}, {bits} bits in {bytes} bytes); use 8/16/24/32-bit integer or 32-bit float"
                )));
            }
        };
        if channels == 0 {
            return Err(wav_err("zero channels".into()));
        }
        if frames_total == Some(0) {
            return Err(Error::Empty { path: path.to_path_buf() });
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            channels,
            sample_rate_hz: spec.sample_rate,
            encoding,
            bytes_per_sample,
            frames_total,
            frames_read: 0,
            bytes: Vec::new(),
            selected: None,
            all: Vec::new(),
            deferred_error: None,
            keep_non_finite: false,
        })
    }

    /// Opens `path` and reads only the `channels` picked (by number from 1, in the order
    /// given); the others are skipped, and so are non-finite values in them.
    pub fn open_selected(path: &Path, channels: &ChannelSelection) -> Result<Self> {
        Self::open(path)?.select(channels)
    }

    /// Hands NaN and infinite samples on instead of refusing them: for a reader that
    /// reports a sensor's dropouts and goes on.
    pub fn keep_non_finite(&mut self) {
        self.keep_non_finite = true;
    }

    /// Reads only the `channels` picked (see [`open_selected`](Self::open_selected)).
    pub fn select(mut self, channels: &ChannelSelection) -> Result<Self> {
        let (path, reader) = (self.path.clone(), &mut self);
        if let Some(name) = channels.first_name() {
            return Err(Error::Selection {
                path: path.to_path_buf(),
                detail: format!("WAV channels are picked by number (from 1), not by name ('{name}')"),
            });
        }
        if !channels.is_all() {
            let picked = channels
                .resolve(reader.channels, None, "channel")
                .map_err(|detail| Error::Selection { path: path.to_path_buf(), detail })?;
            reader.selected = Some(picked);
        }
        Ok(self)
    }

    /// Channels per frame (those picked, if only some are).
    pub fn channels(&self) -> usize {
        self.selected.as_ref().map_or(self.channels, Vec::len)
    }

    /// The file's channel (zero-based) that channel `k` of the frames read comes from.
    pub fn file_channel(&self, k: usize) -> usize {
        self.selected.as_ref().map_or(k, |s| s[k])
    }

    /// Channels in the file.
    pub fn file_channels(&self) -> usize {
        self.channels
    }

    /// Sample rate in Hz.
    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// Frames the header promises (`None`: a stream read to its end).
    pub fn frames_total(&self) -> Option<usize> {
        self.frames_total
    }

    /// Frames read so far.
    pub fn frames_read(&self) -> usize {
        self.frames_read
    }

    /// Reads up to `max_frames` frames into `out` (cleared first); returns the frames read,
    /// 0 at the end. A truncated file or a non-finite sample is an error naming the frame.
    pub fn read_block(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize> {
        out.clear();
        if let Some(e) = self.deferred_error.take() {
            return Err(e);
        }
        let mut frames = self.frames_total.map_or(max_frames, |total| max_frames.min(total - self.frames_read));
        let frame_bytes = self.bytes_per_sample * self.channels;
        let wanted = frames * frame_bytes;
        // The buffer grows as the bytes arrive (doubling from 64 KiB), so that what a
        // header claims (65 535 channels, say) costs nothing until the data is there;
        // grown once, it serves every block after.
        let mut filled = 0;
        while filled < wanted {
            if filled == self.bytes.len() {
                let grow = (wanted - filled).min(filled.max(1 << 16));
                self.bytes.resize(filled + grow, 0);
            }
            let end = self.bytes.len().min(wanted);
            match std::io::Read::read(&mut self.file, &mut self.bytes[filled..end]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => return Err(Error::Io { path: self.path.clone(), source }),
            }
        }
        if filled < wanted {
            let at = self.frames_read + filled / frame_bytes;
            let detail = match self.frames_total {
                // A stream of unknown length ends here, between two frames.
                None if filled % frame_bytes == 0 => String::new(),
                None => {
                    format!("the stream ends inside frame {at} ({} of its {frame_bytes} bytes)", filled % frame_bytes)
                }
                Some(total) => format!("truncated: data ends in frame {at} of the {total} the header promises"),
            };
            // The whole frames before the end come first; the error, if any, with the next
            // call (a stream keeps everything up to it).
            frames = filled / frame_bytes;
            if !detail.is_empty() {
                let error = Error::Wav { path: self.path.clone(), detail };
                if frames == 0 {
                    return Err(error);
                }
                self.deferred_error = Some(error);
            }
        }
        let data = &self.bytes[..frames * frame_bytes];
        let non_finite = match &self.selected {
            None => {
                convert(self.encoding, data, out);
                out.iter().position(|v| !v.is_finite()).map(|i| (i / self.channels, i % self.channels))
            }
            Some(selected) => {
                self.all.clear();
                convert(self.encoding, data, &mut self.all);
                out.reserve(frames * selected.len());
                for frame in self.all.chunks_exact(self.channels) {
                    out.extend(selected.iter().map(|&c| frame[c]));
                }
                let k = selected.len();
                out.iter().position(|v| !v.is_finite()).map(|i| (i / k, selected[i % k]))
            }
        };
        if let Some((frame, channel)) = non_finite.filter(|_| !self.keep_non_finite) {
            return Err(Error::NonFinite { path: self.path.clone(), frame: self.frames_read + frame, channel });
        }
        self.frames_read += frames;
        Ok(frames)
    }
}

/// A data size at or above this (near 2³¹, or 2³²) is a recorder's placeholder for "to the
/// end": a pipe cannot be gone back into to write the real one.
const PLACEHOLDER_BYTES: u64 = 0x7FFF_0000;

/// Bytes of one frame of `spec` (containers as wide as the sample: `rf64::parse_fmt`
/// refuses any other).
fn frame_bytes(spec: &WavSpec) -> u64 {
    u64::from(spec.bits_per_sample.div_ceil(8).max(1)) * u64::from(spec.channels.max(1))
}

/// A reader that counts the bytes read through it (the header's length).
struct Counted<'a, R> {
    inner: &'a mut R,
    bytes: u64,
}

impl<R: std::io::Read> std::io::Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let got = self.inner.read(buf)?;
        self.bytes += got as u64;
        Ok(got)
    }
}

/// Little-endian sample bytes to `f32` in `[-1, 1)`, through `dasp_sample`.
fn convert(encoding: Encoding, bytes: &[u8], out: &mut Vec<f32>) {
    use dasp_sample::{I24, Sample};
    match encoding {
        Encoding::F32 => out.extend(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        Encoding::U8 => out.extend(bytes.iter().map(|&b| b.to_sample::<f32>())),
        Encoding::I16 => out.extend(bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]).to_sample::<f32>())),
        Encoding::I24 => out.extend(bytes.chunks_exact(3).map(|b| {
            // Sign-extend the 24-bit value through the top of an i32.
            let v = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
            I24::new_unchecked(v).to_sample::<f32>()
        })),
        Encoding::I32 => {
            out.extend(bytes.chunks_exact(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_sample::<f32>()))
        }
    }
}

/// The sample format of a written WAV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WavFormat {
    /// 32-bit IEEE float: any level, nothing clipped (the default).
    #[default]
    Float32,
    /// 16-bit integer PCM: samples beyond full scale (±1) are clipped and counted.
    Int16,
    /// 24-bit integer PCM: samples beyond full scale (±1) are clipped and counted.
    Int24,
}

impl WavFormat {
    fn spec(self) -> (u16, SampleFormat) {
        match self {
            Self::Float32 => (32, SampleFormat::Float),
            Self::Int16 => (16, SampleFormat::Int),
            Self::Int24 => (24, SampleFormat::Int),
        }
    }

    /// Bytes per sample in the file.
    pub fn bytes_per_sample(self) -> usize {
        usize::from(self.spec().0 / 8)
    }
}

/// Samples an integer writer clipped at full scale, and the largest magnitude it was
/// given; shared, so it can be read after the writer has moved into a pipeline.
#[derive(Debug, Default)]
pub struct Clipping {
    samples: std::sync::atomic::AtomicU64,
    /// `f32` bits of the largest |sample| written.
    peak_bits: std::sync::atomic::AtomicU32,
}

impl Clipping {
    /// Samples clipped so far.
    pub fn samples(&self) -> u64 {
        self.samples.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The largest magnitude written so far (full scale is 1).
    pub fn peak(&self) -> f32 {
        f32::from_bits(self.peak_bits.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Writes a WAV (32-bit float, or 16/24-bit PCM: [`WavFormat`]) as blocks arrive, through
/// [`OutputFile`]: into a temporary file that becomes `path` only on
/// [`finish`](Self::finish) (dropped unfinished, it leaves nothing behind), or straight
/// into a FIFO, a character device or standard output (`-`).
///
/// The header is hound's with a 28-byte `JUNK` chunk reserved after `WAVE`; the samples
/// are written as raw little-endian bytes and, in a file, the sizes are patched on
/// `finish`. A file that outgrows RIFF's 32-bit sizes (4 GiB: 46 minutes of 8 float
/// channels at 48 kHz) becomes RF64 (EBU Tech 3306) there: `RIFF` → `RF64`, `JUNK` →
/// `ds64` holding the 64-bit sizes, the 32-bit fields set to `0xFFFFFFFF`. Smaller files
/// stay plain WAV that every reader takes (they skip `JUNK`). A stream cannot be sought
/// back into: its sizes stay the placeholder `0xFFFFFFFF` ("to the end of the stream"),
/// as a recorder writing to a pipe leaves them, and every reader of a pipe takes that.
pub struct WavStreamWriter {
    path: std::path::PathBuf,
    out: OutputFile,
    header_len: u64,
    data_bytes: u64,
    channels: usize,
    format: WavFormat,
    clipping: std::sync::Arc<Clipping>,
    bytes: Vec<u8>,
    /// Largest RIFF size written as plain WAV (`u32::MAX`; lowered by tests).
    riff_limit: u64,
}

impl WavStreamWriter {
    /// Starts a float WAV of `channels` at `sample_rate_hz`.
    pub fn create(path: &Path, channels: usize, sample_rate_hz: u32) -> Result<Self> {
        Self::create_as(path, channels, sample_rate_hz, WavFormat::Float32)
    }

    /// Starts a WAV of `channels` at `sample_rate_hz` in `format` at `path` (replacing a
    /// file there: whether it may was the caller's decision).
    pub fn create_as(path: &Path, channels: usize, sample_rate_hz: u32, format: WavFormat) -> Result<Self> {
        let (bits_per_sample, sample_format) = format.spec();
        let spec = WavSpec {
            channels: u16::try_from(channels).map_err(|_| Error::Wav {
                path: path.to_path_buf(),
                detail: format!("{channels} channels is more than WAV allows"),
            })?,
            sample_rate: sample_rate_hz,
            bits_per_sample,
            sample_format,
        };
        let mut out = OutputFile::create(&OutputPath::check(path, true)?)?;
        let header = rf64::reserve_ds64(spec.into_header_for_infinite_file());
        std::io::Write::write_all(&mut out, &header)
            .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        Ok(Self {
            path: path.to_path_buf(),
            out,
            header_len: header.len() as u64,
            data_bytes: 0,
            channels,
            format,
            clipping: Default::default(),
            bytes: Vec::new(),
            riff_limit: u64::from(u32::MAX),
        })
    }

    /// What an integer format clipped (always nothing for float), readable at any time.
    pub fn clipping(&self) -> std::sync::Arc<Clipping> {
        self.clipping.clone()
    }

    /// Appends interleaved samples (whole frames).
    pub fn write(&mut self, samples: &[f32]) -> Result<()> {
        if !samples.len().is_multiple_of(self.channels) {
            return Err(Error::Wav { path: self.path.clone(), detail: "a block ends mid-frame".into() });
        }
        self.bytes.clear();
        match self.format {
            WavFormat::Float32 => self.bytes.extend(samples.iter().flat_map(|s| s.to_le_bytes())),
            WavFormat::Int16 => {
                let clipped = quantise(samples, 15, &mut |v| self.bytes.extend_from_slice(&(v as i16).to_le_bytes()));
                self.count(samples, clipped);
            }
            WavFormat::Int24 => {
                let clipped = quantise(samples, 23, &mut |v| self.bytes.extend_from_slice(&v.to_le_bytes()[..3]));
                self.count(samples, clipped);
            }
        }
        std::io::Write::write_all(&mut self.out, &self.bytes)
            .map_err(|source| Error::Io { path: self.path.clone(), source })?;
        self.data_bytes += self.bytes.len() as u64;
        Ok(())
    }

    fn count(&self, samples: &[f32], clipped: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let peak = samples.iter().fold(0.0f32, |m, s| m.max(s.abs()));
        self.clipping.peak_bits.fetch_max(peak.to_bits(), Relaxed); // bits order as values for v ≥ 0
        if clipped > 0 {
            self.clipping.samples.fetch_add(clipped, Relaxed);
        }
    }

    /// Frames written so far.
    pub fn frames_written(&self) -> usize {
        (self.data_bytes / self.format.bytes_per_sample() as u64) as usize / self.channels
    }

    /// In a file, writes the real sizes into the header and renames the file into place;
    /// in a stream, flushes the last samples.
    pub fn finish(mut self) -> Result<()> {
        if self.out.is_seekable() {
            let riff = self.header_len - 8 + self.data_bytes;
            if riff <= self.riff_limit {
                self.out.write_at(4, &(riff as u32).to_le_bytes())?;
                self.out.write_at(self.header_len - 4, &(self.data_bytes as u32).to_le_bytes())?;
            } else {
                let frames = self.data_bytes / self.format.bytes_per_sample() as u64 / self.channels as u64;
                self.out.write_at(0, &rf64::promote(riff, self.data_bytes, frames))?;
                self.out.write_at(self.header_len - 4, &u32::MAX.to_le_bytes())?;
            }
        }
        self.out.commit()
    }
}

/// Rounds each sample to the nearest step of `2^-bits` full scale — the scale the reader
/// divides by, so a written value reads back within half a step — clamped to the format's
/// range; hands each integer to `put` and returns how many were clipped.
fn quantise(samples: &[f32], bits: i32, put: &mut impl FnMut(i32)) -> u64 {
    let scale = (1i64 << bits) as f32;
    let (lo, hi) = (-scale, scale - 1.0);
    let mut clipped = 0;
    for &s in samples {
        let v = (s * scale).round();
        clipped += u64::from(!(lo..=hi).contains(&v));
        put(v.clamp(lo, hi) as i32);
    }
    clipped
}

impl unmix_core::Source for WavBlockReader {
    fn channels(&self) -> usize {
        WavBlockReader::channels(self)
    }

    fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// The frames still to come (the header's count less those read): a source's total
    /// is what it will produce.
    fn frames_total(&self) -> Option<usize> {
        self.frames_total.map(|total| total - self.frames_read)
    }

    fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> std::result::Result<usize, unmix_core::BoxError> {
        Ok(self.read_block(out, max_frames)?)
    }
}

impl unmix_core::Sink for WavStreamWriter {
    fn write(&mut self, samples: &[f32]) -> std::result::Result<(), unmix_core::BoxError> {
        Ok(WavStreamWriter::write(self, samples)?)
    }

    fn finish(self: Box<Self>) -> std::result::Result<(), unmix_core::BoxError> {
        Ok(WavStreamWriter::finish(*self)?)
    }
}

#[cfg(test)]
mod tests {
    use hound::{WavReader, WavWriter};

    use super::*;

    #[test]
    fn a_directory_is_the_file_systems_error() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("take.wav");
        std::fs::create_dir(&folder).unwrap();
        let error = read_wav(&folder).unwrap_err();
        assert!(matches!(&error, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::IsADirectory));
        assert_eq!(error.to_string(), format!("{}: a directory, not a file", folder.display()));
    }

    #[test]
    fn integer_formats_are_scaled_to_unit_range() {
        let dir = tempfile::tempdir().unwrap();
        for bits in [8u16, 16, 24, 32] {
            let path = dir.path().join(format!("pcm{bits}.wav"));
            let spec =
                WavSpec { channels: 2, sample_rate: 44_100, bits_per_sample: bits, sample_format: SampleFormat::Int };
            let mut w = WavWriter::create(&path, spec).unwrap();
            let full = 1i64 << (bits - 1);
            for v in [full / 2, -full / 4, -full, 0] {
                w.write_sample(v as i32).unwrap();
            }
            w.finalize().unwrap();
            let rec = read_wav(&path).unwrap();
            assert_eq!(rec.channels(), 2);
            assert_eq!(rec.frames(), 2);
            assert_eq!(rec.sample_rate_hz(), 44_100);
            assert_eq!(rec.interleaved(), &[0.5, -0.25, -1.0, 0.0], "{bits} bits");
        }
    }

    #[test]
    fn block_reader_matches_hound_for_every_format() {
        let dir = tempfile::tempdir().unwrap();
        for (bits, format) in [
            (8u16, SampleFormat::Int),
            (16, SampleFormat::Int),
            (24, SampleFormat::Int),
            (32, SampleFormat::Int),
            (32, SampleFormat::Float),
        ] {
            let path = dir.path().join(format!("b{bits}{format:?}.wav"));
            let spec = WavSpec { channels: 3, sample_rate: 22_050, bits_per_sample: bits, sample_format: format };
            let mut w = WavWriter::create(&path, spec).unwrap();
            let full = 1i64 << (bits - 1);
            for i in 0..3000i64 {
                let v = ((i * 7919) % (2 * full)) - full;
                match format {
                    SampleFormat::Int => w.write_sample(v as i32).unwrap(),
                    SampleFormat::Float => w.write_sample((i as f32 * 0.01).sin()).unwrap(),
                }
            }
            w.finalize().unwrap();
            let whole = read_wav(&path).unwrap();
            let mut reader = WavBlockReader::open(&path).unwrap();
            assert_eq!((reader.channels(), reader.sample_rate_hz(), reader.frames_total()), (3, 22_050, Some(1000)));
            let (mut all, mut block) = (Vec::new(), Vec::new());
            while reader.read_block(&mut block, 333).unwrap() > 0 {
                all.extend_from_slice(&block);
            }
            assert_eq!(all, whole.interleaved(), "{bits}-bit {format:?}");
        }
    }

    /// A recorder piped in writes its header before it knows the length: whatever it puts
    /// there (0, or a placeholder near 2³¹ or 2³²), the stream is read to its end; a real
    /// length is kept (a chunk after the data is not read as samples); a stream that ends
    /// inside a frame is an error naming it, after the whole frames before it.
    #[test]
    fn a_wav_stream_is_read_to_its_end_when_its_header_does_not_know_the_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("take.wav");
        let spec = WavSpec { channels: 3, sample_rate: 16_000, bits_per_sample: 16, sample_format: SampleFormat::Int };
        let mut w = WavWriter::create(&path, spec).unwrap();
        for i in 0..3000i32 {
            w.write_sample(((i * 7919) % 60_000 - 30_000) as i16).unwrap();
        }
        w.finalize().unwrap();
        let whole = read_wav(&path).unwrap();
        let file = std::fs::read(&path).unwrap();
        let data = file.windows(4).position(|w| w == b"data").unwrap() + 4;
        // The frames read, and how the reading ended.
        let read_all = |bytes: Vec<u8>| -> (Option<usize>, Vec<f32>, Result<()>) {
            let stream = Box::new(std::io::Cursor::new(bytes));
            let mut reader = WavBlockReader::from_stream(Path::new("stdin"), stream).unwrap();
            let (mut all, mut block) = (Vec::new(), Vec::new());
            let total = reader.frames_total();
            loop {
                match reader.read_block(&mut block, 256) {
                    Ok(0) => return (total, all, Ok(())),
                    Ok(_) => all.extend_from_slice(&block),
                    Err(e) => return (total, all, Err(e)),
                }
            }
        };
        for placeholder in [0u32, 0x7FFF_FFFF, 0xFFFF_FFFF] {
            let mut bytes = file.clone();
            bytes[4..8].copy_from_slice(&placeholder.to_le_bytes());
            bytes[data..data + 4].copy_from_slice(&placeholder.to_le_bytes());
            let (total, samples, end) = read_all(bytes);
            assert!(end.is_ok());
            assert_eq!((total, samples), (None, whole.interleaved().to_vec()), "{placeholder:#x}");
        }
        let mut with_tail = file.clone();
        with_tail.extend_from_slice(b"LIST\x04\x00\x00\x00INFO");
        let (total, samples, end) = read_all(with_tail);
        assert!(end.is_ok());
        assert_eq!((total, samples), (Some(1000), whole.interleaved().to_vec()));
        let mut cut = file.clone();
        cut[data..data + 4].copy_from_slice(&0u32.to_le_bytes());
        cut.truncate(cut.len() - 2); // the last frame loses a sample
        let (_, samples, end) = read_all(cut);
        assert_eq!(samples, whole.interleaved()[..999 * 3], "every whole frame before the end");
        let err = end.unwrap_err().to_string();
        assert!(
            err.starts_with("stdin: ") && err.contains("the stream ends inside frame 999 (4 of its 6 bytes)"),
            "{err}"
        );
        let not_wav = WavBlockReader::from_stream(
            Path::new("stdin"),
            Box::new(std::io::Cursor::new(b"time,a,b\n0,1,2\n".to_vec())),
        );
        assert!(not_wav.err().unwrap().to_string().contains("does not start with RIFF or RF64"));
    }

    #[test]
    fn picked_channels_in_the_order_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("array.wav");
        // Four channels; sample value = 10 × frame + channel. Channel 4 (from 1) holds a NaN.
        let mut samples: Vec<f32> = (0..400).map(|i| (10 * (i / 4) + i % 4) as f32).collect();
        samples[4 * 7 + 3] = f32::NAN;
        write_wav_f32(&path, &Recording::from_interleaved(8000, 4, samples.clone()).unwrap()).unwrap();
        let mut reader = WavBlockReader::open_selected(&path, &"3,1-2".parse().unwrap()).unwrap();
        assert_eq!((reader.channels(), reader.file_channels()), (3, 4));
        let (mut block, mut got) = (Vec::new(), Vec::new());
        // Blocks of an odd size, to cross frame boundaries at every place.
        while reader.read_block(&mut block, 7).unwrap() > 0 {
            got.extend_from_slice(&block);
        }
        let expected: Vec<f32> = samples.chunks(4).flat_map(|f| [f[2], f[0], f[1]]).collect();
        assert_eq!(got, expected, "the NaN in the channel left out is never looked at");
        // A NaN in a picked channel names the file's channel.
        let mut reader = WavBlockReader::open_selected(&path, &"4".parse().unwrap()).unwrap();
        let err = reader.read_block(&mut block, 100).unwrap_err().to_string();
        assert!(err.contains("frame 7 (counted from 0), channel 4 (counted from 1)"), "{err}");
        for (spec, says) in [
            ("2-5", "channel 5 asked for, but the file has 4 channels"),
            ("mic1", "picked by number (from 1), not by name ('mic1')"),
            ("1,1", "channel 1 is selected twice"),
        ] {
            let err = WavBlockReader::open_selected(&path, &spec.parse().unwrap()).err().unwrap().to_string();
            assert!(err.starts_with(&format!("{}: ", path.display())) && err.ends_with(says), "{spec}: {err}");
        }
    }

    #[test]
    fn stream_writer_output_reads_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.wav");
        let samples: Vec<f32> = (0..3000).map(|i| (i as f32 * 0.37).cos()).collect();
        let mut w = WavStreamWriter::create(&path, 2, 16_000).unwrap();
        for chunk in samples.chunks(2 * 111) {
            w.write(chunk).unwrap();
        }
        assert_eq!(w.frames_written(), 1500);
        assert!(!path.exists(), "nothing at the final path before finish");
        w.finish().unwrap();
        let back = read_wav(&path).unwrap();
        assert_eq!((back.channels(), back.sample_rate_hz()), (2, 16_000));
        assert_eq!(back.interleaved(), &samples[..]);
        // Under 4 GiB it stays plain WAV: hound itself reads it (skipping the reserved JUNK).
        let by_hound: Vec<f32> = WavReader::open(&path).unwrap().samples::<f32>().map(|v| v.unwrap()).collect();
        assert_eq!(by_hound, samples);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // Dropped unfinished: no file, no temporary left.
        let mut w = WavStreamWriter::create(&dir.path().join("never.wav"), 1, 8000).unwrap();
        w.write(&[0.5]).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// 16- and 24-bit output: hound reads the integers the nearest steps gave, samples
    /// beyond full scale are clipped and counted, the peak is kept, and our reader gives
    /// every sample back within half a step; promoted to RF64 the frame count still holds.
    #[test]
    fn integer_output_rounds_clips_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let samples = [0.0f32, 0.5, -0.5, 1.0, -1.0, 1.7, -3.0, 0.25 / 32_768.0, 0.75 / 32_768.0, -0.1];
        for (format, bits) in [(WavFormat::Int16, 16u16), (WavFormat::Int24, 24)] {
            let path = dir.path().join(format!("i{bits}.wav"));
            let mut w = WavStreamWriter::create_as(&path, 2, 44_100, format).unwrap();
            let clipping = w.clipping();
            w.write(&samples[..4]).unwrap();
            w.write(&samples[4..]).unwrap();
            assert_eq!(w.frames_written(), 5);
            w.finish().unwrap();
            let scale = f64::from(1u32 << (bits - 1));
            let expected: Vec<i32> =
                samples.iter().map(|&s| (f64::from(s) * scale).round().clamp(-scale, scale - 1.0) as i32).collect();
            let mut reader = WavReader::open(&path).unwrap();
            assert_eq!(reader.spec().bits_per_sample, bits);
            assert_eq!(reader.spec().sample_format, SampleFormat::Int);
            let by_hound: Vec<i32> = reader.samples::<i32>().map(|v| v.unwrap()).collect();
            assert_eq!(by_hound, expected, "{format:?}");
            // +1.0, +1.7 and −3.0 are beyond the range (−1.0 is its lowest value).
            assert_eq!((clipping.samples(), clipping.peak()), (3, 3.0), "{format:?}");
            let back = read_wav(&path).unwrap();
            for (&b, &s) in back.interleaved().iter().zip(&samples) {
                assert!((f64::from(b) - f64::from(s.clamp(-1.0, 1.0))).abs() <= 1.0 / scale, "{format:?}: {s} → {b}");
            }
            // As RF64, the sample count per channel is counted in the format's bytes.
            let mut w = WavStreamWriter::create_as(&dir.path().join("big.wav"), 2, 44_100, format).unwrap();
            w.riff_limit = 10;
            w.write(&samples).unwrap();
            w.finish().unwrap();
            let bytes = std::fs::read(dir.path().join("big.wav")).unwrap();
            assert_eq!(le_u64(&bytes, 36), 5, "{format:?}");
            assert_eq!(read_wav(&dir.path().join("big.wav")).unwrap(), back);
        }
        let mut w = WavStreamWriter::create(&dir.path().join("f.wav"), 1, 8000).unwrap();
        w.write(&[4.0]).unwrap();
        assert_eq!(w.clipping().samples(), 0, "float does not clip");
    }

    #[test]
    fn float_round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.wav");
        let rec = Recording::from_interleaved(8000, 3, vec![0.1, -2.5, 3.25, 1e-7, 0.0, -0.0]).unwrap();
        write_wav_f32(&path, &rec).unwrap();
        assert_eq!(read_wav(&path).unwrap(), rec);
        // Nothing but the file itself is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    fn le_u32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn le_u64(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn stream_writer_becomes_rf64_beyond_the_riff_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.wav");
        let samples: Vec<f32> = (0..3 * 1000).map(|i| (i as f32 * 0.11).sin()).collect();
        let mut w = WavStreamWriter::create(&path, 3, 48_000).unwrap();
        // As if 4 GiB had been reached: the promotion path, on a small file.
        w.riff_limit = 1000;
        for chunk in samples.chunks(3 * 77) {
            w.write(chunk).unwrap();
        }
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[0..4], b"RF64");
        assert_eq!(le_u32(&bytes, 4), u32::MAX);
        assert_eq!(&bytes[12..16], b"ds64");
        assert_eq!(le_u64(&bytes, 20), bytes.len() as u64 - 8, "ds64 RIFF size");
        assert_eq!(le_u64(&bytes, 28), 4 * 3000, "ds64 data size");
        assert_eq!(le_u64(&bytes, 36), 1000, "ds64 sample count per channel");
        let data_at = bytes.windows(4).position(|w| w == b"data").unwrap();
        assert_eq!(le_u32(&bytes, data_at + 4), u32::MAX);
        let mut reader = WavBlockReader::open(&path).unwrap();
        assert_eq!((reader.channels(), reader.sample_rate_hz(), reader.frames_total()), (3, 48_000, Some(1000)));
        let (mut all, mut block) = (Vec::new(), Vec::new());
        while reader.read_block(&mut block, 300).unwrap() > 0 {
            all.extend_from_slice(&block);
        }
        assert_eq!(all, samples);
        assert_eq!(read_wav(&path).unwrap().interleaved(), &samples[..]);
    }

    /// Another writer's RF64 of hound's integer formats (plain PCM and
    /// WAVE_FORMAT_EXTENSIBLE): the RIFF file with `RF64`/`ds64` in front of it.
    fn to_rf64(riff: &[u8]) -> Vec<u8> {
        let data_at = riff.windows(4).position(|w| w == b"data").unwrap();
        let data_size = u64::from(le_u32(riff, data_at + 4));
        let mut out = rf64::promote(0, data_size, 0).to_vec();
        out.extend_from_slice(&riff[12..]);
        let data_at = data_at + rf64::PROMOTED_HEADER - 12;
        out[data_at + 4..data_at + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        let riff_size = out.len() as u64 - 8;
        out[20..28].copy_from_slice(&riff_size.to_le_bytes());
        out
    }

    #[test]
    fn rf64_integer_files_read_like_their_riff_twins() {
        let dir = tempfile::tempdir().unwrap();
        for (channels, bits) in [(2u16, 16u16), (3, 24)] {
            let riff_path = dir.path().join(format!("r{bits}.wav"));
            let spec =
                WavSpec { channels, sample_rate: 32_000, bits_per_sample: bits, sample_format: SampleFormat::Int };
            let mut w = WavWriter::create(&riff_path, spec).unwrap();
            let full = 1i64 << (bits - 1);
            for i in 0..(600 * i64::from(channels)) {
                w.write_sample((((i * 7919) % (2 * full)) - full) as i32).unwrap();
            }
            w.finalize().unwrap();
            let rf64_path = dir.path().join(format!("f{bits}.wav"));
            std::fs::write(&rf64_path, to_rf64(&std::fs::read(&riff_path).unwrap())).unwrap();
            let (a, b) = (read_wav(&riff_path).unwrap(), read_wav(&rf64_path).unwrap());
            assert_eq!(a, b, "{channels} channels, {bits} bits");
            assert_eq!(b.frames(), 600);
        }
    }

    #[test]
    fn broken_rf64_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.wav");
        let mut w = WavStreamWriter::create(&good, 2, 8000).unwrap();
        w.riff_limit = 0;
        w.write(&[0.25; 2 * 100]).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let check = |name: &str, bytes: &[u8], want: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let err = read_wav(&path).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(want), "{name}: {err}");
        };
        check("header.wav", &bytes[..30], "truncated");
        check("samples.wav", &bytes[..bytes.len() - 10], "truncated");
        let mut no_ds64 = bytes.clone();
        no_ds64[12..16].copy_from_slice(b"JUNK");
        check("nods64.wav", &no_ds64, "ds64");
        let mut alaw = bytes.clone();
        let fmt_at = alaw.windows(4).position(|w| w == b"fmt ").unwrap();
        alaw[fmt_at + 8..fmt_at + 10].copy_from_slice(&6u16.to_le_bytes());
        check("alaw.wav", &alaw, "format tag");
    }

    /// A 16-bit stereo WAV assembled chunk by chunk: `before` chunks (id, payload) ahead
    /// of `fmt `, the data chunk with `data_size` in its header, then `after` bytes.
    fn assembled(before: &[(&[u8; 4], &[u8])], frames: &[[i16; 2]], data_size: Option<u32>, after: &[u8]) -> Vec<u8> {
        let mut body: Vec<u8> = b"WAVE".to_vec();
        let mut chunk = |id: &[u8; 4], payload: &[u8], size: u32| {
            body.extend_from_slice(id);
            body.extend_from_slice(&size.to_le_bytes());
            body.extend_from_slice(payload);
            if payload.len() % 2 == 1 {
                body.push(0); // the pad byte of an odd-sized chunk
            }
        };
        for (id, payload) in before {
            chunk(id, payload, payload.len() as u32);
        }
        let mut fmt = Vec::new();
        for v in [1u16, 2] {
            fmt.extend_from_slice(&v.to_le_bytes()); // PCM, 2 channels
        }
        fmt.extend_from_slice(&8000u32.to_le_bytes());
        fmt.extend_from_slice(&32000u32.to_le_bytes());
        for v in [4u16, 16] {
            fmt.extend_from_slice(&v.to_le_bytes()); // block align, bits
        }
        chunk(b"fmt ", &fmt, 16);
        let data: Vec<u8> = frames.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
        chunk(b"data", &data, data_size.unwrap_or(data.len() as u32));
        body.extend_from_slice(after);
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// The same bytes, from a file and from a stream.
    fn both_ways(dir: &Path, name: &str, bytes: &[u8]) -> (Result<Vec<f32>>, Result<Vec<f32>>) {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let all = |mut reader: WavBlockReader| -> Result<Vec<f32>> {
            let (mut out, mut block) = (Vec::new(), Vec::new());
            while reader.read_block(&mut block, 3)? > 0 {
                out.extend_from_slice(&block);
            }
            Ok(out)
        };
        let from_file = WavBlockReader::open(&path).and_then(all);
        let stream: Box<dyn std::io::Read + Send> = Box::new(std::io::Cursor::new(bytes.to_vec()));
        let from_stream = WavBlockReader::from_stream(&path, stream).and_then(all);
        (from_file, from_stream)
    }

    /// One reader, one set of rules: an odd-sized chunk with its pad byte before the data
    /// (refused from a file by hound: "Failed to read enough bytes"), a header whose length
    /// is a recorder's placeholder (refused from a file, read to the end from a stream),
    /// and a chunk after the data (not samples) read the same from a file and a stream.
    #[test]
    fn a_file_and_a_stream_follow_the_same_rules() {
        let dir = tempfile::tempdir().unwrap();
        let frames = [[1000i16, -1000], [2000, -2000], [3000, -3000], [4000, -4000], [5000, -5000]];
        let want: Vec<f32> = frames.iter().flatten().map(|&v| f32::from(v) / 32768.0).collect();
        let odd = assembled(&[(b"LIST", b"hello")], &frames, None, &[]);
        let placeholder = assembled(&[], &frames, Some(u32::MAX), &[]);
        let trailing = assembled(&[], &frames, None, b"LIST\x04\x00\x00\x00abcd");
        for (name, bytes) in [("odd.wav", &odd), ("placeholder.wav", &placeholder), ("trailing.wav", &trailing)] {
            let (file, stream) = both_ways(dir.path(), name, bytes);
            assert_eq!(file.unwrap(), want, "{name} from a file");
            assert_eq!(stream.unwrap(), want, "{name} from a stream");
        }
        // A placeholder whose data end inside a frame is an error either way.
        let mut ragged = placeholder.clone();
        ragged.pop();
        let (file, stream) = both_ways(dir.path(), "ragged.wav", &ragged);
        for e in [file.unwrap_err().to_string(), stream.unwrap_err().to_string()] {
            assert!(e.contains("ragged.wav") && e.contains("ends inside frame 4"), "{e}");
        }
    }

    /// A header may claim anything: 65 535 channels and a length "to the end of the
    /// stream" once made a block of 65 536 frames a 4 GiB buffer before a byte was read.
    /// The buffer grows as the bytes arrive.
    #[test]
    fn what_a_header_claims_costs_nothing_until_the_data_is_there() {
        let spec = hound::WavSpec {
            channels: u16::MAX,
            sample_rate: 8000,
            bits_per_sample: 8,
            sample_format: hound::SampleFormat::Int,
        };
        let mut bytes = std::io::Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(&mut bytes, spec).unwrap();
        for k in 0..u32::from(u16::MAX) {
            writer.write_sample((k % 7) as i8).unwrap();
        }
        writer.finalize().unwrap();
        let mut bytes = bytes.into_inner();
        let data = bytes.windows(4).position(|w| w == b"data").unwrap();
        bytes[data + 4..data + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut reader = WavBlockReader::from_stream(Path::new("wide"), Box::new(std::io::Cursor::new(bytes))).unwrap();
        let mut out = Vec::new();
        assert_eq!(reader.read_block(&mut out, 1 << 16).unwrap(), 1);
        assert!(reader.bytes.capacity() < 1 << 20, "{} bytes held", reader.bytes.capacity());
        assert_eq!(reader.read_block(&mut out, 1 << 16).unwrap(), 0);
    }

    /// A container wider than its sample (24 bits in 4 bytes) would be read at the wrong
    /// offsets: refused, with the reason.
    #[test]
    fn a_container_wider_than_its_sample_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = assembled(&[], &[[1, 2]], None, &[]);
        let fmt = bytes.windows(4).position(|w| w == b"fmt ").unwrap() + 8;
        bytes[fmt + 14..fmt + 16].copy_from_slice(&24u16.to_le_bytes()); // 24 bits in the 2-byte containers
        let (file, stream) = both_ways(dir.path(), "wide.wav", &bytes);
        for e in [file.unwrap_err().to_string(), stream.unwrap_err().to_string()] {
            assert!(e.contains("containers wider than the sample"), "{e}");
        }
    }
}
