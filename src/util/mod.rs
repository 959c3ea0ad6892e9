//! Leaf utilities: nothing here imports any other module of the crate.

pub mod text;
pub mod time;
