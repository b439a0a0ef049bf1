//! Transcript chunking: split at sentence ends (`.` `!` `?` and CJK `。！？；…．`), pack
//! sentences into chunks of at most `MAX_CHARS` characters, keep a short last chunk, and
//! give each chunk the times of the speech it covers.

/// Most characters in one chunk.
pub const MAX_CHARS: usize = 500;

/// Timed text, e.g. a transcript segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    pub start_ms: i64,
    pub end_ms: i64,
    pub text: String,
}

fn is_sentence_end(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '。' | '！' | '？' | '；' | '…' | '．')
}

/// Sentences of one segment, each with the share of the segment's time its characters
/// take.
fn sentences(segment: &Timed) -> Vec<Timed> {
    let chars: Vec<char> = segment.text.chars().collect();
    let total = chars.len().max(1) as f64;
    let span = (segment.end_ms - segment.start_ms) as f64;
    let at = |i: usize| segment.start_ms + (span * i as f64 / total).round() as i64;
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        if is_sentence_end(chars[i]) {
            // Keep runs like "?!" and "..." with their sentence.
            while i + 1 < chars.len() && is_sentence_end(chars[i + 1]) {
                i += 1;
            }
            push_sentence(&chars, start, i + 1, &at, &mut out);
            start = i + 1;
        }
        i += 1;
    }
    push_sentence(&chars, start, chars.len(), &at, &mut out);
    out
}

fn push_sentence(
    chars: &[char],
    a: usize,
    b: usize,
    at: &dyn Fn(usize) -> i64,
    out: &mut Vec<Timed>,
) {
    let text: String = chars[a..b].iter().collect::<String>().trim().to_string();
    if !text.is_empty() {
        out.push(Timed {
            start_ms: at(a),
            end_ms: at(b),
            text,
        });
    }
}

/// Splits a sentence longer than `MAX_CHARS` at spaces (or anywhere, for text without).
fn split_long(sentence: Timed) -> Vec<Timed> {
    let chars: Vec<char> = sentence.text.chars().collect();
    if chars.len() <= MAX_CHARS {
        return vec![sentence];
    }
    let span = (sentence.end_ms - sentence.start_ms) as f64;
    let at = |i: usize| sentence.start_ms + (span * i as f64 / chars.len() as f64).round() as i64;
    let mut out = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + MAX_CHARS).min(chars.len());
        if end < chars.len() {
            if let Some(space) = chars[start..end].iter().rposition(|c| c.is_whitespace()) {
                if space > 0 {
                    end = start + space;
                }
            }
        }
        push_sentence(&chars, start, end, &at, &mut out);
        start = end;
    }
    out
}

/// Packs `segments` (in time order) into chunks of whole sentences.
pub fn chunk_transcript(segments: &[Timed]) -> Vec<Timed> {
    let mut chunks: Vec<Timed> = Vec::new();
    let mut current: Option<Timed> = None;
    for sentence in segments.iter().flat_map(sentences).flat_map(split_long) {
        current = Some(match current.take() {
            Some(mut c)
                if c.text.chars().count() + 1 + sentence.text.chars().count() <= MAX_CHARS =>
            {
                c.text.push(' ');
                c.text.push_str(&sentence.text);
                c.end_ms = c.end_ms.max(sentence.end_ms);
                c
            }
            Some(c) => {
                chunks.push(c);
                sentence
            }
            None => sentence,
        });
    }
    // A short last chunk is kept: its words are as findable as any other's.
    chunks.extend(current);
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start_ms: i64, end_ms: i64, text: &str) -> Timed {
        Timed {
            start_ms,
            end_ms,
            text: text.into(),
        }
    }

    #[test]
    fn sentences_pack_into_chunks_with_their_own_times() {
        let long = "word ".repeat(60); // 300 characters
        let segments = vec![
            seg(0, 10_000, &format!("{}end one.", long.trim())),
            seg(10_000, 20_000, &format!("{}end two!", long.trim())),
            seg(20_000, 21_000, "Short."),
        ];
        let chunks = chunk_transcript(&segments);
        assert_eq!(chunks.len(), 2, "{chunks:?}");
        assert!(chunks.iter().all(|c| c.text.chars().count() <= MAX_CHARS));
        assert_eq!((chunks[0].start_ms, chunks[0].end_ms), (0, 10_000));
        // The short last sentence joins the second chunk rather than being dropped.
        assert_eq!((chunks[1].start_ms, chunks[1].end_ms), (10_000, 21_000));
        assert!(chunks[1].text.ends_with("Short."));
    }

    #[test]
    fn a_short_final_chunk_is_kept() {
        let long = "a".repeat(497);
        let chunks = chunk_transcript(&[
            seg(0, 5_000, &format!("{long}.")),
            seg(5_000, 6_000, "Yes."),
        ]);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[1].text, "Yes.");
        assert_eq!((chunks[1].start_ms, chunks[1].end_ms), (5_000, 6_000));
    }

    #[test]
    fn sentences_inside_a_segment_split_its_time() {
        let chunks = sentences(&seg(0, 1_000, "Hi. Bye."));
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].text, "Hi.");
        assert!(
            chunks[0].end_ms < 500 && chunks[1].start_ms < 500,
            "{chunks:?}"
        );
        assert_eq!(chunks[1].end_ms, 1_000);
    }

    #[test]
    fn cjk_punctuation_ends_sentences_and_overlong_text_is_split() {
        let s = sentences(&seg(0, 900, "你好。今天比赛很精彩！真的吗？"));
        assert_eq!(
            s.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(),
            vec!["你好。", "今天比赛很精彩！", "真的吗？"]
        );
        let unbroken = "字".repeat(1_200);
        let chunks = chunk_transcript(&[seg(0, 12_000, &unbroken)]);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.text.chars().count() <= MAX_CHARS));
        assert_eq!(chunks.last().unwrap().end_ms, 12_000);
        assert!(chunk_transcript(&[]).is_empty());
        assert!(chunk_transcript(&[seg(0, 1, "  ")]).is_empty());
    }
}
