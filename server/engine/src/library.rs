//! The library service: past highlight clips (from any video) with a category, tags, a
//! description and a score, stored in sled trees of its own with the clip's look (the
//! mean visual descriptor of its clips) and a text embedding of its words, so they
//! outlive the video they came from. A category can carry an ordered highlight script.
//! The Template strategy matches a new video's clips against the entries. With a video
//! embedder configured, an entry also keeps its clips' video embeddings (picture and
//! sound), made when it is added or, for older entries, when Template first needs them
//! and the video is still here.

use std::collections::BTreeMap;
use std::sync::Arc;

use reelforge_core::error::{Error, Result};
use reelforge_core::ids::validate_video_id;
use reelforge_core::page::{Page, PageRequest};
use reelforge_core::script::parse_script;
use reelforge_core::vector::l2_normalise;
use reelforge_models::{EmbedPurpose, TextEmbedder, VideoEmbedder};
use serde::{Deserialize, Serialize};
use sled::{Db, Tree};

use crate::catalog::Catalog;
use crate::store::{now_unix_ms, EmbeddingKind};
use crate::util::blocking;

/// Longest description or tag list kept.
const MAX_TEXT_CHARS: usize = 2_000;
const MAX_TAGS: usize = 32;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LibraryEntry {
    pub entry_id: String,
    /// Whose library it is in: only keys of this tenant see it and match against it.
    #[serde(default = "crate::store::default_tenant")]
    pub tenant: String,
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
    /// The video embedding of each clip it covers, by `video_embedder` (empty without one).
    #[serde(default)]
    pub clip_videos: Vec<Vec<f32>>,
    #[serde(default)]
    pub video_embedder: String,
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
    pub start_seconds: f64,
    pub end_seconds: f64,
    pub category: String,
    pub tags: Vec<String>,
    pub description: String,
    /// 0..1: how good a highlight it was (`None`: 1).
    pub score: Option<f32>,
}

/// An entry's score when the caller gives none.
const DEFAULT_SCORE: f32 = 1.0;

/// Seconds a caller gives, as ms: finite and not negative.
fn ms(seconds: f64, field: &str) -> Result<i64> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(Error::invalid(format!(
            "{field} must be a non-negative number of seconds, got {seconds}"
        )));
    }
    Ok((seconds * 1000.0).round() as i64)
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

/// The library's sled trees: entries and category scripts. Every method is blocking.
#[derive(Clone)]
pub struct LibraryStore {
    entries: Tree,
    scripts: Tree,
}

impl LibraryStore {
    pub fn open(db: &Db) -> Result<LibraryStore> {
        Ok(LibraryStore {
            entries: db.open_tree("library_entries")?,
            scripts: db.open_tree("library_scripts")?,
        })
    }

    pub fn put(&self, entry: &LibraryEntry) -> Result<()> {
        self.entries
            .insert(entry.entry_id.as_bytes(), serde_json::to_vec(entry)?)?;
        self.entries.flush()?;
        Ok(())
    }

    /// `tenant`'s entries of `category` (all when `None`), oldest first within a category.
    pub fn list(&self, tenant: &str, category: Option<&str>) -> Result<Vec<LibraryEntry>> {
        let mut out: Vec<LibraryEntry> = self
            .entries
            .iter()
            .values()
            .map(|v| Ok(serde_json::from_slice::<LibraryEntry>(&v?)?))
            .collect::<Result<_>>()?;
        out.retain(|e| e.tenant == tenant && category.is_none_or(|c| e.category == c));
        out.sort_by(|a, b| {
            (&a.category, a.created_unix_ms, &a.entry_id).cmp(&(
                &b.category,
                b.created_unix_ms,
                &b.entry_id,
            ))
        });
        Ok(out)
    }

    pub fn remove(&self, tenant: &str, entry_id: &str) -> Result<LibraryEntry> {
        let missing = || {
            Error::NotFound(format!(
                "no library entry with id {entry_id} (see `reelforge library list`)"
            ))
        };
        let stored = self.entries.get(entry_id.as_bytes())?.ok_or_else(missing)?;
        let entry: LibraryEntry = serde_json::from_slice(&stored)?;
        if entry.tenant != tenant {
            return Err(missing());
        }
        self.entries.remove(entry_id.as_bytes())?;
        self.entries.flush()?;
        Ok(entry)
    }

