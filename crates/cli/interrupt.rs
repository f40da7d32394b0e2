//! Ctrl-C, and the signals a service manager, `timeout` or a closed terminal sends
//! (SIGTERM, SIGHUP), for the commands that write.
//!
//! The first of them asks the running command to stop where it can do so cleanly: a job on
//! files leaves nothing behind (its staging files are removed; exit status 128 + the
//! signal's number: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), while a stream
//! piped into `apply -` or `separate -` and a live session end as if their input had
//! ended, their outputs complete. A second one ends the process at once, removing its
//! temporary files first — unless it is the same signal within a second of the first:
//! `timeout` sends its SIGTERM to the command and then to the command's process group, a
//! service manager may send it to every process of the service, and a closed terminal
//! sends SIGHUP to the whole session, so that one request can arrive twice.
//!
//! Only commands that look at the request install the handler ([`watch`]); the others keep
//! the default, which ends the process at the first signal.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use unmix_core::CancelToken;

/// The request to stop, and the signal that made it.
struct Watch {
    token: CancelToken,
    /// The first signal's number, 0 before one came.
    signal: AtomicI32,
    /// When the first signal came.
    first: OnceLock<Instant>,
}

/// How long after the first signal the same signal again is taken for the same request.
const SAME_REQUEST: Duration = Duration::from_secs(1);

static WATCH: OnceLock<Watch> = OnceLock::new();

/// Set once the process is ending: by a second signal's exit at once, or by `main`
/// reporting how the command ended ([`claim_end`]). The first of the two ends the
/// process; the other says nothing (a CI run once saw both lines, the exit at once's and
/// the orderly stop's, with the orderly stop's status).
static ENDING: AtomicBool = AtomicBool::new(false);

/// Claims the end of the process for `main`'s report. `false` when a second signal is
/// already ending it at once (its line printed, its exit under way): the caller then
/// prints nothing and waits for that exit.
pub fn claim_end() -> bool {
    !ENDING.swap(true, Ordering::AcqRel)
}

/// SIGINT's number, which Ctrl-C sends (the same on every platform that has signals).
const SIGINT: i32 = 2;

/// Installs the handler (once) and returns the token the first signal cancels.
pub fn watch() -> Result<CancelToken> {
    if let Some(watch) = WATCH.get() {
        return Ok(watch.token.clone());
    }
    let watch =
        WATCH.get_or_init(|| Watch { token: CancelToken::new(), signal: AtomicI32::new(0), first: OnceLock::new() });
    install(watch).context("installing the signal handler")?;
    Ok(watch.token.clone())
}

/// What to do on each signal: the first cancels; the same one again within
/// [`SAME_REQUEST`] is the same request; any other exits at once, its temporary files
/// removed.
fn on_signal(watch: &Watch, signal: i32) {
    match watch.signal.compare_exchange(0, signal, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            let _ = watch.first.set(Instant::now());
            watch.token.cancel();
        }
        Err(first) if first == signal && watch.first.get().is_some_and(|t| t.elapsed() < SAME_REQUEST) => {}
        Err(first) => {
            if ENDING.swap(true, Ordering::AcqRel) {
                // `main` is already reporting the end: the process is exiting anyway.
                return;
            }
            let again = if first == signal { "again".to_string() } else { format!("after {}", name(first)) };
            eprintln!("\n{} {again}: exiting at once", name(signal));
            unmix_io::remove_staged();
            std::process::exit(128 + signal);
        }
    }
}

#[cfg(unix)]
fn install(watch: &'static Watch) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new().name("unmix-signals".into()).spawn(move || {
        for signal in signals.forever() {
            on_signal(watch, signal);
        }
    })?;
    Ok(())
}

#[cfg(not(unix))]
fn install(watch: &'static Watch) -> std::io::Result<()> {
    ctrlc::set_handler(move || on_signal(watch, SIGINT)).map_err(std::io::Error::other)
}

/// The signal that asked to stop, if one did since [`watch`] installed the handler.
fn received() -> Option<i32> {
    WATCH.get().map(|w| w.signal.load(Ordering::Acquire)).filter(|&s| s != 0)
}

/// Whether a signal asked to stop since [`watch`] installed the handler.
pub fn requested() -> bool {
    received().is_some()
}

/// How messages name a signal: Ctrl-C for SIGINT, else its name.
fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "Ctrl-C",
        15 => "SIGTERM",
        1 => "SIGHUP",
        _ => "a signal",
    }
}

/// How messages name the signal that asked to stop (Ctrl-C before any came).
pub fn what_stopped() -> &'static str {
    name(received().unwrap_or(SIGINT))
}

/// The error of a command that a signal stopped before it wrote anything.
#[derive(Debug)]
pub struct Interrupted {
    signal: i32,
}

impl Interrupted {
    /// The exit status a shell reports for the signal: 128 + its number.
    pub fn exit_status(&self) -> u8 {
        u8::try_from(128 + self.signal).unwrap_or(u8::MAX)
    }
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted ({}): nothing was written", name(self.signal))
    }
}

impl std::error::Error for Interrupted {}

/// `Err(Interrupted)` once a signal asked to stop: a check between two steps of a job.
pub fn check() -> Result<()> {
    match received() {
        Some(signal) => Err(Interrupted { signal }.into()),
        None => Ok(()),
    }
}

/// The error of a job that a signal stopped (Ctrl-C's if none is on record).
pub fn interrupted() -> Interrupted {
    Interrupted { signal: received().unwrap_or(SIGINT) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_has_its_name_and_exit_status() {
        let cases = [(SIGINT, "Ctrl-C", 130), (15, "SIGTERM", 143), (1, "SIGHUP", 129)];
        for (signal, said, status) in cases {
            let e = Interrupted { signal };
            assert_eq!(e.to_string(), format!("interrupted ({said}): nothing was written"));
            assert_eq!(e.exit_status(), status);
        }
    }
}
