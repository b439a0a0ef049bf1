//! The video analyser's two readings of a stored video, which Direct and Sliced are and
//! Points and Template start from:
//!
//! - **Direct**: the analyser reads the whole video at once, with the whole video's median
//!   levels as its reference (what "reading the whole video" gives a model: context).
//! - **Sliced**: the video is cut into N-second slices, analysed concurrently (at most
//!   `concurrency` at a time), each with the running levels of the video before it, as a
//!   model would see a slice after the ones before; times are already absolute, and the
//!   redundant candidates slicing produces are merged afterwards.
//!
//! Offline, the analyser plays the VLM's role on the signals stored at ingest (loudness,
//! motion, scene cuts per 0.5 s window), so no video is decoded again; a VLM analyser
//! (Bedrock) gets each slice's source path and times through the same trait. A failed
//! slice is reported and skipped; the job fails only when every slice fails.
//!
//! No double pay: a slice ingest already analysed with the same analyser (name and
//! version) on the same span is reused from the store, not sent again, unless the request
//! asks for a fresh reading; its outcome says so and carries what the stored call cost.

use std::path::Path;

use futures_util::stream::{self, StreamExt};

use reelforge_core::error::{Error, Result};
use reelforge_core::segments::Segment;
use reelforge_models::analysis::{
    Baseline, Language, ModelUsage, SignalWindow, SliceAnalysis, SliceInput, VideoAnalyzer,
};
use reelforge_models::sound::SoundEvent;
use reelforge_models::vision::Sight;

use crate::catalog::VideoMaterial;

/// A video as the strategies read it.
pub struct Material<'a> {
    pub video_id: &'a str,
    pub source: &'a Path,
    pub duration_ms: i64,
    pub windows: &'a [SignalWindow],
    pub cut_points_ms: &'a [i64],
    /// Analyses stored at ingest, reused where one matches (empty: none to reuse).
    pub stored: &'a [SliceAnalysis],
    /// What the sound tagger heard over the whole video.
    pub sounds: &'a [SoundEvent],
    /// What the picture models saw over the whole video.
    pub sights: &'a [Sight],
    /// The language the analyser describes it in.
    pub language: Language,
}

impl<'a> Material<'a> {
    /// What the analyser reads of a stored video, to describe in `language`.
    pub fn of(v: &'a VideoMaterial, language: Language) -> Material<'a> {
        Material {
            video_id: &v.video.video_id,
            source: Path::new(&v.video.source_path),
            duration_ms: v.video.probe.duration_ms,
            windows: &v.windows,
            cut_points_ms: &v.cut_points_ms,
            stored: &v.analyses,
            sounds: &v.sounds,
            sights: &v.sights,
            language,
        }
    }

    /// The same, with nothing stored reused: every slice read afresh.
    pub fn fresh(self, fresh: bool) -> Material<'a> {
        match fresh {
            true => Material {
                stored: &[],
                ..self
            },
            false => self,
        }
    }

    /// A stored analysis `analyzer` made of exactly `span` in this language, if there is
    /// one.
    fn stored_for(&self, analyzer: &dyn VideoAnalyzer, span: (i64, i64)) -> Option<&SliceAnalysis> {
        self.stored.iter().find(|a| {
            (a.start_ms, a.end_ms) == span
                && a.analyzer == analyzer.name()
                && a.version == analyzer.version()
                && a.language == self.language
        })
    }

    /// `analyzer`'s reading of `input`: the stored one when it matches (`true`), else a
    /// call.
    async fn read(
        &self,
        analyzer: &dyn VideoAnalyzer,
        input: SliceInput<'_>,
    ) -> Result<(SliceAnalysis, bool)> {
        let span = (input.start_ms, input.end_ms);
        if let Some(stored) = self.stored_for(analyzer, span) {
            return Ok((stored.clone(), true));
        }
        Ok((analyzer.analyze_slice(input).await?, false))
    }
}

/// One analysed slice, as streamed to the caller.
#[derive(Debug, Clone)]
pub struct SliceOutcome {
    pub index: u32,
    pub start_ms: i64,
    pub end_ms: i64,
    pub model: String,
    /// The analyser's failure, when it failed on this slice.
    pub error: Option<String>,
    pub segments: Vec<Segment>,
    pub description: String,
    /// What the model's call cost, for remote models (for a reused analysis: what the
    /// stored call cost, not paid again).
    pub usage: Option<ModelUsage>,
    /// Read from the analysis ingest stored, not analysed again.
    pub reused: bool,
}

