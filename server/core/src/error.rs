//! reelforge's one error type, grouped by what a caller can act on. The gRPC layer maps
//! each group to exactly one status code (`reelforge_server::api::status`).

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request or its input file is wrong; the message says what to fix.
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PermissionDenied(String),
    /// The request is valid but conflicts with the current state (e.g. a running job).
    #[error("{0}")]
    FailedPrecondition(String),
    /// A limit of the caller's is used up (storage quota, spend, jobs at once); the
    /// message says which and when it frees.
    #[error("{0}")]
    ResourceExhausted(String),
    /// An external media tool failed; `stderr_tail` holds the end of what it printed.
    #[error("{message}{}", StderrTail(stderr_tail))]
    Media {
        message: String,
        stderr_tail: String,
    },
    /// A model provider failed; `retryable` says whether trying again may help.
    #[error("{provider}: {message}")]
    Provider {
        provider: String,
        message: String,
        retryable: bool,
    },
    /// The store failed (sled, or an index backend's storage).
    #[error("storage: {0}")]
    Storage(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// The server is shutting down; try again elsewhere or later.
    #[error("{0}")]
    Unavailable(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidInput(msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }
    pub fn internal(msg: impl Into<String>) -> Self {
        Error::Internal(msg.into())
    }

    /// The same error again, for each of several callers one failure answers (an I/O
    /// error becomes `Internal` with its message).
    pub fn duplicate(&self) -> Error {
        match self {
            Error::InvalidInput(m) => Error::InvalidInput(m.clone()),
            Error::NotFound(m) => Error::NotFound(m.clone()),
            Error::PermissionDenied(m) => Error::PermissionDenied(m.clone()),
            Error::FailedPrecondition(m) => Error::FailedPrecondition(m.clone()),
            Error::ResourceExhausted(m) => Error::ResourceExhausted(m.clone()),
            Error::Media {
                message,
                stderr_tail,
            } => Error::Media {
                message: message.clone(),
                stderr_tail: stderr_tail.clone(),
            },
            Error::Provider {
                provider,
                message,
                retryable,
            } => Error::Provider {
                provider: provider.clone(),
                message: message.clone(),
                retryable: *retryable,
            },
            Error::Storage(m) => Error::Storage(m.clone()),
            Error::Io(e) => Error::Internal(format!("i/o: {e}")),
            Error::Cancelled(m) => Error::Cancelled(m.clone()),
            Error::Unavailable(m) => Error::Unavailable(m.clone()),
            Error::Internal(m) => Error::Internal(m.clone()),
        }
    }
}

impl Error {
    /// The same error with `from` written as `to` in its text: a file the server named
    /// for itself (an upload's temporary file) reported under the name the caller knows.
    pub fn renaming(self, from: &str, to: &str) -> Error {
        if from.is_empty() {
            return self;
        }
        let r = |m: String| m.replace(from, to);
        match self {
            Error::InvalidInput(m) => Error::InvalidInput(r(m)),
            Error::NotFound(m) => Error::NotFound(r(m)),
            Error::PermissionDenied(m) => Error::PermissionDenied(r(m)),
            Error::FailedPrecondition(m) => Error::FailedPrecondition(r(m)),
            Error::Media {
                message,
                stderr_tail,
            } => Error::Media {
                message: r(message),
                stderr_tail: r(stderr_tail),
            },
            other => other,
        }
    }
}

#[cfg(feature = "sled")]
impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

#[cfg(feature = "sled")]
impl From<sled::transaction::TransactionError<Error>> for Error {
    fn from(e: sled::transaction::TransactionError<Error>) -> Self {
        match e {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => Error::from(e),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!("record codec: {e}"))
    }
}

struct StderrTail<'a>(&'a str);

impl fmt::Display for StderrTail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = self.0.trim();
        if tail.is_empty() {
            Ok(())
        } else {
            write!(f, " (ffmpeg said: {tail})")
        }
    }
}

/// The caller-actionable group of an error, recorded with failed jobs so a replayed job
/// fails with the same status as the live one did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidInput,
    NotFound,
    PermissionDenied,
    FailedPrecondition,
    ResourceExhausted,
    Media,
    Provider,
    Storage,
    Cancelled,
    Internal,
    /// The server is shutting down.
    Unavailable,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidInput(_) => ErrorKind::InvalidInput,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Error::FailedPrecondition(_) => ErrorKind::FailedPrecondition,
            Error::ResourceExhausted(_) => ErrorKind::ResourceExhausted,
            Error::Media { .. } => ErrorKind::Media,
            Error::Provider { .. } => ErrorKind::Provider,
            Error::Storage(_) => ErrorKind::Storage,
            Error::Io(_) => ErrorKind::Internal,
            Error::Cancelled(_) => ErrorKind::Cancelled,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }
}
