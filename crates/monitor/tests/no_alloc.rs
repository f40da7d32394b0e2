//! The monitor's per-block path allocates nothing once its buffers exist: a counting
//! global allocator watches blocks of the size it was built for go through.

#[global_allocator]
static ALLOCATOR: unmix_test_support::CountingAllocator = unmix_test_support::CountingAllocator;

use unmix_core::{BoxError, Sink};
use unmix_monitor::{SCORE_CHANNELS, WindowMonitor, WindowSpec};
use unmix_test_support::allocations;

/// Counts what it is given, allocating nothing.
struct Count;

impl Sink for Count {
    fn write(&mut self, samples: &[f32]) -> Result<(), BoxError> {
        std::hint::black_box(samples);
        Ok(())
    }
    fn finish(self: Box<Self>) -> Result<(), BoxError> {
        Ok(())
    }
}

#[test]
fn monitoring_a_block_allocates_nothing() {
    let n = 8;
    let width = n + SCORE_CHANNELS;
    let block_frames = 4096;
    let block: Vec<f32> = (0..block_frames * width).map(|i| (i as f32 * 0.37).sin()).collect();
    for (window, hop) in [(4800, 2400), (256, 64), (1, 1), (48_000, 48_000)] {
        let spec = WindowSpec::new(window, hop, 48_000).unwrap();
        let mut monitor = WindowMonitor::new(n, spec, block_frames, Box::new(Count), Box::new(Count)).unwrap();
        let before = allocations();
        for size in [block_frames, 1, 77, block_frames] {
            for _ in 0..10 {
                monitor.write(&block[..size * width]).unwrap();
            }
        }
        assert_eq!(allocations() - before, 0, "window {window} hop {hop}");
    }
}
