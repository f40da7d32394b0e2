//! Ctrl-C for the commands that write.
//!
//! The first Ctrl-C asks the running command to stop where it can do so cleanly: a job on
//! files leaves nothing behind (its staging files are removed; exit status 130), while a
//! stream piped into `apply -` and a live session end as if their input had ended, their
//! outputs complete. A second Ctrl-C ends the process at once.
//!
//! Only commands that look at the flag install the handler ([`watch`]); the others keep
//! the default, which ends the process at the first Ctrl-C.

use std::sync::OnceLock;

use anyhow::{Context, Result};
use unmix_core::CancelToken;

static REQUESTED: OnceLock<CancelToken> = OnceLock::new();

/// Installs the handler (once) and returns the token the first Ctrl-C cancels.
pub fn watch() -> Result<CancelToken> {
    if let Some(token) = REQUESTED.get() {
        return Ok(token.clone());
    }
    let token = CancelToken::new();
    let seen = token.clone();
    ctrlc::set_handler(move || {
        if seen.is_cancelled() {
            eprintln!("\ninterrupted again: exiting at once");
            std::process::exit(EXIT_STATUS);
        }
        seen.cancel();
    })
    .context("installing the Ctrl-C handler")?;
    Ok(REQUESTED.get_or_init(|| token).clone())
}

/// Whether Ctrl-C was pressed since [`watch`] installed the handler.
pub fn requested() -> bool {
    REQUESTED.get().is_some_and(CancelToken::is_cancelled)
}

/// The exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_STATUS: i32 = 130;

/// The error of a command that Ctrl-C stopped before it wrote anything.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted (Ctrl-C): nothing was written")
    }
}

impl std::error::Error for Interrupted {}

/// `Err(Interrupted)` once Ctrl-C was pressed: a check between two steps of a job.
pub fn check() -> Result<()> {
    if requested() { Err(Interrupted.into()) } else { Ok(()) }
}
