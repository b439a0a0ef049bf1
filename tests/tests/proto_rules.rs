//! The API's rules, checked by buf (the `@bufbuild/buf` npm package in tools/): `buf lint`
//! with proto/buf.yaml, and `buf breaking` against proto/released.binpb, the image of the
//! last released protos, so a released field is never renumbered, retyped or removed. The
//! lint exceptions in buf.yaml are for released names only: new enums and services are
//! held to the rules they except here.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn buf(args: &[&str], dir: &Path) -> (bool, String) {
    let bin = root().join("tools/node_modules/.bin/buf");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/setup.sh",
        bin.display()
    );
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env(
            "BUF_CACHE_DIR",
            std::env::temp_dir().join("reelforge-buf-cache"),
        )
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn protos(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("reelforge/v1")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "proto") {
            out.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    out.sort();
    out
}

#[test]
fn buf_lint_passes_and_nothing_released_breaks() {
    let proto = root().join("proto");
    let (ok, text) = buf(&["lint", "."], &proto);
    assert!(ok, "buf lint proto:\n{text}");
    let (ok, text) = buf(&["breaking", ".", "--against", "released.binpb"], &proto);
    assert!(ok, "buf breaking against the released protos:\n{text}");

    // The check bites: a released field renumbered and another retyped are refused.
    let copy = tempfile::tempdir().unwrap();
    let v1 = copy.path().join("reelforge/v1");
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::copy(proto.join("buf.yaml"), copy.path().join("buf.yaml")).unwrap();
    for (name, text) in protos(&proto) {
        let text = if name == "search.proto" {
            text.replacen("uint32 top_k = 3;", "uint32 top_k = 30;", 1)
                .replacen("string query = 1;", "bytes query = 1;", 1)
        } else {
            text
        };
        std::fs::write(v1.join(name), text).unwrap();
    }
    let against = proto.join("released.binpb");
    let (ok, text) = buf(
        &["breaking", ".", "--against", against.to_str().unwrap()],
        copy.path(),
    );
    assert!(!ok, "a renumbered field passed:\n{text}");
    assert!(
        text.contains("\"top_k\"") && text.contains("\"query\""),
        "{text}"
    );
}

/// buf.yaml excepts ENUM_ZERO_VALUE_SUFFIX and SERVICE_SUFFIX for the released names;
/// anything added since follows them.
#[test]
fn new_enums_and_services_follow_the_rules_buf_yaml_excepts() {
    const RELEASED_ENUMS: [&str; 5] = [
        "HighlightStrategy",
        "MatchUnit",
        "SubtitleMode",
        "SearchMode",
        "FusionMethod",
    ];
    const RELEASED_SERVICES: [&str; 6] = [
        "Ingest",
        "Search",
        "Highlight",
        "Feedback",
        "Library",
        "Admin",
    ];
    let mut enums = 0;
    for (file, text) in protos(&root().join("proto")) {
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let line = line.trim();
            if let Some(name) = line
                .strip_prefix("enum ")
                .and_then(|l| l.strip_suffix(" {"))
            {
                enums += 1;
                let zero = lines
                    .by_ref()
                    .map(str::trim)
                    .find(|l| !l.starts_with("//") && l.contains('='))
                    .unwrap();
                assert!(
                    RELEASED_ENUMS.contains(&name)
                        || zero
                            .split('=')
                            .next()
                            .unwrap()
                            .trim()
                            .ends_with("_UNSPECIFIED"),
                    "{file}: enum {name}'s zero value must end in _UNSPECIFIED: {zero}"
                );
            }
            if let Some(name) = line
                .strip_prefix("service ")
                .and_then(|l| l.strip_suffix(" {"))
            {
                assert!(
                    RELEASED_SERVICES.contains(&name) || name.ends_with("Service"),
                    "{file}: service {name} must end in Service"
                );
            }
        }
    }
    assert!(enums >= 7, "the enums were found ({enums})");
}
