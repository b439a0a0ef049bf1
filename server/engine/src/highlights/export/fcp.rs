//! Final Cut Pro timelines: FCPXML 1.9 (Final Cut Pro X, DaVinci Resolve) and Final Cut
//! Pro 7 XML, `xmeml` (Premiere Pro, Resolve, Avid via import).
//!
//! Both lay the reel out as OTIO does (`super::otio`): clips one after another, a
//! crossfade a dissolve centred on the cut, each clip giving up the half of the dissolve
//! its handle supplies, so the sequence lasts as long as the rendered reel. Times are
//! whole frames: of the sequence's rate on the record side, of the clip's source rate on
//! the source side.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{Timeline, TimelineClip};

/// A frame rate as editors write it: an integer timebase, NTSC (×1000/1001) or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Rate {
    timebase: i64,
    ntsc: bool,
}

impl Rate {
    /// 25 → 25; 29.97 → 30 NTSC; 23.976 → 24 NTSC; an unusual rate → the nearest integer.
    pub(super) fn of(fps: f64) -> Rate {
        let fps = if fps.is_finite() && fps > 0.0 {
            fps
        } else {
            25.0
        };
        let whole = fps.round().max(1.0);
        let ntsc = (fps * 1.001).round().max(1.0);
        if (fps - whole).abs() > 0.005 && (fps - ntsc / 1.001).abs() < 0.005 {
            Rate {
                timebase: ntsc as i64,
                ntsc: true,
            }
        } else {
            Rate {
                timebase: whole as i64,
                ntsc: false,
            }
        }
    }

    fn fps(self) -> f64 {
        if self.ntsc {
            self.timebase as f64 * 1000.0 / 1001.0
        } else {
            self.timebase as f64
        }
    }

    /// Whole frames in `ms`.
    fn frames(self, ms: i64) -> i64 {
        (ms as f64 * self.fps() / 1000.0).round() as i64
    }

    /// FCPXML's rational seconds of `frames` frames.
    fn seconds(self, frames: i64) -> String {
        if self.ntsc {
            format!("{}/{}s", frames * 1001, self.timebase * 1000)
        } else if frames % self.timebase == 0 {
            format!("{}s", frames / self.timebase)
        } else {
            format!("{frames}/{}s", self.timebase)
        }
    }

    fn frame_duration(self) -> String {
        if self.ntsc {
            format!("1001/{}s", self.timebase * 1000)
        } else {
            format!("1/{}s", self.timebase)
        }
    }

    /// xmeml's `<rate>`.
    fn xmeml(self) -> String {
        format!(
            "<rate><timebase>{}</timebase><ntsc>{}</ntsc></rate>",
            self.timebase,
            if self.ntsc { "TRUE" } else { "FALSE" }
        )
    }
}

/// Text and attribute values escaped for XML; control characters (not allowed in XML
/// 1.0) dropped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(' '),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// A `file://` URL of an absolute path, percent-encoded as RFC 3986 asks (editors refuse
/// a raw space); `host` is `""` or `localhost` (Final Cut Pro 7's form).
fn file_url(host: &str, path: &str) -> String {
    let mut out = format!("file://{host}");
    if !path.starts_with('/') {
        out.push('/');
    }
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A crossfade as the XML timelines place it: centred on a cut, `before` frames of the
/// outgoing clip's handle and `after` of the incoming one's (sequence rate; the ms they
/// come from convert to each clip's own rate).
#[derive(Clone, Copy)]
struct Dissolve {
    before_ms: i64,
    after_ms: i64,
    before: i64,
    after: i64,
}

/// One clip placed on the record timeline.
struct Placed<'t> {
    clip: &'t TimelineClip,
    rate: Rate,
    /// Source range shown, in the clip's frames.
    src_in: i64,
    src_out: i64,
    /// Record range, in the sequence's frames.
    offset: i64,
    duration: i64,
    /// The dissolves at the cut before and after the clip.
    head: Option<Dissolve>,
    tail: Option<Dissolve>,
}

