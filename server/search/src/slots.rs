//! The embedded index in memory, by dense slot: each document's metadata and length, the
//! posting lists, and one vector space per embedding space, so filters, BM25 and vector
//! search read no disk. Slots are handed out in id order and not reused until the next
//! open, so posting lists sorted by id are sorted by slot too.

use std::collections::HashMap;

use crate::bm25::{Posting, Statistics};
use crate::doc::{DocMeta, Space};
use crate::storage::StoredDoc;
use crate::vectors::VectorSpace;

#[derive(Default)]
pub struct Slots {
    /// Slot → document id and metadata; `None` once removed.
    pub docs: Vec<Option<(u64, DocMeta)>>,
    /// Slot → document length in terms, dense (the BM25 loop reads it per posting).
    pub lengths: Vec<u32>,
    slot_of: HashMap<u64, u32>,
    /// Term → (slot, term frequency), sorted by slot: a copy of the stored postings, so
    /// a query reads no disk and decodes no keys.
    pub postings: HashMap<String, Vec<Posting>>,
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
    pub fn new_slot(&mut self, id: u64, meta: DocMeta) -> u32 {
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

    pub fn slot_space(&self, slot: u32) -> Space {
        self.doc(slot).map_or(Space::Text, |s| s.1.kind.space())
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

    /// Adds a stored document (its postings, its vector, its statistics) under `id`.
    pub fn insert(&mut self, id: u64, stored: &StoredDoc, vector: &[f32]) -> Result<(), String> {
        let slot = self.new_slot(id, meta(stored));
        for (term, tf) in &stored.terms {
            self.postings
                .entry(term.clone())
                .or_default()
                .push((slot, *tf));
        }
        self.space_mut(stored.doc.kind.space()).push(slot, vector)?;
        if stored.lexical() {
            self.documents += 1;
            self.total_length += stored.length as u64;
        }
        Ok(())
    }

    /// Removes the document `id` (stored as `stored`).
    pub fn remove(&mut self, id: u64, stored: &StoredDoc) {
        let Some(slot) = self.slot_of.remove(&id) else {
            return;
        };
        self.docs[slot as usize] = None;
        for (term, _) in &stored.terms {
            if let Some(list) = self.postings.get_mut(term) {
                if let Ok(at) = list.binary_search_by_key(&slot, |p| p.0) {
                    list.remove(at);
                }
                if list.is_empty() {
                    self.postings.remove(term);
                }
            }
        }
        self.space_mut(stored.doc.kind.space()).remove(slot);
        if stored.lexical() {
            self.documents = self.documents.saturating_sub(1);
            self.total_length = self.total_length.saturating_sub(stored.length as u64);
        }
    }
}
