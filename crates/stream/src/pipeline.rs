//! Source → processor → sink, each on a named thread, joined by two [`FrameRing`]s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use serde::Serialize;

pub use unmix_core::{BoxError, Processor, Sink, Source};

use crate::ring::{FrameRing, Policy, RingCloser, RingReader, RingWriter};
use crate::stats::{RingStats, StageStats, StatsSnapshot};

/// Why a pipeline failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The settings cannot work.
    #[error("pipeline settings: {0}")]
    Config(String),
    /// The source failed; its message is passed on unchanged.
    #[error("{0}")]
    Source(BoxError),
    /// The processor failed.
    #[error("{0}")]
    Processor(BoxError),
    /// The sink failed.
    #[error("{0}")]
    Sink(BoxError),
    /// A swapped-in processor does not fit the stream.
    #[error("a new processor takes {got_in} → {got_out} channels, the stream is {want_in} → {want_out}")]
    SwapShape {
        /// Input channels of the stream.
        want_in: usize,
        /// Output channels of the stream.
        want_out: usize,
        /// Input channels of the new processor.
        got_in: usize,
        /// Output channels of the new processor.
        got_out: usize,
    },
    /// A stage's thread panicked (a bug).
    #[error("the {0} thread panicked")]
    Panicked(&'static str),
    /// A thread could not be started.
    #[error("cannot start the {0} thread: {1}")]
    Spawn(&'static str, std::io::Error),
    /// [`Pipeline::abort`] stopped it before the sink was finished (the sink was dropped
    /// unfinished: a file sink left no output).
    #[error("the stream was aborted before its end")]
    Aborted,
}

/// Result with this module's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Messages to the processing thread, picked up between two blocks.
pub enum Control {
    /// Replace the processor (a new model) from the next block on.
    Swap(Box<dyn Processor>),
    /// End the stream now: what was processed is delivered and the sink finished.
    Stop,
}

/// How the pipeline is sized and how it treats a full ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PipelineConfig {
    /// Frames the source reads at a time.
    pub read_frames: usize,
    /// Frames the processor handles at a time (its frame length; the hop equals it).
    pub frame_len: usize,
    /// Capacity of each ring, in frames.
    pub ring_frames: usize,
    /// What the source does when its ring is full.
    pub policy: Policy,
}

impl PipelineConfig {
    /// Settings for files: large blocks, backpressure.
    pub fn file() -> Self {
        Self { read_frames: 16_384, frame_len: 4_096, ring_frames: 65_536, policy: Policy::Backpressure }
    }

    /// Checks the settings once.
    pub fn check(&self) -> Result<()> {
        if self.read_frames == 0 || self.frame_len == 0 {
            return Err(Error::Config("read and frame lengths must be at least one frame".into()));
        }
        if self.ring_frames < self.read_frames.max(self.frame_len) {
            return Err(Error::Config(format!(
                "rings of {} frames cannot hold a block of {} frames",
                self.ring_frames,
                self.read_frames.max(self.frame_len)
            )));
        }
        Ok(())
    }
}

/// Counters of a finished (or running) pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineReport {
    /// Frames read from the source.
    pub frames_in: u64,
    /// Frames delivered to the sink.
    pub frames_out: u64,
    /// Per-stage counters: source, processor, sink.
    pub stages: Vec<StatsSnapshot>,
    /// Per-ring counters: source → processor, processor → sink.
    pub rings: Vec<RingSnapshot>,
    /// Wall time since start, seconds.
    pub wall_s: f64,
    /// Settings used.
    pub config: PipelineConfig,
}

/// A ring's counters at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RingSnapshot {
    /// Ring name.
    pub ring: String,
    /// Most frames queued at once.
    pub high_water_frames: u64,
    /// Frames dropped (drop-and-count policy).
    pub dropped_frames: u64,
    /// Times the consumer waited on an empty ring.
    pub underruns: u64,
    /// Times the producer waited on a full ring.
    pub full_waits: u64,
}

