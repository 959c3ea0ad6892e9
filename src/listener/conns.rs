//! The listener's connection table: a fixed number of slots, and who gives one up when a
//! new client arrives and all are taken.
//!
//! A full table does not turn new clients away: that would let a few hundred idle or
//! slow clients lock Prometheus out. Instead the oldest connection that is not in the
//! middle of a request (still sending its headers, or idle between keep-alive requests)
//! is closed to make room. A scraper sends its request within milliseconds of connecting
//! and is then busy, so it is never the one evicted; an attacker's stalled connections
//! are. Only when every slot is serving a request is the newcomer closed at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// One connection's state, shared by its task, its request handler and the table.
#[derive(Debug)]
pub struct Conn {
    busy: AtomicBool,
    /// When the last request finished; `None` before the first.
    last_done: Mutex<Option<Instant>>,
    /// Fires when the table evicts this connection.
    pub evicted: CancellationToken,
    /// Signalled when a request ends, so the connection's task re-arms its idle timer.
    pub request_done: Notify,
}

impl Conn {
    fn new() -> Self {
        Self {
            busy: AtomicBool::new(false),
            last_done: Mutex::new(None),
            evicted: CancellationToken::new(),
            request_done: Notify::new(),
        }
    }

    /// Marks a request in progress until the returned guard is dropped.
    pub fn request(self: &Arc<Self>) -> Busy {
        self.busy.store(true, Ordering::SeqCst);
        Busy(self.clone())
    }

    fn is_busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    /// Since when the connection has been idle after a request, if it is.
    pub fn idle_since(&self) -> Option<Instant> {
        if self.is_busy() {
            return None;
        }
        *self.last_done.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A request in progress on a connection.
#[derive(Debug)]
pub struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.last_done.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        self.0.busy.store(false, Ordering::SeqCst);
        // `notify_one` keeps the wake-up if the task is not waiting at this instant.
        self.0.request_done.notify_one();
    }
}

/// What [`Table::admit`] decided for a new connection.
#[derive(Debug)]
pub(crate) enum Admit {
    /// A free slot.
    Free(Slot),
    /// A slot taken from an older connection that was not serving a request.
    Evicted(Slot),
    /// Every slot is serving a request: close the newcomer.
    Full,
}

#[derive(Debug)]
pub(crate) struct Table {
    cap: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    /// By id, so the oldest connection comes first.
    conns: BTreeMap<u64, Arc<Conn>>,
}

impl Table {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self { cap: cap.max(1), inner: Mutex::new(Inner::default()) })
    }

    pub fn open(&self) -> usize {
        self.lock().conns.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn admit(self: &Arc<Self>) -> Admit {
        let mut inner = self.lock();
        let mut evicted = false;
        if inner.conns.len() >= self.cap {
            let Some(victim) = inner.conns.iter().find(|(_, c)| !c.is_busy()).map(|(id, _)| *id) else {
                return Admit::Full;
            };
            if let Some(conn) = inner.conns.remove(&victim) {
                conn.evicted.cancel();
            }
            evicted = true;
        }
        let id = inner.next;
        inner.next += 1;
        let conn = Arc::new(Conn::new());
        inner.conns.insert(id, conn.clone());
        let slot = Slot { table: self.clone(), id, conn };
        if evicted {
            Admit::Evicted(slot)
        } else {
            Admit::Free(slot)
        }
    }
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    table: Arc<Table>,
    id: u64,
    pub conn: Arc<Conn>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.table.lock().conns.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(a: Admit) -> Slot {
        match a {
            Admit::Free(s) | Admit::Evicted(s) => s,
            Admit::Full => panic!("refused"),
        }
    }

    #[test]
    fn a_full_table_evicts_the_oldest_connection_not_in_a_request() {
        let table = Table::new(2);
        let first = slot(table.admit());
        let second = slot(table.admit());
        let _busy = first.conn.request();
        let third = table.admit();
        assert!(matches!(third, Admit::Evicted(_)), "{third:?}");
        assert!(!first.conn.evicted.is_cancelled(), "the busy one stays");
        assert!(second.conn.evicted.is_cancelled(), "the idle one makes room");
        assert_eq!(table.open(), 2);
        drop(third);
        assert_eq!(table.open(), 1);
    }

    #[test]
    fn a_table_of_busy_connections_refuses() {
        let table = Table::new(1);
        let only = slot(table.admit());
        let busy = only.conn.request();
        assert!(matches!(table.admit(), Admit::Full));
        drop(busy);
        assert!(only.conn.idle_since().is_some());
        assert!(matches!(table.admit(), Admit::Evicted(_)));
    }
}
