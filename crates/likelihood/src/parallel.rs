//! The starts of a multi-start fit on a few threads, their progress reported from the
//! calling thread.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};

use unmix_core::parallel::{round_robin, threads_for};

/// Where the starts' steps are counted, and who is told.
pub(crate) struct Watch<'a> {
    pub(crate) steps_done: &'a AtomicUsize,
    pub(crate) total: usize,
    pub(crate) progress: &'a mut dyn FnMut(usize, usize),
}

/// Counts a worker thread's end when dropped with its worker: at the end of its jobs, or
/// while it unwinds from a panic, so that the calling thread's wait in [`in_parallel`]
/// always ends (the panic is resumed after it).
struct WorkerEnd<'a>(&'a AtomicUsize);

impl Drop for WorkerEnd<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// `job` for every one of `jobs` on the configured threads, results in job order; the
/// calling thread reports the steps done every ~50 ms meanwhile.
pub(crate) fn in_parallel<J: Send, R: Send>(
    threads: usize,
    jobs: Vec<J>,
    watch: &mut Watch<'_>,
    job: impl Fn(J) -> R + Sync,
) -> Vec<R> {
    let threads = threads_for(threads, jobs.len());
    let ended = AtomicUsize::new(0);
    let (job, ended_ref) = (&job, &ended);
    let worker = || {
        let end = WorkerEnd(ended_ref);
        move |_, j| {
            let _end = &end;
            ControlFlow::Continue(job(j))
        }
    };
    let meanwhile = || {
        while ended.load(Ordering::Acquire) < threads {
            (watch.progress)(watch.steps_done.load(Ordering::Relaxed), watch.total);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        (watch.progress)(watch.steps_done.load(Ordering::Relaxed), watch.total);
    };
    round_robin(jobs, threads, worker, meanwhile).into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A start that panics ends its thread's part of the progress wait too: the panic
    /// reaches the caller instead of the wait hanging on a thread that never reports back.
    #[test]
    fn a_panicking_start_reaches_the_caller() {
        let steps = AtomicUsize::new(0);
        let mut reports = 0;
        {
            let mut progress = |_, _| reports += 1;
            let mut watch = Watch { steps_done: &steps, total: 1, progress: &mut progress };
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                in_parallel(2, vec![0, 1, 2, 3], &mut watch, |j| if j == 1 { panic!("start {j}") } else { j })
            }));
            assert!(outcome.is_err());
        }
        assert!(reports >= 1);
    }
}
