//! Independent jobs spread over a few scoped threads: restart candidates, per-source
//! prior fits. Job `k` runs on thread `k mod threads`, so which thread does what depends
//! only on the job count and the thread count, and results come back in job order: the
//! outcome never depends on scheduling.

use std::ops::ControlFlow;

/// Threads for `jobs` independent jobs when `requested` were asked for (0 = one per
/// core): at least one, never more than there are jobs.
pub fn threads_for(requested: usize, jobs: usize) -> usize {
    let wanted = match requested {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    wanted.clamp(1, jobs.max(1))
}

/// Runs every job of `jobs` on one of `threads` scoped threads (job `k` on thread
/// `k mod threads`, each thread its jobs in order) and returns their results in job order.
///
/// `make_worker` is called once per thread, on the calling thread, and its worker owns
/// whatever it captured (a channel's sender, say); a worker that returns
/// [`ControlFlow::Break`] keeps that result and skips the rest of its thread's jobs, whose
/// results are then missing. `make_worker` is dropped and `meanwhile` runs on the calling
/// thread while the workers do, so a `meanwhile` that drains a channel whose senders the
/// workers own ends when the last worker does. A worker's panic is resumed on the calling
/// thread once every thread has ended.
pub fn round_robin<J, R, W>(
    jobs: impl IntoIterator<Item = J>,
    threads: usize,
    mut make_worker: impl FnMut() -> W,
    meanwhile: impl FnOnce(),
) -> Vec<(usize, R)>
where
    J: Send,
    R: Send,
    W: FnMut(usize, J) -> ControlFlow<R, R> + Send,
{
    let threads = threads.max(1);
    let mut groups: Vec<Vec<(usize, J)>> = (0..threads).map(|_| Vec::new()).collect();
    for (k, job) in jobs.into_iter().enumerate() {
        groups[k % threads].push((k, job));
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|group| {
                let mut worker = make_worker();
                scope.spawn(move || {
                    let mut results = Vec::with_capacity(group.len());
                    for (k, job) in group {
                        match worker(k, job) {
                            ControlFlow::Continue(result) => results.push((k, result)),
                            ControlFlow::Break(result) => {
                                results.push((k, result));
                                break;
                            }
                        }
                    }
                    results
                })
            })
            .collect();
        drop(make_worker);
        meanwhile();
        let mut results: Vec<(usize, R)> = handles
            .into_iter()
            .flat_map(|handle| handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect();
        results.sort_by_key(|(k, _)| *k);
        results
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_job_order_whatever_the_threads() {
        for threads in 1..=5 {
            let squares = round_robin(0..7u64, threads, || |_, j: u64| ControlFlow::Continue(j * j), || ());
            assert_eq!(squares, (0..7).map(|j| (j as usize, j * j)).collect::<Vec<_>>(), "{threads} threads");
        }
    }

    #[test]
    fn a_break_skips_the_rest_of_that_threads_jobs_only() {
        // Two threads: thread 0 runs jobs 0, 2, 4, 6 and breaks at 2; thread 1 runs 1, 3, 5.
        let done = round_robin(
            0..7usize,
            2,
            || |k, _| if k == 2 { ControlFlow::Break(k) } else { ControlFlow::Continue(k) },
            || (),
        );
        assert_eq!(done.iter().map(|(k, _)| *k).collect::<Vec<_>>(), [0, 1, 2, 3, 5]);
    }

    #[test]
    fn meanwhile_drains_a_channel_until_the_last_worker_ends() {
        let (sender, receiver) = std::sync::mpsc::channel();
        let mut seen = Vec::new();
        let results = round_robin(
            0..6usize,
            3,
            // The worker factory owns the only sender outside the workers, and the helper
            // drops it before `meanwhile`: the drain ends when the last worker does.
            move || {
                let sender = sender.clone();
                move |k, _| {
                    sender.send(k).expect("the receiver outlives the workers");
                    ControlFlow::Continue(())
                }
            },
            || seen.extend(receiver.iter()),
        );
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2, 3, 4, 5]);
        assert_eq!(results.len(), 6);
    }

    #[test]
    fn threads_are_at_least_one_and_at_most_the_jobs() {
        assert_eq!(threads_for(8, 3), 3);
        assert_eq!(threads_for(2, 3), 2);
        assert_eq!(threads_for(5, 0), 1);
        assert!(threads_for(0, 64) >= 1);
    }
}
