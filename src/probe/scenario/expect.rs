//! `expect` and `expect_all`: wait for matching messages under a whole-step deadline.

use std::collections::VecDeque;
use std::time::Duration;

use tokio_tungstenite::tungstenite::Message;

use super::expect_timeout;
use crate::probe::session::{Event, Session, Wait};
use crate::probe::Stop;
use crate::util::matcher::{lookup, Matcher, Received};
use crate::util::redact::Redactor;

/// Messages described in a failure, most recent last.
const RECENT: usize = 3;

/// Non-matching messages seen while waiting, for the failure message.
#[derive(Default)]
struct Ignored {
    count: u64,
    recent: VecDeque<String>,
}

impl Ignored {
    fn push(&mut self, received: &Received<'_>, redactor: &Redactor) {
        self.count += 1;
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(received.preview(redactor));
    }
    fn recent(&self) -> Vec<String> {
        self.recent.iter().cloned().collect()
    }
}

/// Waits for the first message matching; stores the captures from it.
pub(crate) async fn expect_one(
    session: &mut Session,
    matcher: &Matcher,
    within: Duration,
    max_gap: Option<Duration>,
    capture: &[(String, Vec<String>)],
) -> Result<(), Stop> {
    let wait = Wait::new(within).with_max_gap(max_gap);
    let mut ignored = Ignored::default();
    loop {
        let msg = match session.next_event(&wait).await? {
            Some(Event::Data(msg)) => msg,
            Some(Event::Pong(_)) => continue,
            None => {
                return Err(
                    expect_timeout("no message matched", within, ignored.count, &ignored.recent()).into()
                )
            }
        };
        let received = Received::of(&msg);
        if !matcher.matches(&received) {
            ignored.push(&received, session.redactor());
            continue;
        }
        store_captures(session, &received, capture);
        return Ok(());
    }
}

fn store_captures(session: &mut Session, received: &Received<'_>, capture: &[(String, Vec<String>)]) {
    let Some(doc) = received.json() else { return };
    for (name, path) in capture {
        if let Some(v) = lookup(doc, path) {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            session.vars.captures.insert(name.clone(), text);
        }
    }
}

/// Waits until every matcher has matched some message, in any order.
pub async fn expect_all(
    session: &mut Session,
    matchers: &[Matcher],
    within: Duration,
    max_gap: Option<Duration>,
) -> Result<(), Stop> {
    let wait = Wait::new(within).with_max_gap(max_gap);
    let mut pending: Vec<usize> = (0..matchers.len()).collect();
    let mut ignored = Ignored::default();
    while !pending.is_empty() {
        let msg: Message = match session.next_event(&wait).await? {
            Some(Event::Data(msg)) => msg,
            Some(Event::Pong(_)) => continue,
            None => {
                let what = format!(
                    "{} of {} expected messages did not arrive (matchers {})",
                    pending.len(),
                    matchers.len(),
                    pending.iter().map(|i| format!("#{}", i + 1)).collect::<Vec<_>>().join(", ")
                );
                return Err(expect_timeout(&what, within, ignored.count, &ignored.recent()).into());
            }
        };
        let received = Received::of(&msg);
        let before = pending.len();
        pending.retain(|&i| !matchers[i].matches(&received));
        if pending.len() == before {
            ignored.push(&received, session.redactor());
        }
    }
    Ok(())
}
