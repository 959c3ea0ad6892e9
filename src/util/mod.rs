//! Leaf utilities: nothing here imports any other module of the crate.

pub mod json;
pub mod labels;
pub mod redact;
pub mod text;
pub mod time;
