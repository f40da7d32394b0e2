//! Sensor CSV: one row per frame, one numeric column per channel, an optional header.

use std::path::Path;

use unmix_core::Recording;

use crate::error::io_error;
use crate::{Error, Result, write_atomically};

/// Reads a sensor CSV block by block, so memory does not grow with the file's length.
///
/// The first row is a header when every one of its cells is not a number. Cells may carry
/// surrounding spaces; `#` starts a comment line. An empty, non-numeric, NaN or infinite
/// cell is an error naming its line and column; so is a row of a different width.
pub struct CsvBlockReader {
    path: std::path::PathBuf,
    reader: csv::Reader<std::io::BufReader<std::fs::File>>,
    record: csv::StringRecord,
    /// The first data row, read while looking for a header.
    pending: Option<csv::StringRecord>,
    channels: usize,
    sample_rate_hz: u32,
}

impl CsvBlockReader {
    /// Opens `path`, reading rows as frames at `sample_rate_hz`.
    pub fn open(path: &Path, sample_rate_hz: u32) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(io_error(path))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_reader(std::io::BufReader::with_capacity(1 << 20, file));
        let mut first = csv::StringRecord::new();
        let has_first = reader
            .read_record(&mut first)
            .map_err(|e| Error::Csv { path: path.to_path_buf(), detail: e.to_string() })?;
        if !has_first {
            return Err(Error::Empty { path: path.to_path_buf() });
        }
        let is_header = first.iter().all(|c| c.parse::<f32>().is_err());
        let channels = first.len();
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            record: csv::StringRecord::new(),
            pending: (!is_header).then_some(first),
            channels,
            sample_rate_hz,
        })
    }

    /// Channels per frame (columns).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The sample rate given at opening.
    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// Reads up to `max_frames` rows into `out` (cleared first); returns the frames read,
    /// 0 at the end.
    pub fn read_block(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize> {
        out.clear();
        let mut frames = 0;
        while frames < max_frames {
            let record = match self.pending.take() {
                Some(r) => r,
                None => {
                    let more = self
                        .reader
                        .read_record(&mut self.record)
                        .map_err(|e| Error::Csv { path: self.path.clone(), detail: e.to_string() })?;
                    if !more {
                        break;
                    }
                    std::mem::take(&mut self.record)
                }
            };
            let line = record.position().map_or(0, csv::Position::line);
            if record.len() != self.channels {
                return Err(Error::CsvWidth {
                    path: self.path.clone(),
                    line,
                    got: record.len(),
                    expected: self.channels,
                });
            }
            for (c, cell) in record.iter().enumerate() {
                match cell.parse::<f32>() {
                    Ok(v) if v.is_finite() => out.push(v),
                    _ => {
                        return Err(Error::CsvCell {
                            path: self.path.clone(),
                            line,
                            column: c + 1,
                            cell: cell.to_string(),
                        });
                    }
                }
            }
            self.record = record;
            frames += 1;
        }
        Ok(frames)
    }
}

impl unmix_core::Source for CsvBlockReader {
    fn channels(&self) -> usize {
        self.channels
    }

    fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    fn frames_total(&self) -> Option<usize> {
        None
    }

    fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> std::result::Result<usize, unmix_core::BoxError> {
        Ok(self.read_block(out, max_frames)?)
    }
}

/// Reads a whole CSV of numbers into a recording at `sample_rate_hz` (see [`CsvBlockReader`]).
pub fn read_csv(path: &Path, sample_rate_hz: u32) -> Result<Recording> {
    let mut reader = CsvBlockReader::open(path, sample_rate_hz)?;
    let mut samples = Vec::new();
    let mut block = Vec::new();
    while reader.read_block(&mut block, 1 << 14)? > 0 {
        samples.extend_from_slice(&block);
    }
    if samples.is_empty() {
        return Err(Error::Empty { path: path.to_path_buf() });
    }
    Recording::from_interleaved(sample_rate_hz, reader.channels(), samples)
        .map_err(|source| Error::Shape { path: path.to_path_buf(), source })
}

/// Writes CSV rows as blocks arrive, into a temporary file that becomes `path` only on
/// [`finish`](Self::finish); dropped unfinished, it leaves nothing behind.
pub struct CsvStreamWriter {
    path: std::path::PathBuf,
    writer: csv::Writer<std::io::BufWriter<std::fs::File>>,
    tmp: tempfile::TempPath,
    channels: usize,
    row: Vec<String>,
}

