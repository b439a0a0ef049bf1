//! One ingest, start to finish: decode once, turn samples into 0.5 s signal windows, hand
//! each slice to the analyser as soon as both streams have passed its end, describe clips
//! for matching, write each slice's records to a new store generation as soon as it is
//! done, and publish the generation at the end. Speech is transcribed slice by slice in a
//! worker that runs beside the decoder (a bounded queue holds the decoder back if speech
//! falls behind, so memory stays bounded); a sentence cut by a slice border is carried
//! into the next slice's call. Memory does not grow with video length beyond 16 bytes per
//! 0.5 s window.
//!
//! The analyser reads up to `ingest.analysis_concurrency` slices at once while decoding
//! goes on (a remote model's calls overlap each other and the decode); results are stored
//! in slice order. A slice the analyser fails on is kept with the offline signal
//! analyser's reading and its error (the rest of the video is not lost); the job fails
//! only when the analyser failed on every slice it was given.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::{FutureExt, Shared};
use futures_util::stream::{FuturesOrdered, StreamExt};
use tokio::sync::mpsc;

use crate::config::EngineConfig;
use crate::jobs::IngestSink;
use crate::store::IngestEvent;
use crate::store::{self, DocRecord, EmbeddingKind, FrameRecord, VideoRecord, VideoWriter};
use crate::util::blocking;
use reelforge_core::error::{Error, Result};
use reelforge_media::decode::AUDIO_WINDOW_MS;
use reelforge_media::signals::SILENCE_DB;
use reelforge_media::visual::{self, ClipAccumulator};
use reelforge_media::{self as media, DecodeSpec, Sample};
use reelforge_models::analysis::{
    Baseline, SignalAnalyzer, SignalWindow, SliceAnalysis, SliceInput, VideoAnalyzer,
};
use reelforge_models::sound::{self, SoundEvent, SoundTagger, SoundWindow};
use reelforge_models::vision::{SceneTagger, Sight, TextReader};

use super::seeing::Seers;
use reelforge_models::{
    EmbedPurpose, ImageTextEmbedder, SpeechAudio, TextEmbedder, Transcriber, TranscriptSegment,
};

pub use crate::store::PreparedIngest;

pub struct Pipeline<'a> {
    pub config: &'a EngineConfig,
    pub analyzer: &'a dyn VideoAnalyzer,
    pub text_embedder: &'a dyn TextEmbedder,
    /// `None`: speech is not transcribed.
    pub transcriber: Option<&'a dyn Transcriber>,
    /// `None`: thumbnails are not embedded.
    pub image_embedder: Option<&'a dyn ImageTextEmbedder>,
    /// `None`: sound is not tagged (and speech is gated by loudness alone).
    pub sound_tagger: Option<Arc<dyn SoundTagger>>,
    /// `None`: pictures are not tagged.
    pub scene_tagger: Option<Arc<dyn SceneTagger>>,
    /// `None`: on-screen text is not read.
    pub text_reader: Option<Arc<dyn TextReader>>,
    /// Where the committed video is indexed for search before `Done` (`None`: not here).
    pub search: Option<&'a crate::search::Search>,
}

/// Thumbnails per image-embedding call.
const IMAGE_BATCH: usize = 16;

/// A slice handed to the analyser, with what its reading was given.
struct Read {
    slice: store::PlannedSlice,
    windows: Vec<SignalWindow>,
    cuts: Vec<i64>,
    baseline: Baseline,
    sounds: Vec<SoundEvent>,
    sights: Vec<Sight>,
    result: Result<SliceAnalysis>,
}

/// A slice's audio being tagged on a task of its own (so neither the decoder nor the
/// readings wait to start it); the slice's reading and the speech worker both await it.
/// `None`: tagging failed (logged): the slice keeps no sound events and its speech is
/// not gated by voice.
type Heard = Shared<Hearing>;
type Hearing = Pin<Box<dyn Future<Output = Option<Arc<Vec<SoundWindow>>>> + Send>>;

/// Tags `samples` (starting at `from_ms`, in slice `index`) on a task of its own.
fn tag(tagger: Arc<dyn SoundTagger>, from_ms: i64, samples: Vec<f32>, index: u32) -> Heard {
    let task = tokio::spawn(async move {
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        tagger.tag(from_ms, samples).await
    });
    let heard: Hearing = Box::pin(async move {
        let tagged = task
            .await
            .unwrap_or_else(|e| Err(Error::internal(format!("sound tagging: {e}"))));
        match tagged {
            Ok(windows) => Some(Arc::new(windows)),
            Err(e) => {
                tracing::warn!(
                    slice = index,
                    "sound tagging failed: {e}; the slice keeps no sound events"
                );
                None
            }
        }
    });
    heard.shared()
}

/// Slices being read, in slice order.
type Reading<'a> = FuturesOrdered<Pin<Box<dyn Future<Output = Read> + Send + 'a>>>;

/// How the analyser fared over the slices it was given.
#[derive(Default)]
struct Failures {
    given: u32,
    failed: u32,
    first: Option<String>,
}

/// One slice's audio on its way to the speech worker.
struct SpeechJob {
    index: u32,
    start_ms: i64,
    samples: Vec<f32>,
    is_final: bool,
    /// What the sound tagger hears in the slice (`None`: no tagger).
    heard: Option<Heard>,
    /// What it hears in the audio before the slice that the job also carries (a resumed
    /// job's speech starts where its last run settled, inside an earlier slice).
    heard_before: Option<Heard>,
}

/// What the speech worker did over the whole video.
#[derive(Default)]
struct SpeechStats {
    chunks: u32,
    segments: u32,
    skipped_silent_ms: i64,
    decoded_ms: i64,
    /// The transcript's opening words, for the summary.
    opening: Vec<String>,
    /// How many words `opening` holds, a Chinese or Japanese character counting as one
    /// (those languages put no spaces between words).
    opening_words: usize,
}

impl SpeechStats {
    /// Counts one slice's stored transcript (`text`: its segments as one text).
    fn add(&mut self, segments: &[TranscriptSegment], text: &str) {
        self.chunks += 1;
        self.segments += segments.len() as u32;
        for word in text.split_whitespace() {
            let room = SUMMARY_SPEECH_WORDS.saturating_sub(self.opening_words);
            if room == 0 {
                break;
            }
            let cjk = word.chars().filter(|&c| is_cjk(c)).count();
            if cjk == 0 {
                self.opening.push(word.to_string());
                self.opening_words += 1;
                continue;
            }
            let mut taken = String::new();
            let mut counted = 0;
            for c in word.chars() {
                if is_cjk(c) {
                    if counted == room {
                        break;
                    }
                    counted += 1;
                }
                taken.push(c);
            }
            self.opening.push(taken);
            self.opening_words += counted;
        }
    }
}

/// Kana and Han: scripts written without spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF)
}

/// Samples per millisecond of the decoder's 16 kHz audio.
const SAMPLES_PER_MS: i64 = reelforge_media::decode::AUDIO_RATE as i64 / 1000;
/// Slices queued for the speech worker before the decoder waits for it.
const SPEECH_QUEUE: usize = 2;
/// Words of the transcript that go into the summary.
const SUMMARY_SPEECH_WORDS: usize = 40;