    /// Sets a category's ordered highlight script; no events removes it.
    pub fn set_script(&self, tenant: &str, category: &str, events: &[String]) -> Result<()> {
        let category = check_category(category)?;
        let key = script_key(tenant, &category);
        if events.is_empty() {
            self.scripts.remove(key.as_bytes())?;
        } else {
            self.scripts
                .insert(key.as_bytes(), serde_json::to_vec(events)?)?;
        }
        self.scripts.flush()?;
        Ok(())
    }

    pub fn script(&self, tenant: &str, category: &str) -> Result<Vec<String>> {
        Ok(
            match self.scripts.get(script_key(tenant, category).as_bytes())? {
                Some(v) => serde_json::from_slice(&v)?,
                None => Vec::new(),
            },
        )
    }

    /// `tenant`'s category scripts.
    pub fn scripts(&self, tenant: &str) -> Result<BTreeMap<String, Vec<String>>> {
        let mut out = BTreeMap::new();
        for kv in self.scripts.iter() {
            let (k, v) = kv?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let (owner, category) = match key.split_once('/') {
                Some((t, c)) => (t.to_string(), c.to_string()),
                None => (crate::DEFAULT_TENANT.to_string(), key),
            };
            if owner == tenant {
                out.insert(category, serde_json::from_slice(&v)?);
            }
        }
        Ok(out)
    }
}

/// A category script's key: the category for the default tenant (as before tenants),
/// `tenant/category` for the others (categories hold no '/').
fn script_key(tenant: &str, category: &str) -> String {
    if tenant == crate::DEFAULT_TENANT {
        category.to_string()
    } else {
        format!("{tenant}/{category}")
    }
}

/// A category's entries and script, as the Template strategy reads them.
pub struct Category {
    pub entries: Vec<LibraryEntry>,
    /// The category's script (empty for no category, or none set).
    pub script: Vec<String>,
}

pub struct Library {
    store: LibraryStore,
    catalog: Arc<Catalog>,
    text_embedder: Arc<dyn TextEmbedder>,
    video_embedder: Option<Arc<dyn VideoEmbedder>>,
}

impl Library {
    pub fn new(
        store: LibraryStore,
        catalog: Arc<Catalog>,
        text_embedder: Arc<dyn TextEmbedder>,
        video_embedder: Option<Arc<dyn VideoEmbedder>>,
    ) -> Library {
        Library {
            store,
            catalog,
            text_embedder,
            video_embedder,
        }
    }

    /// The clips of `e`'s video it covers, as `prepare` chose them for its look.
    fn clips_of(e: &LibraryEntry, video: &crate::store::VideoRecord) -> Vec<(u32, i64, i64)> {
        let clip_ms = video.clip_ms.max(1);
        let all: Vec<(u32, i64, i64)> = Catalog::clip_grid(video)
            .into_iter()
            .filter(|&(_, s, end)| s < e.end_ms && end > e.start_ms)
            .collect();
        let overlap = |&(_, s, end): &(u32, i64, i64)| end.min(e.end_ms) - s.max(e.start_ms);
        let mostly: Vec<(u32, i64, i64)> = all
            .iter()
            .copied()
            .filter(|c| overlap(c) * 2 >= clip_ms.min(c.2 - c.1))
            .collect();
        if mostly.is_empty() {
            all
        } else {
            mostly
        }
    }

    /// Gives `e` the video embeddings of its clips when a video embedder is configured
    /// and its video is still stored; `Ok(false)` when it cannot have them.
    async fn embed_clip_videos(&self, e: &mut LibraryEntry) -> Result<bool> {
        let Some(embedder) = &self.video_embedder else {
            return Ok(false);
        };
        if e.video_embedder == embedder.name() && !e.clip_videos.is_empty() {
            return Ok(true);
        }
        let Some(video) = self.catalog.find(&e.video_id).await? else {
            return Ok(false);
        };
        let clips = Self::clips_of(e, &video);
        let vectors = self
            .catalog
            .clip_video_vectors(&video, embedder.as_ref(), &clips)
            .await?;
        e.clip_videos = vectors.into_iter().filter(|v| !v.is_empty()).collect();
        e.video_embedder = embedder.name().to_string();
        Ok(!e.clip_videos.is_empty())
    }

