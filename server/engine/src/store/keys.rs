//! Key codecs for every sled tree. Video-owned records are keyed by the 16-character video
//! id, the generation they belong to, then big-endian integers, so a prefix scan returns
//! one generation of one video's records in order.

use reelforge_core::ids::VIDEO_ID_LEN;

/// `video_id ++ generation_be32`: the prefix of one generation of a video's records.
pub fn generation_prefix(video_id: &str, generation: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(VIDEO_ID_LEN + 9);
    key.extend_from_slice(video_id.as_bytes());
    key.extend_from_slice(&generation.to_be_bytes());
    key
}

/// `video_id ++ generation ++ index_be32`: slices, frames, signals, docs.
pub fn video_item(video_id: &str, generation: u32, index: u32) -> Vec<u8> {
    let mut key = generation_prefix(video_id, generation);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The index a video-owned key ends with (slice, clip, thumbnail or owner index).
pub fn item_index(key: &[u8]) -> u32 {
    let tail = key.len().saturating_sub(4);
    u32::from_be_bytes(
        key[tail..]
            .try_into()
            .expect("a key ends with a 4-byte index"),
    )
}

/// The (video id, generation) a video-owned key belongs to.
pub fn owner_of(key: &[u8]) -> Option<(&str, u32)> {
    let id = std::str::from_utf8(key.get(..VIDEO_ID_LEN)?).ok()?;
    let generation = u32::from_be_bytes(key.get(VIDEO_ID_LEN..VIDEO_ID_LEN + 4)?.try_into().ok()?);
    Some((id, generation))
}

/// What an embedding belongs to; the tag is part of the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmbeddingKind {
    /// One per matching clip (clip grid of the video record).
    VisualDescriptor = 1,
    /// One per slice description (owner = the slice index), by the video's text embedder.
    Text = 2,
    /// One per slice with speech: the slice's transcript text (owner = the slice index).
    Transcript = 3,
    /// The video's summary (owner 0).
    Summary = 4,
    /// One per thumbnail, by an image-text embedder such as CLIP (owner = the
    /// thumbnail's position in time order).
    FrameImage = 5,
    /// One per matching clip, by a video embedder (`models.video_embedder`), kept after
    /// Points + clips first paid for it (owner = the clip index).
    ClipVideo = 6,
}

impl EmbeddingKind {
    pub fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(EmbeddingKind::VisualDescriptor),
            2 => Some(EmbeddingKind::Text),
            3 => Some(EmbeddingKind::Transcript),
            4 => Some(EmbeddingKind::Summary),
            5 => Some(EmbeddingKind::FrameImage),
            6 => Some(EmbeddingKind::ClipVideo),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            EmbeddingKind::VisualDescriptor => reelforge_media::visual::KIND,
            EmbeddingKind::Text => "text",
            EmbeddingKind::Transcript => "transcript",
            EmbeddingKind::Summary => "summary",
            EmbeddingKind::FrameImage => "frame_image",
            EmbeddingKind::ClipVideo => "clip_video",
        }
    }
}

/// `video_id ++ generation ++ kind_tag ++ owner_index_be32`.
pub fn embedding(video_id: &str, generation: u32, kind: EmbeddingKind, owner: u32) -> Vec<u8> {
    let mut key = generation_prefix(video_id, generation);
    key.push(kind as u8);
    key.extend_from_slice(&owner.to_be_bytes());
    key
}

/// Embedding kind tag of an `embedding` key.
pub fn embedding_kind(key: &[u8]) -> Option<EmbeddingKind> {
    key.get(VIDEO_ID_LEN + 4)
        .copied()
        .and_then(EmbeddingKind::from_tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_keys_sort_by_index() {
        let id = "0123456789abcdef";
        assert!(video_item(id, 1, 2) < video_item(id, 1, 10));
        assert!(video_item(id, 1, 255) < video_item(id, 1, 256));
        assert!(video_item(id, 1, u32::MAX) < video_item(id, 2, 0));
        let kind = EmbeddingKind::VisualDescriptor;
        assert!(embedding(id, 3, kind, 1) < embedding(id, 3, kind, 300));
        assert_eq!(embedding_kind(&embedding(id, 3, kind, 7)), Some(kind));
        assert_eq!(owner_of(&embedding(id, 3, kind, 7)), Some((id, 3)));
    }
}
