//! Text analysis for the inverted index: Unicode word segmentation (UAX #29), lowercase,
//! English stemming (Snowball), optional English stop words, and Chinese word segmentation
//! with jieba (its dictionary is compiled in), traditional characters folded to simplified
//! first (so 比賽 and 比赛 are one term). Queries and documents go through the same
//! analysis, so a query term matches the forms a document used.

use std::collections::HashSet;
use std::sync::OnceLock;

use jieba_rs::Jieba;
use reelforge_core::eval::simplified;
use rust_stemmers::{Algorithm, Stemmer};
use unicode_segmentation::UnicodeSegmentation;

/// Common English function words, skipped when `stop_words` is on.
pub const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// A term and where it was found (the byte range in the analysed text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub term: String,
    pub start: usize,
    pub end: usize,
}

pub struct Analyzer {
    stemmer: Stemmer,
    stop_words: Option<HashSet<&'static str>>,
}

fn jieba() -> &'static Jieba {
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

impl Analyzer {
    pub fn new(stop_words: bool) -> Self {
        // Load jieba's dictionary now rather than on the first Chinese query.
        jieba();
        Analyzer {
            stemmer: Stemmer::create(Algorithm::English),
            stop_words: stop_words.then(|| STOP_WORDS.iter().copied().collect()),
        }
    }

    /// Terms of `text`, in order, with their byte ranges.
    pub fn tokens(&self, text: &str) -> Vec<Token> {
        let mut out = Vec::new();
        // Alternate between stretches of Han characters (segmented by jieba) and the
        // rest (UAX #29 words).
        let mut rest = text;
        let mut base = 0;
        while !rest.is_empty() {
            let han_start = rest.find(is_han).unwrap_or(rest.len());
            self.word_tokens(&rest[..han_start], base, &mut out);
            let after = &rest[han_start..];
            let han_len = after.find(|c: char| !is_han(c)).unwrap_or(after.len());
            self.han_tokens(&after[..han_len], base + han_start, &mut out);
            base += han_start + han_len;
            rest = &after[han_len..];
        }
        out
    }

    fn word_tokens(&self, text: &str, base: usize, out: &mut Vec<Token>) {
        for (start, word) in text.unicode_word_indices() {
            let lower = word.to_lowercase();
            if self
                .stop_words
                .as_ref()
                .is_some_and(|s| s.contains(lower.as_str()))
            {
                continue;
            }
            // Possessives stem to their base ("crowd's" → "crowd").
            let stem_of = lower
                .strip_suffix("'s")
                .or_else(|| lower.strip_suffix("\u{2019}s"))
                .unwrap_or(&lower);
            out.push(Token {
                term: self.stemmer.stem(stem_of).into_owned(),
                start: base + start,
                end: base + start + word.len(),
            });
        }
    }

    /// Terms only.
    pub fn terms(&self, text: &str) -> Vec<String> {
        self.tokens(text).into_iter().map(|t| t.term).collect()
    }

    /// A run of Han characters in simplified form, cut into words by jieba.
    fn han_tokens(&self, run: &str, start: usize, out: &mut Vec<Token>) {
        let folded = simplified(run);
        // Folding maps characters one to one; where a character's UTF-8 length changed,
        // the byte ranges would not point into `run`, so the run is segmented as written.
        let run = if folded.len() == run.len() {
            folded.as_str()
        } else {
            run
        };
        // Search mode also yields the shorter words inside long ones ("足球比赛" → "足球",
        // "比赛", "足球比赛"), so a query for either part matches.
        for piece in jieba().cut_for_search(run, true) {
            let word = piece.word.trim();
            if word.is_empty() {
                continue;
            }
            out.push(Token {
                term: word.to_lowercase(),
                start: start + piece.byte_start,
                end: start + piece.byte_end,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_is_lowercased_stemmed_and_stop_words_are_optional() {
        let a = Analyzer::new(true);
        assert_eq!(
            a.terms("The Players were RUNNING to the crowd's cheering fans!"),
            vec!["player", "were", "run", "crowd", "cheer", "fan"]
        );
        let keep = Analyzer::new(false);
        assert_eq!(keep.terms("the goal"), vec!["the", "goal"]);
        // Numbers and apostrophes inside words survive segmentation.
        assert_eq!(
            a.terms("ill-disposed 2024 don't"),
            vec!["ill", "dispos", "2024", "don't"]
        );
    }

    #[test]
    fn token_ranges_point_into_the_text() {
        let a = Analyzer::new(true);
        let text = "Goals, goals and GOALS";
        for t in a.tokens(text) {
            assert_eq!(
                text[t.start..t.end].to_lowercase().trim_end_matches('s'),
                "goal"
            );
        }
    }

    #[test]
    fn chinese_is_segmented_into_words() {
        let a = Analyzer::new(true);
        let terms = a.terms("我们在北京看足球比赛");
        assert!(terms.contains(&"北京".to_string()), "{terms:?}");
        assert!(terms.contains(&"足球".to_string()), "{terms:?}");
        assert!(terms.contains(&"比赛".to_string()), "{terms:?}");
        assert!(!terms.iter().any(|t| t.is_empty()));
    }

    #[test]
    fn traditional_and_simplified_chinese_are_one_term() {
        let a = Analyzer::new(true);
        let traditional = a.tokens("比賽最後一分鐘進球");
        let terms: Vec<&str> = traditional.iter().map(|t| t.term.as_str()).collect();
        assert_eq!(terms, a.terms("比赛最后一分钟进球"), "{terms:?}");
        assert!(terms.contains(&"比赛"), "{terms:?}");
        // The ranges still point into the text as written.
        let text = "比賽最後一分鐘進球";
        let first = &traditional[0];
        assert_eq!(&text[first.start..first.end], "比賽");
        assert_eq!(simplified("Stage 3 比賽"), "Stage 3 比赛");
    }

    #[test]
    fn mixed_chinese_and_english_keep_both() {
        let a = Analyzer::new(true);
        let text = "梅西 scored 进球了 in the final";
        let tokens = a.tokens(text);
        let terms: Vec<&str> = tokens.iter().map(|t| t.term.as_str()).collect();
        assert!(terms.contains(&"score"), "{terms:?}");
        assert!(terms.contains(&"final"), "{terms:?}");
        assert!(terms.contains(&"进球"), "{terms:?}");
        for t in &tokens {
            assert!(text.is_char_boundary(t.start) && text.is_char_boundary(t.end));
        }
    }
}
