//! `wsprobe demo --open`: the status page in a browser, where one exists. `$BROWSER`
//! first (a `:`-separated list of commands, `%s` standing for the URL, as other tools
//! read it), then the desktop's opener. Failing to open one is a note, never an error:
//! the demo runs either way.

use std::process::{Command, Stdio};

/// The desktop's own "open this URL" command.
const OPENERS: &[&str] = if cfg!(target_os = "macos") { &["open"] } else { &["xdg-open"] };

/// Starts a browser on `url` and returns the command that was started, or why none was.
/// The browser is not waited for; a thread reaps it when it exits.
pub fn open_browser(url: &str) -> Result<String, String> {
    let from_env = std::env::var("BROWSER").unwrap_or_default();
    let candidates: Vec<String> = from_env
        .split(':')
        .filter(|c| !c.trim().is_empty())
        .map(str::to_owned)
        .chain(OPENERS.iter().map(|o| (*o).to_owned()))
        .collect();
    let mut tried = Vec::new();
    for candidate in candidates {
        let mut words: Vec<String> = candidate.split_whitespace().map(str::to_owned).collect();
        if words.is_empty() {
            continue;
        }
        if words.iter().any(|w| w.contains("%s")) {
            words.iter_mut().for_each(|w| *w = w.replace("%s", url));
        } else {
            words.push(url.to_owned());
        }
        let spawned = Command::new(&words[0])
            .args(&words[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match spawned {
            Ok(mut child) => {
                std::thread::spawn(move || child.wait());
                return Ok(words.join(" "));
            }
            Err(e) => tried.push(format!("{}: {e}", words[0])),
        }
    }
    Err(if tried.is_empty() { "no browser command".to_owned() } else { tried.join("; ") })
}
