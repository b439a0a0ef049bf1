//! Scoring against ground truth: predicted segments (IoU, recall, precision, F1) and
//! transcripts (word error rate).

use serde::Serialize;

/// Intersection over union of two time ranges.
pub fn iou(a: (i64, i64), b: (i64, i64)) -> f64 {
    let inter = (a.1.min(b.1) - a.0.max(b.0)).max(0) as f64;
    let union = (a.1.max(b.1) - a.0.min(b.0)) as f64;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// One ground-truth segment and the prediction that overlaps it best.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthMatch {
    pub truth: (i64, i64),
    pub best: Option<(i64, i64)>,
    pub iou: f64,
    pub matched: bool,
}

/// Recall, precision, F1 and mean IoU of predicted segments against ground truth, as the
/// highlight design reports them: each truth segment is matched to its best-overlapping
/// prediction; a match counts at IoU > `threshold` (0.5).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub truths: Vec<TruthMatch>,
    pub predicted: usize,
    pub matched_truths: usize,
    pub matched_predictions: usize,
    pub recall: f64,
    pub precision: f64,
    pub f1: f64,
    /// Mean over truth segments of their best IoU.
    pub mean_iou: f64,
    pub threshold: f64,
}

pub fn evaluate(truth: &[(i64, i64)], predicted: &[(i64, i64)], threshold: f64) -> Evaluation {
    let truths: Vec<TruthMatch> = truth
        .iter()
        .map(|&t| {
            let best = predicted
                .iter()
                .map(|&p| (p, iou(t, p)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let (best, score) = best.map_or((None, 0.0), |(p, s)| (Some(p), s));
            TruthMatch {
                truth: t,
                best,
                iou: score,
                matched: score > threshold,
            }
        })
        .collect();
    let matched_truths = truths.iter().filter(|m| m.matched).count();
    let matched_predictions = predicted
        .iter()
        .filter(|&&p| truth.iter().any(|&t| iou(t, p) > threshold))
        .count();
    let recall = ratio(matched_truths, truth.len());
    let precision = ratio(matched_predictions, predicted.len());
    let f1 = if recall + precision > 0.0 {
        2.0 * recall * precision / (recall + precision)
    } else {
        0.0
    };
    let mean_iou = if truths.is_empty() {
        0.0
    } else {
        truths.iter().map(|m| m.iou).sum::<f64>() / truths.len() as f64
    };
    Evaluation {
        truths,
        predicted: predicted.len(),
        matched_truths,
        matched_predictions,
        recall,
        precision,
        f1,
        mean_iou,
        threshold,
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Word error rate of `hypothesis` against `reference`: word-level edit distance over
/// the reference's length, after lowercasing and dropping punctuation.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let norm = |s: &str| -> Vec<String> {
        s.split_whitespace()
            .map(|w| {
                w.chars()
                    .filter(|c| c.is_alphanumeric() || *c == '\'')
                    .collect::<String>()
                    .to_lowercase()
            })
            .filter(|w| !w.is_empty())
            .collect()
    };
    let (r, h) = (norm(reference), norm(hypothesis));
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[h.len()] as f64 / r.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_matches_each_truth_to_its_best_prediction() {
        assert!((iou((0, 10), (5, 15)) - 5.0 / 15.0).abs() < 1e-9);
        assert_eq!(iou((0, 10), (10, 20)), 0.0);
        let e = evaluate(
            &[(20_000, 25_000), (46_000, 50_000), (70_000, 72_000)],
            &[(19_000, 25_500), (45_000, 49_000), (5_000, 6_000)],
            0.5,
        );
        assert_eq!(e.matched_truths, 2);
        assert_eq!(e.matched_predictions, 2);
        assert!((e.recall - 2.0 / 3.0).abs() < 1e-9);
        assert!((e.precision - 2.0 / 3.0).abs() < 1e-9);
        assert!((e.truths[0].iou - 5.0 / 6.5).abs() < 1e-9);
        assert!((e.truths[1].iou - 3.0 / 5.0).abs() < 1e-9);
        assert_eq!(e.truths[2].iou, 0.0);
        assert!((e.mean_iou - (5.0 / 6.5 + 0.6) / 3.0).abs() < 1e-9);
    }
}
