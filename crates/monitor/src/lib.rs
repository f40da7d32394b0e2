//! Windowed monitoring of a separated stream.
//!
//! Whoever watches a long recording — a bridge's accelerometers over a week, a microphone
//! array through a concert — wants, every few seconds, how strong each source was and
//! whether the frames still look like the data the model learned from. The scored
//! separator (`unmix_infer::ScoredSeparator`) gives every frame its `n` sources followed
//! by its scores ([`SCORE_CHANNELS`]): the log-density of those sources under the learned
//! priors, the decoder's reconstruction error, and whether each lies beyond the
//! threshold the training segment set (its 1st and 99th percentile). [`WindowMonitor`] is the pipeline's windowing stage
//! for them: a [`Sink`] that forwards the sources to the output sink unchanged, cuts the
//! stream into windows of [`WindowSpec::window_frames`] every [`WindowSpec::hop_frames`]
//! (a [`Framer`], so overlapping windows and arbitrary block sizes come out the same) and
//! writes one row per window to a score sink (a CSV writer, in the CLI):
//!
//! | column | meaning |
//! |---|---|
//! | `start_s` | time of the window's first frame, seconds from the start of the stream |
//! | `frames` | frames in the window (fewer only in the last, partial one) |
//! | `rms_source1` … | root mean square of each source over the window |
//! | `log_prior_mean`, `log_prior_min` | mean and lowest per-frame `Σ_j log p_j(μ_j)` (nats) |
//! | `reconstruction_error_mean`, `reconstruction_error_max` | mean and highest per-frame `‖ẑ − z‖²/m`, the decoder's error on the standardised channels |
//! | `log_prior_outliers`, `reconstruction_outliers` | share of frames beyond the training segment's 1st / 99th percentile (about 0.01 on data like it; NaN for a model without that baseline) |
//!
//! A falling log-prior says the sources left the range the model learned; a rising
//! reconstruction error says the mixing itself changed — what a structural-health
//! monitor alarms on. Both are in the model's normalised units, comparable between
//! windows and between recordings separated with the same model.
//!
//! Frames without a score (NaN log-prior: a live session before its first model) are left
//! out of the score columns, and a window with none gets NaN there.
//!
//! The stage ends like every sink: [`Sink::finish`] writes the partial last window and
//! finishes both inner sinks; dropped unfinished (the stream failed), it finishes
//! neither, so file sinks leave nothing behind.

use unmix_core::{BoxError, Sink};
use unmix_stream::Framer;

pub use unmix_core::SCORE_CHANNELS;

/// Why a monitor cannot be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// A window must hold at least one frame, and the hop must be 1 ..= the window.
    #[error("monitoring windows of {window_frames} frames every {hop_frames} frames: need 1 ≤ hop ≤ window")]
    Window {
        /// Frames per window asked for.
        window_frames: usize,
        /// Hop asked for.
        hop_frames: usize,
    },
    /// No sources to monitor.
    #[error("a monitor needs at least one source")]
    NoSources,
    /// A window would hold more samples than a buffer may.
    #[error(
        "monitoring windows of {window_frames} frames of {channels} channels are more than the {} samples a \
         buffer may hold; use shorter windows",
        unmix_core::limits::MAX_BUFFERED_SAMPLES
    )]
    WindowTooLong {
        /// Frames per window.
        window_frames: usize,
        /// Channels a window holds (the sources and the scores).
        channels: usize,
    },
    /// Windows given in seconds round to less than one frame.
    #[error("monitoring windows of {window_s} s every {hop_s} s: less than one frame at {sample_rate_hz} Hz")]
    ShorterThanAFrame {
        /// Window length asked for, seconds.
        window_s: f64,
        /// Hop asked for, seconds.
        hop_s: f64,
        /// Sample rate of the stream.
        sample_rate_hz: u32,
    },
    /// The sample rate, needed for window times, is zero.
    #[error("a monitor needs a sample rate above 0 Hz")]
    SampleRate,
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// How the stream is cut into monitoring windows (checked on construction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    window_frames: usize,
    hop_frames: usize,
    sample_rate_hz: u32,
}

