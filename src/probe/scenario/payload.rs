//! What a `send` step (or a `respond` rule) sends: text, JSON or binary.
//!
//! Text and every string inside JSON are templates, expanded at send time, so a request
//! can carry `${uuid}`, a captured `${run_id}` or a token from the environment.

use base64::Engine as _;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use crate::util::template::{Template, TemplateError, Vars};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPayload {
    /// A text frame.
    pub text: Option<Template>,
    /// A YAML mapping (or any value) sent as a JSON text frame.
    pub json: Option<serde_norway::Value>,
    /// A binary frame, base64-encoded in the configuration.
    pub binary: Option<String>,
}

/// JSON whose strings are templates.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    Literal(serde_json::Value),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Text(Template),
    Json(JsonTemplate),
    Binary(Vec<u8>),
}

impl Payload {
    /// Compiles a payload; the error completes "`<field>`: ...".
    pub fn compile(raw: &RawPayload) -> Result<Self, String> {
        let given = [raw.text.is_some(), raw.json.is_some(), raw.binary.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err("give exactly one of `text`, `json`, `binary`".into());
        }
        if let Some(t) = &raw.text {
            return Ok(Payload::Text(t.clone()));
        }
        if let Some(b) = &raw.binary {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|e| format!("binary: not valid base64 ({e})"))?;
            return Ok(Payload::Binary(bytes));
        }
        let value =
            raw.json.as_ref().map(serde_json::to_value).transpose().map_err(|e| format!("json: {e}"))?;
        let value = value.unwrap_or_default();
        Ok(Payload::Json(JsonTemplate::compile(&value).map_err(|e| format!("json: {e}"))?))
    }

    /// Every template in the payload, for checking the variables they use.
    pub fn templates(&self) -> Vec<&Template> {
        let mut out = Vec::new();
        match self {
            Payload::Text(t) => out.push(t),
            Payload::Json(j) => j.collect(&mut out),
            Payload::Binary(_) => {}
        }
        out
    }

    /// Builds the frame to send, expanding templates now.
    pub fn render(&self, vars: &Vars, secrets: &mut Vec<String>) -> Result<Message, TemplateError> {
        Ok(match self {
            Payload::Text(t) => Message::text(t.expand_with(vars, secrets)?),
            Payload::Json(j) => Message::text(j.render(vars, secrets)?.to_string()),
            Payload::Binary(b) => Message::binary(b.clone()),
        })
    }
}

impl JsonTemplate {
    fn compile(v: &serde_json::Value) -> Result<Self, TemplateError> {
        use serde_json::Value;
        Ok(match v {
            Value::String(s) => {
                let t = Template::parse(s)?;
                if t.has_substitutions() {
                    JsonTemplate::String(t)
                } else {
                    JsonTemplate::Literal(v.clone())
                }
            }
            Value::Array(items) => {
                JsonTemplate::Array(items.iter().map(Self::compile).collect::<Result<_, _>>()?)
            }
            Value::Object(map) => JsonTemplate::Object(
                map.iter().map(|(k, v)| Ok((k.clone(), Self::compile(v)?))).collect::<Result<_, _>>()?,
            ),
            other => JsonTemplate::Literal(other.clone()),
        })
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a Template>) {
        match self {
            JsonTemplate::Literal(_) => {}
            JsonTemplate::String(t) => out.push(t),
            JsonTemplate::Array(items) => items.iter().for_each(|i| i.collect(out)),
            JsonTemplate::Object(fields) => fields.iter().for_each(|(_, v)| v.collect(out)),
        }
    }

    fn render(&self, vars: &Vars, secrets: &mut Vec<String>) -> Result<serde_json::Value, TemplateError> {
        use serde_json::Value;
        Ok(match self {
            JsonTemplate::Literal(v) => v.clone(),
            JsonTemplate::String(t) => Value::String(t.expand_with(vars, secrets)?),
            JsonTemplate::Array(items) => {
                Value::Array(items.iter().map(|i| i.render(vars, secrets)).collect::<Result<_, _>>()?)
            }
            JsonTemplate::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.render(vars, secrets)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_payload_expands_strings_only() {
        let raw: RawPayload = serde_norway::from_str(
            "json: { type: execute_agent, n: 3, who: '${target}', list: [a, '${target}'] }",
        )
        .unwrap();
        let p = Payload::compile(&raw).unwrap();
        let vars = Vars { target: "t1".into(), ..Vars::default() };
        let msg = p.render(&vars, &mut Vec::new()).unwrap();
        let v: serde_json::Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"type": "execute_agent", "n": 3, "who": "t1", "list": ["a", "t1"]}));
    }

    #[test]
    fn exactly_one_kind() {
        let raw: RawPayload = serde_norway::from_str("{ text: a, binary: YQ== }").unwrap();
        assert!(Payload::compile(&raw).unwrap_err().contains("exactly one"));
        let raw: RawPayload = serde_norway::from_str("{ binary: '!!' }").unwrap();
        assert!(Payload::compile(&raw).unwrap_err().contains("base64"));
    }
}
