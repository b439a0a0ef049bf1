//! `reelforge.v1.Highlight`.

use std::pin::Pin;
use std::sync::Arc;

use reelforge_proto::v1 as pb;
use tokio::io::AsyncReadExt;
use tokio_stream::wrappers::{ReceiverStream, UnboundedReceiverStream};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::status::to_status;
use crate::error::Error;
use crate::highlight::job::{self, HighlightEvent, HighlightRequest, StrategyKind};
use crate::highlight::matched::MatchOptions;
use crate::highlight::music::MusicOptions;
use crate::highlight::points::Point;
use crate::highlight::render::{RenderOptions, Subtitles};
use crate::highlight::segments::{Fit, Segment};
use crate::highlight::units::UnitKind;
use crate::ingest::Engine;

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::HighlightEvent, Status>> + Send>>;
type ChunkStream = Pin<Box<dyn Stream<Item = Result<pb::FileChunk, Status>> + Send>>;

/// Download chunk size.
const CHUNK_BYTES: usize = 1 << 20;

pub struct HighlightApi {
    engine: Arc<Engine>,
}

impl HighlightApi {
    pub fn new(engine: Arc<Engine>) -> Self {
        HighlightApi { engine }
    }
}

fn ms(seconds: f64, default_ms: i64, field: &str) -> Result<i64, Error> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(Error::invalid(format!(
            "{field} must be a non-negative number of seconds, got {seconds}"
        )));
    }
    Ok(if seconds == 0.0 {
        default_ms
    } else {
        (seconds * 1000.0).round() as i64
    })
}

/// `prefilter`: the strategy's default for the pre-filter.
fn match_options(r: &pb::HighlightRequest, prefilter: bool) -> Result<MatchOptions, Error> {
    let unit = match pb::MatchUnit::try_from(r.match_unit) {
        Ok(pb::MatchUnit::Clips) => UnitKind::Clips,
        Ok(pb::MatchUnit::Frames) => UnitKind::Frames,
        Err(_) => {
            return Err(Error::invalid(format!(
                "match_unit {} is not a match unit",
                r.match_unit
            )))
        }
    };
    if r.similarity_threshold.is_some_and(|t| !t.is_finite()) || !r.dedup_similarity.is_finite() {
        return Err(Error::invalid(
            "similarity_threshold and dedup_similarity must be numbers",
        ));
    }
    Ok(MatchOptions {
        unit,
        threshold: r.similarity_threshold,
        transcript_points: r.transcript_points.unwrap_or(true),
        prefilter: r.prefilter.unwrap_or(prefilter),
        dedup_similarity: r.dedup_similarity,
        coarse: r.coarse,
    })
}

fn point(p: &Point) -> pb::HighlightPoint {
    pb::HighlightPoint {
        index: p.index,
        priority: p.priority as u32,
        description: p.description.clone(),
        model: p.model.clone(),
        source: p.source.clone(),
        start_ms: p.start_ms,
        end_ms: p.end_ms,
    }
}

/// `roots`: where server-side folders (music) may be read.
fn request(
    r: pb::HighlightRequest,
    roots: &[std::path::PathBuf],
) -> Result<HighlightRequest, Error> {
    let strategy = match pb::HighlightStrategy::try_from(r.strategy) {
        Ok(pb::HighlightStrategy::Direct) => StrategyKind::Direct,
        Ok(pb::HighlightStrategy::Script) => StrategyKind::Script {
            events: crate::highlight::script::parse_script(&r.script)?,
            video_ids: r.video_ids.clone(),
        },
        Ok(pb::HighlightStrategy::Points) => StrategyKind::Points(match_options(&r, false)?),
        Ok(pb::HighlightStrategy::Template) => StrategyKind::Template {
            category: (!r.category.trim().is_empty()).then(|| r.category.clone()),
            options: match_options(&r, true)?,
        },
        Ok(pb::HighlightStrategy::Sliced) => StrategyKind::Sliced {
            slice_ms: ms(r.slice_seconds, 30_000, "slice_seconds")?,
            concurrency: if r.concurrency == 0 {
                4
            } else {
                r.concurrency as usize
            },
        },
        Err(_) => {
            return Err(Error::invalid(format!(
                "strategy {} is not a highlight strategy",
                r.strategy
            )))
        }
    };
    if r.slice_seconds < 0.0 {
        return Err(Error::invalid("slice_seconds must not be negative"));
    }
    let target = ms(r.target_seconds, 0, "target_seconds")?;
    let fit = Fit {
        target_ms: (target > 0).then_some(target),
        min_segment_ms: ms(r.min_segment_seconds, 1_000, "min_segment_seconds")?,
        max_segment_ms: ms(r.max_segment_seconds, 20_000, "max_segment_seconds")?,
        padding_ms: ms(r.padding_seconds, 0, "padding_seconds")?,
        time_order: !r.order_by_score,
    };
    let subtitles = match pb::SubtitleMode::try_from(r.subtitles) {
        Ok(pb::SubtitleMode::None) => Subtitles::None,
        Ok(pb::SubtitleMode::Soft) => Subtitles::Soft,
        Ok(pb::SubtitleMode::Burn) => Subtitles::Burn,
        Err(_) => {
            return Err(Error::invalid(format!(
                "subtitles {} is not a subtitle mode",
                r.subtitles
            )))
        }
    };
    if !r.music_volume.is_finite() || !(0.0..=1.0).contains(&r.music_volume) {
        return Err(Error::invalid(format!(
            "music_volume must be within 0..1 (0: the default 0.3), got {}",
            r.music_volume
        )));
    }
    let music = match r.music_dir.trim() {
        "" => None,
        dir => Some(MusicOptions {
            dir: crate::ingest::paths::resolve_inside_roots(roots, dir).map_err(|e| match e {
                Error::NotFound(m) => Error::invalid(format!("music_dir: {m}")),
                other => other,
            })?,
            volume: if r.music_volume == 0.0 {
                0.3
            } else {
                r.music_volume
            },
        }),
    };
    if music.is_some() && r.render == Some(false) {
        return Err(Error::invalid(
            "music_dir is for rendered reels; drop it or render the reel",
        ));
    }
    let render = r.render.unwrap_or(true).then(|| RenderOptions {
        crossfade_ms: (r.crossfade_seconds.max(0.0) * 1000.0).round() as i64,
        subtitles,
        music,
    });
    if !r.crossfade_seconds.is_finite() || r.crossfade_seconds < 0.0 {
        return Err(Error::invalid(
            "crossfade_seconds must be a non-negative number",
        ));
    }
    Ok(HighlightRequest {
        video_id: r.video_id,
        strategy,
        fit,
        render,
    })
}

