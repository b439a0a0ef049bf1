//! What the benchmarks share with `bench/search-compare`: the judged corpus.

pub mod judged;
