//! The Feedback service: callers rate highlight segments and search hits (good or bad,
//! with a note); ratings are kept per tenant and category in a tree of their own; a
//! segment rated good joins the highlight library in the same call when asked; and a
//! category's ratings tune its matching defaults (`tune`: the similarity threshold of
//! Points and Template per unit, the pre-filter's levels), showing what the change would
//! have done on the rated set, stored for later highlights in that category only when
//! asked (`Highlights::set_tuning`).

use std::sync::Arc;

use reelforge_core::error::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::highlights::units::peaks;
use crate::highlights::{
    Highlights, PrefilterLevels, StrategyOptions, TunedThreshold, Tuning, UnitKind,
};
use crate::library::{check_category, Library, NewEntry};
use crate::store::now_unix_ms;
use crate::util::blocking;

/// What is rated.
#[derive(Debug, Clone, PartialEq)]
pub enum RateTarget {
    /// A segment of a finished highlight, by its position in the result (0-based).
    Segment { highlight_id: String, index: u32 },
    /// A search hit: a stretch of a video, and the query it answered.
    Hit {
        video_id: String,
        start_ms: i64,
        end_ms: i64,
        query: String,
    },
}

/// A rating as the caller gives it.
#[derive(Debug, Clone)]
pub struct RateRequest {
    pub target: RateTarget,
    pub good: bool,
    pub note: String,
    /// `None`: the highlight's own category (a hit must name one).
    pub category: Option<String>,
    /// Add a segment rated good to the highlight library under the category.
    pub add_to_library: bool,
}

/// A stored rating, with what tuning needs to know of the rated stretch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    pub rating_id: String,
    pub tenant: String,
    pub category: String,
    pub good: bool,
    pub note: String,
    pub rated_unix_ms: i64,
    pub video_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub description: String,
    /// A highlight segment's highlight and position.
    pub highlight_id: Option<String>,
    pub segment_index: Option<u32>,
    /// A search hit's query.
    pub query: Option<String>,
    /// Points, Template: the strategy, the unit matched, the threshold it ran with and
    /// the segment's best similarity.
    pub strategy: Option<String>,
    pub unit: Option<String>,
    pub threshold: Option<f32>,
    pub similarity: Option<f32>,
    /// The stretch as the pre-filter sees it: peak motion, loudest window over the
    /// video's typical level.
    pub motion: f32,
    pub loudness_above_db: f32,
    /// The library entry made from it, when one was.
    pub library_entry_id: Option<String>,
}

/// A similarity threshold before and after tuning, and how each kept the rated set.
#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdChange {
    pub strategy: String,
    pub unit: String,
    pub before: f32,
    pub after: f32,
    pub rated: Counts,
}

/// The pre-filter's levels before and after tuning.
#[derive(Debug, Clone, PartialEq)]
pub struct PrefilterChange {
    pub before: PrefilterLevels,
    pub after: PrefilterLevels,
    pub rated: Counts,
}

/// How many good and bad rated stretches a setting keeps, before and after.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    pub good: u32,
    pub bad: u32,
    pub good_kept_before: u32,
    pub bad_kept_before: u32,
    pub good_kept_after: u32,
    pub bad_kept_after: u32,
}

/// One rated stretch the tuning would treat differently.
#[derive(Debug, Clone, PartialEq)]
pub struct Flip {
    pub rating_id: String,
    pub video_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub good: bool,
    /// "dropped" or "kept", and by what.
    pub what: String,
}

/// What tuning a category found, and whether it was applied.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneReport {
    pub category: String,
    pub ratings: u32,
    pub good: u32,
    pub bad: u32,
    pub thresholds: Vec<ThresholdChange>,
    /// `None`: no rating tells still, quiet stretches apart.
    pub prefilter: Option<PrefilterChange>,
    pub flips: Vec<Flip>,
    /// Why a setting was left alone (too few ratings of one kind...).
    pub notes: Vec<String>,
    pub applied: bool,
    /// The tuning as it is stored (after `apply`) or would be.
    pub tuning: Tuning,
}

pub struct Feedback {
    ratings: sled::Tree,
    catalog: Arc<Catalog>,
    highlights: Arc<Highlights>,
    library: Arc<Library>,
}

