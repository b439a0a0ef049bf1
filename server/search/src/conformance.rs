//! The search backend conformance suite: what any `SearchBackend` must do, checked
//! against answers computed here from the documents themselves (BM25 by the formula,
//! nearest neighbours by exact cosine). The embedded index and the Milvus backend both
//! run it. Behind the `testing` feature.

use std::collections::HashMap;

use crate::backend::{SearchBackend, VideoOwner};
use crate::bm25::{B, K1};
use crate::doc::{DocFilter, DocKind, SearchDoc, Space};

/// The corpus: (video, kind, text, start s, end s). Frames are in the visual space.
const CORPUS: &[(&str, DocKind, &str, i64, i64)] = &[
    (
        "c0ffee0000000001",
        DocKind::SliceDescription,
        "A cyclist in a red jersey wins the bicycle race at the finish line",
        0,
        30,
    ),
    (
        "c0ffee0000000001",
        DocKind::SliceDescription,
        "The crowd cheers as riders cross the bridge",
        30,
        60,
    ),
    (
        "c0ffee0000000001",
        DocKind::TranscriptChunk,
        "what a race, the red rider takes it on the final climb",
        10,
        25,
    ),
    (
        "c0ffee0000000001",
        DocKind::SoundEvent,
        "applause cheering crowd",
        40,
        48,
    ),
    (
        "c0ffee0000000001",
        DocKind::Frame,
        "a cyclist crossing the line",
        12,
        13,
    ),
    (
        "c0ffee0000000002",
        DocKind::SliceDescription,
        "A rabbit wakes up in a sunny meadow full of flowers",
        0,
        30,
    ),
    (
        "c0ffee0000000002",
        DocKind::TranscriptChunk,
        "比賽開始了，紅色的自行車領先",
        30,
        42,
    ),
    (
        "c0ffee0000000002",
        DocKind::ChapterSummary,
        "The rabbit chases a butterfly and races across the meadow",
        30,
        90,
    ),
    (
        "c0ffee0000000002",
        DocKind::Frame,
        "a rabbit in a meadow",
        5,
        6,
    ),
    (
        "c0ffee0000000003",
        DocKind::VideoSummary,
        "Cooking pasta: boiling water, red tomato sauce and fresh basil",
        0,
        120,
    ),
    (
        "c0ffee0000000003",
        DocKind::OcrText,
        "RED SAUCE RECIPE",
        60,
        75,
    ),
    (
        "c0ffee0000000003",
        DocKind::Shot,
        "close up of a red tomato",
        75,
        80,
    ),
];

const TENANTS: [&str; 3] = ["acme", "acme", "globex"];

fn video_index(video_id: &str) -> usize {
    (video_id.as_bytes()[15] - b'1') as usize
}

fn owner(video_id: &str) -> VideoOwner {
    VideoOwner {
        tenant: TENANTS[video_index(video_id)].to_string(),
        filename: format!("clip {}.mp4", video_index(video_id) + 1),
    }
}

/// A deterministic unit vector for a document's text: a hashed bag of its words, so
/// documents sharing words are near one another.
pub fn vector_of(text: &str, dims: usize) -> Vec<f32> {
    let mut v = vec![0f32; dims];
    for word in text.to_lowercase().split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        let mut h: u64 = 0xcbf29ce484222325;
        for b in word.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
        v[(h % dims as u64) as usize] += 1.0;
        v[((h >> 20) % dims as u64) as usize] += 0.5;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
    v.iter().map(|x| x / norm).collect()
}

fn docs_of(video_id: &str) -> Vec<SearchDoc> {
    CORPUS
        .iter()
        .filter(|d| d.0 == video_id)
        .map(|&(v, kind, text, s, e)| SearchDoc {
            video_id: v.into(),
            kind,
            text: text.into(),
            start_ms: s * 1000,
            end_ms: e * 1000,
        })
        .collect()
}

/// A document's identity across backends: (video, kind, start ms).
type Key = (String, DocKind, i64);

fn key(d: &SearchDoc) -> Key {
    (d.video_id.clone(), d.kind, d.start_ms)
}

