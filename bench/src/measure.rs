//! What every benchmark measures with: CPU time and peak memory from getrusage, resident
//! memory now, and sample texts.

pub fn rusage(who: libc::c_int) -> libc::rusage {
    // SAFETY: getrusage only fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    usage
}

pub fn cpu_seconds(who: libc::c_int) -> f64 {
    let u = rusage(who);
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(u.ru_utime) + s(u.ru_stime)
}

/// Peak RSS of this process (RUSAGE_SELF) or its largest waited-for child.
pub fn peak_rss_mib(who: libc::c_int) -> f64 {
    rusage(who).ru_maxrss as f64 / 1024.0
}

pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

pub use reelforge_bench::current_rss_mib;

pub fn sample_texts(count: usize) -> Vec<String> {
    let subjects = [
        "the crowd",
        "a dog",
        "the goalkeeper",
        "two friends",
        "a red car",
        "the band",
    ];
    let actions = [
        "cheers loudly",
        "runs across the field",
        "dives to save a shot",
        "laughs at a joke",
        "speeds around a corner",
        "plays the final song",
    ];
    (0..count.max(20))
        .map(|i| {
            format!(
                "{} {} in scene {i}.",
                subjects[i % subjects.len()],
                actions[(i / subjects.len()) % actions.len()]
            )
        })
        .collect()
}