/// Longest note kept with a rating.
const MAX_NOTE_CHARS: usize = 2_000;

impl Feedback {
    pub fn new(
        db: &sled::Db,
        catalog: Arc<Catalog>,
        highlights: Arc<Highlights>,
        library: Arc<Library>,
    ) -> Result<Feedback> {
        Ok(Feedback {
            ratings: db.open_tree("ratings")?,
            catalog,
            highlights,
            library,
        })
    }

    /// Records a rating (and, asked, adds a good segment to the library).
    pub async fn rate(&self, tenant: &str, req: RateRequest) -> Result<Rating> {
        if req.note.chars().count() > MAX_NOTE_CHARS {
            return Err(Error::invalid(format!(
                "note: at most {MAX_NOTE_CHARS} characters"
            )));
        }
        if req.add_to_library && !req.good {
            return Err(Error::invalid(
                "add_to_library: only a segment rated good joins the library",
            ));
        }
        let given_category = match req.category.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(c) => Some(check_category(c)?),
        };
        let mut rating = match &req.target {
            RateTarget::Segment {
                highlight_id,
                index,
            } => self.segment_rating(tenant, highlight_id, *index, given_category)?,
            RateTarget::Hit {
                video_id,
                start_ms,
                end_ms,
                query,
            } => {
                if *start_ms < 0 || end_ms <= start_ms {
                    return Err(Error::invalid(format!(
                        "start_ms and end_ms: a hit needs 0 <= start_ms < end_ms, got {start_ms} and {end_ms}"
                    )));
                }
                let category = given_category.ok_or_else(|| {
                    Error::invalid("category: name the category a search hit's rating tunes")
                })?;
                Rating {
                    category,
                    video_id: video_id.clone(),
                    start_ms: *start_ms,
                    end_ms: *end_ms,
                    description: query.clone(),
                    query: Some(query.clone()),
                    ..Rating::empty()
                }
            }
        };
        let material = self
            .catalog
            .material(&rating.video_id)
            .await?
            .filter(|m| m.video.tenant == tenant)
            .ok_or_else(|| {
                Error::not_found(format!(
                    "video {} is not stored (see `reelforge videos list`)",
                    rating.video_id
                ))
            })?;
        if rating.start_ms >= material.video.probe.duration_ms {
            return Err(Error::invalid(format!(
                "start_ms: {} ms is past the end of video {} ({} ms)",
                rating.start_ms, rating.video_id, material.video.probe.duration_ms
            )));
        }
        (rating.motion, rating.loudness_above_db) =
            peaks(&material.windows, rating.start_ms, rating.end_ms);
        rating.rating_id = uuid::Uuid::new_v4().to_string();
        rating.tenant = tenant.to_string();
        rating.good = req.good;
        rating.note = req.note.trim().to_string();
        rating.rated_unix_ms = now_unix_ms();
        if req.add_to_library {
            let entry = self
                .library
                .add(
                    tenant,
                    NewEntry {
                        video_id: rating.video_id.clone(),
                        start_seconds: rating.start_ms as f64 / 1000.0,
                        end_seconds: rating.end_ms as f64 / 1000.0,
                        category: rating.category.clone(),
                        tags: vec!["rated-good".into()],
                        description: rating.description.clone(),
                        score: None,
                    },
                )
                .await?;
            rating.library_entry_id = Some(entry.entry_id);
        }
        let (tree, r) = (self.ratings.clone(), rating.clone());
        blocking(move || {
            let bytes = serde_json::to_vec(&r).map_err(|e| Error::internal(e.to_string()))?;
            tree.insert(rating_key(&r.tenant, &r.category, &r.rating_id), bytes)?;
            tree.flush()?;
            Ok(())
        })
        .await?;
        Ok(rating)
    }

    /// A finished highlight's segment as a rating to fill in.
    fn segment_rating(
        &self,
        tenant: &str,
        highlight_id: &str,
        index: u32,
        category: Option<String>,
    ) -> Result<Rating> {
        let record = self.highlights.get(tenant, highlight_id)?;
        let result = record.result.as_ref().ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "highlight {highlight_id} has no segments to rate: it is {:?}",
                record.state
            ))
        })?;
        let segment = result.segments.get(index as usize).ok_or_else(|| {
            Error::invalid(format!(
                "segment: highlight {highlight_id} has {} segments (0..{}), not {index}",
                result.segments.len(),
                result.segments.len().saturating_sub(1)
            ))
        })?;
        let category = category.or(record.category.clone()).ok_or_else(|| {
            Error::invalid(format!(
                "category: highlight {highlight_id} was made without a category; name the category this rating tunes"
            ))
        })?;
        let matching = record.matching.as_ref();
        Ok(Rating {
            category,
            video_id: segment.video_id.clone(),
            start_ms: segment.start_ms,
            end_ms: segment.end_ms,
            description: segment.description.clone(),
            highlight_id: Some(highlight_id.to_string()),
            segment_index: Some(index),
            strategy: Some(record.strategy.clone()),
            unit: matching.map(|m| m.unit.clone()),
            threshold: matching.map(|m| m.threshold),
            similarity: segment.similarity,
            ..Rating::empty()
        })
    }

    /// A category's ratings, oldest first.
    pub async fn ratings(&self, tenant: &str, category: &str) -> Result<Vec<Rating>> {
        let category = check_category(category)?;
        let tree = self.ratings.clone();
        let prefix = format!("{tenant}\0{category}\0").into_bytes();
        let mut all: Vec<Rating> = blocking(move || {
            tree.scan_prefix(prefix)
                .values()
                .map(|v| {
                    let v = v?;
                    serde_json::from_slice(&v)
                        .map_err(|e| Error::internal(format!("a stored rating is unreadable: {e}")))
                })
                .collect()
        })
        .await?;
        all.sort_by_key(|r| r.rated_unix_ms);
        Ok(all)
    }

    /// Tunes a category from its ratings; `apply` stores the result as the category's
    /// defaults.
    pub async fn tune(&self, tenant: &str, category: &str, apply: bool) -> Result<TuneReport> {
        let ratings = self.ratings(tenant, category).await?;
        let category = check_category(category)?;
        if ratings.is_empty() {
            return Err(Error::FailedPrecondition(format!(
                "category {category:?} has no ratings yet: rate highlight segments or search hits in it first (`reelforge rate`)"
            )));
        }
        let current = self.highlights.tuning(tenant, &category)?;
        let mut report = TuneReport {
            category: category.clone(),
            ratings: ratings.len() as u32,
            good: ratings.iter().filter(|r| r.good).count() as u32,
            bad: ratings.iter().filter(|r| !r.good).count() as u32,
            thresholds: Vec::new(),
            prefilter: None,
            flips: Vec::new(),
            notes: Vec::new(),
            applied: false,
            tuning: Tuning::default(),
        };
        // Thresholds: one per (strategy, unit) with rated similarities.
        let mut groups: Vec<(String, String)> = ratings
            .iter()
            .filter(|r| r.similarity.is_some())
            .filter_map(|r| Some((r.strategy.clone()?, r.unit.clone()?)))
            .collect();
        groups.sort();
        groups.dedup();
        for (strategy, unit) in groups {
            let kind = match unit.as_str() {
                "frames" => UnitKind::Frames,
                _ => UnitKind::Clips,
            };
            let effective = self.highlights.effective_options(
                tenant,
                &strategy,
                &StrategyOptions {
                    match_unit: Some(kind),
                    category: Some(category.clone()),
                    ..StrategyOptions::default()
                },
            )?;
            let before = effective.similarity_threshold.unwrap_or_default();
            let rated: Vec<(&Rating, f32)> = ratings
                .iter()
                .filter(|r| {
                    r.strategy.as_deref() == Some(&strategy) && r.unit.as_deref() == Some(&unit)
                })
                .filter_map(|r| Some((r, r.similarity?)))
                .collect();
            let samples: Vec<(f32, bool)> = rated.iter().map(|(r, s)| (*s, r.good)).collect();
            let after = match tune_threshold(&samples, before) {
                Some(t) => t,
                None => {
                    report.notes.push(format!(
                        "{strategy} ({unit}): the threshold needs good and bad ratings of its segments; left at {before:.3}"
                    ));
                    before
                }
            };
            let counts = count(&samples, |s| s.1, |s| s.0 >= before, |s| s.0 >= after);
            for (r, s) in &rated {
                let (was, is) = (*s >= before, *s >= after);
                if was != is {
                    report.flips.push(flip(
                        r,
                        format!(
                            "{} by the {strategy} threshold {after:.3} (similarity {s:.3})",
                            if is { "kept" } else { "dropped" }
                        ),
                    ));
                }
            }
            report.thresholds.push(ThresholdChange {
                strategy,
                unit,
                before,
                after,
                rated: counts,
            });
        }
        // The pre-filter: every rated stretch, segments and hits alike, against the levels
        // a request in this category runs with (its tuning's, else the defaults).
        let levels_before = current
            .as_ref()
            .and_then(|t| t.prefilter)
            .unwrap_or_default();
        let samples: Vec<(f32, f32, bool)> = ratings
            .iter()
            .map(|r| (r.motion, r.loudness_above_db, r.good))
            .collect();
        match tune_prefilter(&samples, levels_before) {
            Some(after) => {
                let counts = count(
                    &samples,
                    |s| s.2,
                    |s| levels_before.passes(s.0, s.1),
                    |s| after.passes(s.0, s.1),
                );
                for r in &ratings {
                    let (was, is) = (
                        levels_before.passes(r.motion, r.loudness_above_db),
                        after.passes(r.motion, r.loudness_above_db),
                    );
                    if was != is {
                        report.flips.push(flip(
                            r,
                            format!(
                                "{} by the pre-filter (motion {:.4}, {:+.1} dB over typical)",
                                if is { "kept" } else { "dropped" },
                                r.motion,
                                r.loudness_above_db
                            ),
                        ));
                    }
                }
                report.prefilter = Some(PrefilterChange {
                    before: levels_before,
                    after,
                    rated: counts,
                });
            }
            None => report.notes.push(
                "the pre-filter needs good and bad ratings; its levels are left as they are".into(),
            ),
        }
        let mut tuning = current.unwrap_or_default();
        for t in &report.thresholds {
            tuning
                .thresholds
                .retain(|x| !(x.strategy == t.strategy && x.unit == t.unit));
            tuning.thresholds.push(TunedThreshold {
                strategy: t.strategy.clone(),
                unit: t.unit.clone(),
                threshold: t.after,
            });
        }
        if let Some(p) = &report.prefilter {
            tuning.prefilter = Some(p.after);
        }
        tuning.tuned_unix_ms = now_unix_ms();
        tuning.ratings = report.ratings;
        if apply {
            self.highlights.set_tuning(tenant, &category, &tuning)?;
            report.applied = true;
        }
        report.tuning = tuning;
        Ok(report)
    }
}

