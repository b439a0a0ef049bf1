//! Every parser of outside input, fuzzed for a bounded time from real seeds (see
//! `reelforge_tests::fuzz`): subtitles (SRT/VTT), BDA result.json, a model's answer,
//! the server's config file, ffprobe's JSON, time strings, highlight scripts and page
//! tokens. A panic fails the test; so does an accepted input that breaks what the parser
//! promises (times in order, inside the video).

use std::path::Path;
use std::process::Command;

use reelforge_core::answer::parse_model_segments;
use reelforge_core::page::PageRequest;
use reelforge_core::script::{parse_script, MAX_EVENTS};
use reelforge_core::time::{parse_time, parse_time_str};
use reelforge_tests::fuzz;
use reelforge_tests::{asset, demo_video};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(input: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(input)
}

#[test]
fn fuzz_subtitles() {
    let seeds = vec![fixture("fuzz/sample.srt"), fixture("fuzz/sample.vtt")];
    let report = fuzz::run(
        "subtitles",
        &seeds,
        &[
            "WEBVTT",
            "NOTE",
            "-->",
            "00:00:01,000",
            "00:01.000",
            "\n\n",
            "<b>",
            "{\\an8}",
            "\u{FEFF}",
            "今天的足球比赛",
        ],
        |input| {
            // The file's bytes as the sidecar reader decodes them (BOM, UTF-8, GB18030),
            // and as text whatever they are.
            let _ = reelforge_media::subtitles::decode(input, "fuzz.srt");
            if let Ok(cues) = reelforge_media::subtitles::parse(&text(input), "fuzz.srt") {
                for c in cues {
                    assert!(
                        0 <= c.start_ms && c.start_ms <= c.end_ms,
                        "cue out of order: {c:?}"
                    );
                }
            }
        },
    );
    println!("{report:?}");
}

#[test]
fn fuzz_bda_result() {
    let report = fuzz::run(
        "bda",
        &[fixture("bda/result.json")],
        &[
            "\"start_timestamp_millis\"",
            "\"end_timestamp_millis\"",
            "\"chapters\"",
            "\"VIDEO\"",
        ],
        |input| {
            let _ = reelforge_search::bda::parse(input);
        },
    );
    println!("{report:?}");
}

#[test]
fn fuzz_model_answer() {
    let seeds = vec![
        fixture("fuzz/answer-list.txt"),
        fixture("fuzz/answer-object.txt"),
    ];
    let report = fuzz::run(
        "answer",
        &seeds,
        &[
            "```json",
            "```",
            "\"start\":",
            "\"end\":",
            "\"timestamp\":",
            "0:12-0:18",
            "\"highlights\":",
        ],
        |input| {
            let (offset, duration) = (5_000, 30_000);
            if let Ok((segments, _)) =
                parse_model_segments(&text(input), "v", "fuzz", offset, duration)
            {
                for s in segments {
                    assert!(
                        offset <= s.start_ms
                            && s.start_ms < s.end_ms
                            && s.end_ms <= offset + duration,
                        "segment outside what the model saw: {s:?}"
                    );
                    assert!(s.score.is_finite(), "score {s:?}");
                }
            }
        },
    );
    println!("{report:?}");
}

#[test]
fn fuzz_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reelforge.toml");
    let seeds = vec![
        fixture("fuzz/config.toml"),
        reelforge_server::Config::default().to_string().into_bytes(),
    ];
    let report = fuzz::run(
        "config",
        &seeds,
        &[
            "[models]", "[ingest]", "= \"\"", "= -1", "= 1e999", "= []", "= {}",
        ],
        |input| {
            std::fs::write(&path, input).unwrap();
            let _ = reelforge_server::Config::load(Some(&path), []);
        },
    );
    println!("{report:?}");
}

#[test]
fn fuzz_ffprobe_json() {
    // Seeds: what the real ffprobe prints for real files.
    let seeds: Vec<Vec<u8>> = [demo_video(), asset("samples/speech.mp4")]
        .iter()
        .map(|file| {
            let out = Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-show_format",
                    "-show_streams",
                    "-of",
                    "json",
                ])
                .arg(file)
                .output()
                .expect("ffprobe is installed (scripts/setup.sh installs it)");
            assert!(out.status.success(), "ffprobe {}", file.display());
            out.stdout
        })
        .collect();
    let report = fuzz::run(
        "ffprobe",
        &seeds,
        &[
            "\"duration\":",
            "\"r_frame_rate\":",
            "\"0/0\"",
            "\"N/A\"",
            "\"codec_type\":",
        ],
        |input| {
            if let Ok(probe) = reelforge_media::probe::parse_ffprobe_json(input) {
                assert!(probe.duration_ms >= 0, "{probe:?}");
            }
        },
    );
    println!("{report:?}");
}

#[test]
fn fuzz_time_strings() {
    let seeds: Vec<Vec<u8>> = ["12", "12.5s", "1:02", "01:02.5", "1:02:03.25", "\"0:12\""]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    let report = fuzz::run("time", &seeds, &["59", "60", "::"], |input| {
        let t = text(input);
        if let Ok(ms) = parse_time_str(&t) {
            assert!(ms >= 0, "{t:?} -> {ms}");
        }
        if let Ok(value) = serde_json::from_str(&t) {
            let _ = parse_time(&value);
        }
    });
    println!("{report:?}");
}

#[test]
fn fuzz_scripts() {
    let report = fuzz::run(
        "script",
        &[fixture("fuzz/scripts.txt")],
        &[
            " then ",
            " and then ",
            " after that ",
            "->",
            "→",
            "。",
            "，",
        ],
        |input| {
            if let Ok(events) = parse_script(&text(input)) {
                assert!(events.len() <= MAX_EVENTS);
                assert!(events.iter().all(|e| !e.trim().is_empty()), "{events:?}");
            }
        },
    );
    println!("{report:?}");
}

#[test]
fn fuzz_page_tokens() {
    let first = PageRequest::parse(2, "", "f")
        .unwrap()
        .cut((0..10).collect::<Vec<u32>>(), |n| format!("{n:05}"));
    let report = fuzz::run(
        "page_token",
        &[first.next_token.into_bytes(), b"7031".to_vec()],
        &["0a", "00", "ff"],
        |input| {
            if let Ok(req) = PageRequest::parse(2, &text(input), "f") {
                let page = req.cut((0..10).collect::<Vec<u32>>(), |n| format!("{n:05}"));
                assert!(page.items.len() <= 2);
            }
        },
    );
    println!("{report:?}");
}