impl WindowSpec {
    /// Windows of `window_frames` frames starting every `hop_frames` frames (overlapping
    /// when `hop_frames < window_frames`) of a stream at `sample_rate_hz`.
    pub fn new(window_frames: usize, hop_frames: usize, sample_rate_hz: u32) -> Result<Self> {
        if window_frames == 0 || hop_frames == 0 || hop_frames > window_frames {
            return Err(Error::Window { window_frames, hop_frames });
        }
        if sample_rate_hz == 0 {
            return Err(Error::SampleRate);
        }
        Ok(Self { window_frames, hop_frames, sample_rate_hz })
    }

    /// Windows of `window_s` seconds every `hop_s` seconds, rounded to whole frames at
    /// `sample_rate_hz`.
    pub fn from_seconds(window_s: f64, hop_s: f64, sample_rate_hz: u32) -> Result<Self> {
        let frames = |seconds: f64| (seconds * f64::from(sample_rate_hz)).round() as usize;
        let (window_frames, hop_frames) = (frames(window_s), frames(hop_s));
        if hop_frames == 0 && sample_rate_hz > 0 {
            return Err(Error::ShorterThanAFrame { window_s, hop_s, sample_rate_hz });
        }
        Self::new(window_frames, hop_frames, sample_rate_hz)
    }

    /// Whether a window of `sources` sources (and their scores) fits the memory bound
    /// ([`unmix_core::limits::MAX_BUFFERED_SAMPLES`]): checked by [`WindowMonitor::new`],
    /// and by a caller that wants to know before long work.
    pub fn check_for(&self, sources: usize) -> Result<()> {
        let channels = sources + SCORE_CHANNELS;
        if self.window_frames.saturating_mul(channels) > unmix_core::limits::MAX_BUFFERED_SAMPLES {
            return Err(Error::WindowTooLong { window_frames: self.window_frames, channels });
        }
        Ok(())
    }

    /// Frames per window.
    pub fn window_frames(&self) -> usize {
        self.window_frames
    }

    /// Frames between the starts of two windows.
    pub fn hop_frames(&self) -> usize {
        self.hop_frames
    }

    /// Sample rate of the stream, for window times.
    pub fn sample_rate_hz(&self) -> u32 {
        self.sample_rate_hz
    }
}

/// Column names of the score rows for `sources` sources (see the crate docs).
pub fn score_columns(sources: usize) -> Vec<String> {
    let mut names = vec!["start_s".to_string(), "frames".to_string()];
    names.extend((1..=sources).map(|j| format!("rms_source{j}")));
    names.extend(
        [
            "log_prior_mean",
            "log_prior_min",
            "reconstruction_error_mean",
            "reconstruction_error_max",
            "log_prior_outliers",
            "reconstruction_outliers",
        ]
        .map(String::from),
    );
    names
}

/// Values per score row for `sources` sources.
pub fn row_len(sources: usize) -> usize {
    sources + 8
}

/// Summarises the first `valid` frames of a window of `sources + SCORE_CHANNELS`-channel
/// frames into `row` (`row_len(sources)` values, in [`score_columns`] order), the window
/// starting `start_s` seconds into the stream. Sums run in `f64`.
///
/// Frames whose log-prior is NaN carry no score (a live session before its first model)
/// and are left out of the score columns, which are NaN when no frame is scored; the
/// outlier shares are NaN as well when the frames carry no outlier flags (a model
/// without a baseline).
pub fn summarise_window(window: &[f32], valid: usize, sources: usize, start_s: f64, row: &mut [f32]) {
    let width = sources + SCORE_CHANNELS;
    let frames = &window[..valid * width];
    row[0] = start_s as f32;
    row[1] = valid as f32;
    for (j, out) in row[2..2 + sources].iter_mut().enumerate() {
        let energy: f64 = frames.chunks_exact(width).map(|f| f64::from(f[j]) * f64::from(f[j])).sum();
        *out = (energy / valid.max(1) as f64).sqrt() as f32;
    }
    let (mut scored, mut lp_sum, mut lp_min, mut re_sum, mut re_max) =
        (0usize, 0.0f64, f32::INFINITY, 0.0f64, f32::NEG_INFINITY);
    let (mut flagged, mut lp_outliers, mut re_outliers) = (0usize, 0.0f64, 0.0f64);
    for f in frames.chunks_exact(width).filter(|f| !f[sources].is_nan()) {
        let s = &f[sources..];
        scored += 1;
        lp_sum += f64::from(s[0]);
        lp_min = lp_min.min(s[0]);
        re_sum += f64::from(s[1]);
        re_max = re_max.max(s[1]);
        if !s[2].is_nan() {
            flagged += 1;
            lp_outliers += f64::from(s[2]);
            re_outliers += f64::from(s[3]);
        }
    }
    let tail = &mut row[2 + sources..];
    tail.fill(f32::NAN);
    if scored > 0 {
        tail[0] = (lp_sum / scored as f64) as f32;
        tail[1] = lp_min;
        tail[2] = (re_sum / scored as f64) as f32;
        tail[3] = re_max;
    }
    if flagged > 0 {
        tail[4] = (lp_outliers / flagged as f64) as f32;
        tail[5] = (re_outliers / flagged as f64) as f32;
    }
}

