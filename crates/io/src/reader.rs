//! Either format, read in blocks: what a command that takes "a WAV or a CSV" opens.

use std::path::Path;

use crate::{ChannelSelection, CsvBlockReader, Result, WavBlockReader, is_csv, is_stdin};

/// A WAV or CSV file read in blocks, the format chosen by extension (`.csv` is CSV,
/// anything else WAV), with only the channels picked; `-` is the standard input: a WAV if
/// it starts like one (`RIFF`/`RF64`: a recorder piped in), else CSV (a logger).
pub enum BlockReader {
    /// A WAV (or RF64) file.
    Wav(WavBlockReader),
    /// A CSV file.
    Csv(CsvBlockReader),
}

impl BlockReader {
    /// Opens `path`; `csv_sample_rate_hz` is the rate given to CSV, which carries none.
    pub fn open_selected(path: &Path, csv_sample_rate_hz: u32, channels: &ChannelSelection) -> Result<Self> {
        Ok(if is_stdin(path) {
            Self::stdin(csv_sample_rate_hz, channels)?
        } else if is_csv(path) {
            Self::Csv(CsvBlockReader::open_selected(path, csv_sample_rate_hz, channels)?)
        } else {
            Self::Wav(WavBlockReader::open_selected(path, channels)?)
        })
    }

    /// The standard input, WAV or CSV by its first four bytes (read, then given back).
    fn stdin(csv_sample_rate_hz: u32, channels: &ChannelSelection) -> Result<Self> {
        use std::io::Read;
        let name = Path::new(crate::STDIN_NAME);
        let mut stdin = std::io::stdin();
        let mut first = Vec::with_capacity(4);
        // `take` + `read_to_end`: four bytes even from a pipe that hands them over one by one.
        (&mut stdin)
            .take(4)
            .read_to_end(&mut first)
            .map_err(|source| crate::Error::Io { path: name.to_path_buf(), source })?;
        let is_wav = first.starts_with(b"RIFF") || first.starts_with(b"RF64");
        let input: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(first).chain(stdin));
        Ok(if is_wav {
            Self::Wav(WavBlockReader::from_stream(name, input)?.select(channels)?)
        } else {
            Self::Csv(CsvBlockReader::from_reader(name, input, csv_sample_rate_hz, channels)?)
        })
    }

    /// Every channel of `path`.
    pub fn open(path: &Path, csv_sample_rate_hz: u32) -> Result<Self> {
        Self::open_selected(path, csv_sample_rate_hz, &ChannelSelection::all())
    }

    /// Channels per frame (those picked).
    pub fn channels(&self) -> usize {
        match self {
            Self::Wav(r) => r.channels(),
            Self::Csv(r) => r.channels(),
        }
    }

    /// The file's channel or column (zero-based) that channel `k` of the frames read
    /// comes from (they differ when some are picked or a time stamp is left out).
    pub fn file_channel(&self, k: usize) -> usize {
        match self {
            Self::Wav(r) => r.file_channel(k),
            Self::Csv(r) => r.file_column(k),
        }
    }

    /// Sample rate in Hz (for CSV, the one given).
    pub fn sample_rate_hz(&self) -> u32 {
        match self {
            Self::Wav(r) => r.sample_rate_hz(),
            Self::Csv(r) => r.sample_rate_hz(),
        }
    }

    /// Hands missing readings on as NaN — a WAV's non-finite samples, a CSV's empty, NaN
    /// or infinite cells — instead of refusing them: for a monitor that reports a
    /// sensor's dropouts and goes on.
    pub fn keep_missing_values(&mut self) {
        match self {
            Self::Wav(r) => r.keep_non_finite(),
            Self::Csv(r) => r.keep_missing(),
        }
    }

    /// Sets the rate a CSV's rows are taken at (a WAV keeps its own).
    pub fn set_csv_sample_rate_hz(&mut self, sample_rate_hz: u32) {
        if let Self::Csv(r) = self {
            r.set_sample_rate_hz(sample_rate_hz);
        }
    }

    /// A CSV's leading time-stamp column, and whether it was left out
    /// ([`CsvBlockReader::time_column`]).
    pub fn time_column(&self) -> Option<(&str, bool)> {
        match self {
            Self::Wav(_) => None,
            Self::Csv(r) => r.time_column(),
        }
    }

    /// A CSV's sampling interval from its time stamps ([`CsvBlockReader::time_step_s`]).
    pub fn time_step_s(&mut self) -> Result<Option<f64>> {
        match self {
            Self::Wav(_) => Ok(None),
            Self::Csv(r) => r.time_step_s(),
        }
    }

    /// How evenly a CSV's time stamps have stepped ([`CsvBlockReader::stamp_log`]).
    pub fn stamp_log(&self) -> Option<std::sync::Arc<crate::StampLog>> {
        match self {
            Self::Wav(_) => None,
            Self::Csv(r) => r.stamp_log(),
        }
    }

    /// Frames in the file, if its header says (WAV); a CSV is only known at its end.
    pub fn frames_total(&self) -> Option<usize> {
        match self {
            Self::Wav(r) => r.frames_total(),
            Self::Csv(_) => None,
        }
    }

    /// Replaces `out` with up to `max_frames` frames; returns the frames read, 0 at the end.
    pub fn read_block(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize> {
        match self {
            Self::Wav(r) => r.read_block(out, max_frames),
            Self::Csv(r) => r.read_block(out, max_frames),
        }
    }
}

impl unmix_core::Source for BlockReader {
    fn channels(&self) -> usize {
        BlockReader::channels(self)
    }

    fn sample_rate_hz(&self) -> u32 {
        BlockReader::sample_rate_hz(self)
    }

    fn frames_total(&self) -> Option<usize> {
        match self {
            Self::Wav(r) => unmix_core::Source::frames_total(r),
            Self::Csv(r) => unmix_core::Source::frames_total(r),
        }
    }

    fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> std::result::Result<usize, unmix_core::BoxError> {
        Ok(self.read_block(out, max_frames)?)
    }
}