    /// `entries` with their clips' video embeddings by the configured video embedder
    /// (made and kept for those that lack them and whose video is still stored).
    pub async fn with_clip_videos(
        &self,
        mut entries: Vec<LibraryEntry>,
    ) -> Result<Vec<LibraryEntry>> {
        for e in &mut entries {
            let had = e.video_embedder.clone();
            if self.embed_clip_videos(e).await? && had != e.video_embedder {
                let (store, stored) = (self.store.clone(), e.clone());
                blocking(move || store.put(&stored)).await?;
            }
        }
        Ok(entries)
    }

    /// Adds an entry cut from a stored video, with a text embedding of its words.
    pub async fn add(&self, tenant: &str, new: NewEntry) -> Result<LibraryEntry> {
        let mut e = self.prepare(tenant, &new).await?;
        let text = self
            .text_embedder
            .embed(&[e.words()], EmbedPurpose::Index)
            .await?;
        e.text = text
            .into_iter()
            .next()
            .map(|t| t.vector)
            .unwrap_or_default();
        e.text_embedder = self.text_embedder.name().to_string();
        self.embed_clip_videos(&mut e).await?;
        let (store, stored) = (self.store.clone(), e.clone());
        blocking(move || store.put(&stored)).await?;
        Ok(e)
    }

    /// One page of the entries of `category` (every one for ""), by category and then
    /// oldest first, and on the first page the categories' scripts.
    pub async fn list(
        &self,
        tenant: &str,
        category: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Page<LibraryEntry>, BTreeMap<String, Vec<String>>)> {
        let category = match category.trim() {
            "" => None,
            c => Some(check_category(c)?),
        };
        let page = PageRequest::parse(
            page_size,
            page_token,
            &format!("category={}", category.as_deref().unwrap_or("")),
        )?;
        let (store, tenant) = (self.store.clone(), tenant.to_string());
        blocking(move || {
            let mut scripts = match page.is_first() {
                true => store.scripts(&tenant)?,
                false => BTreeMap::new(),
            };
            if let Some(c) = &category {
                scripts.retain(|k, _| k == c);
            }
            let entries = page.cut(store.list(&tenant, category.as_deref())?, |e| {
                format!(
                    "{}\n{:020}\n{}",
                    e.category,
                    e.created_unix_ms.max(0),
                    e.entry_id
                )
            });
            Ok((entries, scripts))
        })
        .await
    }

    /// The entries of `category` (every entry for `None`) and its script.
    pub async fn category(&self, tenant: &str, category: Option<&str>) -> Result<Category> {
        let category = category.map(check_category).transpose()?;
        let (store, tenant) = (self.store.clone(), tenant.to_string());
        blocking(move || {
            let entries = store.list(&tenant, category.as_deref())?;
            let script = match &category {
                Some(c) => store.script(&tenant, c)?,
                None => Vec::new(),
            };
            Ok(Category { entries, script })
        })
        .await
    }

    pub async fn remove(&self, tenant: &str, entry_id: &str) -> Result<LibraryEntry> {
        if uuid::Uuid::parse_str(entry_id).is_err() {
            return Err(Error::invalid(format!(
                "entry_id: {entry_id:?} is not a library entry id"
            )));
        }
        let (store, id, tenant) = (self.store.clone(), entry_id.to_string(), tenant.to_string());
        blocking(move || store.remove(&tenant, &id)).await
    }

    /// Sets a category's script from its text (events in order; empty text removes it);
    /// returns the category and its events.
    pub async fn set_script(
        &self,
        tenant: &str,
        category: &str,
        script: &str,
    ) -> Result<(String, Vec<String>)> {
        let category = check_category(category)?;
        let events = if script.trim().is_empty() {
            Vec::new()
        } else {
            parse_script(script)?
        };
        let (store, c, e, t) = (
            self.store.clone(),
            category.clone(),
            events.clone(),
            tenant.to_string(),
        );
        blocking(move || store.set_script(&t, &c, &e)).await?;
        Ok((category, events))
    }

