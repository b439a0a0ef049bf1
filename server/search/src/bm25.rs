//! BM25 scoring, kept apart from storage as tantivy keeps its `Bm25Weight` apart from its
//! postings: a `Scorer` reads only collection `Statistics` and a term's document
//! frequency, and `top_k` walks in-memory posting lists with whatever `TermScorer` it is
//! given (MaxScore-style pruning needs only each term's upper bound).

use std::cell::RefCell;
use std::collections::BinaryHeap;

use crate::doc::Bm25Hit;

/// BM25 parameters (as tantivy and Lucene use them).
pub const K1: f32 = 1.2;
pub const B: f32 = 0.75;

/// (slot, term frequency, the document's length in terms), sorted by slot. The length
/// rides along so the scoring loop reads it with the posting, sequentially, rather than
/// from a per-slot array at random (that read was a sixth of a query at 1M documents).
pub type Posting = (u32, u32, u32);

/// Collection statistics a scorer reads.
pub trait Statistics {
    /// Documents with text (what BM25 counts).
    fn documents(&self) -> u64;
    /// Their total length in terms.
    fn total_length(&self) -> u64;
}

/// How one query term scores in a document.
pub trait TermScorer {
    fn score(&self, tf: u32, length: u32) -> f32;
    /// The most `score` returns for any document (pruning relies on it).
    fn max_score(&self) -> f32;
}

/// A relevance model: the scorer of a term found in `doc_freq` documents.
pub trait Scorer: Send + Sync {
    type Term: TermScorer;
    fn term(&self, stats: &dyn Statistics, doc_freq: u64) -> Self::Term;
}

/// Okapi BM25 with idf = ln(1 + (N - df + 0.5) / (df + 0.5)).
#[derive(Debug, Clone, Copy)]
pub struct Bm25 {
    pub k1: f32,
    pub b: f32,
}

impl Default for Bm25 {
    fn default() -> Self {
        Bm25 { k1: K1, b: B }
    }
}

/// One term's BM25 weight in a collection, folded for the per-posting loop:
/// score = top·tf / (tf + base + per_term·length), one division.
#[derive(Debug, Clone, Copy)]
pub struct Bm25Term {
    /// idf·(k1 + 1).
    top: f32,
    /// k1·(1 − b).
    base: f32,
    /// k1·b / average length.
    per_term: f32,
}

impl Scorer for Bm25 {
    type Term = Bm25Term;

    fn term(&self, stats: &dyn Statistics, doc_freq: u64) -> Bm25Term {
        let n = stats.documents() as f32;
        let df = doc_freq as f32;
        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        let avg_length = (stats.total_length() as f32 / n.max(1.0)).max(1e-6);
        Bm25Term {
            top: idf * (self.k1 + 1.0),
            base: self.k1 * (1.0 - self.b),
            per_term: self.k1 * self.b / avg_length,
        }
    }
}

impl TermScorer for Bm25Term {
    fn score(&self, tf: u32, length: u32) -> f32 {
        let tf = tf as f32;
        self.top * tf / (tf + self.base + self.per_term * length as f32)
    }

    fn max_score(&self) -> f32 {
        self.top
    }
}

/// A query term: its text, its scorer and its posting list.
pub struct QueryTerm<'a, T> {
    pub term: &'a str,
    pub scorer: T,
    pub postings: &'a [Posting],
}

/// What `top_k` reads of the documents behind the slots.
pub struct Docs<'a> {
    /// Slot → document length in terms.
    pub lengths: &'a [u32],
    /// Slot → document id; `None` for a removed document.
    pub id_of: &'a dyn Fn(u32) -> Option<u64>,
    /// Whether the document in a slot exists and passes the filter.
    pub accepts: &'a dyn Fn(u32) -> bool,
}

