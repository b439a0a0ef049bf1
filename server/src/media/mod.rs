//! Media through ffmpeg/ffprobe: probing, the one decode pass that feeds every signal,
//! signal maths, and cutting ranges out of videos.

pub mod audio;
pub mod cut;
pub mod decode;
pub mod images;
pub mod probe;
pub mod process;
pub mod proxy;
pub mod signals;
pub mod subtitles;

pub use cut::{cut, CutMode};
pub use decode::{decode, AudioWindow, DecodeSpec, FrameSample, Sample};
pub use probe::{probe, ProbeRecord, StreamRecord};
