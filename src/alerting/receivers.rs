//! Notification bodies: Alertmanager's v2 API, a generic JSON webhook, Slack.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::json;

use super::alert::{rfc3339, rfc3339_unix};
use crate::detect::{Alert, AlertState};

/// What the receiver needs besides the alerts themselves.
#[derive(Debug, Clone)]
pub struct Context {
    /// Base URL of wsprobe's own API, for `generatorURL`.
    pub external_url: String,
    /// `{alertname}` is replaced by the alert's name.
    pub runbook_url: Option<String>,
    /// Firing alerts are re-sent this often; Alertmanager keeps them alive for 4× that.
    pub resend_interval: Duration,
}

impl Context {
    fn annotations(&self, alert: &Alert) -> BTreeMap<String, String> {
        let mut a = BTreeMap::from([
            ("summary".to_owned(), alert.summary.clone()),
            ("description".to_owned(), alert.description.clone()),
        ]);
        if let Some(url) = &self.runbook_url {
            a.insert("runbook_url".to_owned(), url.replace("{alertname}", alert.key.kind.as_str()));
        }
        if let Some(m) = &alert.measurement {
            a.insert("value".to_owned(), format!("{}", m.value));
            if let Some(b) = m.baseline {
                a.insert("baseline".to_owned(), format!("{b}"));
            }
        }
        a
    }

    fn generator_url(&self, alert: &Alert) -> String {
        format!("{}/api/alerts?target={}", self.external_url.trim_end_matches('/'), alert.key.target)
    }
}

/// An alert's labels as a map: alertname, target, severity, phase or step.
pub fn labels(alert: &Alert) -> BTreeMap<String, String> {
    alert.labels().into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

#[derive(Serialize)]
struct AmAlert {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt")]
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: String,
}

/// The body of `POST /api/v2/alerts`: firing alerts with an `endsAt` 4 resend intervals
/// ahead (so Alertmanager resolves them itself if wsprobe disappears), resolved ones with
/// their real end. Pending alerts are never sent.
pub fn alertmanager_body(ctx: &Context, alerts: &[Alert], now: SystemTime) -> Vec<u8> {
    let body: Vec<AmAlert> = alerts
        .iter()
        .filter(|a| a.state != AlertState::Pending)
        .map(|a| AmAlert {
            labels: labels(a),
            annotations: ctx.annotations(a),
            starts_at: rfc3339_unix(a.active_since),
            ends_at: match (a.state, a.resolved_at) {
                (AlertState::Resolved, Some(t)) => rfc3339_unix(t),
                (AlertState::Resolved, None) => rfc3339(now),
                _ => rfc3339(now + ctx.resend_interval * 4),
            },
            generator_url: ctx.generator_url(a),
        })
        .collect();
    serde_json::to_vec(&body).unwrap_or_default()
}

/// A generic webhook: one JSON document per delivery with every alert in it.
pub fn webhook_body(ctx: &Context, alerts: &[Alert]) -> Vec<u8> {
    let list: Vec<_> = alerts
        .iter()
        .filter(|a| a.state != AlertState::Pending)
        .map(|a| {
            json!({
                "status": if a.state == AlertState::Resolved { "resolved" } else { "firing" },
                "labels": labels(a),
                "annotations": ctx.annotations(a),
                "startsAt": rfc3339_unix(a.active_since),
                "endsAt": a.resolved_at.map(rfc3339_unix),
                "generatorURL": ctx.generator_url(a),
            })
        })
        .collect();
    serde_json::to_vec(&json!({"version": "1", "source": "wsprobe", "alerts": list})).unwrap_or_default()
}

/// A Slack-compatible incoming-webhook body: one line per alert.
pub fn slack_body(ctx: &Context, alerts: &[Alert]) -> Vec<u8> {
    let lines: Vec<String> = alerts
        .iter()
        .filter(|a| a.state != AlertState::Pending)
        .map(|a| {
            let (icon, word) = match a.state {
                AlertState::Resolved => (":white_check_mark:", "RESOLVED"),
                _ => (":rotating_light:", "FIRING"),
            };
            let scope = a.key.subject.as_ref().map(|s| format!(" {s}")).unwrap_or_default();
            let name = a.key.kind.as_str();
            let mut line = format!("{icon} *[{word}] {name}* `{}`{scope}: {}", a.key.target, a.description);
            if let Some(url) = &ctx.runbook_url {
                line.push_str(&format!(" (<{}|runbook>)", url.replace("{alertname}", name)));
            }
            line
        })
        .collect();
    serde_json::to_vec(&json!({"text": lines.join("\n")})).unwrap_or_default()
}
