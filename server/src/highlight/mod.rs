//! Highlights: strategies that propose segments, the post-processing every strategy
//! shares, rendering a reel with ffmpeg and exporting its timeline.

pub mod export;
pub mod job;
pub mod render;
pub mod script;
pub mod segments;
pub mod strategy;
