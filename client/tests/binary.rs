//! The `reelforge` binary's command line. (These tests also make `cargo test` build the
//! binary that the end-to-end tests in `tests/` run.)

use std::process::Command;

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reelforge"))
}

#[test]
fn help_lists_the_commands() {
    let out = cli().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["ingest", "videos", "jobs", "--addr"] {
        assert!(text.contains(command), "{command} missing from:\n{text}");
    }
}

#[test]
fn usage_errors_exit_with_status_2() {
    let out = cli().arg("ingest").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FILES"));
}
