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

use reelforge_core::error::{Error, Result};
use reelforge_core::ids::validate_video_id;
use reelforge_core::script::parse_script;
use reelforge_core::segments::Segment;
use reelforge_core::BoxFuture;
use reelforge_models::analysis::SliceAnalysis;
use reelforge_models::{EmbedPurpose, TranscriptSegment};
use reelforge_search::DocKind;

use super::{Context, Defaults, Proposal, Scope, Shaping, Strategy};
use crate::catalog::VideoMaterial;
use crate::highlights::request::StrategyOptions;
use crate::highlights::{media_of, HighlightEvent};
use crate::search::SearchRequest;
use crate::store::VideoRecord;

/// Search results read per event before giving up on unused footage.
const CANDIDATES_PER_EVENT: usize = 20;

pub struct Script;

impl Strategy for Script {
    fn name(&self) -> &'static str {
        "script"
    }

    fn scope(&self) -> Scope {
        Scope::Library
    }

    fn options(&self, given: &StrategyOptions, _: &Defaults) -> Result<StrategyOptions> {
        let script = given.script.clone().unwrap_or_default();
        Ok(StrategyOptions {
            events: parse_script(&script)?,
            script: Some(script),
            video_ids: given.video_ids.clone(),
            ..StrategyOptions::default()
        })
    }

    fn propose<'a>(
        &'a self,
        cx: &'a Context<'a>,
        _: Option<&'a VideoMaterial>,
        options: &'a StrategyOptions,
    ) -> BoxFuture<'a, Result<Proposal>> {
        Box::pin(async move {
            let library: HashMap<String, VideoRecord> = cx
                .catalog
                .videos()
                .await?
                .into_iter()
                .map(|v| (v.video_id.clone(), v))
                .collect();
            for id in &options.video_ids {
                validate_video_id(id)
                    .map_err(|_| Error::invalid(format!("video_ids: {id:?} is not a video id")))?;
                let video = library.get(id).ok_or_else(|| {
                    Error::NotFound(format!(
                        "video_ids: no video with id {id} (see `reelforge videos list`)"
                    ))
                })?;
                media_of(video)?;
            }
            let usable = |id: &str| library.get(id).is_some_and(|v| media_of(v).is_ok());
            let matches = match_events(cx, &options.events, &options.video_ids, &usable).await?;
            Ok(Proposal {
                segments: matches.into_iter().filter_map(|m| m.segment).collect(),
                shaping: Shaping::InOrder,
                videos: library,
            })
        })
    }
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
async fn match_events(
    cx: &Context<'_>,
    events: &[String],
    videos: &[String],
    usable: &(dyn Fn(&str) -> bool + Send + Sync),
) -> Result<Vec<EventMatch>> {
    let mut slices: HashMap<String, Vec<SliceAnalysis>> = HashMap::new();
    let mut transcripts: HashMap<String, Vec<TranscriptSegment>> = HashMap::new();
    let mut used: Vec<Segment> = Vec::new();
    let mut out = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        let req = SearchRequest {
            video_ids: videos.to_vec(),
            kinds: vec![
                DocKind::SliceDescription,
                DocKind::TranscriptChunk,
                DocKind::ChapterSummary,
                DocKind::Shot,
            ],
            ..SearchRequest::new(event.clone(), CANDIDATES_PER_EVENT)
        };
        let (hits, _) = cx.search.search(&req).await?;
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
                let loaded = cx.catalog.slices(&hit.video_id).await?;
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
                        let loaded = cx.catalog.transcript(&hit.video_id).await?;
                        transcripts.insert(hit.video_id.clone(), loaded);
                    }
                    let lines: Vec<&TranscriptSegment> = transcripts[&hit.video_id]
                        .iter()
                        .filter(|t| t.start_ms < hit.end_ms && t.end_ms > hit.start_ms)
                        .collect();
                    closest_line(cx, event, &lines)
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
                model: cx.providers.reranker.name().to_string(),
                similarity: None,
            };
            used.push(segment.clone());
            found.segment = Some(segment);
            found.source = hit.kind.name().to_string();
            found.matched_text = hit.text;
            break;
        }
        (cx.sink)(HighlightEvent::ScriptMatch(found.clone()));
        out.push(found);
    }
    Ok(out)
}

/// The times of the transcript line closest to `event` in the text embedder's space.
async fn closest_line(
    cx: &Context<'_>,
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
    let embedder = &cx.providers.text_embedder;
    let q = embedder
        .embed(&[event.to_string()], EmbedPurpose::Query)
        .await?;
    let l = embedder.embed(&texts, EmbedPurpose::Index).await?;
    let best = l
        .iter()
        .map(|e| reelforge_core::vector::dot(&e.vector, &q[0].vector))
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
