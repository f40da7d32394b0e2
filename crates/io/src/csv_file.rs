//! Sensor CSV: one row per frame, one numeric column per channel, an optional header.

use std::path::Path;
use std::sync::Arc;

use unmix_core::Recording;
use unmix_core::limits::MAX_CSV_RECORD_BYTES;

use crate::error::io_error;
use crate::stamps::{StampCheck, StampLog};
use crate::{ChannelSelection, Error, OutputFile, OutputPath, Result, write_atomically};

/// Reads a sensor CSV block by block, so memory does not grow with the file's length.
///
/// The first row is a header when every one of its cells is not a number. With no
/// columns picked, a first column whose header names a time stamp (`time`, `t`,
/// `timestamp`, `time_ms`, `Time (s)`, `date`, …: see [`time_unit_s`]) is not a channel:
/// it is skipped, and [`time_step_s`](Self::time_step_s) reads the sampling interval off
/// it. Cells may carry
/// surrounding spaces; `#` starts a comment line. The delimiter is `;` or tab when the
/// first line holds any (whichever more), else `,`; with `;` or tab a decimal comma
/// (`0,25`) is read as a decimal point, as spreadsheets in many locales write it. A delimiter ending
/// every line (an empty last column) is allowed. An empty, non-numeric, NaN or infinite
/// cell in a selected column is an error naming its line and column; so is a row of a
/// different width.
pub struct CsvBlockReader {
    path: std::path::PathBuf,
    reader: csv::Reader<Box<dyn std::io::Read + Send>>,
    record: csv::StringRecord,
    /// Data rows read ahead (looking for a header, measuring the time step), in order.
    pending: std::collections::VecDeque<csv::StringRecord>,
    /// A bad row met after good ones in the same block: reported by the next read.
    deferred_error: Option<Error>,
    /// The leading time-stamp column, if the header names one: its name, its unit in
    /// seconds, and whether it was left out (no columns picked).
    time_column: Option<(String, f64, bool)>,
    /// Cells per row in the file.
    width: usize,
    /// The cells that are channels, in output order (zero-based).
    selected: Vec<usize>,
    /// How evenly the time stamps step, with a time-stamp column.
    stamps: Option<StampCheck>,
    /// Whether every row ends with an empty cell (a trailing delimiter).
    trailing_empty: bool,
    decimal_comma: bool,
    /// Whether empty, NaN and infinite cells read as NaN (a monitor that reports and
    /// survives a logger's dropouts) instead of refused.
    keep_missing: bool,
    sample_rate_hz: u32,
}

impl CsvBlockReader {
    /// Opens `path`, reading every column as a channel and rows as frames at
    /// `sample_rate_hz`.
    pub fn open(path: &Path, sample_rate_hz: u32) -> Result<Self> {
        Self::open_selected(path, sample_rate_hz, &ChannelSelection::all())
    }

