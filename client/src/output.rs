//! Shared output helpers: one-line errors, times, JSON lines.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`: no progress bars and no per-event lines, only results and errors.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Whether progress is drawn as bars: stderr is a terminal, and neither `--quiet` nor
/// JSON output. Otherwise progress is one line per event (or none when quiet).
pub fn bars(json: bool) -> bool {
    !json && !quiet() && stderr_is_terminal()
}

/// An error and its causes on one line; gRPC statuses as "CODE: message".
pub fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|cause| match cause.downcast_ref::<tonic::Status>() {
            Some(s) => format!("{}: {}", code_name(s.code()), s.message()),
            None => cause.to_string(),
        })
        .collect::<Vec<_>>()
        .join(": ")
}

pub fn code_name(code: tonic::Code) -> String {
    // Debug gives e.g. "InvalidArgument"; print the canonical INVALID_ARGUMENT.
    let camel = format!("{code:?}");
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// mm:ss.s
pub fn clock(ms: i64) -> String {
    let tenths = ms.max(0) / 100;
    format!(
        "{:02}:{:02}.{}",
        tenths / 600,
        (tenths / 10) % 60,
        tenths % 10
    )
}

pub fn json_line<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}

pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A leading TENANT column in a listing, shown only when it asked for another tenant's
/// records (`--tenant NAME` or `--tenant '*'`).
pub struct TenantColumn(bool);

impl TenantColumn {
    pub fn new(requested: &Option<String>) -> TenantColumn {
        TenantColumn(requested.is_some())
    }

    pub fn head(&self) -> String {
        self.cell("TENANT")
    }

    pub fn cell(&self, tenant: &str) -> String {
        if self.0 {
            format!("{tenant:<16}  ")
        } else {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_print_canonically() {
        assert_eq!(code_name(tonic::Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(code_name(tonic::Code::NotFound), "NOT_FOUND");
        assert_eq!(clock(61_250), "01:01.2");
    }
}