/// Suppress cuts closer than this to the previous one (flashes, strobe).
const MIN_CUT_SPACING_MS: i64 = 300;
/// How much media time passes between progress events.
const PROGRESS_EVERY_MS: i64 = 2_000;

#[derive(Default, Clone, Copy)]
struct WindowAcc {
    motion_sum: f32,
    frames: u32,
    loudness_db: Option<f32>,
    scene_cut: bool,
}

impl WindowAcc {
    fn window(&self, index: usize) -> SignalWindow {
        SignalWindow {
            start_ms: index as i64 * AUDIO_WINDOW_MS,
            loudness_db: self.loudness_db.unwrap_or(SILENCE_DB),
            motion: if self.frames == 0 {
                0.0
            } else {
                self.motion_sum / self.frames as f32
            },
            scene_cut: self.scene_cut,
        }
    }
}

/// Live state of the analysis as samples arrive.
struct Analysis<'p> {
    prepared: &'p PreparedIngest,
    /// Spacing of analysis frames.
    frame_ms: i64,
    windows: Vec<WindowAcc>,
    cut_points: Vec<i64>,
    video_pos_ms: i64,
    audio_pos_ms: i64,
    video_done: bool,
    audio_done: bool,
    next_to_start: usize,
    /// The next slice to hand to the analyser.
    next_to_read: usize,
    /// Slices before this one are stored.
    next_to_finish: usize,
    baseline: Baseline,
    clip: Option<ClipAccumulator>,
    /// Finished clip descriptors not yet written.
    clips: Vec<(u32, Vec<f32>)>,
    clips_written: u32,
    last_progress_ms: i64,
    /// Audio not yet handed to the speech worker, and where it starts.
    speech_samples: Vec<f32>,
    speech_start_ms: i64,
    /// `None` when speech is not transcribed, and once the last slice is sent.
    speech_tx: Option<mpsc::Sender<SpeechJob>>,
    /// The strongest slices so far, for the summary: (score, start_ms, description).
    strongest: Vec<(f32, i64, String)>,
    /// Slices before this one were analysed and stored by an earlier run of the job.
    analysed: usize,
    /// The next slice whose audio goes to the speech worker.
    speech_next: u32,
    /// `None`: sound is not tagged.
    tagger: Option<Arc<dyn SoundTagger>>,
    /// Audio not yet handed to the tagger, and where it starts (`None`: none yet).
    sound_samples: Vec<f32>,
    sound_start_ms: Option<i64>,
    /// The voice in the audio before the speech worker's first slice, heard for it alone.
    speech_lead: Option<Heard>,
    /// What was heard in the slice before the one being heard.
    last_heard: Option<Heard>,
    /// `None`: no picture model looks at the thumbnails.
    seers: Option<Seers>,
    /// The clip the decode starts in when it resumes mid-video: it is stored already, and
    /// its first frame has no predecessor to measure motion against, so it is not
    /// written again.
    kept_clip: Option<u32>,
}

/// Where a job resumes: what an earlier run stored, and where decoding restarts.
#[derive(Debug)]
pub struct Resume {
    pub written: store::Written,
    /// Media time the decode starts at (on every sample grid).
    pub decode_from_ms: i64,
}

impl Resume {
    /// Plans a resume over what `written` holds. `thumbnails_kept` is false when the
    /// thumbnails the earlier run wrote are gone (the decode then starts at 0 to write
    /// them again, still skipping every analysed slice).
    pub fn plan(
        p: &PreparedIngest,
        written: store::Written,
        transcribes: bool,
        config: &crate::config::IngestConfig,
        thumbnails_kept: bool,
    ) -> Resume {
        let analysed = written.slices.len();
        let first_unanalysed = p
            .slices
            .get(analysed)
            .map_or(p.probe.duration_ms, |s| s.start_ms);
        let mut earliest = first_unanalysed;
        if transcribes {
            let speech = written.speech.unwrap_or(store::SpeechMark {
                next_index: 0,
                from_ms: 0,
            });
            if (speech.next_index as usize) < p.slices.len() {
                earliest = earliest.min(speech.from_ms);
            }
        }
        // The clip holding the last analysed moment may not have been written: start one
        // clip before it, so it is described again from its first frame.
        let clip_ms = p.clip_ms.max(1);
        let target = ((earliest - 1).max(0) / clip_ms) * clip_ms - clip_ms;
        let mut from = if thumbnails_kept { target.max(0) } else { 0 };
        from -= from % 1000;
        while from > 0 && !media::decode::on_grids(from, config.analysis_fps, config.thumbnail_fps)
        {
            from -= 1000;
        }
        Resume {
            written,
            decode_from_ms: from.max(0),
        }
    }
}