fn ring_snapshot(name: &str, r: &RingStats) -> RingSnapshot {
    RingSnapshot {
        ring: name.to_string(),
        high_water_frames: r.high_water_frames.load(Ordering::Relaxed),
        dropped_frames: r.dropped_frames.load(Ordering::Relaxed),
        underruns: r.underruns.load(Ordering::Relaxed),
        full_waits: r.full_waits.load(Ordering::Relaxed),
    }
}

struct Counters {
    stages: [StageStats; 3],
    rings: [Arc<RingStats>; 2],
    /// Set once the sink's `finish` succeeded.
    sink_finished: AtomicBool,
}

/// A running pipeline.
pub struct Pipeline {
    control: Sender<Control>,
    counters: Arc<Counters>,
    threads: Vec<(&'static str, JoinHandle<Result<()>>)>,
    started: Instant,
    config: PipelineConfig,
    frames_total: Option<usize>,
    /// Ends the source → processor ring from outside ([`Pipeline::end_input`], [`Pipeline::abort`]).
    input: RingCloser,
    /// Set by `end_input` or `abort`: the source's thread is no longer waited for.
    source_released: AtomicBool,
    aborted: AtomicBool,
}

const STAGE_NAMES: [&str; 3] = ["source", "processor", "sink"];

impl Pipeline {
    /// Checks that the stages fit together and starts the three threads.
    pub fn start(
        mut source: Box<dyn Source>,
        processor: Box<dyn Processor>,
        mut sink: Box<dyn Sink>,
        config: PipelineConfig,
    ) -> Result<Self> {
        config.check()?;
        let (m, n) = (processor.input_channels(), processor.output_channels());
        if source.channels() != m {
            return Err(Error::Config(format!(
                "the source gives {} channels, the processor takes {m}",
                source.channels()
            )));
        }
        let frames_total = source.frames_total();
        let (mut to_proc, mut from_source) = FrameRing::new(m, config.ring_frames);
        let (mut to_sink, mut from_proc) = FrameRing::new(n, config.ring_frames);
        let counters = Arc::new(Counters {
            stages: Default::default(),
            rings: [to_proc.stats_handle(), to_sink.stats_handle()],
            sink_finished: AtomicBool::new(false),
        });
        let input = to_proc.closer();
        let (control, control_rx) = crossbeam_channel::unbounded();
        let mut threads = Vec::new();

        let c = counters.clone();
        let spawn = |name: &'static str, f: Box<dyn FnOnce() -> Result<()> + Send>| {
            std::thread::Builder::new().name(format!("unmix-{name}")).spawn(f).map_err(|e| Error::Spawn(name, e))
        };
        threads.push((
            "source",
            spawn(
                "source",
                Box::new(move || {
                    let mut block = Vec::with_capacity(config.read_frames * m);
                    loop {
                        if to_proc.is_aborted() {
                            return Ok(());
                        }
                        let t0 = Instant::now();
                        let frames = match source.read(&mut block, config.read_frames) {
                            Ok(f) => f,
                            Err(e) => {
                                to_proc.abort();
                                return Err(Error::Source(e));
                            }
                        };
                        c.stages[0].add(frames, frames, t0.elapsed().as_nanos() as u64);
                        if frames == 0 {
                            to_proc.close();
                            return Ok(());
                        }
                        if !to_proc.push_all(&block[..frames * m], config.policy) {
                            return Ok(());
                        }
                    }
                }),
            )?,
        ));

        let c = counters.clone();
        threads.push((
            "processor",
            spawn(
                "processor",
                Box::new(move || run_processor(processor, &mut from_source, &mut to_sink, &control_rx, config, &c)),
            )?,
        ));

