//! A counting global allocator. A test binary installs it with
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOC: mle_testkit::CountingAlloc = mle_testkit::CountingAlloc;
//! ```
//!
//! and measures a scope with [`allocations_during`] (how many allocations a call makes) or
//! [`peak_during`] (how many heap bytes above the starting level it held at most). Counts are
//! per thread: work a call hands to other threads is not seen, and tests running in parallel
//! do not disturb each other. Without the allocator installed every count stays zero; check
//! with [`counting_is_active`].

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    // Const-initialized: touching them never allocates (so the allocator cannot recurse).
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

fn add(n: usize) {
    // `try_with`: the thread-locals may already be gone while a thread is torn down.
    let _ = CALLS.try_with(|c| c.set(c.get().wrapping_add(1)));
    let _ = LIVE.try_with(|l| {
        let v = l.get().saturating_add(n);
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

fn sub(n: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(n)));
}

/// A global allocator forwarding to [`System`] and counting, per thread, the allocation calls
/// (`alloc`, `alloc_zeroed`, `realloc`) and the live and peak heap bytes. A `realloc` counts
/// the new block before releasing the old one, as the copy needs both.
pub struct CountingAlloc;

// SAFETY: every call is forwarded unchanged to the system allocator; the bookkeeping only
// touches const-initialized thread-local cells, which never allocate.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        sub(layout.size());
        // SAFETY: `ptr` was allocated by `System` (every allocation above is) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size);
        // SAFETY: as for `dealloc`; `new_size` is the caller's, under `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        sub(layout.size());
        p
    }
}

/// Heap bytes currently live on this thread (allocated here and not yet freed here).
pub fn live_bytes() -> usize {
    LIVE.with(|l| l.get())
}

/// Runs `f` and returns its result with the number of allocation calls it made on this
/// thread.
pub fn allocations_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = CALLS.with(|c| c.get());
    let out = f();
    let after = CALLS.with(|c| c.get());
    (out, after.wrapping_sub(before))
}

/// Runs `f` and returns its result with the most heap bytes it held on this thread above
/// what was live when it started.
pub fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = live_bytes();
    PEAK.with(|p| p.set(base));
    let out = f();
    let peak = PEAK.with(|p| p.get());
    (out, peak.saturating_sub(base))
}

/// Whether [`CountingAlloc`] is this binary's global allocator (an allocation is seen).
pub fn counting_is_active() -> bool {
    let (b, n) = allocations_during(|| std::hint::black_box(Box::new(0u64)));
    drop(b);
    n > 0
}
