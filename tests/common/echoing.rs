//! Hostile servers that echo what the client sent them: a WebSocket server that plays
//! back request headers through close reasons, messages and rejected upgrades, and an
//! HTTP server (health endpoint, alert receiver) that answers with the request itself.
//!
//! Both bind `127.0.0.1:0` and stop when dropped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// What the WebSocket server does with one connection, decided from the request.
#[derive(Clone)]
pub enum Act {
    /// Send these text messages, then keep reading (until the client leaves).
    Send(Vec<String>),
    /// Close the session with this code and reason.
    Close(u16, String),
    /// Refuse the upgrade with this status, body and response headers.
    Reject(u16, String, Vec<(String, String)>),
    /// Wait for the client's first text message, then act as this decides from it.
    OnMessage(Arc<dyn Fn(&str) -> Act + Send + Sync>),
}

impl std::fmt::Debug for Act {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Act::Send(m) => write!(f, "Send({m:?})"),
            Act::Close(c, r) => write!(f, "Close({c}, {r:?})"),
            Act::Reject(s, ..) => write!(f, "Reject({s})"),
            Act::OnMessage(_) => f.write_str("OnMessage"),
        }
    }
}

/// The request as the server saw it: path (with query) and headers, names lower-case.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HashMap<String, String>,
}

type Script = Arc<dyn Fn(&Seen) -> Act + Send + Sync>;

/// A server running until dropped.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
    /// HTTP only: every request received, head and body as text.
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Running {
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// A WebSocket server that acts on each connection as `script` decides from its request.
pub async fn ws(script: impl Fn(&Seen) -> Act + Send + Sync + 'static) -> Running {
    let script: Script = Arc::new(script);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let script = script.clone();
            tokio::spawn(async move {
                let act = Arc::new(Mutex::new(None));
                let chosen = act.clone();
                // The library's callback type fixes the error type.
                #[allow(clippy::result_large_err)]
                let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                    let seen = Seen {
                        path: req.uri().to_string(),
                        headers: req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())
                            })
                            .collect(),
                    };
                    let a = script(&seen);
                    if let Act::Reject(status, body, headers) = &a {
                        let mut r = ErrorResponse::new(Some(body.clone()));
                        *r.status_mut() = StatusCode::from_u16(*status).unwrap_or(StatusCode::UNAUTHORIZED);
                        for (k, v) in headers {
                            if let (Ok(k), Ok(v)) =
                                (k.parse::<tokio_tungstenite::tungstenite::http::HeaderName>(), v.parse())
                            {
                                r.headers_mut().insert(k, v);
                            }
                        }
                        return Err(r);
                    }
                    *chosen.lock().unwrap_or_else(PoisonError::into_inner) = Some(a);
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else { return };
                let mut act = act.lock().unwrap_or_else(PoisonError::into_inner).take();
                if let Some(Act::OnMessage(then)) = &act {
                    let first = loop {
                        match ws.next().await {
                            Some(Ok(Message::Text(t))) => break t.to_string(),
                            Some(Ok(_)) => {}
                            _ => return,
                        }
                    };
                    act = Some(then(&first));
                }
                match act {
                    Some(Act::Send(messages)) => {
                        for m in messages {
                            if ws.send(Message::text(m)).await.is_err() {
                                return;
                            }
                        }
                        while let Some(Ok(_)) = ws.next().await {}
                    }
                    Some(Act::Close(code, reason)) => {
                        let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
                        let _ = ws.send(Message::Close(Some(frame))).await;
                        while let Some(Ok(_)) = ws.next().await {}
                    }
                    _ => {}
                }
            });
        }
    });
    Running { addr, task, requests: Arc::default() }
}

/// An HTTP server answering every request with `status(path)` and, as the body, `body`
/// of the whole request it read (head and body); the request's `authorization` header is
/// also echoed back in an `x-echo` response header.
pub async fn http(status: fn(&str) -> u16, body: fn(&str, &str) -> String) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let requests: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = requests.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { continue };
            let log = log.clone();
            tokio::spawn(async move {
                let mut raw = Vec::new();
                let mut chunk = [0u8; 4096];
                // Head, then as much body as Content-Length says.
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else { return };
                    if n == 0 {
                        break;
                    }
                    raw.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&raw);
                    if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if rest.len() >= len {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&raw).into_owned();
                log.lock().unwrap_or_else(PoisonError::into_inner).push(text.clone());
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                let auth = text
                    .lines()
                    .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("authorization")))
                    .map(|(_, v)| v.trim().to_owned())
                    .unwrap_or_default();
                let code = status(&path);
                let body = body(&path, &text);
                let content_type = if body.starts_with('{') { "application/json" } else { "text/plain" };
                let answer = format!(
                    "HTTP/1.1 {code} Echo\r\nContent-Type: {content_type}\r\nX-Echo: {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Running { addr, task, requests }
}