    /// Opens `path`, reading the `columns` as channels (in that order) and rows as frames
    /// at `sample_rate_hz`; other columns (a time stamp, say) are skipped unread.
    pub fn open_selected(path: &Path, sample_rate_hz: u32, columns: &ChannelSelection) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(io_error(path))?;
        Self::from_reader(path, Box::new(file), sample_rate_hz, columns)
    }

    /// Reads CSV from `input` (the standard input: a logger piped in), called `path` in
    /// messages (see [`Self::open_selected`]). Rows are taken as they arrive: a block ends
    /// early only at the end of the input, so a slow stream is best read in small blocks.
    pub fn from_reader(
        path: &Path,
        input: Box<dyn std::io::Read + Send>,
        sample_rate_hz: u32,
        columns: &ChannelSelection,
    ) -> Result<Self> {
        // The delimiter is read off the first line; what was read to find it is put back
        // in front of the rest, so a pipe is read once.
        let mut input = CsvLines::new(input);
        let (delimiter, first_lines) = sniff_delimiter(&mut input).map_err(io_error(path))?;
        let input: Box<dyn std::io::Read + Send> =
            Box::new(std::io::Read::chain(std::io::Cursor::new(first_lines), input));
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .trim(csv::Trim::All)
            .buffer_capacity(1 << 20)
            .from_reader(input);
        let mut first = csv::StringRecord::new();
        if !next_record(&mut reader, &mut first, path)? {
            return Err(Error::Empty { path: path.to_path_buf() });
        }
        let decimal_comma = delimiter != b',';
        let is_header = first.iter().all(|c| parse_number::<f32>(c, decimal_comma).is_none())
            && first.iter().any(|c| !c.is_empty());
        let width = first.len();
        let trailing_empty = width > 1 && first.get(width - 1) == Some("");
        let selectable = if trailing_empty { width - 1 } else { width };
        // A logger's time stamps are not a sensor: without a pick they are left out.
        let time_column = match (is_header, first.get(0)) {
            (true, Some(name)) => {
                time_unit_s(name).map(|unit| (name.to_string(), unit, columns.is_all() && selectable > 1))
            }
            _ => None,
        };
        let selected = match time_column {
            Some((_, _, true)) => (1..selectable).collect(),
            _ => columns
                .resolve(selectable, is_header.then_some(&first), "column")
                .map_err(|detail| Error::Selection { path: path.to_path_buf(), detail })?,
        };
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            record: csv::StringRecord::new(),
            pending: if is_header { Default::default() } else { [first].into() },
            deferred_error: None,
            stamps: time_column.as_ref().map(|(_, unit, _)| StampCheck::new(*unit)),
            time_column,
            width,
            selected,
            trailing_empty,
            decimal_comma,
            keep_missing: false,
            sample_rate_hz,
        })
    }

    /// Channels per frame (columns).
    pub fn channels(&self) -> usize {
        self.selected.len()
    }

    /// The file's column (zero-based) that channel `k` of the frames read comes from.
    pub fn file_column(&self, k: usize) -> usize {
        self.selected[k]
    }

    /// The sample rate given at opening (or by [`set_sample_rate_hz`](Self::set_sample_rate_hz)).
    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }

    /// Reads empty, NaN and infinite cells as NaN instead of refusing them: for a reader
    /// that reports a logger's dropouts and goes on. Text that is no number is still
    /// refused.
    pub fn keep_missing(&mut self) {
        self.keep_missing = true;
    }

    /// Sets the rate the rows are taken at (CSV carries none: the caller decides, from
    /// [`time_step_s`](Self::time_step_s) for instance).
    pub fn set_sample_rate_hz(&mut self, sample_rate_hz: u32) {
        self.sample_rate_hz = sample_rate_hz;
    }

    /// The leading time-stamp column, if the header names one: its name, and whether it
    /// was left out (no columns picked) rather than read as a channel.
    pub fn time_column(&self) -> Option<(&str, bool)> {
        self.time_column.as_ref().map(|(name, _, skipped)| (name.as_str(), *skipped))
    }

    /// The sampling interval in seconds, from the time-stamp column: the median step of
    /// its first rows (read ahead; they are still read as frames). `None` without such a
    /// column, or when its first rows are not increasing numbers (dates, say).
    pub fn time_step_s(&mut self) -> Result<Option<f64>> {
        const ROWS: usize = 33;
        let Some((_, unit, _)) = self.time_column else { return Ok(None) };
        while self.pending.len() < ROWS {
            let mut record = csv::StringRecord::new();
            if !next_record(&mut self.reader, &mut record, &self.path)? {
                break;
            }
            self.pending.push_back(record);
        }
        let stamps: Option<Vec<f64>> =
            self.pending.iter().map(|r| r.get(0).and_then(|c| parse_number::<f64>(c, self.decimal_comma))).collect();
        let Some(stamps) = stamps else { return Ok(None) };
        let mut steps: Vec<f64> = stamps.windows(2).map(|w| w[1] - w[0]).collect();
        if steps.is_empty() || steps.iter().any(|d| !(d.is_finite() && *d > 0.0)) {
            return Ok(None);
        }
        steps.sort_by(f64::total_cmp);
        let step_s = steps[steps.len() / 2] * unit;
        if let Some(stamps) = &mut self.stamps {
            stamps.set_step_s(step_s);
        }
        Ok(Some(step_s))
    }

    /// How evenly the time stamps have stepped so far (`None` without a time-stamp
    /// column): a handle that stays readable after the reader has moved into a pipeline.
    pub fn stamp_log(&self) -> Option<Arc<StampLog>> {
        self.stamps.as_ref().map(StampCheck::log)
    }

    /// Reads up to `max_frames` rows into `out` (cleared first); returns the frames read,
    /// 0 at the end.
    /// The rows before a bad one are returned first; the error comes with the next call, so
    /// that a stream can keep everything up to it.
    pub fn read_block(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize> {
        out.clear();
        if let Some(e) = self.deferred_error.take() {
            return Err(e);
        }
        let mut frames = 0;
        while frames < max_frames {
            match self.read_row(out) {
                Ok(true) => frames += 1,
                Ok(false) => break,
                Err(e) => {
                    out.truncate(frames * self.selected.len());
                    if frames == 0 {
                        return Err(e);
                    }
                    self.deferred_error = Some(e);
                    break;
                }
            }
        }
        Ok(frames)
    }

    /// Appends the next row's picked cells to `out`; `false` at the end of the input.
    fn read_row(&mut self, out: &mut Vec<f32>) -> Result<bool> {
        let record = match self.pending.pop_front() {
            Some(r) => r,
            None => {
                if !next_record(&mut self.reader, &mut self.record, &self.path)? {
                    return Ok(false);
                }
                std::mem::take(&mut self.record)
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        if record.len() != self.width {
            return Err(Error::CsvWidth { path: self.path.clone(), line, got: record.len(), expected: self.width });
        }
        if self.trailing_empty && record.get(self.width - 1) != Some("") {
            return Err(Error::CsvCell {
                path: self.path.clone(),
                line,
                column: self.width,
                cell: record[self.width - 1].to_string(),
                expected: "is not empty, as the first row's last cell is",
            });
        }
        for &c in &self.selected {
            match parse_cell(&record[c], self.decimal_comma) {
                Ok(v) => out.push(v),
                Err(_) if self.keep_missing && is_missing(&record[c], self.decimal_comma) => out.push(f32::NAN),
                Err(expected) => {
                    return Err(Error::CsvCell {
                        path: self.path.clone(),
                        line,
                        column: c + 1,
                        cell: record[c].to_string(),
                        expected,
                    });
                }
            }
        }
        if let Some(stamps) = &mut self.stamps {
            stamps.follow(record.get(0).and_then(|c| parse_number(c, self.decimal_comma)), line, self.sample_rate_hz);
        }
        self.record = record;
        Ok(true)
    }
}

impl unmix_core::Source for CsvBlockReader {
    fn channels(&self) -> usize {
        self.selected.len()
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

/// Whether a column's header names a time stamp, and its unit in seconds: the name's first
/// word (split at anything neither letter nor digit, so `t1` or `s2` are not) is `time`,
/// `timestamp`, `t`, `date`, `datetime`, `epoch`, `elapsed`, `seconds` or `sec`; a later
/// word `ms`, `us`/`µs`, `ns`, `min` or `h` gives the unit (`time_ms`, `Time (s)`,
/// `t[us]`), seconds otherwise.
pub fn time_unit_s(name: &str) -> Option<f64> {
    let lower = name.trim().to_lowercase();
    let mut words = lower.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty());
    let first = words.next()?;
    let unit = |w: &str| match w {
        "ms" | "msec" | "millis" | "milliseconds" => Some(1e-3),
        "us" | "µs" | "usec" | "micros" | "microseconds" => Some(1e-6),
        "ns" | "nanoseconds" => Some(1e-9),
        "min" | "minutes" => Some(60.0),
        "h" | "hours" => Some(3600.0),
        "s" | "sec" | "secs" | "seconds" => Some(1.0),
        _ => None,
    };
    let named = matches!(
        first,
        "time" | "timestamp" | "t" | "date" | "datetime" | "epoch" | "elapsed" | "seconds" | "sec" | "secs"
    );
    named.then(|| words.find_map(unit).unwrap_or(1.0))
}

/// Whether a cell is a missing reading rather than a wrong one: empty, NaN or infinite
/// (beyond `f32`'s range included).
fn is_missing(cell: &str, decimal_comma: bool) -> bool {
    cell.trim().is_empty()
        || parse_number::<f64>(cell, decimal_comma).is_some_and(|v| !v.is_finite())
        || parse_number::<f32>(cell, decimal_comma).is_some_and(|v| !v.is_finite())
}

/// A sample: a number within the range of `f32` (with `decimal_comma`, `0,25` reads as
/// 0.25), or what is wrong with the cell.
fn parse_cell(cell: &str, decimal_comma: bool) -> std::result::Result<f32, &'static str> {
    match parse_number::<f32>(cell, decimal_comma) {
        Some(v) if v.is_finite() => Ok(v),
        Some(v) if v.is_nan() => Err("is not a number (NaN)"),
        // A finite number beyond ±3.4·10³⁸ reads as an infinite sample.
        Some(_) if parse_number::<f64>(cell, decimal_comma).is_some_and(f64::is_finite) => {
            Err("is beyond the range of 32-bit samples (±3.4e38)")
        }
        Some(_) => Err("is infinite"),
        None if cell.is_empty() => Err("is empty, where a number should be"),
        None => Err("is not a number"),
    }
}

/// Any number `T` reads (`f32` for samples, `f64` for time stamps, whose epoch seconds
/// need more digits), NaN and infinities included.
fn parse_number<T: std::str::FromStr>(cell: &str, decimal_comma: bool) -> Option<T> {
    match cell.parse::<T>() {
        Ok(v) => Some(v),
        Err(_) if decimal_comma && cell.contains(',') => cell.replacen(',', ".", 1).parse::<T>().ok(),
        Err(_) => None,
    }
}

/// The delimiter of the first line that is neither empty nor a comment, and the bytes read
/// to find it: `;` or tab if the line holds any (whichever more), else `,`. `;` and tab
/// never occur inside a number, while a comma may be a decimal comma in files that
/// separate cells with `;`.
fn sniff_delimiter(input: &mut impl std::io::BufRead) -> std::io::Result<(u8, Vec<u8>)> {
    let mut consumed = Vec::new();
    loop {
        let start = consumed.len();
        if input.read_until(b'\n', &mut consumed)? == 0 {
            return Ok((b',', consumed));
        }
        let text = String::from_utf8_lossy(&consumed[start..]);
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let count = |d: char| text.matches(d).count();
        let delimiter = match (count(';'), count('\t')) {
            (0, 0) => b',',
            (s, t) if s >= t => b';',
            _ => b'\t',
        };
        return Ok((delimiter, consumed));
    }
}

/// The input of a CSV parser, line for line, so that the parser's line numbers are the
/// file's: a comment line becomes `#` and an empty line a space, both records that
/// [`next_record`] skips, instead of lines the parser would skip without counting them.
/// Quoted cells are followed (a line break inside one does not end its record), and the
/// input ends with an error once a record runs past [`MAX_CSV_RECORD_BYTES`]: the parser
/// holds a whole record in memory, and a file without line breaks (not a CSV) would
/// otherwise be read into memory whole.
struct CsvLines<R> {
    inner: std::io::BufReader<R>,
    /// The current line as the parser gets it, and how much of it was served.
    line: Vec<u8>,
    served: usize,
    /// Lines read (the file's line number of the last one), and the line the current
    /// record began on.
    lines: u64,
    record_line: u64,
    /// Bytes of the current record before the current line.
    record_bytes: usize,
    /// Where the parser would be at the end of the last line.
    state: Quoting,
}

/// Where a parser is in a record, as far as quotes go: at the start of a cell, in a
/// cell that began without a quote (a quote there is a character), in a quoted cell, or
/// just after a quote in one (the end of the cell, or the first of a doubled quote).
/// `,`, `;` and tab all end a cell here, whichever the file uses: a quote right after a
/// decimal comma is no number either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    CellStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

impl Quoting {
    fn after(self, byte: u8) -> Self {
        use Quoting::*;
        match (self, byte) {
            (Quoted, b'"') => QuoteInQuoted,
            (Quoted, _) => Quoted,
            (CellStart, b'"') | (QuoteInQuoted, b'"') => Quoted,
            (_, b',' | b';' | b'\t') => CellStart,
            _ => Unquoted,
        }
    }
}

impl<R: std::io::Read> CsvLines<R> {
    fn new(inner: R) -> Self {
        Self {
            inner: std::io::BufReader::with_capacity(1 << 16, inner),
            line: Vec::new(),
            served: 0,
            lines: 0,
            record_line: 1,
            record_bytes: 0,
            state: Quoting::CellStart,
        }
    }

    /// Reads the next line into `self.line`, as the parser is to get it; `false` at the end.
    fn next_line(&mut self) -> std::io::Result<bool> {
        use std::io::BufRead as _;
        self.line.clear();
        self.served = 0;
        let room = (MAX_CSV_RECORD_BYTES - self.record_bytes) as u64;
        let read = std::io::Read::take(&mut self.inner, room + 1).read_until(b'\n', &mut self.line)?;
        if read == 0 {
            return Ok(false);
        }
        let starts_record = self.state != Quoting::Quoted;
        if starts_record {
            self.record_line = self.lines + 1;
        }
        self.lines += 1;
        if read as u64 > room {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "line {}: a row longer than {MAX_CSV_RECORD_BYTES} bytes (is this a CSV file, with a line per row?)",
                    self.record_line
                ),
            ));
        }
        // The parser counts a line at each `\n` but ends a record at a `\r` as well, so
        // that every record after a `\r\n` would be numbered a line too early.
        if self.line.ends_with(b"\r\n") {
            self.line.remove(self.line.len() - 2);
        }
        let ended = self.line.last() == Some(&b'\n');
        let content = self.line.len() - usize::from(ended);
        if starts_record && self.line.first() == Some(&b'#') {
            // Quotes in a comment open nothing.
            self.line.splice(1..content, []);
            return Ok(true);
        }
        if starts_record && content == 0 && ended {
            self.line.insert(0, b' ');
            return Ok(true);
        }
        // A line without a quote, outside quotes, ends its record: most lines of a sensor
        // CSV, told at the speed of a byte search.
        self.state = if self.state != Quoting::Quoted && !self.line[..content].contains(&b'"') {
            Quoting::CellStart
        } else {
            self.line[..content].iter().fold(self.state, |state, &b| state.after(b))
        };
        if self.state == Quoting::Quoted && ended {
            self.record_bytes += self.line.len();
        } else {
            (self.state, self.record_bytes) = (Quoting::CellStart, 0);
        }
        Ok(true)
    }
}