        let c = counters.clone();
        threads.push((
            "sink",
            spawn(
                "sink",
                Box::new(move || {
                    let mut block = vec![0.0f32; config.read_frames * n];
                    loop {
                        let Some(frames) = from_proc.pop_exact_blocking(&mut block) else {
                            // Upstream failed: drop the sink unfinished, leaving no output.
                            return Ok(());
                        };
                        let t0 = Instant::now();
                        if frames > 0
                            && let Err(e) = sink.write(&block[..frames * n])
                        {
                            from_proc.abort();
                            return Err(Error::Sink(e));
                        }
                        c.stages[2].add(frames, frames, t0.elapsed().as_nanos() as u64);
                        if frames < config.read_frames {
                            sink.finish().map_err(Error::Sink)?;
                            c.sink_finished.store(true, Ordering::Release);
                            return Ok(());
                        }
                    }
                }),
            )?,
        ));
        Ok(Self {
            control,
            counters,
            threads,
            started: Instant::now(),
            config,
            frames_total,
            input,
            source_released: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
        })
    }

    /// Ends the stream where the source is, as if it had ended: every frame it has read is
    /// processed and delivered and the sink is finished. The source's read in progress is
    /// not waited for — a pipe may never deliver again — and its thread ends by itself
    /// when that read returns. For a stream the user stops (Ctrl-C on `apply -`).
    pub fn end_input(&self) {
        self.source_released.store(true, Ordering::Release);
        self.input.close();
    }

    /// Stops everything now; the sink is dropped unfinished (a file sink leaves no output)
    /// and [`wait`](Self::wait) returns [`Error::Aborted`] — unless the sink had already
    /// finished. The source's read in progress is not waited for.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        self.source_released.store(true, Ordering::Release);
        self.input.abort();
    }

    /// The threads still awaited: all three, or the processor and sink once the source
    /// was let go.
    fn awaited(&self) -> impl Iterator<Item = &(&'static str, JoinHandle<Result<()>>)> {
        let released = self.source_released.load(Ordering::Acquire);
        self.threads.iter().filter(move |(name, _)| !(released && *name == "source"))
    }

    /// Sends control messages to the processing thread.
    pub fn control(&self) -> Sender<Control> {
        self.control.clone()
    }

    /// Frames delivered to the sink so far.
    pub fn frames_out(&self) -> u64 {
        self.counters.stages[2].frames_out.load(Ordering::Relaxed)
    }

    /// Frames the source announced, if it knows.
    pub fn frames_total(&self) -> Option<usize> {
        self.frames_total
    }

    /// Whether every thread has ended (after [`end_input`](Self::end_input) or
    /// [`abort`](Self::abort): the processor's and the sink's).
    pub fn is_finished(&self) -> bool {
        self.awaited().all(|(_, h)| h.is_finished())
    }

    /// The counters now.
    pub fn report(&self) -> PipelineReport {
        let c = &self.counters;
        PipelineReport {
            frames_in: c.stages[0].frames_out.load(Ordering::Relaxed),
            frames_out: c.stages[2].frames_out.load(Ordering::Relaxed),
            stages: c.stages.iter().zip(STAGE_NAMES).map(|(s, name)| s.snapshot(name)).collect(),
            rings: vec![ring_snapshot("source→processor", &c.rings[0]), ring_snapshot("processor→sink", &c.rings[1])],
            wall_s: self.started.elapsed().as_secs_f64(),
            config: self.config,
        }
    }

    /// Waits for every thread; returns the report, or the first stage error (source
    /// before processor before sink, since an upstream failure explains the others).
    /// After [`end_input`](Self::end_input) or [`abort`](Self::abort) a source still
    /// blocked in its read is left to end by itself.
    pub fn wait(mut self) -> Result<PipelineReport> {
        let mut first_error = None;
        let released = self.source_released.load(Ordering::Acquire);
        for (name, handle) in std::mem::take(&mut self.threads) {
            if released && name == "source" && !handle.is_finished() {
                continue; // detached: it sees the closed ring when its read returns
            }
            let outcome = handle.join().unwrap_or(Err(Error::Panicked(name)));
            if let Err(e) = outcome {
                first_error.get_or_insert(e);
            }
        }
        if self.aborted.load(Ordering::Acquire) && !self.counters.sink_finished.load(Ordering::Acquire) {
            return Err(first_error.unwrap_or(Error::Aborted));
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(self.report()),
        }
    }
}

