//! The embedded index in memory, by dense slot: each document's metadata and length, the
//! posting lists, each video's documents, the BM25 statistics, and one vector space per
//! embedding space (keyed by document id), so filters, BM25 and vector search read no
//! disk. Slots are handed out in id order and not reused until the next open, so posting
//! lists sorted by id are sorted by slot too.

use std::collections::HashMap;

use crate::bm25::{Posting, Statistics};
use crate::doc::{DocMeta, Space};
use crate::storage::StoredDoc;
use crate::vectors::VectorSpace;

/// A term's postings, sorted by slot. Removing a document leaves its postings in place
/// (its slot reads as removed) and counts them here, so a removal costs no shifting of a
/// long list; the list is compacted once a quarter of it is dead. The document frequency
/// stays exact: `len - dead`. `corners` bound the list's BM25 scores: the postings no
/// other posting beats on both term frequency and length (a handful: one per frequency at
/// most). A removal leaves them (still bounds), a compaction makes them exact again.
pub struct PostingList {
    pub list: Vec<Posting>,
    pub dead: u32,
    pub corners: Vec<(u32, u32)>,
}

impl PostingList {
    fn new() -> PostingList {
        PostingList {
            list: Vec::new(),
            dead: 0,
            corners: Vec::new(),
        }
    }

    /// Documents that hold the term.
    pub fn doc_freq(&self) -> u64 {
        (self.list.len() - self.dead as usize) as u64
    }

    fn push(&mut self, posting: Posting) {
        add_corner(&mut self.corners, posting.1, posting.2);
        self.list.push(posting);
    }

    /// Drops the postings of removed documents.
    fn compact(&mut self, alive: impl Fn(u32) -> bool) {
        self.list.retain(|&(s, _, _)| alive(s));
        self.dead = 0;
        self.corners.clear();
        for &(_, tf, length) in &self.list {
            add_corner(&mut self.corners, tf, length);
        }
    }
}

/// Adds (tf, length) to `corners` unless one there has as high a frequency and as short a
/// length; drops those it beats so.
fn add_corner(corners: &mut Vec<(u32, u32)>, tf: u32, length: u32) {
    if corners.iter().any(|&(t, l)| t >= tf && l <= length) {
        return;
    }
    corners.retain(|&(t, l)| !(tf >= t && length <= l));
    corners.push((tf, length));
}

#[derive(Default)]
pub struct Slots {
    /// Slot → document id and metadata; `None` once removed.
    pub docs: Vec<Option<(u64, DocMeta)>>,
    /// Slot → document length in terms, dense (the BM25 loop reads it per posting).
    pub lengths: Vec<u32>,
    slot_of: HashMap<u64, u32>,
    /// Term → postings: the stored documents' terms inverted at open, so a query reads
    /// no disk and decodes no keys.
    pub postings: HashMap<String, PostingList>,
    /// Video → its documents' ids.
    by_video: HashMap<String, Vec<u64>>,
    text: VectorSpace,
    visual: VectorSpace,
    /// BM25 statistics: documents with text, and their total length.
    pub documents: u64,
    pub total_length: u64,
}

impl Statistics for Slots {
    fn documents(&self) -> u64 {
        self.documents
    }

    fn total_length(&self) -> u64 {
        self.total_length
    }
}

pub fn meta(stored: &StoredDoc) -> DocMeta {
    DocMeta {
        video_id: stored.doc.video_id.clone(),
        kind: stored.doc.kind,
        start_ms: stored.doc.start_ms,
        end_ms: stored.doc.end_ms,
        length: stored.length,
    }
}

impl Slots {
    fn new_slot(&mut self, id: u64, meta: DocMeta) -> u32 {
        let slot = self.docs.len() as u32;
        self.lengths.push(meta.length);
        self.docs.push(Some((id, meta)));
        self.slot_of.insert(id, slot);
        slot
    }

    pub fn slot_of(&self, id: u64) -> Option<u32> {
        self.slot_of.get(&id).copied()
    }

    /// The document in `slot`, if it is still there.
    pub fn doc(&self, slot: u32) -> Option<&(u64, DocMeta)> {
        self.docs.get(slot as usize).and_then(Option::as_ref)
    }

    /// The live document `id`'s metadata.
    pub fn meta_of(&self, id: u64) -> Option<&DocMeta> {
        self.doc(self.slot_of(id)?).map(|d| &d.1)
    }

