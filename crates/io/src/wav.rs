//! WAV input (every format `hound` reads) and 32-bit float WAV output.

use std::path::Path;

use hound::{SampleFormat, WavReader, WavSpec, WavWriter};
use unmix_core::Recording;

use crate::{Error, Result, write_atomically};

/// Reads a whole WAV file into a recording of `f32` samples in `[-1, 1)`.
///
/// Integer PCM is scaled by `2^(bits-1)`; float WAV is taken as is. A truncated file
/// (fewer samples than its header promises, or a cut mid-frame) is an error, as is a
/// non-finite float sample.
pub fn read_wav(path: &Path) -> Result<Recording> {
    let wav_err = |e: hound::Error| Error::Wav { path: path.to_path_buf(), detail: e.to_string() };
    let reader = WavReader::open(path).map_err(|e| match e {
        hound::Error::IoError(source) if source.kind() == std::io::ErrorKind::NotFound => {
            Error::Io { path: path.to_path_buf(), source }
        }
        other => wav_err(other),
    })?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels);
    let expected = reader.len() as usize;
    let samples: Vec<f32> = match spec.sample_format {
        SampleFormat::Float => reader.into_samples::<f32>().collect::<std::result::Result<_, _>>().map_err(wav_err)?,
        SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<std::result::Result<_, _>>()
                .map_err(wav_err)?
        }
    };
    if samples.len() < expected || !samples.len().is_multiple_of(channels.max(1)) {
        return Err(Error::Wav {
            path: path.to_path_buf(),
            detail: format!("truncated: header promises {expected} samples, file holds {}", samples.len()),
        });
    }
    if samples.is_empty() {
        return Err(Error::Empty { path: path.to_path_buf() });
    }
    if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite { path: path.to_path_buf(), frame: i / channels, channel: i % channels });
    }
    Recording::from_interleaved(spec.sample_rate, channels, samples)
        .map_err(|source| Error::Shape { path: path.to_path_buf(), source })
}

/// Writes a recording as a 32-bit float WAV, atomically.
pub fn write_wav_f32(path: &Path, recording: &Recording) -> Result<()> {
    let channels = u16::try_from(recording.channels()).map_err(|_| Error::Wav {
        path: path.to_path_buf(),
        detail: format!("{} channels is more than WAV allows", recording.channels()),
    })?;
    let spec = WavSpec {
        channels,
        sample_rate: recording.sample_rate_hz(),
        bits_per_sample: 32,
        sample_format: SampleFormat::Float,
    };
    let wav_err = |e: hound::Error| Error::Wav { path: path.to_path_buf(), detail: e.to_string() };
    write_atomically(path, |w| {
        let mut writer = WavWriter::new(w, spec).map_err(wav_err)?;
        for &s in recording.interleaved() {
            writer.write_sample(s).map_err(wav_err)?;
        }
        writer.finalize().map_err(wav_err)
    })
}

/// Reads a WAV file block by block, so memory does not grow with the file's length.
pub struct WavBlockReader {
    path: std::path::PathBuf,
    reader: WavReader<std::io::BufReader<std::fs::File>>,
    channels: usize,
    sample_rate_hz: u32,
    int_scale: Option<f32>,
    frames_total: usize,
    frames_read: usize,
}

