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

#[tokio::test]
async fn doctor_says_what_to_fix_completions_and_quiet() {
    let cli = |args: &[&str]| {
        std::process::Command::new(reelforge_tests::binary("reelforge"))
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    // Completion scripts for three shells, naming the subcommands.
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef reelforge"),
        ("fish", "complete -c reelforge"),
    ] {
        let out = cli(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(
            script.contains(marker) && script.contains("doctor") && script.contains("highlight"),
            "{shell}: {}",
            &script[..script.len().min(400)]
        );
    }
    // Nothing listening: the address fails with its fix, the rest is skipped, exit 1.
    let out = cli(&["--addr", "http://127.0.0.1:1", "doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("FAIL  address")
            && text.contains("fix: start reelforge-server")
            && text.contains("skip  ffmpeg"),
        "{text}"
    );

    // A server with keys whose ffprobe is missing.
    let f = fixtures();
    let data = tempfile::tempdir().unwrap();
    let made = std::process::Command::new(reelforge_tests::binary("reelforge-server"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["keys", "create", "--tenant", "acme", "--role", "admin"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    let secret = stdout(&made).trim().to_string();
    let server = Server::start_with(
        data.path(),
        &[&f.dir],
        &[
            ("REELFORGE_TRANSCRIBER", "none"),
            ("REELFORGE_FFPROBE", "/no/such/ffprobe"),
        ],
    )
    .await;
    // No key: the key check fails and says where one comes from.
    let out = server.cli(&["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("ok    address")
            && text.contains("ok    tls      plaintext on this machine")
            && text.contains("FAIL  key      UNAUTHENTICATED")
            && text.contains("fix: pass --token (REELFORGE_TOKEN)"),
        "{text}"
    );
    // With the key: everything but the missing ffprobe, as JSON.
    let out = server.cli(&["--token", &secret, "doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let checks = report["checks"].as_array().unwrap();
    let find = |name: &str, status: &str| {
        checks
            .iter()
            .filter(|c| c["check"] == name && c["status"] == status)
            .map(|c| c["detail"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        find("key", "ok")[0].contains("of tenant acme, role admin, never expires"),
        "{report}"
    );
    assert!(
        find("models", "ok")[0].contains("text_embedder "),
        "{report}"
    );
    assert!(
        find("models", "note")
            .iter()
            .any(|d| d.contains("transcriber off")),
        "{report}"
    );
    assert!(
        find("ffmpeg", "ok")[0].starts_with("ffmpeg version"),
        "{report}"
    );
    let fail = checks
        .iter()
        .find(|c| c["status"] == "fail")
        .expect("a failed check");
    assert!(
        fail["detail"]
            .as_str()
            .unwrap()
            .contains("/no/such/ffprobe")
            && fail["fix"].as_str().unwrap().contains("ffprobe = \"PATH\""),
        "{report}"
    );

    // --quiet: no per-event lines, only the result; nothing coloured off a terminal.
    let out = server.cli(&[
        "--token",
        &secret,
        "--quiet",
        "ingest",
        f.small.to_str().unwrap(),
        "--slice-seconds",
        "4",
    ]);
    // ffprobe is missing on this server: the ingest fails, one line on stderr.
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    server.stop().await;
    let server =
        Server::start_with(data.path(), &[&f.dir], &[("REELFORGE_TRANSCRIBER", "none")]).await;
    let out = server.cli(&[
        "--token",
        &secret,
        "-q",
        "ingest",
        f.small.to_str().unwrap(),
        "--slice-seconds",
        "4",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(": done: video"), "{text}");
    let out = server.cli(&["--token", &secret, "doctor"]);
    assert!(out.status.success(), "{}", stdout(&out));
    for out in [&out, &server.cli(&["--help"])] {
        assert!(!stdout(out).contains('\u{1b}'), "no colour off a terminal");
    }
    server.stop().await;
}
