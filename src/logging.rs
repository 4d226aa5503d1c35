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

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::sync::RwLock;
use std::time::SystemTime;

use log::kv::{self, Key, Value, VisitSource};
use log::{Log, Metadata, Record};

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

/// Installs the logger: level from `RUST_LOG` (default `info`, env_logger's syntax and
/// filtering), lines on stderr.
pub fn init(format: LogFormat) {
    let filter =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).build();
    let max_level = filter.filter();
    let logger = Logger {
        filter,
        format,
        out: Output::stderr(),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max_level);
    }
}

/// env_logger decides which records are logged; rendering and writing are done here, because
/// env_logger writes every line under one process-wide lock. With a line per request from
/// every connection thread, that lock was contended on every request (most of the gate's
/// futex calls under keep-alive load) and cost ~15 % of its CPU per request.
struct Logger {
    filter: env_logger::Logger,
    format: LogFormat,
    out: Output,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        let mut line = String::with_capacity(256);
        match self.format {
            LogFormat::Text => render_text(&mut line, record, SystemTime::now()),
            LogFormat::Json => render_json(&mut line, record, SystemTime::now()),
        }
        self.out.write_line(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Where lines go. Each line leaves in one `write` on a handle of its own, which the kernel
/// keeps whole for files and for pipes up to `ATOMIC_LINE` bytes; only longer lines (a huge
/// request target) exclude the others while they are written. A terminal gets the standard,
/// locked stderr, which also converts for the Windows console.
enum Output {
    Handle { file: File, long_lines: RwLock<()> },
    Std,
}

/// POSIX guarantees that a pipe write of up to `PIPE_BUF` (4096 on Linux) bytes is not
/// interleaved with other writes.
const ATOMIC_LINE: usize = 4096;

impl Output {
    fn stderr() -> Output {
        let stderr = io::stderr();
        if stderr.is_terminal() {
            return Output::Std;
        }
        match own_handle(&stderr) {
            Ok(file) => Output::Handle {
                file,
                long_lines: RwLock::new(()),
            },
            Err(_) => Output::Std,
        }
    }

    /// Errors are dropped: there is nowhere left to report them.
    fn write_line(&self, line: &[u8]) {
        match self {
            Output::Handle { file, long_lines } => {
                let mut file = file;
                if line.len() <= ATOMIC_LINE {
                    let _shared = long_lines.read();
                    let _ = file.write_all(line);
                } else {
                    let _exclusive = long_lines.write();
                    let _ = file.write_all(line);
                }
            }
            Output::Std => {
                let _ = io::stderr().lock().write_all(line);
            }
        }
    }
}

#[cfg(unix)]
fn own_handle(stderr: &io::Stderr) -> io::Result<File> {
    use std::os::fd::AsFd;
    Ok(File::from(stderr.as_fd().try_clone_to_owned()?))
}

#[cfg(windows)]
fn own_handle(stderr: &io::Stderr) -> io::Result<File> {
    use std::os::windows::io::AsHandle;
    Ok(File::from(stderr.as_handle().try_clone_to_owned()?))
}

/// `2026-11-29T13:51:00.123Z INFO  request peer=... status=200`
fn render_text(line: &mut String, record: &Record<'_>, now: SystemTime) {
    let _ = write!(
        line,
        "{} {:<5} {}",
        humantime::format_rfc3339_millis(now),
        record.level(),
        record.args()
    );
    let _ = record.key_values().visit(&mut TextFields(line));
    line.push('\n');
}

/// `{"ts":"2026-11-29T13:51:00.123Z","level":"INFO","msg":"request","peer":"...",...}`
fn render_json(line: &mut String, record: &Record<'_>, now: SystemTime) {
    let mut object = serde_json::Map::new();
    object.insert(
        "ts".into(),
        humantime::format_rfc3339_millis(now).to_string().into(),
    );
    object.insert("level".into(), record.level().as_str().into());
    object.insert("msg".into(), record.args().to_string().into());
    let mut fields = JsonFields(&mut object);
    let _ = record.key_values().visit(&mut fields);
    let _ = writeln!(line, "{}", serde_json::Value::Object(object));
}

/// ` key=value` pairs; values with spaces, quotes or control characters are JSON-quoted, so a
/// line can always be split back into its fields and a request target cannot forge a line.
/// Values are rendered straight into the line (no string per field).
struct TextFields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for TextFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        let line = &mut *self.0;
        line.push(' ');
        line.push_str(key.as_str());
        line.push('=');
        let value_start = line.len();
        let _ = write!(line, "{value}");
        let text = &line[value_start..];
        let plain = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\' && c != '=');
        if !plain {
            let quoted = serde_json::Value::String(text.to_string()).to_string();
            line.truncate(value_start);
            line.push_str(&quoted);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn text_line(path: &str) -> String {
        let fields = [("status", Value::from(200u16)), ("path", Value::from(path))];
        let record = Record::builder()
            .level(log::Level::Info)
            .args(format_args!("request"))
            .key_values(&fields)
            .build();
        let mut line = String::new();
        let at = UNIX_EPOCH + Duration::from_millis(1_795_960_000_123);
        render_text(&mut line, &record, at);
        line
    }

    #[test]
    fn text_lines_keep_plain_values_bare_and_quote_the_rest() {
        assert_eq!(
            text_line("/_ping"),
            "2026-11-29T13:46:40.123Z INFO  request status=200 path=/_ping\n"
        );
        // A target cannot forge a field or a second line.
        assert_eq!(
            text_line("/x status=500\nfake"),
            "2026-11-29T13:46:40.123Z INFO  request status=200 path=\"/x status=500\\nfake\"\n"
        );
        assert!(text_line("").ends_with(" path=\"\"\n"));
    }
}