impl WavBlockReader {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> Result<Self> {
        let reader = WavReader::open(path).map_err(|e| match e {
            hound::Error::IoError(source) => Error::Io { path: path.to_path_buf(), source },
            other => Error::Wav { path: path.to_path_buf(), detail: other.to_string() },
        })?;
        let spec = reader.spec();
        let channels = usize::from(spec.channels);
        if channels == 0 {
            return Err(Error::Wav { path: path.to_path_buf(), detail: "zero channels".into() });
        }
        let frames_total = reader.len() as usize / channels;
        if frames_total == 0 {
            return Err(Error::Empty { path: path.to_path_buf() });
        }
        let int_scale = match spec.sample_format {
            SampleFormat::Float => None,
            SampleFormat::Int => Some(1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32),
        };
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            channels,
            sample_rate_hz: spec.sample_rate,
            int_scale,
            frames_total,
            frames_read: 0,
        })
    }

    /// Channels per frame.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Sample rate in Hz.
    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// Frames the header promises.
    pub fn frames_total(&self) -> usize {
        self.frames_total
    }

    /// Reads up to `max_frames` frames into `out` (cleared first); returns the frames read,
    /// 0 at the end. A truncated file or a non-finite sample is an error naming the frame.
    pub fn read_block(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize> {
        out.clear();
        let want = max_frames.min(self.frames_total - self.frames_read) * self.channels;
        // A read error here is the data ending early (hound reports it as I/O); the
        // length check below turns it into one clear message.
        match self.int_scale {
            None => out.extend(self.reader.samples::<f32>().take(want).map_while(|s| s.ok())),
            Some(scale) => {
                out.extend(self.reader.samples::<i32>().take(want).map_while(|s| s.ok()).map(|v| v as f32 * scale))
            }
        }
        if out.len() != want {
            return Err(Error::Wav {
                path: self.path.clone(),
                detail: format!(
                    "truncated: data ends in frame {} of the {} the header promises",
                    self.frames_read + out.len() / self.channels,
                    self.frames_total
                ),
            });
        }
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                path: self.path.clone(),
                frame: self.frames_read + i / self.channels,
                channel: i % self.channels,
            });
        }
        let frames = out.len() / self.channels;
        self.frames_read += frames;
        Ok(frames)
    }
}

/// Writes a 32-bit float WAV as blocks arrive, into a temporary file that becomes `path`
/// only on [`finish`](Self::finish); dropped unfinished, it leaves nothing behind.
pub struct WavStreamWriter {
    path: std::path::PathBuf,
    writer: Option<WavWriter<std::io::BufWriter<std::fs::File>>>,
    tmp: Option<tempfile::TempPath>,
}

impl WavStreamWriter {
    /// Starts a float WAV of `channels` at `sample_rate_hz`.
    pub fn create(path: &Path, channels: usize, sample_rate_hz: u32) -> Result<Self> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".unmix-")
            .suffix(".part")
            .tempfile_in(dir)
            .map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        crate::atomic::make_readable(tmp.as_file()).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        let (file, tmp) = tmp.into_parts();
        let spec = WavSpec {
            channels: u16::try_from(channels).map_err(|_| Error::Wav {
                path: path.to_path_buf(),
                detail: format!("{channels} channels is more than WAV allows"),
            })?,
            sample_rate: sample_rate_hz,
            bits_per_sample: 32,
            sample_format: SampleFormat::Float,
        };
        let writer = WavWriter::new(std::io::BufWriter::new(file), spec)
            .map_err(|e| Error::Wav { path: path.to_path_buf(), detail: e.to_string() })?;
        Ok(Self { path: path.to_path_buf(), writer: Some(writer), tmp: Some(tmp) })
    }

    /// Appends interleaved samples (whole frames).
    pub fn write(&mut self, samples: &[f32]) -> Result<()> {
        let path = &self.path;
        let w =
            self.writer.as_mut().ok_or_else(|| Error::Wav { path: path.clone(), detail: "already finished".into() })?;
        for &s in samples {
            w.write_sample(s).map_err(|e| Error::Wav { path: path.clone(), detail: e.to_string() })?;
        }
        Ok(())
    }

    /// Finalises the header and renames the file into place.
    pub fn finish(mut self) -> Result<()> {
        let path = self.path.clone();
        if let Some(w) = self.writer.take() {
            w.finalize().map_err(|e| Error::Wav { path: path.clone(), detail: e.to_string() })?;
        }
        if let Some(tmp) = self.tmp.take() {
            tmp.persist(&path).map_err(|e| Error::Io { path: path.clone(), source: e.error })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn float_round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.wav");
        let rec = Recording::from_interleaved(8000, 3, vec![0.1, -2.5, 3.25, 1e-7, 0.0, -0.0]).unwrap();
        write_wav_f32(&path, &rec).unwrap();
        assert_eq!(read_wav(&path).unwrap(), rec);
        // Nothing but the file itself is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
