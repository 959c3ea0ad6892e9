//! A session target's task: `count` held sessions, each reconnecting on its own, every
//! connect reported through the target's one sink and fed to its breaker, and the count
//! changed in place by a reload.
//!
//! Each session is one task (a holder) that opens its session with the probe's own
//! connect, records the connect's result like a probe result (log, phase histograms,
//! `wsprobe_probe_success`, record file, alerts, state), holds the session, and after a
//! failed connect or a disconnect waits its back-off before the next attempt. The breaker
//! is shared by the holders of the target; it reports, it does not hold connects back
//! (the back-off does that).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::{watch, Mutex, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::scheduler::{failure_summary, Circuit, Recorder};
use super::Prepared;
use crate::config::Target;
use crate::detect::SessionEvent;
use crate::probe::session::Session;
use crate::probe::{parting_code, Opened, Phase, ProbeError, ProbeResult, Reason, Stop};
use crate::session::backoff::Backoff;
use crate::session::hold::{hold, End, Live};
use crate::session::metrics::Series;
use crate::session::report::Reporter;
use crate::session::status::{Board, Disconnect, Slot};
use crate::session::{SessionSettings, SessionsView};
use crate::state::{Event, WatchEvent};
use crate::util::json::round_millis;
use crate::util::time::unix_now;

/// The longest a closing session waits for the server's close frame.
const CLOSE_LIMIT: Duration = Duration::from_millis(500);

/// Connects of one target in flight at once: a target of thousands of sessions opens
/// them in waves instead of one burst of SYNs that overflows the server's accept queue
/// (and, after a mass cut, does not return as one either).
const CONNECTS_IN_FLIGHT: usize = 256;

/// Changes the number of sessions a running session target holds.
#[derive(Debug, Clone)]
pub(crate) struct Resize(watch::Sender<u32>);

impl Resize {
    pub(crate) fn to(&self, count: u32) {
        self.0.send_replace(count);
    }
}

/// Whether a reload from `old` to `new` can resize the running sessions instead of
/// restarting them: both are session targets and only `count` differs.
pub(crate) fn only_count_changed(old: &Target, new: &Target) -> bool {
    match (&old.session, &new.session) {
        (Some(a), Some(b)) if a.same_but_count(b) => {
            let mut same = new.clone();
            same.session = old.session.clone();
            same == *old
        }
        _ => false,
    }
}

/// How often the open count is compared with the last one reported to the alert engine.
const COUNT_EVERY: Duration = Duration::from_secs(1);
/// The open count is reported again this often even when unchanged, so that one report
/// dropped by a full queue does not leave the detector with a stale count.
const COUNT_REFRESH: Duration = Duration::from_secs(15);

/// What the holders of one target share.
struct Shared {
    prepared: Prepared,
    settings: SessionSettings,
    recorder: Recorder,
    series: Series,
    reporter: Reporter,
    circuit: Mutex<Circuit>,
    connecting: Semaphore,
}

/// Starts the task that holds a session target's sessions until `cancel` fires.
pub(crate) fn spawn(
    prepared: Prepared,
    recorder: Recorder,
    cancel: CancellationToken,
) -> (JoinHandle<()>, Resize) {
    let count = prepared.target.session.as_ref().map_or(0, |s| s.count);
    let (tx, rx) = watch::channel(count);
    let span = tracing::info_span!("target", name = %prepared.name());
    let recorder = recorder.for_target(prepared.target.phase_histograms);
    (tokio::spawn(run(prepared, recorder, cancel, rx).instrument(span)), Resize(tx))
}

