//! A lock-free SPSC ring of interleaved samples, sized and counted in frames.
//!
//! # Real-time safety
//! The storage is allocated by [`FrameRing::new`]; afterwards [`RingWriter::push`],
//! [`RingWriter::push_or_drop`] and [`RingReader::pop`] never allocate, lock, block or make
//! a system call: a full or empty ring is a short count. Only the waiting calls
//! ([`RingWriter::push_all`] under backpressure, [`RingReader::pop_exact_blocking`]) park,
//! and only they wake the other side; a parked side also looks again every
//! 2 ms, so a real-time producer that never wakes anyone is still heard.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;
use std::time::Duration;

use ringbuf::traits::{Consumer, Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use crate::stats::RingStats;

/// What the producer does when the ring is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Wait (parked) until there is room: nothing is lost. For files.
    Backpressure,
    /// Never wait: drop what does not fit and count it. For live input.
    DropAndCount,
}

/// How long a waiting side sleeps before looking again, if nobody wakes it first.
pub(crate) const PARK: Duration = Duration::from_millis(2);

struct Shared {
    channels: usize,
    closed: AtomicBool,
    aborted: AtomicBool,
    stats: Arc<RingStats>,
    producer: std::sync::OnceLock<Thread>,
    consumer: std::sync::OnceLock<Thread>,
}

impl Shared {
    /// End of stream, seen by the reader after the last pushed frame.
    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(t) = self.consumer.get() {
            t.unpark();
        }
    }

    /// The stream ended in error: the reader stops without draining, the writer's waiting
    /// pushes return `false`; both sides are woken to see it.
    fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        self.close();
        if let Some(t) = self.producer.get() {
            t.unpark();
        }
    }
}

/// Constructor of a ring's two ends.
pub struct FrameRing;

impl FrameRing {
    /// A ring holding `capacity_frames` frames of `channels` samples.
    #[allow(clippy::new_ret_no_self)] // the ring exists only as its two ends
    pub fn new(channels: usize, capacity_frames: usize) -> (RingWriter, RingReader) {
        let channels = channels.max(1);
        let (prod, cons) = HeapRb::<f32>::new(channels * capacity_frames.max(1)).split();
        let shared = Arc::new(Shared {
            channels,
            closed: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            stats: Arc::new(RingStats::default()),
            producer: std::sync::OnceLock::new(),
            consumer: std::sync::OnceLock::new(),
        });
        (RingWriter { prod, shared: shared.clone() }, RingReader { cons, shared })
    }
}

/// The producing end.
pub struct RingWriter {
    prod: HeapProd<f32>,
    shared: Arc<Shared>,
}

/// The consuming end.
pub struct RingReader {
    cons: HeapCons<f32>,
    shared: Arc<Shared>,
}

impl RingWriter {
    /// Channels per frame.
    pub fn channels(&self) -> usize {
        self.shared.channels
    }

    /// Pushes as many whole frames of `samples` as fit; returns the frames pushed. Never
    /// waits and wakes nobody (real-time safe).
    pub fn push(&mut self, samples: &[f32]) -> usize {
        let ch = self.shared.channels;
        let frames = (self.prod.vacant_len() / ch).min(samples.len() / ch);
        let pushed = self.prod.push_slice(&samples[..frames * ch]) / ch;
        let queued = (self.prod.occupied_len() / ch) as u64;
        self.shared.stats.high_water_frames.fetch_max(queued, Ordering::Relaxed);
        pushed
    }

    /// Pushes what fits and counts the rest as dropped; returns the frames pushed. The
    /// live-input policy: never waits, wakes nobody (real-time safe).
    pub fn push_or_drop(&mut self, samples: &[f32]) -> usize {
        let ch = self.shared.channels;
        let pushed = self.push(samples);
        let dropped = samples.len() / ch - pushed;
        if dropped > 0 {
            self.shared.stats.dropped_frames.fetch_add(dropped as u64, Ordering::Relaxed);
        }
        pushed
    }

    /// Pushes every frame, under `policy`: waits for room, parked, and wakes the reader
    /// (backpressure), or drops and counts what does not fit (drop-and-count, as
    /// [`push_or_drop`](Self::push_or_drop)). Returns `false` if the consumer has aborted.
    pub fn push_all(&mut self, samples: &[f32], policy: Policy) -> bool {
        if self.shared.aborted.load(Ordering::Acquire) {
            return false;
        }
        if policy == Policy::DropAndCount {
            self.push_or_drop(samples);
            return true;
        }
        let ch = self.shared.channels;
        let mut done = 0;
        loop {
            done += self.push(&samples[done..]) * ch;
            if let Some(t) = self.shared.consumer.get() {
                t.unpark();
            }
            if done >= samples.len() {
                return true;
            }
            if self.shared.aborted.load(Ordering::Acquire) {
                return false;
            }
            self.shared.stats.full_waits.fetch_add(1, Ordering::Relaxed);
            let _ = self.shared.producer.set(std::thread::current());
            std::thread::park_timeout(PARK);
        }
    }

    /// Marks the end of the stream: the reader sees it after the last pushed frame.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Tells the reader the stream ended in error: it stops without draining.
    pub fn abort(&self) {
        self.shared.abort();
    }