/// The windowing stage: forwards the sources, writes one score row per window.
pub struct WindowMonitor {
    sources: usize,
    spec: WindowSpec,
    framer: Framer,
    sources_sink: Box<dyn Sink>,
    scores_sink: Box<dyn Sink>,
    /// The source channels of the current block.
    source_block: Vec<f32>,
    /// Rows of the windows completed in the current block.
    rows: Vec<f32>,
    /// Windows emitted so far: the next one starts at `windows × hop_frames`.
    windows: u64,
}

impl WindowMonitor {
    /// A monitor of `sources` sources (its input frames carry `sources + SCORE_CHANNELS`
    /// channels) that passes the sources to `sources_sink` and the rows to `scores_sink`.
    /// `block_frames` is the largest block it expects; buffers for it are allocated now.
    pub fn new(
        sources: usize,
        spec: WindowSpec,
        block_frames: usize,
        sources_sink: Box<dyn Sink>,
        scores_sink: Box<dyn Sink>,
    ) -> Result<Self> {
        if sources == 0 {
            return Err(Error::NoSources);
        }
        spec.check_for(sources)?;
        let framer = Framer::new(sources + SCORE_CHANNELS, spec.window_frames, spec.hop_frames, false)
            .ok_or(Error::Window { window_frames: spec.window_frames, hop_frames: spec.hop_frames })?;
        // A block of `block_frames` completes at most this many windows.
        let windows_per_block = block_frames / spec.hop_frames + 1;
        Ok(Self {
            sources,
            spec,
            framer,
            sources_sink,
            scores_sink,
            source_block: Vec::with_capacity(block_frames * sources),
            rows: Vec::with_capacity(windows_per_block * row_len(sources)),
            windows: 0,
        })
    }

    /// Input channels per frame: the sources and the scores.
    pub fn channels(&self) -> usize {
        self.sources + SCORE_CHANNELS
    }

    /// Summarises a window into `rows`.
    fn push_row(
        rows: &mut Vec<f32>,
        windows: &mut u64,
        spec: &WindowSpec,
        sources: usize,
        window: &[f32],
        valid: usize,
    ) {
        let start_s = (*windows * spec.hop_frames as u64) as f64 / f64::from(spec.sample_rate_hz);
        let at = rows.len();
        rows.resize(at + row_len(sources), 0.0);
        summarise_window(window, valid, sources, start_s, &mut rows[at..]);
        *windows += 1;
    }
}

