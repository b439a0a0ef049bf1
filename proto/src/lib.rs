//! reelforge's gRPC contract: the code generated from `proto/reelforge/v1/*.proto`.
//! Nothing else in the workspace generates protobuf code.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

pub mod v1 {
    tonic::include_proto!("reelforge.v1");

    /// Encoded `FileDescriptorSet` of every reelforge proto, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("reelforge_descriptor");
}

/// Milvus's gRPC API (its own protos, vendored under `proto/vendor/milvus`), client side
/// only: the Milvus search backend speaks it. Behind the `milvus` feature, which the CLI
/// never turns on.
#[cfg(feature = "milvus")]
#[allow(clippy::all, rustdoc::all, missing_docs)]
pub mod milvus {
    pub mod common {
        tonic::include_proto!("milvus.proto.common");
    }
    pub mod schema {
        tonic::include_proto!("milvus.proto.schema");
    }
    pub mod rg {
        tonic::include_proto!("milvus.proto.rg");
    }
    pub mod feder {
        tonic::include_proto!("milvus.proto.feder");
    }
    pub mod msg {
        tonic::include_proto!("milvus.proto.msg");
    }
    pub mod milvus {
        tonic::include_proto!("milvus.proto.milvus");
    }
}