impl<'a> Pipeline<'a> {
    /// Analyses `p` into `writer`'s generation and commits it, reporting to `sink` (after
    /// the job manager's `Accepted`). Dropping the future stops ffmpeg; on failure the
    /// caller aborts `writer` and removes `staging_dir`.
    pub async fn run(
        &self,
        p: &PreparedIngest,
        staging_dir: &Path,
        writer: &VideoWriter,
        sink: &dyn IngestSink,
        resume: Option<Resume>,
    ) -> Result<()> {
        let started = Instant::now();
        sink.emit(IngestEvent::Probe {
            probe: p.probe.clone(),
        });

        let thumbs_staging = staging_dir.join("thumbs");
        tokio::fs::create_dir_all(&thumbs_staging).await?;
        let ingest = &self.config.ingest;
        let transcriber = self.transcriber.filter(|_| p.probe.has_audio());
        let spec = DecodeSpec {
            ffmpeg: &self.config.ffmpeg,
            source: &p.source,
            analysis_fps: ingest.analysis_fps,
            thumbnails_dir: &thumbs_staging,
            thumbnail_fps: ingest.thumbnail_fps,
            thumbnail_height: ingest.thumbnail_height,
            with_audio: p.probe.has_audio(),
            keep_samples: transcriber.is_some() || self.sound_tagger.is_some(),
            start_ms: resume.as_ref().map_or(0, |r| r.decode_from_ms),
        };
        let (speech_tx, speech_rx) = mpsc::channel::<SpeechJob>(SPEECH_QUEUE);
        let (tx, rx) = mpsc::channel::<Sample>(256);
        let mut state = Analysis::new(p, ingest.analysis_fps);
        state.tagger = self.sound_tagger.clone().filter(|_| p.probe.has_audio());
        state.seers = Seers::new(
            self.scene_tagger.clone(),
            self.text_reader.clone(),
            &thumbs_staging,
            ingest.thumbnail_fps,
            (ingest.picture_every, ingest.text_every),
            p.probe.duration_ms,
        );
        // Set when the decode ends, fails or is dropped (a cancelled job): the picture
        // tasks stop waiting for thumbnails then.
        let decode_ended = state.seers.as_ref().map(|s| s.decode_ended());
        let decode = async move {
            let _ended = decode_ended;
            media::decode(spec, tx).await
        };
        let mut speech_before = SpeechStats::default();
        if let Some(resume) = resume {
            speech_before = state.resume(resume, transcriber.is_some());
        }
        state.speech_tx = transcriber.map(|_| speech_tx);
        let mut reading: Reading<'_> = FuturesOrdered::new();
        let mut failures = Failures::default();
        let analyse = async {
            let consume = async {
                // Owned here, so a consumer failure drops the receiver and the decoder
                // stops instead of blocking forever on a full channel.
                let mut rx = rx;
                loop {
                    // A sample, or a slice's reading done (the readings go on meanwhile).
                    let next = tokio::select! {
                        sample = rx.recv() => Ok(sample),
                        Some(read) = reading.next(), if !reading.is_empty() => Err(read),
                    };
                    match next {
                        Ok(Some(sample)) => {
                            state.take(sample, ingest.scene_cut_threshold, sink);
                            self.read_ready_slices(
                                &mut state,
                                &mut reading,
                                writer,
                                sink,
                                &mut failures,
                            )
                            .await?;
                        }
                        Ok(None) => break,
                        Err(read) => {
                            self.store_slice(&mut state, read, writer, sink, &mut failures)
                                .await?
                        }
                    }
                }
                Ok::<_, Error>(())
            };
            let (decoded, consumed) = tokio::join!(decode, consume);
            // A consumer failure makes the decoder fail too (broken pipe): report the
            // cause.
            consumed?;
            decoded?;
            state.video_done = true;
            state.audio_done = true;
            self.read_ready_slices(&mut state, &mut reading, writer, sink, &mut failures)
                .await?;
            while let Some(read) = reading.next().await {
                self.store_slice(&mut state, read, writer, sink, &mut failures)
                    .await?;
            }
            if failures.given > 0 && failures.failed == failures.given {
                return Err(Error::Unavailable(format!(
                    "{} failed on every one of the {} slices it was given; the first: {}",
                    self.analyzer.name(),
                    failures.given,
                    failures.first.as_deref().unwrap_or("")
                )));
            }
            // Closes the speech queue (the last slice was sent as final).
            state.speech_tx = None;
            check_decoded_length(p, state.video_pos_ms)?;
            if let Some(clip) = state.clip.take() {
                state.push_clip(clip);
            }
            write_clips(writer, &mut state).await
        };
        let speech = async {
            match transcriber {
                Some(t) => {
                    self.transcribe_slices(
                        t,
                        p.language.clone(),
                        speech_rx,
                        writer,
                        sink,
                        speech_before,
                    )
                    .await
                }
                None => Ok(SpeechStats::default()),
            }
        };
        // The first failure stops both (dropping the decoder kills ffmpeg).
        let ((), speech) = tokio::try_join!(analyse, speech)?;

        let analysis_seconds = started.elapsed().as_secs_f64();
        let slice_count = state.next_to_finish as u32;
        let clip_count = state.clips_written;
        let summary = summarise(p, &state.strongest, &speech);
        let embedded = self
            .text_embedder
            .embed(std::slice::from_ref(&summary), EmbedPurpose::Index)
            .await?;
        let (w, vector) = (writer.clone(), embedded[0].vector.clone());
        blocking(move || w.put_embedding(EmbeddingKind::Summary, 0, &vector)).await?;
        let transcriber_name = transcriber
            .map(|t| t.name().to_string())
            .unwrap_or_default();
        let (video, frame_images) = self
            .finish(
                p,
                writer,
                &thumbs_staging,
                slice_count,
                summary,
                transcriber_name,
            )
            .await?;
        remove_other_thumbnail_dirs(&video).await;
        if let Some(search) = self.search {
            // The video is committed: a failure here must not undo that. The index notices
            // the missing generation at the next start and catches up.
            let indexed = search.index_video(&p.video_id).await;
            match indexed {
                Ok(n) => tracing::debug!("{}: {n} search documents", p.filename),
                Err(e) => tracing::warn!(
                    "{}: stored but not yet searchable ({e}); indexed when the search backend answers again, or at the next start",
                    p.filename
                ),
            }
        }

        sink.emit(IngestEvent::EmbeddingsStored {
            kind: visual::KIND.to_string(),
            count: clip_count,
            dimensions: visual::DIMENSIONS as u32,
        });
        let text_dims = self.text_embedder.dimensions() as u32;
        let mut stored = vec![("text", slice_count)];
        if transcriber.is_some() {
            stored.push(("transcript", speech.chunks));
        }
        stored.push(("summary", 1));
        for (kind, count) in stored {
            sink.emit(IngestEvent::EmbeddingsStored {
                kind: format!("{kind} ({})", self.text_embedder.name()),
                count,
                dimensions: text_dims,
            });
        }
        if let Some(e) = self.image_embedder {
            sink.emit(IngestEvent::EmbeddingsStored {
                kind: format!("frame_image ({})", e.name()),
                count: frame_images,
                dimensions: e.dimensions() as u32,
            });
        }
        if transcriber.is_some() {
            tracing::info!(
                "{}: {} transcript segments; speech model read {:.1} s, skipped {:.1} s as quiet",
                p.filename,
                speech.segments,
                speech.decoded_ms as f64 / 1000.0,
                speech.skipped_silent_ms as f64 / 1000.0
            );
        }
        sink.emit(IngestEvent::Done {
            video_id: p.video_id.clone(),
            already_ingested: false,
            slice_count,
            analysis_seconds,
            realtime_factor: p.probe.duration_ms as f64 / 1000.0 / analysis_seconds.max(1e-9),
        });
        Ok(())
    }

