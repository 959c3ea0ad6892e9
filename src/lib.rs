//! wsprobe: continuous WebSocket synthetic monitoring.
//!
//! The binary (`src/main.rs`) is a thin command-line layer over this library, so tests
//! drive the same code paths the daemon runs.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod metrics;
pub mod once;
pub mod probe;
pub mod scenario;
pub mod scheduler;
pub mod state;
