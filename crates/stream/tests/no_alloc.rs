//! The per-block paths of the stream crate allocate nothing after construction: framing
//! (with and without a window, overlapping or not) and ring pushes and pops.

#[global_allocator]
static ALLOCATOR: unmix_test_support::CountingAllocator = unmix_test_support::CountingAllocator;

use unmix_stream::{FrameRing, Framer, Policy};
use unmix_test_support::allocations;

#[test]
fn framing_allocates_nothing_per_block() {
    let input: Vec<f32> = (0..8 * 10_000).map(|i| i as f32).collect();
    for (frame_len, hop, windowed) in [(256, 256, false), (256, 64, true), (1, 1, false), (1000, 333, true)] {
        let mut framer = Framer::new(8, frame_len, hop, windowed).unwrap();
        let mut sum = 0.0f32;
        let before = allocations();
        for chunk in input.chunks(8 * 77) {
            framer.push(chunk, &mut |f| sum += f[0]);
        }
        framer.finish(&mut |f, _| sum += f[0]);
        assert_eq!(allocations() - before, 0, "frame {frame_len} hop {hop} windowed {windowed}");
        assert!(sum.is_finite());
    }
}

#[test]
fn ring_push_and_pop_allocate_nothing() {
    let (mut writer, mut reader) = FrameRing::new(4, 1024);
    let block = vec![0.5f32; 4 * 300];
    let mut out = vec![0.0f32; 4 * 300];
    let before = allocations();
    for _ in 0..100 {
        writer.push(&block);
        assert!(writer.push_all(&block, Policy::DropAndCount));
        reader.pop(&mut out);
        reader.pop(&mut out);
    }
    assert_eq!(allocations() - before, 0);
}