/// Slices of `[0, duration)` of `slice_ms` each (the last one shorter).
pub fn slices(duration_ms: i64, slice_ms: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < duration_ms {
        let end = (at + slice_ms).min(duration_ms);
        out.push((at, end));
        at = end;
    }
    out
}

fn median(mut v: Vec<f32>) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn to_segments(video_id: &str, a: &SliceAnalysis, reason: &str) -> Vec<Segment> {
    a.segments
        .iter()
        .map(|c| Segment {
            video_id: video_id.to_string(),
            start_ms: c.start_ms,
            end_ms: c.end_ms,
            score: c.score,
            priority: c.priority(),
            description: c.description.clone(),
            reason: if c.reason.is_empty() {
                reason.to_string()
            } else {
                format!("{reason}: {}", c.reason)
            },
            model: a.analyzer.clone(),
            similarity: None,
        })
        .collect()
}

fn input<'a>(
    m: &'a Material<'a>,
    index: u32,
    (start_ms, end_ms): (i64, i64),
    windows: &'a [SignalWindow],
    cuts: &'a [i64],
    baseline: Baseline,
) -> SliceInput<'a> {
    SliceInput {
        source: m.source,
        video_duration_ms: m.duration_ms,
        index,
        start_ms,
        end_ms,
        windows,
        cut_points_ms: cuts,
        baseline,
        language: m.language,
        sounds: m.sounds,
        sights: m.sights,
    }
}

fn window_range(windows: &[SignalWindow], (start, end): (i64, i64)) -> &[SignalWindow] {
    let a = windows.partition_point(|w| w.start_ms < start);
    let b = windows.partition_point(|w| w.start_ms < end);
    &windows[a..b]
}

/// Slices analysed at once when Direct reads a video longer than its analyser's span.
const LONG_VIDEO_CONCURRENCY: usize = 2;

/// Direct: one reading of the whole video; a video longer than the analyser reads well
/// at once (`max_span_ms`, e.g. Nova's 16 minutes at 1 fps) is read in equal slices.
pub async fn direct(
    analyzer: &dyn VideoAnalyzer,
    m: &Material<'_>,
    on_slice: &(dyn Fn(&SliceOutcome) + Send + Sync),
) -> Result<Vec<Segment>> {
    if let Some(max) = analyzer.max_span_ms().filter(|&max| m.duration_ms > max) {
        let n = (m.duration_ms + max - 1) / max;
        let slice_ms = (m.duration_ms + n - 1) / n;
        return sliced(analyzer, m, slice_ms, LONG_VIDEO_CONCURRENCY, on_slice).await;
    }
    let baseline = Baseline {
        loudness_db: median(m.windows.iter().map(|w| w.loudness_db).collect()),
        motion: median(m.windows.iter().map(|w| w.motion).collect()),
        windows: m.windows.len() as u32,
    };
    let span = (0, m.duration_ms);
    let (analysis, reused) = m
        .read(
            analyzer,
            input(m, 0, span, m.windows, m.cut_points_ms, baseline),
        )
        .await?;
    let segments = to_segments(m.video_id, &analysis, "whole-video reading");
    on_slice(&SliceOutcome {
        index: 0,
        start_ms: 0,
        end_ms: m.duration_ms,
        model: analysis.analyzer.clone(),
        error: None,
        segments: segments.clone(),
        description: analysis.description,
        usage: analysis.usage,
        reused,
    });
    Ok(segments)
}