    /// Hands each slice both streams have passed to the analyser (at most
    /// `analysis_concurrency` in flight: beyond, the oldest is stored first), and its
    /// audio to the speech worker. Slices an earlier run of the job stored only get their
    /// speech.
    async fn read_ready_slices<'s>(
        &'s self,
        state: &mut Analysis<'s>,
        reading: &mut Reading<'s>,
        writer: &VideoWriter,
        sink: &dyn IngestSink,
        failures: &mut Failures,
    ) -> Result<()> {
        let p: &'s PreparedIngest = state.prepared;
        while let Some(slice) = p.slices.get(state.next_to_read).copied() {
            if !state.passed(slice.end_ms) {
                break;
            }
            let heard = state.hear(&slice);
            if (slice.index as usize) < state.analysed {
                // Stored by an earlier run of the job; only its speech is still to do.
                if slice.index >= state.speech_next {
                    state.send_speech(slice.index, slice.end_ms, heard).await?;
                }
                state.next_to_read += 1;
                state.next_to_finish += 1;
                continue;
            }
            while reading.len() >= self.config.ingest.analysis_concurrency {
                let read = reading.next().await.expect("a reading in flight");
                self.store_slice(state, read, writer, sink, failures)
                    .await?;
            }
            state.start_slices_through(slice.end_ms - 1, sink);
            let windows = state.windows_in(slice.start_ms, slice.end_ms);
            let cuts: Vec<i64> = state
                .cut_points
                .iter()
                .copied()
                .filter(|&c| c >= slice.start_ms && c < slice.end_ms)
                .collect();
            let baseline = state.baseline;
            // The next slice's reference level has seen this one's signals.
            state.update_baseline(&windows);
            let analyzer = self.analyzer;
            let heard_here = heard.clone();
            let seen = state
                .seers
                .as_ref()
                .map(|s| s.see(slice.start_ms, slice.end_ms, slice.index));
            reading.push_back(Box::pin(async move {
                let sounds = match heard_here {
                    Some(heard) => heard.await.map_or(Vec::new(), |w| sound::events(&w)),
                    None => Vec::new(),
                };
                let sights = match seen {
                    Some(seen) => seen.await.as_ref().clone(),
                    None => Vec::new(),
                };
                let input = slice_input(p, &slice, &windows, &cuts, baseline, &sounds, &sights);
                let result = analyzer.analyze_slice(input).await;
                Read {
                    slice,
                    windows,
                    cuts,
                    baseline,
                    sounds,
                    sights,
                    result,
                }
            }));
            if slice.index >= state.speech_next {
                state.send_speech(slice.index, slice.end_ms, heard).await?;
            }
            state.next_to_read += 1;
        }
        Ok(())
    }

    /// Stores one slice's reading (the next in order) and reports it: its description
    /// embedded, its records flushed before its `SliceFinished`. A failed reading is kept
    /// as the offline analyser's, with the error.
    async fn store_slice(
        &self,
        state: &mut Analysis<'_>,
        read: Read,
        writer: &VideoWriter,
        sink: &dyn IngestSink,
        failures: &mut Failures,
    ) -> Result<()> {
        let Read {
            slice,
            windows,
            cuts,
            baseline,
            sounds,
            sights,
            result,
        } = read;
        failures.given += 1;
        let mut analysis = match result {
            Ok(a) => a,
            // Cancelling the job is not the model failing.
            Err(e @ Error::Cancelled(_)) => return Err(e),
            Err(e) => {
                let error = failed_on_slice(self.analyzer.name(), &e);
                tracing::warn!(
                    slice = slice.index,
                    "{error}; kept with the offline reading"
                );
                failures.failed += 1;
                failures.first.get_or_insert_with(|| e.to_string());
                let input = slice_input(
                    state.prepared,
                    &slice,
                    &windows,
                    &cuts,
                    baseline,
                    &sounds,
                    &sights,
                );
                SliceAnalysis {
                    error: Some(error),
                    ..SignalAnalyzer.analyze(&input)
                }
            }
        };
        analysis.keyframe_aligned = slice.keyframe_aligned;
        state.remember_strongest(&analysis);
        let (doc, vector) = slice_description(self.text_embedder, &analysis).await?;
        let (w, record) = (writer.clone(), analysis.clone());
        blocking(move || {
            w.put_slice(&record, &windows, &doc)?;
            if !sounds.is_empty() {
                w.put_sounds(record.index, &sounds)?;
            }
            if !sights.is_empty() {
                w.put_sights(record.index, &sights)?;
            }
            w.put_embedding(EmbeddingKind::Text, record.index, &vector)?;
            w.flush()
        })
        .await?;
        write_clips(writer, state).await?;
        sink.emit(IngestEvent::SliceFinished { analysis });
        state.next_to_finish += 1;
        Ok(())
    }

    /// The speech worker: transcribes each slice's audio as it arrives (with the unsettled
    /// end of the previous slice in front), stores the segments and an embedding of the
    /// slice's transcript, and reports them.
    async fn transcribe_slices(
        &self,
        transcriber: &dyn Transcriber,
        language: Option<String>,
        mut jobs: mpsc::Receiver<SpeechJob>,
        writer: &VideoWriter,
        sink: &dyn IngestSink,
        before: SpeechStats,
    ) -> Result<SpeechStats> {
        let mut stats = before;
        let mut carry: Option<(i64, Vec<f32>)> = None;
        // Where a voice was heard, from the carried audio on (`None`: no sound tagger,
        // speech is gated by loudness alone).
        let mut voiced: Option<Vec<(i64, i64)>> = None;
        while let Some(job) = jobs.recv().await {
            if let Some(heard) = &job.heard {
                let from = carry.as_ref().map_or(job.start_ms, |(start, _)| *start);
                let mut heard_all = Vec::new();
                for h in job.heard_before.iter().chain([heard]) {
                    heard_all.push(h.clone().await);
                }
                if heard_all.iter().all(Option::is_some) {
                    let spans = voiced.get_or_insert_with(Vec::new);
                    spans.retain(|&(_, end)| end > from);
                    for windows in heard_all.into_iter().flatten() {
                        sound::add_voiced(spans, &windows);
                    }
                } else {
                    voiced = None;
                }
            }
            let (start_ms, samples) = match carry.take() {
                Some((start, mut earlier)) => {
                    earlier.extend_from_slice(&job.samples);
                    (start, earlier)
                }
                None => (job.start_ms, job.samples),
            };
            let end_ms = start_ms + samples.len() as i64 / SAMPLES_PER_MS;
            let out = transcriber
                .transcribe(SpeechAudio {
                    start_ms,
                    samples: samples.clone(),
                    is_final: job.is_final,
                    language: language.clone(),
                    voiced: voiced.clone(),
                })
                .await?;
            if !job.is_final && out.settled_ms < end_ms {
                let from = ((out.settled_ms - start_ms).max(0) * SAMPLES_PER_MS) as usize;
                carry = Some((out.settled_ms, samples[from.min(samples.len())..].to_vec()));
            }
            stats.skipped_silent_ms += out.skipped_silent_ms;
            stats.decoded_ms += out.decoded_ms;
            let mark = store::SpeechMark {
                next_index: job.index + 1,
                from_ms: carry.as_ref().map_or(end_ms, |(from, _)| *from),
            };
            let segments = out.segments;
            if segments.is_empty() {
                let w = writer.clone();
                blocking(move || w.put_speech_mark(&mark)).await?;
            } else {
                let text = transcript_text(&segments);
                stats.add(&segments, &text);
                let embedded = self
                    .text_embedder
                    .embed(&[text], EmbedPurpose::Index)
                    .await?;
                let vector = embedded[0].vector.clone();
                let (w, stored) = (writer.clone(), segments.clone());
                blocking(move || {
                    w.put_transcript(job.index, &stored)?;
                    w.put_embedding(EmbeddingKind::Transcript, job.index, &vector)?;
                    w.put_speech_mark(&mark)
                })
                .await?;
            }
            sink.emit(IngestEvent::SliceTranscript {
                index: job.index,
                segments,
                skipped_silent_ms: out.skipped_silent_ms,
                decoded_ms: out.decoded_ms,
            });
        }
        Ok(stats)
    }

    /// Moves thumbnails (and an upload) into place, records (and, with an image embedder,
    /// embeds) the thumbnails, and commits. Returns the video and the thumbnails embedded.
    async fn finish(
        &self,
        p: &PreparedIngest,
        writer: &VideoWriter,
        thumbs_staging: &Path,
        slice_count: u32,
        summary: String,
        transcriber: String,
    ) -> Result<(VideoRecord, u32)> {
        let media_dir = self.config.data_dir.join("media").join(&p.video_id);
        tokio::fs::create_dir_all(&media_dir).await?;
        let thumbs_dir = media_dir.join(format!("thumbs-{}", p.job_id));
        // An earlier run of this job killed between this move and its commit left its
        // thumbnails here; this run decoded them again into staging, so they give way
        // (a directory is not renamed onto a non-empty one).
        match tokio::fs::remove_dir_all(&thumbs_dir).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        tokio::fs::rename(thumbs_staging, &thumbs_dir).await?;
        let frames = list_thumbnails(&thumbs_dir, self.config.ingest.thumbnail_fps).await?;
        let frame_images = match self.image_embedder {
            Some(e) => {
                self.embed_thumbnails(e, &thumbs_dir, writer, frames.len())
                    .await?
            }
            None => 0,
        };
        let source_path = match &p.keep_source_at {
            Some(dest) => {
                tokio::fs::rename(&p.source, dest).await?;
                dest.clone()
            }
            None => p.source.clone(),
        };
        let video = VideoRecord {
            video_id: p.video_id.clone(),
            tenant: p.tenant.clone(),
            filename: p.filename.clone(),
            source_path: source_path.display().to_string(),
            size_bytes: p.size_bytes as i64,
            sha256: p.sha256.clone(),
            probe: p.probe.clone(),
            slice_ms: p.slice_ms,
            clip_ms: p.clip_ms,
            slice_count,
            analyzer: self.analyzer.name().to_string(),
            ingested_at_unix_ms: store::now_unix_ms(),
            thumbnails_dir: thumbs_dir.display().to_string(),
            generation: writer.generation(),
            text_embedder: self.text_embedder.name().to_string(),
            text_dimensions: self.text_embedder.dimensions() as u32,
            transcriber,
            summary,
        };
        let (w, slices, record) = (writer.clone(), p.slices.clone(), video.clone());
        let subtitles = p.subtitles.clone();
        blocking(move || {
            if !subtitles.is_empty() {
                w.put_subtitles(&subtitles)?;
            }
            // Each thumbnail goes to the slice it starts in (past the end: the last slice).
            let mut per_slice: Vec<Vec<FrameRecord>> = vec![Vec::new(); slices.len()];
            for frame in frames {
                let i = slices
                    .partition_point(|s| s.start_ms <= frame.t_ms)
                    .saturating_sub(1);
                per_slice[i].push(frame);
            }
            for (slice, in_slice) in slices.iter().zip(&per_slice) {
                w.put_frames(slice.index, in_slice)?;
            }
            w.commit(record)
        })
        .await?;
        Ok((video, frame_images))
    }

    /// Embeds every thumbnail, in time order, a batch at a time.
    async fn embed_thumbnails(
        &self,
        embedder: &dyn ImageTextEmbedder,
        dir: &Path,
        writer: &VideoWriter,
        expected: usize,
    ) -> Result<u32> {
        let mut reader =
            media::images::ThumbnailReader::open(&self.config.ffmpeg, dir, embedder.image_size())?;
        let mut read = 0u32;
        loop {
            let images = reader.next_batch(IMAGE_BATCH).await?;
            if images.is_empty() {
                break;
            }
            let vectors = embedder.embed_images(&images).await?;
            let (w, first) = (writer.clone(), read);
            read += vectors.len() as u32;
            blocking(move || {
                for (i, v) in vectors.iter().enumerate() {
                    w.put_embedding(EmbeddingKind::FrameImage, first + i as u32, v)?;
                }
                Ok(())
            })
            .await?;
        }
        reader.finish().await?;
        if read as usize != expected {
            return Err(Error::internal(format!(
                "{expected} thumbnails were written but {read} read back"
            )));
        }
        Ok(read)
    }
}

