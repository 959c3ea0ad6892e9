//! `hold` and `sleep`: keep the session open for a while, reading what arrives.
//!
//! Reading (rather than sleeping) keeps answering the server's pings and notices a close or
//! a reset at once; with `max_gap`, a stream that goes quiet fails as `stalled`.

use std::time::Duration;

use crate::probe::session::{Session, Wait};
use crate::probe::Stop;

pub async fn hold(session: &mut Session, duration: Duration, max_gap: Option<Duration>) -> Result<(), Stop> {
    let wait = Wait::new(duration).with_max_gap(max_gap);
    while session.next_event(&wait).await?.is_some() {}
    Ok(())
}
