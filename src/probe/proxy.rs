//! Phase `proxy`: which proxy a probe goes through, and the tunnel through it
//! ([`crate::net::proxy`]), its failures named `proxy_error`.
//!
//! With a proxy, `dns` resolves the proxy's name and `connect` reaches the proxy; `proxy`
//! is the CONNECT exchange (with TLS to an `https://` proxy first); `tls` then runs with
//! the target through the tunnel.

use std::sync::Arc;

use rustls::ClientConfig;

use super::{ProbeError, Reason};
use crate::net::proxy::{self, ProxySetting, ProxyUrl};
use crate::net::tls::{self, Conn};
use crate::net::NetErrorKind;
use crate::util::template::Vars;
use crate::util::url::WsUrl;

/// The proxy for this probe of `url`, or `None` to go direct. Values substituted into
/// the URL, the password and its encoded form join `secrets`.
pub(crate) fn route(
    setting: &ProxySetting,
    url: &WsUrl,
    vars: &Vars,
    secrets: &mut Vec<String>,
) -> Result<Option<ProxyUrl>, ProbeError> {
    let failed = |why: String| ProbeError::new(Reason::ProxyError, why);
    let parsed = match setting {
        ProxySetting::Direct => return Ok(None),
        ProxySetting::Url(template) => {
            let text = template
                .expand_with(vars, secrets)
                .map_err(|e| failed(format!("cannot expand the proxy url: {e}")))?;
            proxy::parse_proxy_url(&text).map_err(|why| failed(format!("the proxy url {why}")))?
        }
        ProxySetting::Env => {
            let Some((name, value)) =
                proxy::from_env(url.secure, &url.host, url.port, &|n| std::env::var(n).ok())
            else {
                return Ok(None);
            };
            let parsed = proxy::parse_proxy_url(&value);
            // The variable's value may hold a password: only its name is shown.
            parsed.map_err(|why| failed(format!("the proxy url in ${name} {why}")))?
        }
    };
    secrets.extend(parsed.secrets.iter().cloned());
    Ok(Some(parsed))
}

/// Opens the tunnel to `url` through the proxy connected on `conn`.
pub(crate) async fn open(
    conn: Conn,
    via: &ProxyUrl,
    proxy_tls: Option<&Arc<ClientConfig>>,
    url: &WsUrl,
) -> Result<Conn, ProbeError> {
    let conn = match (via.secure, proxy_tls) {
        (true, Some(config)) => {
            let (conn, _expiry) =
                tls::handshake_over(config.clone(), &via.host, conn).await.map_err(|e| {
                    ProbeError::new(
                        Reason::ProxyError,
                        format!("TLS to the proxy {} failed: {e}", via.shown()),
                    )
                })?;
            conn
        }
        (true, None) => {
            return Err(ProbeError::new(Reason::ProxyError, "no TLS configuration for an https:// proxy"))
        }
        (false, _) => conn,
    };
    let target = proxy::authority(&url.host, url.port);
    proxy::connect_tunnel(conn, via, &target)
        .await
        .map_err(|e| ProbeError { http_status: e.status, ..ProbeError::new(Reason::ProxyError, e.message) })
}

/// A TLS failure through a tunnel: an answer that is not TLS at all came from the proxy
/// (a lying proxy's garbage after its `200`), not from the server.
pub(crate) fn tls_failure(e: crate::net::NetError, via: Option<&ProxyUrl>) -> ProbeError {
    match via {
        Some(p) if e.kind == NetErrorKind::NotTls => ProbeError::new(
            Reason::ProxyError,
            format!("the tunnel through the proxy {} does not carry TLS from the server: {e}", p.shown()),
        ),
        _ => ProbeError::from(e),
    }
}
