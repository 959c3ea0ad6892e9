//! A real headless Chromium driven over the DevTools protocol: pages loaded at a given
//! viewport and colour scheme, the DOM queried, screenshots taken, and every console
//! error and network request the page caused collected.
//!
//! The browser gets a fresh profile in a temporary directory and is kept to loopback:
//! names resolve to nothing but 127.0.0.1, and anything not on loopback goes to a proxy
//! port where nothing listens. It is closed over the protocol and killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const CHROMIUM: &str = "/usr/bin/chromium";

/// A running Chromium and one DevTools connection to it.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    ws: WebSocketStream<TcpStream>,
    next_id: u64,
    /// Every event received so far, in order, with its `sessionId`.
    pub events: Vec<Value>,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tab attached to the connection.
pub struct Tab {
    pub session: String,
}

impl Browser {
    /// Starts Chromium and connects to its DevTools endpoint (within 30 s).
    pub async fn launch() -> Self {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-default-apps",
                "--mute-audio",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--proxy-server=127.0.0.1:9",
                "--proxy-bypass-list=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start /usr/bin/chromium (scripts/install-deps.sh installs it)");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let url = tokio::task::spawn_blocking(move || {
            let mut seen = Vec::new();
            while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    // Keep draining so Chromium never blocks on a full pipe.
                    std::thread::spawn(move || for _ in rx {});
                    return url.trim().to_owned();
                }
                seen.push(line);
            }
            panic!("Chromium printed no DevTools address:\n{}", seen.join("\n"));
        })
        .await
        .expect("reader");
        let hostport = url.trim_start_matches("ws://").split('/').next().expect("host:port").to_owned();
        assert!(hostport.starts_with("127.0.0.1:"), "DevTools not on loopback: {url}");
        let tcp = TcpStream::connect(&hostport).await.expect("connect to DevTools");
        let (ws, _) = tokio_tungstenite::client_async(url.as_str(), tcp).await.expect("DevTools handshake");
        Self { child, _profile: profile, ws, next_id: 0, events: Vec::new() }
    }

    /// Sends a command (to a tab when `session` is given) and waits up to 20 s for its
    /// answer, keeping the events that arrive meanwhile.
    pub async fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).await.expect("send to DevTools");
        let answer = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let value = self.next_message().await;
                if value["id"] == id {
                    return value;
                }
                self.events.push(value);
            }
        });
        let answer = answer.await.unwrap_or_else(|_| panic!("no answer to {method} within 20s"));
        assert!(answer.get("error").is_none(), "{method} failed: {answer}");
        answer["result"].clone()
    }

    async fn next_message(&mut self) -> Value {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).expect("DevTools JSON"),
                Some(Ok(_)) => continue,
                other => panic!("DevTools connection ended: {other:?}"),
            }
        }
    }

    /// Waits up to 20 s for event `method` in `session` (one already received counts once).
    pub async fn wait_event(&mut self, session: &str, method: &str) -> Value {
        let matches = |v: &Value| v["method"] == method && v["sessionId"] == session && v["seen"].is_null();
        if let Some(e) = self.events.iter_mut().find(|e| matches(e)) {
            e["seen"] = json!(true);
            return e.clone();
        }
        let found = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let mut value = self.next_message().await;
                let hit = matches(&value);
                if hit {
                    value["seen"] = json!(true);
                }
                self.events.push(value.clone());
                if hit {
                    return value;
                }
            }
        });
        found.await.unwrap_or_else(|_| panic!("no {method} within 20s"))
    }

    /// A new tab, with pages, the runtime, the network and the log reporting events.
    pub async fn tab(&mut self) -> Tab {
        let target = self.call(None, "Target.createTarget", json!({ "url": "about:blank" })).await;
        let attached = self
            .call(None, "Target.attachToTarget", json!({ "targetId": target["targetId"], "flatten": true }))
            .await;
        let session = attached["sessionId"].as_str().expect("sessionId").to_owned();
        for domain in ["Page", "Runtime", "Network", "Log"] {
            self.call(Some(&session), &format!("{domain}.enable"), json!({})).await;
        }
        Tab { session }
    }

    /// Sets the viewport (CSS pixels, scale 1; `mobile` as a phone) and the colour scheme.
    pub async fn emulate(&mut self, tab: &Tab, width: u32, height: u32, mobile: bool, dark: bool) {
        let s = Some(tab.session.as_str());
        let metrics = json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile });
        self.call(s, "Emulation.setDeviceMetricsOverride", metrics).await;
        let scheme = if dark { "dark" } else { "light" };
        let media = json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] });
        self.call(s, "Emulation.setEmulatedMedia", media).await;
    }

    /// Loads `url` and waits for its load event.
    pub async fn navigate(&mut self, tab: &Tab, url: &str) {
        let answer = self.call(Some(&tab.session), "Page.navigate", json!({ "url": url })).await;
        assert!(answer.get("errorText").is_none(), "navigation to {url} failed: {answer}");
        self.wait_event(&tab.session, "Page.loadEventFired").await;
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    pub async fn eval(&mut self, tab: &Tab, expression: &str) -> Value {
        let params = json!({ "expression": expression, "returnByValue": true });
        let out = self.call(Some(&tab.session), "Runtime.evaluate", params).await;
        assert!(out.get("exceptionDetails").is_none(), "`{expression}` threw: {out}");
        out["result"]["value"].clone()
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&mut self, tab: &Tab) -> Vec<u8> {
        let out = self.call(Some(&tab.session), "Page.captureScreenshot", json!({ "format": "png" })).await;
        base64::engine::general_purpose::STANDARD.decode(out["data"].as_str().expect("data")).expect("base64")
    }

    /// Every URL the browser requested, in any tab.
    pub fn requests(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .filter_map(|e| e["params"]["request"]["url"].as_str().map(str::to_owned))
            .collect()
    }

    /// Console errors, uncaught exceptions and error log entries (CSP violations, failed
    /// loads), in any tab.
    pub fn errors(&self) -> Vec<Value> {
        self.events
            .iter()
            .filter(|e| {
                (e["method"] == "Runtime.consoleAPICalled"
                    && matches!(e["params"]["type"].as_str(), Some("error" | "assert")))
                    || e["method"] == "Runtime.exceptionThrown"
                    || (e["method"] == "Log.entryAdded" && e["params"]["entry"]["level"] == "error")
            })
            .cloned()
            .collect()
    }

    /// Closes the browser politely, then waits for it (up to 10 s) before the kill on drop.
    pub async fn close(mut self) {
        let _ = self.ws.send(Message::text(json!({ "id": 0, "method": "Browser.close" }).to_string())).await;
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