impl Sink for WindowMonitor {
    fn write(&mut self, samples: &[f32]) -> std::result::Result<(), BoxError> {
        let (n, width) = (self.sources, self.sources + SCORE_CHANNELS);
        if !samples.len().is_multiple_of(width) {
            return Err(format!("a block of {} values is not whole frames of {width} channels", samples.len()).into());
        }
        self.source_block.clear();
        for frame in samples.chunks_exact(width) {
            self.source_block.extend_from_slice(&frame[..n]);
        }
        self.sources_sink.write(&self.source_block)?;
        self.rows.clear();
        let Self { rows, windows, spec, framer, .. } = self;
        let window_frames = spec.window_frames;
        framer.push(samples, &mut |window| Self::push_row(rows, windows, spec, n, window, window_frames));
        if !self.rows.is_empty() {
            self.scores_sink.write(&self.rows)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> std::result::Result<(), BoxError> {
        let n = self.sources;
        self.rows.clear();
        let Self { rows, windows, spec, framer, .. } = &mut *self;
        framer.finish(&mut |window, valid| Self::push_row(rows, windows, spec, n, window, valid));
        if !self.rows.is_empty() {
            self.scores_sink.write(&self.rows)?;
        }
        let Self { sources_sink, scores_sink, .. } = *self;
        scores_sink.finish()?;
        sources_sink.finish()
    }
}

/// A run of score rows at a glance: the windows whose outlier shares stand out, for the
/// terminal and the report.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoresSummary {
    /// Windows (score rows).
    pub windows: usize,
    /// The largest log-prior outlier share and the start of its window (seconds); `None`
    /// without outlier flags (a model without a score baseline).
    pub log_prior_outliers_max: Option<(f32, f32)>,
    /// The same for the reconstruction error.
    pub reconstruction_outliers_max: Option<(f32, f32)>,
    /// The share above which a window counts as unusual.
    pub alert_share: f32,
    /// Windows in which either share is above `alert_share`.
    pub unusual_windows: usize,
    /// The start of the first of them, seconds.
    pub first_unusual_s: Option<f32>,
}

impl ScoresSummary {
    /// Summarises `rows` (whole rows of [`row_len`]`(sources)` values, as
    /// [`WindowMonitor`] writes them). On data like the training segment the shares are
    /// about 0.01, so an `alert_share` of a few times that separates chance from change.
    pub fn of(rows: &[f32], sources: usize, alert_share: f32) -> Self {
        let mut summary = Self {
            windows: 0,
            log_prior_outliers_max: None,
            reconstruction_outliers_max: None,
            alert_share,
            unusual_windows: 0,
            first_unusual_s: None,
        };
        let keep_max = |max: &mut Option<(f32, f32)>, share: f32, start: f32| {
            if !share.is_nan() && max.is_none_or(|(m, _)| share > m) {
                *max = Some((share, start));
            }
        };
        for row in rows.chunks_exact(row_len(sources)) {
            let w = WindowShares::of_row(row);
            summary.windows += 1;
            keep_max(&mut summary.log_prior_outliers_max, w.log_prior, w.start_s);
            keep_max(&mut summary.reconstruction_outliers_max, w.reconstruction, w.start_s);
            if w.above(alert_share) {
                summary.unusual_windows += 1;
                summary.first_unusual_s.get_or_insert(w.start_s);
            }
        }
        summary
    }
}

/// One window's outlier shares, read from its score row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowShares {
    /// Start of the window, seconds.
    pub start_s: f32,
    /// Share of its frames whose log-prior is below the model's baseline (NaN: unscored).
    pub log_prior: f32,
    /// Share of its frames whose reconstruction error is above the baseline.
    pub reconstruction: f32,
}

impl WindowShares {
    /// The shares of a whole score row as [`WindowMonitor`] writes it (the shares are its
    /// last two values).
    pub fn of_row(row: &[f32]) -> Self {
        let width = row.len();
        Self { start_s: row[0], log_prior: row[width - 2], reconstruction: row[width - 1] }
    }

    /// Whether either share is above `alert_share` (NaN, an unscored window, never is).
    pub fn above(&self, alert_share: f32) -> bool {
        self.log_prior > alert_share || self.reconstruction > alert_share
    }
}

/// Passes score rows on to another sink and calls `on_unusual` with every window whose
/// outlier share is above `alert_share` as its row goes by: a live session's alerts,
/// raised when the window closes rather than when the session ends.
pub struct AlertTap {
    inner: Box<dyn Sink>,
    width: usize,
    alert_share: f32,
    on_unusual: Box<dyn FnMut(WindowShares) + Send>,
}

impl AlertTap {
    /// Watches rows of [`row_len`]`(sources)` values on their way to `inner`.
    pub fn new(
        inner: Box<dyn Sink>,
        sources: usize,
        alert_share: f32,
        on_unusual: Box<dyn FnMut(WindowShares) + Send>,
    ) -> Self {
        Self { inner, width: row_len(sources), alert_share, on_unusual }
    }
}

impl Sink for AlertTap {
    fn write(&mut self, rows: &[f32]) -> std::result::Result<(), BoxError> {
        self.inner.write(rows)?;
        for row in rows.chunks_exact(self.width) {
            let shares = WindowShares::of_row(row);
            if shares.above(self.alert_share) {
                (self.on_unusual)(shares);
            }
        }
        Ok(())
    }

    fn finish(self: Box<Self>) -> std::result::Result<(), BoxError> {
        self.inner.finish()
    }
}

