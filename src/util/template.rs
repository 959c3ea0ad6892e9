//! Strings with `${...}` substitutions, expanded at every probe.
//!
//! - `${NAME}`: a value captured by an earlier scenario step, else the environment variable.
//! - `${uuid}`, `${now_ms}`, `${target}`: a fresh UUID v4, Unix milliseconds, the target name.
//! - `${file:/path}`: a file's contents (trailing newline trimmed).
//! - `${base64url:NAME}`, `${base64url:file:/path}`: the same, base64url-encoded without
//!   padding (a token carried in a subprotocol, `jwt.${base64url:TOKEN}`).
//! - `$${` writes a literal `${`.
//!
//! Values are read again at every probe, so a rotated token is used without a reload.
//! A file is read without blocking (a FIFO with no data is an error, not a wait) and at
//! most [`MAX_FILE_SIZE`] of it, so a probe's expansion costs a few small reads whatever
//! the path names (`/dev/zero`, a pipe nobody writes to).
//! Environment and file values are secrets: templates display unexpanded, and every value
//! they produced is collected so the probe can redact it from anything it reports.

use std::collections::HashMap;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::{Deserialize, Deserializer};

use super::text::shown;
use super::units::ByteSize;

/// The most a `${file:...}` substitution reads: room for any token or key.
pub(crate) const MAX_FILE_SIZE: ByteSize = ByteSize(64 << 10);

/// Names expanded by wsprobe itself rather than the environment.
pub(crate) const BUILTINS: [&str; 3] = ["uuid", "now_ms", "target"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Plain,
    Base64Url,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Var(String, Encoding),
    File(PathBuf, Encoding),
}

/// A string that may contain `${...}` substitutions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    segments: Vec<Segment>,
}

/// Why a template could not be parsed or expanded. Never contains a substituted value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unterminated `${{` (write `$${{` for a literal `${{`)")]
    Unterminated,
    #[error("invalid variable name `{0}` (use letters, digits and `_`, or `file:/path`)")]
    BadName(String),
    #[error("environment variable `{0}` is not set")]
    MissingEnv(String),
    #[error("cannot read `{path}`: {reason}")]
    File { path: String, reason: String },
    #[error("`{path}` is larger than {MAX_FILE_SIZE}")]
    TooLarge { path: String },
}

/// Values a template can refer to besides the environment: the target and captures.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    pub target: String,
    pub captures: HashMap<String, String>,
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = source;
        while let Some(pos) = rest.find('$') {
            literal.push_str(&rest[..pos]);
            let after = &rest[pos..];
            if let Some(tail) = after.strip_prefix("$${") {
                literal.push_str("${");
                rest = tail;
            } else if let Some(tail) = after.strip_prefix("${") {
                let end = tail.find('}').ok_or(TemplateError::Unterminated)?;
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(parse_reference(&tail[..end])?);
                rest = &tail[end + 1..];
            } else {
                literal.push('$');
                rest = &after[1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Self { source: source.to_owned(), segments })
    }

    /// The text as written in the configuration, with substitutions unexpanded.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether expanding this template substitutes anything.
    pub fn has_substitutions(&self) -> bool {
        self.segments.iter().any(|s| !matches!(s, Segment::Literal(_)))
    }

    /// The variable names this template refers to (not files, not `base64url:` wrappers).
    pub fn variables(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Var(name, _) => Some(name.as_str()),
            _ => None,
        })
    }

    /// Expands with no captures, outside any probe (configuration checks, URLs, headers).
    pub fn expand(&self) -> Result<String, TemplateError> {
        self.expand_with(&Vars::default(), &mut Vec::new())
    }

    /// Expands every substitution now. Values read from the environment or files are
    /// pushed onto `secrets` for redaction.
    pub fn expand_with(&self, vars: &Vars, secrets: &mut Vec<String>) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.source.len());
        for segment in &self.segments {
            let (value, encoding) = match segment {
                Segment::Literal(s) => {
                    out.push_str(s);
                    continue;
                }
                Segment::Var(name, enc) => (lookup(name, vars, secrets)?, *enc),
                Segment::File(path, enc) => {
                    let text = read_file(path)?;
                    let value = text.trim_end_matches(['\r', '\n']).to_owned();
                    remember(secrets, &value);
                    (value, *enc)
                }
            };
            match encoding {
                Encoding::Plain => out.push_str(&value),
                Encoding::Base64Url => {
                    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.as_bytes());
                    remember(secrets, &encoded);
                    out.push_str(&encoded);
                }
            }
        }
        Ok(out)
    }
}

/// Reads a substituted file: at most [`MAX_FILE_SIZE`], never waiting for data.
fn read_file(path: &Path) -> Result<String, TemplateError> {
    let shown_path = || shown(&path.display().to_string());
    let fail = |e: std::io::Error| TemplateError::File { path: shown_path(), reason: e.to_string() };
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    // Opening a FIFO for reading blocks until a writer comes, reading it until data does.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let mut file = options.open(path).map_err(fail)?.take(MAX_FILE_SIZE.0 + 1);
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A pipe whose writer has said all it will for now.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && !bytes.is_empty() => break,
            Err(e) => return Err(fail(e)),
        }
    }
    if bytes.len() as u64 > MAX_FILE_SIZE.0 {
        return Err(TemplateError::TooLarge { path: shown_path() });
    }
    String::from_utf8(bytes)
        .map_err(|_| TemplateError::File { path: shown_path(), reason: "not valid UTF-8 text".to_owned() })
}

