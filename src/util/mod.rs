//! Leaf utilities: nothing here imports any other module of the crate.

pub mod batched;
pub mod bounds;
pub mod files;
pub mod headers;
pub mod json;
pub mod labels;
pub mod matcher;
pub mod names;
pub mod redact;
pub mod template;
pub mod text;
pub mod time;
pub mod units;
pub mod url;
