//! Where server-side files may come from: requested paths are resolved lexically and then
//! canonically (symlinks followed), and both must stay inside a configured root.

use std::path::{Component, Path, PathBuf};

use reelforge_core::error::{Error, Result};

pub fn resolve_server_path(roots: &[PathBuf], requested: &str) -> Result<PathBuf> {
    let canonical = resolve_inside_roots(roots, requested)?;
    check_media_file(&canonical, requested)?;
    Ok(canonical)
}

/// The canonical path of `requested` (a file or a directory), which must exist inside one
/// of `roots`.
pub fn resolve_inside_roots(roots: &[PathBuf], requested: &str) -> Result<PathBuf> {
    if requested.trim().is_empty() {
        return Err(Error::invalid(
            "path is empty: give the path of a video file on the server",
        ));
    }
    if roots.is_empty() {
        return Err(Error::PermissionDenied(
            "server-side ingest is disabled: start the server with --allow-root DIR \
             (or allowed_roots in its config), or upload the file instead"
                .into(),
        ));
    }
    let requested_path = Path::new(requested);
    let joined = if requested_path.is_absolute() {
        requested_path.to_path_buf()
    } else {
        roots[0].join(requested_path)
    };
    let lexical = normalise(&joined);
    let canonical_roots: Vec<PathBuf> = roots
        .iter()
        .map(|r| r.canonicalize().unwrap_or_else(|_| normalise(r)))
        .collect();
    let inside = |p: &Path| {
        canonical_roots.iter().any(|r| p.starts_with(r))
            || roots.iter().any(|r| p.starts_with(normalise(r)))
    };
    if !inside(&lexical) {
        return Err(outside(requested, roots));
    }
    let canonical = lexical.canonicalize().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::not_found(format!("no such file on the server: {requested}"))
        }
        _ => Error::invalid(format!("cannot open {requested}: {e}")),
    })?;
    if !canonical_roots.iter().any(|r| canonical.starts_with(r)) {
        return Err(outside(requested, roots));
    }
    Ok(canonical)
}

/// Rejects what can never be a video: directories, special files, empty files.
pub fn check_media_file(path: &Path, shown_as: &str) -> Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::not_found(format!("no such file: {shown_as}")),
        _ => Error::invalid(format!("cannot open {shown_as}: {e}")),
    })?;
    if meta.is_dir() {
        return Err(Error::invalid(format!(
            "{shown_as} is a directory; give a video file"
        )));
    }
    if !meta.is_file() {
        return Err(Error::invalid(format!("{shown_as} is not a regular file")));
    }
    if meta.len() == 0 {
        return Err(Error::invalid(format!("{shown_as} is empty (0 bytes)")));
    }
    Ok(meta.len())
}

fn outside(requested: &str, roots: &[PathBuf]) -> Error {
    let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    Error::PermissionDenied(format!(
        "{requested} is outside the directories this server may read ({})",
        roots.join(", ")
    ))
}

/// Resolves `.` and `..` without touching the disk.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confines_paths_to_roots() {
        let root = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let roots = vec![root.path().to_path_buf()];
        std::fs::write(root.path().join("a.mp4"), b"x").unwrap();
        std::fs::write(other.path().join("secret.mp4"), b"x").unwrap();
        std::os::unix::fs::symlink(
            other.path().join("secret.mp4"),
            root.path().join("link.mp4"),
        )
        .unwrap();
        std::fs::create_dir(root.path().join("dir")).unwrap();
        std::fs::write(root.path().join("empty.mp4"), b"").unwrap();

        assert!(resolve_server_path(&roots, "a.mp4").is_ok());
        assert!(resolve_server_path(&roots, root.path().join("a.mp4").to_str().unwrap()).is_ok());
        let escape = format!(
            "{}/../{}/secret.mp4",
            root.path().display(),
            other.path().file_name().unwrap().to_str().unwrap()
        );
        assert!(matches!(
            resolve_server_path(&roots, &escape),
            Err(Error::PermissionDenied(_))
        ));
        assert!(matches!(
            resolve_server_path(&roots, "../../etc/passwd"),
            Err(Error::PermissionDenied(_))
        ));
        assert!(matches!(
            resolve_server_path(&roots, "link.mp4"),
            Err(Error::PermissionDenied(_))
        ));
        assert!(matches!(
            resolve_server_path(&roots, "missing.mp4"),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            resolve_server_path(&roots, "dir"),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            resolve_server_path(&roots, "empty.mp4"),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            resolve_server_path(&[], "a.mp4"),
            Err(Error::PermissionDenied(_))
        ));
    }
}