/// The reel as FCP lays it out; returns the clips and the sequence's length in frames.
fn place(t: &Timeline, seq: Rate) -> (Vec<Placed<'_>>, i64) {
    let dissolve_ms = if t.clips.len() > 1 {
        t.crossfade_ms.max(0)
    } else {
        0
    };
    let (before_ms, after_ms) = (dissolve_ms / 2, dissolve_ms - dissolve_ms / 2);
    let dissolve = (dissolve_ms > 0).then(|| Dissolve {
        before_ms,
        after_ms,
        before: seq.frames(before_ms),
        after: seq.frames(after_ms),
    });
    let last = t.clips.len().saturating_sub(1);
    let mut offset = 0;
    let mut placed = Vec::with_capacity(t.clips.len());
    for (i, c) in t.clips.iter().enumerate() {
        let start = c.start_ms + if i > 0 { before_ms } else { 0 };
        let end = c.end_ms - if i < last { after_ms } else { 0 };
        let rate = Rate::of(c.fps);
        let duration = (seq.frames(end) - seq.frames(start)).max(1);
        let src_in = rate.frames(start);
        placed.push(Placed {
            clip: c,
            rate,
            src_in,
            src_out: src_in + (rate.frames(end) - rate.frames(start)).max(1),
            offset,
            duration,
            head: dissolve.filter(|_| i > 0),
            tail: dissolve.filter(|_| i < last),
        });
        offset += duration;
    }
    (placed, offset)
}

fn name_of(c: &TimelineClip) -> &str {
    if c.description.is_empty() {
        &c.filename
    } else {
        &c.description
    }
}

fn note_of(c: &TimelineClip) -> String {
    let mut note = format!("priority {} score {:.2}", c.priority, c.score);
    if !c.reason.is_empty() {
        let _ = write!(note, " reason {}", c.reason);
    }
    if !c.model.is_empty() {
        let _ = write!(note, " model {}", c.model);
    }
    note
}

fn title(t: &Timeline) -> String {
    format!("reelforge {} {}", t.strategy, t.highlight_id)
}

/// FCPXML's `resources`: ids `r1`, `r2`, ... and one `format` per frame rate and size.
#[derive(Default)]
struct Resources {
    text: String,
    next: usize,
    formats: BTreeMap<(Rate, i32, i32), String>,
}

impl Resources {
    fn id(&mut self) -> String {
        self.next += 1;
        format!("r{}", self.next)
    }

    fn format(&mut self, rate: Rate, width: i32, height: i32) -> String {
        if let Some(id) = self.formats.get(&(rate, width, height)) {
            return id.clone();
        }
        let id = self.id();
        let (w, h) = (width.max(1), height.max(1));
        let _ = writeln!(
            self.text,
            r#"    <format id="{id}" name="FFVideoFormat{h}p{}" frameDuration="{}" width="{w}" height="{h}"/>"#,
            rate.timebase,
            rate.frame_duration(),
        );
        self.formats.insert((rate, width, height), id.clone());
        id
    }
}