/// How a backend's BM25 statistics (N, df, average length) relate to the formula's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistics {
    /// Exact, always: the live documents' (the embedded index).
    Exact,
    /// Milvus: per segment, over what a filter leaves (Milvus Lite), and counting
    /// deleted rows until compaction. Scores must match the formula for an unfiltered
    /// query before any delete; otherwise the same documents must be found, in the
    /// order of the backend's own scores.
    PerSegment,
}

struct Suite<'a> {
    backend: &'a dyn SearchBackend,
    dims: usize,
    /// Relative tolerance of BM25 scores.
    tolerance: f32,
    statistics: Statistics,
    /// Whether anything was deleted yet.
    deleted: bool,
    /// The documents indexed now.
    live: Vec<SearchDoc>,
}

impl Suite<'_> {
    async fn index(&mut self, video_id: &str, generation: u32, docs: Vec<SearchDoc>) {
        let with_vectors = docs
            .iter()
            .map(|d| (d.clone(), vector_of(&d.text, self.dims)))
            .collect();
        self.backend
            .replace_video(video_id, generation, &owner(video_id), with_vectors)
            .await
            .expect("replace_video");
        self.deleted |= self.live.iter().any(|d| d.video_id == video_id);
        self.live.retain(|d| d.video_id != video_id);
        self.live.extend(docs);
    }

    /// Backend ids → keys, through `fetch` (which must return every id it was given).
    async fn keys(&self, ids: &[u64]) -> Vec<Key> {
        let fetched = self.backend.fetch(ids, false).await.expect("fetch");
        assert_eq!(fetched.len(), ids.len(), "fetch answers each id in order");
        fetched
            .into_iter()
            .map(|f| key(&f.expect("a returned id can be fetched").doc))
            .collect()
    }

    /// BM25 over the live text documents, by the formula; best first.
    fn expected_bm25(&self, query: &str, filter: &DocFilter) -> Vec<(Key, f32)> {
        let analyzer = self.backend.analyzer();
        let texts: Vec<(&SearchDoc, Vec<String>)> = self
            .live
            .iter()
            .filter(|d| d.kind.space() == Space::Text)
            .map(|d| (d, analyzer.terms(&d.text)))
            .collect();
        let n = texts.len() as f32;
        let avg = texts.iter().map(|t| t.1.len()).sum::<usize>() as f32 / n;
        let mut q = analyzer.terms(query);
        q.sort();
        q.dedup();
        let mut scored: Vec<(Key, f32)> = texts
            .iter()
            .filter(|(d, _)| accepts(filter, d))
            .filter_map(|(d, terms)| {
                let mut score = 0.0;
                for t in &q {
                    let tf = terms.iter().filter(|x| *x == t).count() as f32;
                    if tf == 0.0 {
                        continue;
                    }
                    let df = texts.iter().filter(|(_, ts)| ts.contains(t)).count() as f32;
                    let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
                    let len = terms.len() as f32;
                    score += idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / avg));
                }
                (score > 0.0).then(|| (key(d), score))
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1));
        scored
    }

    async fn check_lexical(&self, query: &str, filter: &DocFilter) {
        let hits = self
            .backend
            .lexical(query, filter, 10)
            .await
            .expect("lexical");
        let expected = self.expected_bm25(query, filter);
        let keys = self
            .keys(&hits.iter().map(|h| h.doc_id).collect::<Vec<_>>())
            .await;
        let got: Vec<(Key, f32)> = keys.into_iter().zip(hits.iter().map(|h| h.score)).collect();
        assert_eq!(
            got.len(),
            expected.len().min(10),
            "{query:?} with {filter:?}: got {got:?}, expected {expected:?}"
        );
        let filtered = *filter != DocFilter::any();
        if self.statistics == Statistics::PerSegment && (filtered || self.deleted) {
            let order = |k: &&Key| (k.0.clone(), k.1.name(), k.2);
            let mut got_keys: Vec<&Key> = got.iter().map(|g| &g.0).collect();
            let mut want_keys: Vec<&Key> = expected.iter().take(10).map(|e| &e.0).collect();
            got_keys.sort_by_key(order);
            want_keys.sort_by_key(order);
            assert_eq!(
                got_keys, want_keys,
                "{query:?} with {filter:?}: the same documents"
            );
            assert!(
                got.windows(2).all(|w| w[0].1 >= w[1].1 && w[1].1 > 0.0),
                "{query:?}: positive scores, best first: {got:?}"
            );
            return;
        }
        for (i, ((k, s), (ek, es))) in got.iter().zip(&expected).enumerate() {
            assert!(
                (s - es).abs() <= self.tolerance * es.abs().max(1e-3),
                "{query:?} hit {i}: score {s}, by the formula {es} ({k:?})"
            );
            // Identical order where the scores differ by more than the tolerance.
            let tied = expected
                .iter()
                .any(|(ok, os)| ok != ek && (os - es).abs() <= 2.0 * self.tolerance * es);
            if !tied {
                assert_eq!(
                    k, ek,
                    "{query:?} hit {i}: got {got:?}, expected {expected:?}"
                );
            }
        }
    }

    async fn check_nearest(&self, space: Space, text: &str, filter: &DocFilter) {
        let query = vector_of(text, self.dims);
        let got = self
            .backend
            .nearest(space, &query, filter, 5)
            .await
            .expect("nearest");
        let mut expected: Vec<(Key, f32)> = self
            .live
            .iter()
            .filter(|d| d.kind.space() == space && accepts(filter, d))
            .map(|d| {
                let v = vector_of(&d.text, self.dims);
                (key(d), v.iter().zip(&query).map(|(a, b)| a * b).sum())
            })
            .collect();
        expected.sort_by(|a, b| b.1.total_cmp(&a.1));
        expected.truncate(5);
        let keys = self
            .keys(&got.iter().map(|g| g.0).collect::<Vec<_>>())
            .await;
        assert_eq!(
            keys.len(),
            expected.len(),
            "{text:?}: {keys:?} vs {expected:?}"
        );
        for (i, (k, (_, s))) in keys.iter().zip(&got).enumerate() {
            let (ek, es) = &expected[i];
            assert!(
                (s - es).abs() < 1e-4,
                "{text:?} hit {i}: cosine {s}, exact {es}"
            );
            let tied = expected
                .iter()
                .any(|(ok, os)| ok != ek && (os - es).abs() < 1e-4);
            if !tied {
                assert_eq!(k, ek, "{text:?} hit {i}");
            }
        }
    }
}

