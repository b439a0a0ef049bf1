//! The web page against a real server with API keys: its HTTP side over a plain socket
//! (the page, byte ranges, the session cookie, uploads, refusals with their status), the
//! committed bundle rebuilt from web/src and the protos, and the page itself in Debian's
//! headless Chromium (web/test/e2e.mjs with puppeteer-core): the library, a video's
//! thumbnails seeking the player, search by keyboard with the hit playing at its time, a
//! highlight whose reel plays, an upload with live progress. Screenshots of every view
//! are kept in `target/tmp/web-screenshots/`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use reelforge_tests::{binary, demo_video, fixtures, Server};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`), read to the end.
fn http(base: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let host = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = TcpStream::connect(&host).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete HTTP response");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = unchunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 4 + size..];
    }
}

fn key(data: &Path, tenant: &str, role: &str) -> String {
    let out = Command::new(binary("reelforge-server"))
        .arg("--data-dir")
        .arg(data)
        .args(["keys", "create", "--tenant", tenant, "--role", role])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn the_web_page_serves_media_and_works_in_a_real_browser() {
    let f = fixtures();
    let data = tempfile::tempdir().unwrap();
    let write = key(data.path(), "media", "write");
    let read = key(data.path(), "media", "read");
    let other = key(data.path(), "other", "write");
    let server = Server::start_with(
        data.path(),
        &[&f.dir],
        &[
            ("REELFORGE_TRANSCRIBER", "none"),
            ("REELFORGE_HTTP_LISTEN", "127.0.0.1:0"),
        ],
    )
    .await;
    let web = server.web.clone().expect("the web page's address");
    let demo = demo_video();
    let out = server.cli(&[
        "--token",
        &write,
        "-q",
        "ingest",
        demo.to_str().unwrap(),
        "--slice-seconds",
        "10",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    let video_id = line
        .split("video ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap()
        .to_string();
    let bearer = format!("Bearer {write}");
    let auth = [("Authorization", bearer.as_str())];

    // The page: open to everyone, with a CSP that allows nothing from elsewhere.
    let page = http(&web, "GET", "/", &[], b"");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'self'"));
    assert!(String::from_utf8_lossy(&page.body).contains("/app.js"));

    // Media: byte ranges as a <video> asks for them.
    let source = format!("/media/videos/{video_id}/source");
    let bytes = std::fs::read(&demo).unwrap();
    let size = bytes.len();
    let r = http(
        &web,
        "GET",
        &source,
        &[auth[0], ("Range", "bytes=100-199")],
        b"",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-type"), Some("video/mp4"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100-199/{size}").as_str())
    );
    assert_eq!(r.body, &bytes[100..200]);
    let r = http(
        &web,
        "GET",
        &source,
        &[auth[0], ("Range", "bytes=-10")],
        b"",
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &bytes[size - 10..]));
    let r = http(&web, "GET", &source, &auth, b"");
    assert_eq!((r.status, r.body.len()), (200, size));
    let beyond = format!("bytes={size}-");
    let r = http(&web, "GET", &source, &[auth[0], ("Range", &beyond)], b"");
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{size}").as_str())
    );
    let thumb = http(
        &web,
        "GET",
        &format!("/media/videos/{video_id}/frames/20000.jpg"),
        &auth,
        b"",
    );
    assert_eq!(thumb.status, 200);
    assert_eq!(&thumb.body[..3], &[0xFF, 0xD8, 0xFF], "a JPEG");

    // Refusals, with their status and a message that says what to do.
    let r = http(&web, "GET", &source, &[], b"");
    assert_eq!(r.status, 401);
    assert!(r.header("x-reelforge-error").unwrap().contains("API key"));
    let bad = "Bearer rf_nope";
    let r = http(&web, "GET", &source, &[("Authorization", bad)], b"");
    assert_eq!(r.status, 401);
    let theirs = format!("Bearer {other}");
    let r = http(&web, "GET", &source, &[("Authorization", &theirs)], b"");
    assert_eq!(r.status, 404, "another tenant's video is not found");
    let r = http(
        &web,
        "GET",
        &format!("/media/videos/{video_id}/frames/soon"),
        &auth,
        b"",
    );
    assert_eq!(r.status, 400);
    let r = http(
        &web,
        "GET",
        "/media/highlights/not-an-id/reel.mp4",
        &auth,
        b"",
    );
    assert_eq!(r.status, 400);

    // The session cookie: HttpOnly, SameSite=Strict, for media only.
    let r = http(&web, "POST", "/api/session", &auth, b"");
    assert_eq!(r.status, 204);
    let cookie = r.header("set-cookie").unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/media"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let r = http(
        &web,
        "GET",
        &source,
        &[("Cookie", &pair), ("Range", "bytes=0-9")],
        b"",
    );
    assert_eq!(r.status, 206, "media takes the cookie");
    let r = http(
        &web,
        "POST",
        "/api/upload?filename=x.mp4",
        &[("Cookie", &pair)],
        b"x",
    );
    assert_eq!(r.status, 401, "an upload does not take the cookie");

    // The bundle in git is what web/src and the protos build.
    let webdir = root().join("web");
    assert!(
        webdir.join("node_modules/.bin/esbuild").exists(),
        "web/node_modules is missing: run scripts/setup.sh"
    );
    let built = tempfile::tempdir().unwrap();
    let outfile = built.path().join("app.js");
    let run = |args: &[&str]| {
        let out = Command::new("npm")
            .args(args)
            .current_dir(&webdir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "npm {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["run", "--silent", "generate"]);
    run(&["exec", "--", "tsc", "--noEmit", "-p", "."]);
    let bundle = format!("--outfile={}", outfile.display());
    run(&[
        "exec",
        "--",
        "esbuild",
        "src/main.ts",
        "--bundle",
        "--format=iife",
        "--target=es2020",
        "--minify",
        "--legal-comments=none",
        "--log-level=warning",
        &bundle,
    ]);
    assert!(
        std::fs::read(&outfile).unwrap() == std::fs::read(webdir.join("dist/app.js")).unwrap(),
        "web/dist/app.js is not what web/src builds: run `npm run build` in web/ and commit it"
    );

    // The page in a real browser.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run scripts/setup.sh (Debian's chromium)"
    );
    let bikes = reelforge_tests::asset("samples/bikes.mp4");
    let out = Command::new("node")
        .arg(webdir.join("test/e2e.mjs"))
        .arg(&web)
        .arg(&shots)
        .arg(&bikes)
        .arg(&write)
        .env("CHROMIUM", &chromium)
        .current_dir(&webdir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let seen: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    eprintln!("the browser saw: {seen}");
    assert!(seen.get("error").is_none(), "{seen}");
    assert_eq!(
        seen["console"],
        serde_json::json!([]),
        "no errors in the page"
    );
    let cards = seen["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 1, "{seen}");
    assert_eq!(cards[0]["video"], video_id.as_str(), "{seen}");
    assert!(seen["poster"].as_u64().unwrap() > 0, "the poster loaded");
    let v = &seen["video"];
    assert!(
        (v["currentTime"].as_f64().unwrap() - 20.0).abs() < 1.5,
        "{v}"
    );
    assert_eq!(v["thumbs"], 60, "one thumbnail per second of the minute");
    assert!(v["candidates"].as_u64().unwrap() >= 1, "{v}");
    // The first hit of "fast motion" is the bikes (20-30 s) and it plays from there.
    let hit = &seen["hits"][0];
    let start = hit["start_ms"].as_f64().unwrap() / 1000.0;
    assert_eq!(start, 20.0, "{hit}");
    assert!(
        hit["stages"].as_str().unwrap().contains("BM25 rank"),
        "{hit}"
    );
    let played = &seen["played"];
    let t = played["currentTime"].as_f64().unwrap();
    assert!(t >= start && t < start + 5.0, "{played}");
    assert_eq!(played["paused"], false, "{played}");
    assert_eq!(played["focused"], "hit", "reached by Tab, played by Enter");
    let reel = &seen["reel"];
    assert!(
        reel["currentTime"].as_f64().unwrap() > 0.5,
        "the reel plays: {reel}"
    );
    assert!(reel["duration"].as_f64().unwrap() > 2.0, "{reel}");
    // Asked in Chinese on the page, every segment is described in Chinese.
    let descriptions = reel["descriptions"].as_array().unwrap();
    assert!(!descriptions.is_empty(), "{reel}");
    for d in descriptions {
        let d = d.as_str().unwrap();
        assert!(
            d.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
            "{d}"
        );
    }
    let downloads: Vec<&str> = reel["downloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    for file in [
        "reel.mp4",
        "timeline.edl",
        "timeline.otio",
        "timeline.fcpxml",
        "timeline.xml",
    ] {
        assert!(downloads.iter().any(|d| d.ends_with(file)), "{downloads:?}");
    }
    // A download link serves its file.
    let edl = downloads.iter().find(|d| d.ends_with(".edl")).unwrap();
    let r = http(&web, "GET", edl, &auth, b"");
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).starts_with("TITLE: reelforge"));
    assert!(
        seen["upload"][0].as_str().unwrap().contains("done, video"),
        "{seen}"
    );
    assert_eq!(
        seen["cards_after"].as_u64().unwrap(),
        cards.len() as u64 + 1,
        "{seen}"
    );
    for view in ["library", "video", "search", "highlight", "upload"] {
        let png = shots.join(format!("{view}.png"));
        assert!(
            std::fs::metadata(&png).unwrap().len() > 10_000,
            "{}",
            png.display()
        );
    }
    // Uploads: the body is the file; a read key, no name, or a text file are refused.
    let read_bearer = format!("Bearer {read}");
    let r = http(
        &web,
        "POST",
        "/api/upload?filename=small.mp4",
        &[("Authorization", &read_bearer)],
        b"x",
    );
    assert_eq!(r.status, 403);
    assert!(r
        .header("x-reelforge-error")
        .unwrap()
        .contains("write role"));
    let r = http(&web, "POST", "/api/upload", &auth, b"x");
    assert_eq!(r.status, 400);
    assert!(String::from_utf8_lossy(&r.body).contains("filename"));
    let text = std::fs::read(&f.text_as_mp4).unwrap();
    let r = http(&web, "POST", "/api/upload?filename=notes.mp4", &auth, &text);
    assert!(r.status == 400 || r.status == 200, "{}", r.status);
    let small = std::fs::read(&f.small).unwrap();
    let r = http(
        &web,
        "POST",
        "/api/upload?filename=small.mp4&slice_seconds=4",
        &auth,
        &small,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let job: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(job["job_id"].as_str().unwrap().len(), 36, "{job}");

    server.stop().await;
}