impl Rating {
    fn empty() -> Rating {
        Rating {
            rating_id: String::new(),
            tenant: String::new(),
            category: String::new(),
            good: false,
            note: String::new(),
            rated_unix_ms: 0,
            video_id: String::new(),
            start_ms: 0,
            end_ms: 0,
            description: String::new(),
            highlight_id: None,
            segment_index: None,
            query: None,
            strategy: None,
            unit: None,
            threshold: None,
            similarity: None,
            motion: 0.0,
            loudness_above_db: 0.0,
            library_entry_id: None,
        }
    }
}

fn rating_key(tenant: &str, category: &str, id: &str) -> Vec<u8> {
    format!("{tenant}\0{category}\0{id}").into_bytes()
}

fn flip(r: &Rating, what: String) -> Flip {
    Flip {
        rating_id: r.rating_id.clone(),
        video_id: r.video_id.clone(),
        start_ms: r.start_ms,
        end_ms: r.end_ms,
        good: r.good,
        what,
    }
}

fn count<T>(
    samples: &[T],
    good: impl Fn(&T) -> bool,
    before: impl Fn(&T) -> bool,
    after: impl Fn(&T) -> bool,
) -> Counts {
    let mut c = Counts::default();
    for s in samples {
        let (g, b) = if good(s) { (1, 0) } else { (0, 1) };
        c.good += g;
        c.bad += b;
        if before(s) {
            c.good_kept_before += g;
            c.bad_kept_before += b;
        }
        if after(s) {
            c.good_kept_after += g;
            c.bad_kept_after += b;
        }
    }
    c
}

