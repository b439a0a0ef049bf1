//! Highlights: strategies that propose segments, the post-processing every strategy
//! shares, rendering a reel with ffmpeg and exporting its timeline.

pub mod export;
pub mod job;
pub mod library;
pub mod matched;
pub mod music;
pub mod points;
pub mod render;
pub mod script;
pub mod segments;
pub mod strategy;
pub mod units;
