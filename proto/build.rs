//! Generates the gRPC code from `reelforge/v1/*.proto` with a vendored protoc, so a fresh
//! machine needs no system protobuf compiler.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "reelforge/v1/common.proto",
        "reelforge/v1/ingest.proto",
        "reelforge/v1/search.proto",
        "reelforge/v1/highlight.proto",
        "reelforge/v1/admin.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    tonic_prost_build::configure()
        // Maps in a stable order: the same record encodes to the same bytes (and the CLI
        // prints them sorted).
        .btree_map(".")
        .file_descriptor_set_path(out_dir.join("reelforge_descriptor.bin"))
        .type_attribute(".reelforge.v1", "#[derive(serde::Serialize)]")
        .type_attribute(".reelforge.v1", "#[serde(rename_all = \"snake_case\")]")
        .compile_protos(&protos, &["."])?;
    if std::env::var_os("CARGO_FEATURE_MILVUS").is_some() {
        // Milvus's API (vendor/milvus, Apache-2.0, from milvus-io/milvus-proto as the
        // milvus-sdk-rust crate ships it): the client only, for the Milvus search backend.
        let milvus = [
            "vendor/milvus/common.proto",
            "vendor/milvus/schema.proto",
            "vendor/milvus/milvus.proto",
        ];
        println!("cargo:rerun-if-changed=vendor/milvus");
        tonic_prost_build::configure()
            .build_server(false)
            .build_transport(false)
            .compile_protos(&milvus, &["vendor/milvus"])?;
    }
    Ok(())
}