pub(super) fn segment(s: &Segment) -> pb::HighlightSegment {
    pb::HighlightSegment {
        video_id: s.video_id.clone(),
        start_ms: s.start_ms,
        end_ms: s.end_ms,
        score: s.score,
        priority: s.priority as u32,
        description: s.description.clone(),
        reason: s.reason.clone(),
        model: s.model.clone(),
    }
}

fn event(e: HighlightEvent) -> pb::HighlightEvent {
    use pb::highlight_event::Event;
    let event = match e {
        HighlightEvent::Slice(o) => Event::Slice(pb::SliceResult {
            index: o.index,
            start_ms: o.start_ms,
            end_ms: o.end_ms,
            model: o.model,
            error: o.error.unwrap_or_default(),
            segments: o.segments.iter().map(segment).collect(),
            description: o.description,
            usage: o.usage.map(super::convert::usage),
        }),
        HighlightEvent::Points(points) => Event::Points(pb::HighlightPoints {
            points: points.iter().map(point).collect(),
        }),
        HighlightEvent::Funnel(f) => Event::Funnel(pb::ClipFunnel {
            unit: f.unit,
            total: f.total,
            after_prefilter: f.after_prefilter,
            after_dedup: f.after_dedup,
            after_coarse: f.after_coarse,
        }),
        HighlightEvent::PointMatch(m) => Event::PointMatch(pb::PointMatch {
            point: Some(point(&m.point)),
            clips_above: m.units_above,
            best_similarity: m.best_similarity,
            segments: m.segments.iter().map(segment).collect(),
        }),
        HighlightEvent::ScriptMatch(m) => Event::ScriptMatch(pb::ScriptMatch {
            index: m.index,
            event: m.event,
            segment: m.segment.as_ref().map(segment),
            source: m.source,
            matched_text: m.matched_text,
        }),
        HighlightEvent::Chosen(segments, candidates) => Event::Chosen(pb::ChosenSegments {
            segments: segments.iter().map(segment).collect(),
            candidates: candidates as u32,
        }),
        HighlightEvent::Music(m) => Event::Music(pb::MusicChoice {
            track: m.track.path.display().to_string(),
            similarity: m.similarity,
            words: m.track.words,
        }),
        HighlightEvent::Render { done, total } => Event::Render(pb::RenderProgress {
            steps_done: done,
            steps_total: total,
        }),
    };
    pb::HighlightEvent { event: Some(event) }
}

#[tonic::async_trait]
impl pb::highlight_server::Highlight for HighlightApi {
    type HighlightStream = EventStream;
    type DownloadStream = ChunkStream;

    async fn highlight(
        &self,
        req: Request<pb::HighlightRequest>,
    ) -> Result<Response<Self::HighlightStream>, Status> {
        let req =
            request(req.into_inner(), &self.engine.config().allowed_roots).map_err(to_status)?;
        // Unbounded: a job has a bounded number of events (its slices, its render
        // steps), and a slow reader must not lose any.
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let engine = self.engine.clone();
        // The job runs to its end even if the caller goes away: its files stay for
        // `Download`.
        tokio::spawn(async move {
            let sink_tx = tx.clone();
            let sink = move |e: HighlightEvent| {
                let _ = sink_tx.send(Ok(event(e)));
            };
            let outcome = job::run(&engine, &req, &sink).await;
            let last = outcome.map_err(to_status).map(|r| pb::HighlightEvent {
                event: Some(pb::highlight_event::Event::Done(pb::HighlightResult {
                    highlight_id: r.highlight_id,
                    strategy: r.strategy,
                    segments: r.segments.iter().map(segment).collect(),
                    candidates: r.candidates as u32,
                    reel_duration_ms: r.reel_duration_ms,
                    files: r.files,
                })),
            });
            let _ = tx.send(last);
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }

    async fn download(
        &self,
        req: Request<pb::DownloadRequest>,
    ) -> Result<Response<Self::DownloadStream>, Status> {
        let r = req.into_inner();
        let path = job::artifact(&self.engine, &r.highlight_id, &r.file).map_err(to_status)?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| to_status(e.into()))?;
        let total = file
            .metadata()
            .await
            .map_err(|e| to_status(e.into()))?
            .len() as i64;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let mut buf = vec![0u8; CHUNK_BYTES];
                match file.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        let chunk = pb::FileChunk {
                            data: buf,
                            total_bytes: total,
                        };
                        if tx.send(Ok(chunk)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(to_status(e.into()))).await;
                        break;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
