//! Video ids: the first 16 hex digits of the content's SHA-256, also a path component on
//! disk, so every id a caller sends is checked before use.

use crate::error::{Error, Result};

/// Length of a video id: the first 16 hex digits of the content's SHA-256.
pub const VIDEO_ID_LEN: usize = 16;

/// Checks a client-supplied video id's shape (it is also a path component on disk).
pub fn validate_video_id(id: &str) -> Result<()> {
    if id.len() == VIDEO_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "video_id {id:?} is malformed: expected {VIDEO_ID_LEN} lowercase hex digits \
             (see `reelforge videos list`)"
        )))
    }
}

pub fn video_id_from_sha256(sha256_hex: &str) -> String {
    sha256_hex[..VIDEO_ID_LEN].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_ids_are_checked() {
        validate_video_id("0123456789abcdef").unwrap();
        for bad in [
            "",
            "0123456789ABCDEF",
            "../../etc/passwd",
            "0123456789abcdeg",
        ] {
            assert!(validate_video_id(bad).is_err(), "{bad}");
        }
    }
}
