//! What the benchmarks share with `bench/search-compare`: the judged corpus and the
//! synthetic document vectors.

pub mod judged;
pub mod lowrank;

/// This process's resident memory now (VmRSS), in MiB.
pub fn current_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
