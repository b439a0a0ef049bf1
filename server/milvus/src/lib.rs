//! reelforge-milvus: the search seam over Milvus, for libraries past one machine and
//! servers that share one index. `config` is `[search.milvus]`, `client` speaks Milvus's
//! gRPC API (code generated from Milvus's own protos by `reelforge-proto`'s `milvus`
//! feature, with our tonic), and `backend` is the `SearchBackend`.

pub mod backend;
pub mod client;
pub mod config;

pub use backend::MilvusBackend;
pub use config::MilvusConfig;
