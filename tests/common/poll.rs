//! Waiting in tests for something the daemon does in its own time, bounded.

use std::future::Future;
use std::time::{Duration, Instant};

/// Runs `attempt` until it returns `Ok`, sleeping `every` between tries, for at most
/// `within` (it runs at least once): the `Ok` value, or the last `Err` once time is up.
pub async fn poll<T, E, F, Fut>(within: Duration, every: Duration, mut attempt: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + within;
    loop {
        match attempt().await {
            Ok(done) => return Ok(done),
            Err(last) if Instant::now() >= deadline => return Err(last),
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// Polls `check` every 20 ms until it holds; fails the test after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let held = poll(within, Duration::from_millis(20), || {
        let check = check();
        async move {
            if check.await {
                Ok(())
            } else {
                Err(())
            }
        }
    });
    held.await.unwrap_or_else(|()| panic!("timed out waiting until {what}"));
}