/// Midpoints between consecutive distinct values (the levels that split them), and a
/// level just above the highest (one that leaves every value below it).
fn splits(mut values: Vec<f32>) -> Vec<f32> {
    values.retain(|v| v.is_finite());
    values.sort_by(f32::total_cmp);
    values.dedup();
    let mut out: Vec<f32> = values.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
    if let Some(top) = values.last() {
        out.push(top + (top.abs() * 0.05).max(1e-4));
    }
    out
}

/// The similarity threshold that keeps the most good and drops the most bad of the rated
/// segments (`(similarity, good)`), the closest to `before` among equals; `None` without
/// both good and bad ratings. Rated segments all passed the threshold they ran with, so
/// a tuned threshold mostly rises; it falls only as far as the ratings reach.
pub fn tune_threshold(samples: &[(f32, bool)], before: f32) -> Option<f32> {
    if !samples.iter().any(|s| s.1) || samples.iter().all(|s| s.1) {
        return None;
    }
    let mut candidates = splits(samples.iter().map(|s| s.0).collect());
    candidates.push(before);
    let correct = |t: f32| {
        samples
            .iter()
            .filter(|&&(s, good)| (s >= t) == good)
            .count()
    };
    candidates
        .into_iter()
        .map(|t| (correct(t), -(t - before).abs(), t))
        .max_by(|a, b| (a.0, a.1).partial_cmp(&(b.0, b.1)).expect("finite"))
        .map(|(_, _, t)| t)
}