/// FCPXML 1.9: a library with one event and one project; the sources as assets (their
/// file as `media-rep`), one `format` per distinct frame rate and size, each segment an
/// `asset-clip` in the spine with its description as name, a `note` (priority, score,
/// reason) and a marker at its start, and a Cross Dissolve `transition` per crossfade.
pub fn fcpxml(t: &Timeline) -> String {
    let seq = Rate::of(t.fps);
    let (placed, total) = place(t, seq);
    let mut res = Resources::default();
    let first = t.clips.first();
    let sequence_format = res.format(
        seq,
        first.map_or(1920, |c| c.width),
        first.map_or(1080, |c| c.height),
    );
    // One asset per source file.
    let mut assets: BTreeMap<&str, String> = BTreeMap::new();
    for p in &placed {
        let c = p.clip;
        if assets.contains_key(c.source_path.as_str()) {
            continue;
        }
        let format = res.format(p.rate, c.width, c.height);
        let id = res.id();
        let audio = if c.has_audio {
            r#" hasAudio="1" audioSources="1" audioChannels="2" audioRate="48000""#
        } else {
            ""
        };
        let _ = writeln!(
            res.text,
            r#"    <asset id="{id}" name="{}" start="0s" duration="{}" hasVideo="1" format="{format}"{audio}>
      <media-rep kind="original-media" src="{}"/>
    </asset>"#,
            esc(&c.filename),
            p.rate
                .seconds(p.rate.frames(c.source_duration_ms.max(c.end_ms))),
            esc(&file_url("", &c.source_path)),
        );
        assets.insert(&c.source_path, id);
    }
    let dissolve_id = res.id();
    if placed.iter().any(|p| p.head.is_some()) {
        let _ = writeln!(
            res.text,
            r#"    <effect id="{dissolve_id}" name="Cross Dissolve" uid="FxPlug:4731E73A-8DAC-4113-9A30-AE85B1761265"/>"#
        );
    }
    let resources = res.text;
    let mut spine = String::new();
    for p in &placed {
        let c = p.clip;
        if let Some(d) = p.head {
            let _ = writeln!(
                spine,
                r#"            <transition name="Cross Dissolve" offset="{}" duration="{}">
              <filter-video ref="{dissolve_id}" name="Cross Dissolve"/>
            </transition>"#,
                seq.seconds(p.offset - d.before),
                seq.seconds(d.before + d.after),
            );
        }
        let _ = writeln!(
            spine,
            r#"            <asset-clip ref="{}" offset="{}" name="{}" start="{}" duration="{}" tcFormat="NDF">
              <note>{}</note>
              <marker start="{}" duration="{}" value="{}"/>
            </asset-clip>"#,
            assets[c.source_path.as_str()],
            seq.seconds(p.offset),
            esc(name_of(c)),
            p.rate.seconds(p.src_in),
            seq.seconds(p.duration),
            esc(&note_of(c)),
            p.rate.seconds(p.src_in),
            p.rate.seconds(1),
            esc(name_of(c)),
        );
    }
    let title = esc(&title(t));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE fcpxml>
<fcpxml version="1.9">
  <resources>
{resources}  </resources>
  <library>
    <event name="reelforge">
      <project name="{title}">
        <sequence format="{sequence_format}" duration="{}" tcStart="0s" tcFormat="NDF" audioLayout="stereo" audioRate="48k">
          <spine>
{spine}          </spine>
        </sequence>
      </project>
    </event>
  </library>
</fcpxml>
"#,
        seq.seconds(total),
    )
}

