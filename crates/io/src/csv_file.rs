//! Sensor CSV: one row per frame, one numeric column per channel, an optional header.

use std::path::Path;

use unmix_core::Recording;

use crate::error::io_error;
use crate::{Error, Result, write_atomically};

/// Reads a CSV of numbers into a recording at `sample_rate_hz`.
///
/// The first row is a header when any of its cells is not a number. Cells may carry
/// surrounding spaces. An empty, non-numeric, NaN or infinite cell is an error naming its
/// line and column; so is a row of a different width.
pub fn read_csv(path: &Path, sample_rate_hz: u32) -> Result<Recording> {
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(file);
    let mut samples = Vec::new();
    let mut width = None;
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| Error::Csv { path: path.to_path_buf(), detail: e.to_string() })?;
        let line = record.position().map_or(index as u64 + 1, |p| p.line());
        let parsed: Vec<std::result::Result<f32, usize>> = record
            .iter()
            .enumerate()
            .map(|(c, cell)| cell.parse::<f32>().ok().filter(|v| v.is_finite()).ok_or(c))
            .collect();
        if index == 0 && parsed.iter().any(|p| p.is_err()) && record.iter().all(|c| c.parse::<f32>().is_err()) {
            // A header row: every cell is a name, not a value.
            width = Some(record.len());
            continue;
        }
        let expected = *width.get_or_insert(record.len());
        if record.len() != expected {
            return Err(Error::CsvWidth { path: path.to_path_buf(), line, got: record.len(), expected });
        }
        for p in parsed {
            match p {
                Ok(v) => samples.push(v),
                Err(c) => {
                    return Err(Error::CsvCell {
                        path: path.to_path_buf(),
                        line,
                        column: c + 1,
                        cell: record.get(c).unwrap_or_default().to_string(),
                    });
                }
            }
        }
    }
    let channels = width.unwrap_or(0);
    if samples.is_empty() {
        return Err(Error::Empty { path: path.to_path_buf() });
    }
    Recording::from_interleaved(sample_rate_hz, channels, samples)
        .map_err(|source| Error::Shape { path: path.to_path_buf(), source })
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
