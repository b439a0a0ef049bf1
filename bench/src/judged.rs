//! A judged corpus for search quality, assembled deterministically: video-moment texts
//! (descriptions and transcript lines) about 24 topics, each topic with 6 facets (a facet
//! is 3 of the topic's words); every document is written about one (topic, facet), in
//! inflected forms ("dribbling", "dribbled"), padded with common words and sometimes a
//! word from another topic. A query names one facet in base forms plus, half the time, a
//! word of its topic. Judgments: 2 = the query's topic and facet, 1 = its topic, another
//! facet, 0 = another topic. The judgments come from how the corpus was written, not from
//! any engine. `reelforge-bench quality` and `bench/search-compare` both use it.

use std::collections::HashMap;

pub const TOPICS: &[(&str, &[&str])] = &[
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
pub const COMMON: &[&str] = &[
    "the", "a", "and", "then", "now", "we", "you", "see", "look", "here", "there", "this", "that",
    "is", "was", "with", "of", "in", "on", "at", "it", "they", "really", "just", "very", "good",
    "great", "people", "moment", "time", "right", "again", "after", "before", "next", "first",
    "last", "big", "small", "new", "old", "people", "everyone", "quickly", "slowly", "watch",
    "camera", "scene", "show", "shot", "close", "wide", "today", "back", "around", "over", "still",
    "while", "some", "more", "so", "well", "okay", "yes", "wow",
];

pub const SUFFIXES: &[&str] = &["", "", "s", "ing", "ed"];

pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

pub struct Corpus {
    pub texts: Vec<String>,
    /// (topic, facet) of each document.
    pub labels: Vec<(usize, usize)>,
    /// Query text and its (topic, facet).
    pub queries: Vec<(String, (usize, usize))>,
}

pub const FACETS: usize = 6;

pub fn corpus(docs: usize, queries: usize) -> Corpus {
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

pub fn grade(label: (usize, usize), query: (usize, usize)) -> f64 {
    if label == query {
        2.0
    } else if label.0 == query.0 {
        1.0
    } else {
        0.0
    }
}

/// nDCG@10 with gains 2^rel - 1; the ideal ranking puts every grade-2 document first.
pub fn ndcg10(
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

impl Corpus {
    /// Per query: how many grade-2 and grade-1 documents exist (the ideal ranking).
    pub fn ideal(&self) -> impl Fn((usize, usize)) -> (usize, usize) + '_ {
        let mut counts: HashMap<(usize, usize), usize> = HashMap::new();
        let mut topic_counts: HashMap<usize, usize> = HashMap::new();
        for &l in &self.labels {
            *counts.entry(l).or_default() += 1;
            *topic_counts.entry(l.0).or_default() += 1;
        }
        move |q| {
            let twos = counts.get(&q).copied().unwrap_or(0);
            (twos, topic_counts.get(&q.0).copied().unwrap_or(0) - twos)
        }
    }

    /// Mean nDCG@10 of `ranked` (document positions, per query in order).
    pub fn mean_ndcg10(&self, ranked: &[Vec<usize>]) -> f64 {
        let ideal = self.ideal();
        ranked
            .iter()
            .zip(&self.queries)
            .map(|(r, (_, q))| ndcg10(r, &self.labels, *q, ideal(*q)))
            .sum::<f64>()
            / self.queries.len().max(1) as f64
    }
}
