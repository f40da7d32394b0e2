//! File input and output for unmix.
//!
//! - [`read_wav`]: 8/16/24/32-bit integer PCM and 32-bit float WAV (RIFF or RF64), any
//!   sample rate and channel count, scaled to `[-1, 1)` floats; a file and a stream by the
//!   same rules.
//! - [`read_csv`]: numeric columns, one row per frame, an optional header row, `,`, `;`
//!   or tab between cells; every bad cell is reported with its line and column.
//! - [`ChannelSelection`]: only some channels of a WAV or CSV, by number or CSV header name.
//! - [`BlockReader`]: a WAV or delimited text (`.csv`, `.tsv`), by extension, read in
//!   blocks in bounded memory.
//! - [`OutputPath`], [`OutputFile`]: the one way every output is written — a file staged
//!   beside its target and renamed into place whole, a FIFO, a character device or
//!   standard output written through, links followed, everything else refused;
//!   [`write_wav_f32`], [`write_csv`], [`WavStreamWriter`] and [`CsvStreamWriter`] write
//!   through it.

mod csv_file;
mod error;
mod output;
mod reader;
mod select;
mod stamps;
mod wav;

pub use csv_file::{CsvBlockReader, CsvStreamWriter, read_csv, read_csv_selected, time_unit_s, write_csv};
pub use error::{Error, OutputRefusal, Result};
pub use output::{
    OutputFile, OutputKind, OutputPath, register_created_dir, register_staged, remove_staged, temp_file_beside,
    temp_file_beside_keeping_extension, write_atomically,
};
pub use reader::BlockReader;
pub use select::ChannelSelection;
pub use stamps::StampLog;
pub use wav::{Clipping, WavBlockReader, WavFormat, WavStreamWriter, read_wav, write_wav_f32};

use std::path::Path;
use unmix_core::Recording;

/// Reads a recording, choosing the format by extension (`.csv` is CSV, anything else WAV).
///
/// `csv_sample_rate_hz` is the sample rate given to CSV input, which carries none.
pub fn read_recording(path: &Path, csv_sample_rate_hz: u32) -> Result<Recording> {
    if is_csv(path) { read_csv(path, csv_sample_rate_hz) } else { read_wav(path) }
}

/// Whether a path is `-`, the standard input (read as CSV by [`BlockReader`]).
pub fn is_stdin(path: &Path) -> bool {
    path == Path::new("-")
}

/// How messages name the standard input.
pub const STDIN_NAME: &str = "stdin";

/// How messages name an input: its path, or [`STDIN_NAME`] for `-`.
pub fn input_name(path: &Path) -> String {
    if is_stdin(path) { STDIN_NAME.into() } else { path.display().to_string() }
}

/// Whether a path names delimited text (by its extension: `.csv`, or `.tsv` for tabs);
/// everything else is taken as WAV.
pub fn is_csv(path: &Path) -> bool {
    is_tsv(path) || path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// Whether a path names tab-separated text (`.tsv`): read as CSV (the delimiter is
/// recognised from the first line), written with tabs.
pub fn is_tsv(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("tsv"))
}
