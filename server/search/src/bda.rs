//! Importing Amazon Bedrock Data Automation's standard output for video (`result.json`):
//! the video summary, chapter summaries (with their IAB categories) and transcripts, timed
//! by the chapters' audio segments where there are some, and the shots that carry words
//! of their own (a summary, labels, on-screen text lines) as `shot` documents on their
//! time range; a shot with nothing but times and a confidence has nothing to search. Every field is checked and
//! errors name its path (`chapters[2].end_timestamp_millis`); nothing is written until
//! the whole file is valid.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chunk::{chunk_transcript, Timed};
use crate::doc::DocKind;
use reelforge_core::error::{Error, Result};

/// A document that came from outside the ingest pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedDoc {
    pub kind: DocKind,
    pub text: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Where it came from, e.g. "bda".
    pub origin: String,
}

/// What a BDA result says about its asset.
#[derive(Debug, Clone, PartialEq)]
pub struct BdaAsset {
    pub asset_id: String,
    /// `s3://bucket/key` when given.
    pub source: String,
    /// The key's file name, else the asset id.
    pub filename: String,
    pub duration_ms: i64,
    pub docs: Vec<ImportedDoc>,
}

fn invalid(path: &str, what: impl std::fmt::Display) -> Error {
    Error::invalid(format!("BDA result: {path}: {what}"))
}

fn field<'a>(v: &'a Value, path: &str, name: &str) -> Result<Option<&'a Value>> {
    match v {
        Value::Object(map) => Ok(map.get(name).filter(|v| !v.is_null())),
        _ => Err(invalid(path, "must be an object")),
    }
}

fn string(v: &Value, path: &str, name: &str) -> Result<Option<String>> {
    match field(v, path, name)? {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(invalid(
            &format!("{path}.{name}"),
            format!("must be a string, found {}", kind_of(other)),
        )),
    }
}

/// Times past this are not times in a video (found by fuzzing: i64::MAX overflowed the
/// duration check).
const MAX_MILLIS: i64 = 30 * 24 * 3_600_000;

fn millis(v: &Value, path: &str, name: &str) -> Result<Option<i64>> {
    let at = format!("{path}.{name}");
    match field(v, path, name)? {
        None => Ok(None),
        Some(Value::Number(n)) => {
            let ms = n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or_else(|| invalid(&at, format!("must be a whole number of ms, found {n}")))?;
            if ms < 0 {
                return Err(invalid(&at, format!("must not be negative, found {ms}")));
            }
            if ms > MAX_MILLIS {
                return Err(invalid(
                    &at,
                    format!("{ms} ms is more than 30 days; not a time in a video"),
                ));
            }
            Ok(Some(ms))
        }
        Some(other) => Err(invalid(
            &at,
            format!("must be a number, found {}", kind_of(other)),
        )),
    }
}

fn required_millis(v: &Value, path: &str, name: &str) -> Result<i64> {
    millis(v, path, name)?.ok_or_else(|| invalid(&format!("{path}.{name}"), "is missing"))
}

