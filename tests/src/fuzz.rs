//! A small mutation fuzzer for the parsers of outside input, run by `cargo test` on the
//! stable toolchain (`cargo fuzz` needs nightly, which this project's machines cannot
//! fetch). It starts from real seed files and mutates them as libFuzzer's default
//! mutators do (bit flips, byte edits, inserted dictionary tokens, copied and removed
//! ranges, splices of two seeds, truncation), for a bounded time per target.
//!
//! A panic is a crash: the input is written under `target/fuzz-crashes/` and the test
//! fails naming the file and the seed that reproduces the run. `REELFORGE_FUZZ_SECONDS`
//! sets the time per target (default 8) and `REELFORGE_FUZZ_SEED` the seed (default: the
//! clock, printed).

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bytes worth inserting into inputs of many formats.
pub const COMMON_TOKENS: &[&str] = &[
    "\0",
    "\n",
    "\r\n",
    "\t",
    " ",
    "-",
    "+",
    ".",
    ":",
    ",",
    ";",
    "\"",
    "'",
    "\\",
    "{",
    "}",
    "[",
    "]",
    "<",
    ">",
    "=",
    "0",
    "-1",
    "1e309",
    "-0",
    "NaN",
    "inf",
    "null",
    "true",
    "99999999999999999999",
    "9223372036854775807",
    "-9223372036854775808",
    "\u{feff}",
    "\u{200b}",
    "é",
    "中文",
    "🎬",
    "\u{202e}",
    "-->",
    "00:00:00,000",
    "::",
    "...",
];

/// What one fuzz run did.
#[derive(Debug)]
pub struct Report {
    pub target: String,
    pub runs: u64,
    pub seed: u64,
    pub elapsed: Duration,
}

/// Mutates `seeds` and feeds each input to `target` for the configured time. `tokens` are
/// the format's own words, added to [`COMMON_TOKENS`]. Panics (failing the test) on the
/// first input that makes `target` panic.
pub fn run(name: &str, seeds: &[Vec<u8>], tokens: &[&str], target: impl Fn(&[u8])) -> Report {
    let budget = Duration::from_secs_f64(
        std::env::var("REELFORGE_FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(8.0),
    );
    run_for(name, seeds, tokens, budget, target)
}

thread_local! {
    static FUZZING: Cell<bool> = const { Cell::new(false) };
}

/// Keeps the panic hook quiet for panics a fuzz run catches on its own thread, and as it
/// was for every other thread (tests run side by side).
fn quiet_hook_for_fuzzing_threads() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !FUZZING.with(Cell::get) {
                hook(info)
            }
        }));
    });
}

fn run_for(
    name: &str,
    seeds: &[Vec<u8>],
    tokens: &[&str],
    budget: Duration,
    target: impl Fn(&[u8]),
) -> Report {
    assert!(!seeds.is_empty(), "fuzz target {name} has no seeds");
    let seed = Rng::seed_from_env();
    let mut rng = Rng::new(seed);
    let tokens: Vec<&[u8]> = COMMON_TOKENS
        .iter()
        .chain(tokens)
        .map(|t| t.as_bytes())
        .collect();
    quiet_hook_for_fuzzing_threads();
    FUZZING.with(|f| f.set(true));
    let start = Instant::now();
    let mut runs = 0u64;
    let mut crash = None;
    // Every seed as it is first, then mutants.
    let mut inputs = seeds.iter().cloned();
    while crash.is_none() && (runs < seeds.len() as u64 || start.elapsed() < budget) {
        let input = inputs.next().unwrap_or_else(|| {
            let base = &seeds[rng.below(seeds.len())];
            let other = &seeds[rng.below(seeds.len())];
            mutate(base, other, &tokens, &mut rng)
        });
        runs += 1;
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&input))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            crash = Some((input, message));
        }
    }
    FUZZING.with(|f| f.set(false));
    if let Some((input, message)) = crash {
        let path = save_crash(name, &input);
        panic!(
            "fuzz target {name} panicked after {runs} inputs: {message}\n\
             input saved to {} ({} bytes); rerun with REELFORGE_FUZZ_SEED={seed}\n\
             input (lossy): {:?}",
            path.display(),
            input.len(),
            String::from_utf8_lossy(&input[..input.len().min(400)])
        );
    }
    Report {
        target: name.to_string(),
        runs,
        seed,
        elapsed: start.elapsed(),
    }
}