    /// Whether the reader has given up.
    pub fn is_aborted(&self) -> bool {
        self.shared.aborted.load(Ordering::Acquire)
    }

    /// Counters of this ring.
    pub fn stats(&self) -> &RingStats {
        &self.shared.stats
    }

    /// A handle on the counters that outlives this end.
    pub fn stats_handle(&self) -> Arc<RingStats> {
        self.shared.stats.clone()
    }

    /// A handle that ends this ring's stream from another thread, as this end would: for
    /// a pipeline that must end its input while the producer is blocked in a read.
    pub fn closer(&self) -> RingCloser {
        RingCloser { shared: self.shared.clone() }
    }
}

/// Ends a ring's stream from outside its two ends ([`RingWriter::closer`]).
#[derive(Clone)]
pub struct RingCloser {
    shared: Arc<Shared>,
}

impl RingCloser {
    /// As [`RingWriter::close`]: the reader gets what is queued, then the end. Frames the
    /// writer pushes afterwards are still read if they arrive before the reader has
    /// drained the ring.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Aborts the stream: the reader stops without draining and the writer's waiting
    /// pushes return `false`.
    pub fn abort(&self) {
        self.shared.abort();
    }
}

impl RingReader {
    /// Channels per frame.
    pub fn channels(&self) -> usize {
        self.shared.channels
    }

    /// Frames queued now.
    pub fn queued_frames(&self) -> usize {
        self.cons.occupied_len() / self.shared.channels
    }

    /// Pops up to `out.len() / channels` whole frames; returns the frames popped. Never
    /// waits and wakes nobody (real-time safe).
    pub fn pop(&mut self, out: &mut [f32]) -> usize {
        let ch = self.shared.channels;
        let frames = (self.cons.occupied_len() / ch).min(out.len() / ch);
        self.cons.pop_slice(&mut out[..frames * ch]) / ch
    }

    /// Waits until `out` is full of frames or the stream has ended, then pops. Returns the
    /// frames popped (fewer than asked only at the end of the stream), or `None` if the
    /// producer aborted.
    pub fn pop_exact_blocking(&mut self, out: &mut [f32]) -> Option<usize> {
        let ch = self.shared.channels;
        let want = out.len() / ch;
        let mut got = 0;
        loop {
            if self.shared.aborted.load(Ordering::Acquire) {
                return None;
            }
            // Read `closed` before popping: if it was set, every frame is already visible.
            let closed = self.shared.closed.load(Ordering::Acquire);
            got += self.pop(&mut out[got * ch..want * ch]);
            // Room was made: wake a producer waiting under backpressure.
            if let Some(t) = self.shared.producer.get() {
                t.unpark();
            }
            if got == want || (closed && self.cons.occupied_len() < ch) {
                return Some(got);
            }
            self.shared.stats.underruns.fetch_add(1, Ordering::Relaxed);
            let _ = self.shared.consumer.set(std::thread::current());
            std::thread::park_timeout(PARK);
        }
    }

    /// Tells the writer the consumer gave up (it stops pushing).
    pub fn abort(&self) {
        self.shared.abort();
    }

    /// Counters of this ring.
    pub fn stats(&self) -> &RingStats {
        &self.shared.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn full_and_empty_are_short_counts() {
        let (mut w, mut r) = FrameRing::new(2, 3);
        assert_eq!(w.push(&[1.0; 10]), 3, "only three frames fit");
        assert_eq!(w.push(&[1.0; 2]), 0);
        let mut out = [0.0; 8];
        assert_eq!(r.pop(&mut out), 3);
        assert_eq!(r.pop(&mut out), 0);
        assert_eq!(r.stats().high_water_frames.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn drop_and_count_never_waits() {
        let (mut w, _r) = FrameRing::new(1, 4);
        assert!(w.push_all(&[0.5; 10], Policy::DropAndCount));
        assert_eq!(w.stats().dropped_frames.load(Ordering::Relaxed), 6);
    }

    proptest! {
        /// Every sample once, in order, across arbitrary chunkings on both sides, with a
        /// producer and a consumer on different threads and a ring smaller than the data.
        #[test]
        fn every_sample_once_in_order(
            channels in 1usize..5,
            capacity in 1usize..64,
            frames in 0usize..3000,
            push_chunks in proptest::collection::vec(1usize..200, 1..20),
            pop_chunks in proptest::collection::vec(1usize..200, 1..20),
        ) {
            let data: Vec<f32> = (0..frames * channels).map(|i| i as f32).collect();
            let (mut w, mut r) = FrameRing::new(channels, capacity);
            let producer = {
                let data = data.clone();
                std::thread::spawn(move || {
                    let mut at = 0;
                    let mut k = 0;
                    while at < data.len() {
                        let n = (push_chunks[k % push_chunks.len()] * channels).min(data.len() - at);
                        assert!(w.push_all(&data[at..at + n], Policy::Backpressure));
                        at += n;
                        k += 1;
                    }
                    w.close();
                })
            };
            let mut got = Vec::new();
            let mut k = 0;
            loop {
                let mut buf = vec![0.0; pop_chunks[k % pop_chunks.len()] * channels];
                let n = r.pop_exact_blocking(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n * channels]);
                if n < buf.len() / channels {
                    break;
                }
                k += 1;
            }
            producer.join().unwrap();
            prop_assert_eq!(got, data);
        }
    }
}
