//! Receiving an uploaded video: bytes go to a temporary file under the data dir while
//! being hashed, with the size checked against the limit and the announced size.

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{Ingest, IngestOptions};
use crate::jobs::JobHandle;
use reelforge_core::error::{Error, Result};

pub struct Upload {
    ingest: Arc<Ingest>,
    filename: String,
    expected_size: Option<u64>,
    options: IngestOptions,
    path: PathBuf,
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    received: u64,
}

impl Upload {
    pub(super) async fn begin(
        ingest: Arc<Ingest>,
        filename: &str,
        expected_size: Option<u64>,
        options: IngestOptions,
    ) -> Result<Upload> {
        let limit = ingest.config().ingest.max_upload_bytes;
        if let Some(size) = expected_size {
            if size > limit {
                return Err(Error::invalid(format!(
                    "upload of {size} bytes exceeds the server's max_upload_bytes ({limit})"
                )));
            }
        }
        let dir = ingest.config().data_dir.join("uploads");
        tokio::fs::create_dir_all(&dir).await?;
        let path = dir.join(format!("{}.part", uuid::Uuid::new_v4()));
        let file = tokio::fs::File::create(&path).await?;
        Ok(Upload {
            ingest,
            filename: sanitise_filename(filename),
            expected_size,
            options,
            path,
            file: Some(file),
            hasher: Sha256::new(),
            received: 0,
        })
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.received += chunk.len() as u64;
        let limit = self.ingest.config().ingest.max_upload_bytes;
        if self.received > limit {
            return Err(Error::invalid(format!(
                "upload exceeds the server's max_upload_bytes ({limit})"
            )));
        }
        if let Some(expected) = self.expected_size {
            if self.received > expected {
                return Err(Error::invalid(format!(
                    "upload is larger than the {expected} bytes its header announced"
                )));
            }
        }
        self.hasher.update(chunk);
        let file = self.file.as_mut().expect("file open until finish");
        file.write_all(chunk).await?;
        Ok(())
    }

    /// Ends the upload and starts (or joins) the ingest of what was received.
    pub async fn finish(mut self) -> Result<Arc<JobHandle>> {
        let mut file = self.file.take().expect("file open until finish");
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        if self.received == 0 {
            return Err(Error::invalid(format!(
                "{} is empty (0 bytes were uploaded)",
                self.filename
            )));
        }
        if let Some(expected) = self.expected_size {
            if self.received != expected {
                return Err(Error::invalid(format!(
                    "upload ended after {} of the {expected} bytes its header announced",
                    self.received
                )));
            }
        }
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let path = std::mem::take(&mut self.path);
        self.ingest
            .ingest_uploaded(
                path,
                std::mem::take(&mut self.filename),
                sha256,
                self.received,
                self.options.clone(),
            )
            .await
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // An abandoned or failed upload leaves nothing behind.
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Keeps the final path component only, without control characters.
fn sanitise_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base.chars().filter(|c| !c.is_control()).collect();
    if clean.is_empty() || clean == "." || clean == ".." {
        "upload".into()
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::sanitise_filename;

    #[test]
    fn filenames_lose_directories() {
        assert_eq!(sanitise_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitise_filename("C:\\clips\\a.mp4"), "a.mp4");
        assert_eq!(sanitise_filename(""), "upload");
        assert_eq!(sanitise_filename(".."), "upload");
    }
}
