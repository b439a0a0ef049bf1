//! reelforge-media: media through ffmpeg/ffprobe: probing, the one decode pass that feeds
//! every signal, signal maths, clip visual descriptors, cutting ranges out of videos,
//! proxies for remote models, and subtitles. Above `reelforge-core` only.

pub mod audio;
pub mod cut;
pub mod decode;
pub mod images;
pub mod probe;
pub mod process;
pub mod proxy;
pub mod signals;
pub mod subtitles;
pub mod visual;

pub use cut::{cut, CutMode};
pub use decode::{decode, AudioWindow, DecodeSpec, FrameSample, Sample};
pub use probe::{probe, ProbeRecord, StreamRecord};