async fn run(
    prepared: Prepared,
    recorder: Recorder,
    cancel: CancellationToken,
    mut count: watch::Receiver<u32>,
) {
    let t = Arc::clone(&prepared.target);
    let Some(settings) = t.session.clone() else { return };
    let started = WatchEvent::Started {
        checks: t.health.iter().map(|c| c.name.clone()).collect(),
        reports_version: t.health.iter().any(|c| c.version_path.is_some()),
        remote_breakers: t.remote_breakers.is_some(),
    };
    recorder.watch(&t.name, started).await;
    let mut watchers = prepared.watchers.spawn(&t.name, &recorder, &cancel);

    let gaps = recorder.metrics.probe.message_gap.with_label_values(&[&t.name]);
    let series = recorder.metrics.session.series(&t.name, gaps);
    let board = Board::new(settings.count);
    let view = SessionsView(Arc::clone(&board));
    recorder.state.send(Event::Sessions { target: t.name.clone(), view: Some(view) }).await;
    let circuit = Circuit::start(&t.name, t.circuit_breaker, t.interval, &recorder).await;
    let connecting = Semaphore::new(CONNECTS_IN_FLIGHT);
    let reporter = Reporter::new(&t.name, recorder.alerts.clone(), recorder.record.clone());
    let circuit = Mutex::new(circuit);
    let shared = Arc::new(Shared { prepared, settings, recorder, series, reporter, circuit, connecting });
    // The open count, sampled: reporting every change would send a burst of thousands when
    // a large target opens or is cut at once.
    let mut sample = tokio::time::interval(COUNT_EVERY);
    sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported: Option<((u32, u32), Instant)> = None;

    let mut held: Vec<(CancellationToken, JoinHandle<()>)> = Vec::new();
    let mut leaving: Vec<JoinHandle<()>> = Vec::new();
    loop {
        let wanted = usize::try_from(*count.borrow_and_update()).unwrap_or(usize::MAX);
        shared.series.configured.set(i64::try_from(wanted).unwrap_or(i64::MAX));
        board.set_configured(u32::try_from(wanted).unwrap_or(u32::MAX));
        if held.len() > wanted {
            // The newest sessions go; the oldest, and their history, stay.
            board.remove_last(held.len() - wanted);
            for (token, handle) in held.drain(wanted..) {
                token.cancel();
                leaving.push(handle);
            }
        }
        while held.len() < wanted {
            let token = cancel.child_token();
            let slot = board.add_slot();
            let index = held.len();
            let span = tracing::info_span!("session", index);
            let handle =
                tokio::spawn(holder(Arc::clone(&shared), slot, index, token.clone()).instrument(span));
            held.push((token, handle));
        }
        leaving.retain(|h| !h.is_finished());
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            changed = count.changed() => if changed.is_err() { break },
            _ = sample.tick() => {
                let open = u32::try_from(shared.series.open.get()).unwrap_or(0);
                let now = (open, u32::try_from(wanted).unwrap_or(u32::MAX));
                if reported.is_none_or(|(last, at)| last != now || at.elapsed() >= COUNT_REFRESH) {
                    reported = Some((now, Instant::now()));
                    shared.reporter.report(SessionEvent::Open { open: now.0, configured: now.1 });
                }
            }
        }
    }
    for (token, _) in &held {
        token.cancel();
    }
    for handle in held.into_iter().map(|(_, h)| h).chain(leaving) {
        let _ = handle.await;
    }
    watchers.shutdown().await;
}

/// One session, held and reopened until `cancel` fires.
///
/// Its task is what every held session costs for its whole life, so it keeps only the
/// hold's state inline: connecting (the resolver, TLS, the upgrade, the result) happens
/// in a boxed future that is gone once the session is open.
async fn holder(shared: Arc<Shared>, slot: Arc<Slot>, index: usize, cancel: CancellationToken) {
    let s = &*shared;
    let mut backoff = Backoff::new(s.settings.reconnect);
    loop {
        Box::pin(async { s.circuit.lock().await.poll(Instant::now(), &s.recorder).await }).await;
        // The turn is taken before the connect's state is boxed: that state is large
        // (16 KB), and the thousands waiting for a turn while a fleet opens would each
        // hold one (5,870 of them, 93 MB, at the peak of opening 10,000).
        let Ok(turn) = s.connecting.acquire().await else { return };
        let Some(opened) = Box::pin(connect(s, &slot, turn, &cancel)).await else { return };
        let carry_on = match opened {
            Some(session) => held(s, &slot, index, session, &mut backoff, &cancel).await,
            None => pause(backoff.next_wait(), &cancel).await,
        };
        if !carry_on {
            return;
        }
    }
}

/// One connect in its `turn`, recorded like a probe and fed to the breaker. `None` when
/// cancelled; `Some(None)` when the connect failed.
async fn connect(
    s: &Shared,
    slot: &Slot,
    turn: tokio::sync::SemaphorePermit<'_>,
    cancel: &CancellationToken,
) -> Option<Option<Box<Session>>> {
    let Opened { result, session } = s.prepared.prober.open(cancel).await?;
    drop(turn);
    let failure = (!result.success).then(|| failure_summary(&result));
    if result.success {
        s.series.connected.inc();
    } else {
        s.series.failed.inc();
    }
    s.series.messages.inc_by(result.messages_received);
    if result.messages_received > 0 {
        slot.message();
    }
    s.recorder.record(result).await;
    s.circuit.lock().await.observe(failure.as_deref(), Instant::now(), &s.recorder).await;
    Some(session.map(Box::new))
}