impl CsvStreamWriter {
    /// Starts a CSV with one column per name.
    pub fn create(path: &Path, names: &[String]) -> Result<Self> {
        let (file, tmp) = crate::atomic::temp_beside(path)?.into_parts();
        let mut writer = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
        writer.write_record(names).map_err(|e| Error::Csv { path: path.to_path_buf(), detail: e.to_string() })?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
            tmp,
            channels: names.len().max(1),
            row: Vec::with_capacity(names.len()),
        })
    }

    /// Appends interleaved samples (whole frames), one row per frame.
    pub fn write(&mut self, samples: &[f32]) -> Result<()> {
        for frame in samples.chunks_exact(self.channels) {
            self.row.clear();
            self.row.extend(frame.iter().map(|v| v.to_string()));
            self.writer
                .write_record(&self.row)
                .map_err(|e| Error::Csv { path: self.path.clone(), detail: e.to_string() })?;
        }
        Ok(())
    }

    /// Flushes and renames the file into place.
    pub fn finish(mut self) -> Result<()> {
        self.writer.flush().map_err(io_error(&self.path))?;
        drop(self.writer);
        self.tmp.persist(&self.path).map_err(|e| Error::Io { path: self.path.clone(), source: e.error })?;
        Ok(())
    }
}

impl unmix_core::Sink for CsvStreamWriter {
    fn write(&mut self, samples: &[f32]) -> std::result::Result<(), unmix_core::BoxError> {
        Ok(CsvStreamWriter::write(self, samples)?)
    }

    fn finish(self: Box<Self>) -> std::result::Result<(), unmix_core::BoxError> {
        Ok(CsvStreamWriter::finish(*self)?)
    }
}

/// Writes a recording as CSV with a header of `names` (one per channel), atomically.
pub fn write_csv(path: &Path, recording: &Recording, names: &[String]) -> Result<()> {
    let csv_err = |e: csv::Error| Error::Csv { path: path.to_path_buf(), detail: e.to_string() };
    write_atomically(path, |w| {
        let mut writer = csv::Writer::from_writer(w);
        writer.write_record(names).map_err(csv_err)?;
        let mut row = Vec::with_capacity(recording.channels());
        for frame in recording.iter_frames() {
            row.clear();
            row.extend(frame.iter().map(|v| v.to_string()));
            writer.write_record(&row).map_err(csv_err)?;
        }
        writer.flush().map_err(io_error(path))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn header_is_optional() {
        let dir = tempfile::tempdir().unwrap();
        let with = read_csv(&write(dir.path(), "a.csv", "x, y\n1, 2\n3.5, -4e-1\n"), 100).unwrap();
        let without = read_csv(&write(dir.path(), "b.csv", "1,2\n3.5,-0.4\n"), 100).unwrap();
        assert_eq!(with, without);
        assert_eq!(with.channels(), 2);
        assert_eq!(with.interleaved(), &[1.0, 2.0, 3.5, -0.4]);
    }

    #[test]
    fn bad_cell_names_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "bad.csv", "a,b\n1,2\n3,oops\n");
        let err = read_csv(&p, 100).unwrap_err();
        assert!(matches!(err, Error::CsvCell { line: 3, column: 2, .. }), "{err}");
        assert!(err.to_string().contains("bad.csv: line 3, column 2: 'oops'"), "{err}");
        let p = write(dir.path(), "nan.csv", "1,2\nNaN,2\n");
        assert!(matches!(read_csv(&p, 100).unwrap_err(), Error::CsvCell { line: 2, column: 1, .. }));
        let p = write(dir.path(), "ragged.csv", "1,2\n3\n");
        assert!(matches!(read_csv(&p, 100).unwrap_err(), Error::CsvWidth { line: 2, got: 1, expected: 2, .. }));
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.csv");
        let rec = Recording::from_interleaved(50, 2, vec![0.25, -1.5, 3.0, 1e-3]).unwrap();
        write_csv(&p, &rec, &["s1".into(), "s2".into()]).unwrap();
        assert_eq!(read_csv(&p, 50).unwrap(), rec);
    }
}
