//! Turning a stored video into search documents: its summary, slice descriptions,
//! transcript chunks and sound events, each with a text vector (stored ones reused,
//! chunks and events embedded here).

use reelforge_core::error::Result;
use reelforge_models::{EmbedPurpose, TextEmbedder};
use reelforge_search::chunk::{chunk_transcript, Timed};
use reelforge_search::{DocKind, SearchBackend, SearchDoc, VideoOwner};

use crate::store::{EmbeddingKind, Store};
use crate::util::blocking;

/// (Re)indexes the live generation of `video_id`; returns the number of documents. A
/// video that is gone has its documents removed.
pub async fn index_video(
    store: &Store,
    index: &dyn SearchBackend,
    embedder: &dyn TextEmbedder,
    video_id: &str,
) -> Result<usize> {
    let (s, id) = (store.clone(), video_id.to_string());
    let loaded = blocking(move || {
        let Some(video) = s.video(&id)? else {
            return Ok(None);
        };
        Ok(Some((
            s.docs(&id)?,
            s.embeddings(&id, EmbeddingKind::Text)?,
            s.embeddings(&id, EmbeddingKind::Summary)?,
            s.transcript(&id)?,
            s.sounds(&id)?,
            s.sights(&id)?,
            s.subtitles(&id)?,
            s.imported(&id)?,
            s.frames(&id)?,
            s.embeddings(&id, EmbeddingKind::FrameImage)?,
            video,
        )))
    })
    .await?;
    let Some((
        descriptions,
        description_vectors,
        summary_vectors,
        transcript,
        sounds,
        sights,
        subtitles,
        imported,
        frames,
        frame_vectors,
        video,
    )) = loaded
    else {
        index.remove_video(video_id).await?;
        return Ok(0);
    };
    let mut docs: Vec<(SearchDoc, Vec<f32>)> = Vec::new();
    let doc = |kind, text: &str, start_ms, end_ms| SearchDoc {
        video_id: video.video_id.clone(),
        kind,
        text: text.to_string(),
        start_ms,
        end_ms,
    };
    if let Some((_, v)) = summary_vectors.into_iter().next() {
        if !video.summary.is_empty() {
            docs.push((
                doc(
                    DocKind::VideoSummary,
                    &video.summary,
                    0,
                    video.probe.duration_ms,
                ),
                v,
            ));
        }
    }
    for (i, d) in descriptions.iter().enumerate() {
        let vector = description_vectors
            .iter()
            .find(|(owner, _)| *owner as usize == i)
            .map(|(_, v)| v.clone());
        if let Some(v) = vector {
            docs.push((
                doc(DocKind::SliceDescription, &d.text, d.start_ms, d.end_ms),
                v,
            ));
        }
    }
    let timed = |start_ms, end_ms, text: &str| Timed {
        start_ms,
        end_ms,
        text: text.to_string(),
    };
    let segments: Vec<Timed> = transcript
        .iter()
        .map(|s| timed(s.start_ms, s.end_ms, &s.text))
        .collect();
    let cues: Vec<Timed> = subtitles
        .iter()
        .map(|s| timed(s.start_ms, s.end_ms, &s.text))
        .collect();
    // Speech heard by the model and subtitles are chunked apart: they cover the same
    // moments in different words, and each should be findable.
    let mut pending: Vec<SearchDoc> = chunk_transcript(&segments)
        .into_iter()
        .chain(chunk_transcript(&cues))
        .map(|c| doc(DocKind::TranscriptChunk, &c.text, c.start_ms, c.end_ms))
        .collect();
    // Each sound heard over a stretch, in words.
    pending.extend(sounds.iter().map(|e| {
        doc(
            DocKind::SoundEvent,
            &reelforge_models::sound::search_text(e),
            e.start_ms,
            e.end_ms,
        )
    }));
    // Each line of on-screen text, over the pictures that show it.
    pending.extend(
        reelforge_models::vision::text_spans(&sights)
            .into_iter()
            .map(|(text, start_ms, end_ms)| doc(DocKind::OcrText, &text, start_ms, end_ms)),
    );
    // Imported documents (BDA) are kept as written and embedded here.
    pending.extend(
        imported
            .iter()
            .map(|d| doc(d.kind, &d.text, d.start_ms, d.end_ms)),
    );
    if !pending.is_empty() {
        let texts: Vec<String> = pending.iter().map(|d| d.text.clone()).collect();
        let vectors = embedder.embed(&texts, EmbedPurpose::Index).await?;
        docs.extend(
            pending
                .into_iter()
                .zip(vectors.into_iter().map(|v| v.vector)),
        );
    }
    // Thumbnails embedded by the image-text model: frame i (in time order) is owner i. A
    // frame lasts until the next one; its text is the description of the slice it is in.
    let mut frames = frames;
    frames.sort_by_key(|f| f.t_ms);
    for (owner, vector) in frame_vectors {
        let i = owner as usize;
        let Some(frame) = frames.get(i) else { continue };
        let end_ms = frames
            .get(i + 1)
            .map_or(video.probe.duration_ms, |n| n.t_ms)
            .max(frame.t_ms + 1);
        let context = descriptions
            .iter()
            .find(|d| d.start_ms <= frame.t_ms && frame.t_ms < d.end_ms)
            .map_or(String::new(), |d| d.text.clone());
        docs.push((doc(DocKind::Frame, &context, frame.t_ms, end_ms), vector));
    }
    let count = docs.len();
    let owner = VideoOwner {
        tenant: video.tenant.clone(),
        filename: video.filename.clone(),
    };
    index
        .replace_video(&video.video_id, video.generation, &owner, docs)
        .await?;
    Ok(count)
}