/// A slice's description as its search document, and that document's text vector.
pub(super) async fn slice_description(
    embedder: &dyn TextEmbedder,
    analysis: &SliceAnalysis,
) -> Result<(DocRecord, Vec<f32>)> {
    let doc = DocRecord {
        source: "slice_description".into(),
        start_ms: analysis.start_ms,
        end_ms: analysis.end_ms,
        text: analysis.description.clone(),
    };
    let vector = embedder
        .embed(std::slice::from_ref(&doc.text), EmbedPurpose::Index)
        .await?
        .into_iter()
        .next()
        .map(|e| e.vector)
        .unwrap_or_default();
    Ok((doc, vector))
}

/// A slice analysis's `error` when `analyzer` failed on the slice.
pub(super) fn failed_on_slice(analyzer: &str, e: &Error) -> String {
    format!("{analyzer} failed on this slice: {e}")
}

/// What the analyser is given for `slice`.
fn slice_input<'a>(
    p: &'a PreparedIngest,
    slice: &store::PlannedSlice,
    windows: &'a [SignalWindow],
    cuts: &'a [i64],
    baseline: Baseline,
    sounds: &'a [SoundEvent],
    sights: &'a [Sight],
) -> SliceInput<'a> {
    SliceInput {
        source: &p.source,
        video_duration_ms: p.probe.duration_ms,
        index: slice.index,
        start_ms: slice.start_ms,
        end_ms: slice.end_ms,
        windows,
        cut_points_ms: cuts,
        baseline,
        language: p.descriptions,
        sounds,
        sights,
    }
}

/// Writes the clip descriptors finished so far.
async fn write_clips(writer: &VideoWriter, state: &mut Analysis<'_>) -> Result<()> {
    if state.clips.is_empty() {
        return Ok(());
    }
    let clips = std::mem::take(&mut state.clips);
    state.clips_written += clips.len() as u32;
    let w = writer.clone();
    blocking(move || {
        for (owner, vector) in &clips {
            w.put_embedding(EmbeddingKind::VisualDescriptor, *owner, vector)?;
        }
        Ok(())
    })
    .await
}

impl<'p> Analysis<'p> {
    fn new(prepared: &'p PreparedIngest, analysis_fps: f64) -> Self {
        Analysis {
            prepared,
            frame_ms: (1000.0 / analysis_fps).round() as i64,
            windows: Vec::new(),
            cut_points: Vec::new(),
            video_pos_ms: 0,
            audio_pos_ms: 0,
            video_done: false,
            audio_done: !prepared.probe.has_audio(),
            next_to_start: 0,
            next_to_read: 0,
            next_to_finish: 0,
            baseline: Baseline::start(),
            clip: None,
            clips: Vec::new(),
            clips_written: 0,
            last_progress_ms: 0,
            speech_samples: Vec::new(),
            speech_start_ms: 0,
            speech_tx: None,
            strongest: Vec::new(),
            analysed: 0,
            speech_next: 0,
            tagger: None,
            sound_samples: Vec::new(),
            sound_start_ms: None,
            speech_lead: None,
            last_heard: None,
            seers: None,
            kept_clip: None,
        }
    }

    /// Takes up where an earlier run stopped: the analysed slices' windows feed the
    /// baseline and the summary as they did then, and decoding starts at the resume
    /// point. Returns what speech had done so far.
    fn resume(&mut self, resume: Resume, transcribes: bool) -> SpeechStats {
        let from = resume.decode_from_ms;
        let written = resume.written;
        self.analysed = written.slices.len();
        for (analysis, windows) in &written.slices {
            self.update_baseline(windows);
            self.remember_strongest(analysis);
        }
        self.speech_next = if transcribes {
            written.speech.map_or(0, |m| m.next_index)
        } else {
            self.prepared.slices.len() as u32
        };
        self.speech_start_ms = written.speech.map_or(0, |m| m.from_ms);
        self.next_to_start = self.analysed;
        self.next_to_read = self.analysed.min(self.speech_next as usize);
        self.next_to_finish = self.next_to_read;
        self.video_pos_ms = from;
        self.audio_pos_ms = from;
        self.last_progress_ms = from;
        if from > 0 {
            let first = (from / self.prepared.clip_ms) as u32;
            self.kept_clip = written.clips.contains(&first).then_some(first);
            self.clips_written = written.clips.iter().filter(|&&c| c <= first).count() as u32;
        }
        let mut stats = SpeechStats::default();
        for (index, segments) in &written.transcripts {
            if *index >= self.speech_next || segments.is_empty() {
                continue;
            }
            stats.add(segments, &transcript_text(segments));
        }
        stats
    }

