//! The layer rule, checked so it stays true: which crate may depend on which (from the
//! manifests), which module may import which inside a crate (from `crate::` paths in the
//! code), the engine free of gRPC, the CLI free of the engine's heavy dependencies (from
//! `cargo tree`), and ARCHITECTURE.md naming every module in layer order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Workspace crates, bottom layer first, with the workspace crates each may depend on.
const CRATES: [(&str, &str, &[&str]); 11] = [
    ("reelforge-core", "server/core", &[]),
    ("reelforge-proto", "proto", &[]),
    ("reelforge-media", "server/media", &["reelforge-core"]),
    (
        "reelforge-models",
        "server/models",
        &["reelforge-core", "reelforge-media"],
    ),
    ("reelforge-search", "server/search", &["reelforge-core"]),
    // A search backend beside the embedded one: Milvus's gRPC client (Milvus's protos,
    // generated in reelforge-proto behind its `milvus` feature).
    (
        "reelforge-milvus",
        "server/milvus",
        &["reelforge-core", "reelforge-proto", "reelforge-search"],
    ),
    (
        "reelforge-engine",
        "server/engine",
        &[
            "reelforge-core",
            "reelforge-media",
            "reelforge-models",
            "reelforge-search",
            "reelforge-milvus",
        ],
    ),
    (
        "reelforge-server",
        "server",
        &[
            "reelforge-proto",
            "reelforge-core",
            "reelforge-media",
            "reelforge-models",
            "reelforge-search",
            "reelforge-milvus",
            "reelforge-engine",
        ],
    ),
    (
        "reelforge",
        "client",
        &["reelforge-proto", "reelforge-core"],
    ),
    (
        "reelforge-bench",
        "bench",
        &[
            "reelforge-proto",
            "reelforge-core",
            "reelforge-media",
            "reelforge-models",
            "reelforge-search",
            "reelforge-milvus",
            "reelforge-engine",
            "reelforge-server",
        ],
    ),
    (
        "reelforge-tests",
        "tests",
        &[
            "reelforge-proto",
            "reelforge-core",
            "reelforge-media",
            "reelforge-models",
            "reelforge-search",
            "reelforge-milvus",
            "reelforge-engine",
            "reelforge-server",
        ],
    ),
];

/// Modules of each library crate in layer order: a module may import from itself and
/// the ones before it (and the crate root's own items), never from one after it.
const MODULES: [(&str, &[&str]); 7] = [
    (
        "server/core",
        &[
            "error", "time", "ids", "vector", "segments", "answer", "eval", "script", "page",
        ],
    ),
    (
        "server/media",
        &[
            "process",
            "signals",
            "probe",
            "decode",
            "visual",
            "cut",
            "images",
            "audio",
            "proxy",
            "subtitles",
        ],
    ),
    (
        "server/models",
        &[
            "onnx",
            "sound",
            "vision",
            "analysis",
            "minilm",
            "muse",
            "whisper",
            "rerank",
            "clip",
            "bedrock",
            "config",
            "providers",
            "conformance",
            "testing",
        ],
    ),
    (
        "server/search",
        &[
            "text",
            "doc",
            "fusion",
            "chunk",
            "bda",
            "bm25",
            "vectors",
            "storage",
            "slots",
            "backend",
            "index",
            "conformance",
        ],
    ),
    ("server/milvus", &["config", "client", "backend"]),
    (
        "server/engine",
        &[
            "util",
            "config",
            "store",
            "keys",
            "jobs",
            "search",
            "catalog",
            "library",
            "ingest",
            "watch",
            "highlights",
            "feedback",
            "limits",
        ],
    ),
    (
        "server",
        &[
            "codes", "tls", "auth", "config", "logging", "metrics", "api",
        ],
    ),
];

