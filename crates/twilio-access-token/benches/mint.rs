//! Minting benchmarks.

fn main() {}
