//! The Milvus search backend: the search seam (`reelforge_search::SearchBackend`) over
//! two Milvus collections, `<prefix>_text` and `<prefix>_visual`, one per embedding
//! space.
//!
//! - Rows carry the document (video id, kind, start/end ms, text) and its video's owner
//!   (tenant, file name), so any server sharing the collections can filter by tenant and
//!   show a hit without its own catalog, plus `origin` (this data directory's id), the
//!   store generation and the document's place in the video.
//! - Lexical search is Milvus's own BM25 (a BM25 function from a `terms` field into a
//!   sparse field, `SPARSE_INVERTED_INDEX` with our k1 and b). `terms` holds our
//!   analyser's terms (jieba, stemming, traditional folded to simplified), each written
//!   as lowercase hex so that any Milvus tokenizer keeps it whole: both backends then
//!   score the same terms with the same formula. Vector search is HNSW by cosine.
//! - Fusion and reranking stay ours (above the seam), so each hit keeps its per-stage
//!   ranks and scores.
//! - A video is replaced by upserting its documents (primary keys derived from origin,
//!   video, generation and place, so a repeat is idempotent) and then deleting its rows
//!   of other generations. Which generation is indexed is recorded here, in sled, after
//!   both: an interrupted replace leaves the video unmarked and the reconcile redoes it.

use std::collections::HashMap;
use std::sync::Arc;

use prost::Message;
use reelforge_core::error::{Error, Result};
use reelforge_core::BoxFuture;
use reelforge_proto::milvus::common::{
    ConsistencyLevel, DslType, KeyValuePair, PlaceholderGroup, PlaceholderType, PlaceholderValue,
};
use reelforge_proto::milvus::milvus as rpc;
use reelforge_proto::milvus::schema::{
    self, field_data, scalar_field, vector_field, CollectionSchema, DataType, FieldData,
    FieldSchema, FunctionSchema, FunctionType, ScalarField, VectorField,
};
use reelforge_search::backend::BackendStats;
use reelforge_search::bm25;
use reelforge_search::text::Analyzer;
use reelforge_search::{
    Bm25Hit, DocFilter, DocKind, Fetched, SearchBackend, SearchDoc, Space, VideoOwner,
};

use crate::client::Client;
use crate::config::MilvusConfig;

/// Rows per upsert call.
const BATCH: usize = 256;
/// Milvus's longest VARCHAR, bytes.
const MAX_VARCHAR: usize = 65_535;
/// HNSW build parameters (as the embedded index's graphs).
const HNSW_M: u32 = 16;
const HNSW_EF_CONSTRUCTION: u32 = 100;
/// Collection property holding the collection's id, minted when we create it: marks
/// recorded against another id (a collection dropped and created again) are void.
const EPOCH_PROPERTY: &str = "reelforge.epoch";

/// One embedding space's collection.
struct Collection {
    space: Space,
    name: String,
    dims: usize,
}

pub struct MilvusBackend {
    client: Client,
    config: MilvusConfig,
    analyzer: Arc<Analyzer>,
    /// Text first; visual when an image-text model is configured.
    collections: Vec<Collection>,
    /// video id → indexed generation (u32, big-endian).
    marks: sled::Tree,
    /// `origin`, and each collection's epoch the marks belong to.
    meta: sled::Tree,
    origin: String,
    /// `reindex`: drop the collections at connect and create them empty.
    reset: bool,
}

impl MilvusBackend {
    /// A backend over `config`'s server (nothing is sent before `connect`): the text
    /// space holds `text_dims`-dimensional vectors, the visual space (when `Some`) the
    /// image-text model's. Its marks live in `db`. `reset` empties the collections at
    /// connect (`reindex`).
    pub fn new(
        config: &MilvusConfig,
        db: &sled::Db,
        text_dims: usize,
        visual_dims: Option<usize>,
        reset: bool,
    ) -> Result<MilvusBackend> {
        let client = Client::new(config)?;
        let meta = db.open_tree("milvus_meta")?;
        let origin = match meta.get("origin")? {
            Some(v) => String::from_utf8_lossy(&v).into_owned(),
            None => {
                let origin = uuid::Uuid::new_v4().simple().to_string();
                meta.insert("origin", origin.as_bytes())?;
                origin
            }
        };
        let mut collections = vec![Collection {
            space: Space::Text,
            name: format!("{}_text", config.collection),
            dims: text_dims,
        }];
        if let Some(dims) = visual_dims {
            collections.push(Collection {
                space: Space::Visual,
                name: format!("{}_visual", config.collection),
                dims,
            });
        }
        Ok(MilvusBackend {
            client,
            config: config.clone(),
            analyzer: Arc::new(Analyzer::new(true)),
            collections,
            marks: db.open_tree("milvus_marks")?,
            meta,
            origin,
            reset,
        })
    }