    /// Checks `new` against the stored video and builds the entry; the text vector is
    /// filled in by the caller.
    async fn prepare(&self, tenant: &str, new: &NewEntry) -> Result<LibraryEntry> {
        validate_video_id(&new.video_id).map_err(|_| {
            Error::invalid(format!("video_id: {:?} is not a video id", new.video_id))
        })?;
        let (start_ms, end_ms) = (
            ms(new.start_seconds, "start_seconds")?,
            ms(new.end_seconds, "end_seconds")?,
        );
        let score = new.score.unwrap_or(DEFAULT_SCORE);
        let category = check_category(&new.category)?;
        let video = self.catalog.owned(tenant, &new.video_id).await?;
        let duration = video.probe.duration_ms;
        if start_ms < 0 || end_ms <= start_ms || end_ms > duration {
            return Err(Error::invalid(format!(
                "the entry's times must satisfy 0 <= start < end <= the video's duration ({:.1} s), got {:.1}-{:.1} s",
                duration as f64 / 1000.0,
                start_ms as f64 / 1000.0,
                end_ms as f64 / 1000.0
            )));
        }
        if !(0.0..=1.0).contains(&score) {
            return Err(Error::invalid(format!(
                "score must be within 0..1, got {score}"
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
            (e.min(end_ms) - s.max(start_ms)).max(0)
        };
        let descriptors = self
            .catalog
            .embeddings(&video.video_id, EmbeddingKind::VisualDescriptor)
            .await?;
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
                start_ms as f64 / 1000.0,
                end_ms as f64 / 1000.0
            )));
        }
        l2_normalise(&mut look);
        Ok(LibraryEntry {
            tenant: tenant.to_string(),
            entry_id: uuid::Uuid::new_v4().to_string(),
            category,
            tags,
            description,
            score,
            video_id: video.video_id.clone(),
            filename: video.filename.clone(),
            start_ms,
            end_ms,
            look,
            clip_looks,
            text: Vec::new(),
            text_embedder: String::new(),
            created_unix_ms: now_unix_ms(),
            clip_videos: Vec::new(),
            video_embedder: String::new(),
        })
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
        let db = sled::Config::new().temporary(true).open().unwrap();
        let lib = LibraryStore::open(&db).unwrap();
        lib.set_script(
            "default",
            "sports",
            &["the start".into(), "the finish".into()],
        )
        .unwrap();
        lib.set_script("acme", "sports", &["the jump".into()])
            .unwrap();
        assert_eq!(lib.script("default", "sports").unwrap().len(), 2);
        assert_eq!(
            lib.script("acme", "sports").unwrap(),
            vec!["the jump".to_string()]
        );
        assert_eq!(lib.scripts("acme").unwrap().len(), 1);
        lib.set_script("default", "sports", &[]).unwrap();
        assert!(lib.scripts("default").unwrap().is_empty());
        assert_eq!(lib.scripts("acme").unwrap().len(), 1, "each tenant's own");
        let entry = LibraryEntry {
            entry_id: "e1".into(),
            tenant: "default".into(),
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
            clip_videos: vec![],
            video_embedder: String::new(),
        };
        lib.put(&entry).unwrap();
        assert_eq!(entry.words(), "a jump (bike)");
        assert_eq!(
            lib.list("default", Some("sports")).unwrap(),
            vec![entry.clone()]
        );
        assert!(lib.list("default", Some("news")).unwrap().is_empty());
        assert!(lib.list("acme", None).unwrap().is_empty());
        assert!(
            matches!(lib.remove("acme", "e1"), Err(Error::NotFound(_))),
            "another tenant's entry is not found"
        );
        assert_eq!(lib.remove("default", "e1").unwrap(), entry);
        assert!(matches!(
            lib.remove("default", "e1"),
            Err(Error::NotFound(_))
        ));
    }
}
