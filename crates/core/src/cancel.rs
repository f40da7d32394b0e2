//! Asking long work to stop early.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A request to stop, shared between whoever may ask (Ctrl-C, a live session shutting
/// down) and the work that looks at it between two of its steps (an epoch, a few dozen
/// optimiser steps). Clones share one flag; once cancelled it stays cancelled.
///
/// Work is given one as an argument, never inside its settings: settings describe what to
/// compute, the token only when to give up.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token nobody has cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder of a clone to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether [`cancel`](Self::cancel) was called on this token or a clone of it.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_request() {
        let token = CancelToken::new();
        let seen_by_the_work = token.clone();
        assert!(!seen_by_the_work.is_cancelled());
        token.cancel();
        assert!(seen_by_the_work.is_cancelled() && token.is_cancelled());
    }

    #[test]
    fn tokens_cross_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<CancelToken>();
        let token = CancelToken::new();
        let work = token.clone();
        std::thread::spawn(move || token.cancel()).join().unwrap();
        assert!(work.is_cancelled());
    }
}
