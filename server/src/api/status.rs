//! The one mapping from engine errors to gRPC status codes.

use tonic::{Code, Status};

use reelforge_core::error::{Error, ErrorKind};

pub fn code_for(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidInput => Code::InvalidArgument,
        // ffmpeg/ffprobe could not read the caller's file.
        ErrorKind::Media => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::FailedPrecondition => Code::FailedPrecondition,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::Provider | ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Cancelled => Code::Cancelled,
        ErrorKind::Storage | ErrorKind::Internal => Code::Internal,
    }
}

pub fn to_status(e: Error) -> Status {
    let code = code_for(e.kind());
    if code == Code::Internal {
        tracing::error!("internal error: {e}");
    }
    Status::new(code, bounded(&e.to_string()))
}

/// Longest word (run without spaces) a status message repeats in full.
const LONGEST_WORD: usize = 120;
/// Longest status message sent.
const LONGEST_MESSAGE: usize = 2_000;

/// A status message that fits in a header: messages quote the caller's values, and a
/// megabyte id quoted back made a header no client accepts (the call then failed with an
/// HTTP/2 error instead of its status, found by the hostile-clients test). Long words are
/// cut in the middle and the whole is capped; the text around them stays.
pub fn bounded(message: &str) -> String {
    if message.len() <= LONGEST_WORD {
        return message.to_string();
    }
    let mut out = String::with_capacity(message.len().min(LONGEST_MESSAGE));
    for (i, word) in message.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let chars = word.chars().count();
        if chars > LONGEST_WORD {
            let head: String = word.chars().take(LONGEST_WORD / 2).collect();
            let tail: String = word.chars().skip(chars - 16).collect();
            out.push_str(&format!("{head}…[{chars} characters]…{tail}"));
        } else {
            out.push_str(word);
        }
        if out.len() > LONGEST_MESSAGE {
            let cut = (0..=LONGEST_MESSAGE)
                .rev()
                .find(|&i| out.is_char_boundary(i))
                .unwrap_or(0);
            out.truncate(cut);
            out.push('…');
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_quoted_values_are_cut_and_the_advice_kept() {
        let id = "x".repeat(1_000_000);
        let m = bounded(&format!("no job with id {id} (see `reelforge jobs list`)"));
        assert!(m.len() < 300, "{}", m.len());
        assert!(m.starts_with("no job with id xxxx"), "{m}");
        assert!(m.contains("[1000000 characters]"), "{m}");
        assert!(m.ends_with("(see `reelforge jobs list`)"), "{m}");
        let many = "word ".repeat(2_000);
        assert!(bounded(&many).len() <= LONGEST_MESSAGE + 4);
        let chinese = "中".repeat(500);
        assert!(bounded(&chinese).contains("[500 characters]"));
        assert_eq!(bounded("short"), "short");
    }
}
