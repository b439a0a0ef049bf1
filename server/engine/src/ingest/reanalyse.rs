//! Reading a stored video's slices again with the configured analyser: the slices it
//! failed on at ingest (kept with the offline reading and their error), or all of them.
//! Each slice gets what ingest gave it (its signal windows, cuts, and the running level of
//! the video before it); a new reading replaces the stored one in place (record,
//! description, its vector) and the video is indexed again. A slice that fails again
//! keeps what it had, with the new error.

use futures_util::stream::{self, StreamExt};
use reelforge_core::error::{Error, Result};
use reelforge_models::analysis::{Baseline, SignalWindow, SliceAnalysis, SliceInput};

use super::pipeline::{failed_on_slice, slice_description};
use super::Ingest;
use crate::store::JobKind;
use crate::util::blocking;

/// What a reanalysis did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reanalysis {
    pub video_id: String,
    /// Slices given to the analyser.
    pub given: u32,
    /// Slices whose new reading replaced the stored one.
    pub replaced: u32,
    /// Slices the analyser failed on again, with the error.
    pub failed: Vec<(u32, String)>,
}

impl Ingest {
    /// Reads `video_id`'s slices again with the configured analyser: only those it failed
    /// on when `failed_only`, else every one.
    pub async fn reanalyse(
        &self,
        tenant: &str,
        video_id: &str,
        failed_only: bool,
    ) -> Result<Reanalysis> {
        reelforge_core::ids::validate_video_id(video_id)?;
        if let Some(h) = self.jobs.running_for(JobKind::Ingest, video_id) {
            return Err(Error::FailedPrecondition(format!(
                "job {} is ingesting this video; analyse it again when it is done",
                h.id()
            )));
        }
        let (store, id, tenant) = (self.store.clone(), video_id.to_string(), tenant.to_string());
        let (video, slices, windows, sounds, sights) = blocking(move || {
            let video = store.video_of(&tenant, &id)?.ok_or_else(|| {
                Error::NotFound(format!(
                    "no video with id {id} (see `reelforge videos list`)"
                ))
            })?;
            Ok((
                video,
                store.slices(&id)?,
                store.signals(&id)?,
                store.sounds(&id)?,
                store.sights(&id)?,
            ))
        })
        .await?;
        let source = std::path::PathBuf::from(&video.source_path);
        if !source.is_file() {
            return Err(Error::FailedPrecondition(format!(
                "video {video_id} has no media on this server to analyse (imported only, or its file is gone)"
            )));
        }
        let analyzer = self.providers.analyzer.as_ref();
        let in_span = |s: &SliceAnalysis| -> Vec<SignalWindow> {
            windows
                .iter()
                .copied()
                .filter(|w| w.start_ms >= s.start_ms && w.start_ms < s.end_ms)
                .collect()
        };
        // Each slice's reference level: the running level of the video before it.
        let mut running = Baseline::start();
        let mut work = Vec::new();
        for s in &slices {
            let own = in_span(s);
            if !failed_only || s.error.is_some() {
                work.push((s.clone(), own.clone(), running));
            }
            running.absorb(&own);
        }
        let mut report = Reanalysis {
            video_id: video_id.to_string(),
            given: work.len() as u32,
            ..Reanalysis::default()
        };
        let duration_ms = video.probe.duration_ms;
        let readings: Vec<(SliceAnalysis, Result<SliceAnalysis>)> = stream::iter(work)
            .map(|(old, own, baseline)| {
                let (source, sounds, sights) = (&source, &sounds, &sights);
                async move {
                    let input = SliceInput {
                        source,
                        video_duration_ms: duration_ms,
                        index: old.index,
                        start_ms: old.start_ms,
                        end_ms: old.end_ms,
                        windows: &own,
                        cut_points_ms: &old.cut_points_ms,
                        baseline,
                        // Read again in the words it was read in.
                        language: old.language,
                        sounds,
                        sights,
                    };
                    let result = analyzer.analyze_slice(input).await;
                    (old, result)
                }
            })
            .buffer_unordered(self.config.ingest.analysis_concurrency)
            .collect()
            .await;
        for (old, result) in readings {
            let new = match result {
                Ok(mut new) => {
                    new.keyframe_aligned = old.keyframe_aligned;
                    new
                }
                Err(e) => {
                    report.failed.push((old.index, e.to_string()));
                    SliceAnalysis {
                        error: Some(failed_on_slice(analyzer.name(), &e)),
                        ..old
                    }
                }
            };
            let (doc, vector) =
                slice_description(self.providers.text_embedder.as_ref(), &new).await?;
            let replaced = new.error.is_none();
            let (store, id, generation) =
                (self.store.clone(), video.video_id.clone(), video.generation);
            blocking(move || store.amend_slice(&id, generation, &new, &doc, &vector)).await?;
            report.replaced += u32::from(replaced);
        }
        report.failed.sort();
        self.search.index_video(video_id).await?;
        Ok(report)
    }
}
