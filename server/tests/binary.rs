//! The `reelforge-server` binary's command line and configuration handling. (These tests
//! also make `cargo test` build the binary that the end-to-end tests in `tests/` start.)

use std::process::Command;

fn server() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reelforge-server"))
}

#[test]
fn help_lists_the_options() {
    let out = server().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for option in [
        "--listen",
        "--data-dir",
        "--allow-root",
        "--config",
        "reindex",
    ] {
        assert!(text.contains(option), "{option} missing from:\n{text}");
    }
}

#[test]
fn a_config_file_with_an_unknown_key_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("reelforge.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nslice_secs = 10\n").unwrap();
    let out = server().arg("--config").arg(&config).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("slice_secs"), "{err}");
}

#[test]
fn an_out_of_range_environment_override_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = server()
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("REELFORGE_SLICE_SECONDS", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("slice_seconds"), "{err}");
}
