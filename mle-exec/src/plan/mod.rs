//! Compiling a graph into a [`Plan`]: validation, shape and dtype inference, trivial constant
//! folding, fusion, dead-step elimination and the memory plan.
//!
//! - [`ir`]: the compiled form (values, kernels, steps, the plan);
//! - [`lower`]: the operator registry and one lowering function per operator, by family;
//! - [`fuse`]: dense-layer epilogues and folded scalers;
//! - [`compile`](mod@compile): graph inputs and outputs, dead steps, liveness, the memory plan,
//!   the plan budget and chunking.
//!
//! Runtime values live **feature-major** in the arena: a value of shape `[N, d1, .., dk]` for a
//! chunk of `n` rows is stored as `width = d1·..·dk` rows of `n` contiguous elements, element
//! `(r, j)` (`j` the flat non-batch index) at `j·n + r`. Columnar input is copied per column
//! without a transpose, dense layers are `Y[M, n] = W[M, K] · X[K, n]`, and per-feature
//! operations run over contiguous memory.

mod compile;
mod fuse;
pub(crate) mod ir;
mod lower;

pub(crate) use compile::compile;
pub(crate) use ir::*;
pub use lower::OpSpec;

/// Memory a plan may ask for beyond what the file pays for: the bytes of one row (arena, tree
/// staging and outputs) plus the compile-time broadcast maps must stay within
/// `MAX_PLAN_BYTES + PLAN_BYTES_PER_FILE_BYTE × file size`. Without it a few KiB of graph JSON
/// (concatenations fanned out to many outputs, outer-product broadcasts) could ask for
/// gigabytes on the first prediction.
pub const MAX_PLAN_BYTES: usize = 64 << 20;
/// See [`MAX_PLAN_BYTES`].
pub const PLAN_BYTES_PER_FILE_BYTE: usize = 16;

/// Every operator the executor runs, with the attributes each reads (`docs/OPS.md` states
/// their semantics). A node whose operator is not listed is [`crate::ExecError::UnsupportedOp`].
pub fn ops() -> &'static [OpSpec] {
    lower::OPS
}
