//! A SentencePiece unigram tokenizer read straight from a `.model` file: the `nmt_nfkc`
//! normaliser over the model's precompiled character map (a darts-clone double-array
//! trie walked as `Normalizer::NormalizePrefix` does), whitespace handling (a dummy
//! prefix, spaces escaped as U+2581, runs of spaces folded) and Viterbi segmentation
//! with sentencepiece's tie-breaking. Written for the legacy layout USE multilingual v3
//! ships (pieces inline in field 1, the character map in the trainer spec's field 2);
//! its ids match the reference implementation's on the test sentences.

use std::collections::HashMap;
use std::path::Path;

use reelforge_core::error::{Error, Result};

pub const UNK: u32 = 0;
pub const BOS: u32 = 1;
pub const EOS: u32 = 2;
const SPACE: &str = "\u{2581}";

pub struct SentencePiece {
    scores: Vec<f32>,
    /// Every piece and every prefix of one: piece id + 1, or 0 for a bare prefix (the
    /// Viterbi walk stops at the first string that is neither).
    prefixes: HashMap<Box<str>, u32>,
    /// The longest piece, in characters.
    max_chars: usize,
    unk_score: f32,
    normalizer: Normalizer,
}

/// Length-delimited fields of a protobuf message: field number → (start, length).
fn fields(data: &[u8]) -> Result<Vec<(u64, &[u8])>> {
    let bad = || Error::internal("sentencepiece model: malformed protobuf");
    let varint = |pos: &mut usize| -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *data.get(*pos).ok_or_else(bad)?;
            *pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(bad())
    };
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let tag = varint(&mut pos)?;
        let (field, wire) = (tag >> 3, tag & 7);
        let len = match wire {
            0 => {
                varint(&mut pos)?;
                0
            }
            1 => 8,
            2 => varint(&mut pos)? as usize,
            5 => 4,
            _ => return Err(bad()),
        };
        let body = data.get(pos..pos + len).ok_or_else(bad)?;
        if matches!(wire, 2 | 5) {
            out.push((field, body));
        }
        pos += len;
    }
    Ok(out)
}

impl SentencePiece {
    pub fn load(path: &Path) -> Result<SentencePiece> {
        let data = std::fs::read(path).map_err(|e| {
            Error::FailedPrecondition(format!(
                "{} cannot be read ({e}): run scripts/setup.sh to install the offline models",
                path.display()
            ))
        })?;
        Self::parse(&data)
    }

    fn parse(data: &[u8]) -> Result<SentencePiece> {
        let mut pieces: Vec<String> = Vec::new();
        let mut scores = Vec::new();
        let mut charsmap: &[u8] = &[];
        for (field, body) in fields(data)? {
            match field {
                1 => {
                    let mut piece = None;
                    let mut score = 0.0f32;
                    for (f, b) in fields(body)? {
                        match f {
                            1 => piece = Some(String::from_utf8_lossy(b).into_owned()),
                            2 if b.len() == 4 => {
                                score = f32::from_le_bytes([b[0], b[1], b[2], b[3]])
                            }
                            _ => {}
                        }
                    }
                    if let Some(p) = piece {
                        pieces.push(p);
                        scores.push(score);
                    }
                }
                3 => {
                    if let Some((_, map)) = fields(body)?.into_iter().find(|(f, _)| *f == 2) {
                        charsmap = map;
                    }
                }
                _ => {}
            }
        }
        if pieces.len() <= EOS as usize {
            return Err(Error::internal("sentencepiece model: no pieces"));
        }
        let mut prefixes: HashMap<Box<str>, u32> = HashMap::new();
        let mut max_chars = 0;
        for (id, piece) in pieces.iter().enumerate() {
            let mut chars = 0;
            for (at, _) in piece.char_indices().skip(1) {
                prefixes.entry(piece[..at].into()).or_insert(0);
                chars += 1;
            }
            max_chars = max_chars.max(chars + 1);
            prefixes.insert(piece.as_str().into(), id as u32 + 1);
        }
        let unk_score = scores.iter().copied().fold(f32::INFINITY, f32::min) - 10.0;
        Ok(SentencePiece {
            scores,
            prefixes,
            max_chars,
            unk_score,
            normalizer: Normalizer::new(charsmap)?,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.scores.len()
    }

    /// The piece ids of `text`, without BOS/EOS; `[UNK]` for a text that normalises to
    /// nothing.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let normalized = self.normalizer.normalize(text);
        if normalized.is_empty() {
            return vec![UNK];
        }
        self.viterbi(&normalized)
    }

    /// sentencepiece's unigram lattice, as a left-to-right pass over positions: every
    /// node starting at one position shares that position's best predecessor, the first
    /// to reach the best score keeps it (its strict-greater tie-breaking), and a
    /// position no one-character piece covers gets an unknown node.
    fn viterbi(&self, text: &str) -> Vec<u32> {
        let bounds: Vec<usize> = text
            .char_indices()
            .map(|(at, _)| at)
            .chain([text.len()])
            .collect();
        let n = bounds.len() - 1;
        let mut best = vec![f32::MIN; n + 1];
        best[0] = 0.0;
        let mut start_of = vec![0usize; n + 1];
        let mut piece_of = vec![UNK; n + 1];
        for i in 0..n {
            let base = best[i];
            let mut has_single = false;
            for j in i + 1..=(i + self.max_chars).min(n) {
                let Some(&value) = self.prefixes.get(&text[bounds[i]..bounds[j]]) else {
                    break;
                };
                if value == 0 {
                    continue;
                }
                let score = base + self.scores[value as usize - 1];
                if score > best[j] {
                    best[j] = score;
                    start_of[j] = i;
                    piece_of[j] = value - 1;
                }
                has_single |= j == i + 1;
            }
            if !has_single && base + self.unk_score > best[i + 1] {
                best[i + 1] = base + self.unk_score;
                start_of[i + 1] = i;
                piece_of[i + 1] = UNK;
            }
        }
        let mut ids = Vec::new();
        let mut at = n;
        while at > 0 {
            ids.push(piece_of[at]);
            at = start_of[at];
        }
        ids.reverse();
        ids
    }
}

/// `nmt_nfkc` from a precompiled character map: a double-array trie of UTF-8 keys whose
/// values index NUL-terminated replacements.
struct Normalizer {
    units: Vec<u32>,
    replacements: Vec<u8>,
}

impl Normalizer {
    fn new(charsmap: &[u8]) -> Result<Normalizer> {
        if charsmap.is_empty() {
            return Ok(Normalizer {
                units: Vec::new(),
                replacements: Vec::new(),
            });
        }
        let bad = || Error::internal("sentencepiece model: malformed character map");
        let size = u32::from_le_bytes(charsmap.get(..4).ok_or_else(bad)?.try_into().unwrap());
        let trie = charsmap.get(4..4 + size as usize).ok_or_else(bad)?;
        Ok(Normalizer {
            units: trie
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            replacements: charsmap[4 + size as usize..].to_vec(),
        })
    }

