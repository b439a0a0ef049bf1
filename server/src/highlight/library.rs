//! The highlight library: past highlight clips (from any video) with a category, tags, a
//! description and a score, stored in sled with the clip's look (the mean visual descriptor
//! of its clips) and a text embedding of its words, so they outlive the video they came
//! from. A category can carry an ordered highlight script. The Template strategy matches a
//! new video's clips against the entries.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sled::{Db, Tree};

use crate::analysis::visual::l2_normalise;
use crate::error::{Error, Result};
use crate::store::{now_unix_ms, EmbeddingKind, Store};

/// Longest description or tag list kept.
const MAX_TEXT_CHARS: usize = 2_000;
const MAX_TAGS: usize = 32;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LibraryEntry {
    pub entry_id: String,
    pub category: String,
    pub tags: Vec<String>,
    pub description: String,
    /// 0..1: how good a highlight it was.
    pub score: f32,
    /// Where it came from (the video may since have been deleted).
    pub video_id: String,
    pub filename: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Mean visual descriptor of the clips it covers, L2-normalised.
    pub look: Vec<f32>,
    /// The descriptor of each clip it covers: a clip is matched against the closest one,
    /// as a mean blurs an entry whose shots differ.
    #[serde(default)]
    pub clip_looks: Vec<Vec<f32>>,
    /// The description and tags, by `text_embedder`.
    pub text: Vec<f32>,
    pub text_embedder: String,
    pub created_unix_ms: i64,
}

impl LibraryEntry {
    /// The words the entry is known by.
    pub fn words(&self) -> String {
        words(&self.description, &self.tags)
    }
}

fn words(description: &str, tags: &[String]) -> String {
    match (description.trim(), tags.is_empty()) {
        (d, true) => d.to_string(),
        ("", false) => tags.join(", "),
        (d, false) => format!("{d} ({})", tags.join(", ")),
    }
}

/// What a caller gives to add an entry.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub video_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub category: String,
    pub tags: Vec<String>,
    pub description: String,
    pub score: f32,
}

/// A category name: lowercase letters, digits, `-` and `_`, 1-64 characters.
pub fn check_category(category: &str) -> Result<String> {
    let c = category.trim().to_lowercase();
    if c.is_empty()
        || c.len() > 64
        || !c
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(Error::invalid(format!(
            "category {category:?} must be 1-64 characters of letters, digits, '-' and '_'"
        )));
    }
    Ok(c)
}

#[derive(Clone)]
pub struct Library {
    entries: Tree,
    scripts: Tree,
}

impl Library {
    pub fn open(db: &Db) -> Result<Library> {
        Ok(Library {
            entries: db.open_tree("library_entries")?,
            scripts: db.open_tree("library_scripts")?,
        })
    }