fn save_crash(name: &str, input: &[u8]) -> PathBuf {
    let dir = crate::binary_dir().join("..").join("fuzz-crashes");
    let _ = std::fs::create_dir_all(&dir);
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    let path = dir.join(format!("{name}-{hash:016x}.bin"));
    let _ = std::fs::write(&path, input);
    path
}

/// Inputs grow no larger than this (parsers get bounded inputs from the server too).
const MAX_LEN: usize = 256 * 1024;

fn mutate(base: &[u8], other: &[u8], tokens: &[&[u8]], rng: &mut Rng) -> Vec<u8> {
    let mut data = base.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = data.len();
        match rng.below(9) {
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = rng.next_u64() as u8;
            }
            2 => {
                let t = tokens[rng.below(tokens.len())];
                let at = rng.below(len + 1);
                data.splice(at..at, t.iter().copied());
            }
            3 if len > 0 => {
                let (a, n) = range(len, rng);
                data.drain(a..a + n);
            }
            4 if len > 0 => {
                // Repeat a range: long lines, deep nesting, many cues.
                let (a, n) = range(len, rng);
                let copy = data[a..a + n].to_vec();
                let at = rng.below(len + 1);
                for _ in 0..1 + rng.below(4) {
                    data.splice(at..at, copy.iter().copied());
                }
            }
            5 if !other.is_empty() => {
                // Splice: the head of one seed, the tail of another.
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            6 if len > 0 => {
                data.truncate(rng.below(len));
            }
            7 if len > 0 => {
                // An ASCII digit run replaced: times and sizes at their edges.
                let i = rng.below(len);
                if data[i].is_ascii_digit() {
                    let end = (i..len).find(|&j| !data[j].is_ascii_digit()).unwrap_or(len);
                    let number =
                        ["0", "9999999999", "-5", "1e400", "00000000000000000001"][rng.below(5)];
                    data.splice(i..end, number.bytes());
                }
            }
            _ if len > 1 => {
                let (i, j) = (rng.below(len), rng.below(len));
                data.swap(i, j);
            }
            _ => data.push(rng.next_u64() as u8),
        }
        data.truncate(MAX_LEN);
    }
    data
}

fn range(len: usize, rng: &mut Rng) -> (usize, usize) {
    let a = rng.below(len);
    let n = 1 + rng.below((len - a).min(64));
    (a, n)
}

/// xorshift64*: fast, and the same stream for the same seed on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The seed from `REELFORGE_FUZZ_SEED`, or the clock's.
    pub fn seed_from_env() -> u64 {
        std::env::var("REELFORGE_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_target_is_caught_and_saved() {
        let caught = catch_unwind(|| {
            run_for(
                "selftest",
                &[b"abc".to_vec()],
                &["boom"],
                Duration::from_secs(5),
                |input| {
                    if input.windows(4).any(|w| w == b"boom") {
                        panic!("found the bomb");
                    }
                },
            )
        });
        let message = caught
            .unwrap_err()
            .downcast_ref::<String>()
            .cloned()
            .unwrap();
        assert!(message.contains("found the bomb"), "{message}");
        assert!(message.contains("fuzz-crashes"), "{message}");
    }

    #[test]
    fn mutants_differ_and_stay_bounded() {
        let mut rng = Rng(7);
        let tokens: Vec<&[u8]> = COMMON_TOKENS.iter().map(|t| t.as_bytes()).collect();
        let mutants: Vec<Vec<u8>> = (0..200)
            .map(|_| mutate(b"00:00:01,000 --> 00:00:02,000", b"x", &tokens, &mut rng))
            .collect();
        let distinct: std::collections::HashSet<_> = mutants.iter().collect();
        assert!(distinct.len() > 150, "{}", distinct.len());
        assert!(mutants.iter().all(|m| m.len() <= MAX_LEN));
    }
}