impl<R: std::io::Read> std::io::Read for CsvLines<R> {
    /// As many lines as `buf` holds (the parser asks for a megabyte at a time) and as
    /// have arrived: once the bytes read so far are used up, the lines already taken are
    /// handed on rather than waiting for more, or a logger's pipe would be parsed only a
    /// megabyte late.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            if self.served == self.line.len() {
                if filled > 0 && self.inner.buffer().is_empty() {
                    break;
                }
                if !self.next_line()? {
                    break;
                }
            }
            let n = (buf.len() - filled).min(self.line.len() - self.served);
            buf[filled..filled + n].copy_from_slice(&self.line[self.served..self.served + n]);
            (self.served, filled) = (self.served + n, filled + n);
        }
        Ok(filled)
    }
}

impl<R: std::io::Read> std::io::BufRead for CsvLines<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.served == self.line.len() {
            self.next_line()?;
        }
        Ok(&self.line[self.served..])
    }

    fn consume(&mut self, n: usize) {
        self.served = (self.served + n).min(self.line.len());
    }
}

/// Reads the next record that is neither a comment (a first cell starting with `#`) nor
/// an empty line into `record`; `false` at the end of the input.
fn next_record(
    reader: &mut csv::Reader<Box<dyn std::io::Read + Send>>,
    record: &mut csv::StringRecord,
    path: &Path,
) -> Result<bool> {
    loop {
        let more =
            reader.read_record(record).map_err(|e| Error::Csv { path: path.to_path_buf(), detail: e.to_string() })?;
        let skipped = match record.get(0) {
            Some(first) => first.starts_with('#') || (record.len() == 1 && first.is_empty()),
            None => true,
        };
        if !more || !skipped {
            return Ok(more);
        }
    }
}

