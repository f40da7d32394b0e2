//! Test helpers shared by unmix's crates (a dev-dependency only, never published).
//!
//! [`CountingAllocator`] counts every allocation made by the calling thread, for tests
//! that prove a real-time path allocates nothing, and the bytes the thread holds and the
//! most it held ([`live_bytes`], [`peak_bytes`]), for bounds on a reader's memory. A
//! program has one global allocator, so each test binary that needs it installs it
//! itself:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: unmix_test_support::CountingAllocator = unmix_test_support::CountingAllocator;
//!
//! let before = unmix_test_support::allocations();
//! separator.process(&input, &mut output)?;
//! assert_eq!(unmix_test_support::allocations() - before, 0);
//! ```

#![allow(unsafe_code)] // a global allocator is unsafe by nature

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // `const` initialisation: no lazy set-up and no destructor, so the allocator may use it.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    // Bytes allocated less bytes freed by this thread (memory one thread allocates and
    // another frees is counted off the other), and the most since the last reset.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn held(change: isize) {
    let live = LIVE.with(|l| {
        l.set(l.get() + change);
        l.get()
    });
    PEAK.with(|p| p.set(p.get().max(live)));
}

/// The system allocator, counting the allocations (and reallocations) of each thread.
/// Counts only where it is installed as the `#[global_allocator]`.
pub struct CountingAllocator;

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        held(layout.size() as isize);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        held(-(layout.size() as isize));
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        held(new_size as isize - layout.size() as isize);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations made by this thread so far (0 forever where [`CountingAllocator`] is not
/// the global allocator).
pub fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Bytes this thread holds: allocated less freed (0 where [`CountingAllocator`] is not
/// the global allocator).
pub fn live_bytes() -> isize {
    LIVE.with(Cell::get)
}

/// The most bytes this thread held since the last [`reset_peak`].
pub fn peak_bytes() -> isize {
    PEAK.with(Cell::get)
}

/// Starts a new peak from what this thread holds now.
pub fn reset_peak() {
    PEAK.with(|p| p.set(live_bytes()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[global_allocator]
    static ALLOCATOR: CountingAllocator = CountingAllocator;

    #[test]
    fn the_counter_sees_allocations() {
        let before = allocations();
        let v: Vec<u64> = std::hint::black_box(Vec::with_capacity(16));
        assert!(allocations() > before);
        drop(v);
    }

    #[test]
    fn the_peak_sees_what_was_held() {
        reset_peak();
        let start = live_bytes();
        let v: Vec<u8> = std::hint::black_box(vec![1; 1 << 20]);
        assert_eq!(live_bytes() - start, 1 << 20);
        drop(v);
        assert_eq!(live_bytes(), start);
        assert_eq!(peak_bytes() - start, 1 << 20);
    }
}