/// The pre-filter levels that pass the most good and drop the most bad rated stretches
/// (`(peak motion, dB over typical, good)`), the least change from `before` among
/// equals; `None` without both good and bad ratings.
pub fn tune_prefilter(
    samples: &[(f32, f32, bool)],
    before: PrefilterLevels,
) -> Option<PrefilterLevels> {
    if !samples.iter().any(|s| s.2) || samples.iter().all(|s| s.2) {
        return None;
    }
    let mut motions = splits(samples.iter().map(|s| s.0).collect());
    motions.push(before.still_motion);
    let mut louds = splits(samples.iter().map(|s| s.1.max(0.0)).collect());
    louds.push(before.loudness_above_db);
    let mut best: Option<(usize, f32, PrefilterLevels)> = None;
    for &m in motions.iter().filter(|m| (0.0..=1.0).contains(*m)) {
        for &l in louds.iter().filter(|l| (0.0..=60.0).contains(*l)) {
            let levels = PrefilterLevels {
                still_motion: m,
                loudness_above_db: l,
            };
            let correct = samples
                .iter()
                .filter(|&&(mo, d, good)| levels.passes(mo, d) == good)
                .count();
            let change = (m - before.still_motion).abs() / before.still_motion.max(1e-3)
                + (l - before.loudness_above_db).abs() / before.loudness_above_db.max(1.0);
            let better = match &best {
                None => true,
                Some((c, ch, _)) => correct > *c || (correct == *c && change < *ch),
            };
            if better {
                best = Some((correct, change, levels));
            }
        }
    }
    best.map(|(_, _, l)| l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_rises_to_drop_bad_segments_and_keep_good_ones() {
        let samples = [(0.62, false), (0.64, false), (0.71, true), (0.80, true)];
        let t = tune_threshold(&samples, 0.6).unwrap();
        assert!((t - 0.675).abs() < 1e-6, "{t}");
        // Only good ratings: nothing to learn.
        assert_eq!(tune_threshold(&[(0.7, true)], 0.6), None);
        // Ties go to the threshold closest to the one in use.
        let t = tune_threshold(&[(0.7, true), (0.65, false), (0.9, false)], 0.6).unwrap();
        assert!((t - 0.675).abs() < 1e-6, "{t}");
    }

    #[test]
    fn the_prefilter_levels_rise_to_drop_still_quiet_bad_stretches() {
        let before = PrefilterLevels::default();
        // Bad: barely moving and quiet; good: moving, or loud.
        let samples = [
            (0.006, 1.0, false),
            (0.007, 0.5, false),
            (0.05, 0.0, true),
            (0.0, 12.0, true),
        ];
        let after = tune_prefilter(&samples, before).unwrap();
        assert!(
            samples.iter().all(|&(m, d, g)| after.passes(m, d) == g),
            "{after:?}"
        );
        assert_eq!(after.loudness_above_db, before.loudness_above_db);
    }
}
