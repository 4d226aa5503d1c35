//! The log: env_logger with two renderings of the same records.
//!
//! Audit records (`request`, `session start`, `session end`, `handshake refused`) are log
//! records whose message is the event name and whose fields are structured key-values, so the
//! text format prints `request peer=... status=200` and the JSON format prints
//! `{"msg":"request","peer":"...","status":200}` from one call site.
//!
//! What may appear in the log: peer addresses, certificate subjects and serials, methods, request
//! targets, statuses, byte counts and durations. Never request headers (`X-Registry-Auth` and
//! `X-Registry-Config` carry credentials) and never key material.

use std::io::Write;

use env_logger::fmt::Formatter;
use log::kv::{self, Key, Value, VisitSource};
use log::Record;

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(value: &str) -> Result<LogFormat, String> {
        match value {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("--log-format {other}: expected text or json")),
        }
    }
}

/// Installs the logger: level from `RUST_LOG` (default `info`), lines on stderr.
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match format {
        LogFormat::Text => builder.format(write_text),
        LogFormat::Json => builder.format(write_json),
    };
    builder.init();
}

fn write_text(buf: &mut Formatter, record: &Record<'_>) -> std::io::Result<()> {
    write!(
        buf,
        "{} {:<5} {}",
        buf.timestamp_millis(),
        record.level(),
        record.args()
    )?;
    let mut fields = TextFields(String::new());
    let _ = record.key_values().visit(&mut fields);
    writeln!(buf, "{}", fields.0)
}

fn write_json(buf: &mut Formatter, record: &Record<'_>) -> std::io::Result<()> {
    let mut object = serde_json::Map::new();
    object.insert("ts".into(), buf.timestamp_millis().to_string().into());
    object.insert("level".into(), record.level().as_str().into());
    object.insert("msg".into(), record.args().to_string().into());
    let mut fields = JsonFields(&mut object);
    let _ = record.key_values().visit(&mut fields);
    writeln!(buf, "{}", serde_json::Value::Object(object))
}

/// ` key=value` pairs; values with spaces, quotes or control characters are JSON-quoted, so a
/// line can always be split back into its fields and a request target cannot forge a line.
struct TextFields(String);

impl<'kvs> VisitSource<'kvs> for TextFields {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        let text = value.to_string();
        let plain = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\' && c != '=');
        self.0.push(' ');
        self.0.push_str(key.as_str());
        self.0.push('=');
        if plain {
            self.0.push_str(&text);
        } else {
            self.0
                .push_str(&serde_json::Value::String(text).to_string());
        }
        Ok(())
    }
}

struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        let json = serde_json::to_value(&value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        self.0.insert(key.as_str().to_string(), json);
        Ok(())
    }
}