impl std::fmt::Display for ScoresSummary {
    /// One line: `12 windows; outlier shares (about 0.01 on data like the training
    /// segment): log-prior up to 0.170 (window at 3.00 s), reconstruction up to …`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} windows", self.windows)?;
        let (Some((lp, lp_at)), Some((re, re_at))) = (self.log_prior_outliers_max, self.reconstruction_outliers_max)
        else {
            return write!(f, "; no outlier shares (the model has no score baseline)");
        };
        write!(
            f,
            "; outlier shares (about 0.01 on data like the training segment): log-prior up to {lp:.3} \
             (window at {lp_at:.2} s), reconstruction up to {re:.3} (window at {re_at:.2} s); "
        )?;
        match self.first_unusual_s {
            None => write!(f, "no window above {}", self.alert_share),
            Some(at) => write!(f, "{} above {}, the first at {at:.2} s", self.unusual_windows, self.alert_share),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use proptest::prelude::*;

    use super::*;

    /// A sink that keeps what it was given, and whether it was finished.
    #[derive(Clone, Default)]
    struct Keep(Arc<Mutex<(Vec<f32>, bool)>>);

    impl Sink for Keep {
        fn write(&mut self, samples: &[f32]) -> std::result::Result<(), BoxError> {
            self.0.lock().unwrap().0.extend_from_slice(samples);
            Ok(())
        }
        fn finish(self: Box<Self>) -> std::result::Result<(), BoxError> {
            self.0.lock().unwrap().1 = true;
            Ok(())
        }
    }

    impl Keep {
        fn taken(&self) -> (Vec<f32>, bool) {
            self.0.lock().unwrap().clone()
        }
    }

    /// Frames of `n` sources and their scores with distinct, checkable values (the
    /// outlier flags 0 or 1).
    fn stream(frames: usize, n: usize) -> Vec<f32> {
        let width = n + SCORE_CHANNELS;
        (0..frames * width)
            .map(|i| {
                let (t, c) = (i / width, i % width);
                if c >= n + 2 {
                    ((t * 7 + c) % 3 == 0) as u8 as f32
                } else {
                    ((t * 31 + c * 17) % 23) as f32 / 7.0 - 1.5
                }
            })
            .collect()
    }

    /// The windows of a whole stream, computed directly from their definition.
    fn offline_rows(data: &[f32], n: usize, window: usize, hop: usize, rate: u32) -> Vec<Vec<f64>> {
        let width = n + SCORE_CHANNELS;
        let frames = data.len() / width;
        let frame = |t: usize| &data[t * width..(t + 1) * width];
        let mut rows = Vec::new();
        let mut start = 0;
        let mut summarise = |start: usize, len: usize| {
            let ts: Vec<usize> = (start..start + len).collect();
            let mut row = vec![start as f64 / f64::from(rate), len as f64];
            for j in 0..n {
                row.push((ts.iter().map(|&t| f64::from(frame(t)[j]).powi(2)).sum::<f64>() / len as f64).sqrt());
            }
            let lp: Vec<f64> = ts.iter().map(|&t| f64::from(frame(t)[n])).collect();
            let re: Vec<f64> = ts.iter().map(|&t| f64::from(frame(t)[n + 1])).collect();
            row.push(lp.iter().sum::<f64>() / len as f64);
            row.push(lp.iter().copied().fold(f64::INFINITY, f64::min));
            row.push(re.iter().sum::<f64>() / len as f64);
            row.push(re.iter().copied().fold(f64::NEG_INFINITY, f64::max));
            for flag in [n + 2, n + 3] {
                row.push(ts.iter().map(|&t| f64::from(frame(t)[flag])).sum::<f64>() / len as f64);
            }
            rows.push(row);
        };
        while start + window <= frames {
            summarise(start, window);
            start += hop;
        }
        // The tail: frames not yet in any window, or a stream shorter than one window.
        if frames > start + (window - hop) || (start == 0 && frames > 0) {
            summarise(start, frames - start);
        }
        rows
    }

    fn monitor(n: usize, window: usize, hop: usize, rate: u32) -> (WindowMonitor, Keep, Keep) {
        let (sources, scores) = (Keep::default(), Keep::default());
        let spec = WindowSpec::new(window, hop, rate).unwrap();
        let monitor = WindowMonitor::new(n, spec, 64, Box::new(sources.clone()), Box::new(scores.clone())).unwrap();
        (monitor, sources, scores)
    }

    proptest! {
        /// Whatever the blocks, the sources pass through unchanged and every window's row
        /// equals the offline summary, the partial last window included.
        #[test]
        fn rows_match_the_offline_windows_across_chunkings(
            n in 1usize..4,
            window in 1usize..40,
            hop_eighths in 1usize..=8,
            frames in 0usize..300,
            chunks in proptest::collection::vec(1usize..70, 1..8),
        ) {
            let hop = (window * hop_eighths).div_ceil(8).clamp(1, window);
            let data = stream(frames, n);
            let width = n + SCORE_CHANNELS;
            let (mut monitor, sources, scores) = monitor(n, window, hop, 100);
            let (mut at, mut k) = (0, 0);
            while at < frames {
                let take = chunks[k % chunks.len()].min(frames - at);
                monitor.write(&data[at * width..(at + take) * width]).unwrap();
                at += take;
                k += 1;
            }
            Box::new(monitor).finish().unwrap();

            let (passed, sources_finished) = sources.taken();
            let want: Vec<f32> = data.chunks_exact(width).flat_map(|f| f[..n].to_vec()).collect();
            prop_assert_eq!(passed, want);
            prop_assert!(sources_finished);

            let (rows, scores_finished) = scores.taken();
            prop_assert!(scores_finished);
            let want = offline_rows(&data, n, window, hop, 100);
            let got: Vec<&[f32]> = rows.chunks_exact(row_len(n)).collect();
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                for (a, b) in g.iter().zip(w) {
                    prop_assert!((f64::from(*a) - b).abs() <= 1e-5 * b.abs().max(1.0), "{:?} vs {:?}", g, w);
                }
            }
        }
    }