/// Holds an open session until it ends, and says how: whether to reopen (false when
/// cancelled). The session comes boxed, and the timeouts are borrowed: an async fn's
/// arguments and copies are room in the task for the session's whole life.
async fn held(
    s: &Shared,
    slot: &Slot,
    index: usize,
    mut session: Box<Session>,
    backoff: &mut Backoff,
    cancel: &CancellationToken,
) -> bool {
    let name = s.prepared.name();
    let timeouts = &s.prepared.target.timeouts;
    s.series.open.inc();
    slot.opened();
    let since = Instant::now();
    let live = Live { series: Some(&s.series), slot, report: Some(&s.reporter) };
    // A bug while holding ends this session as `internal_error`, not the holder: the
    // gauge, the slot and the reconnects stay right.
    let end = match AssertUnwindSafe(hold(&mut session, &s.settings, timeouts.ping, None, live))
        .catch_unwind()
        .await
    {
        Ok(end) => end,
        Err(_) => End::Failed(ProbeError::new(
            Reason::InternalError,
            "wsprobe bug: a panic while holding the session",
        )),
    };
    s.series.open.dec();
    let lifetime = since.elapsed();
    match end {
        End::Cancelled => {
            slot.closed(None);
            // Boxed, as every close below: each happens once per session, and inline
            // their state would be room every held session's task carries.
            Box::pin(session.abandon(CloseCode::Away, CLOSE_LIMIT)).await;
            false
        }
        End::Lifetime | End::Until => {
            slot.closed(None);
            // Polite and expected: not a disconnect, and reopened at once.
            let closed = Box::pin(session.close_with(CloseCode::Normal, "", timeouts.close)).await;
            if matches!(closed, Err(Stop::Cancelled)) {
                return false;
            }
            tracing::info!(
                target_name = %name,
                session = index,
                lifetime_seconds = round_millis(lifetime.as_secs_f64()),
                "Session reached max_lifetime; closed with 1000 and reopening."
            );
            true
        }
        End::Failed(e) => {
            if let Some(code) = parting_code(e.reason) {
                Box::pin(session.abandon(code, CLOSE_LIMIT)).await;
            }
            let lifetime_seconds = lifetime.as_secs_f64();
            s.series.disconnected(e.reason);
            s.series.lifetime.observe(lifetime_seconds);
            s.reporter.report(SessionEvent::Disconnect {
                reason: e.reason,
                lifetime_seconds: round_millis(lifetime_seconds),
                close_code: e.close_code,
            });
            tracing::warn!(
                target_name = %name,
                session = index,
                reason = e.reason.as_str(),
                close_code = e.close_code, // left out for a reset: there was no close frame
                lifetime_seconds = round_millis(lifetime_seconds),
                detail = %e.message,
                "Session disconnected."
            );
            slot.closed(Some(Disconnect {
                at: round_millis(unix_now()),
                reason: e.reason,
                close_code: e.close_code,
                message: e.message,
                lifetime_seconds: round_millis(lifetime_seconds),
            }));
            backoff.session_ended(lifetime);
            pause(backoff.next_wait(), cancel).await
        }
    }
}

/// Sleeps `wait`; false when `cancel` fired first.
async fn pause(wait: Duration, cancel: &CancellationToken) -> bool {
    tokio::select! {
        biased;
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}

/// `wsprobe once` on a session target: open one session (its steps included), hold it
/// for one `ping_interval`, then one ping and a polite close. The result's phases are the
/// connect's, the ping's and the close's; a failure while held is reported in the phase
/// `ping` (the hold is the wait for it), a heartbeat left unanswered in `step`
/// `heartbeat`. `None` when `cancel` fired.
pub(crate) async fn once(prepared: &Prepared, cancel: &CancellationToken) -> Option<ProbeResult> {
    let settings = prepared.target.session.as_ref()?;
    let timeouts = prepared.target.timeouts;
    let started = Instant::now();
    let opened = prepared.prober.open(cancel).await?;
    let mut result = opened.result;
    let Some(mut session) = opened.session else { return Some(result) };
    let before = session.received;
    let slot = Slot::default();
    let until = crate::util::time::deadline(Instant::now(), settings.ping_interval);
    let end = hold(
        &mut session,
        settings,
        timeouts.ping,
        Some(until),
        Live { series: None, slot: &slot, report: None },
    )
    .await;
    let failed = match end {
        End::Cancelled => {
            session.abandon(CloseCode::Away, CLOSE_LIMIT).await;
            return None;
        }
        End::Failed(e) => Some(e),
        End::Lifetime | End::Until => None,
    };
    let mut phase = Phase::Ping;
    let failed = match failed {
        Some(e) => Some(e),
        None => match session.ping(timeouts.ping).await {
            Ok(rtt) => {
                result.phases.set(Phase::Ping, rtt.as_secs_f64());
                phase = Phase::Close;
                match session.close_with(CloseCode::Normal, "", timeouts.close).await {
                    Ok(closed) => {
                        result.phases.set(Phase::Close, closed.as_secs_f64());
                        None
                    }
                    Err(Stop::Cancelled) => return None,
                    Err(Stop::Failed(e)) => Some(e),
                }
            }
            Err(Stop::Cancelled) => return None,
            Err(Stop::Failed(e)) => Some(e),
        },
    };
    result.messages_received += session.received - before;
    result.messages_sent = session.sent;
    result.duration_seconds = started.elapsed().as_secs_f64();
    if let Some(e) = failed {
        result.success = false;
        result.phase = Some(phase);
        if e.reason == Reason::HeartbeatTimeout {
            result.phase = Some(Phase::Step);
            result.step = Some("heartbeat".to_owned());
        }
        result.reason = Some(e.reason);
        result.message = Some(e.message);
        result.close_code = e.close_code;
        if phase == Phase::Ping {
            if let Some(code) = parting_code(e.reason) {
                session.abandon(code, CLOSE_LIMIT).await;
            }
        }
    }
    Some(result)
}
