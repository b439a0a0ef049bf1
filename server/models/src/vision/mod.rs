//! What is seen: the `SceneTagger` trait (a picture → scored classes of what is in it)
//! and the `TextReader` trait (a picture → the lines of text written on it, with boxes),
//! what a slice's pictures add up to, and the offline providers: EfficientNet-Lite0 on
//! candle (`effnet`: ImageNet's 1000 classes) and PP-OCRv6 on ONNX Runtime (`ppocr`:
//! Chinese and English text).

mod effnet;
mod ppocr;

use serde::{Deserialize, Serialize};

use reelforge_core::error::Result;
use reelforge_core::BoxFuture;
use reelforge_media::images::RgbImage;

pub use effnet::{convert_pth, EfficientNetTagger};
pub use ppocr::PpOcrReader;

/// One class seen in a picture, with the model's score (0..1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SceneLabel {
    pub label: String,
    pub score: f32,
}

/// A line of text read off a picture, with its box in the picture's pixels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextLine {
    pub text: String,
    /// The reader's confidence (0..1).
    pub score: f32,
    /// Left, top, width, height.
    pub bbox: [u32; 4],
}

/// What was seen in one picture of a video.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Sight {
    pub t_ms: i64,
    /// Until when its labels stand for the video (the next picture tagged); 0 when it
    /// was not tagged.
    pub until_ms: i64,
    /// Until when its lines stand for the video (the next picture read); 0 when its text
    /// was not read.
    #[serde(default)]
    pub read_until_ms: i64,
    /// The picture's size (what `TextLine::bbox` is in).
    pub width: u32,
    pub height: u32,
    /// Best first; empty without a scene tagger.
    pub labels: Vec<SceneLabel>,
    /// Top to bottom; empty without a text reader.
    pub lines: Vec<TextLine>,
}

/// Labels scoring below this are not kept for a picture.
pub const LABEL_FLOOR: f32 = 0.1;
/// A class is what a slice shows where it scores at least this in one of its pictures.
pub const SCENE_SCORE: f32 = 0.25;
/// Lines read with less confidence than this are dropped (RapidOCR's `text_score`).
pub const TEXT_SCORE: f32 = 0.5;

/// Tags pictures with the classes of what is in them.
pub trait SceneTagger: Send + Sync {
    /// Stable name recorded with what it saw, e.g. "local:efficientnet-lite0".
    fn name(&self) -> &str;
    /// Every class it can see, by name.
    fn classes(&self) -> &[String];
    /// Each picture's labels, best first (those scoring at least `LABEL_FLOOR`), in order.
    fn tag<'a>(&'a self, pictures: Vec<RgbImage>) -> BoxFuture<'a, Result<Vec<Vec<SceneLabel>>>>;
}

/// Reads the text written on pictures.
pub trait TextReader: Send + Sync {
    /// Stable name, e.g. "local:pp-ocrv6".
    fn name(&self) -> &str;
    /// The lines on the picture scoring at least `TEXT_SCORE`, top to bottom, left to
    /// right.
    fn read<'a>(&'a self, picture: RgbImage) -> BoxFuture<'a, Result<Vec<TextLine>>>;
}

/// A class's everyday name: the first of its synonyms ("mountain bike" for "mountain bike,
/// all-terrain bike, off-roader").
pub fn short_name(label: &str) -> &str {
    label.split(',').next().unwrap_or(label).trim()
}

/// The everyday kind of thing a class is, for the classes video is often about (ImageNet's
/// classes are fine-grained: a rider at 180p may be a "unicycle" or a "moped", a taxi a
/// "limousine"; the kind is what a person searches for), with its Chinese name. `None`
/// for the rest.
pub fn kind_of(label: &str) -> Option<(&'static str, &'static str)> {
    const KINDS: [(&str, &str, &[&str]); 9] = [
        (
            "bicycle",
            "自行车",
            &[
                "mountain bike",
                "bicycle-built-for-two",
                "tricycle",
                "unicycle",
            ],
        ),
        (
            "motorbike",
            "摩托车",
            &["moped", "motor scooter", "crash helmet"],
        ),
        (
            "car",
            "汽车",
            &[
                "cab",
                "limousine",
                "sports car",
                "racer",
                "convertible",
                "minivan",
                "jeep",
                "police van",
                "pickup",
                "beach wagon",
                "car wheel",
                "go-kart",
            ],
        ),
        (
            "ball game",
            "球赛",
            &[
                "soccer ball",
                "basketball",
                "volleyball",
                "tennis ball",
                "rugby ball",
                "football helmet",
                "ballplayer",
                "golf ball",
                "ping-pong ball",
                "puck",
            ],
        ),
        (
            "gymnastics",
            "体操",
            &["balance beam", "horizontal bar", "parallel bars"],
        ),
        ("snow sport", "雪上运动", &["ski", "snowmobile", "dogsled"]),
        (
            "boat",
            "船",
            &[
                "speedboat",
                "canoe",
                "catamaran",
                "trimaran",
                "yawl",
                "lifeboat",
            ],
        ),
        ("rabbit", "兔子", &["wood rabbit", "hare", "Angora"]),
        ("stage", "舞台", &["stage", "theater curtain", "spotlight"]),
    ];
    let name = short_name(label);
    KINDS
        .iter()
        .find(|(_, _, members)| members.contains(&name))
        .map(|(kind, zh, _)| (*kind, *zh))
}