    #[test]
    fn a_monitor_dropped_unfinished_finishes_neither_sink() {
        let (mut monitor, sources, scores) = monitor(2, 4, 2, 10);
        monitor.write(&stream(9, 2)).unwrap();
        drop(monitor);
        assert!(!sources.taken().1);
        assert!(!scores.taken().1);
    }

    #[test]
    fn window_times_follow_the_hop() {
        let (mut monitor, _, scores) = monitor(1, 10, 5, 1000);
        monitor.write(&stream(40, 1)).unwrap();
        Box::new(monitor).finish().unwrap();
        let rows = scores.taken().0;
        let starts: Vec<f32> = rows.chunks_exact(row_len(1)).map(|r| r[0]).collect();
        // Seven whole windows (starts 0 … 30 frames); the last 5 frames are in the last one.
        assert_eq!(starts, [0.0, 0.005, 0.010, 0.015, 0.020, 0.025, 0.030]);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert_eq!(WindowSpec::new(0, 1, 10), Err(Error::Window { window_frames: 0, hop_frames: 1 }));
        assert_eq!(WindowSpec::new(4, 5, 10), Err(Error::Window { window_frames: 4, hop_frames: 5 }));
        assert_eq!(WindowSpec::new(4, 4, 0), Err(Error::SampleRate));
        assert_eq!(
            WindowSpec::from_seconds(0.25, 0.125, 8000).map(|s| (s.window_frames(), s.hop_frames())),
            Ok((2000, 1000))
        );
        assert!(matches!(WindowSpec::from_seconds(1e-5, 1e-5, 8000), Err(Error::ShorterThanAFrame { .. })));
        let spec = WindowSpec::new(4, 4, 10).unwrap();
        assert!(matches!(
            WindowMonitor::new(0, spec, 16, Box::new(Keep::default()), Box::new(Keep::default())),
            Err(Error::NoSources)
        ));
        let (mut monitor, _, _) = monitor(2, 4, 2, 10);
        assert!(monitor.write(&[0.0; 5]).is_err());
    }

    /// A window of a day at 48 kHz would be gigabytes: refused before it is allocated.
    #[test]
    fn a_window_beyond_the_memory_bound_is_refused() {
        let day = WindowSpec::from_seconds(86_400.0, 86_400.0, 48_000).unwrap();
        let channels = 3 + SCORE_CHANNELS;
        let refused = WindowMonitor::new(3, day, 256, Box::new(Keep::default()), Box::new(Keep::default()));
        assert!(
            matches!(refused, Err(Error::WindowTooLong { window_frames: 4_147_200_000, channels: c }) if c == channels)
        );
        WindowSpec::from_seconds(60.0, 60.0, 48_000).unwrap().check_for(3).unwrap();
    }

