//! Test helpers shared by unmix's crates (a dev-dependency only, never published).
//!
//! [`CountingAllocator`] counts every allocation made by the calling thread, for tests
//! that prove a real-time path allocates nothing. A program has one global allocator, so
//! each test binary that needs it installs it itself:
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
}

/// The system allocator, counting the allocations (and reallocations) of each thread.
/// Counts only where it is installed as the `#[global_allocator]`.
pub struct CountingAllocator;

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Allocations made by this thread so far (0 forever where [`CountingAllocator`] is not
/// the global allocator).
pub fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
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
}