    /// Checks `new` against the stored video and builds the entry (blocking); the text
    /// vector is filled in by the caller.
    pub fn prepare(store: &Store, new: &NewEntry) -> Result<LibraryEntry> {
        crate::store::keys::validate_video_id(&new.video_id).map_err(|_| {
            Error::invalid(format!("video_id: {:?} is not a video id", new.video_id))
        })?;
        let category = check_category(&new.category)?;
        let video = store.video(&new.video_id)?.ok_or_else(|| {
            Error::NotFound(format!(
                "no video with id {} (see `reelforge videos list`)",
                new.video_id
            ))
        })?;
        let duration = video.probe.duration_ms;
        if new.start_ms < 0 || new.end_ms <= new.start_ms || new.end_ms > duration {
            return Err(Error::invalid(format!(
                "the entry's times must satisfy 0 <= start < end <= the video's duration ({:.1} s), got {:.1}-{:.1} s",
                duration as f64 / 1000.0,
                new.start_ms as f64 / 1000.0,
                new.end_ms as f64 / 1000.0
            )));
        }
        if !(0.0..=1.0).contains(&new.score) {
            return Err(Error::invalid(format!(
                "score must be within 0..1, got {}",
                new.score
            )));
        }
        let tags: Vec<String> = new
            .tags
            .iter()
            .map(|t| t.trim().to_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        let description = new.description.trim().to_string();
        if description.is_empty() && tags.is_empty() {
            return Err(Error::invalid(
                "an entry needs a description or at least one tag: they are what scripts and searches match",
            ));
        }
        if description.chars().count() > MAX_TEXT_CHARS || tags.len() > MAX_TAGS {
            return Err(Error::invalid(format!(
                "description is limited to {MAX_TEXT_CHARS} characters and tags to {MAX_TAGS}"
            )));
        }
        // The look: the mean descriptor of the clips at least half inside the entry (or of
        // every clip it touches, when it is shorter than that).
        let clip_ms = video.clip_ms.max(1);
        let overlap = |owner: u32| {
            let (s, e) = (owner as i64 * clip_ms, (owner as i64 + 1) * clip_ms);
            (e.min(new.end_ms) - s.max(new.start_ms)).max(0)
        };
        let descriptors = store.embeddings(&video.video_id, EmbeddingKind::VisualDescriptor)?;
        let mostly_inside = descriptors.iter().any(|(o, _)| overlap(*o) * 2 >= clip_ms);
        let mut look: Vec<f32> = Vec::new();
        let mut clip_looks = Vec::new();
        let mut n = 0;
        for (owner, v) in descriptors {
            let o = overlap(owner);
            if o == 0 || (mostly_inside && o * 2 < clip_ms) {
                continue;
            }
            if look.is_empty() {
                look = vec![0.0; v.len()];
            }
            for (a, b) in look.iter_mut().zip(&v) {
                *a += b;
            }
            clip_looks.push(v);
            n += 1;
        }
        if n == 0 {
            return Err(Error::FailedPrecondition(format!(
                "video {} has no visual descriptors for {:.1}-{:.1} s; ingest it again",
                video.video_id,
                new.start_ms as f64 / 1000.0,
                new.end_ms as f64 / 1000.0
            )));
        }
        l2_normalise(&mut look);
        Ok(LibraryEntry {
            entry_id: uuid::Uuid::new_v4().to_string(),
            category,
            tags,
            description,
            score: new.score,
            video_id: video.video_id.clone(),
            filename: video.filename.clone(),
            start_ms: new.start_ms,
            end_ms: new.end_ms,
            look,
            clip_looks,
            text: Vec::new(),
            text_embedder: String::new(),
            created_unix_ms: now_unix_ms(),
        })
    }

    pub fn put(&self, entry: &LibraryEntry) -> Result<()> {
        self.entries
            .insert(entry.entry_id.as_bytes(), serde_json::to_vec(entry)?)?;
        self.entries.flush()?;
        Ok(())
    }

    /// Entries of `category` (all when `None`), oldest first within a category.
    pub fn list(&self, category: Option<&str>) -> Result<Vec<LibraryEntry>> {
        let mut out: Vec<LibraryEntry> = self
            .entries
            .iter()
            .values()
            .map(|v| Ok(serde_json::from_slice::<LibraryEntry>(&v?)?))
            .collect::<Result<_>>()?;
        out.retain(|e| category.is_none_or(|c| e.category == c));
        out.sort_by(|a, b| {
            (&a.category, a.created_unix_ms, &a.entry_id).cmp(&(
                &b.category,
                b.created_unix_ms,
                &b.entry_id,
            ))
        });
        Ok(out)
    }

    pub fn remove(&self, entry_id: &str) -> Result<LibraryEntry> {
        let removed = self.entries.remove(entry_id.as_bytes())?.ok_or_else(|| {
            Error::NotFound(format!(
                "no library entry with id {entry_id} (see `reelforge library list`)"
            ))
        })?;
        self.entries.flush()?;
        Ok(serde_json::from_slice(&removed)?)
    }

    /// Sets a category's ordered highlight script; no events removes it.
    pub fn set_script(&self, category: &str, events: &[String]) -> Result<()> {
        let category = check_category(category)?;
        if events.is_empty() {
            self.scripts.remove(category.as_bytes())?;
        } else {
            self.scripts
                .insert(category.as_bytes(), serde_json::to_vec(events)?)?;
        }
        self.scripts.flush()?;
        Ok(())
    }

    pub fn script(&self, category: &str) -> Result<Vec<String>> {
        Ok(match self.scripts.get(category.as_bytes())? {
            Some(v) => serde_json::from_slice(&v)?,
            None => Vec::new(),
        })
    }

    pub fn scripts(&self) -> Result<BTreeMap<String, Vec<String>>> {
        self.scripts
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((
                    String::from_utf8_lossy(&k).into_owned(),
                    serde_json::from_slice(&v)?,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_are_checked_and_lowercased() {
        assert_eq!(check_category(" Sports ").unwrap(), "sports");
        assert!(check_category("").is_err());
        assert!(check_category("a/b").is_err());
    }

    #[test]
    fn scripts_and_entries_round_trip_and_removal_reports_missing_ids() {
        let store = Store::temporary().unwrap();
        let lib = Library::open(store.db()).unwrap();
        lib.set_script("sports", &["the start".into(), "the finish".into()])
            .unwrap();
        assert_eq!(lib.script("sports").unwrap().len(), 2);
        lib.set_script("sports", &[]).unwrap();
        assert!(lib.scripts().unwrap().is_empty());
        let entry = LibraryEntry {
            entry_id: "e1".into(),
            category: "sports".into(),
            tags: vec!["bike".into()],
            description: "a jump".into(),
            score: 0.9,
            video_id: "v".into(),
            filename: "f.mp4".into(),
            start_ms: 0,
            end_ms: 1000,
            look: vec![1.0],
            clip_looks: vec![vec![1.0]],
            text: vec![1.0],
            text_embedder: "t".into(),
            created_unix_ms: 1,
        };
        lib.put(&entry).unwrap();
        assert_eq!(entry.words(), "a jump (bike)");
        assert_eq!(lib.list(Some("sports")).unwrap(), vec![entry.clone()]);
        assert!(lib.list(Some("news")).unwrap().is_empty());
        assert_eq!(lib.remove("e1").unwrap(), entry);
        assert!(matches!(lib.remove("e1"), Err(Error::NotFound(_))));
    }
}