/// The sights of `sights` (in time order) taken in `[start_ms, end_ms)`.
pub fn within(sights: &[Sight], start_ms: i64, end_ms: i64) -> &[Sight] {
    let from = sights.partition_point(|s| s.t_ms < start_ms);
    let to = sights.partition_point(|s| s.t_ms < end_ms).max(from);
    &sights[from..to]
}

/// What a slice's pictures show: each class that scored at least `SCENE_SCORE` in one
/// of them, with its best score, best first (at most `max`).
pub fn scene_classes(sights: &[Sight], max: usize) -> Vec<SceneLabel> {
    let mut best: Vec<SceneLabel> = Vec::new();
    for label in sights.iter().flat_map(|s| &s.labels) {
        if label.score < SCENE_SCORE {
            continue;
        }
        match best.iter_mut().find(|b| b.label == label.label) {
            Some(b) => b.score = b.score.max(label.score),
            None => best.push(label.clone()),
        }
    }
    best.sort_by(|a, b| b.score.total_cmp(&a.score));
    best.truncate(max);
    best
}

/// The lines of text `sights` show, each over the consecutive pictures read that hold it
/// (a line shown again later is a stretch of its own): its words as first read, when it
/// was first seen and the end of the last picture holding it. Ordered by start.
pub fn text_spans(sights: &[Sight]) -> Vec<(String, i64, i64)> {
    let read = || sights.iter().filter(|s| s.read_until_ms > 0);
    let keys: Vec<Vec<(String, f32)>> = read()
        .map(|s| {
            s.lines
                .iter()
                .map(|l| (text_key(&l.text), l.score))
                .collect()
        })
        .collect();
    let spans = read().zip(&keys).map(|(s, lines)| {
        let classes = lines.iter().map(|(k, score)| (k.as_str(), *score));
        (s.t_ms, s.read_until_ms, classes)
    });
    crate::stretches(spans)
        .into_iter()
        .map(|(start, end, key, _)| {
            // The words as the first picture of the stretch read them.
            let text = read()
                .filter(|s| s.t_ms == start)
                .flat_map(|s| &s.lines)
                .find(|l| text_key(&l.text) == key)
                .map_or(key.clone(), |l| l.text.clone());
            (text, start, end)
        })
        .collect()
}

/// A class seen over a stretch: consecutive pictures scoring it at least `SCENE_SCORE`,
/// joined, with its best score.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneSpan {
    pub start_ms: i64,
    pub end_ms: i64,
    pub label: String,
    pub score: f32,
}

/// The stretches over which each class was seen in `sights` (in time order), ordered by
/// start, then score.
pub fn scene_spans(sights: &[Sight]) -> Vec<SceneSpan> {
    let spans = sights.iter().filter(|s| s.until_ms > 0).map(|s| {
        let classes = s
            .labels
            .iter()
            .filter(|l| l.score >= SCENE_SCORE)
            .map(|l| (l.label.as_str(), l.score));
        (s.t_ms, s.until_ms, classes)
    });
    crate::stretches(spans)
        .into_iter()
        .map(|(start_ms, end_ms, label, score)| SceneSpan {
            start_ms,
            end_ms,
            label,
            score,
        })
        .collect()
}

/// What two reads of the same words share (spaces and case aside).
fn text_key(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(t_ms: i64, lines: &[&str]) -> Sight {
        Sight {
            t_ms,
            read_until_ms: t_ms + 2_000,
            lines: lines
                .iter()
                .map(|text| TextLine {
                    text: text.to_string(),
                    score: 0.9,
                    bbox: [0, 0, 10, 10],
                })
                .collect(),
            ..Sight::default()
        }
    }

    #[test]
    fn a_line_is_one_span_while_it_stays_up_and_another_when_it_comes_back() {
        let sights = [
            read(0, &["GOAL 1-0"]),
            read(2_000, &["goal 1-0", "KM 42"]),
            read(4_000, &[]),
            read(6_000, &["GOAL 1-0"]),
        ];
        assert_eq!(
            text_spans(&sights),
            [
                ("GOAL 1-0".to_string(), 0, 4_000),
                ("KM 42".to_string(), 2_000, 4_000),
                ("GOAL 1-0".to_string(), 6_000, 8_000),
            ]
        );
        // A slice's share: the pictures taken in it.
        assert_eq!(within(&sights, 2_000, 6_000).len(), 2);
        assert!(within(&sights, 9_000, 10_000).is_empty());
    }
}
