//! Dense benchmarks (placeholder until written).
fn main() {}
