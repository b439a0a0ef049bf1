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

/// One ground-truth segment and the prediction matched to it (one to one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TruthMatch {
    pub truth: (i64, i64),
    /// The prediction assigned to this truth segment, if any overlaps it and is not taken
    /// by a truth segment it overlaps more.
    pub prediction: Option<(i64, i64)>,
    /// IoU of the pair (0 when unassigned).
    pub iou: f64,
    /// The pair counts: IoU > threshold.
    pub matched: bool,
}

/// Recall, precision, F1 and mean IoU of predicted segments against ground truth, as the
/// highlight design's tables compute them: truth and predictions are matched one to one
/// (a long prediction covering two truth segments matches only one of them), greedily by
/// IoU, highest first; a pair counts at IoU > `threshold`.
///
/// At a threshold of 0.5 or more the greedy matching is also a maximum matching: one
/// prediction cannot have IoU > 0.5 with two disjoint truth segments (each intersection
/// would exceed half of the prediction).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// Per truth segment, in the order given.
    pub truths: Vec<TruthMatch>,
    pub predicted: usize,
    /// Pairs with IoU > threshold (matched truths = matched predictions).
    pub matched: usize,
    pub recall: f64,
    pub precision: f64,
    pub f1: f64,
    /// Mean IoU of the matched pairs (0 when none).
    pub mean_iou: f64,
    pub threshold: f64,
}

pub fn evaluate(truth: &[(i64, i64)], predicted: &[(i64, i64)], threshold: f64) -> Evaluation {
    let mut pairs: Vec<(f64, usize, usize)> = truth
        .iter()
        .enumerate()
        .flat_map(|(t, &ts)| {
            predicted
                .iter()
                .enumerate()
                .map(move |(p, &ps)| (iou(ts, ps), t, p))
        })
        .filter(|&(score, _, _)| score > 0.0)
        .collect();
    // Highest IoU first; ties to the earlier truth, then the earlier prediction.
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut truths: Vec<TruthMatch> = truth
        .iter()
        .map(|&t| TruthMatch {
            truth: t,
            prediction: None,
            iou: 0.0,
            matched: false,
        })
        .collect();
    let mut taken = vec![false; predicted.len()];
    for (score, t, p) in pairs {
        if truths[t].prediction.is_none() && !taken[p] {
            taken[p] = true;
            truths[t] = TruthMatch {
                truth: truth[t],
                prediction: Some(predicted[p]),
                iou: score,
                matched: score > threshold,
            };
        }
    }
    let matched: Vec<f64> = truths.iter().filter(|m| m.matched).map(|m| m.iou).collect();
    let recall = ratio(matched.len(), truth.len());
    let precision = ratio(matched.len(), predicted.len());
    let f1 = if recall + precision > 0.0 {
        2.0 * recall * precision / (recall + precision)
    } else {
        0.0
    };
    let mean_iou = if matched.is_empty() {
        0.0
    } else {
        matched.iter().sum::<f64>() / matched.len() as f64
    };
    Evaluation {
        truths,
        predicted: predicted.len(),
        matched: matched.len(),
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
    error_rate(&norm(reference), &norm(hypothesis))
}

/// `text` with traditional Chinese characters replaced by their simplified forms (one
/// character for one; everything else unchanged). Whisper writes Mandarin in either.
pub fn simplified(text: &str) -> String {
    fast2s::convert(text)
}

/// The characters a character error rate compares: letters and digits, lowercased, Chinese
/// in simplified form (the same words written in either script are not errors;
/// punctuation, full-width or not, and spaces dropped).
pub fn cer_chars(text: &str) -> Vec<char> {
    simplified(text)
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Character error rate of `hypothesis` against `reference` (the measure for Chinese,
/// which has no spaces between words): character-level edit distance over the reference's
/// length, over `cer_chars`.
pub fn character_error_rate(reference: &str, hypothesis: &str) -> f64 {
    error_rate(&cer_chars(reference), &cer_chars(hypothesis))
}

/// Edit distance (substitutions, insertions, deletions) over the reference's length.
fn error_rate<T: PartialEq>(r: &[T], h: &[T]) -> f64 {
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
    fn character_error_rate_counts_characters_not_punctuation() {
        assert_eq!(
            character_error_rate("今天，天气很好。", "今天天气很好"),
            0.0
        );
        // One substitution (气 -> 汽) and one deletion (好) over 6 characters.
        let cer = character_error_rate("今天天气很好", "今天天汽很");
        assert!((cer - 2.0 / 6.0).abs() < 1e-9, "{cer}");
        assert_eq!(character_error_rate("", ""), 0.0);
        assert_eq!(character_error_rate("", "多"), 1.0);
        assert_eq!(character_error_rate("Stage 3", "stage3"), 0.0);
        assert_eq!(character_error_rate("比赛", "比賽"), 0.0);
    }

    #[test]
    fn evaluation_matches_truth_and_predictions_one_to_one() {
        assert!((iou((0, 10), (5, 15)) - 5.0 / 15.0).abs() < 1e-9);
        assert_eq!(iou((0, 10), (10, 20)), 0.0);
        let e = evaluate(
            &[(20_000, 25_000), (46_000, 50_000), (70_000, 72_000)],
            &[(19_000, 25_500), (45_000, 49_000), (5_000, 6_000)],
            0.5,
        );
        assert_eq!(e.matched, 2);
        assert!((e.recall - 2.0 / 3.0).abs() < 1e-9);
        assert!((e.precision - 2.0 / 3.0).abs() < 1e-9);
        assert!((e.truths[0].iou - 5.0 / 6.5).abs() < 1e-9);
        assert!((e.truths[1].iou - 3.0 / 5.0).abs() < 1e-9);
        assert_eq!((e.truths[2].iou, e.truths[2].prediction), (0.0, None));
        assert!((e.mean_iou - (5.0 / 6.5 + 0.6) / 2.0).abs() < 1e-9);

        // One long prediction over two truth segments matches only the one it overlaps
        // more; the other truth goes to the short prediction, if any overlaps it.
        let e = evaluate(&[(0, 10), (12, 20)], &[(0, 20)], 0.4);
        assert_eq!(e.matched, 1);
        assert_eq!(e.truths[0].prediction, Some((0, 20)));
        assert_eq!(e.truths[1].prediction, None);
        assert_eq!((e.recall, e.precision), (0.5, 1.0));
        let e = evaluate(&[(0, 10), (12, 20)], &[(0, 20), (13, 20)], 0.4);
        assert_eq!(e.truths[1].prediction, Some((13, 20)));
        assert_eq!(e.matched, 2);
        // Two predictions on one truth: one matches, the other lowers precision.
        let e = evaluate(&[(0, 10)], &[(0, 9), (1, 10)], 0.5);
        assert_eq!((e.matched, e.recall, e.precision), (1, 1.0, 0.5));
        assert_eq!(e.truths[0].prediction, Some((0, 9)));
    }
}
