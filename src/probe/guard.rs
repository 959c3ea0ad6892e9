//! A bug in wsprobe caught while probing: a panic anywhere in a probe becomes a failed
//! result with the reason `internal_error`, never a pass and never a silent end of the
//! target's task.
//!
//! The future is polled inside `catch_unwind`, on the caller's task, so the probe's own
//! bookkeeping (the phase in progress) survives the unwind and the caller keeps running.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::{ProbeError, Reason};
use crate::util::text::{escape_control, excerpt};

/// Longest panic message kept in a result.
const MAX_SHOWN: usize = 200;

/// Runs `fut` to completion; `Err` carries the panic message when it panicked.
///
/// Unwind safety is asserted: whatever the future borrowed mutably is only read after a
/// panic to describe it (the phase in progress, timings so far), never trusted as state.
pub(crate) async fn catch<F: Future>(fut: F) -> Result<F::Output, String> {
    AssertUnwindSafe(fut).catch_unwind().await.map_err(|payload| describe(payload.as_ref()))
}

/// The panic's message, as `panic!` gave it; a payload of another type says so.
fn describe(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// The failure a caught panic is reported as.
pub(crate) fn internal_error(panic: &str) -> ProbeError {
    let shown = excerpt(&escape_control(panic), MAX_SHOWN);
    ProbeError::new(Reason::InternalError, format!("wsprobe bug: {shown}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn panics_with(message: &str) -> u32 {
        if !message.is_empty() {
            panic!("{message}");
        }
        7
    }

    #[tokio::test]
    async fn a_panicking_future_is_caught_and_the_next_one_still_runs() {
        let caught = catch(panics_with("byte index 200 is not a char boundary\nsecond line")).await;
        let e = internal_error(&caught.unwrap_err());
        assert_eq!(e.reason, Reason::InternalError);
        assert_eq!(e.message, "wsprobe bug: byte index 200 is not a char boundary\\nsecond line");
        assert_eq!(catch(panics_with("")).await, Ok(7));
        let static_str = catch(async { std::panic::panic_any("fixed") }).await;
        assert_eq!(static_str.unwrap_err(), "fixed");
        let other = catch(async { std::panic::panic_any(5_u8) }).await;
        assert_eq!(other.unwrap_err(), "a panic without a message");
        let long = catch(panics_with(&"é".repeat(500))).await.unwrap_err();
        assert_eq!(internal_error(&long).message.chars().count(), "wsprobe bug: ".len() + MAX_SHOWN + 1);
    }
}
