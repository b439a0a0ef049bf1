//! The Script strategy: a user's script ("product reveal, then people smiling using it,
//! then the logo") becomes ordered events; each event is searched for across the library
//! with the hybrid search (BM25 + vectors, fused, reranked); the reel follows the
//! script's order, one best segment per event, never the same footage twice.
//!
//! A search hit on a slice description stands for a whole slice; the segment taken from
//! it is the analyser's strongest candidate inside that slice when there is one, else the
//! slice itself (cut to the maximum length around its middle later). A hit on a
//! transcript chunk stands for the line in it closest to the event.

use std::collections::HashMap;

use super::segments::Segment;
use crate::analysis::SliceAnalysis;
use crate::error::{Error, Result};
use crate::ingest::{blocking, Engine};
use crate::models::{EmbedPurpose, TranscriptSegment};
use crate::search::fusion::Fusion;
use crate::search::index::DocKind;
use crate::search::query::{Mode, SearchRequest};

/// Most events a script may have.
pub const MAX_EVENTS: usize = 50;
/// Search results read per event before giving up on unused footage.
const CANDIDATES_PER_EVENT: usize = 20;

/// Splits a script into ordered events: at line breaks, `;`, sentence ends, commas and
/// "then" / "and then" / "after that" / "->".
pub fn parse_script(text: &str) -> Result<Vec<String>> {
    let mut marked = format!(
        " {} ",
        text.replace(['\n', ';', '.', ',', '!', '?', '→'], " | ")
    );
    marked = marked.replace("->", " | ");
    for joiner in [" and then ", " after that ", " then ", " finally "] {
        let lower = marked.to_lowercase();
        let mut out = String::with_capacity(marked.len());
        let mut at = 0;
        for (i, _) in lower.match_indices(joiner) {
            out.push_str(&marked[at..i]);
            out.push_str(" | ");
            at = i + joiner.len();
        }
        out.push_str(&marked[at..]);
        marked = out;
    }
    let events: Vec<String> = marked
        .split('|')
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|e| e.chars().any(char::is_alphanumeric))
        .collect();
    if events.is_empty() {
        return Err(Error::invalid(
            "script has no events: write what should happen, e.g. \"a jump, then the crowd cheering\"",
        ));
    }
    if events.len() > MAX_EVENTS {
        return Err(Error::invalid(format!(
            "script has {} events; at most {MAX_EVENTS} are accepted",
            events.len()
        )));
    }
    Ok(events)
}

/// How one event was matched.
#[derive(Debug, Clone)]
pub struct EventMatch {
    pub index: u32,
    pub event: String,
    /// `None`: nothing unused matched.
    pub segment: Option<Segment>,
    /// The search result it came from: its kind and text.
    pub source: String,
    pub matched_text: String,
}