    #[test]
    fn unscored_frames_are_left_out_of_the_scores() {
        // Two sources; frames 0–1 unscored (NaN), frames 2–3 scored.
        let nan = f32::NAN;
        let frames = [
            [1.0, 2.0, nan, nan, nan, nan],
            [1.0, 2.0, nan, nan, nan, nan],
            [3.0, 0.0, -2.0, 0.5, 0.0, 0.0],
            [3.0, 0.0, -4.0, 1.5, 1.0, 0.0],
        ];
        let window: Vec<f32> = frames.iter().flatten().copied().collect();
        let mut row = vec![0.0f32; row_len(2)];
        summarise_window(&window, 4, 2, 0.0, &mut row);
        assert_eq!(row[..4], [0.0, 4.0, 5.0f32.sqrt(), 2.0f32.sqrt()]);
        assert_eq!(row[4..], [-3.0, -4.0, 1.0, 1.5, 0.5, 0.0]);
        summarise_window(&window, 2, 2, 0.0, &mut row);
        assert!(row[4..].iter().all(|v| v.is_nan()), "{row:?}");
        // Scored but without outlier flags (a model without a baseline).
        let unflagged: Vec<f32> = [[3.0, 0.0, -2.0, 0.5, nan, nan]].iter().flatten().copied().collect();
        summarise_window(&unflagged, 1, 2, 0.0, &mut row);
        assert_eq!(row[4..8], [-2.0, -2.0, 0.5, 0.5]);
        assert!(row[8].is_nan() && row[9].is_nan(), "{row:?}");
    }

    #[test]
    fn columns_and_rows_agree() {
        assert_eq!(score_columns(3).len(), row_len(3));
        assert_eq!(score_columns(1)[2], "rms_source1");
    }

    #[test]
    fn scores_summary_finds_the_unusual_windows() {
        // Two sources: rows of 10 values; the outlier shares are the last two.
        let row = |start: f32, lp: f32, re: f32| {
            let mut r = vec![start, 100.0, 1.0, 1.0, -2.0, -5.0, 0.01, 0.05];
            r.extend([lp, re]);
            r
        };
        let rows: Vec<f32> =
            [row(0.0, 0.01, 0.0), row(1.0, 0.02, 0.3), row(2.0, 0.4, 0.01), row(3.0, 0.0, 0.0)].concat();
        let s = ScoresSummary::of(&rows, 2, 0.05);
        assert_eq!(s.windows, 4);
        assert_eq!(s.log_prior_outliers_max, Some((0.4, 2.0)));
        assert_eq!(s.reconstruction_outliers_max, Some((0.3, 1.0)));
        assert_eq!((s.unusual_windows, s.first_unusual_s), (2, Some(1.0)));
        let line = s.to_string();
        assert!(line.contains("log-prior up to 0.400 (window at 2.00 s)"), "{line}");
        assert!(line.ends_with("2 above 0.05, the first at 1.00 s"), "{line}");
        assert!(ScoresSummary::of(&rows[..10], 2, 0.05).to_string().ends_with("no window above 0.05"));
        // Without a baseline the shares are NaN.
        let blind: Vec<f32> = [row(0.0, f32::NAN, f32::NAN), row(1.0, f32::NAN, f32::NAN)].concat();
        let s = ScoresSummary::of(&blind, 2, 0.05);
        assert_eq!((s.windows, s.unusual_windows, s.log_prior_outliers_max), (2, 0, None));
        assert!(s.to_string().contains("no outlier shares"), "{s}");

        // The alert tap raises the same windows as the rows go by, and passes every row on.
        let (inner, raised) = (Keep::default(), Arc::new(Mutex::new(Vec::new())));
        let seen = raised.clone();
        let mut tap: Box<dyn Sink> = Box::new(AlertTap::new(
            Box::new(inner.clone()),
            2,
            0.05,
            Box::new(move |w: WindowShares| seen.lock().unwrap().push(w.start_s)),
        ));
        tap.write(&rows[..20]).unwrap();
        assert_eq!(*raised.lock().unwrap(), [1.0], "raised when its row is written");
        tap.write(&rows[20..]).unwrap();
        tap.write(&blind).unwrap();
        tap.finish().unwrap();
        assert_eq!(*raised.lock().unwrap(), [1.0, 2.0]);
        let (passed, finished) = inner.taken();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&passed), bits(&[rows, blind].concat()), "every row passed on (NaN included)");
        assert!(finished);
    }
}