fn array<'a>(v: &'a Value, path: &str, name: &str) -> Result<&'a [Value]> {
    match field(v, path, name)? {
        None => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(invalid(
            &format!("{path}.{name}"),
            format!("must be an array, found {}", kind_of(other)),
        )),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A `{start,end}_timestamp_millis` pair, checked for order.
fn span(v: &Value, path: &str) -> Result<(i64, i64)> {
    let start = required_millis(v, path, "start_timestamp_millis")?;
    let end = required_millis(v, path, "end_timestamp_millis")?;
    if end < start {
        return Err(invalid(
            &format!("{path}.end_timestamp_millis"),
            format!("{end} is before start_timestamp_millis {start}"),
        ));
    }
    Ok((start, end))
}

/// `transcript.representation.text`, if present.
fn transcript_text(v: &Value, path: &str) -> Result<Option<String>> {
    let Some(t) = field(v, path, "transcript")? else {
        return Ok(None);
    };
    let tpath = format!("{path}.transcript");
    let Some(r) = field(t, &tpath, "representation")? else {
        return Ok(None);
    };
    string(r, &format!("{tpath}.representation"), "text")
}

/// Parses and checks a BDA standard-output document for a video.
pub fn parse(json: &[u8]) -> Result<BdaAsset> {
    let root: Value = serde_json::from_slice(json)
        .map_err(|e| Error::invalid(format!("BDA result: not valid JSON: {e}")))?;
    let metadata =
        field(&root, "$", "metadata")?.ok_or_else(|| invalid("metadata", "is missing"))?;
    if let Some(modality) = string(metadata, "metadata", "semantic_modality")? {
        if modality != "VIDEO" {
            return Err(invalid(
                "metadata.semantic_modality",
                format!("is {modality:?}; only VIDEO results can be imported"),
            ));
        }
    }
    let asset_id = string(metadata, "metadata", "asset_id")?.unwrap_or_default();
    let bucket = string(metadata, "metadata", "s3_bucket")?;
    let key = string(metadata, "metadata", "s3_key")?;
    let duration_ms = required_millis(metadata, "metadata", "duration_millis")?;
    let filename = key
        .as_deref()
        .and_then(|k| k.rsplit('/').next())
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| {
            format!(
                "bda-{}",
                if asset_id.is_empty() {
                    "asset"
                } else {
                    &asset_id
                }
            )
        });
    let source = match (&bucket, &key) {
        (Some(b), Some(k)) => format!("s3://{b}/{k}"),
        _ => String::new(),
    };
    let doc = |kind, text: &str, start_ms, end_ms| ImportedDoc {
        kind,
        text: text.trim().to_string(),
        start_ms,
        end_ms,
        origin: "bda".into(),
    };
    let check_inside = |path: &str, (start, end): (i64, i64)| {
        if end > duration_ms.saturating_add(1_000) || start > duration_ms {
            Err(invalid(
                path,
                format!("{start}..{end} ms lies beyond the video's duration_millis {duration_ms}"),
            ))
        } else {
            Ok(())
        }
    };

    let mut docs = Vec::new();
    let mut has_timed_transcript = false;
    let video = field(&root, "$", "video")?;
    let whole_transcript = match video {
        Some(v) => {
            if let Some(summary) = string(v, "video", "summary")? {
                if !summary.trim().is_empty() {
                    docs.push(doc(DocKind::VideoSummary, &summary, 0, duration_ms));
                }
            }
            transcript_text(v, "video")?
        }
        None => None,
    };
    for (i, chapter) in array(&root, "$", "chapters")?.iter().enumerate() {
        let path = format!("chapters[{i}]");
        let (start, end) = span(chapter, &path)?;
        check_inside(&path, (start, end))?;
        let mut summary = string(chapter, &path, "summary")?.unwrap_or_default();
        let mut categories = Vec::new();
        for (j, c) in array(chapter, &path, "iab_categories")?.iter().enumerate() {
            let cpath = format!("{path}.iab_categories[{j}]");
            if let Some(name) = string(c, &cpath, "category")? {
                categories.push(name);
            }
        }
        if !categories.is_empty() {
            summary = format!("{} Categories: {}.", summary.trim(), categories.join(", "));
        }
        if !summary.trim().is_empty() {
            docs.push(doc(DocKind::ChapterSummary, &summary, start, end));
        }
        let mut segments = Vec::new();
        for (j, s) in array(chapter, &path, "audio_segments")?.iter().enumerate() {
            let spath = format!("{path}.audio_segments[{j}]");
            let (s_start, s_end) = span(s, &spath)?;
            check_inside(&spath, (s_start, s_end))?;
            if let Some(text) = string(s, &spath, "text")? {
                segments.push(Timed {
                    start_ms: s_start,
                    end_ms: s_end,
                    text,
                });
            }
        }
        if segments.is_empty() {
            // Without audio segments the chapter's transcript has only the chapter's times.
            if let Some(text) = transcript_text(chapter, &path)? {
                segments.push(Timed {
                    start_ms: start,
                    end_ms: end,
                    text,
                });
            }
        }
        has_timed_transcript |= !segments.is_empty();
        for c in chunk_transcript(&segments) {
            docs.push(doc(DocKind::TranscriptChunk, &c.text, c.start_ms, c.end_ms));
        }
    }
    for (i, shot) in array(&root, "$", "shots")?.iter().enumerate() {
        let path = format!("shots[{i}]");
        let (start, end) = span(shot, &path)?;
        check_inside(&path, (start, end))?;
        let text = shot_text(shot, &path)?;
        if !text.is_empty() {
            docs.push(doc(DocKind::Shot, &text, start, end));
        }
    }
    if let (false, Some(text)) = (has_timed_transcript, whole_transcript) {
        for c in chunk_transcript(&[Timed {
            start_ms: 0,
            end_ms: duration_ms,
            text,
        }]) {
            docs.push(doc(DocKind::TranscriptChunk, &c.text, c.start_ms, c.end_ms));
        }
    }
    docs.retain(|d| !d.text.is_empty());
    if docs.is_empty() {
        return Err(invalid(
            "$",
            "has no summary, chapter or transcript text to import",
        ));
    }
    Ok(BdaAsset {
        asset_id,
        source,
        filename,
        duration_ms,
        docs,
    })
}

