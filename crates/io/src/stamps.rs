//! How evenly a CSV's time stamps step. Its rows are taken as evenly spaced frames, so a
//! clock that goes back or skips ahead (a logger restarted, rows lost) is counted and
//! reported rather than smoothed over without a word.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A step larger than this many times the usual one is a gap: jitter of a logger's clock
/// stays well inside it, one lost row (twice the step) does not.
const GAP_FACTOR: f64 = 1.5;

/// What the time stamps read so far did: shared, so it can be read after the reader has
/// moved into a pipeline.
#[derive(Debug, Default)]
pub struct StampLog {
    backwards: AtomicU64,
    first_backwards_line: AtomicU64,
    gaps: AtomicU64,
    first_gap_line: AtomicU64,
    /// `f64` bits of the largest gap, seconds.
    largest_gap_bits: AtomicU64,
}

impl StampLog {
    /// Rows whose time stamp is not after the one before (the clock went back or stood).
    pub fn backwards(&self) -> u64 {
        self.backwards.load(Ordering::Relaxed)
    }

    /// Rows that come more than 1.5 usual steps after the one before.
    pub fn gaps(&self) -> u64 {
        self.gaps.load(Ordering::Relaxed)
    }

    /// The largest step between two rows counted in [`gaps`](Self::gaps), seconds.
    pub fn largest_gap_s(&self) -> f64 {
        f64::from_bits(self.largest_gap_bits.load(Ordering::Relaxed))
    }

    /// One line on what is irregular, `None` when nothing is.
    pub fn describe(&self) -> Option<String> {
        let times = |n: u64| if n == 1 { "once".to_string() } else { format!("{n} times") };
        let mut said = Vec::new();
        if self.backwards() > 0 {
            said.push(format!(
                "go back or stand still {} (first at line {})",
                times(self.backwards()),
                self.first_backwards_line.load(Ordering::Relaxed)
            ));
        }
        if self.gaps() > 0 {
            said.push(format!(
                "skip ahead {} (first at line {}, by up to {:.6} s)",
                times(self.gaps()),
                self.first_gap_line.load(Ordering::Relaxed),
                self.largest_gap_s()
            ));
        }
        (!said.is_empty()).then(|| format!("its time stamps {}; rows are taken as evenly spaced", said.join(" and ")))
    }

    fn note(count: &AtomicU64, first_line: &AtomicU64, line: u64) {
        if count.fetch_add(1, Ordering::Relaxed) == 0 {
            first_line.store(line, Ordering::Relaxed);
        }
    }
}

/// Follows the time-stamp column row by row.
#[derive(Debug)]
pub(crate) struct StampCheck {
    log: Arc<StampLog>,
    /// Seconds per unit of the stamps.
    unit_s: f64,
    /// The usual step, seconds, once known (from the first rows' median step).
    step_s: Option<f64>,
    /// The last stamp, in its unit; `None` before the first, or for good once a stamp did
    /// not read as a number (dates are not followed).
    last: Option<f64>,
    followed: bool,
}

impl StampCheck {
    pub(crate) fn new(unit_s: f64) -> Self {
        Self { log: Arc::default(), unit_s, step_s: None, last: None, followed: true }
    }

    pub(crate) fn log(&self) -> Arc<StampLog> {
        Arc::clone(&self.log)
    }

    /// The usual step, seconds (the stamps' own; without it a step of 1 / the rate
    /// rows are taken at is the usual one).
    pub(crate) fn set_step_s(&mut self, step_s: f64) {
        self.step_s = Some(step_s);
    }

    /// Follows the stamp of the row at `line`, given its cell as a number (`None` if it
    /// does not read as one); `rate_hz` is the rate rows are taken at.
    pub(crate) fn follow(&mut self, stamp: Option<f64>, line: u64, rate_hz: u32) {
        if !self.followed {
            return;
        }
        let Some(stamp) = stamp.filter(|s| s.is_finite()) else {
            self.followed = false;
            return;
        };
        if let Some(last) = self.last {
            let step = (stamp - last) * self.unit_s;
            let usual = self.step_s.unwrap_or(1.0 / f64::from(rate_hz.max(1)));
            if step <= 0.0 {
                StampLog::note(&self.log.backwards, &self.log.first_backwards_line, line);
            } else if step > GAP_FACTOR * usual {
                StampLog::note(&self.log.gaps, &self.log.first_gap_line, line);
                if step > self.log.largest_gap_s() {
                    self.log.largest_gap_bits.store(step.to_bits(), Ordering::Relaxed);
                }
            }
        }
        self.last = Some(stamp);
    }
}
