//! The `alerting:` section: detector settings, receivers, delivery and state.

use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tokio_tungstenite::tungstenite::http::Uri;

use super::credentials;
use super::dispatch::{Format, Receiver, Retry};
use crate::detect::DetectorConfig;
use crate::net::tls::TlsSettings;
use crate::util::bounds;
use crate::util::redact::Redactor;
use crate::util::template::{Template, Vars};
use crate::util::units::HumanDuration;

/// `alerting:` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerting {
    /// How wsprobe is reached by people, for `generatorURL` (default: `http://<listen>`).
    pub external_url: Option<String>,
    /// Link added to every alert as `runbook_url`; `{alertname}` is replaced.
    pub runbook_url: Option<String>,
    /// Firing alerts are re-sent this often (default 1m).
    pub resend_interval: Option<HumanDuration>,
    /// Where baselines and alert states survive restarts (default: not persisted).
    pub state_dir: Option<PathBuf>,
    /// Detection thresholds and windows.
    #[serde(default)]
    pub detector: DetectorConfig,
    #[serde(default)]
    pub alertmanagers: Vec<RawReceiver>,
    #[serde(default)]
    pub webhooks: Vec<RawReceiver>,
    /// Notifications queued per receiver before new ones are dropped (default 64).
    pub queue_capacity: Option<NonZeroUsize>,
    /// Delivery attempts per notification (default 5), backing off from 500ms to 30s.
    pub max_attempts: Option<NonZeroU32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceiver {
    /// The `receiver` label (default: `alertmanager-N` / `webhook-N`).
    pub name: Option<String>,
    /// Alertmanager: its base URL (`http://127.0.0.1:9093`). Webhooks: the full URL.
    /// Userinfo (`http://user:${PASS}@host:9093`) is sent as `Authorization: Basic`.
    pub url: Template,
    /// Webhooks only: `json` (default) or `slack`.
    pub format: Option<String>,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, Template>,
    /// Per attempt (default 5s).
    pub timeout: Option<HumanDuration>,
    /// How an https:// receiver's certificate is verified (default: the system store).
    pub tls: Option<TlsSettings>,
}

/// `alerting:` resolved and validated.
#[derive(Debug, Clone)]
pub struct Alerting {
    pub external_url: Option<String>,
    pub runbook_url: Option<String>,
    pub resend_interval: Duration,
    pub state_dir: Option<PathBuf>,
    pub detector: DetectorConfig,
    pub receivers: Vec<Receiver>,
    pub queue_capacity: usize,
    pub retry: Retry,
}

impl PartialEq for Alerting {
    fn eq(&self, other: &Self) -> bool {
        let names = |a: &Alerting| {
            a.receivers.iter().map(|r| (r.name.clone(), r.url.clone(), r.tls.clone())).collect::<Vec<_>>()
        };
        self.external_url == other.external_url
            && self.runbook_url == other.runbook_url
            && self.resend_interval == other.resend_interval
            && self.state_dir == other.state_dir
            && self.detector == other.detector
            && names(self) == names(other)
    }
}