    /// Hands the audio up to `end_ms` to the speech worker (waiting while it is behind).
    async fn send_speech(&mut self, index: u32, end_ms: i64, heard: Option<Heard>) -> Result<()> {
        let Some(tx) = &self.speech_tx else {
            return Ok(());
        };
        let is_final = index as usize + 1 == self.prepared.slices.len();
        let take = if is_final {
            self.speech_samples.len()
        } else {
            (((end_ms - self.speech_start_ms) * SAMPLES_PER_MS).max(0) as usize)
                .min(self.speech_samples.len())
        };
        let rest = self.speech_samples.split_off(take);
        let samples = std::mem::replace(&mut self.speech_samples, rest);
        let job = SpeechJob {
            index,
            start_ms: self.speech_start_ms,
            samples,
            is_final,
            heard,
            heard_before: self.speech_lead.take(),
        };
        self.speech_start_ms += take as i64 / SAMPLES_PER_MS;
        tx.send(job)
            .await
            .map_err(|_| Error::Cancelled("the speech worker stopped".into()))
    }

    /// Starts tagging `slice`'s audio (all that is left when it is the last) on a task of
    /// its own; `None` without a tagger.
    fn hear(&mut self, slice: &store::PlannedSlice) -> Option<Heard> {
        let tagger = self.tagger.clone()?;
        let start = self.sound_start_ms.unwrap_or(slice.start_ms);
        let is_final = slice.index as usize + 1 == self.prepared.slices.len();
        // Audio before the slice (a resumed decode starts a clip early) is not its own;
        // where the speech worker starts in it, its voice is heard for the worker alone
        // (or, when this run heard the slice before, the worker gets what was heard there).
        let skip = (((slice.start_ms - start).max(0) * SAMPLES_PER_MS) as usize)
            .min(self.sound_samples.len());
        let before: Vec<f32> = self.sound_samples.drain(..skip).collect();
        let lead_from = self.speech_start_ms.max(start);
        if self.speech_tx.is_some() && slice.index == self.speech_next && lead_from < slice.start_ms
        {
            self.speech_lead = if before.is_empty() {
                self.last_heard.clone()
            } else {
                let offset = (((lead_from - start) * SAMPLES_PER_MS) as usize).min(before.len());
                Some(tag(
                    tagger.clone(),
                    lead_from,
                    before[offset..].to_vec(),
                    slice.index,
                ))
            };
        }
        let from = start + skip as i64 / SAMPLES_PER_MS;
        let take = match is_final {
            true => self.sound_samples.len(),
            false => (((slice.end_ms - from) * SAMPLES_PER_MS).max(0) as usize)
                .min(self.sound_samples.len()),
        };
        let samples: Vec<f32> = self.sound_samples.drain(..take).collect();
        self.sound_start_ms = Some(from + take as i64 / SAMPLES_PER_MS);
        let heard = tag(tagger, from, samples, slice.index);
        self.last_heard = Some(heard.clone());
        Some(heard)
    }

    /// Keeps the three highest-scoring slices' descriptions for the summary.
    fn remember_strongest(&mut self, analysis: &reelforge_models::analysis::SliceAnalysis) {
        self.strongest.push((
            analysis.highlight_score,
            analysis.start_ms,
            analysis.description.clone(),
        ));
        self.strongest
            .sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        self.strongest.truncate(3);
    }

    fn window_mut(&mut self, t_ms: i64) -> &mut WindowAcc {
        let i = (t_ms.max(0) / AUDIO_WINDOW_MS) as usize;
        if self.windows.len() <= i {
            self.windows.resize(i + 1, WindowAcc::default());
        }
        &mut self.windows[i]
    }

    fn take(&mut self, sample: Sample, cut_threshold: f32, sink: &dyn IngestSink) {
        match sample {
            Sample::Frame(f) => {
                self.start_slices_through(f.t_ms, sink);
                let is_cut = f.hist_distance >= cut_threshold
                    && self
                        .cut_points
                        .last()
                        .is_none_or(|&c| f.t_ms - c >= MIN_CUT_SPACING_MS);
                if is_cut {
                    self.cut_points.push(f.t_ms);
                }
                let w = self.window_mut(f.t_ms);
                w.motion_sum += f.motion;
                w.frames += 1;
                w.scene_cut |= is_cut;
                self.add_to_clip(&f);
                self.video_pos_ms = self.video_pos_ms.max(f.t_ms + self.frame_ms);
                if self.video_pos_ms - self.last_progress_ms >= PROGRESS_EVERY_MS {
                    self.last_progress_ms = self.video_pos_ms;
                    sink.emit(IngestEvent::Progress {
                        position_ms: self.video_pos_ms.min(self.prepared.probe.duration_ms),
                        duration_ms: self.prepared.probe.duration_ms,
                    });
                }
            }
            Sample::Audio(a) => {
                self.window_mut(a.start_ms).loudness_db = Some(a.rms_db);
                self.audio_pos_ms = a.start_ms + AUDIO_WINDOW_MS;
                if self.tagger.is_some() {
                    self.sound_start_ms.get_or_insert(a.start_ms);
                    self.sound_samples.extend_from_slice(&a.samples);
                }
                if self.speech_tx.is_some() {
                    // Audio before the speech worker's resume point was transcribed.
                    let skip =
                        ((self.speech_start_ms - a.start_ms).max(0) * SAMPLES_PER_MS) as usize;
                    self.speech_samples
                        .extend_from_slice(&a.samples[skip.min(a.samples.len())..]);
                }
            }
            Sample::VideoEnd => self.video_done = true,
            Sample::AudioEnd => self.audio_done = true,
        }
    }

    fn passed(&self, t_ms: i64) -> bool {
        (self.video_done || self.video_pos_ms >= t_ms)
            && (self.audio_done || self.audio_pos_ms >= t_ms)
    }

    fn start_slices_through(&mut self, t_ms: i64, sink: &dyn IngestSink) {
        while let Some(s) = self.prepared.slices.get(self.next_to_start) {
            if s.start_ms > t_ms {
                break;
            }
            sink.emit(IngestEvent::SliceStarted {
                index: s.index,
                start_ms: s.start_ms,
                end_ms: s.end_ms,
            });
            self.next_to_start += 1;
        }
    }

    fn windows_in(&self, start_ms: i64, end_ms: i64) -> Vec<SignalWindow> {
        let first = (start_ms / AUDIO_WINDOW_MS) as usize;
        let last = ((end_ms + AUDIO_WINDOW_MS - 1) / AUDIO_WINDOW_MS) as usize;
        (first..last)
            .map(|i| self.windows.get(i).copied().unwrap_or_default().window(i))
            .filter(|w| w.start_ms >= start_ms && w.start_ms < end_ms)
            .collect()
    }

