//! What is heard: the `SoundTagger` trait (16 kHz audio → scored sound classes per
//! window), the events a slice's windows make (a class heard over a stretch, with its
//! peak score), the stretches that hold a voice (what the transcriber is given), and the
//! offline tagger, YAMNet (`yamnet`: 521 AudioSet classes).

mod yamnet;

use serde::{Deserialize, Serialize};

use reelforge_core::error::Result;
use reelforge_core::BoxFuture;

pub use yamnet::YamnetTagger;

/// One class heard in a window, with the model's score (0..1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoundLabel {
    pub label: String,
    pub score: f32,
}

/// What the tagger heard in one window of audio, on the video's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct SoundWindow {
    pub start_ms: i64,
    pub end_ms: i64,
    /// How likely the window holds a human voice speaking (0..1).
    pub voice: f32,
    /// The likeliest classes, best first, those scoring at least `LABEL_FLOOR`.
    pub labels: Vec<SoundLabel>,
}

/// A class heard over a stretch of a video: consecutive windows that scored it at least
/// `EVENT_SCORE`, joined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoundEvent {
    pub start_ms: i64,
    pub end_ms: i64,
    /// The class's name, as the model's class map writes it ("Cheering", "Music").
    pub label: String,
    /// Its best score over the stretch.
    pub score: f32,
}

/// Scores below this are not kept in a window's labels.
pub const LABEL_FLOOR: f32 = 0.1;
/// A class is an event where it scores at least this.
pub const EVENT_SCORE: f32 = 0.3;
/// A window holds speech where its voice score is at least this.
pub const VOICE_SCORE: f32 = 0.3;
/// Voiced stretches are widened by this much each side before transcription, so a word
/// starting or ending between windows is not cut.
const VOICE_MARGIN_MS: i64 = 500;

/// The classes of a crowd reacting (AudioSet's names): the offline analyser's crowd cue.
pub const CROWD: [&str; 12] = [
    "Cheering",
    "Applause",
    "Crowd",
    "Clapping",
    "Chant",
    "Whoop",
    "Yell",
    "Shout",
    "Bellow",
    "Battle cry",
    "Children shouting",
    "Hubbub, speech noise, speech babble",
];

/// Classes that say nothing about content and are not made events.
const NOT_EVENTS: [&str; 2] = ["Silence", "Inside, small room"];

/// The Chinese name of a sound class heard often in video (`None` for the rest).
pub fn chinese_name(label: &str) -> Option<&'static str> {
    Some(match label {
        "Speech" => "说话声",
        "Music" => "音乐",
        "Singing" => "歌声",
        "Cheering" => "欢呼声",
        "Applause" => "掌声",
        "Crowd" => "人群",
        "Clapping" => "拍手声",
        "Chant" => "齐声呼喊",
        "Whistle" | "Whistling" => "哨声",
        "Laughter" => "笑声",
        "Vehicle" => "车辆",
        "Car" => "汽车",
        "Engine" => "发动机声",
        "Bicycle" => "自行车",
        "Wind" => "风声",
        "Rain" => "雨声",
        "Water" => "水声",
        "Bird" => "鸟叫",
        "Dog" => "狗叫",
        "Explosion" => "爆炸声",
        "Gunshot, gunfire" => "枪声",
        "Fireworks" => "烟花",
        "Silence" => "寂静",
        "Drum" => "鼓声",
        "Guitar" => "吉他",
        "Piano" => "钢琴",
        "Animal" => "动物",
        "Bell" => "铃声",
        "Alarm" => "警报声",
        _ => return None,
    })
}

/// A sound event as search text: its class, "crowd" where it is a crowd's, and its
/// Chinese name where it has one ("applause, crowd · 掌声").
pub fn search_text(event: &SoundEvent) -> String {
    let mut text = event.label.to_lowercase();
    if CROWD.contains(&event.label.as_str()) && event.label != "Crowd" {
        text.push_str(", crowd");
    }
    if let Some(zh) = chinese_name(&event.label) {
        text.push_str(" · ");
        text.push_str(zh);
    }
    text
}

