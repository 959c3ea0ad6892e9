//! Notification bodies: Alertmanager's v2 API, a generic JSON webhook, Slack.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::json;

use super::alert::{rfc3339, rfc3339_unix};
use crate::detect::{Alert, AlertState};
use crate::util::text::escape_control;

/// What the receiver needs besides the alerts themselves.
#[derive(Debug, Clone)]
pub struct Context {
    /// Base URL of wsprobe's own API, for `generatorURL`.
    pub external_url: String,
    /// `{alertname}` is replaced by the alert's name.
    pub runbook_url: Option<String>,
    /// Firing alerts are re-sent this often; Alertmanager keeps them alive for 4× that.
    pub resend_interval: Duration,
    /// The configuration's top-level `labels:` (a location), added to every alert so
    /// alerts from different vantage points stay apart and replicas of one merge.
    pub instance_labels: BTreeMap<String, String>,
}

impl Context {
    /// The alert's own labels plus the instance's; validation keeps their names apart.
    pub fn labels(&self, alert: &Alert) -> BTreeMap<String, String> {
        let mut all = self.instance_labels.clone();
        all.extend(labels(alert));
        all
    }

    fn annotations(&self, alert: &Alert) -> BTreeMap<String, String> {
        let mut a = BTreeMap::from([
            ("summary".to_owned(), alert.summary.clone()),
            // Descriptions carry server text (a deployed version): one line, no controls.
            ("description".to_owned(), escape_control(&alert.description).into_owned()),
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
pub(crate) fn alertmanager_body(ctx: &Context, alerts: &[Alert], now: SystemTime) -> Vec<u8> {
    let body: Vec<AmAlert> = alerts
        .iter()
        .filter(|a| a.state != AlertState::Pending)
        .map(|a| AmAlert {
            labels: ctx.labels(a),
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
pub(crate) fn webhook_body(ctx: &Context, alerts: &[Alert]) -> Vec<u8> {
    let list: Vec<_> = alerts
        .iter()
        .filter(|a| a.state != AlertState::Pending)
        .map(|a| {
            json!({
                "status": if a.state == AlertState::Resolved { "resolved" } else { "firing" },
                "labels": ctx.labels(a),
                "annotations": ctx.annotations(a),
                "startsAt": rfc3339_unix(a.active_since),
                "endsAt": a.resolved_at.map(rfc3339_unix),
                "generatorURL": ctx.generator_url(a),
            })
        })
        .collect();
    serde_json::to_vec(&json!({"version": "1", "source": "wsprobe", "alerts": list})).unwrap_or_default()
}

/// Text as Slack shows it literally: `&`, `<` and `>` escaped (so `<!channel>` is text,
/// not a mention), control characters escaped (so it stays on its line).
fn slack_text(s: &str) -> String {
    escape_control(s).replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A Slack-compatible incoming-webhook body: one line per alert.
pub(crate) fn slack_body(ctx: &Context, alerts: &[Alert]) -> Vec<u8> {
    let lines: Vec<String> = alerts
        .iter()
        .filter(|a| a.state != AlertState::Pending)
        .map(|a| {
            let (icon, word) = match a.state {
                AlertState::Resolved => (":white_check_mark:", "RESOLVED"),
                _ => (":rotating_light:", "FIRING"),
            };
            let scope = a
                .key
                .subject
                .as_ref()
                .map(|s| format!(" {}", slack_text(&s.to_string())))
                .unwrap_or_default();
            let name = a.key.kind.as_str();
            let mut line = format!(
                "{icon} *[{word}] {name}* `{}`{scope}: {}",
                slack_text(&a.key.target),
                slack_text(&a.description)
            );
            if !ctx.instance_labels.is_empty() {
                let from: Vec<String> =
                    ctx.instance_labels.iter().map(|(k, v)| format!("{k}={}", slack_text(v))).collect();
                line.push_str(&format!(" (from {})", from.join(", ")));
            }
            if let Some(url) = &ctx.runbook_url {
                line.push_str(&format!(" (<{}|runbook>)", url.replace("{alertname}", name)));
            }
            line
        })
        .collect();
    serde_json::to_vec(&json!({"text": lines.join("\n")})).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{AlertKey, AlertKind, Severity};

    fn drift_alert(description: &str) -> Alert {
        Alert {
            key: AlertKey { kind: AlertKind::DeploymentDrift, target: "agent".into(), subject: None },
            severity: Severity::Ticket,
            state: AlertState::Firing,
            active_since: 1_700_000_000.0,
            fired_at: Some(1_700_000_000.0),
            resolved_at: None,
            summary: "drift".into(),
            description: description.into(),
            measurement: None,
        }
    }

    fn ctx() -> Context {
        Context {
            external_url: "http://wsprobe".into(),
            runbook_url: None,
            resend_interval: Duration::from_secs(60),
            instance_labels: BTreeMap::new(),
        }
    }

    #[test]
    fn instance_labels_ride_on_every_format() {
        let ctx = Context {
            instance_labels: BTreeMap::from([("location".to_owned(), "eu-west-1".to_owned())]),
            ..ctx()
        };
        let alert = drift_alert("drift");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let am: serde_json::Value =
            serde_json::from_slice(&alertmanager_body(&ctx, std::slice::from_ref(&alert), now)).unwrap();
        assert_eq!(am[0]["labels"]["location"], "eu-west-1");
        assert_eq!(am[0]["labels"]["target"], "agent");
        let hook: serde_json::Value =
            serde_json::from_slice(&webhook_body(&ctx, std::slice::from_ref(&alert))).unwrap();
        assert_eq!(hook["alerts"][0]["labels"]["location"], "eu-west-1");
        let slack: serde_json::Value = serde_json::from_slice(&slack_body(&ctx, &[alert])).unwrap();
        assert!(slack["text"].as_str().unwrap().ends_with("(from location=eu-west-1)"), "{slack}");
    }

    #[test]
    fn slack_text_cannot_mention_or_break_lines() {
        let alert = drift_alert("deployed 1.2, agent still serves <!channel> & co\nFIRING forged");
        let body: serde_json::Value = serde_json::from_slice(&slack_body(&ctx(), &[alert])).unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("serves &lt;!channel&gt; &amp; co\\nFIRING forged"), "{text}");
        assert!(!text.contains('\n'));
    }

    #[test]
    fn descriptions_stay_on_one_line() {
        let alert = drift_alert("serves 1.2\n2026-01-01T00:00:00Z ERROR forged");
        let body: serde_json::Value = serde_json::from_slice(&webhook_body(&ctx(), &[alert])).unwrap();
        let description = body["alerts"][0]["annotations"]["description"].as_str().unwrap();
        assert_eq!(description, "serves 1.2\\n2026-01-01T00:00:00Z ERROR forged");
    }
}
