//! Event-driven ingest (`[watch]`): new videos in watched folders and S3 prefixes become
//! ingest jobs on their own, each with its events like any other job.
//!
//! - A folder (inside `allowed_roots`) is watched with its subfolders through `notify`
//!   (inotify here) and rescanned every `poll_seconds` in case events were missed. A file
//!   is taken once its size and modification time have held for `stable_seconds` (a copy
//!   still being written is not), then hashed: content already seen under another name (a
//!   rename, a second copy) is not ingested again. The video keeps its own copy (a hard
//!   link where possible), so renaming or deleting the watched file does not break it.
//! - An S3 prefix is listed every `poll_seconds`; an object whose entity tag was seen
//!   before is a copy, anything else is downloaded and ingested like an upload.
//! - What was seen is kept in the `watch` tree (file: size, time, content hash, video; S3
//!   object: entity tag, content hash, video), so a restart neither ingests the same file
//!   twice nor misses what arrived while it was down.
//! - Deletions delete the video only with `propagate_deletes`, and only when no other
//!   watched file has the same content.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reelforge_core::error::{Error, Result};
use reelforge_core::ids::video_id_from_sha256;
use reelforge_models::bedrock::{s3_location, BedrockConfig, Staging};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::catalog::Catalog;
use crate::config::WatchConfig;
use crate::ingest::paths::{resolve_inside_roots, resolve_server_path};
use crate::ingest::Ingest;
use crate::util::blocking;

/// What is remembered of a watched file or object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Seen {
    /// Files: size and modification time; objects: the entity tag.
    size: u64,
    modified_ms: i64,
    etag: String,
    sha256: String,
    /// The video it became (empty when it was refused).
    video_id: String,
    /// Why it was not ingested, if it was not.
    error: Option<String>,
}

/// A watched location.
#[derive(Debug, Clone)]
enum Source {
    Folder(PathBuf),
    S3(String),
}

impl Source {
    fn name(&self) -> String {
        match self {
            Source::Folder(p) => p.display().to_string(),
            Source::S3(uri) => uri.clone(),
        }
    }
}