    /// Ids of a video's documents.
    pub fn docs_of_video(&self, video_id: &str) -> &[u64] {
        self.by_video.get(video_id).map_or(&[], Vec::as_slice)
    }

    pub fn space(&self, space: Space) -> &VectorSpace {
        match space {
            Space::Text => &self.text,
            Space::Visual => &self.visual,
        }
    }

    pub fn space_mut(&mut self, space: Space) -> &mut VectorSpace {
        match space {
            Space::Text => &mut self.text,
            Space::Visual => &mut self.visual,
        }
    }

    /// Adds a stored document (its postings, its vector, its statistics) under `id`;
    /// ids must increase (posting lists stay sorted by slot).
    pub fn insert(&mut self, id: u64, stored: &StoredDoc, vector: &[f32]) -> Result<(), String> {
        self.space_mut(stored.doc.kind.space()).check(vector)?;
        let slot = self.new_slot(id, meta(stored));
        for (term, tf) in &stored.terms {
            let posting = (slot, *tf, stored.length);
            match self.postings.get_mut(term.as_str()) {
                Some(p) => p.push(posting),
                None => {
                    let mut p = PostingList::new();
                    p.push(posting);
                    self.postings.insert(term.clone(), p);
                }
            }
        }
        self.space_mut(stored.doc.kind.space()).push(id, vector)?;
        match self.by_video.get_mut(stored.doc.video_id.as_str()) {
            Some(ids) => ids.push(id),
            None => {
                self.by_video.insert(stored.doc.video_id.clone(), vec![id]);
            }
        }
        if stored.lexical() {
            self.documents += 1;
            self.total_length += stored.length as u64;
        }
        Ok(())
    }

    /// Removes the document `id`; returns whether it was there.
    pub fn remove(&mut self, id: u64, terms: &[(String, u32)]) -> bool {
        let Some(slot) = self.slot_of.remove(&id) else {
            return false;
        };
        let Some((_, meta)) = self.docs[slot as usize].take() else {
            return false;
        };
        for (term, _) in terms {
            let Some(p) = self.postings.get_mut(term.as_str()) else {
                continue;
            };
            p.dead += 1;
            if p.doc_freq() == 0 {
                self.postings.remove(term.as_str());
            } else if p.dead as usize * 4 > p.list.len() {
                let docs = &self.docs;
                p.compact(|s| docs[s as usize].is_some());
            }
        }
        if let Some(ids) = self.by_video.get_mut(meta.video_id.as_str()) {
            ids.retain(|&d| d != id);
            if ids.is_empty() {
                self.by_video.remove(meta.video_id.as_str());
            }
        }
        self.space_mut(meta.kind.space()).remove(id);
        if meta.kind.space() == Space::Text {
            self.documents = self.documents.saturating_sub(1);
            self.total_length = self.total_length.saturating_sub(meta.length as u64);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bm25::testing::{below, Stats};
    use crate::bm25::{Bm25, Scorer, TermScorer};

    #[test]
    fn corners_are_the_postings_none_beats_and_bound_the_best_score_exactly() {
        let mut next = below(0x9E37_79B9);
        let term = Bm25::default().term(&Stats(1000, 30_000), 40);
        for _ in 0..50 {
            let mut list = PostingList::new();
            let postings: Vec<Posting> = (0..1 + next(200) as u32)
                .map(|slot| (slot, 1 + next(6) as u32, 1 + next(90) as u32))
                .collect();
            for &p in &postings {
                list.push(p);
            }
            for &(t, l) in &list.corners {
                assert!(postings.iter().any(|p| (p.1, p.2) == (t, l)));
                assert!(!postings
                    .iter()
                    .any(|p| p.1 >= t && p.2 <= l && (p.1, p.2) != (t, l)));
            }
            let best = postings
                .iter()
                .map(|p| term.score(p.1, p.2))
                .fold(0.0, f32::max);
            assert_eq!(term.bound(&list.corners), best);
            // A compaction keeps the survivors' corners only.
            list.compact(|slot| slot % 2 == 0);
            let best = postings
                .iter()
                .filter(|p| p.0 % 2 == 0)
                .map(|p| term.score(p.1, p.2))
                .fold(0.0, f32::max);
            assert_eq!(term.bound(&list.corners), best);
        }
    }
}
