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
//!
//! Every value and message comes from or may contain client input, so both renderings escape
//! what a log reader could take for a line end or what would display misleadingly: control
//! characters (C0, DEL, C1 with U+0085), U+2028/U+2029, and format characters (general category
//! Cf: bidi overrides and isolates, zero-width characters, the BOM...). Each value is cut at
//! `MAX_VALUE_CHARS` characters, so one request target or certificate cannot write kilobytes per
//! line.

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

/// The most characters of one logged value (and of a message); the rest is replaced by a
/// `...[N more bytes]` marker. Request targets are up to 64 KiB and a certificate subject may be
/// as large as a certificate; an audit line needs neither in full.
pub const MAX_VALUE_CHARS: usize = 1024;

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
        "{} {:<5} ",
        humantime::format_rfc3339_millis(now),
        record.level(),
    );
    let message_start = line.len();
    let _ = write!(line, "{}", record.args());
    if needs_rewrite(&line[message_start..]) {
        let message = line.split_off(message_start);
        push_escaped(line, cap(&message).as_ref(), false);
    }
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
    let message = record.args().to_string();
    object.insert("msg".into(), cap(&message).into_owned().into());
    let mut fields = JsonFields(&mut object);
    let _ = record.key_values().visit(&mut fields);
    push_json(line, &serde_json::Value::Object(object));
    line.push('\n');
}

/// Writes `value` as JSON, with strings escaped by `push_escaped` (serde_json leaves U+0085,
/// U+2028 and the format characters as they are).
fn push_json(line: &mut String, value: &serde_json::Value) {
    match value {
        serde_json::Value::String(text) => push_escaped(line, text, true),
        serde_json::Value::Object(object) => {
            line.push('{');
            for (i, (key, value)) in object.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                push_escaped(line, key, true);
                line.push(':');
                push_json(line, value);
            }
            line.push('}');
        }
        serde_json::Value::Array(items) => {
            line.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                push_json(line, item);
            }
            line.push(']');
        }
        other => {
            let _ = write!(line, "{other}");
        }
    }
}

/// `text` cut at `MAX_VALUE_CHARS` characters, with a marker saying how much was left out.
fn cap(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(MAX_VALUE_CHARS) {
        None => text.into(),
        Some((cut, _)) => format!("{}...[{} more bytes]", &text[..cut], text.len() - cut).into(),
    }
}

/// True for the characters no log line may carry as they are (see the module doc).
fn must_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}' || is_format_character(c)
}

/// Unicode general category Cf (format characters), Unicode 15.1.
fn is_format_character(c: char) -> bool {
    const CF: &[(u32, u32)] = &[
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let c = u32::from(c);
    CF.iter().any(|&(first, last)| (first..=last).contains(&c))
}

/// A value or message that cannot be written as it is: too long or holding a character to escape.
fn needs_rewrite(text: &str) -> bool {
    text.len() > MAX_VALUE_CHARS || text.chars().any(must_escape)
}

/// Appends `text` with JSON's escapes for `"`, `\\`, `\n`, `\r`, `\t` and `\uXXXX` (UTF-16, so
/// a pair above U+FFFF) for every other character of `must_escape`; in quotes when `quoted`.
fn push_escaped(line: &mut String, text: &str, quoted: bool) {
    if quoted {
        line.push('"');
    }
    for c in text.chars() {
        match c {
            '"' if quoted => line.push_str("\\\""),
            '\\' if quoted => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if must_escape(c) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(line, "\\u{unit:04x}");
                }
            }
            c => line.push(c),
        }
    }
    if quoted {
        line.push('"');
    }
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
            && text.len() <= MAX_VALUE_CHARS
            && text
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\' && c != '=');
        if !plain {
            let text = line.split_off(value_start);
            push_escaped(line, cap(&text).as_ref(), true);
        }
        Ok(())
    }
}

