//! Helpers shared by the workspace's tests and benches (a dev-dependency only; never a
//! dependency of product code):
//!
//! - [`alloc`]: [`CountingAlloc`], a global allocator counting each thread's allocations and
//!   live / peak heap bytes, with scoped measurements ([`allocations_during`],
//!   [`peak_during`]);
//! - [`rng`]: the deterministic generators the tests draw their data from ([`Rng`],
//!   xorshift64*, and [`SplitMix64`]);
//! - [`tree`]: `TreeEnsemble` models built on [`mle_format::tree::TreeEnsembleSpec`] (one
//!   stump, an ensemble from per-tree node lists, random trees);
//! - [`reference`]: a plain, slow interpreter of `docs/OPS.md` (the `TreeEnsemble` and the
//!   classical and post-transform ops) that the executor's bit-identity tests compare against;
//! - [`typed`]: a model with typed input features (string and integer categories, a float)
//!   and its values derived by hand;
//! - [`assert_same_bits`]: bitwise equality of two f64 slices.
//!
//! It depends on `mle-format` only, so `mle-exec` and everything above can dev-depend on it.

pub mod alloc;
pub mod reference;
pub mod rng;
pub mod tree;
pub mod typed;

pub use alloc::{allocations_during, peak_during, CountingAlloc};
pub use rng::{Rng, SplitMix64};

/// Asserts `a` and `b` are equal bit for bit (any NaN equals any NaN), naming `what` and the
/// first differing element.
#[track_caller]
pub fn assert_same_bits(a: &[f64], b: &[f64], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
            "{what}: element {i}: {x:?} != {y:?}"
        );
    }
}
