//! reelforge's BM25 against tantivy's, in one run on one corpus: index build time, query
//! latency p50/p99 (top-10 and top-50) and nDCG@10 on a judged query set, with the same
//! BM25 parameters (k1 = 1.2, b = 0.75, tantivy's fixed values) and the same analysis
//! (lowercase, the same English stop words, Snowball English stemming).
//!
//! The judged set is assembled here, deterministically: a corpus of video-moment texts
//! (descriptions and transcript lines) about 24 topics, each topic with 6 facets (a facet
//! is 3 of the topic's words); every document is written about one (topic, facet), in
//! inflected forms ("dribbling", "dribbled"), padded with common words and sometimes a
//! word from another topic. A query names one facet in base forms plus, half the time, a
//! word of its topic. Judgments: 2 = the query's topic and facet, 1 = its topic, another
//! facet, 0 = another topic. The judgments come from how the corpus was written, not from
//! either engine.
//!
//! Run: `cargo run --release -- [--docs N] [--queries N]` (from this directory).

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, Result};
use reelforge_server::search::index::{AnnConfig, DocKind, SearchDoc, SearchIndex, B, K1};
use reelforge_server::search::text::STOP_WORDS;
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, INDEXED};
use tantivy::tokenizer::{
    Language, LowerCaser, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{doc, Index};

const TOPICS: &[(&str, &[&str])] = &[
    (
        "soccer",
        &[
            "goal", "striker", "keeper", "penalty", "referee", "corner", "header", "dribble",
            "tackle", "stadium", "whistle", "offside",
        ],
    ),
    (
        "cooking",
        &[
            "chef", "onion", "garlic", "skillet", "simmer", "sauce", "knife", "oven", "recipe",
            "butter", "season", "taste",
        ],
    ),
    (
        "cycling",
        &[
            "bike", "rider", "pedal", "climb", "helmet", "saddle", "descent", "sprint", "chain",
            "wheel", "peloton", "gear",
        ],
    ),
    (
        "concert",
        &[
            "guitar",
            "drummer",
            "singer",
            "stage",
            "encore",
            "crowd",
            "chorus",
            "amplifier",
            "spotlight",
            "setlist",
            "bass",
            "microphone",
        ],
    ),
    (
        "wildlife",
        &[
            "lion",
            "elephant",
            "savanna",
            "herd",
            "predator",
            "hunt",
            "waterhole",
            "cub",
            "zebra",
            "safari",
            "tusk",
            "prey",
        ],
    ),
    (
        "weather",
        &[
            "storm",
            "lightning",
            "thunder",
            "rain",
            "flood",
            "forecast",
            "wind",
            "hail",
            "tornado",
            "cloud",
            "umbrella",
            "drizzle",
        ],
    ),
    (
        "basketball",
        &[
            "dunk", "rebound", "court", "hoop", "dribble", "assist", "buzzer", "foul", "timeout",
            "layup", "rim", "point",
        ],
    ),
    (
        "gardening",
        &[
            "seed",
            "soil",
            "compost",
            "prune",
            "tomato",
            "shovel",
            "weed",
            "bloom",
            "greenhouse",
            "harvest",
            "water",
            "root",
        ],
    ),
    (
        "cars",
        &[
            "engine", "tire", "race", "pit", "driver", "lap", "overtake", "brake", "exhaust",
            "track", "crash", "fuel",
        ],
    ),
    (
        "wedding",
        &[
            "bride", "groom", "vow", "ring", "cake", "toast", "dance", "veil", "bouquet", "guest",
            "kiss", "aisle",
        ],
    ),
    (
        "space",
        &[
            "rocket",
            "launch",
            "orbit",
            "astronaut",
            "capsule",
            "booster",
            "countdown",
            "satellite",
            "moon",
            "thruster",
            "dock",
            "payload",
        ],
    ),
    (
        "skiing",
        &[
            "slope",
            "ski",
            "powder",
            "lift",
            "jump",
            "slalom",
            "snow",
            "pole",
            "avalanche",
            "glove",
            "goggle",
            "chairlift",
        ],
    ),
    (
        "cats",
        &[
            "kitten", "purr", "whisker", "litter", "scratch", "pounce", "yarn", "nap", "meow",
            "paw", "tail", "mouse",
        ],
    ),
    (
        "news",
        &[
            "anchor",
            "headline",
            "report",
            "interview",
            "election",
            "minister",
            "press",
            "debate",
            "vote",
            "studio",
            "breaking",
            "correspondent",
        ],
    ),
    (
        "surfing",
        &[
            "wave", "board", "surfer", "barrel", "paddle", "beach", "swell", "tide", "wipeout",
            "reef", "wetsuit", "shore",
        ],
    ),
    (
        "fitness",
        &[
            "squat",
            "dumbbell",
            "trainer",
            "workout",
            "stretch",
            "treadmill",
            "sweat",
            "plank",
            "rep",
            "gym",
            "muscle",
            "pushup",
        ],
    ),
    (
        "tennis",
        &[
            "serve", "racket", "volley", "net", "baseline", "ace", "deuce", "umpire", "smash",
            "backhand", "forehand", "match",
        ],
    ),
    (
        "baking",
        &[
            "dough", "flour", "knead", "yeast", "loaf", "crust", "whisk", "pastry", "sugar",
            "icing", "batter", "rise",
        ],
    ),
    (
        "hiking",
        &[
            "trail",
            "summit",
            "backpack",
            "ridge",
            "boot",
            "map",
            "campfire",
            "tent",
            "valley",
            "compass",
            "waterfall",
            "forest",
        ],
    ),
    (
        "gaming",
        &[
            "controller",
            "level",
            "boss",
            "player",
            "score",
            "quest",
            "console",
            "respawn",
            "stream",
            "headset",
            "lobby",
            "loot",
        ],
    ),
    (
        "fishing",
        &[
            "rod", "reel", "bait", "hook", "trout", "boat", "lake", "cast", "net", "catch", "lure",
            "dock",
        ],
    ),
    (
        "dance",
        &[
            "ballet",
            "spin",
            "choreography",
            "dancer",
            "rehearsal",
            "tango",
            "leap",
            "costume",
            "rhythm",
            "partner",
            "salsa",
            "twirl",
        ],
    ),
    (
        "construction",
        &[
            "crane",
            "concrete",
            "scaffold",
            "beam",
            "hammer",
            "drill",
            "brick",
            "worker",
            "excavator",
            "weld",
            "blueprint",
            "foundation",
        ],
    ),
    (
        "fireworks",
        &[
            "rocket",
            "sparkle",
            "explosion",
            "sky",
            "festival",
            "bang",
            "smoke",
            "finale",
            "color",
            "fuse",
            "launch",
            "celebration",
        ],
    ),
];

/// Common words that carry no topic (some are stop words, as in real text).
const COMMON: &[&str] = &[
    "the", "a", "and", "then", "now", "we", "you", "see", "look", "here", "there", "this", "that",
    "is", "was", "with", "of", "in", "on", "at", "it", "they", "really", "just", "very", "good",
    "great", "people", "moment", "time", "right", "again", "after", "before", "next", "first",
    "last", "big", "small", "new", "old", "people", "everyone", "quickly", "slowly", "watch",
    "camera", "scene", "show", "shot", "close", "wide", "today", "back", "around", "over", "still",
    "while", "some", "more", "so", "well", "okay", "yes", "wow",
];

const SUFFIXES: &[&str] = &["", "", "s", "ing", "ed"];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

struct Corpus {
    texts: Vec<String>,
    /// (topic, facet) of each document.
    labels: Vec<(usize, usize)>,
    /// Query text and its (topic, facet).
    queries: Vec<(String, (usize, usize))>,
}

const FACETS: usize = 6;

fn corpus(docs: usize, queries: usize) -> Corpus {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Facet f of topic t: 3 distinct words of the topic.
    let facets: Vec<Vec<[usize; 3]>> = TOPICS
        .iter()
        .map(|(_, words)| {
            (0..FACETS)
                .map(|_| loop {
                    let f = [
                        rng.below(words.len()),
                        rng.below(words.len()),
                        rng.below(words.len()),
                    ];
                    if f[0] != f[1] && f[1] != f[2] && f[0] != f[2] {
                        break f;
                    }
                })
                .collect()
        })
        .collect();
    let mut texts = Vec::with_capacity(docs);
    let mut labels = Vec::with_capacity(docs);
    for _ in 0..docs {
        let t = rng.below(TOPICS.len());
        let f = rng.below(FACETS);
        let words = TOPICS[t].1;
        let len = 12 + rng.below(40);
        let mut text = Vec::with_capacity(len);
        for _ in 0..len {
            let w = if rng.chance(0.22) {
                words[facets[t][f][rng.below(3)]].to_string()
            } else if rng.chance(0.2) {
                words[rng.below(words.len())].to_string()
            } else if rng.chance(0.05) {
                let other = TOPICS[rng.below(TOPICS.len())].1;
                other[rng.below(other.len())].to_string()
            } else {
                COMMON[rng.below(COMMON.len())].to_string()
            };
            text.push(format!("{w}{}", SUFFIXES[rng.below(SUFFIXES.len())]));
        }
        texts.push(text.join(" "));
        labels.push((t, f));
    }
    let mut qs = Vec::with_capacity(queries);
    for i in 0..queries {
        let (t, f) = (i % TOPICS.len(), (i / TOPICS.len()) % FACETS);
        let words = TOPICS[t].1;
        let facet = facets[t][f];
        // Two of the facet's words, and half the time a word of the topic.
        let skip = rng.below(3);
        let mut q: Vec<&str> = (0..3)
            .filter(|&k| k != skip)
            .map(|k| words[facet[k]])
            .collect();
        if rng.chance(0.5) {
            q.push(words[rng.below(words.len())]);
        }
        qs.push((q.join(" "), (t, f)));
    }
    Corpus {
        texts,
        labels,
        queries: qs,
    }
}

fn grade(label: (usize, usize), query: (usize, usize)) -> f64 {
    if label == query {
        2.0
    } else if label.0 == query.0 {
        1.0
    } else {
        0.0
    }
}

/// nDCG@10 with gains 2^rel - 1; the ideal ranking puts every grade-2 document first.
fn ndcg10(
    ranked: &[usize],
    labels: &[(usize, usize)],
    query: (usize, usize),
    ideal_counts: (usize, usize),
) -> f64 {
    let gain = |rel: f64| 2f64.powf(rel) - 1.0;
    let dcg: f64 = ranked
        .iter()
        .take(10)
        .enumerate()
        .map(|(i, &d)| gain(grade(labels[d], query)) / ((i + 2) as f64).log2())
        .sum();
    let (twos, ones) = ideal_counts;
    let ideal: f64 = (0..10)
        .map(|i| {
            let rel = if i < twos {
                2.0
            } else if i < twos + ones {
                1.0
            } else {
                0.0
            };
            gain(rel) / ((i + 2) as f64).log2()
        })
        .sum();
    if ideal == 0.0 {
        0.0
    } else {
        dcg / ideal
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

struct Measured {
    build_s: f64,
    top10: Vec<f64>,
    top50: Vec<f64>,
    ranked: Vec<Vec<usize>>,
    /// Top-10 scores per query.
    scores: Vec<Vec<f32>>,
}

fn run_reelforge(c: &Corpus) -> Result<Measured> {
    let dir = tempfile::tempdir()?;
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(256 << 20)
        .open()?;
    // BM25 alone is compared: no vector graph building in the background.
    let no_graph = AnnConfig {
        threshold: 0,
        ..AnnConfig::default()
    };
    let index = SearchIndex::open_with(&db, no_graph)?;
    let mut doc_of: HashMap<u64, usize> = HashMap::new();
    let started = Instant::now();
    // BM25 alone is compared: every document gets the same one-dimensional vector.
    // A video's worth of documents per transaction, as ingest indexes them.
    for (b, batch) in c.texts.chunks(100).enumerate() {
        let docs: Vec<(SearchDoc, Vec<f32>)> = batch
            .iter()
            .map(|text| {
                let doc = SearchDoc {
                    video_id: format!("v{b}"),
                    kind: DocKind::TranscriptChunk,
                    text: text.clone(),
                    start_ms: 0,
                    end_ms: 1,
                };
                (doc, vec![1.0])
            })
            .collect();
        for (k, id) in index.add_batch(&docs)?.into_iter().enumerate() {
            doc_of.insert(id, b * 100 + k);
        }
    }
    db.flush()?;
    let build_s = started.elapsed().as_secs_f64();
    let (mut top10, mut top50, mut ranked, mut scores) = (vec![], vec![], vec![], vec![]);
    for _round in 0..rounds() {
        top10.clear();
        top50.clear();
        ranked.clear();
        scores.clear();
        for (q, _) in &c.queries {
            let t = Instant::now();
            let hits = index.bm25(q, &|_| true, 10)?;
            top10.push(t.elapsed().as_secs_f64() * 1000.0);
            ranked.push(hits.iter().map(|h| doc_of[&h.doc_id]).collect());
            scores.push(hits.iter().map(|h| h.score).collect());
        }
        for (q, _) in &c.queries {
            let t = Instant::now();
            std::hint::black_box(index.bm25(q, &|_| true, 50)?);
            top50.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    Ok(Measured {
        build_s,
        top10,
        top50,
        ranked,
        scores,
    })
}

fn run_tantivy(c: &Corpus) -> Result<Measured> {
    let dir = tempfile::tempdir()?;
    let mut schema = Schema::builder();
    let options = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer("reelforge")
            .set_index_option(IndexRecordOption::WithFreqs),
    );
    let body = schema.add_text_field("body", options);
    let id = schema.add_u64_field("id", INDEXED | FAST);
    let index = Index::create_in_dir(dir.path(), schema.build())?;
    index.tokenizers().register(
        "reelforge",
        TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(LowerCaser)
            .filter(StopWordFilter::remove(
                STOP_WORDS.iter().map(|w| w.to_string()),
            ))
            .filter(Stemmer::new(Language::English))
            .build(),
    );
    let started = Instant::now();
    let mut writer = index.writer_with_num_threads(2, 200_000_000)?;
    for (i, text) in c.texts.iter().enumerate() {
        writer.add_document(doc!(body => text.as_str(), id => i as u64))?;
    }
    writer.commit()?;
    writer.wait_merging_threads()?;
    let build_s = started.elapsed().as_secs_f64();
    let reader = index.reader()?;
    let searcher = reader.searcher();
    let parser = QueryParser::for_index(&index, vec![body]);
    let ids: Vec<_> = searcher
        .segment_readers()
        .iter()
        .map(|s| s.fast_fields().u64("id"))
        .collect::<tantivy::Result<_>>()?;
    let (mut top10, mut top50, mut ranked, mut scores) = (vec![], vec![], vec![], vec![]);
    for _round in 0..rounds() {
        top10.clear();
        top50.clear();
        ranked.clear();
        scores.clear();
        for (q, _) in &c.queries {
            let t = Instant::now();
            let query = parser.parse_query(q)?;
            std::hint::black_box(
                searcher.search(&query, &TopDocs::with_limit(50).order_by_score())?,
            );
            top50.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        for (q, _) in &c.queries {
            let t = Instant::now();
            let query = parser.parse_query(q)?;
            let hits = searcher.search(&query, &TopDocs::with_limit(10).order_by_score())?;
            top10.push(t.elapsed().as_secs_f64() * 1000.0);
            scores.push(hits.iter().map(|h| h.0).collect());
            ranked.push(
                hits.iter()
                    .map(|(_, a)| {
                        ids[a.segment_ord as usize]
                            .first(a.doc_id)
                            .map(|v| v as usize)
                            .context("a document without its id")
                    })
                    .collect::<Result<_>>()?,
            );
        }
    }
    Ok(Measured {
        build_s,
        top10,
        top50,
        ranked,
        scores,
    })
}

/// Query passes; only the last is measured (the first warms caches).
fn rounds() -> usize {
    std::env::var("COMPARE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn main() -> Result<()> {
    let mut docs = 100_000;
    let mut queries = 144;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--docs", Some(v)) => docs = v.parse()?,
            ("--queries", Some(v)) => queries = v.parse()?,
            _ => anyhow::bail!("usage: search-compare [--docs N] [--queries N]"),
        }
    }
    let c = corpus(docs, queries);
    let mut counts: HashMap<(usize, usize), usize> = HashMap::new();
    let mut topic_counts: HashMap<usize, usize> = HashMap::new();
    for &l in &c.labels {
        *counts.entry(l).or_default() += 1;
        *topic_counts.entry(l.0).or_default() += 1;
    }
    let ideal = |q: (usize, usize)| {
        let twos = counts.get(&q).copied().unwrap_or(0);
        (twos, topic_counts.get(&q.0).copied().unwrap_or(0) - twos)
    };
    println!(
        "corpus: {docs} documents, {} judged queries, BM25 k1 {K1} b {B} in both",
        c.queries.len()
    );
    let ours = run_reelforge(&c)?;
    let theirs = run_tantivy(&c)?;
    let mut agree = 0usize;
    let report = |name: &str, m: &mut Measured| {
        let ndcg: f64 = m
            .ranked
            .iter()
            .zip(&c.queries)
            .map(|(r, (_, q))| ndcg10(r, &c.labels, *q, ideal(*q)))
            .sum::<f64>()
            / c.queries.len() as f64;
        println!(
            "{name:<10} build {:>6.2} s   top-10 p50 {:>6.3} ms p99 {:>6.3} ms   top-50 p50 {:>6.3} ms p99 {:>6.3} ms   nDCG@10 {ndcg:.4}",
            m.build_s,
            pct(&mut m.top10, 0.5),
            pct(&mut m.top10, 0.99),
            pct(&mut m.top50, 0.5),
            pct(&mut m.top50, 0.99),
        );
    };
    let (mut ours, mut theirs) = (ours, theirs);
    report("reelforge", &mut ours);
    report("tantivy", &mut theirs);
    for (a, b) in ours.ranked.iter().zip(&theirs.ranked) {
        agree += a.iter().filter(|d| b.contains(d)).count();
    }
    // Where the lists differ, is it only the order among equal scores?
    let differing = ours
        .ranked
        .iter()
        .zip(&theirs.ranked)
        .filter(|(a, b)| a != b)
        .count();
    let score_differs = ours
        .scores
        .iter()
        .zip(&theirs.scores)
        .filter(|(a, b)| {
            a.len() != b.len()
                || a.iter()
                    .zip(b.iter())
                    .any(|(x, y)| (x - y).abs() > 1e-3 * x.abs().max(1e-3))
        })
        .count();
    println!(
        "top-10 overlap {:.1} %; {differing} of {} lists differ in members or order; {score_differs} have a score off by > 0.1 % (tantivy keeps document lengths in one byte, exact up to 40 terms; reelforge's are exact)",
        100.0 * agree as f64 / (c.queries.len() * 10) as f64,
        c.queries.len()
    );
    Ok(())
}