    fn offset(unit: u32) -> usize {
        ((unit >> 10) << ((unit & 0x200) >> 6)) as usize
    }

    /// What `data` normalises to at its start, and how many bytes that consumed: the
    /// longest key of the map, else the first character (a stray byte alone) as is.
    fn prefix<'a>(&'a self, data: &'a [u8]) -> (&'a [u8], usize) {
        let mut best: Option<(usize, usize)> = None;
        if let Some(&root) = self.units.first() {
            let mut node = Self::offset(root);
            for (i, &c) in data.iter().enumerate() {
                node ^= c as usize;
                let Some(&unit) = self.units.get(node) else {
                    break;
                };
                if unit & 0x8000_00ff != c as u32 {
                    break;
                }
                node ^= Self::offset(unit);
                if unit & 0x100 != 0 {
                    let value = self
                        .units
                        .get(node)
                        .map_or(usize::MAX, |v| (v & 0x7fff_ffff) as usize);
                    best = Some((i + 1, value));
                }
            }
        }
        if let Some((len, value)) = best.filter(|&(_, v)| v < self.replacements.len()) {
            let rest = &self.replacements[value..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            return (&rest[..end], len);
        }
        let len = match data[0] {
            b if b < 0x80 => 1,
            b if b >> 5 == 0x6 => 2,
            b if b >> 4 == 0xe => 3,
            b if b >> 3 == 0x1e => 4,
            _ => 1,
        };
        let len = match data.get(1..len) {
            Some(tail) if tail.iter().all(|&b| b & 0xc0 == 0x80) => len,
            _ => 1,
        };
        (&data[..len], len)
    }

    fn normalize(&self, text: &str) -> String {
        let raw = text.as_bytes();
        let mut pos = 0;
        // Leading spaces (after normalisation) go.
        while pos < raw.len() {
            let (piece, used) = self.prefix(&raw[pos..]);
            if piece != b" " {
                break;
            }
            pos += used;
        }
        if pos >= raw.len() {
            return String::new();
        }
        let mut out: Vec<u8> = SPACE.as_bytes().to_vec();
        let mut prev_space = true;
        while pos < raw.len() {
            let (mut piece, used) = self.prefix(&raw[pos..]);
            pos += used;
            if prev_space {
                while let [b' ', rest @ ..] = piece {
                    piece = rest;
                }
            }
            if piece.is_empty() {
                continue;
            }
            for &b in piece {
                match b {
                    b' ' => out.extend_from_slice(SPACE.as_bytes()),
                    _ => out.push(b),
                }
            }
            prev_space = piece.last() == Some(&b' ');
        }
        while out.ends_with(SPACE.as_bytes()) {
            out.truncate(out.len() - SPACE.len());
        }
        // Replacements are whole UTF-8 strings and other bytes are copied a character at
        // a time, so only a stray invalid input byte could make this lossy.
        String::from_utf8_lossy(&out).into_owned()
    }
}