/// Validates `alerting:`, pushing each problem with its field path.
pub fn resolve(raw: &RawAlerting, problems: &mut Vec<String>) -> Alerting {
    problems.extend(raw.detector.validate("alerting.detector"));
    if let Some(url) = &raw.external_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            problems.push(format!(
                "alerting.external_url: `{}` must start with http:// or https://",
                crate::util::text::shown(url)
            ));
        }
    }
    let mut receivers = Vec::new();
    let lists =
        [("alertmanagers", "alertmanager", &raw.alertmanagers), ("webhooks", "webhook", &raw.webhooks)];
    let mut names = std::collections::HashSet::new();
    for (field, kind, list) in lists {
        for (i, r) in list.iter().enumerate() {
            let at = format!("alerting.{field}[{i}]");
            let name = r.name.clone().unwrap_or_else(|| format!("{kind}-{i}"));
            if !crate::util::names::is_valid_name(&name) {
                problems.push(format!(
                    "{at}.name: `{}` must be 1 to 63 characters from a-z, 0-9, `_` and `-`",
                    crate::util::text::shown(&name)
                ));
            } else if !names.insert(name.clone()) {
                problems.push(format!("{at}.name: `{name}` is already the name of another receiver"));
            }
            let format = match (kind, r.format.as_deref()) {
                ("alertmanager", None) => Format::Alertmanager,
                ("alertmanager", Some(_)) => {
                    problems.push(format!("{at}.format: Alertmanager receivers take no format"));
                    Format::Alertmanager
                }
                (_, None | Some("json")) => Format::Json,
                (_, Some("slack")) => Format::Slack,
                (_, Some(other)) => {
                    problems.push(format!(
                        "{at}.format: `{}` is not one of `json`, `slack`",
                        crate::util::text::shown(other)
                    ));
                    Format::Json
                }
            };
            let mut secrets = Vec::new();
            let shown_source = crate::util::text::shown(&credentials::shown(r.url.source()));
            let url = match r.url.expand_with(&Vars::default(), &mut secrets) {
                Ok(u) => {
                    let split = credentials::split(&u);
                    match split.url.parse::<Uri>() {
                        Ok(uri)
                            if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() =>
                        {
                            Some((uri, split))
                        }
                        _ => {
                            problems.push(format!(
                                "{at}.url: `{shown_source}` is not an http:// or https:// URL"
                            ));
                            None
                        }
                    }
                }
                Err(e) => {
                    problems.push(format!("{at}.url: {e}"));
                    None
                }
            };
            let mut headers = Vec::new();
            for (h, v) in &r.headers {
                match v.expand_with(&Vars::default(), &mut secrets) {
                    Ok(value) => headers.push((h.clone(), value)),
                    Err(e) => problems.push(format!("{at}.headers.{}: {e}", crate::util::text::shown(h))),
                }
            }
            let mut redactor = Redactor::new(&secrets);
            for (_, value) in &headers {
                redactor.add(value);
            }
            let url = url.map(|(uri, split)| {
                for s in &split.secrets {
                    redactor.add(s);
                }
                if let Some(basic) = split.authorization {
                    if headers.iter().any(|(h, _)| h.eq_ignore_ascii_case("authorization")) {
                        problems.push(format!(
                            "{at}.url: `{shown_source}` has credentials and `headers` has an Authorization header; give one of them"
                        ));
                    }
                    redactor.add(&basic);
                    headers.push(("Authorization".to_owned(), basic));
                }
                uri
            });
            bounds::check(&format!("{at}.timeout"), r.timeout, bounds::DEADLINE, problems);
            let timeout = r.timeout.map_or(Duration::from_secs(5), HumanDuration::get);
            if let Some(tls) = &r.tls {
                if url.as_ref().is_some_and(|u| u.scheme_str() == Some("http")) {
                    problems
                        .push(format!("{at}.tls: TLS settings given but the url is http:// (use https://)"));
                }
                crate::net::tls::check_settings(&at, tls, problems);
            }
            let tls = r.tls.clone().unwrap_or_default();
            if let Some(url) = url {
                receivers.push(Receiver { name, url, format, headers, timeout, tls, redactor });
            }
        }
    }
    let resend_interval = raw.resend_interval.map_or(Duration::from_secs(60), HumanDuration::get);
    if resend_interval.is_zero() {
        problems.push("alerting.resend_interval: must be positive".to_owned());
    }
    bounds::check("alerting.resend_interval", raw.resend_interval, bounds::ALERT_DELAY, problems);
    Alerting {
        external_url: raw.external_url.clone(),
        runbook_url: raw.runbook_url.clone(),
        resend_interval,
        state_dir: raw.state_dir.clone(),
        detector: raw.detector.clone(),
        receivers,
        queue_capacity: raw.queue_capacity.map_or(64, NonZeroUsize::get),
        retry: Retry { max_attempts: raw.max_attempts.map_or(5, NonZeroU32::get), ..Retry::default() },
    }
}
