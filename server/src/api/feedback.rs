//! `reelforge.v1.Feedback`: ratings of highlight segments and search hits, and the
//! category tunings they drive.

use std::sync::Arc;

use reelforge_engine::feedback::{Counts, RateRequest, RateTarget, Rating, TuneReport};
use reelforge_engine::Feedback;
use reelforge_proto::v1 as pb;
use tonic::{Request, Response, Status};

use super::status::to_status;
use crate::auth::{audit_target, Caller};

pub struct FeedbackApi {
    feedback: Arc<Feedback>,
}

impl FeedbackApi {
    pub fn new(feedback: Arc<Feedback>) -> Self {
        FeedbackApi { feedback }
    }
}

fn rating(r: Rating) -> pb::Rating {
    pb::Rating {
        rating_id: r.rating_id,
        category: r.category,
        good: r.good,
        note: r.note,
        rated_unix_ms: r.rated_unix_ms,
        video_id: r.video_id,
        start_ms: r.start_ms,
        end_ms: r.end_ms,
        description: r.description,
        highlight_id: r.highlight_id.unwrap_or_default(),
        strategy: r.strategy.unwrap_or_default(),
        unit: r.unit.unwrap_or_default(),
        threshold: r.threshold,
        similarity: r.similarity,
        motion: r.motion,
        loudness_above_db: r.loudness_above_db,
        library_entry_id: r.library_entry_id.unwrap_or_default(),
    }
}

fn counts(c: Counts) -> pb::RatedCounts {
    pb::RatedCounts {
        good: c.good,
        bad: c.bad,
        good_kept_before: c.good_kept_before,
        bad_kept_before: c.bad_kept_before,
        good_kept_after: c.good_kept_after,
        bad_kept_after: c.bad_kept_after,
    }
}

fn report(r: TuneReport) -> pb::TuneReport {
    pb::TuneReport {
        category: r.category,
        ratings: r.ratings,
        good: r.good,
        bad: r.bad,
        thresholds: r
            .thresholds
            .into_iter()
            .map(|t| pb::ThresholdChange {
                strategy: t.strategy,
                unit: t.unit,
                before: t.before,
                after: t.after,
                rated: Some(counts(t.rated)),
            })
            .collect(),
        prefilter: r.prefilter.map(|p| pb::PrefilterChange {
            motion_before: p.before.still_motion,
            loudness_db_before: p.before.loudness_above_db,
            motion_after: p.after.still_motion,
            loudness_db_after: p.after.loudness_above_db,
            rated: Some(counts(p.rated)),
        }),
        flips: r
            .flips
            .into_iter()
            .map(|f| pb::RatingFlip {
                rating_id: f.rating_id,
                video_id: f.video_id,
                start_ms: f.start_ms,
                end_ms: f.end_ms,
                good: f.good,
                what: f.what,
            })
            .collect(),
        notes: r.notes,
        applied: r.applied,
    }
}

#[tonic::async_trait]
impl pb::feedback_server::Feedback for FeedbackApi {
    async fn rate(&self, req: Request<pb::RateRequest>) -> Result<Response<pb::Rating>, Status> {
        let tenant = Caller::of(&req).tenant;
        let pb::RateRequest {
            target,
            good,
            note,
            category,
            add_to_library,
        } = req.into_inner();
        let target = match target {
            Some(pb::rate_request::Target::Segment(s)) => {
                if s.highlight_id.is_empty() {
                    return Err(Status::invalid_argument("segment.highlight_id is required"));
                }
                audit_target(format!("highlight {} segment {}", s.highlight_id, s.index));
                RateTarget::Segment {
                    highlight_id: s.highlight_id,
                    index: s.index,
                }
            }
            Some(pb::rate_request::Target::Hit(h)) => {
                if h.video_id.is_empty() {
                    return Err(Status::invalid_argument("hit.video_id is required"));
                }
                audit_target(format!("video {}", h.video_id));
                RateTarget::Hit {
                    video_id: h.video_id,
                    start_ms: h.start_ms,
                    end_ms: h.end_ms,
                    query: h.query,
                }
            }
            None => {
                return Err(Status::invalid_argument(
                    "target: rate a highlight segment (segment) or a search hit (hit)",
                ))
            }
        };
        let rated = self
            .feedback
            .rate(
                &tenant,
                RateRequest {
                    target,
                    good,
                    note,
                    category: (!category.trim().is_empty()).then_some(category),
                    add_to_library,
                },
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(rating(rated)))
    }

    async fn tune(
        &self,
        req: Request<pb::TuneRequest>,
    ) -> Result<Response<pb::TuneReport>, Status> {
        let tenant = Caller::of(&req).tenant;
        let pb::TuneRequest { category, apply } = req.into_inner();
        audit_target(format!(
            "category {category}{}",
            if apply { " (apply)" } else { "" }
        ));
        if category.trim().is_empty() {
            return Err(Status::invalid_argument("category is required"));
        }
        let r = self
            .feedback
            .tune(&tenant, &category, apply)
            .await
            .map_err(to_status)?;
        Ok(Response::new(report(r)))
    }
}