fn run_processor(
    mut processor: Box<dyn Processor>,
    input: &mut RingReader,
    output: &mut RingWriter,
    control: &Receiver<Control>,
    config: PipelineConfig,
    counters: &Counters,
) -> Result<()> {
    let (m, n) = (processor.input_channels(), processor.output_channels());
    let mut frames_in = vec![0.0f32; config.frame_len * m];
    let mut frames_out = vec![0.0f32; config.frame_len * n];
    loop {
        // Control is picked up between two blocks, never inside one.
        while let Ok(message) = control.try_recv() {
            match message {
                Control::Swap(next) => {
                    if next.input_channels() != m || next.output_channels() != n {
                        input.abort();
                        output.abort();
                        return Err(Error::SwapShape {
                            want_in: m,
                            want_out: n,
                            got_in: next.input_channels(),
                            got_out: next.output_channels(),
                        });
                    }
                    processor = next;
                }
                Control::Stop => {
                    input.abort();
                    output.close();
                    return Ok(());
                }
            }
        }
        let Some(frames) = input.pop_exact_blocking(&mut frames_in) else {
            output.abort();
            return Ok(());
        };
        let t0 = Instant::now();
        if frames > 0
            && let Err(e) = processor.process(&frames_in[..frames * m], &mut frames_out[..frames * n])
        {
            input.abort();
            output.abort();
            return Err(Error::Processor(e));
        }
        counters.stages[1].add(frames, frames, t0.elapsed().as_nanos() as u64);
        if frames > 0 && !output.push_all(&frames_out[..frames * n], Policy::Backpressure) {
            input.abort();
            return Ok(());
        }
        if frames < config.frame_len {
            // The end of the stream. A source let go by `end_input` may still push when its
            // read returns: this tells it to stop instead.
            input.abort();
            output.close();
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    use proptest::prelude::*;

    use super::*;

    /// Produces `frames` frames of a ramp, in reads of varying size, failing at `fail_at`.
    struct Ramp {
        channels: usize,
        frames: usize,
        at: usize,
        sizes: Vec<usize>,
        k: usize,
        fail_at: Option<usize>,
    }

    impl Source for Ramp {
        fn channels(&self) -> usize {
            self.channels
        }
        fn sample_rate_hz(&self) -> u32 {
            1000
        }
        fn frames_total(&self) -> Option<usize> {
            Some(self.frames)
        }
        fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> std::result::Result<usize, BoxError> {
            out.clear();
            if let Some(f) = self.fail_at
                && self.at >= f
            {
                return Err("the disk went away".into());
            }
            let n = self.sizes[self.k % self.sizes.len()].min(max_frames).min(self.frames - self.at);
            self.k += 1;
            out.extend((self.at * self.channels..(self.at + n) * self.channels).map(|i| i as f32));
            self.at += n;
            Ok(n)
        }
    }

    /// out[f][j] = Σ_c (c + 1 + j) · in[f][c]: a fixed linear map, frame by frame.
    struct Mix {
        m: usize,
        n: usize,
        gain: f32,
    }

    impl Processor for Mix {
        fn input_channels(&self) -> usize {
            self.m
        }
        fn output_channels(&self) -> usize {
            self.n
        }
        fn process(&mut self, input: &[f32], output: &mut [f32]) -> std::result::Result<(), BoxError> {
            for (i, o) in input.chunks_exact(self.m).zip(output.chunks_exact_mut(self.n)) {
                for (j, out) in o.iter_mut().enumerate() {
                    *out = self.gain * i.iter().enumerate().map(|(c, x)| (c + 1 + j) as f32 * x).sum::<f32>();
                }
            }
            Ok(())
        }
    }

    #[derive(Clone, Default)]
    struct Collect {
        data: Arc<Mutex<Vec<f32>>>,
        finished: Arc<AtomicBool>,
    }

    impl Sink for Collect {
        fn write(&mut self, samples: &[f32]) -> std::result::Result<(), BoxError> {
            self.data.lock().map_err(|_| "poisoned")?.extend_from_slice(samples);
            Ok(())
        }
        fn finish(self: Box<Self>) -> std::result::Result<(), BoxError> {
            self.finished.store(true, Ordering::SeqCst);
            Ok(())
        }
    }

    fn offline(ramp: &Ramp, mix: &mut Mix) -> Vec<f32> {
        let input: Vec<f32> = (0..ramp.frames * ramp.channels).map(|i| i as f32).collect();
        let mut out = vec![0.0; ramp.frames * mix.n];
        mix.process(&input, &mut out).unwrap();
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Streamed output equals offline processing sample for sample, whatever the read
        /// sizes, frame length and ring size; the partial last frame is delivered.
        #[test]
        fn streamed_equals_offline(
            m in 1usize..5,
            n in 1usize..4,
            frames in 0usize..5000,
            sizes in proptest::collection::vec(1usize..700, 1..8),
            read_frames in 1usize..600,
            frame_len in 1usize..600,
            extra in 0usize..300,
        ) {
            let ramp = Ramp { channels: m, frames, at: 0, sizes, k: 0, fail_at: None };
            let want = offline(&ramp, &mut Mix { m, n, gain: 1.0 });
            let sink = Collect::default();
            let config = PipelineConfig {
                read_frames,
                frame_len,
                ring_frames: read_frames.max(frame_len) + extra,
                policy: Policy::Backpressure,
            };
            let p = Pipeline::start(Box::new(ramp), Box::new(Mix { m, n, gain: 1.0 }), Box::new(sink.clone()), config).unwrap();
            let report = p.wait().unwrap();
            prop_assert_eq!(report.frames_in, frames as u64);
            prop_assert_eq!(report.frames_out, frames as u64);
            prop_assert!(sink.finished.load(Ordering::SeqCst));
            let got = sink.data.lock().unwrap().clone();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn a_source_error_stops_everything_and_the_sink_is_not_finished() {
        let ramp = Ramp { channels: 2, frames: 100_000, at: 0, sizes: vec![1000], k: 0, fail_at: Some(30_000) };
        let sink = Collect::default();
        let p = Pipeline::start(
            Box::new(ramp),
            Box::new(Mix { m: 2, n: 2, gain: 1.0 }),
            Box::new(sink.clone()),
            PipelineConfig::file(),
        )
        .unwrap();
        let err = p.wait().unwrap_err();
        assert!(matches!(err, Error::Source(_)));
        assert_eq!(err.to_string(), "the disk went away");
        assert!(!sink.finished.load(Ordering::SeqCst), "a failed stream must not finalise its output");
    }

    #[test]
    fn stop_delivers_what_was_processed_and_finishes_the_sink() {
        // An endless source, stopped by control.
        let ramp = Ramp { channels: 1, frames: usize::MAX / 2, at: 0, sizes: vec![64], k: 0, fail_at: None };
        let sink = Collect::default();
        let config = PipelineConfig { read_frames: 64, frame_len: 64, ring_frames: 256, policy: Policy::Backpressure };
        let p =
            Pipeline::start(Box::new(ramp), Box::new(Mix { m: 1, n: 1, gain: 1.0 }), Box::new(sink.clone()), config)
                .unwrap();
        while p.frames_out() < 1000 {
            std::thread::yield_now();
        }
        p.control().send(Control::Stop).unwrap();
        let report = p.wait().unwrap();
        assert!(sink.finished.load(Ordering::SeqCst));
        let got = sink.data.lock().unwrap().clone();
        assert_eq!(got.len() as u64, report.frames_out);
        // Every delivered sample is the ramp, in order.
        assert!(got.iter().enumerate().all(|(i, &v)| v == i as f32));
    }

    /// A pipe: blocks of a ramp arrive when the test sends them; a read waits for the
    /// next block like a read on a silent pipe, and ends when the sender is dropped.
    struct Pipe {
        blocks: crossbeam_channel::Receiver<usize>,
        at: usize,
    }

    impl Source for Pipe {
        fn channels(&self) -> usize {
            1
        }
        fn sample_rate_hz(&self) -> u32 {
            1000
        }
        fn frames_total(&self) -> Option<usize> {
            None
        }
        fn read(&mut self, out: &mut Vec<f32>, _max_frames: usize) -> std::result::Result<usize, BoxError> {
            out.clear();
            let Ok(n) = self.blocks.recv() else { return Ok(0) };
            out.extend((self.at..self.at + n).map(|i| i as f32));
            self.at += n;
            Ok(n)
        }
    }

    fn piped(sink: &Collect) -> (crossbeam_channel::Sender<usize>, Pipeline) {
        let (blocks, rx) = crossbeam_channel::unbounded();
        let config =
            PipelineConfig { read_frames: 100, frame_len: 100, ring_frames: 1000, policy: Policy::Backpressure };
        let source = Box::new(Pipe { blocks: rx, at: 0 });
        let p =
            Pipeline::start(source, Box::new(Mix { m: 1, n: 1, gain: 1.0 }), Box::new(sink.clone()), config).unwrap();
        (blocks, p)
    }

    /// `end_input` on a source blocked in its read: everything read is delivered — the
    /// partial block too — the sink is finished, and `wait` returns without the read.
    #[test]
    fn ending_the_input_delivers_what_was_read_while_the_source_waits() {
        let sink = Collect::default();
        let (blocks, p) = piped(&sink);
        for n in [100, 100, 30] {
            blocks.send(n).unwrap();
        }
        // The processor has everything but the partial block's end; the source now waits.
        while p.report().frames_in < 230 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        p.end_input();
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while !p.is_finished() && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(p.is_finished(), "the processor and the sink end without the source");
        let report = p.wait().unwrap();
        assert_eq!(report.frames_out, 230);
        assert!(sink.finished.load(Ordering::SeqCst));
        let got = sink.data.lock().unwrap().clone();
        assert!(got.iter().enumerate().all(|(i, &v)| v == i as f32) && got.len() == 230);
        // The source's read returns later: it stops instead of pushing into the ended ring.
        blocks.send(100).unwrap();
        drop(blocks);
    }

    /// `abort`: the sink is dropped unfinished and `wait` says so, source blocked or not.
    #[test]
    fn an_aborted_stream_leaves_its_sink_unfinished() {
        let sink = Collect::default();
        let (blocks, p) = piped(&sink);
        blocks.send(100).unwrap();
        while p.report().frames_in < 100 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        p.abort();
        assert!(matches!(p.wait(), Err(Error::Aborted)));
        assert!(!sink.finished.load(Ordering::SeqCst), "an aborted stream must not finalise its output");
        // A stream that had already ended is not undone by a late abort.
        let sink = Collect::default();
        let (blocks, p) = piped(&sink);
        blocks.send(50).unwrap();
        drop(blocks);
        while !p.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        p.abort();
        assert_eq!(p.wait().unwrap().frames_out, 50);
        assert!(sink.finished.load(Ordering::SeqCst));
    }

    #[test]
    fn swapping_the_processor_loses_no_sample() {
        let frames = 200_000;
        let ramp = Ramp { channels: 1, frames, at: 0, sizes: vec![500], k: 0, fail_at: None };
        let sink = Collect::default();
        let config =
            PipelineConfig { read_frames: 500, frame_len: 100, ring_frames: 1000, policy: Policy::Backpressure };
        // The source holds half-way until the swap is sent: a pipeline that had already
        // finished would have dropped its control channel (the test once failed so, on a
        // busy machine).
        let open = Arc::new(AtomicBool::new(false));
        let source = Gated { ramp, hold_at: frames / 2, open: open.clone() };
        let p =
            Pipeline::start(Box::new(source), Box::new(Mix { m: 1, n: 1, gain: 1.0 }), Box::new(sink.clone()), config)
                .unwrap();
        p.control().send(Control::Swap(Box::new(Mix { m: 1, n: 1, gain: -1.0 }))).unwrap();
        open.store(true, Ordering::Release);
        p.wait().unwrap();
        let got = sink.data.lock().unwrap().clone();
        assert_eq!(got.len(), frames);
        // Each output is ±its input; the sign changes once, at a block boundary.
        assert!(got.iter().enumerate().all(|(i, &v)| v.abs() == i as f32));
        let flips = got.windows(2).filter(|w| w[0].is_sign_positive() && w[1].is_sign_negative()).count();
        let first_negative = got.iter().position(|v| v.is_sign_negative()).unwrap_or(frames);
        assert!(flips <= 1 && first_negative % 100 == 0, "swap inside a block at {first_negative}");
        // A processor of the wrong shape is refused with an error.
        let open = Arc::new(AtomicBool::new(false));
        let ramp = Ramp { channels: 1, frames: 10_000, at: 0, sizes: vec![500], k: 0, fail_at: None };
        let p = Pipeline::start(
            Box::new(Gated { ramp, hold_at: 0, open: open.clone() }),
            Box::new(Mix { m: 1, n: 1, gain: 1.0 }),
            Box::new(Collect::default()),
            config,
        )
        .unwrap();
        p.control().send(Control::Swap(Box::new(Mix { m: 1, n: 2, gain: 1.0 }))).unwrap();
        open.store(true, Ordering::Release);
        assert!(matches!(p.wait(), Err(Error::SwapShape { .. })));
    }

    /// A [`Ramp`] that gives no frame beyond `hold_at` until `open`.
    struct Gated {
        ramp: Ramp,
        hold_at: usize,
        open: Arc<AtomicBool>,
    }

    impl Source for Gated {
        fn channels(&self) -> usize {
            self.ramp.channels()
        }
        fn sample_rate_hz(&self) -> u32 {
            self.ramp.sample_rate_hz()
        }
        fn frames_total(&self) -> Option<usize> {
            self.ramp.frames_total()
        }
        fn read(&mut self, out: &mut Vec<f32>, max_frames: usize) -> std::result::Result<usize, BoxError> {
            while self.ramp.at >= self.hold_at && !self.open.load(Ordering::Acquire) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            // Still closed: below `hold_at` (the wait above ended there).
            let limit = if self.open.load(Ordering::Acquire) {
                max_frames
            } else {
                max_frames.min(self.hold_at - self.ramp.at)
            };
            self.ramp.read(out, limit)
        }
    }

    #[test]
    fn drop_and_count_counts_what_a_slow_consumer_missed() {
        struct Slow(Collect);
        impl Sink for Slow {
            fn write(&mut self, samples: &[f32]) -> std::result::Result<(), BoxError> {
                std::thread::sleep(std::time::Duration::from_millis(2));
                self.0.write(samples)
            }
            fn finish(self: Box<Self>) -> std::result::Result<(), BoxError> {
                Box::new(self.0).finish()
            }
        }
        let frames = 50_000;
        let ramp = Ramp { channels: 1, frames, at: 0, sizes: vec![100], k: 0, fail_at: None };
        let sink = Collect::default();
        let config =
            PipelineConfig { read_frames: 100, frame_len: 100, ring_frames: 200, policy: Policy::DropAndCount };
        let p = Pipeline::start(
            Box::new(ramp),
            Box::new(Mix { m: 1, n: 1, gain: 1.0 }),
            Box::new(Slow(sink.clone())),
            config,
        )
        .unwrap();
        let report = p.wait().unwrap();
        let dropped = report.rings[0].dropped_frames;
        assert!(dropped > 0, "the source outran the sink: something must have been dropped");
        assert_eq!(report.frames_out + dropped, frames as u64, "every frame is delivered or counted");
        // What arrived is in order.
        let got = sink.data.lock().unwrap().clone();
        assert!(got.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn types_crossing_threads_are_send() {
        fn send<T: Send>() {}
        send::<RingWriter>();
        send::<RingReader>();
        send::<Control>();
        send::<Pipeline>();
    }
}