/// Reads a whole CSV of numbers into a recording at `sample_rate_hz` (see [`CsvBlockReader`]).
pub fn read_csv(path: &Path, sample_rate_hz: u32) -> Result<Recording> {
    read_csv_selected(path, sample_rate_hz, &ChannelSelection::all())
}

/// Reads the `columns` of a CSV into a recording at `sample_rate_hz` (see
/// [`CsvBlockReader::open_selected`]).
pub fn read_csv_selected(path: &Path, sample_rate_hz: u32, columns: &ChannelSelection) -> Result<Recording> {
    let mut reader = CsvBlockReader::open_selected(path, sample_rate_hz, columns)?;
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
/// [`finish`](Self::finish); dropped unfinished, it leaves nothing behind. A log
/// ([`create_log`](Self::create_log)) is written in place instead, each block flushed.
pub struct CsvStreamWriter {
    path: std::path::PathBuf,
    writer: csv::Writer<OutputFile>,
    /// A log: every block flushed as it is written, in place.
    log: bool,
    channels: usize,
    row: Vec<String>,
}

impl CsvStreamWriter {
    /// Starts a CSV with one column per name, through [`OutputFile`]: staged and renamed
    /// into place on finish, or straight into a stream.
    pub fn create(path: &Path, names: &[String]) -> Result<Self> {
        let out = OutputFile::create(&OutputPath::check(path, true)?)?;
        Self::start(path, out, false, names)
    }

    /// Starts a CSV that others read while it grows (a live session's monitoring scores):
    /// written at `path` itself (replacing a file there), every block of rows flushed as it
    /// is written, so each row is complete on disk once written and a session that dies
    /// leaves the rows it wrote.
    pub fn create_log(path: &Path, names: &[String]) -> Result<Self> {
        let out = OutputFile::log(&OutputPath::check(path, true)?)?;
        let mut log = Self::start(path, out, true, names)?;
        log.flush()?;
        Ok(log)
    }

    fn start(path: &Path, out: OutputFile, log: bool, names: &[String]) -> Result<Self> {
        let delimiter = if crate::is_tsv(path) { b'\t' } else { b',' };
        let mut writer = csv::WriterBuilder::new().delimiter(delimiter).from_writer(out);
        writer.write_record(names).map_err(|e| Error::Csv { path: path.to_path_buf(), detail: e.to_string() })?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
            log,
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
        if self.log && !samples.is_empty() {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.writer.flush().map_err(io_error(&self.path))
    }

    /// Flushes and renames the file into place (a log and a stream are only flushed).
    pub fn finish(mut self) -> Result<()> {
        self.flush()?;
        let out =
            self.writer.into_inner().map_err(|e| Error::Io { path: self.path.clone(), source: e.into_error() })?;
        out.commit()
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
    let delimiter = if crate::is_tsv(path) { b'\t' } else { b',' };
    write_atomically(path, |w| {
        let mut writer = csv::WriterBuilder::new().delimiter(delimiter).from_writer(w);
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

    /// An endless input: `head`, then `fill` forever.
    struct Endless {
        head: std::io::Cursor<Vec<u8>>,
        fill: u8,
    }

    impl std::io::Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.head.read(buf)? {
                0 => {
                    buf.fill(self.fill);
                    Ok(buf.len())
                }
                n => Ok(n),
            }
        }
    }

    /// A file without line breaks, or a quoted cell that never closes, once grew memory
    /// until the allocator failed: the record is refused at its bound instead.
    #[test]
    fn an_endless_record_is_refused_at_its_bound() {
        let endless = |head: &str, fill| Endless { head: std::io::Cursor::new(head.as_bytes().to_vec()), fill };
        let open = |input: Endless| {
            CsvBlockReader::from_reader(Path::new("stdin"), Box::new(input), 100, &ChannelSelection::all())
        };
        let e = open(endless("", b'1')).err().expect("refused").to_string();
        assert_eq!(e, "stdin: line 1: a row longer than 1048576 bytes (is this a CSV file, with a line per row?)");
        let mut reader = open(endless("a,b\n1,2\n3,\"", b'\n')).unwrap();
        let mut out = Vec::new();
        assert_eq!(reader.read_block(&mut out, 10).unwrap(), 1);
        let e = reader.read_block(&mut out, 10).unwrap_err().to_string();
        assert!(e.starts_with("stdin: line 3: a row longer than"), "{e}");
        // A quote in a comment opens nothing; a long quoted cell within the bound is read.
        let text = format!("# \"quoted\n1,\"{}\"\n2,3\n", "2".repeat(10_000));
        let mut reader = CsvBlockReader::from_reader(
            Path::new("x"),
            Box::new(std::io::Cursor::new(text)),
            100,
            &ChannelSelection::all(),
        )
        .unwrap();
        let e = reader.read_block(&mut out, 10).unwrap_err().to_string();
        assert!(e.contains("line 2, column 2: '2222"), "{e}");
    }

    /// The parser skipped comment and empty lines without counting them, so that a bad
    /// cell after them was given a line number too small.
    #[test]
    fn line_numbers_count_comments_empty_lines_and_quoted_breaks() {
        let cases = [
            ("# c\n# d\n1,2e99\n", 3),
            ("1,2\n# c\n\n# d\n3,2e99\n", 5),
            ("\r\n\r\n1,2\r\n3,x\r\n", 4),
            ("1,2\r\n3,4\r\n5,x\r\n", 3),
            ("\"a\nb\",c\n1,2\n\n# \"\n2,x\n", 6),
            ("1,2\n  \n3,x", 3),
        ];
        for (text, line) in cases {
            let input = Box::new(std::io::Cursor::new(text.to_string()));
            let mut reader =
                CsvBlockReader::from_reader(Path::new("f.csv"), input, 1, &ChannelSelection::all()).unwrap();
            let mut out = Vec::new();
            let e = loop {
                match reader.read_block(&mut out, 1) {
                    Ok(0) => panic!("{text:?}: no error"),
                    Ok(_) => {}
                    Err(e) => break e.to_string(),
                }
            };
            assert!(e.starts_with(&format!("f.csv: line {line}, column 2")), "{text:?}: {e}");
        }
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

    /// A monitor keeps a logger's dropouts as NaN; text that is no number stays an error.
    #[test]
    fn missing_readings_are_kept_as_nan_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "gaps.csv", "a,b\n1,2\nNaN,\ninf,1e308\n5,6\n");
        let mut reader = CsvBlockReader::open(&p, 100).unwrap();
        reader.keep_missing();
        let mut out = Vec::new();
        assert_eq!(reader.read_block(&mut out, 10).unwrap(), 4);
        assert_eq!(out[..2], [1.0, 2.0]);
        assert!(out[2..6].iter().all(|v| v.is_nan()), "{out:?}");
        assert_eq!(out[6..], [5.0, 6.0]);
        let p = write(dir.path(), "text.csv", "a,b\n1,2\noops,2\n");
        let mut reader = CsvBlockReader::open(&p, 100).unwrap();
        reader.keep_missing();
        let mut out = Vec::new();
        let mut result = reader.read_block(&mut out, 10);
        if result.as_ref().is_ok_and(|&n| n == 1) {
            result = reader.read_block(&mut out, 10);
        }
        assert!(matches!(result, Err(Error::CsvCell { line: 3, column: 1, .. })), "{result:?}");
    }

    /// Each way a cell can fail is said as it is: `1e308` is a finite number, too large
    /// for a sample, not "not a finite number"; a long cell is cut short in the message.
    #[test]
    fn a_bad_cell_is_told_what_is_wrong_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let long = "9".repeat(100);
        let cases = [
            ("1e308", "'1e308' is beyond the range of 32-bit samples (±3.4e38)".to_string()),
            ("-4e38", "'-4e38' is beyond the range of 32-bit samples".into()),
            ("inf", "'inf' is infinite".into()),
            ("nan", "'nan' is not a number (NaN)".into()),
            ("", "'' is empty, where a number should be".into()),
            ("1.5.2", "'1.5.2' is not a number".into()),
            (&long, format!("'{}…' is beyond the range", "9".repeat(40))),
        ];
        for (cell, said) in cases {
            let p = write(dir.path(), "cell.csv", &format!("1,2\n3,{cell}\n"));
            let e = read_csv(&p, 100).unwrap_err().to_string();
            assert!(e.contains(&format!("cell.csv: line 2, column 2: {said}")), "{cell}: {e}");
        }
        let p = write(dir.path(), "edge.csv", "3.4e38,-3.4e38\n");
        assert_eq!(read_csv(&p, 100).unwrap().interleaved(), [3.4e38, -3.4e38]);
    }

    /// Rows that have arrived on a pipe are read without waiting for more: a logger's
    /// rows are separated as it writes them. (The input here fails if read past them.)
    #[test]
    fn rows_that_arrived_are_read_before_more_come() {
        struct Logger(Vec<Vec<u8>>);
        impl std::io::Read for Logger {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let Some(chunk) = self.0.pop() else {
                    return Err(std::io::Error::other("read past the rows that have arrived"));
                };
                buf[..chunk.len()].copy_from_slice(&chunk);
                Ok(chunk.len())
            }
        }
        let rows: String = (0..500).map(|i| format!("{i},{}\n", -i)).collect();
        let input = Box::new(Logger(vec![rows.into_bytes(), b"x,y\n".to_vec()]));
        let mut r = CsvBlockReader::from_reader(Path::new("stdin"), input, 100, &ChannelSelection::all()).unwrap();
        let mut out = Vec::new();
        assert_eq!(r.read_block(&mut out, 500).unwrap(), 500);
        assert_eq!(out[998..], [499.0, -499.0]);
    }

    /// A stream (here one that hands over a byte at a time, as a slow pipe may) is read
    /// once: the lines read to find the delimiter are not lost.
    #[test]
    fn a_stream_read_a_byte_at_a_time() {
        struct Trickle(std::io::Cursor<Vec<u8>>);
        impl std::io::Read for Trickle {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = buf.len().min(1);
                self.0.read(&mut buf[..n])
            }
        }
        let text = b"# logger v2\n\ntime;acc1;acc2\n0;1,5;2\n1;-3;4,25\n".to_vec();
        let input = Box::new(Trickle(std::io::Cursor::new(text)));
        let mut r = CsvBlockReader::from_reader(Path::new("stdin"), input, 100, &"acc1,acc2".parse().unwrap()).unwrap();
        let mut out = Vec::new();
        assert_eq!(r.read_block(&mut out, 10).unwrap(), 2);
        assert_eq!(out, [1.5, 2.0, -3.0, 4.25]);
        // The rows before a bad one come first (a stream keeps them), then the error.
        let bad = Box::new(std::io::Cursor::new(b"1,2\n3,4\n5,x\n6,7\n".to_vec()));
        let mut r = CsvBlockReader::from_reader(Path::new("stdin"), bad, 1, &ChannelSelection::all()).unwrap();
        assert_eq!(r.read_block(&mut out, 10).unwrap(), 2);
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0]);
        let err = r.read_block(&mut out, 10).unwrap_err().to_string();
        assert_eq!(err, "stdin: line 3, column 2: 'x' is not a number");
        assert!(out.is_empty(), "no half row");
    }

    /// A log shows each block of rows as soon as it is written, and keeps them when its
    /// writer is dropped unfinished; a plain stream shows nothing until it is finished.
    #[test]
    fn a_log_is_readable_while_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["start_s".to_string(), "share".to_string()];
        let (log_path, plain_path) = (dir.path().join("log.csv"), dir.path().join("plain.csv"));
        let mut log = CsvStreamWriter::create_log(&log_path, &names).unwrap();
        let mut plain = CsvStreamWriter::create(&plain_path, &names).unwrap();
        assert_eq!(std::fs::read_to_string(&log_path).unwrap(), "start_s,share\n");
        for block in [&[0.0f32, 0.01][..], &[1.0, 0.25, 2.0, 0.5]] {
            log.write(block).unwrap();
            plain.write(block).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&log_path).unwrap(), "start_s,share\n0,0.01\n1,0.25\n2,0.5\n");
        assert!(!plain_path.exists());
        drop((log, plain));
        assert_eq!(read_csv(&log_path, 1).unwrap().frames(), 3, "the rows written stay");
        assert!(!plain_path.exists(), "nothing of the unfinished plain stream");
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.csv");
        let rec = Recording::from_interleaved(50, 2, vec![0.25, -1.5, 3.0, 1e-3]).unwrap();
        write_csv(&p, &rec, &["s1".into(), "s2".into()]).unwrap();
        assert_eq!(read_csv(&p, 50).unwrap(), rec);
    }

    #[test]
    fn semicolons_tabs_decimal_commas_and_a_trailing_delimiter() {
        let dir = tempfile::tempdir().unwrap();
        let expected = read_csv(&write(dir.path(), "plain.csv", "1.5,2\n-3,0.25\n"), 10).unwrap();
        for (name, text) in [
            ("semicolon.csv", "a;b\n1,5;2\n-3;0,25\n"),
            ("tab.csv", "1.5\t2\n-3\t0,25\n"),
            ("trailing.csv", "a,b,\n1.5,2,\n-3,0.25,\n"),
            ("crlf-bom.csv", "\u{feff}1.5,2\r\n-3,0.25\r\n"),
            ("comment.csv", "# logger v2\n\n1.5 , 2\n-3,0.25\n"),
        ] {
            let got = read_csv(&write(dir.path(), name, text), 10).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, expected, "{name}");
        }
        // With `,` as the delimiter a decimal comma would be a second cell, so it is not one.
        let p = write(dir.path(), "comma.csv", "1.5,2\n-3,0.25,\n");
        assert!(matches!(read_csv(&p, 10).unwrap_err(), Error::CsvWidth { line: 2, got: 3, expected: 2, .. }));
        // A trailing delimiter must stay empty.
        let p = write(dir.path(), "trailing-bad.csv", "a,b,\n1,2,\n3,4,5\n");
        let err = read_csv(&p, 10).unwrap_err();
        assert!(err.to_string().contains("line 3, column 3: '5' is not empty"), "{err}");
    }

    #[test]
    fn columns_by_number_range_and_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "log.csv", "time,acc1,acc2,acc3,temp\n0.00,1,2,3,20\n0.01,4,5,6,oops\n");
        let pick = |spec: &str| read_csv_selected(&p, 100, &spec.parse().unwrap());
        let acc = pick("2-4").unwrap();
        assert_eq!(acc.channels(), 3);
        assert_eq!(acc.interleaved(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(pick("acc1,acc2,acc3").unwrap(), acc);
        assert_eq!(pick("acc3, 2-3").unwrap().interleaved(), &[3.0, 1.0, 2.0, 6.0, 4.0, 5.0]);
        // A bad cell in a selected column is still an error, with the file's column number.
        let err = pick("2,5").unwrap_err();
        assert!(err.to_string().contains("line 3, column 5: 'oops'"), "{err}");
        for (spec, says) in [
            ("2-6", "column 6 asked for, but the file has 5 columns"),
            ("acc9", "no column named 'acc9' (the header has: time, acc1, acc2, acc3, temp)"),
            ("2,acc1", "column 2 is selected twice"),
        ] {
            let err = pick(spec).unwrap_err().to_string();
            assert!(err.starts_with(&format!("{}: ", p.display())) && err.contains(says), "{spec}: {err}");
        }
        let headerless = write(dir.path(), "raw.csv", "1,2\n3,4\n");
        let err = read_csv_selected(&headerless, 1, &"x".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("no header row"), "{err}");
        for bad in ["0", "3-2", "1,,2", ""] {
            assert!(bad.parse::<ChannelSelection>().is_err(), "{bad:?} parsed");
        }
        assert!("1".parse::<ChannelSelection>().is_ok_and(|c| !c.is_all()));
        for spec in ["2-4", "acc1,3,5-6", "temp_C"] {
            assert_eq!(spec.parse::<ChannelSelection>().unwrap().to_string(), spec);
        }
    }

    /// A leading time-stamp column named as one is not a channel unless picked, and its
    /// step gives the sampling interval; the rows read ahead to measure it are still read.
    #[test]
    fn a_time_stamp_column_is_left_out_and_gives_the_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::from("Time (ms),acc1,acc2\n");
        for k in 0..100 {
            // 5 ms steps with a little jitter on a few rows: the median is 5 ms.
            let jitter = if k % 17 == 3 { 0.4 } else { 0.0 };
            text += &format!("{},{},{}\n", 1_732_300_000_000.0 + 5.0 * k as f64 + jitter, k, -k);
        }
        let p = write(dir.path(), "log.csv", &text);
        let mut r = CsvBlockReader::open(&p, 1).unwrap();
        assert_eq!(r.channels(), 2);
        assert_eq!(r.time_column(), Some(("Time (ms)", true)));
        let step = r.time_step_s().unwrap().unwrap();
        assert!((step - 0.005).abs() < 1e-9, "{step}");
        let mut out = Vec::new();
        assert_eq!(r.read_block(&mut out, 1000).unwrap(), 100);
        assert_eq!(&out[..4], &[0.0, 0.0, 1.0, -1.0]);
        assert_eq!(out[198..], [99.0, -99.0]);
        // Picked by the user, the column is theirs: read as a channel when asked for.
        let picked = read_csv_selected(&p, 1, &"1,3".parse().unwrap()).unwrap();
        assert_eq!(picked.channels(), 2);
        let mut r = CsvBlockReader::open_selected(&p, 1, &"2-3".parse().unwrap()).unwrap();
        assert_eq!(r.time_column(), Some(("Time (ms)", false)));
        assert!(r.time_step_s().unwrap().is_some(), "the step is known whatever is picked");
        // Dates give no step; a lone column is not left out; other names are channels.
        let dates = write(dir.path(), "dates.csv", "date,x,y\n2026-11-22T10:00:00,1,2\n2026-11-22T10:00:01,3,4\n");
        let mut r = CsvBlockReader::open(&dates, 1).unwrap();
        assert_eq!((r.channels(), r.time_step_s().unwrap()), (2, None));
        assert_eq!(read_csv(&write(dir.path(), "lone.csv", "time\n0\n1\n"), 1).unwrap().channels(), 1);
        let sensors = write(dir.path(), "s.csv", "t1,s2,x\n0,1,2\n1,2,3\n");
        assert_eq!(CsvBlockReader::open(&sensors, 1).unwrap().time_column(), None);
        // The jitter above is no irregularity.
        let mut r = CsvBlockReader::open(&p, 1).unwrap();
        r.time_step_s().unwrap();
        r.read_block(&mut out, 1000).unwrap();
        assert_eq!(r.stamp_log().unwrap().describe(), None);
    }

    /// A clock that goes back, or rows lost, were read as a steady rate without a word:
    /// they are counted, with the line of the first.
    #[test]
    fn time_stamps_that_go_back_or_skip_ahead_are_reported() {
        let mut text = String::from("time,x\n");
        let stamps = (0..50).map(f64::from).chain([48.0, 48.0, 49.0, 50.0, 54.0, 55.0, 58.0, 59.0]);
        for (k, t) in stamps.enumerate() {
            text += &format!("{},{k}\n", t * 0.01);
        }
        let input = Box::new(std::io::Cursor::new(text));
        let mut r = CsvBlockReader::from_reader(Path::new("log"), input, 100, &ChannelSelection::all()).unwrap();
        let log = r.stamp_log().unwrap();
        let mut out = Vec::new();
        assert_eq!(r.read_block(&mut out, 1000).unwrap(), 58);
        assert_eq!((log.backwards(), log.gaps()), (2, 2));
        assert!((log.largest_gap_s() - 0.04).abs() < 1e-9);
        assert_eq!(
            log.describe().unwrap(),
            "its time stamps go back or stand still 2 times (first at line 52) and skip ahead 2 times \
             (first at line 56, by up to 0.040000 s); rows are taken as evenly spaced"
        );
        // Without a time-stamp column there is nothing to follow.
        let plain = Box::new(std::io::Cursor::new("x,y\n1,2\n".to_string()));
        assert!(
            CsvBlockReader::from_reader(Path::new("p"), plain, 1, &ChannelSelection::all())
                .unwrap()
                .stamp_log()
                .is_none()
        );
    }

    #[test]
    fn time_stamp_names_and_units() {
        for (name, unit) in [
            ("time", Some(1.0)),
            ("Time (s)", Some(1.0)),
            ("time_ms", Some(1e-3)),
            ("t[us]", Some(1e-6)),
            ("Timestamp", Some(1.0)),
            ("elapsed_min", Some(60.0)),
            ("t", Some(1.0)),
            ("date", Some(1.0)),
            (" epoch ", Some(1.0)),
            ("t1", None),
            ("temp", None),
            ("timer", None),
            ("acc_x", None),
            ("h", None),
            ("ms", None),
        ] {
            assert_eq!(time_unit_s(name), unit, "{name:?}");
        }
    }
}
