//! The benchmarks live in their own binary, out of the server (they were
//! `reelforge-server bench ...`).

use std::process::Command;

#[test]
fn help_lists_the_benchmarks() {
    let out = Command::new(env!("CARGO_BIN_EXE_reelforge-bench"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for bench in ["ingest", "models", "search", "highlight"] {
        assert!(text.contains(bench), "{bench} missing from:\n{text}");
    }
}