/// Sliced: `slice_ms` slices, at most `concurrency` analysed at once; results stream in
/// the order they finish.
pub async fn sliced(
    analyzer: &dyn VideoAnalyzer,
    m: &Material<'_>,
    slice_ms: i64,
    concurrency: usize,
    on_slice: &(dyn Fn(&SliceOutcome) + Send + Sync),
) -> Result<Vec<Segment>> {
    let spans = slices(m.duration_ms, slice_ms);
    // Each slice's reference level is the running level of the video before it.
    let mut baselines = Vec::with_capacity(spans.len());
    let mut running = Baseline::start();
    for &span in &spans {
        baselines.push(running);
        running.absorb(window_range(m.windows, span));
    }
    let cuts: Vec<Vec<i64>> = spans
        .iter()
        .map(|&(s, e)| {
            m.cut_points_ms
                .iter()
                .copied()
                .filter(|&c| c >= s && c < e)
                .collect()
        })
        .collect();
    let total = spans.len();
    // Owned items: a borrowed one makes the stream's closure too general for `Send`.
    let items: Vec<(usize, (i64, i64))> = spans.iter().copied().enumerate().collect();
    let outcomes: Vec<SliceOutcome> = stream::iter(items)
        .map(|(i, span)| {
            let windows = window_range(m.windows, span);
            let slice_input = input(m, i as u32, span, windows, &cuts[i], baselines[i]);
            async move {
                let outcome = match m.read(analyzer, slice_input).await {
                    Ok((a, reused)) => SliceOutcome {
                        index: i as u32,
                        start_ms: span.0,
                        end_ms: span.1,
                        model: a.analyzer.clone(),
                        error: None,
                        segments: to_segments(m.video_id, &a, &format!("slice {}", i + 1)),
                        description: a.description,
                        usage: a.usage,
                        reused,
                    },
                    Err(e) => SliceOutcome {
                        index: i as u32,
                        start_ms: span.0,
                        end_ms: span.1,
                        model: analyzer.name().to_string(),
                        error: Some(e.to_string()),
                        segments: Vec::new(),
                        description: String::new(),
                        usage: None,
                        reused: false,
                    },
                };
                on_slice(&outcome);
                outcome
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let failed: Vec<&SliceOutcome> = outcomes.iter().filter(|o| o.error.is_some()).collect();
    if !outcomes.is_empty() && failed.len() == total {
        return Err(Error::Unavailable(format!(
            "every one of the {total} slices failed; the first: {}",
            failed[0].error.as_deref().unwrap_or("")
        )));
    }
    Ok(outcomes.into_iter().flat_map(|o| o.segments).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reelforge_core::BoxFuture;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    #[test]
    fn slices_cover_the_video_and_the_last_is_shorter() {
        assert_eq!(
            slices(65_000, 30_000),
            vec![(0, 30_000), (30_000, 60_000), (60_000, 65_000)]
        );
        assert_eq!(slices(30_000, 30_000), vec![(0, 30_000)]);
    }

    /// 100 s of even 0.5 s windows.
    fn flat_windows() -> Vec<SignalWindow> {
        (0..200)
            .map(|i| SignalWindow {
                start_ms: i * 500,
                loudness_db: -30.0,
                motion: 0.01,
                scene_cut: false,
            })
            .collect()
    }

    /// 100 s of video "v" with these windows and stored analyses, no cuts.
    fn material<'a>(windows: &'a [SignalWindow], stored: &'a [SliceAnalysis]) -> Material<'a> {
        Material {
            video_id: "v",
            source: Path::new("x.mp4"),
            duration_ms: 100_000,
            windows,
            cut_points_ms: &[],
            stored,
            sounds: &[],
            sights: &[],
            language: Language::English,
        }
    }

    fn probe(max: Option<i64>) -> Probe {
        Probe {
            max,
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            baselines: Mutex::new(vec![]),
        }
    }

    /// Fails on slice 1, proposes the middle second of every other slice, and records how
    /// many run at once.
    struct Probe {
        /// What it says it reads well at once.
        max: Option<i64>,
        running: AtomicUsize,
        most: AtomicUsize,
        baselines: Mutex<Vec<(u32, u32)>>,
    }

    impl VideoAnalyzer for Probe {
        fn name(&self) -> &str {
            "probe"
        }
        fn max_span_ms(&self) -> Option<i64> {
            self.max
        }
        fn analyze_slice<'a>(
            &'a self,
            input: SliceInput<'a>,
        ) -> BoxFuture<'a, Result<SliceAnalysis>> {
            Box::pin(async move {
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                self.running.fetch_sub(1, Ordering::SeqCst);
                self.baselines
                    .lock()
                    .unwrap()
                    .push((input.index, input.baseline.windows));
                if input.index == 1 {
                    return Err(Error::Unavailable("model timed out".into()));
                }
                let mid = (input.start_ms + input.end_ms) / 2;
                Ok(SliceAnalysis {
                    index: input.index,
                    start_ms: input.start_ms,
                    end_ms: input.end_ms,
                    highlight_score: 0.8,
                    motion_mean: 0.0,
                    loudness_mean_db: 0.0,
                    cut_points_ms: vec![],
                    segments: vec![reelforge_models::analysis::SegmentCandidate {
                        start_ms: mid - 500,
                        end_ms: mid + 500,
                        score: 0.8,
                        priority: 0,
                        description: format!("middle of {}", input.index),
                        reason: String::new(),
                    }],
                    description: String::new(),
                    analyzer: "probe".into(),
                    version: String::new(),
                    language: input.language,
                    keyframe_aligned: false,
                    usage: None,
                    error: None,
                })
            })
        }
    }

    #[tokio::test]
    async fn sliced_runs_bounded_concurrently_and_survives_a_failed_slice() {
        let windows = flat_windows();
        let m = material(&windows, &[]);
        let probe = probe(None);
        let seen = Mutex::new(Vec::new());
        let segs = sliced(&probe, &m, 10_000, 3, &|o| {
            seen.lock().unwrap().push((o.index, o.error.clone()))
        })
        .await
        .unwrap();
        assert_eq!(segs.len(), 9, "ten slices, one failed");
        assert_eq!(probe.most.load(Ordering::SeqCst), 3);
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), 10);
        assert!(seen
            .iter()
            .any(|(i, e)| *i == 1 && e.as_deref().unwrap().contains("timed out")));
        // Slice i's reference level has seen the 20 windows of each slice before it.
        for (i, w) in probe.baselines.into_inner().unwrap() {
            assert_eq!(w, i * 20);
        }
        assert!(segs
            .iter()
            .all(|s| s.model == "probe" && s.reason.starts_with("slice")));
    }

    #[tokio::test]
    async fn analyses_stored_by_the_same_analyser_on_the_same_span_are_reused() {
        let windows = flat_windows();
        let stored_as = |index: u32, analyzer: &str, version: &str| {
            let mut a = crate::store::test_slice(
                index,
                i64::from(index) * 10_000,
                i64::from(index + 1) * 10_000,
            );
            a.analyzer = analyzer.into();
            a.version = version.into();
            a.usage = Some(ModelUsage {
                input_tokens: 100,
                ..ModelUsage::default()
            });
            a
        };
        let in_chinese = {
            let mut a = stored_as(5, "probe", "");
            a.language = Language::Chinese;
            a
        };
        let stored = [
            stored_as(0, "probe", ""),
            stored_as(2, "probe", ""),
            // Another analyser, another version of the same one, the same one's reading
            // in another language: not reusable.
            stored_as(3, "signal-analyzer-v1", ""),
            stored_as(4, "probe", "prompt-0"),
            in_chinese,
        ];
        let m = material(&windows, &stored);
        let first = probe(None);
        let seen = Mutex::new(Vec::new());
        sliced(&first, &m, 10_000, 2, &|o| {
            seen.lock().unwrap().push((o.index, o.reused, o.usage))
        })
        .await
        .unwrap();
        let mut called: Vec<u32> = first
            .baselines
            .into_inner()
            .unwrap()
            .iter()
            .map(|(i, _)| *i)
            .collect();
        called.sort();
        assert_eq!(
            called,
            vec![1, 3, 4, 5, 6, 7, 8, 9],
            "slices 0 and 2 are not sent"
        );
        let mut seen = seen.into_inner().unwrap();
        seen.sort_by_key(|s| s.0);
        assert!(seen[0].1 && seen[2].1 && !seen[1].1 && !seen[3].1 && !seen[4].1 && !seen[5].1);
        assert_eq!(
            seen[0].2.unwrap().input_tokens,
            100,
            "what the stored call cost"
        );

        // Fresh: nothing reused.
        let again = probe(None);
        let fresh = Material { ..m }.fresh(true);
        sliced(&again, &fresh, 10_000, 2, &|o| assert!(!o.reused))
            .await
            .unwrap();
        assert_eq!(again.baselines.into_inner().unwrap().len(), 10);
    }

    #[tokio::test]
    async fn direct_reads_a_video_longer_than_the_analyser_span_in_equal_slices() {
        let m = material(&[], &[]);
        let seen = Mutex::new(Vec::new());
        let on_slice = |o: &SliceOutcome| seen.lock().unwrap().push((o.start_ms, o.end_ms));
        direct(&probe(Some(40_000)), &m, &on_slice).await.unwrap();
        let mut spans = std::mem::take(&mut *seen.lock().unwrap());
        spans.sort();
        assert_eq!(
            spans,
            vec![(0, 33_334), (33_334, 66_668), (66_668, 100_000)]
        );
        direct(&probe(Some(100_000)), &m, &on_slice).await.unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            vec![(0, 100_000)],
            "within the span: whole"
        );
    }
}
