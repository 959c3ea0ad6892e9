//! What `/api/targets` shows about a session target's sessions.
//!
//! Each holder writes its own slot (one small mutex per session, never held across an
//! await) and the API reads the slots when it serializes the snapshot, so a message or a
//! pong costs a lock of its own session's slot and no event to the state task: holding
//! ten thousand sessions does not turn into ten thousand snapshot rebuilds per ping
//! interval. The state task receives the board once, when the target starts.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use crate::probe::Reason;
use crate::util::json::round_millis;
use crate::util::time::unix_now;

/// The window of "disconnects in the last hour", in minutes.
const WINDOW_MINUTES: u64 = 60;
/// Entries kept per session for that window (one per minute and reason); a session cut
/// with more reasons per minute than this loses the oldest counts first.
const MAX_ENTRIES: usize = 120;

/// One target's sessions, shared by its holders and the state snapshot.
#[derive(Debug, Default)]
pub struct Board {
    configured: AtomicU32,
    slots: Mutex<Vec<Arc<Slot>>>,
}

/// One held session's status, written by its holder.
#[derive(Debug, Default)]
pub struct Slot {
    inner: Mutex<SlotState>,
}

#[derive(Debug, Default, Clone)]
struct SlotState {
    open_since: Option<f64>,
    last_message_at: Option<f64>,
    last_rtt: Option<f64>,
    last_heartbeat_rtt: Option<f64>,
    connects: u64,
    /// (minute since the epoch, reason, count), oldest first.
    recent: VecDeque<(u64, Reason, u32)>,
    last_disconnect: Option<Disconnect>,
}

/// The last time a session ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Disconnect {
    pub at: f64,
    pub reason: Reason,
    pub close_code: Option<u16>,
    pub message: String,
    pub lifetime_seconds: f64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned slot only means a panic mid-update; its fields are still plain values.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Board {
    pub fn new(configured: u32) -> Arc<Self> {
        let board = Arc::new(Self::default());
        board.configured.store(configured, Ordering::Relaxed);
        board
    }

    /// A new slot at the end (a session added by a resize or at start).
    pub fn add_slot(&self) -> Arc<Slot> {
        let slot = Arc::new(Slot::default());
        lock(&self.slots).push(Arc::clone(&slot));
        slot
    }

    /// Removes the last `n` slots (sessions removed by a resize).
    pub fn remove_last(&self, n: usize) {
        let mut slots = lock(&self.slots);
        let keep = slots.len().saturating_sub(n);
        slots.truncate(keep);
    }

    pub fn set_configured(&self, count: u32) {
        self.configured.store(count, Ordering::Relaxed);
    }
}

impl Slot {
    pub fn opened(&self) {
        let mut s = lock(&self.inner);
        s.open_since = Some(round_millis(unix_now()));
        s.connects += 1;
    }

    pub fn message(&self) {
        lock(&self.inner).last_message_at = Some(round_millis(unix_now()));
    }

    pub fn rtt(&self, seconds: f64) {
        lock(&self.inner).last_rtt = Some(seconds);
    }

    pub fn heartbeat_rtt(&self, seconds: f64) {
        lock(&self.inner).last_heartbeat_rtt = Some(seconds);
    }

    /// The session ended: `counted` is false for a polite `max_lifetime` close or a
    /// shutdown, which are not disconnects.
    pub fn closed(&self, ended: Option<Disconnect>) {
        let mut s = lock(&self.inner);
        s.open_since = None;
        let Some(d) = ended else { return };
        let minute = d.at.max(0.0) as u64 / 60;
        while s.recent.front().is_some_and(|(m, _, _)| *m + WINDOW_MINUTES <= minute) {
            s.recent.pop_front();
        }
        match s.recent.back_mut() {
            Some((m, r, n)) if *m == minute && *r == d.reason => *n = n.saturating_add(1),
            _ => {
                if s.recent.len() == MAX_ENTRIES {
                    s.recent.pop_front();
                }
                s.recent.push_back((minute, d.reason, 1));
            }
        }
        s.last_disconnect = Some(d);
    }
}

/// The board as the snapshot holds it: compared by identity, serialized by reading it.
#[derive(Debug, Clone)]
pub struct SessionsView(pub Arc<Board>);

impl PartialEq for SessionsView {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

#[derive(Serialize)]
struct SessionJson {
    index: usize,
    open: bool,
    open_since: Option<f64>,
    last_message_at: Option<f64>,
    last_rtt_seconds: Option<f64>,
    last_heartbeat_rtt_seconds: Option<f64>,
    connects: u64,
    disconnects_last_hour: BTreeMap<&'static str, u64>,
    last_disconnect: Option<Disconnect>,
}

impl Serialize for SessionsView {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let slots: Vec<Arc<Slot>> = lock(&self.0.slots).clone();
        let minute = unix_now().max(0.0) as u64 / 60;
        let mut total: BTreeMap<&'static str, u64> = BTreeMap::new();
        let sessions: Vec<SessionJson> = slots
            .iter()
            .enumerate()
            .map(|(index, slot)| {
                let s = lock(&slot.inner).clone();
                let mut hour = BTreeMap::new();
                for (m, reason, n) in &s.recent {
                    if m + WINDOW_MINUTES > minute {
                        *hour.entry(reason.as_str()).or_default() += u64::from(*n);
                        *total.entry(reason.as_str()).or_default() += u64::from(*n);
                    }
                }
                SessionJson {
                    index,
                    open: s.open_since.is_some(),
                    open_since: s.open_since,
                    last_message_at: s.last_message_at,
                    last_rtt_seconds: s.last_rtt,
                    last_heartbeat_rtt_seconds: s.last_heartbeat_rtt,
                    connects: s.connects,
                    disconnects_last_hour: hour,
                    last_disconnect: s.last_disconnect,
                }
            })
            .collect();
        let mut st = ser.serialize_struct("Sessions", 4)?;
        st.serialize_field("configured", &self.0.configured.load(Ordering::Relaxed))?;
        st.serialize_field("open", &sessions.iter().filter(|s| s.open).count())?;
        st.serialize_field("disconnects_last_hour", &total)?;
        st.serialize_field("sessions", &sessions)?;
        st.end()
    }
}