fn accepts(filter: &DocFilter, d: &SearchDoc) -> bool {
    (filter.kinds.is_empty() || filter.kinds.contains(&d.kind))
        && (filter.video_ids.is_empty() || filter.video_ids.contains(&d.video_id))
        && filter
            .time_range
            .is_none_or(|(s, e)| d.end_ms > s && d.start_ms < e)
        && filter
            .tenant
            .as_ref()
            .is_none_or(|t| owner(&d.video_id).tenant == *t)
}

/// Runs the suite on an empty `backend` whose spaces hold `dims`-dimensional vectors.
/// BM25 scores must be within `bm25_tolerance` (relative) of the formula's where
/// `statistics` allow; cosines within 1e-4; rankings identical wherever the expected
/// scores are not tied.
pub async fn backend(
    backend: &dyn SearchBackend,
    dims: usize,
    bm25_tolerance: f32,
    statistics: Statistics,
) {
    let mut s = Suite {
        backend,
        dims,
        tolerance: bm25_tolerance,
        statistics,
        deleted: false,
        live: Vec::new(),
    };
    for v in ["c0ffee0000000001", "c0ffee0000000002", "c0ffee0000000003"] {
        s.index(v, 1, docs_of(v)).await;
        assert_eq!(backend.indexed_generation(v).await.unwrap(), Some(1));
    }
    let mut indexed = backend.indexed_videos().await.unwrap();
    indexed.sort();
    assert_eq!(
        indexed,
        ["c0ffee0000000001", "c0ffee0000000002", "c0ffee0000000003"]
    );
    let stats = backend.stats().await.unwrap();
    assert_eq!(stats.documents, CORPUS.len() as u64, "{stats:?}");

    // Lexical: ranking and scores by the formula; stemming, Chinese (traditional query
    // and document folded alike), filters.
    let any = DocFilter::any();
    s.check_lexical("red bicycle race", &any).await;
    s.check_lexical("racing rabbits", &any).await;
    s.check_lexical("比赛 自行车", &any).await;
    s.check_lexical("the", &any).await;
    s.check_lexical("xylophone", &any).await;
    let mut kinds = DocFilter::any();
    kinds.kinds.insert(DocKind::TranscriptChunk);
    s.check_lexical("red race", &kinds).await;
    s.check_lexical("red", &DocFilter::videos(["c0ffee0000000003"]))
        .await;
    let timed = DocFilter {
        time_range: Some((26_000, 61_000)),
        ..DocFilter::any()
    };
    s.check_lexical("red race crowd", &timed).await;
    if backend.keeps_owners() {
        let tenant = DocFilter {
            tenant: Some("globex".into()),
            ..DocFilter::any()
        };
        s.check_lexical("red", &tenant).await;
    }
    // A frame's words are not searchable as text.
    let frames = DocFilter {
        kinds: [DocKind::Frame].into(),
        ..DocFilter::any()
    };
    assert!(backend
        .lexical("cyclist", &frames, 10)
        .await
        .unwrap()
        .is_empty());

    // Vectors: exact cosine order in each space, filtered.
    s.check_nearest(Space::Text, "red race cyclist", &any).await;
    s.check_nearest(Space::Text, "rabbit meadow", &kinds).await;
    s.check_nearest(Space::Visual, "cyclist line", &any).await;
    s.check_nearest(
        Space::Text,
        "tomato",
        &DocFilter::videos(["c0ffee0000000003"]),
    )
    .await;

    // Fetch: the document, its vector, its owner (from backends that keep owners).
    let hit = backend.lexical("pasta basil", &any, 1).await.unwrap();
    let fetched = backend
        .fetch(&[hit[0].doc_id, u64::MAX >> 2], true)
        .await
        .unwrap();
    let doc = fetched[0].clone().expect("fetched");
    assert_eq!(doc.doc, docs_of("c0ffee0000000003")[0]);
    let v = doc.vector.expect("its vector");
    let want = vector_of(&doc.doc.text, dims);
    assert!(v.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5));
    if backend.keeps_owners() {
        assert_eq!(doc.owner, Some(owner("c0ffee0000000003")));
    }
    assert!(fetched[1].is_none(), "an unknown id fetches as None");

    // Replace: a new generation with fewer documents leaves nothing of the old one.
    let newer: Vec<SearchDoc> = docs_of("c0ffee0000000001")
        .into_iter()
        .skip(1)
        .map(|mut d| {
            d.text = d.text.replace("red", "blue");
            d
        })
        .collect();
    s.index("c0ffee0000000001", 2, newer).await;
    assert_eq!(
        backend
            .indexed_generation("c0ffee0000000001")
            .await
            .unwrap(),
        Some(2)
    );
    s.check_lexical("red bicycle race", &any).await;
    s.check_lexical("blue rider", &any).await;
    s.check_nearest(Space::Visual, "cyclist line", &any).await;

    // Remove: every document of the video, and its mark.
    let removed = backend.remove_video("c0ffee0000000002").await.unwrap();
    s.deleted = true;
    assert_eq!(removed, 4);
    s.live.retain(|d| d.video_id != "c0ffee0000000002");
    assert_eq!(
        backend
            .indexed_generation("c0ffee0000000002")
            .await
            .unwrap(),
        None
    );
    s.check_lexical("racing rabbits", &any).await;
    s.check_nearest(Space::Visual, "rabbit meadow", &any).await;
    let stats = backend.stats().await.unwrap();
    assert_eq!(stats.documents, s.live.len() as u64, "{stats:?}");
    let counts: HashMap<&str, usize> = s.live.iter().fold(HashMap::new(), |mut m, d| {
        *m.entry(d.video_id.as_str()).or_default() += 1;
        m
    });
    assert_eq!(counts.len(), 2);
}