struct JsonFields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        let json = match serde_json::to_value(&value) {
            Ok(serde_json::Value::String(text)) => cap(&text).into_owned().into(),
            Ok(other) => other,
            Err(_) => cap(&value.to_string()).into_owned().into(),
        };
        self.0.insert(key.as_str().to_string(), json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    /// The line `render` makes of a `request` record with `status=200` and `path`.
    fn line_with(render: fn(&mut String, &Record<'_>, SystemTime), path: &str) -> String {
        let fields = [("status", Value::from(200u16)), ("path", Value::from(path))];
        let record = Record::builder()
            .level(log::Level::Info)
            .args(format_args!("request"))
            .key_values(&fields)
            .build();
        let mut line = String::new();
        let at = UNIX_EPOCH + Duration::from_millis(1_795_960_000_123);
        render(&mut line, &record, at);
        line
    }

    fn text_line(path: &str) -> String {
        line_with(render_text, path)
    }

    fn json_line(path: &str) -> String {
        line_with(render_json, path)
    }

    /// What a reader splitting on every Unicode line break (Python's `splitlines()`, JSON
    /// consumers that choke on U+2028, a terminal applying bidi overrides) would trip over.
    const HOSTILE: [char; 10] = [
        '\u{85}',
        '\u{2028}',
        '\u{2029}',
        '\u{202e}',
        '\u{200b}',
        '\u{200f}',
        '\u{2066}',
        '\u{feff}',
        '\u{1b}',
        '\u{e0041}',
    ];

    #[test]
    fn line_breaks_and_format_characters_are_escaped_in_text_lines() {
        assert_eq!(
            text_line("/x\u{85}2026-11-29T13:46:41.000Z INFO  request path=/forged"),
            "2026-11-29T13:46:40.123Z INFO  request status=200 \
             path=\"/x\\u00852026-11-29T13:46:41.000Z INFO  request path=/forged\"\n"
        );
        assert!(text_line("/a\u{2028}b").ends_with(" path=\"/a\\u2028b\"\n"));
        assert!(text_line("/evil\u{202e}gpj.exe").ends_with(" path=\"/evil\\u202egpj.exe\"\n"));
        // Above U+FFFF: a UTF-16 pair, as JSON writes it.
        assert!(text_line("/\u{e0041}").ends_with(" path=\"/\\udb40\\udc41\"\n"));
        for c in HOSTILE {
            let line = text_line(&format!("/a{c}b"));
            assert!(!line.contains(c), "{c:?} kept in {line:?}");
            assert_eq!(line.lines().count(), 1, "{line:?}");
        }
        // Ordinary non-ASCII text stays readable.
        assert!(text_line("/caf\u{e9}").ends_with(" path=\"/caf\u{e9}\"\n"));
    }

    #[test]
    fn line_breaks_and_format_characters_are_escaped_in_json_lines() {
        for c in HOSTILE {
            let line = json_line(&format!("/a{c}b"));
            assert!(!line.contains(c), "{c:?} kept in {line:?}");
            assert_eq!(line.matches('\n').count(), 1, "{line:?}");
            let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(parsed["path"], format!("/a{c}b"), "{line}");
            assert_eq!(parsed["status"], 200, "{line}");
        }
        assert!(json_line("/a\u{2028}b").contains(r#""path":"/a\u2028b""#));
    }

    #[test]
    fn long_values_are_capped_in_both_formats() {
        let long = format!("/{}", "a".repeat(50_000));
        let text = text_line(&long);
        assert!(text.len() < MAX_VALUE_CHARS + 200, "{} bytes", text.len());
        assert!(text.ends_with("...[48977 more bytes]\"\n"), "{text:.80}");
        let json = json_line(&long);
        assert!(json.len() < MAX_VALUE_CHARS + 200, "{} bytes", json.len());
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert!(parsed["path"]
            .as_str()
            .unwrap()
            .ends_with("...[48977 more bytes]"));
        // Characters, not bytes: a cut never splits one.
        let wide = "\u{e9}".repeat(MAX_VALUE_CHARS + 1);
        assert!(text_line(&wide).contains("...[2 more bytes]"));
    }

    #[test]
    fn messages_are_escaped_too() {
        let record = Record::builder()
            .level(log::Level::Warn)
            .args(format_args!("peer=x: POST /a\u{2028}b\nforged: bad"))
            .build();
        let mut line = String::new();
        render_text(&mut line, &record, UNIX_EPOCH);
        assert_eq!(
            line,
            "1970-01-01T00:00:00.000Z WARN  peer=x: POST /a\\u2028b\\nforged: bad\n"
        );
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
