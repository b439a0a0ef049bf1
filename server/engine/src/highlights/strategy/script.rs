//! The Script strategy: a user's script ("product reveal, then people smiling using it,
//! then the logo") becomes ordered events; each event is searched for across the library
//! with the hybrid search (BM25 + vectors, fused, reranked); the reel follows the
//! script's order, one best segment per event, never the same footage twice.
//!
//! With `models.video_embedder` set, each event's words are first matched against every
//! clip's video embedding (picture and sound) across the videos: the best unused clip at
//! or above the video threshold, with its neighbours that also match, is the event's
//! segment; the search answers an event no clip matches.
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
use reelforge_core::vector::dot;
use reelforge_core::BoxFuture;
use reelforge_models::analysis::SliceAnalysis;
use reelforge_models::{EmbedPurpose, TranscriptSegment, VideoEmbedder};
use reelforge_search::DocKind;

use super::{Context, Defaults, Proposal, Scope, Shaping, Strategy};
use crate::catalog::{Catalog, VideoMaterial};
use crate::highlights::matching::VIDEO_THRESHOLD;
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
                .filter(|v| v.tenant == cx.tenant)
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
            let clips = match &cx.providers.video_embedder {
                Some(embedder) => {
                    let mut videos: Vec<&VideoRecord> = library
                        .values()
                        .filter(|v| {
                            usable(&v.video_id)
                                && (options.video_ids.is_empty()
                                    || options.video_ids.contains(&v.video_id))
                        })
                        .collect();
                    videos.sort_by(|a, b| a.video_id.cmp(&b.video_id));
                    Some(
                        ClipSpace::load(cx.catalog, embedder.as_ref(), &videos, &options.events)
                            .await?,
                    )
                }
                None => None,
            };
            let matches = match_events(
                cx,
                &options.events,
                &options.video_ids,
                &usable,
                clips.as_ref(),
            )
            .await?;
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

/// One video's clips (index, start ms, end ms) with their video embeddings.
struct VideoClips {
    video_id: String,
    filename: String,
    clips: Vec<(u32, i64, i64)>,
    vectors: Vec<Vec<f32>>,
}

/// The clips of the videos a script draws from, with their video embeddings, and the
/// events' words in the same space.
struct ClipSpace {
    embedder: String,
    videos: Vec<VideoClips>,
    events: Vec<Vec<f32>>,
}

impl ClipSpace {
    /// Embeds what is not embedded yet (kept with each video for the next request).
    async fn load(
        catalog: &Catalog,
        embedder: &dyn VideoEmbedder,
        videos: &[&VideoRecord],
        events: &[String],
    ) -> Result<ClipSpace> {
        let mut out = Vec::with_capacity(videos.len());
        for v in videos {
            let clips = Catalog::clip_grid(v);
            let vectors = catalog.clip_video_vectors(v, embedder, &clips).await?;
            out.push(VideoClips {
                video_id: v.video_id.clone(),
                filename: v.filename.clone(),
                clips,
                vectors,
            });
        }
        let events = embedder
            .embed_queries(events)
            .await?
            .into_iter()
            .map(|e| e.vector)
            .collect();
        Ok(ClipSpace {
            embedder: embedder.name().to_string(),
            videos: out,
            events,
        })
    }

    /// Event `index`'s best unused clip at or above the threshold, grown by the adjacent
    /// unused clips that match too: the segment and what it matched.
    fn best(&self, index: usize, event: &str, used: &[Segment]) -> Option<(Segment, String)> {
        let q = self.events.get(index)?;
        let free = |video: &str, s: i64, e: i64| {
            !used
                .iter()
                .any(|u| u.video_id == video && u.start_ms < e && s < u.end_ms)
        };
        let sim = |vector: &Vec<f32>| match vector.len() == q.len() {
            true => dot(q, vector),
            false => -1.0,
        };
        let mut best: Option<(usize, usize, f32)> = None;
        for (vi, v) in self.videos.iter().enumerate() {
            for (ci, vector) in v.vectors.iter().enumerate() {
                let s = sim(vector);
                let (_, start, end) = v.clips[ci];
                if s >= VIDEO_THRESHOLD
                    && free(&v.video_id, start, end)
                    && best.is_none_or(|b| s > b.2)
                {
                    best = Some((vi, ci, s));
                }
            }
        }
        let (vi, ci, top) = best?;
        let VideoClips {
            video_id: video,
            filename,
            clips,
            vectors,
        } = &self.videos[vi];
        let matches =
            |c: usize| sim(&vectors[c]) >= VIDEO_THRESHOLD && free(video, clips[c].1, clips[c].2);
        let (mut first, mut last) = (ci, ci);
        while first > 0 && matches(first - 1) {
            first -= 1;
        }
        while last + 1 < clips.len() && matches(last + 1) {
            last += 1;
        }
        let mean =
            (first..=last).map(|c| sim(&vectors[c])).sum::<f32>() / (last - first + 1) as f32;
        let text = format!(
            "clips {}-{} of {filename} (best similarity {top:.2})",
            clips[first].0 + 1,
            clips[last].0 + 1
        );
        let segment = Segment {
            video_id: video.clone(),
            start_ms: clips[first].1,
            end_ms: clips[last].2,
            score: mean.clamp(0.0, 1.0),
            priority: 1,
            description: event.to_string(),
            reason: format!("script event {}: clip video {text}", index + 1),
            model: format!("{} match", self.embedder),
            similarity: Some(top),
        };
        Some((segment, text))
    }
}

/// Matches each event, in order, against `videos` (empty: the whole library), keeping
/// footage used by an earlier event out: by the clips' video embeddings first when there
/// are some (`clips`), else by search. `usable(video_id)` says whether a video has media
/// to cut from.
async fn match_events(
    cx: &Context<'_>,
    events: &[String],
    videos: &[String],
    usable: &(dyn Fn(&str) -> bool + Send + Sync),
    clips: Option<&ClipSpace>,
) -> Result<Vec<EventMatch>> {
    let mut slices: HashMap<String, Vec<SliceAnalysis>> = HashMap::new();
    let mut transcripts: HashMap<String, Vec<TranscriptSegment>> = HashMap::new();
    let mut used: Vec<Segment> = Vec::new();
    let mut out = Vec::with_capacity(events.len());
    for (index, event) in events.iter().enumerate() {
        if let Some((segment, text)) = clips.and_then(|c| c.best(index, event, &used)) {
            used.push(segment.clone());
            let found = EventMatch {
                index: index as u32,
                event: event.clone(),
                segment: Some(segment),
                source: "clip_video".into(),
                matched_text: text,
            };
            (cx.sink)(HighlightEvent::ScriptMatch(found.clone()));
            out.push(found);
            continue;
        }
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
        let (hits, _) = cx.search.search(cx.tenant, &req).await?;
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
