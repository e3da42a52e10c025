//! The counting allocator counts what a scope allocates on its thread, and only that.

use mle_testkit::alloc::{counting_is_active, live_bytes};
use mle_testkit::{allocations_during, peak_during, CountingAlloc};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[test]
fn counts_calls_and_peak_bytes_of_a_scope() {
    assert!(counting_is_active());
    let (v, n) = allocations_during(|| {
        let mut v: Vec<u8> = Vec::with_capacity(10);
        v.reserve(1000); // a realloc counts as a call
        v
    });
    assert_eq!(n, 2);
    let before = live_bytes();
    drop(v);
    assert!(live_bytes() < before);

    let ((), peak) = peak_during(|| {
        let big = vec![1u8; 1 << 20];
        std::hint::black_box(&big);
    });
    assert!((1 << 20..(1 << 20) + 4096).contains(&peak), "{peak}");
    let (x, n) = allocations_during(|| std::hint::black_box(3) + 4);
    assert_eq!((x, n), (7, 0));
}

#[test]
fn other_threads_are_not_counted() {
    let (_, n) = allocations_during(|| {
        std::thread::scope(|s| {
            s.spawn(|| std::hint::black_box(vec![0u8; 4096]));
        })
    });
    // Spawning allocates on this thread (the thread's handle); the worker's 4 KiB do not
    // show in the peak.
    assert!(n > 0);
    let ((), peak) = peak_during(|| {
        std::thread::scope(|s| {
            s.spawn(|| std::hint::black_box(vec![0u8; 1 << 20]));
        })
    });
    assert!(peak < 1 << 20, "{peak}");
}