/// What a shot says in words: its summary, its labels (strings, or objects naming one as
/// `name`, `label` or `category`) and its on-screen text lines (`text_lines[].text`).
/// Standard output's shots usually have none of these: "" then.
fn shot_text(shot: &Value, path: &str) -> Result<String> {
    let mut parts = Vec::new();
    if let Some(summary) = string(shot, path, "summary")? {
        parts.push(summary.trim().to_string());
    }
    let mut labels = Vec::new();
    for (j, l) in array(shot, path, "labels")?.iter().enumerate() {
        let lpath = format!("{path}.labels[{j}]");
        let name = match l {
            Value::String(s) => Some(s.clone()),
            Value::Object(_) => ["name", "label", "category"]
                .iter()
                .find_map(|k| string(l, &lpath, k).transpose())
                .transpose()?,
            other => {
                return Err(invalid(
                    &lpath,
                    format!("must be a string or an object, found {}", kind_of(other)),
                ))
            }
        };
        labels.extend(name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty()));
    }
    if !labels.is_empty() {
        parts.push(format!("Labels: {}.", labels.join(", ")));
    }
    let mut lines = Vec::new();
    for (j, t) in array(shot, path, "text_lines")?.iter().enumerate() {
        let tpath = format!("{path}.text_lines[{j}]");
        lines.extend(string(t, &tpath, "text")?.filter(|s| !s.trim().is_empty()));
    }
    if !lines.is_empty() {
        parts.push(format!("On screen: {}.", lines.join(" / ")));
    }
    Ok(parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn fixture() -> Value {
        serde_json::json!({
            "metadata": {
                "asset_id": "0", "semantic_modality": "VIDEO", "s3_bucket": "media",
                "s3_key": "games/final.mp4", "format": "MP4", "frame_rate": 30.0,
                "codec": "h264", "duration_millis": 90000, "frame_width": 1280, "frame_height": 720
            },
            "video": {
                "summary": "A football final decided by a late header.",
                "transcript": {"representation": {"text": "Welcome to the final. What a header!"}}
            },
            "chapters": [
                {
                    "start_timestamp_millis": 0, "end_timestamp_millis": 45000,
                    "summary": "Teams walk out and the anthem plays.",
                    "transcript": {"representation": {"text": "Welcome to the final."}},
                    "audio_segments": [
                        {"start_timestamp_millis": 2000, "end_timestamp_millis": 4000, "text": "Welcome to the final."}
                    ],
                    "iab_categories": [{"category": "Sports", "confidence": 0.9, "taxonomy_level": 1}]
                },
                {
                    "start_timestamp_millis": 45000, "end_timestamp_millis": 90000,
                    "summary": "A late header wins the match.",
                    "transcript": {"representation": {"text": "What a header!"}}
                }
            ],
            "shots": [
                {"shot_index": 0, "start_timestamp_millis": 0, "end_timestamp_millis": 5000, "confidence": 0.8},
                {"shot_index": 1, "start_timestamp_millis": 61000, "end_timestamp_millis": 64000, "confidence": 0.9,
                 "labels": [{"name": "Header"}, "Goal"], "text_lines": [{"text": "GOAL 1-0"}]}
            ]
        })
    }

    #[test]
    fn a_bda_result_becomes_timed_documents() {
        let asset = parse(fixture().to_string().as_bytes()).unwrap();
        assert_eq!(asset.filename, "final.mp4");
        assert_eq!(asset.source, "s3://media/games/final.mp4");
        assert_eq!(asset.duration_ms, 90_000);
        let kinds: Vec<(DocKind, i64, i64)> = asset
            .docs
            .iter()
            .map(|d| (d.kind, d.start_ms, d.end_ms))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (DocKind::VideoSummary, 0, 90_000),
                (DocKind::ChapterSummary, 0, 45_000),
                // Timed by its audio segment, not the chapter.
                (DocKind::TranscriptChunk, 2_000, 4_000),
                (DocKind::ChapterSummary, 45_000, 90_000),
                (DocKind::TranscriptChunk, 45_000, 90_000),
                // The shot with words of its own; the one with only times is not a doc.
                (DocKind::Shot, 61_000, 64_000),
            ]
        );
        assert_eq!(
            asset.docs[5].text,
            "Labels: Header, Goal. On screen: GOAL 1-0."
        );
        assert!(
            asset.docs[1].text.ends_with("Categories: Sports."),
            "{:?}",
            asset.docs[1]
        );
    }

    #[test]
    fn malformed_results_name_the_field() {
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|v| v["chapters"][1]["end_timestamp_millis"] = 1000.into()),
                "chapters[1].end_timestamp_millis: 1000 is before",
            ),
            (
                Box::new(|v| v["shots"][1]["labels"][0] = 7.into()),
                "shots[1].labels[0]: must be a string or an object, found a number",
            ),
            (
                Box::new(|v| v["chapters"][0]["start_timestamp_millis"] = (-5).into()),
                "chapters[0].start_timestamp_millis: must not be negative",
            ),
            (
                Box::new(|v| v["chapters"][0]["summary"] = 7.into()),
                "chapters[0].summary: must be a string",
            ),
            (
                Box::new(|v| v["chapters"] = "none".into()),
                "$.chapters: must be an array",
            ),
            (
                Box::new(|v| {
                    v["metadata"]
                        .as_object_mut()
                        .unwrap()
                        .remove("duration_millis");
                }),
                "metadata.duration_millis: is missing",
            ),
            (
                Box::new(|v| {
                    v["chapters"][0]
                        .as_object_mut()
                        .unwrap()
                        .remove("end_timestamp_millis");
                }),
                "chapters[0].end_timestamp_millis: is missing",
            ),
            (
                Box::new(|v| {
                    v["chapters"][0]["audio_segments"][0]["end_timestamp_millis"] = 500_000.into()
                }),
                "beyond the video's duration",
            ),
            (
                Box::new(|v| v["metadata"]["semantic_modality"] = "IMAGE".into()),
                "only VIDEO",
            ),
            (
                // Regression (found by fuzzing): this overflowed the duration check.
                Box::new(|v| v["metadata"]["duration_millis"] = i64::MAX.into()),
                "metadata.duration_millis: 9223372036854775807 ms is more than 30 days",
            ),
            (
                Box::new(|v| v["shots"][0]["start_timestamp_millis"] = "soon".into()),
                "shots[0].start_timestamp_millis: must be a number",
            ),
        ];
        for (change, expect) in cases {
            let mut v = fixture();
            change(&mut v);
            let err = parse(v.to_string().as_bytes()).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
            assert!(
                err.to_string().contains(expect),
                "{err} should say {expect}"
            );
        }
        let err = parse(b"{not json").unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        let err = parse(br#"{"metadata": {"duration_millis": 5}}"#).unwrap_err();
        assert!(
            err.to_string().contains("nothing") || err.to_string().contains("no summary"),
            "{err}"
        );
    }
}
