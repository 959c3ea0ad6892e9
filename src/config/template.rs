//! Strings with `${...}` substitutions, expanded at every probe.
//!
//! `${NAME}` reads an environment variable and `${file:/path}` reads a file (trailing
//! newline trimmed), so a rotated token is picked up by the next probe without a reload.
//! `$${` writes a literal `${`. A template is checked when the configuration loads (every
//! variable set, every file readable) and expanded again before each probe. Templates are
//! displayed unexpanded: substituted values are secrets and never appear in logs, metrics,
//! the API or error messages.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Env(String),
    File(PathBuf),
}

/// A string that may contain `${VAR}` and `${file:/path}` substitutions.
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
                let name = &tail[..end];
                if !literal.is_empty() {
                    segments.push(Segment::Literal(std::mem::take(&mut literal)));
                }
                segments.push(parse_reference(name)?);
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

    /// Whether expanding this template substitutes anything (and so may produce a secret).
    pub fn has_substitutions(&self) -> bool {
        self.segments.iter().any(|s| !matches!(s, Segment::Literal(_)))
    }

    /// Expands every substitution from the environment and the file system, now.
    pub fn expand(&self) -> Result<String, TemplateError> {
        let mut out = String::with_capacity(self.source.len());
        for segment in &self.segments {
            match segment {
                Segment::Literal(s) => out.push_str(s),
                Segment::Env(name) => match std::env::var(name) {
                    Ok(v) => out.push_str(&v),
                    Err(_) => return Err(TemplateError::MissingEnv(name.clone())),
                },
                Segment::File(path) => {
                    let text = std::fs::read_to_string(path).map_err(|e| TemplateError::File {
                        path: path.display().to_string(),
                        reason: e.to_string(),
                    })?;
                    out.push_str(text.trim_end_matches(['\r', '\n']));
                }
            }
        }
        Ok(out)
    }
}

fn parse_reference(name: &str) -> Result<Segment, TemplateError> {
    if let Some(path) = name.strip_prefix("file:") {
        if path.is_empty() {
            return Err(TemplateError::BadName(name.to_owned()));
        }
        return Ok(Segment::File(PathBuf::from(path)));
    }
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(Segment::Env(name.to_owned()))
    } else {
        Err(TemplateError::BadName(name.to_owned()))
    }
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
        assert_eq!(t.expand().unwrap(), "Bearer s3cret ${x} $5");
        assert!(t.has_substitutions());
        assert_eq!(t.to_string(), "Bearer ${WSPROBE_TEMPLATE_TEST} $${x} $5");
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
    fn reads_files_fresh_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "one\n").unwrap();
        let t = Template::parse(&format!("${{file:{}}}", path.display())).unwrap();
        assert_eq!(t.expand().unwrap(), "one");
        std::fs::write(&path, "two").unwrap();
        assert_eq!(t.expand().unwrap(), "two");
    }
}