/// Below the server, nothing knows gRPC.
const NO_GRPC: [&str; 5] = [
    "server/core",
    "server/media",
    "server/models",
    "server/search",
    "server/engine",
];

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// A file's code without its unit tests (tests may use helpers from any layer).
fn code_of(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// The top-level module a file under `src` belongs to (`None` for the crate root).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// Every `crate::<name>` a piece of code names, with `use crate::{a, b::c}` groups too.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let preceded = rest[..i]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        if !preceded {
            if let Some(group) = after.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.push(name);
                    }
                }
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.push(name);
            }
        }
        rest = after;
    }
    out
}

#[test]
fn crates_depend_only_on_the_layers_below() {
    let names: Vec<&str> = CRATES.iter().map(|c| c.0).collect();
    for (name, dir, allowed) in CRATES {
        let manifest: toml::Table =
            toml::from_str(&std::fs::read_to_string(root().join(dir).join("Cargo.toml")).unwrap())
                .unwrap();
        for section in ["dependencies", "dev-dependencies"] {
            let Some(deps) = manifest.get(section).and_then(|d| d.as_table()) else {
                continue;
            };
            for dep in deps.keys() {
                if names.contains(&dep.as_str()) {
                    assert!(
                        allowed.contains(&dep.as_str()),
                        "{name} ({dir}) depends on {dep} ({section}); its layer may use only {allowed:?}"
                    );
                }
                if NO_GRPC.contains(&dir) && section == "dependencies" {
                    assert!(
                        !["tonic", "prost", "reelforge-proto"].contains(&dep.as_str()),
                        "{name} depends on {dep}: only the server's API layer knows gRPC"
                    );
                }
            }
        }
    }
}

#[test]
fn modules_import_only_from_the_layers_below() {
    let mut problems = Vec::new();
    for (dir, order) in MODULES {
        let src = root().join(dir).join("src");
        let rank: BTreeMap<&str, usize> = order.iter().enumerate().map(|(i, m)| (*m, i)).collect();
        for file in rust_files(&src) {
            let module = module_of(&src, &file);
            if let Some(m) = &module {
                assert!(
                    rank.contains_key(m.as_str()) || dir == "server",
                    "{}: module {m} is missing from the layer order in tests/tests/architecture.rs (and ARCHITECTURE.md)",
                    file.display()
                );
            }
            let Some(own) = module.as_deref().and_then(|m| rank.get(m)) else {
                continue;
            };
            for used in crate_paths(&code_of(&file)) {
                if let Some(&theirs) = rank.get(used.as_str()) {
                    if theirs > *own {
                        problems.push(format!(
                            "{} imports crate::{used}, a layer above {}",
                            file.strip_prefix(root()).unwrap().display(),
                            order[*own]
                        ));
                    }
                }
            }
            if NO_GRPC.contains(&dir) {
                let code = code_of(&file);
                for grpc in ["tonic::", "reelforge_proto"] {
                    if code.contains(grpc) {
                        problems.push(format!("{} uses {grpc}", file.display()));
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "upward imports:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_cli_builds_without_the_engines_heavy_dependencies() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-p",
            "reelforge",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(root())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    for heavy in [
        "candle-core",
        "aws-sdk-bedrockruntime",
        "sled ",
        "hnsw_rs",
        "tokenizers",
        "reelforge-engine",
    ] {
        assert!(
            !tree.lines().any(|l| l.starts_with(heavy)),
            "the CLI pulls in {heavy}:\n{tree}"
        );
    }
}

#[test]
fn architecture_md_names_every_module_in_layer_order() {
    let doc = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    // Rows look like "| `engine::search` | ... |": crate short name, then the module.
    let rows: Vec<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_string)
        .collect();
    let mut expected = Vec::new();
    for (dir, order) in MODULES {
        let short = match dir {
            "server" => "server",
            d => d.trim_start_matches("server/"),
        };
        for m in order {
            expected.push(format!("{short}::{m}"));
        }
    }
    let mut last = 0;
    for module in &expected {
        let at = rows
            .iter()
            .position(|r| r == module)
            .unwrap_or_else(|| panic!("ARCHITECTURE.md has no row for `{module}`"));
        assert!(
            at >= last,
            "ARCHITECTURE.md lists `{module}` before a module of a lower layer"
        );
        last = at;
    }
}
