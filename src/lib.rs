//! wsprobe: continuous WebSocket synthetic monitoring.
//!
//! The binary (`src/main.rs`) is a thin command-line layer over this library, so tests
//! drive the same code paths the daemon runs.
#![forbid(unsafe_code)]

pub mod alerting;
pub mod breaker;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod detect;
pub mod health;
pub mod listener;
pub mod metrics;
pub mod net;
pub mod once;
pub mod probe;
pub mod record;
pub mod replay;
pub mod session;
pub mod shard;
pub mod slots;
pub mod state;
pub mod target;
pub mod util;
