//! reelforge's gRPC contract: the code generated from `proto/reelforge/v1/*.proto`.
//! Nothing else in the workspace generates protobuf code.

#![allow(clippy::large_enum_variant, clippy::doc_lazy_continuation)]

pub mod v1 {
    tonic::include_proto!("reelforge.v1");

    /// Encoded `FileDescriptorSet` of every reelforge proto, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("reelforge_descriptor");
}