pub struct Watch {
    config: WatchConfig,
    sources: Vec<Source>,
    tree: sled::Tree,
    ingest: Arc<Ingest>,
    catalog: Arc<Catalog>,
    bedrock: BedrockConfig,
    /// Where watched files may be read from (`allowed_roots`).
    roots: Vec<PathBuf>,
    uploads: PathBuf,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Watch {
    /// Checks the configured sources (a folder must exist inside `roots`).
    pub fn new(
        config: &WatchConfig,
        roots: &[PathBuf],
        db: &sled::Db,
        ingest: Arc<Ingest>,
        catalog: Arc<Catalog>,
        bedrock: &BedrockConfig,
        data_dir: &Path,
    ) -> Result<Watch> {
        let sources = config
            .sources
            .iter()
            .map(|s| match s.starts_with("s3://") {
                true => Ok(Source::S3(s.clone())),
                false => {
                    let dir = resolve_inside_roots(roots, s).map_err(|e| {
                        Error::invalid(format!("watch.sources: the folder {s:?}: {e}"))
                    })?;
                    if !dir.is_dir() {
                        return Err(Error::invalid(format!(
                            "watch.sources: {s:?} is not a folder"
                        )));
                    }
                    Ok(Source::Folder(dir))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Watch {
            config: config.clone(),
            sources,
            tree: db.open_tree("watch")?,
            ingest,
            catalog,
            bedrock: bedrock.clone(),
            roots: roots.to_vec(),
            uploads: data_dir.join("uploads"),
            tasks: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Starts watching every source (call once, on the runtime).
    pub fn start(self: &Arc<Self>) {
        let mut tasks = self.tasks.lock().expect("tasks poisoned");
        for source in self.sources.clone() {
            let w = self.clone();
            tasks.push(tokio::spawn(async move {
                let name = source.name();
                tracing::info!(source = %name, "watching for new videos");
                let outcome = match source {
                    Source::Folder(dir) => w.watch_folder(dir).await,
                    Source::S3(uri) => w.watch_s3(uri).await,
                };
                if let Err(e) = outcome {
                    tracing::error!(source = %name, "watching stopped: {e}");
                }
            }));
        }
    }

    /// Stops watching (at shutdown).
    pub fn stop(&self) {
        for task in self.tasks.lock().expect("tasks poisoned").drain(..) {
            task.abort();
        }
    }

    fn key(source: &str, item: &str) -> Vec<u8> {
        format!("{source}\0{item}").into_bytes()
    }

    async fn seen(&self, source: &str, item: &str) -> Result<Option<Seen>> {
        let (tree, key) = (self.tree.clone(), Self::key(source, item));
        blocking(move || {
            Ok(match tree.get(key)? {
                Some(v) => serde_json::from_slice(&v).ok(),
                None => None,
            })
        })
        .await
    }

    async fn remember(&self, source: &str, item: &str, seen: Seen) -> Result<()> {
        let (tree, key) = (self.tree.clone(), Self::key(source, item));
        blocking(move || {
            let bytes = serde_json::to_vec(&seen).map_err(|e| Error::internal(e.to_string()))?;
            tree.insert(key, bytes)?;
            tree.flush()?;
            Ok(())
        })
        .await
    }

    /// Every remembered item of `source`: (item, what was seen).
    async fn remembered(&self, source: &str) -> Result<Vec<(String, Seen)>> {
        let (tree, prefix) = (self.tree.clone(), Self::key(source, ""));
        blocking(move || {
            let mut out = Vec::new();
            for kv in tree.scan_prefix(&prefix) {
                let (k, v) = kv?;
                let item = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
                if let Ok(seen) = serde_json::from_slice(&v) {
                    out.push((item, seen));
                }
            }
            Ok(out)
        })
        .await
    }

    /// The first remembered item, of any source, matching `f`: its name ("source item")
    /// and what was seen.
    async fn find(
        &self,
        f: impl Fn(&Seen) -> bool + Send + 'static,
    ) -> Result<Option<(String, Seen)>> {
        let tree = self.tree.clone();
        blocking(move || {
            for kv in tree.iter() {
                let (k, v) = kv?;
                if let Ok(seen) = serde_json::from_slice::<Seen>(&v) {
                    if f(&seen) {
                        let name = String::from_utf8_lossy(&k).replace('\0', " ");
                        return Ok(Some((name, seen)));
                    }
                }
            }
            Ok(None)
        })
        .await
    }

    fn wanted(&self, name: &str) -> bool {
        let name = name.rsplit('/').next().unwrap_or(name);
        if name.starts_with('.') || name.ends_with(".part") || name.ends_with('~') {
            return false;
        }
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_lowercase());
        ext.is_some_and(|e| self.config.extensions.contains(&e))
    }

    // ---------------------------------------------------------------- folders

    async fn watch_folder(self: &Arc<Self>, dir: PathBuf) -> Result<()> {
        use notify::Watcher as _;
        let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
        let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            if let Ok(event) = res {
                for path in event.paths {
                    let _ = tx.send(path);
                }
            }
        })
        .map_err(|e| Error::Unavailable(format!("cannot watch {}: {e}", dir.display())))?;
        watcher
            .watch(&dir, notify::RecursiveMode::Recursive)
            .map_err(|e| Error::Unavailable(format!("cannot watch {}: {e}", dir.display())))?;
        let source = dir.display().to_string();
        let stable = Duration::from_secs_f64(self.config.stable_seconds);
        let poll = Duration::from_secs_f64(self.config.poll_seconds);
        // path → (size, modified, unchanged since).
        let mut pending: HashMap<PathBuf, (u64, SystemTime, Instant)> = HashMap::new();
        let mut last_scan: Option<Instant> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                Some(path) = rx.recv() => {
                    // New and changed files wait to be stable; a removal is settled by the
                    // next rescan, once nothing is pending (a rename's new name must be
                    // known before its old one counts as deleted).
                    if path.is_file() {
                        pending.entry(path).or_insert((u64::MAX, SystemTime::UNIX_EPOCH, Instant::now()));
                    } else if !path.exists() {
                        pending.remove(&path);
                    }
                }
                _ = tick.tick() => {
                    if last_scan.is_none_or(|t| t.elapsed() >= poll) {
                        last_scan = Some(Instant::now());
                        self.rescan(&dir, &source, &mut pending).await;
                    }
                    let mut ready = Vec::new();
                    for (path, (size, modified, since)) in pending.iter_mut() {
                        let Ok(meta) = std::fs::metadata(path) else { continue };
                        let now = (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
                        if now != (*size, *modified) {
                            (*size, *modified, *since) = (now.0, now.1, Instant::now());
                        } else if since.elapsed() >= stable {
                            ready.push(path.clone());
                        }
                    }
                    for path in ready {
                        if let Some((size, modified, _)) = pending.remove(&path) {
                            if let Err(e) = self.take_file(&source, &path, size, modified).await {
                                tracing::warn!(file = %path.display(), "watch: {e}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// Files in `dir` not yet taken as they are now go to `pending`; remembered files
    /// that are gone are handled as deletions.
    async fn rescan(
        &self,
        dir: &Path,
        source: &str,
        pending: &mut HashMap<PathBuf, (u64, SystemTime, Instant)>,
    ) {
        let root = dir.to_path_buf();
        let files = blocking(move || Ok(walk(&root))).await.unwrap_or_default();
        let remembered: HashMap<String, Seen> = self
            .remembered(source)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
        for (path, size, modified) in &files {
            let name = path.display().to_string();
            let same = remembered
                .get(&name)
                .is_some_and(|s| s.size == *size && s.modified_ms == millis(*modified));
            if !same && self.wanted(&name) {
                pending.entry(path.clone()).or_insert((
                    u64::MAX,
                    SystemTime::UNIX_EPOCH,
                    Instant::now(),
                ));
            }
        }
        if !pending.is_empty() {
            return;
        }
        for name in remembered.keys() {
            if !files
                .iter()
                .any(|(p, _, _)| &p.display().to_string() == name)
            {
                self.gone(source, name).await;
            }
        }
    }

    /// A stable file: ingested unless its content was seen before. The video keeps a
    /// copy of its own (a hard link when the file system allows), so a later rename or
    /// deletion of the watched file leaves the video whole.
    async fn take_file(
        &self,
        source: &str,
        path: &Path,
        size: u64,
        modified: SystemTime,
    ) -> Result<()> {
        let name = path.display().to_string();
        if !self.wanted(&name) {
            return Ok(());
        }
        if let Some(s) = self.seen(source, &name).await? {
            if s.size == size && s.modified_ms == millis(modified) {
                return Ok(());
            }
        }
        let seen = Seen {
            size,
            modified_ms: millis(modified),
            etag: String::new(),
            sha256: String::new(),
            video_id: String::new(),
            error: None,
        };
        // The same confinement as IngestPath: a link out of the allowed roots is refused.
        let (roots, requested) = (self.roots.clone(), name.clone());
        let checked = blocking(move || resolve_server_path(&roots, &requested)).await;
        let canonical = match checked {
            Ok(p) => p,
            Err(e) => return self.refused(source, &name, seen, e).await,
        };
        let temp = self.temp_file().await?;
        let (from, to) = (canonical, temp.clone());
        blocking(move || {
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to)?;
            }
            Ok(())
        })
        .await?;
        let filename = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.ingest_copy(source, &name, temp, filename, seen).await
    }

    /// A fresh path under `uploads/` for a copy to ingest.
    async fn temp_file(&self) -> Result<PathBuf> {
        tokio::fs::create_dir_all(&self.uploads).await?;
        Ok(self.uploads.join(format!("{}.part", uuid::Uuid::new_v4())))
    }

    /// Records why `item` was not ingested (it is not tried again until it changes).
    async fn refused(&self, source: &str, item: &str, mut seen: Seen, e: Error) -> Result<()> {
        tracing::warn!(item, "watch: not ingested: {e}");
        seen.error = Some(e.to_string());
        self.remember(source, item, seen).await
    }

    /// Ingests `temp` (a copy of `item` under `uploads/`) unless its content was seen
    /// before, and remembers `item`.
    async fn ingest_copy(
        &self,
        source: &str,
        item: &str,
        temp: PathBuf,
        filename: String,
        mut seen: Seen,
    ) -> Result<()> {
        let t = temp.clone();
        let hashed = blocking(move || {
            let size = std::fs::metadata(&t)?.len();
            Ok((crate::ingest::sha256_file(&t)?, size))
        })
        .await;
        let (sha256, size) = match hashed {
            Ok(h) => h,
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                return Err(e);
            }
        };
        seen.sha256 = sha256.clone();
        seen.video_id = video_id_from_sha256(&sha256);
        let sha = sha256.clone();
        if let Some((other, _)) = self
            .find(move |s| s.sha256 == sha && !s.video_id.is_empty())
            .await?
        {
            let _ = tokio::fs::remove_file(&temp).await;
            tracing::info!(item, "watch: same content as {other}; not ingested again");
            return self.remember(source, item, seen).await;
        }
        match self
            .ingest
            .ingest_downloaded(temp, filename, sha256, size)
            .await
        {
            Ok(job) => {
                tracing::info!(item, job = %job.id(), "watch: ingesting");
                self.remember(source, item, seen).await
            }
            Err(e) => {
                seen.video_id.clear();
                self.refused(source, item, seen, e).await
            }
        }
    }

    /// A remembered file or object is gone: forgotten, and with `propagate_deletes` its
    /// video deleted when nothing else watched has its content.
    async fn gone(&self, source: &str, item: &str) {
        let Ok(Some(seen)) = self.seen(source, item).await else {
            return;
        };
        let (tree, key) = (self.tree.clone(), Self::key(source, item));
        let _ = blocking(move || {
            tree.remove(key)?;
            Ok(())
        })
        .await;
        if !self.config.propagate_deletes || seen.video_id.is_empty() {
            return;
        }
        let sha = seen.sha256.clone();
        if let Ok(Some((other, _))) = self.find(move |s| s.sha256 == sha).await {
            tracing::info!(
                item,
                "watch: deleted, but {other} has the same content; the video stays"
            );
            return;
        }
        match self
            .catalog
            .delete_video(crate::DEFAULT_TENANT, &seen.video_id)
            .await
        {
            Ok(_) => {
                tracing::info!(item, video = %seen.video_id, "watch: deleted, and so is its video")
            }
            Err(e) => {
                tracing::warn!(item, video = %seen.video_id, "watch: could not delete the video: {e}")
            }
        }
    }

    // ---------------------------------------------------------------- S3

    async fn watch_s3(self: &Arc<Self>, uri: String) -> Result<()> {
        let location = s3_location(&self.bedrock, &uri).await?;
        let poll = Duration::from_secs_f64(self.config.poll_seconds);
        loop {
            if let Err(e) = self.list_once(&location, &uri).await {
                tracing::warn!(source = %uri, "watch: listing failed, trying again in {poll:?}: {e}");
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// One listing: new objects ingested, vanished ones handled as deletions.
    async fn list_once(&self, location: &Staging, uri: &str) -> Result<()> {
        let objects = location.list_objects(&location.root()).await?;
        let remembered: HashMap<String, Seen> = self.remembered(uri).await?.into_iter().collect();
        for o in &objects {
            if o.key.ends_with('/') || !self.wanted(&o.key) {
                continue;
            }
            if remembered
                .get(&o.key)
                .is_some_and(|s| s.etag == o.etag && s.size == o.size)
            {
                continue;
            }
            if let Err(e) = self.take_object(location, uri, o).await {
                tracing::warn!(object = %location.uri(&o.key), "watch: {e}");
            }
        }
        for key in remembered.keys() {
            if !objects.iter().any(|o| &o.key == key) {
                self.gone(uri, key).await;
            }
        }
        Ok(())
    }

    async fn take_object(
        &self,
        location: &Staging,
        uri: &str,
        o: &reelforge_models::bedrock::staging::S3Object,
    ) -> Result<()> {
        let mut seen = Seen {
            size: o.size,
            modified_ms: 0,
            etag: o.etag.clone(),
            sha256: String::new(),
            video_id: String::new(),
            error: None,
        };
        // The same entity tag is the same bytes (a copy): known without downloading.
        let etag = o.etag.clone();
        let known = match etag.is_empty() {
            true => None,
            false => {
                self.find(move |s| s.etag == etag && !s.video_id.is_empty())
                    .await?
            }
        };
        if let Some((_, other)) = known {
            tracing::info!(object = %location.uri(&o.key), "watch: a copy of an object seen before; not ingested again");
            seen.sha256 = other.sha256;
            seen.video_id = other.video_id;
            return self.remember(uri, &o.key, seen).await;
        }
        let limit = self.ingest.config().ingest.max_upload_bytes;
        if o.size > limit {
            let e = Error::invalid(format!(
                "{} is {} bytes, over ingest.max_upload_bytes ({limit})",
                location.uri(&o.key),
                o.size
            ));
            return self.refused(uri, &o.key, seen, e).await;
        }
        let temp = self.temp_file().await?;
        if let Err(e) = location.download(&o.key, &temp).await {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(e);
        }
        let filename = o.key.rsplit('/').next().unwrap_or(&o.key).to_string();
        self.ingest_copy(uri, &o.key, temp, filename, seen).await
    }
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Every file under `dir` with its size and modification time.
fn walk(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                out.push((
                    entry.path(),
                    meta.len(),
                    meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                ));
            }
        }
    }
    out
}