thread_local! {
    /// Score per slot, reused across queries (zeroed again after each).
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The best `limit` documents by summed term scores, each with every term's contribution,
/// best first (equal scores: lower id first).
///
/// Rarest terms first, term at a time into a flat score array. Once the `limit`-th best
/// partial score of an accepted document exceeds what the remaining terms could add at
/// most (their `max_score`s), no untouched document can still make the list: the
/// remaining (commoner, longer) lists then only update the candidates that can, found by
/// galloping through the list. Exact, like MaxScore; it spares most of a frequent term's
/// postings. Filters are asked only about documents that would enter the list.
pub fn top_k<T: TermScorer>(
    mut terms: Vec<QueryTerm<'_, T>>,
    docs: &Docs<'_>,
    limit: usize,
) -> Vec<Bm25Hit> {
    if terms.is_empty() || limit == 0 {
        return Vec::new();
    }
    let length_of = |slot: u32| docs.lengths[slot as usize];
    terms.sort_by_key(|t| t.postings.len());
    let mut rest = vec![0f32; terms.len() + 1];
    for i in (0..terms.len()).rev() {
        rest[i] = rest[i + 1] + terms[i].scorer.max_score();
    }
    let mut top = TopK::new(limit);
    SCORES.with(|cell| {
        let mut scores = cell.borrow_mut();
        if scores.len() < docs.lengths.len() {
            scores.resize(docs.lengths.len(), 0.0);
        }
        let mut touched: Vec<u32> = Vec::new();
        let mut next = 0;
        let mut threshold = 0.0;
        while next < terms.len() {
            // The threshold is at most the processed terms' bounds; only when that
            // exceeds what is left can it prune, so only then is it worked out.
            if next > 0 && touched.len() >= limit && rest[0] - rest[next] > rest[next] {
                threshold = kth_accepted(&scores, &touched, limit, docs.accepts);
                if rest[next] < threshold {
                    break;
                }
            }
            let t = &terms[next];
            for &(slot, tf, length) in t.postings {
                let s = &mut scores[slot as usize];
                if *s == 0.0 {
                    touched.push(slot);
                }
                *s += t.scorer.score(tf, length);
            }
            next += 1;
        }
        if next < terms.len() {
            touched.retain(|&slot| {
                let alive = scores[slot as usize] + rest[next] >= threshold;
                if !alive {
                    scores[slot as usize] = 0.0;
                }
                alive
            });
            touched.sort_unstable();
            for t in &terms[next..] {
                let mut at = 0;
                for &slot in &touched {
                    at = gallop(t.postings, at, slot);
                    match t.postings.get(at) {
                        Some(&(s, tf, length)) if s == slot => {
                            scores[slot as usize] += t.scorer.score(tf, length);
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
            }
        }
        for &slot in &touched {
            let score = std::mem::take(&mut scores[slot as usize]);
            if top.below_worst(score) {
                continue;
            }
            let Some(id) = (docs.id_of)(slot) else {
                continue;
            };
            if top.would_take(score, id) && (docs.accepts)(slot) {
                top.push(score, id, slot);
            }
        }
    });
    // The explain view, for the winners only.
    top.into_sorted()
        .into_iter()
        .map(|(score, id, slot)| {
            let length = length_of(slot);
            let explain = terms
                .iter()
                .filter_map(|t| {
                    let at = t.postings.binary_search_by_key(&slot, |p| p.0).ok()?;
                    Some((t.term.to_string(), t.scorer.score(t.postings[at].1, length)))
                })
                .collect();
            Bm25Hit {
                doc_id: id,
                score,
                terms: explain,
            }
        })
        .collect()
}

/// The `k`-th best score among touched slots that `accepts` (0 when fewer than `k` of the
/// best `4k` are accepted: no pruning then). Any `k` accepted documents at or above a
/// score bound the final list's worst from below, so ties may fall either way.
///
/// The best `4k` are kept in a min-heap: most touched slots fall below its minimum and
/// cost one read (copying every touched slot out and selecting was most of a query's
/// time at 1M documents).
fn kth_accepted(scores: &[f32], touched: &[u32], k: usize, accepts: &dyn Fn(u32) -> bool) -> f32 {
    let m = (k * 4).min(touched.len());
    if m == 0 {
        return 0.0;
    }
    let mut heap: BinaryHeap<std::cmp::Reverse<Scored>> = BinaryHeap::with_capacity(m + 1);
    for &slot in touched {
        let score = scores[slot as usize];
        if heap.len() < m {
            heap.push(std::cmp::Reverse(Scored(score, slot)));
        } else if let Some(mut least) = heap.peek_mut() {
            if score > least.0 .0 {
                *least = std::cmp::Reverse(Scored(score, slot));
            }
        }
    }
    let mut best = heap.into_vec();
    best.sort_unstable_by(|a, b| b.0 .0.total_cmp(&a.0 .0));
    let mut accepted = 0;
    for std::cmp::Reverse(Scored(score, slot)) in best {
        if accepts(slot) {
            accepted += 1;
            if accepted == k {
                return score;
            }
        }
    }
    0.0
}

/// A slot by its score (for `kth_accepted`'s heap).
#[derive(Clone, Copy)]
struct Scored(f32, u32);

impl PartialEq for Scored {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}
impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

/// The first index at or after `from` whose slot is >= `slot` (exponential then binary
/// search).
fn gallop(list: &[Posting], from: usize, slot: u32) -> usize {
    let mut step = 1;
    let mut hi = from;
    while hi < list.len() && list[hi].0 < slot {
        hi = from + step;
        step *= 2;
    }
    let lo = from + step / 4;
    let hi = hi.min(list.len());
    let lo = lo.min(hi);
    lo + list[lo..hi].partition_point(|p| p.0 < slot)
}

/// The best `k` (score, id, slot) by score, then lowest id; the heap's top is the worst.
struct TopK {
    k: usize,
    heap: BinaryHeap<Ranked>,
}

struct Ranked(f32, u64, u32);

impl PartialEq for Ranked {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == std::cmp::Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ranked {
    /// Greater = worse: lower score, or equal score and higher id.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.0.total_cmp(&self.0).then(self.1.cmp(&o.1))
    }
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Strictly worse than the worst of a full list (whatever the id).
    fn below_worst(&self, score: f32) -> bool {
        self.heap.len() == self.k && self.heap.peek().is_some_and(|worst| score < worst.0)
    }

    fn would_take(&self, score: f32, id: u64) -> bool {
        self.heap.len() < self.k
            || self
                .heap
                .peek()
                .is_some_and(|worst| Ranked(score, id, 0) < *worst)
    }

    fn push(&mut self, score: f32, id: u64, slot: u32) {
        self.heap.push(Ranked(score, id, slot));
        if self.heap.len() > self.k {
            self.heap.pop();
        }
    }

    fn into_sorted(self) -> Vec<(f32, u64, u32)> {
        self.heap
            .into_sorted_vec()
            .into_iter()
            .map(|r| (r.0, r.1, r.2))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gallop_finds_the_first_posting_at_or_after_a_slot() {
        let list: Vec<Posting> = (0..100).map(|i| (i * 3, 1, 1)).collect();
        for from in [0, 1, 5, 50, 99] {
            for slot in [0u32, 1, 3, 4, 150, 296, 297, 298, 400] {
                let expected = from + list[from..].partition_point(|p| p.0 < slot);
                assert_eq!(
                    gallop(&list, from, slot),
                    expected,
                    "from {from} slot {slot}"
                );
            }
        }
    }
}