    /// This data directory's id in the shared collections.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn collection(&self, space: Space) -> Option<&Collection> {
        self.collections.iter().find(|c| c.space == space)
    }

    async fn prepare(&self, c: &Collection) -> Result<()> {
        let exists = self
            .client
            .call(
                "checking the collection",
                rpc::HasCollectionRequest {
                    db_name: self.config.db.clone(),
                    collection_name: c.name.clone(),
                    ..Default::default()
                },
                |mut s, r| async move { s.has_collection(r).await },
            )
            .await
            .map_err(|e| self.unreachable_at_start(e))?;
        self.client
            .check("checking the collection", exists.status.as_ref())?;
        if exists.value && self.reset {
            let dropped = self
                .client
                .call(
                    "dropping the collection",
                    rpc::DropCollectionRequest {
                        db_name: self.config.db.clone(),
                        collection_name: c.name.clone(),
                        ..Default::default()
                    },
                    |mut s, r| async move { s.drop_collection(r).await },
                )
                .await?;
            self.client
                .check("dropping the collection", Some(&dropped))?;
        }
        if !exists.value || self.reset {
            self.create(c).await?;
        }
        let epoch = self.check_shape(c).await?;
        let key = format!("epoch:{}", c.name);
        if self.meta.get(&key)?.as_deref() != Some(epoch.as_bytes()) {
            // Another collection than the one our marks describe: everything is indexed
            // again by the reconcile.
            self.marks.clear()?;
            self.meta.insert(key, epoch.as_bytes())?;
        }
        self.load(c).await
    }

    /// Loads `c` into the server's memory (searches and queries need it loaded).
    async fn load(&self, c: &Collection) -> Result<()> {
        let loaded = self
            .client
            .call(
                "loading the collection",
                rpc::LoadCollectionRequest {
                    db_name: self.config.db.clone(),
                    collection_name: c.name.clone(),
                    ..Default::default()
                },
                |mut s, r| async move { s.load_collection(r).await },
            )
            .await?;
        self.client.check("loading the collection", Some(&loaded))
    }

    /// A search or query of `c`: refused by Milvus (a restarted server has released the
    /// collection), it is loaded again and the call repeated once.
    async fn read<Req, Resp, F, Fut>(
        &self,
        c: &Collection,
        what: &str,
        request: Req,
        call: F,
        status: fn(&Resp) -> Option<&reelforge_proto::milvus::common::Status>,
    ) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(crate::client::Service, tonic::Request<Req>) -> Fut,
        Fut:
            std::future::Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let first = self.client.call(what, request.clone(), &call).await?;
        match self.client.check(what, status(&first)) {
            Ok(()) => Ok(first),
            Err(Error::Internal(reason)) => {
                tracing::info!("{reason}: loading {} and trying again", c.name);
                self.load(c).await?;
                let again = self.client.call(what, request, &call).await?;
                self.client.check(what, status(&again))?;
                Ok(again)
            }
            Err(e) => Err(e),
        }
    }

    fn unreachable_at_start(&self, e: Error) -> Error {
        match e {
            Error::Unavailable(m) => Error::Unavailable(format!(
                "{m}; start Milvus there, or point search.milvus.uri at a running Milvus (or set search.backend = \"embedded\")"
            )),
            e => e,
        }
    }

    async fn create(&self, c: &Collection) -> Result<()> {
        let text = c.space == Space::Text;
        let epoch = uuid::Uuid::new_v4().simple().to_string();
        let kv = |k: &str, v: String| KeyValuePair {
            key: k.into(),
            value: v,
        };
        let scalar = |name: &str, data_type: DataType, max_length: Option<usize>| FieldSchema {
            name: name.into(),
            data_type: data_type as i32,
            type_params: max_length
                .map(|n| vec![kv("max_length", n.to_string())])
                .unwrap_or_default(),
            ..Default::default()
        };
        let mut fields = vec![
            FieldSchema {
                is_primary_key: true,
                ..scalar("id", DataType::Int64, None)
            },
            scalar("origin", DataType::VarChar, Some(64)),
            scalar("tenant", DataType::VarChar, Some(256)),
            scalar("video_id", DataType::VarChar, Some(64)),
            scalar("filename", DataType::VarChar, Some(1024)),
            scalar("kind", DataType::VarChar, Some(32)),
            scalar("start_ms", DataType::Int64, None),
            scalar("end_ms", DataType::Int64, None),
            scalar("generation", DataType::Int64, None),
            scalar("seq", DataType::Int64, None),
            scalar("text", DataType::VarChar, Some(MAX_VARCHAR)),
        ];
        let mut functions = Vec::new();
        if text {
            let mut terms = scalar("terms", DataType::VarChar, Some(MAX_VARCHAR));
            terms.type_params.push(kv("enable_analyzer", "true".into()));
            terms
                .type_params
                .push(kv("analyzer_params", r#"{"tokenizer":"standard"}"#.into()));
            fields.push(terms);
            fields.push(FieldSchema {
                is_function_output: true,
                ..scalar("sparse", DataType::SparseFloatVector, None)
            });
            functions.push(FunctionSchema {
                name: "terms_bm25".into(),
                r#type: FunctionType::Bm25 as i32,
                input_field_names: vec!["terms".into()],
                output_field_names: vec!["sparse".into()],
                ..Default::default()
            });
        }
        fields.push(FieldSchema {
            name: "vector".into(),
            data_type: DataType::FloatVector as i32,
            type_params: vec![kv("dim", c.dims.to_string())],
            ..Default::default()
        });
        let schema = CollectionSchema {
            name: c.name.clone(),
            description: format!(
                "reelforge search documents, {} space",
                if text { "text" } else { "visual" }
            ),
            fields,
            functions,
            properties: vec![kv(EPOCH_PROPERTY, epoch.clone())],
            ..Default::default()
        };
        let created = self
            .client
            .call(
                "creating the collection",
                rpc::CreateCollectionRequest {
                    db_name: self.config.db.clone(),
                    collection_name: c.name.clone(),
                    schema: schema.encode_to_vec(),
                    shards_num: 1,
                    consistency_level: ConsistencyLevel::Strong as i32,
                    properties: vec![kv(EPOCH_PROPERTY, epoch)],
                    ..Default::default()
                },
                |mut s, r| async move { s.create_collection(r).await },
            )
            .await?;
        self.client
            .check(&format!("creating collection {}", c.name), Some(&created))?;
        let mut indexes = vec![(
            "vector",
            "HNSW",
            "COSINE",
            format!(r#"{{"M":{HNSW_M},"efConstruction":{HNSW_EF_CONSTRUCTION}}}"#),
        )];
        if text {
            indexes.push((
                "sparse",
                "SPARSE_INVERTED_INDEX",
                "BM25",
                format!(r#"{{"bm25_k1":{},"bm25_b":{}}}"#, bm25::K1, bm25::B),
            ));
        }
        for (field, index_type, metric, params) in indexes {
            let done = self
                .client
                .call(
                    "creating an index",
                    rpc::CreateIndexRequest {
                        db_name: self.config.db.clone(),
                        collection_name: c.name.clone(),
                        field_name: field.into(),
                        index_name: format!("{field}_index"),
                        extra_params: vec![
                            kv("index_type", index_type.into()),
                            kv("metric_type", metric.into()),
                            kv("params", params),
                        ],
                        ..Default::default()
                    },
                    |mut s, r| async move { s.create_index(r).await },
                )
                .await?;
            self.client.check(
                &format!("creating the {field} index of {}", c.name),
                Some(&done),
            )?;
        }
        tracing::info!("created Milvus collection {} ({} dims)", c.name, c.dims);
        Ok(())
    }

    /// Refuses a collection whose vectors have other dimensions, or that lacks our
    /// fields; returns its epoch.
    async fn check_shape(&self, c: &Collection) -> Result<String> {
        let described = self
            .client
            .call(
                "describing the collection",
                rpc::DescribeCollectionRequest {
                    db_name: self.config.db.clone(),
                    collection_name: c.name.clone(),
                    ..Default::default()
                },
                |mut s, r| async move { s.describe_collection(r).await },
            )
            .await?;
        self.client
            .check("describing the collection", described.status.as_ref())?;
        let schema = described.schema.unwrap_or_default();
        let field = |name: &str| schema.fields.iter().find(|f| f.name == name);
        let fix = format!(
            "run `reelforge-server reindex` with this configuration (it drops {} and indexes every video again; other servers sharing it must reindex too), or set search.milvus.collection to a new prefix",
            c.name
        );
        let dims = field("vector")
            .and_then(|f| f.type_params.iter().find(|p| p.key == "dim"))
            .and_then(|p| p.value.parse::<usize>().ok());
        let mut wanted = vec![
            "id",
            "origin",
            "tenant",
            "video_id",
            "filename",
            "kind",
            "start_ms",
            "end_ms",
            "generation",
            "seq",
            "text",
        ];
        if c.space == Space::Text {
            wanted.extend(["terms", "sparse"]);
        }
        if let Some(missing) = wanted.iter().find(|name| field(name).is_none()) {
            return Err(Error::FailedPrecondition(format!(
                "Milvus collection {} has no field {missing}: it was not made by reelforge (or by an older one); {fix}",
                c.name
            )));
        }
        match dims {
            Some(d) if d == c.dims => {}
            other => {
                let model = if c.space == Space::Text {
                    "models.text_embedder"
                } else {
                    "models.image_embedder"
                };
                return Err(Error::FailedPrecondition(format!(
                    "Milvus collection {} holds {}-dimensional vectors but {model} makes {}-dimensional ones, which cannot be compared: {fix}",
                    c.name,
                    other.map_or("unknown".to_string(), |d| d.to_string()),
                    c.dims
                )));
            }
        }
        let epoch = described
            .properties
            .iter()
            .chain(schema.properties.iter())
            .find(|p| p.key == EPOCH_PROPERTY)
            .map(|p| p.value.clone())
            .unwrap_or_else(|| format!("created-{}", described.created_timestamp));
        Ok(epoch)
    }

    /// The expression for `filter` (empty: everything).
    fn expression(filter: &DocFilter) -> String {
        let mut parts = Vec::new();
        let list = |items: Vec<String>| format!("[{}]", items.join(", "));
        if !filter.kinds.is_empty() {
            let mut kinds: Vec<String> = filter.kinds.iter().map(|k| quote(k.name())).collect();
            kinds.sort();
            parts.push(format!("kind in {}", list(kinds)));
        }
        if !filter.video_ids.is_empty() {
            let mut ids: Vec<String> = filter.video_ids.iter().map(|v| quote(v)).collect();
            ids.sort();
            parts.push(format!("video_id in {}", list(ids)));
        }
        if let Some((start, end)) = filter.time_range {
            parts.push(format!("end_ms > {start} && start_ms < {end}"));
        }
        if let Some(tenant) = &filter.tenant {
            parts.push(format!("tenant == {}", quote(tenant)));
        }
        parts.join(" && ")
    }

    /// Our own rows of a video.
    fn own_rows(&self, video_id: &str) -> String {
        format!(
            "origin == {} && video_id == {}",
            quote(&self.origin),
            quote(video_id)
        )
    }

    async fn upsert(&self, c: &Collection, rows: &[Row<'_>]) -> Result<()> {
        for batch in rows.chunks(BATCH) {
            let text = c.space == Space::Text;
            let longs = |name: &str, f: &dyn Fn(&Row) -> i64| FieldData {
                r#type: DataType::Int64 as i32,
                field_name: name.into(),
                field: Some(field_data::Field::Scalars(ScalarField {
                    data: Some(scalar_field::Data::LongData(schema::LongArray {
                        data: batch.iter().map(f).collect(),
                    })),
                    ..Default::default()
                })),
                ..Default::default()
            };
            let strings = |name: &str, f: &dyn Fn(&Row) -> String| FieldData {
                r#type: DataType::VarChar as i32,
                field_name: name.into(),
                field: Some(field_data::Field::Scalars(ScalarField {
                    data: Some(scalar_field::Data::StringData(schema::StringArray {
                        data: batch.iter().map(f).collect(),
                    })),
                    ..Default::default()
                })),
                ..Default::default()
            };
            let mut fields = vec![
                longs("id", &|r| r.id as i64),
                strings("origin", &|_| self.origin.clone()),
                strings("tenant", &|r| clip(&r.owner.tenant, 256)),
                strings("video_id", &|r| r.doc.video_id.clone()),
                strings("filename", &|r| clip(&r.owner.filename, 1024)),
                strings("kind", &|r| r.doc.kind.name().to_string()),
                longs("start_ms", &|r| r.doc.start_ms),
                longs("end_ms", &|r| r.doc.end_ms),
                longs("generation", &|r| r.generation as i64),
                longs("seq", &|r| r.seq as i64),
                strings("text", &|r| clip(&r.doc.text, MAX_VARCHAR)),
            ];
            if text {
                fields.push(strings("terms", &|r| {
                    encode_terms(&self.analyzer.terms(&r.doc.text))
                }));
            }
            let mut flat = Vec::with_capacity(batch.len() * c.dims);
            for row in batch {
                if row.vector.len() != c.dims {
                    return Err(Error::invalid(format!(
                        "a {} document of video {} has a {}-dimensional vector; collection {} holds {}",
                        row.doc.kind.name(),
                        row.doc.video_id,
                        row.vector.len(),
                        c.name,
                        c.dims
                    )));
                }
                flat.extend_from_slice(row.vector);
            }
            fields.push(FieldData {
                r#type: DataType::FloatVector as i32,
                field_name: "vector".into(),
                field: Some(field_data::Field::Vectors(VectorField {
                    dim: c.dims as i64,
                    data: Some(vector_field::Data::FloatVector(schema::FloatArray {
                        data: flat,
                    })),
                    ..Default::default()
                })),
                ..Default::default()
            });
            let done = self
                .client
                .call(
                    "storing documents",
                    rpc::UpsertRequest {
                        db_name: self.config.db.clone(),
                        collection_name: c.name.clone(),
                        fields_data: fields,
                        num_rows: batch.len() as u32,
                        ..Default::default()
                    },
                    |mut s, r| async move { s.upsert(r).await },
                )
                .await?;
            self.client
                .check("storing documents", done.status.as_ref())?;
        }
        Ok(())
    }

    async fn delete(&self, c: &Collection, expr: String) -> Result<u64> {
        let done = self
            .client
            .call(
                "deleting documents",
                rpc::DeleteRequest {
                    db_name: self.config.db.clone(),
                    collection_name: c.name.clone(),
                    expr,
                    consistency_level: ConsistencyLevel::Strong as i32,
                    ..Default::default()
                },
                |mut s, r| async move { s.delete(r).await },
            )
            .await?;
        self.client
            .check("deleting documents", done.status.as_ref())?;
        Ok(done.delete_cnt.max(0) as u64)
    }

    /// One top-`limit` search of `c` by `probe`.
    async fn search(
        &self,
        c: &Collection,
        probe: Probe,
        filter: &DocFilter,
        limit: usize,
        output: &[&str],
    ) -> Result<(Vec<(u64, f32)>, Columns)> {
        let kv = |k: &str, v: String| KeyValuePair {
            key: k.into(),
            value: v,
        };
        let group = PlaceholderGroup {
            placeholders: vec![probe.placeholder],
        };
        let answer = self
            .read(
                c,
                "searching",
                rpc::SearchRequest {
                    db_name: self.config.db.clone(),
                    collection_name: c.name.clone(),
                    dsl: Self::expression(filter),
                    dsl_type: DslType::BoolExprV1 as i32,
                    search_input: Some(rpc::search_request::SearchInput::PlaceholderGroup(
                        group.encode_to_vec(),
                    )),
                    output_fields: output.iter().map(|s| s.to_string()).collect(),
                    search_params: vec![
                        kv("anns_field", probe.field.into()),
                        kv("topk", limit.to_string()),
                        kv("metric_type", probe.metric.into()),
                        kv("params", probe.params),
                        kv("round_decimal", "-1".into()),
                    ],
                    nq: 1,
                    consistency_level: ConsistencyLevel::Strong as i32,
                    ..Default::default()
                },
                |mut s, r| async move { s.search(r).await },
                |a| a.status.as_ref(),
            )
            .await?;
        let Some(results) = answer.results else {
            return Ok((Vec::new(), Columns::default()));
        };
        let ids = match results.ids.and_then(|i| i.id_field) {
            Some(schema::i_ds::IdField::IntId(ids)) => ids.data,
            _ => Vec::new(),
        };
        let hits = ids
            .iter()
            .zip(&results.scores)
            .map(|(&id, &score)| (id as u64, score))
            .collect();
        // Output fields come column-wise, hit i at row i.
        Ok((hits, Columns::new(results.fields_data)))
    }

    async fn query(&self, c: &Collection, expr: String, output: &[&str]) -> Result<Columns> {
        let answer = self
            .read(
                c,
                "reading documents",
                rpc::QueryRequest {
                    db_name: self.config.db.clone(),
                    collection_name: c.name.clone(),
                    expr,
                    output_fields: output.iter().map(|s| s.to_string()).collect(),
                    consistency_level: ConsistencyLevel::Strong as i32,
                    ..Default::default()
                },
                |mut s, r| async move { s.query(r).await },
                |a| a.status.as_ref(),
            )
            .await?;
        Ok(Columns::new(answer.fields_data))
    }

    fn mark(&self, video_id: &str) -> Result<Option<u32>> {
        Ok(self.marks.get(video_id)?.and_then(|v| {
            let bytes: [u8; 4] = v.as_ref().try_into().ok()?;
            Some(u32::from_be_bytes(bytes))
        }))
    }

    async fn replace(
        &self,
        video_id: &str,
        generation: u32,
        owner: &VideoOwner,
        docs: &[(SearchDoc, Vec<f32>)],
    ) -> Result<()> {
        self.marks.remove(video_id)?;
        let rows: Vec<Row> = docs
            .iter()
            .enumerate()
            .map(|(seq, (doc, vector))| Row {
                id: row_id(&self.origin, video_id, generation, seq, doc.kind.space()),
                doc,
                vector,
                owner,
                generation,
                seq,
            })
            .collect();
        for c in &self.collections {
            let mine: Vec<Row> = rows
                .iter()
                .filter(|r| r.doc.kind.space() == c.space)
                .cloned()
                .collect();
            self.upsert(c, &mine).await?;
        }
        let stale = format!(
            "{} && (generation != {generation} || seq >= {})",
            self.own_rows(video_id),
            docs.len()
        );
        for c in &self.collections {
            self.delete(c, stale.clone()).await?;
        }
        self.marks.insert(video_id, &generation.to_be_bytes())?;
        Ok(())
    }
}

/// What one search looks for: a field, its metric and search parameters, the query.
struct Probe {
    field: &'static str,
    metric: &'static str,
    params: String,
    placeholder: PlaceholderValue,
}

/// One document on its way in.
#[derive(Clone)]
struct Row<'a> {
    id: u64,
    doc: &'a SearchDoc,
    vector: &'a [f32],
    owner: &'a VideoOwner,
    generation: u32,
    seq: usize,
}

/// Columns of an answer by field name.
#[derive(Default, Clone)]
struct Columns {
    longs: HashMap<String, Vec<i64>>,
    strings: HashMap<String, Vec<String>>,
    vectors: HashMap<String, (usize, Vec<f32>)>,
}

impl Columns {
    fn new(fields: Vec<FieldData>) -> Columns {
        let mut c = Columns::default();
        for f in fields {
            match f.field {
                Some(field_data::Field::Scalars(ScalarField {
                    data: Some(scalar_field::Data::LongData(a)),
                    ..
                })) => {
                    c.longs.insert(f.field_name, a.data);
                }
                Some(field_data::Field::Scalars(ScalarField {
                    data: Some(scalar_field::Data::StringData(a)),
                    ..
                })) => {
                    c.strings.insert(f.field_name, a.data);
                }
                Some(field_data::Field::Vectors(VectorField {
                    dim,
                    data: Some(vector_field::Data::FloatVector(a)),
                    ..
                })) => {
                    c.vectors.insert(f.field_name, (dim as usize, a.data));
                }
                _ => {}
            }
        }
        c
    }

    fn len(&self) -> usize {
        self.longs.get("id").map_or(0, Vec::len)
    }

    fn long(&self, name: &str, i: usize) -> Option<i64> {
        self.longs.get(name)?.get(i).copied()
    }

    fn string(&self, name: &str, i: usize) -> Option<&str> {
        self.strings.get(name)?.get(i).map(String::as_str)
    }

    fn vector(&self, name: &str, i: usize) -> Option<Vec<f32>> {
        let (d, v) = self.vectors.get(name)?;
        v.get(i * d..(i + 1) * d).map(<[f32]>::to_vec)
    }

    /// Row `i` as a fetched document (`None` when a field is missing or unknown).
    fn fetched(&self, i: usize) -> Option<(u64, Fetched)> {
        let doc = SearchDoc {
            video_id: self.string("video_id", i)?.to_string(),
            kind: DocKind::parse(self.string("kind", i)?)?,
            text: self.string("text", i)?.to_string(),
            start_ms: self.long("start_ms", i)?,
            end_ms: self.long("end_ms", i)?,
        };
        let owner = VideoOwner {
            tenant: self.string("tenant", i)?.to_string(),
            filename: self.string("filename", i)?.to_string(),
        };
        Some((
            self.long("id", i)? as u64,
            Fetched {
                doc,
                vector: self.vector("vector", i),
                owner: Some(owner),
            },
        ))
    }
}

const DOC_FIELDS: [&str; 8] = [
    "id", "video_id", "kind", "text", "start_ms", "end_ms", "tenant", "filename",
];

/// A row's primary key: 62 bits of SHA-256 over (origin, video, generation, place), the
/// lowest bit the space (so a fetch knows the collection), never negative as an i64.
fn row_id(origin: &str, video_id: &str, generation: u32, seq: usize, space: Space) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(origin.as_bytes());
    h.update([0]);
    h.update(video_id.as_bytes());
    h.update([0]);
    h.update(generation.to_be_bytes());
    h.update((seq as u64).to_be_bytes());
    let digest = h.finalize();
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (n >> 2) << 1 | space as u64
}

fn space_of(id: u64) -> Space {
    if id & 1 == 1 {
        Space::Visual
    } else {
        Space::Text
    }
}

/// Our terms as Milvus sees them: each term's UTF-8 bytes in lowercase hex, separated by
/// spaces (so every Milvus tokenizer keeps a term whole and none folds two together).
/// Cut at a whole term to fit a VARCHAR.
fn encode_terms(terms: &[String]) -> String {
    let mut out = String::new();
    for term in terms {
        let encoded = hex::encode(term.as_bytes());
        if out.len() + encoded.len() + 1 > MAX_VARCHAR {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&encoded);
    }
    out
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// A string literal in a Milvus expression.
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

impl SearchBackend for MilvusBackend {
    fn name(&self) -> &'static str {
        "milvus"
    }

    fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    fn connect(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            for c in &self.collections {
                self.prepare(c).await?;
            }
            Ok(())
        })
    }

    fn keeps_owners(&self) -> bool {
        true
    }

    fn replace_video<'a>(
        &'a self,
        video_id: &'a str,
        generation: u32,
        owner: &'a VideoOwner,
        docs: Vec<(SearchDoc, Vec<f32>)>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { self.replace(video_id, generation, owner, &docs).await })
    }

    fn remove_video<'a>(&'a self, video_id: &'a str) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            let mut removed = 0;
            for c in &self.collections {
                removed += self.delete(c, self.own_rows(video_id)).await?;
            }
            self.marks.remove(video_id)?;
            Ok(removed)
        })
    }

    fn indexed_generation<'a>(&'a self, video_id: &'a str) -> BoxFuture<'a, Result<Option<u32>>> {
        Box::pin(async move { self.mark(video_id) })
    }

    fn indexed_videos(&self) -> BoxFuture<'_, Result<Vec<String>>> {
        Box::pin(async move {
            self.marks
                .iter()
                .keys()
                .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
                .collect()
        })
    }

    fn lexical<'a>(
        &'a self,
        query: &'a str,
        filter: &'a DocFilter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Bm25Hit>>> {
        Box::pin(async move {
            let mut terms = self.analyzer.terms(query);
            terms.sort();
            terms.dedup();
            let Some(c) = self.collection(Space::Text) else {
                return Ok(Vec::new());
            };
            if terms.is_empty() || limit == 0 {
                return Ok(Vec::new());
            }
            let placeholder = PlaceholderValue {
                tag: "$0".into(),
                r#type: PlaceholderType::VarChar as i32,
                values: vec![encode_terms(&terms).into_bytes()],
                ..Default::default()
            };
            let probe = Probe {
                field: "sparse",
                metric: "BM25",
                params: r#"{"drop_ratio_search":0.0}"#.into(),
                placeholder,
            };
            let (found, columns) = self.search(c, probe, filter, limit, &["terms"]).await?;
            // The query's terms as the `terms` field holds them, encoded once.
            let encoded: Vec<(&String, String)> = terms
                .iter()
                .map(|t| (t, hex::encode(t.as_bytes())))
                .collect();
            Ok(found
                .into_iter()
                .enumerate()
                .map(|(i, (doc_id, score))| {
                    // Milvus gives the score only: each matched term is named, with no
                    // share of it (0).
                    let doc_terms: std::collections::HashSet<&str> = columns
                        .string("terms", i)
                        .unwrap_or_default()
                        .split(' ')
                        .collect();
                    let matched = encoded
                        .iter()
                        .filter(|(_, hex)| doc_terms.contains(hex.as_str()))
                        .map(|(t, _)| ((*t).clone(), 0.0))
                        .collect();
                    Bm25Hit {
                        doc_id,
                        // BM25 is never negative; Milvus Lite reports it negated (as a
                        // distance), Milvus as is.
                        score: score.abs(),
                        terms: matched,
                    }
                })
                .collect())
        })
    }

    fn nearest<'a>(
        &'a self,
        space: Space,
        vector: &'a [f32],
        filter: &'a DocFilter,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(u64, f32)>>> {
        Box::pin(async move {
            let Some(c) = self.collection(space) else {
                return Ok(Vec::new());
            };
            if limit == 0 {
                return Ok(Vec::new());
            }
            if vector.len() != c.dims {
                return Err(Error::invalid(format!(
                    "a {}-dimensional query vector for collection {}, which holds {}",
                    vector.len(),
                    c.name,
                    c.dims
                )));
            }
            let placeholder = PlaceholderValue {
                tag: "$0".into(),
                r#type: PlaceholderType::FloatVector as i32,
                values: vec![vector.iter().flat_map(|x| x.to_le_bytes()).collect()],
                ..Default::default()
            };
            let ef = limit.max(100);
            let probe = Probe {
                field: "vector",
                metric: "COSINE",
                params: format!(r#"{{"ef":{ef}}}"#),
                placeholder,
            };
            Ok(self.search(c, probe, filter, limit, &[]).await?.0)
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.marks.flush_async().await?;
            Ok(())
        })
    }

    fn stats(&self) -> BoxFuture<'_, Result<BackendStats>> {
        Box::pin(async move {
            let mut documents = 0;
            for c in &self.collections {
                let counted = self.query(c, String::new(), &["count(*)"]).await?;
                documents += counted
                    .longs
                    .get("count(*)")
                    .and_then(|v| v.first())
                    .copied()
                    .unwrap_or(0)
                    .max(0) as u64;
            }
            Ok(BackendStats {
                documents,
                vectors: documents,
            })
        })
    }

    fn fetch<'a>(
        &'a self,
        ids: &'a [u64],
        with_vectors: bool,
    ) -> BoxFuture<'a, Result<Vec<Option<Fetched>>>> {
        Box::pin(async move {
            let mut found: HashMap<u64, Fetched> = HashMap::new();
            let mut fields: Vec<&str> = DOC_FIELDS.to_vec();
            if with_vectors {
                fields.push("vector");
            }
            for c in &self.collections {
                let wanted: Vec<String> = ids
                    .iter()
                    .filter(|&&id| space_of(id) == c.space)
                    .map(|id| id.to_string())
                    .collect();
                if wanted.is_empty() {
                    continue;
                }
                let columns = self
                    .query(c, format!("id in [{}]", wanted.join(", ")), &fields)
                    .await?;
                for i in 0..columns.len() {
                    if let Some((id, f)) = columns.fetched(i) {
                        found.insert(id, f);
                    }
                }
            }
            Ok(ids.iter().map(|id| found.remove(id)).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_milvus_expressions() {
        let mut f = DocFilter::videos(["b2", "a1"]);
        f.kinds.insert(DocKind::Shot);
        f.time_range = Some((1000, 5000));
        f.tenant = Some("acme \"x\"".into());
        assert_eq!(
            MilvusBackend::expression(&f),
            r#"kind in ["shot"] && video_id in ["a1", "b2"] && end_ms > 1000 && start_ms < 5000 && tenant == "acme \"x\"""#
        );
        assert_eq!(MilvusBackend::expression(&DocFilter::any()), "");
    }

    #[test]
    fn row_ids_carry_their_space_and_are_positive() {
        for seq in 0..100 {
            let t = row_id("o", "v", 3, seq, Space::Text);
            let v = row_id("o", "v", 3, seq, Space::Visual);
            assert_eq!(space_of(t), Space::Text);
            assert_eq!(space_of(v), Space::Visual);
            assert!((t as i64) >= 0 && (v as i64) >= 0);
        }
        assert_ne!(
            row_id("o", "v", 3, 0, Space::Text),
            row_id("o", "v", 4, 0, Space::Text)
        );
        assert_ne!(
            row_id("o", "v", 3, 0, Space::Text),
            row_id("p", "v", 3, 0, Space::Text)
        );
    }

    #[test]
    fn terms_are_hex_words_cut_whole() {
        assert_eq!(
            encode_terms(&["比赛".to_string(), "run".to_string()]),
            "e6af94e8b59b 72756e"
        );
        let many: Vec<String> = (0..40_000).map(|i| format!("t{i}")).collect();
        let encoded = encode_terms(&many);
        assert!(encoded.len() <= MAX_VARCHAR);
        assert!(encoded.split(' ').all(|w| hex::decode(w).is_ok()));
        assert_eq!(clip("比赛", 4), "比");
    }
}
