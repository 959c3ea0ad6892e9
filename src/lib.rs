//! wsprobe: continuous WebSocket synthetic monitoring.
//!
//! The binary (`src/main.rs`) is a thin command-line layer over this library, so tests
//! drive the same code paths the daemon runs.
#![forbid(unsafe_code)]

/// Implements `Display` and `Serialize` for a closed enum through its `as_str`: the
/// enums whose values are label values and JSON fields (phases, reasons, states).
#[macro_export]
macro_rules! label_value {
    ($t:ty) => {
        impl ::std::fmt::Display for $t {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $t {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

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
pub mod slots;
pub mod state;
pub mod target;
pub mod util;