    fn update_baseline(&mut self, windows: &[SignalWindow]) {
        self.baseline.absorb(windows);
    }

    fn add_to_clip(&mut self, f: &media::FrameSample) {
        let clip_ms = self.prepared.clip_ms;
        let index = f.t_ms / clip_ms;
        if self
            .clip
            .as_ref()
            .is_some_and(|c| c.start_ms / clip_ms != index)
        {
            let done = self.clip.take().expect("checked above");
            self.push_clip(done);
        }
        let clip = self.clip.get_or_insert_with(|| {
            let start = index * clip_ms;
            ClipAccumulator::new(
                start,
                (start + clip_ms).min(self.prepared.probe.duration_ms),
            )
        });
        clip.add(f);
    }

    fn push_clip(&mut self, clip: ClipAccumulator) {
        if self.kept_clip == Some((clip.start_ms / self.prepared.clip_ms) as u32) {
            return;
        }
        if let Some(v) = clip.finish() {
            self.clips
                .push(((clip.start_ms / self.prepared.clip_ms) as u32, v));
        }
    }
}

/// A slice's transcript as one text.
fn transcript_text(segments: &[TranscriptSegment]) -> String {
    let parts: Vec<&str> = segments.iter().map(|s| s.text.trim()).collect();
    parts.join(" ")
}

/// A few sentences on the whole video, from its strongest slices and opening speech.
fn summarise(p: &PreparedIngest, strongest: &[(f32, i64, String)], speech: &SpeechStats) -> String {
    let clock = |ms: i64| format!("{}:{:02}", ms / 60_000, (ms / 1000) % 60);
    let mut summary = format!(
        "{}: {} of video{}.",
        p.filename,
        clock(p.probe.duration_ms),
        if p.probe.has_audio() {
            " with sound"
        } else {
            " without sound"
        }
    );
    for (_, start_ms, description) in strongest {
        // Descriptions open with their time range, which the summary already gives.
        let description = match description.split_once(": ") {
            Some((range, rest)) if range.starts_with(|c: char| c.is_ascii_digit()) => rest,
            _ => description.as_str(),
        };
        summary.push_str(&format!(" At {}: {}", clock(*start_ms), description.trim()));
        if !summary.ends_with('.') {
            summary.push('.');
        }
    }
    if !speech.opening.is_empty() {
        summary.push_str(&format!(" Speech: \"{}\"", speech.opening.join(" ")));
    }
    summary
}

/// The probe's packet scan already rejects most truncated files; this catches streams
/// that are present but do not decode.
fn check_decoded_length(p: &PreparedIngest, decoded_ms: i64) -> Result<()> {
    let claimed = p.probe.duration_ms;
    if decoded_ms == 0
        || (claimed - decoded_ms > 2_000 && (decoded_ms as f64) < 0.9 * claimed as f64)
    {
        return Err(Error::invalid(format!(
            "{}: the header claims {:.1} s but only {:.1} s of video decoded; the file is \
             truncated or damaged",
            p.filename,
            claimed as f64 / 1000.0,
            decoded_ms as f64 / 1000.0
        )));
    }
    Ok(())
}

async fn list_thumbnails(dir: &Path, fps: f64) -> Result<Vec<FrameRecord>> {
    let mut entries = tokio::fs::read_dir(dir).await?;
    let mut frames = Vec::new();
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        let Some(n) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        frames.push(FrameRecord {
            t_ms: (n as f64 * 1000.0 / fps).round() as i64,
            path: path.display().to_string(),
        });
    }
    frames.sort_by_key(|f| f.t_ms);
    Ok(frames)
}