fn lookup(name: &str, vars: &Vars, secrets: &mut Vec<String>) -> Result<String, TemplateError> {
    match name {
        "uuid" => return Ok(uuid_v4()),
        "now_ms" => {
            let ms = crate::util::time::since_epoch().as_millis();
            return Ok(ms.to_string());
        }
        "target" => return Ok(vars.target.clone()),
        _ => {}
    }
    if let Some(v) = vars.captures.get(name) {
        return Ok(v.clone());
    }
    let value = std::env::var(name).map_err(|_| TemplateError::MissingEnv(shown(name)))?;
    remember(secrets, &value);
    Ok(value)
}

/// Short values (`1`, `true`) would redact half of every message; only longer ones are secrets.
fn remember(secrets: &mut Vec<String>, value: &str) {
    if value.len() >= 4 && !secrets.iter().any(|s| s == value) {
        secrets.push(value.to_owned());
    }
}

fn uuid_v4() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn parse_reference(name: &str) -> Result<Segment, TemplateError> {
    let (encoding, inner) = match name.strip_prefix("base64url:") {
        Some(inner) => (Encoding::Base64Url, inner),
        None => (Encoding::Plain, name),
    };
    if let Some(path) = inner.strip_prefix("file:") {
        if path.is_empty() {
            return Err(TemplateError::BadName(shown(name)));
        }
        return Ok(Segment::File(PathBuf::from(path), encoding));
    }
    let valid = !inner.is_empty()
        && !inner.starts_with(|c: char| c.is_ascii_digit())
        && inner.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(Segment::Var(inner.to_owned(), encoding))
    } else {
        Err(TemplateError::BadName(shown(name)))
    }
}

/// Replaces every secret in `text` (in any escaped or encoded form, and fragments of one)
/// with `***`; see [`crate::util::redact::Redactor`].
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    crate::util::redact::Redactor::new(secrets).redact(text)
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Template::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_environment_and_literals() {
        std::env::set_var("WSPROBE_TEMPLATE_TEST", "s3cret");
        let t = Template::parse("Bearer ${WSPROBE_TEMPLATE_TEST} $${x} $5").unwrap();
        let mut secrets = Vec::new();
        assert_eq!(t.expand_with(&Vars::default(), &mut secrets).unwrap(), "Bearer s3cret ${x} $5");
        assert_eq!(secrets, ["s3cret"]);
        assert_eq!(t.to_string(), "Bearer ${WSPROBE_TEMPLATE_TEST} $${x} $5");
        assert_eq!(redact("token s3cret!", &secrets), "token ***!");
    }

    #[test]
    fn builtins_captures_and_base64url() {
        std::env::set_var("WSPROBE_TEMPLATE_B64", "a?b>c");
        let vars = Vars { target: "t1".into(), captures: HashMap::from([("run_id".into(), "r-7".into())]) };
        let t = Template::parse("${target}/${run_id}/jwt.${base64url:WSPROBE_TEMPLATE_B64}/${uuid}").unwrap();
        let out = t.expand_with(&vars, &mut Vec::new()).unwrap();
        let parts: Vec<&str> = out.split('/').collect();
        assert_eq!(&parts[..3], ["t1", "r-7", "jwt.YT9iPmM"]);
        assert_eq!(parts[3].len(), 36);
        assert_eq!(&parts[3][14..15], "4");
        assert_eq!(t.variables().collect::<Vec<_>>(), ["target", "run_id", "WSPROBE_TEMPLATE_B64", "uuid"]);
    }

    #[test]
    fn reports_missing_variables_and_bad_syntax() {
        let t = Template::parse("${WSPROBE_SURELY_UNSET_VAR}").unwrap();
        assert_eq!(
            t.expand().unwrap_err().to_string(),
            "environment variable `WSPROBE_SURELY_UNSET_VAR` is not set"
        );
        assert_eq!(Template::parse("${oops").unwrap_err(), TemplateError::Unterminated);
        assert!(matches!(Template::parse("${a-b}"), Err(TemplateError::BadName(_))));
    }

    #[test]
    fn file_reads_are_capped_and_never_wait() {
        let t = |path: &str| Template::parse(&format!("${{file:{path}}}")).unwrap();
        // Before the cap this read until memory ran out.
        assert_eq!(t("/dev/zero").expand().unwrap_err().to_string(), "`/dev/zero` is larger than 64KiB");
        let dir = tempfile::tempdir().unwrap();
        let exact = dir.path().join("exact");
        std::fs::write(&exact, "a".repeat(64 << 10)).unwrap();
        assert_eq!(t(exact.to_str().unwrap()).expand().unwrap().len(), 64 << 10);
        std::fs::write(&exact, "a".repeat((64 << 10) + 1)).unwrap();
        assert!(matches!(t(exact.to_str().unwrap()).expand(), Err(TemplateError::TooLarge { .. })));

        // A FIFO nobody writes to: opening it alone used to block the thread for good.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let started = std::time::Instant::now();
        let fifo_template = t(fifo.to_str().unwrap());
        assert_eq!(fifo_template.expand().unwrap(), "", "no writer: end of file at once");
        // A writer that holds the pipe open and says nothing: an error, not a wait.
        let _writer = std::fs::OpenOptions::new().read(true).write(true).open(&fifo).unwrap();
        let err = fifo_template.expand().unwrap_err();
        assert!(matches!(err, TemplateError::File { .. }), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
    }

    #[test]
    fn reads_files_fresh_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "one1\n").unwrap();
        let t = Template::parse(&format!("${{file:{}}}", path.display())).unwrap();
        assert_eq!(t.expand().unwrap(), "one1");
        std::fs::write(&path, "two2").unwrap();
        assert_eq!(t.expand().unwrap(), "two2");
    }
}