/// Matches each event, in order, against `videos` (empty: the whole library), keeping
/// footage used by an earlier event out. `usable(video_id)` says whether a video has
/// media to cut from.
pub async fn match_events(
    engine: &Engine,
    events: &[String],
    videos: &[String],
    usable: &(dyn Fn(&str) -> bool + Send + Sync),
    on_match: &(dyn Fn(&EventMatch) + Send + Sync),
) -> Result<Vec<EventMatch>> {
    let mut slices: HashMap<String, Vec<SliceAnalysis>> = HashMap::new();
    let mut transcripts: HashMap<String, Vec<TranscriptSegment>> = HashMap::new();
    let mut used: Vec<Segment> = Vec::new();
    let mut out = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let req = SearchRequest {
            query: event.clone(),
            mode: Mode::All,
            top_k: CANDIDATES_PER_EVENT,
            video_ids: videos.to_vec(),
            time_range: None,
            kinds: vec![
                DocKind::SliceDescription,
                DocKind::TranscriptChunk,
                DocKind::ChapterSummary,
                DocKind::Shot,
            ],
            fusion: Fusion::default(),
            rerank: true,
            rerank_threshold: None,
            merge_adjacent: false,
        };
        let (hits, _) = engine.search(&req).await?;
        let mut found = EventMatch {
            index: index as u32,
            event: event.clone(),
            segment: None,
            source: String::new(),
            matched_text: String::new(),
        };
        for hit in hits {
            if !usable(&hit.video_id) {
                continue;
            }
            if !slices.contains_key(&hit.video_id) {
                let (store, id) = (engine.store().clone(), hit.video_id.clone());
                let loaded = blocking(move || store.slices(&id)).await?;
                slices.insert(hit.video_id.clone(), loaded);
            }
            let (start_ms, end_ms) = match hit.kind {
                DocKind::SliceDescription => {
                    strongest_inside(&slices[&hit.video_id], hit.start_ms, hit.end_ms)
                        .unwrap_or((hit.start_ms, hit.end_ms))
                }
                // A chunk holds several lines: the one closest to the event is the moment.
                DocKind::TranscriptChunk => {
                    if !transcripts.contains_key(&hit.video_id) {
                        let (store, id) = (engine.store().clone(), hit.video_id.clone());
                        let loaded = blocking(move || store.transcript(&id)).await?;
                        transcripts.insert(hit.video_id.clone(), loaded);
                    }
                    let lines: Vec<&TranscriptSegment> = transcripts[&hit.video_id]
                        .iter()
                        .filter(|t| t.start_ms < hit.end_ms && t.end_ms > hit.start_ms)
                        .collect();
                    closest_line(engine, event, &lines)
                        .await?
                        .unwrap_or((hit.start_ms, hit.end_ms))
                }
                _ => (hit.start_ms, hit.end_ms),
            };
            let overlaps = used
                .iter()
                .any(|u| u.video_id == hit.video_id && u.start_ms < end_ms && start_ms < u.end_ms);
            if overlaps || end_ms <= start_ms {
                continue;
            }
            let segment = Segment {
                video_id: hit.video_id.clone(),
                start_ms,
                end_ms,
                score: hit.scores.final_score,
                priority: 1,
                description: event.clone(),
                reason: format!(
                    "script event {}: {} \"{}\"",
                    index + 1,
                    hit.kind.name(),
                    truncate(&hit.text, 80)
                ),
                model: engine.providers().reranker.name().to_string(),
            };
            used.push(segment.clone());
            found.segment = Some(segment);
            found.source = hit.kind.name().to_string();
            found.matched_text = hit.text;
            break;
        }
        on_match(&found);
        out.push(found);
    }
    Ok(out)
}

/// The times of the transcript line closest to `event` in the text embedder's space.
async fn closest_line(
    engine: &Engine,
    event: &str,
    lines: &[&TranscriptSegment],
) -> Result<Option<(i64, i64)>> {
    let texts: Vec<String> = lines
        .iter()
        .map(|t| t.text.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    if texts.len() != lines.len() || lines.len() < 2 {
        return Ok(lines.first().map(|t| (t.start_ms, t.end_ms)));
    }
    let embedder = &engine.providers().text_embedder;
    let q = embedder
        .embed(&[event.to_string()], EmbedPurpose::Query)
        .await?;
    let l = embedder.embed(&texts, EmbedPurpose::Index).await?;
    let best = l
        .iter()
        .map(|e| crate::search::vectors::dot(&e.vector, &q[0].vector))
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| (lines[i].start_ms, lines[i].end_ms));
    Ok(best)
}

/// The analyser's best candidate segment inside `[start, end)`.
fn strongest_inside(slices: &[SliceAnalysis], start: i64, end: i64) -> Option<(i64, i64)> {
    slices
        .iter()
        .flat_map(|s| s.segments.iter())
        .filter(|c| c.start_ms >= start && c.end_ms <= end)
        .max_by(|a, b| a.score.total_cmp(&b.score))
        .map(|c| (c.start_ms, c.end_ms))
}

fn truncate(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_split_into_ordered_events() {
        assert_eq!(
            parse_script("Product reveal, then people smiling using it, and then the logo.")
                .unwrap(),
            vec!["Product reveal", "people smiling using it", "the logo"]
        );
        assert_eq!(
            parse_script("a jump -> the crowd cheering\nfinally a wave; Then quiet").unwrap(),
            vec!["a jump", "the crowd cheering", "a wave", "quiet"]
        );
        for empty in ["", "  ,, . then ;", "->"] {
            let err = parse_script(empty).unwrap_err();
            assert!(err.to_string().contains("no events"), "{err}");
        }
        let long = vec!["x"; MAX_EVENTS + 1].join(", ");
        assert!(parse_script(&long)
            .unwrap_err()
            .to_string()
            .contains("at most"));
    }
}