/// After a re-analysis, earlier thumbnail sets of the same video are garbage.
async fn remove_other_thumbnail_dirs(video: &VideoRecord) {
    let current = PathBuf::from(&video.thumbnails_dir);
    let Some(media_dir) = current.parent() else {
        return;
    };
    let Ok(mut entries) = tokio::fs::read_dir(media_dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        let is_thumbs = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("thumbs-"));
        if is_thumbs && path != current {
            let _ = tokio::fs::remove_dir_all(&path).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::jobs::CollectSink;
    use crate::store::Store;
    use reelforge_core::error::ErrorKind;
    use reelforge_models::analysis::{BoxFuture, SliceAnalysis, SliceInput};

    struct FailingAnalyzer;

    impl VideoAnalyzer for FailingAnalyzer {
        fn name(&self) -> &str {
            "failing"
        }
        fn analyze_slice<'a>(&'a self, _: SliceInput<'a>) -> BoxFuture<'a, Result<SliceAnalysis>> {
            Box::pin(async {
                Err(Error::Provider {
                    provider: "failing".into(),
                    message: "model unavailable".into(),
                    retryable: true,
                })
            })
        }
    }

    /// A synthetic video of `seconds` in 2 s slices, checked and planned as ingest would,
    /// in a temporary data dir.
    async fn test_video(seconds: u32) -> (tempfile::TempDir, EngineConfig, PreparedIngest) {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("v.mp4");
        let status = Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size=160x90:rate=25:duration={seconds}"))
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
            .arg(&video)
            .status()
            .expect("ffmpeg is installed");
        assert!(status.success());
        let config = EngineConfig {
            data_dir: dir.path().to_path_buf(),
            ..EngineConfig::default()
        };
        let probe = media::probe(&config.ffprobe, &video).await.unwrap();
        let prepared = PreparedIngest {
            job_id: "job".into(),
            tenant: crate::DEFAULT_TENANT.into(),
            video_id: "0123456789abcdef".into(),
            sha256: "0".repeat(64),
            filename: "v.mp4".into(),
            size_bytes: 1,
            source: video,
            keep_source_at: None,
            slices: crate::ingest::plan::plan_slices(probe.duration_ms, 2_000, &probe.keyframes_ms)
                .unwrap(),
            probe,
            slice_ms: 2_000,
            clip_ms: 2_000,
            subtitles: Vec::new(),
            language: None,
            descriptions: Default::default(),
        };
        (dir, config, prepared)
    }

    #[test]
    fn the_summary_opens_with_forty_words_or_forty_chinese_characters() {
        let mut english = SpeechStats::default();
        english.add(&[], &"word ".repeat(30));
        english.add(&[], &"more ".repeat(30));
        assert_eq!(english.opening.len(), 40);
        assert_eq!(english.opening.last().map(String::as_str), Some("more"));
        let mut chinese = SpeechStats::default();
        let sentence = "比赛最后一分钟，前锋打进了制胜一球。";
        chinese.add(&[], &format!("{sentence} {sentence} {sentence}"));
        let opening = chinese.opening.join(" ");
        let han = opening.chars().filter(|&c| is_cjk(c)).count();
        assert_eq!(han, 40, "{opening}");
        assert!(opening.starts_with(sentence), "{opening}");
    }

    #[tokio::test]
    async fn regression_an_analyser_failure_neither_hangs_the_decoder_nor_reports_cancelled() {
        // Long enough that the decoder cannot buffer everything before the failure.
        let (dir, config, prepared) = test_video(60).await;
        let store = Store::temporary().unwrap();
        let writer = store.begin_video(&prepared.video_id).unwrap();
        let pipeline = Pipeline {
            config: &config,
            analyzer: &FailingAnalyzer,
            text_embedder: reelforge_models::testing::text_embedder(),
            transcriber: None,
            image_embedder: None,
            sound_tagger: None,
            scene_tagger: None,
            text_reader: None,
            search: None,
        };
        let (staging, sink) = (dir.path().join("staging"), CollectSink::default());
        let run = pipeline.run(&prepared, &staging, &writer, &sink, None);
        let err = tokio::time::timeout(std::time::Duration::from_secs(60), run)
            .await
            .expect("the pipeline ended instead of waiting on a blocked decoder")
            .unwrap_err();
        // Every slice failed: the job fails, naming the model's error.
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(
            err.to_string().contains("every one of the 30 slices")
                && err.to_string().contains("model unavailable"),
            "{err}"
        );
    }

    /// Fails on every third slice and takes 50 ms a slice, counting the calls in flight.
    struct FlakyAnalyzer {
        running: std::sync::atomic::AtomicUsize,
        most: std::sync::atomic::AtomicUsize,
    }

    impl VideoAnalyzer for FlakyAnalyzer {
        fn name(&self) -> &str {
            "flaky"
        }
        fn analyze_slice<'a>(
            &'a self,
            input: SliceInput<'a>,
        ) -> BoxFuture<'a, Result<SliceAnalysis>> {
            use std::sync::atomic::Ordering::SeqCst;
            Box::pin(async move {
                let now = self.running.fetch_add(1, SeqCst) + 1;
                self.most.fetch_max(now, SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                self.running.fetch_sub(1, SeqCst);
                if input.index % 3 == 1 {
                    return Err(Error::Unavailable("throttled".into()));
                }
                Ok(SliceAnalysis {
                    analyzer: "flaky".into(),
                    ..SignalAnalyzer.analyze(&input)
                })
            })
        }
    }

    #[tokio::test]
    async fn slices_are_read_concurrently_stored_in_order_and_a_failed_one_is_kept() {
        let (dir, mut config, prepared) = test_video(24).await;
        config.ingest.analysis_concurrency = 3;
        let store = Store::temporary().unwrap();
        let writer = store.begin_video(&prepared.video_id).unwrap();
        let analyzer = FlakyAnalyzer {
            running: Default::default(),
            most: Default::default(),
        };
        let pipeline = Pipeline {
            config: &config,
            analyzer: &analyzer,
            text_embedder: reelforge_models::testing::text_embedder(),
            transcriber: None,
            image_embedder: None,
            sound_tagger: None,
            scene_tagger: None,
            text_reader: None,
            search: None,
        };
        let (staging, sink) = (dir.path().join("staging"), CollectSink::default());
        pipeline
            .run(&prepared, &staging, &writer, &sink, None)
            .await
            .unwrap();
        let finished: Vec<SliceAnalysis> = sink
            .events()
            .into_iter()
            .filter_map(|e| match e {
                IngestEvent::SliceFinished { analysis } => Some(analysis),
                _ => None,
            })
            .collect();
        assert_eq!(
            finished.iter().map(|a| a.index).collect::<Vec<_>>(),
            (0..12).collect::<Vec<_>>(),
            "stored and reported in slice order"
        );
        for a in &finished {
            match a.index % 3 {
                1 => {
                    let error = a.error.as_deref().unwrap();
                    assert!(
                        error.contains("flaky failed on this slice") && error.contains("throttled")
                    );
                    assert_eq!(
                        a.analyzer,
                        SignalAnalyzer::NAME,
                        "the offline reading is kept"
                    );
                }
                _ => assert!(a.error.is_none() && a.analyzer == "flaky", "{a:?}"),
            }
        }
        let most = analyzer.most.load(std::sync::atomic::Ordering::SeqCst);
        assert!((2..=3).contains(&most), "read {most} at once, at most 3");
        let stored = store.slices(&prepared.video_id).unwrap();
        assert_eq!(stored.len(), 12);
        assert!(stored[4].error.is_some());
    }
}

#[cfg(test)]
mod resume_tests {
    use super::*;
    use crate::config::IngestConfig;
    use crate::store::{test_slice, PlannedSlice, SpeechMark, Written};

    /// A 60 s video in 6 s slices with a 2 s clip grid.
    fn prepared() -> PreparedIngest {
        PreparedIngest {
            job_id: "j".into(),
            tenant: crate::DEFAULT_TENANT.into(),
            video_id: "aaaaaaaaaaaaaaaa".into(),
            sha256: String::new(),
            filename: "a.mp4".into(),
            size_bytes: 1,
            source: PathBuf::from("/x/a.mp4"),
            keep_source_at: None,
            probe: media::ProbeRecord {
                duration_ms: 60_000,
                format_name: "mov".into(),
                size_bytes: 1,
                bit_rate: 1,
                streams: vec![],
                keyframes_ms: vec![0],
                video_data_end_ms: 60_000,
            },
            slice_ms: 6_000,
            clip_ms: 2_000,
            slices: (0..10)
                .map(|i| PlannedSlice {
                    index: i,
                    start_ms: i as i64 * 6_000,
                    end_ms: (i as i64 + 1) * 6_000,
                    keyframe_aligned: true,
                })
                .collect(),
            subtitles: vec![],
            language: None,
            descriptions: Default::default(),
        }
    }

    fn written(slices: u32, speech: Option<SpeechMark>) -> Written {
        let analysis = |i: u32| test_slice(i, i as i64 * 6_000, (i as i64 + 1) * 6_000);
        Written {
            slices: (0..slices).map(|i| (analysis(i), vec![])).collect(),
            transcripts: vec![],
            speech,
            clips: Default::default(),
        }
    }

    #[test]
    fn a_resume_decodes_from_a_clip_before_the_earliest_unfinished_work() {
        let config = IngestConfig::default();
        let p = prepared();
        // Three slices analysed, speech done through slice 0 with a sentence carried
        // from 5.5 s: the decode restarts one clip before the clip holding 5.5 s.
        let speech = Some(SpeechMark {
            next_index: 1,
            from_ms: 5_500,
        });
        let r = Resume::plan(&p, written(3, speech), true, &config, true);
        assert_eq!(r.decode_from_ms, 2_000);
        // Without speech, only the analysis counts: slice 3 starts at 18 s.
        let r = Resume::plan(&p, written(3, speech), false, &config, true);
        assert_eq!(r.decode_from_ms, 14_000);
        // Thumbnails gone: decode from the start (analysed slices are still skipped).
        let r = Resume::plan(&p, written(3, speech), false, &config, false);
        assert_eq!(r.decode_from_ms, 0);
        assert_eq!(r.written.slices.len(), 3);
        // Nothing stored yet: from the start.
        let r = Resume::plan(&p, written(0, None), true, &config, true);
        assert_eq!(r.decode_from_ms, 0);
        // A thumbnail every 4 s moves the start back onto its grid.
        let sparse = IngestConfig {
            thumbnail_fps: 0.25,
            ..IngestConfig::default()
        };
        let r = Resume::plan(&p, written(3, speech), false, &sparse, true);
        assert_eq!(r.decode_from_ms, 12_000);
    }
}
