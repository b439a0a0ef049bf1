//! The real `reelforge` CLI against a real server.

use reelforge_tests::{fixtures, Server};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn ingest_list_show_and_remove_through_the_cli() {
    let f = fixtures();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[&f.dir]).await;

    // Upload with JSON lines: one object per event, ending with done.
    let out = server.cli(&[
        "ingest",
        f.small.to_str().unwrap(),
        "--slice-seconds",
        "4",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines[0]["event"]["accepted"]["slice_count"] == 3,
        "{}",
        lines[0]
    );
    let finished = lines
        .iter()
        .filter(|l| l["event"].get("slice_finished").is_some())
        .count();
    assert_eq!(finished, 3);
    let video_id = lines.last().unwrap()["event"]["done"]["video_id"]
        .as_str()
        .unwrap()
        .to_string();

    // Human output: per-slice lines.
    let out = server.cli(&[
        "ingest",
        "--server-path",
        f.silent.to_str().unwrap(),
        "--slice-seconds",
        "4",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("slice   0 00:00.0-00:04.0"), "{text}");
    assert!(text.contains("done: video"), "{text}");

    let out = server.cli(&["videos", "list"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains(&video_id), "{}", stdout(&out));
    let out = server.cli(&["videos", "show", &video_id]);
    assert!(
        stdout(&out).contains("slice   2 00:08.0-00:12.0"),
        "{}",
        stdout(&out)
    );

    let out = server.cli(&["videos", "rm", &video_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&server.cli(&["videos", "list"])).contains(&video_id));
    server.stop().await;
}

#[tokio::test]
async fn errors_exit_non_zero_with_one_line() {
    let f = fixtures();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[&f.dir]).await;
    let cases = [
        (
            vec!["ingest", f.text_as_mp4.to_str().unwrap()],
            "INVALID_ARGUMENT",
        ),
        (
            vec!["ingest", "--server-path", "/etc/passwd"],
            "PERMISSION_DENIED",
        ),
        (
            vec!["ingest", "/no/such/file.mp4"],
            "cannot open /no/such/file.mp4",
        ),
        (vec!["videos", "show", "0123456789abcdef"], "NOT_FOUND"),
    ];
    for (args, expected) in cases {
        let out = server.cli(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("reelforge: ") && err.contains(expected),
            "{args:?}: {err}"
        );
    }
    // No server: a clear message, not a panic.
    let out = std::process::Command::new(reelforge_tests::binary("reelforge"))
        .args(["--addr", "http://127.0.0.1:1", "videos", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot reach reelforge-server"),
        "{}",
        stderr(&out)
    );
    server.stop().await;
}