/// Final Cut Pro 7 XML (`xmeml` version 4, as Premiere Pro writes it): one sequence at the
/// reel's rate, a video track and (when any source has sound) a stereo pair of audio
/// tracks; each segment a `clipitem` linking its source `file` (defined once, then
/// referenced by id) with its description as name, `comments`, and a marker; a crossfade
/// a centred `transitionitem` (Cross Dissolve; Cross Fade (+3dB) on audio) whose
/// neighbours' record ends read `-1`, as FCP 7 writes them.
pub fn xmeml(t: &Timeline) -> String {
    let seq = Rate::of(t.fps);
    let (placed, total) = place(t, seq);
    let first = t.clips.first();
    let (width, height) = first.map_or((1920, 1080), |c| (c.width.max(1), c.height.max(1)));
    let mut files: BTreeMap<&str, String> = BTreeMap::new();
    let mut file_defined = std::collections::BTreeSet::new();
    for c in &t.clips {
        let next = files.len() + 1;
        files
            .entry(c.source_path.as_str())
            .or_insert_with(|| format!("file-{next}"));
    }
    let mut track = |kind: &str, channel: usize| -> String {
        let mut out = String::new();
        for (i, p) in placed.iter().enumerate() {
            let c = p.clip;
            if let Some(d) = p.head {
                let effect = if kind == "video" {
                    "<name>Cross Dissolve</name><effectid>Cross Dissolve</effectid><effectcategory>Dissolve</effectcategory><effecttype>transition</effecttype><mediatype>video</mediatype>"
                } else {
                    "<name>Cross Fade (+3dB)</name><effectid>KGAudioTransCrossFade3dB</effectid><effecttype>transition</effecttype><mediatype>audio</mediatype>"
                };
                let _ = writeln!(
                    out,
                    "        <transitionitem>\n          {}\n          <start>{}</start>\n          <end>{}</end>\n          <alignment>center</alignment>\n          <effect>{effect}</effect>\n        </transitionitem>",
                    seq.xmeml(),
                    p.offset - d.before,
                    p.offset + d.after,
                );
            }
            let media_frames = p.rate.frames(c.source_duration_ms.max(c.end_ms));
            let note = esc(&note_of(c));
            let file_id = &files[c.source_path.as_str()];
            let file = if file_defined.insert(file_id.clone()) {
                let audio = if c.has_audio {
                    "<audio><samplecharacteristics><depth>16</depth><samplerate>48000</samplerate></samplecharacteristics><channelcount>2</channelcount></audio>"
                } else {
                    ""
                };
                format!(
                    "<file id=\"{file_id}\">\n            <name>{}</name>\n            <pathurl>{}</pathurl>\n            {}\n            <duration>{}</duration>\n            <media><video><samplecharacteristics>{}<width>{}</width><height>{}</height></samplecharacteristics></video>{audio}</media>\n          </file>",
                    esc(&c.filename),
                    esc(&file_url("localhost", &c.source_path)),
                    p.rate.xmeml(),
                    media_frames,
                    p.rate.xmeml(),
                    c.width.max(1),
                    c.height.max(1),
                )
            } else {
                format!("<file id=\"{file_id}\"/>")
            };
            // FCP 7 counts a clip's in and out over the dissolves' handles too.
            let src_in = p.src_in - p.head.map_or(0, |d| p.rate.frames(d.before_ms));
            let src_out = p.src_out + p.tail.map_or(0, |d| p.rate.frames(d.after_ms));
            let start = if p.head.is_some() { -1 } else { p.offset };
            let end = if p.tail.is_some() {
                -1
            } else {
                p.offset + p.duration
            };
            let id = format!("clipitem-{kind}{channel}-{}", i + 1);
            let name = esc(name_of(c));
            let source_track = if kind == "audio" {
                format!("\n          <sourcetrack><mediatype>audio</mediatype><trackindex>{channel}</trackindex></sourcetrack>")
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "        <clipitem id=\"{id}\">\n          <name>{name}</name>\n          <enabled>TRUE</enabled>\n          <duration>{}</duration>\n          {}\n          <start>{start}</start>\n          <end>{end}</end>\n          <in>{src_in}</in>\n          <out>{src_out}</out>\n          {file}{source_track}\n          <comments><mastercomment1>{note}</mastercomment1></comments>\n          <marker><name>{name}</name><comment>{note}</comment><in>{}</in><out>-1</out></marker>\n        </clipitem>",
                media_frames,
                p.rate.xmeml(),
                p.src_in,
            );
        }
        out
    };
    let video = track("video", 1);
    let audio = if t.clips.iter().any(|c| c.has_audio) {
        let channels: Vec<String> = (1..=2)
            .map(|ch| format!("      <track>\n{}      </track>\n", track("audio", ch)))
            .collect();
        format!("    <audio>\n{}    </audio>\n", channels.concat())
    } else {
        String::new()
    };
    let title = esc(&title(t));
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE xmeml>
<xmeml version="4">
  <sequence id="sequence-1">
    <name>{title}</name>
    <duration>{total}</duration>
    {rate}
    <timecode>{rate}<string>00:00:00:00</string><frame>0</frame><displayformat>NDF</displayformat></timecode>
    <media>
    <video>
      <format><samplecharacteristics>{rate}<width>{width}</width><height>{height}</height><pixelaspectratio>square</pixelaspectratio></samplecharacteristics></format>
      <track>
{video}      </track>
    </video>
{audio}    </media>
  </sequence>
</xmeml>
"#,
        rate = seq.xmeml(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline() -> Timeline {
        super::super::test_timeline(500, "my clip.mp4", "crowd & <cheer>")
    }

    #[test]
    fn rates_are_whole_or_ntsc_and_times_whole_frames() {
        assert_eq!(
            Rate::of(25.0),
            Rate {
                timebase: 25,
                ntsc: false
            }
        );
        assert_eq!(
            Rate::of(29.97),
            Rate {
                timebase: 30,
                ntsc: true
            }
        );
        assert_eq!(
            Rate::of(30000.0 / 1001.0),
            Rate {
                timebase: 30,
                ntsc: true
            }
        );
        assert_eq!(
            Rate::of(23.976),
            Rate {
                timebase: 24,
                ntsc: true
            }
        );
        assert_eq!(
            Rate::of(f64::NAN),
            Rate {
                timebase: 25,
                ntsc: false
            }
        );
        assert_eq!(
            Rate::of(12.3),
            Rate {
                timebase: 12,
                ntsc: false
            }
        );
        let ntsc = Rate::of(29.97);
        assert_eq!(ntsc.frames(1_001), 30);
        assert_eq!(ntsc.seconds(30), "30030/30000s");
        assert_eq!(ntsc.frame_duration(), "1001/30000s");
        let pal = Rate::of(25.0);
        assert_eq!(
            (pal.seconds(50), pal.seconds(51)),
            ("2s".into(), "51/25s".into())
        );
    }

    #[test]
    fn urls_are_percent_encoded_and_text_escaped() {
        assert_eq!(
            file_url("", "/a b/视频.mp4"),
            "file:///a%20b/%E8%A7%86%E9%A2%91.mp4"
        );
        assert_eq!(file_url("localhost", "/x.mp4"), "file://localhost/x.mp4");
        assert_eq!(
            esc("a & <b> \"c\"\n\u{1}"),
            "a &amp; &lt;b&gt; &quot;c&quot; "
        );
    }

    #[test]
    fn fcpxml_centres_the_dissolve_on_the_cut() {
        let x = fcpxml(&timeline());
        assert!(x.contains(r#"<fcpxml version="1.9">"#), "{x}");
        assert!(x.contains(r#"src="file:///data/my%20clip.mp4""#), "{x}");
        // 4.76 s of the first clip (it gives up 0.24 s to the dissolve), the dissolve's 12
        // frames from 6 before the cut, the second clip from 46.24 s.
        assert!(
            x.contains(r#"offset="0s" name="bikes" start="20s" duration="119/25s""#),
            "{x}"
        );
        assert!(
            x.contains(r#"<transition name="Cross Dissolve" offset="113/25s" duration="12/25s">"#),
            "{x}"
        );
        assert!(
            x.contains(r#"offset="119/25s" name="bunny" start="1156/25s" duration="94/25s""#),
            "{x}"
        );
        assert!(x.contains("crowd &amp; &lt;cheer&gt;"), "{x}");
        assert!(
            x.contains(r#"<sequence format="r1" duration="213/25s""#),
            "{x}"
        );
    }

    #[test]
    fn xmeml_clips_meet_at_the_transitions_cut() {
        let x = xmeml(&timeline());
        assert!(x.contains(r#"<xmeml version="4">"#), "{x}");
        assert!(
            x.contains("<pathurl>file://localhost/data/my%20clip.mp4</pathurl>"),
            "{x}"
        );
        // The outgoing clip ends at the transition (-1) and its out counts the handle; the
        // incoming one starts there and its in counts the handle before the cut.
        assert!(x.contains("<start>0</start>\n          <end>-1</end>\n          <in>500</in>\n          <out>625</out>"), "{x}");
        assert!(x.contains("<start>113</start>\n          <end>125</end>\n          <alignment>center</alignment>"), "{x}");
        assert!(x.contains("<start>-1</start>\n          <end>213</end>\n          <in>1150</in>\n          <out>1250</out>"), "{x}");
        // The file is described once, then referenced; audio comes along on two tracks.
        assert_eq!(x.matches("<file id=\"file-1\">").count(), 1, "{x}");
        assert_eq!(x.matches("<file id=\"file-1\"/>").count(), 5, "{x}");
        assert_eq!(x.matches("Cross Fade (+3dB)").count(), 2, "{x}");
    }
}