/// Tags sound: which of its classes are heard, window by window.
pub trait SoundTagger: Send + Sync {
    /// Stable name recorded with what it heard, e.g. "local:yamnet".
    fn name(&self) -> &str;
    /// Every class it can hear, by name.
    fn classes(&self) -> &[String];
    /// The windows of `samples` (16 kHz mono, -1..1, starting at `start_ms` on the video's
    /// timeline), in order. Audio shorter than one window is padded with silence.
    fn tag<'a>(
        &'a self,
        start_ms: i64,
        samples: Vec<f32>,
    ) -> BoxFuture<'a, Result<Vec<SoundWindow>>>;
}

/// The events `windows` make: per class, consecutive (touching or overlapping) windows
/// scoring at least `EVENT_SCORE` joined into one stretch. Ordered by start, then score.
pub fn events(windows: &[SoundWindow]) -> Vec<SoundEvent> {
    let spans = windows.iter().map(|w| {
        let classes = w
            .labels
            .iter()
            .filter(|l| l.score >= EVENT_SCORE && !NOT_EVENTS.contains(&l.label.as_str()))
            .map(|l| (l.label.as_str(), l.score));
        (w.start_ms, w.end_ms, classes)
    });
    crate::stretches(spans)
        .into_iter()
        .map(|(start_ms, end_ms, label, score)| SoundEvent {
            start_ms,
            end_ms,
            label,
            score,
        })
        .collect()
}

/// The stretches of `windows` that hold a voice, widened by half a second each side and
/// joined where they touch: what a transcriber gated by voice reads.
pub fn voiced(windows: &[SoundWindow]) -> Vec<(i64, i64)> {
    let mut spans: Vec<(i64, i64)> = Vec::new();
    add_voiced(&mut spans, windows);
    spans
}

/// Adds the voiced stretches of later `windows` (the next slice's) to `spans`, joining a
/// stretch that runs across the boundary into one, so a voice is read whole.
pub fn add_voiced(spans: &mut Vec<(i64, i64)>, windows: &[SoundWindow]) {
    for w in windows.iter().filter(|w| w.voice >= VOICE_SCORE) {
        let (start, end) = (w.start_ms - VOICE_MARGIN_MS, w.end_ms + VOICE_MARGIN_MS);
        match spans.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => spans.push((start.max(0), end)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start_ms: i64, voice: f32, labels: &[(&str, f32)]) -> SoundWindow {
        SoundWindow {
            start_ms,
            end_ms: start_ms + 960,
            voice,
            labels: labels
                .iter()
                .map(|(l, s)| SoundLabel {
                    label: l.to_string(),
                    score: *s,
                })
                .collect(),
        }
    }

    #[test]
    fn consecutive_windows_of_a_class_make_one_event_and_a_gap_ends_it() {
        let windows = [
            window(0, 0.0, &[("Music", 0.9), ("Cheering", 0.1)]),
            window(480, 0.0, &[("Music", 0.95), ("Cheering", 0.5)]),
            window(
                960,
                0.0,
                &[("Music", 0.2), ("Cheering", 0.6), ("Silence", 0.9)],
            ),
            window(1440, 0.0, &[("Music", 0.8)]),
        ];
        let e = events(&windows);
        let got: Vec<(&str, i64, i64, f32)> = e
            .iter()
            .map(|e| (e.label.as_str(), e.start_ms, e.end_ms, e.score))
            .collect();
        assert_eq!(
            got,
            vec![
                ("Music", 0, 1440, 0.95),
                ("Cheering", 480, 1920, 0.6),
                ("Music", 1440, 2400, 0.8),
            ]
        );
    }

    #[test]
    fn voiced_stretches_are_widened_and_joined() {
        let windows = [
            window(0, 0.9, &[]),
            window(480, 0.1, &[]),
            window(960, 0.8, &[]),
            window(5000, 0.5, &[]),
        ];
        assert_eq!(voiced(&windows), vec![(0, 2420), (4500, 6460)]);
        assert!(voiced(&[window(0, 0.2, &[])]).is_empty());
        // The next slice's voice that starts where this one's ends continues it.
        let mut spans = voiced(&windows);
        add_voiced(
            &mut spans,
            &[window(6_000, 0.9, &[]), window(9_000, 0.9, &[])],
        );
        assert_eq!(spans, vec![(0, 2420), (4500, 7460), (8500, 10460)]);
    }
}
