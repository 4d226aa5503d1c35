//! HTTP/1.1 framing: enough of HTTP to find where each message ends, never more.
//!
//! - `inbound`: the buffered reader both directions parse from.
//! - `head`: request and response heads, framing rules, raw-stream answers.
//! - `body`: relaying Content-Length, chunked and close-delimited bodies.
//! - `target`: request targets as the audit log shows them (decoded path, redacted query).
//!
//! The gate's own answers (400, 431, 502) are JSON bodies in the shape dockerd uses, so the
//! docker CLI prints their message: `Error response from daemon: dockgate: ...`.

pub mod body;
pub mod head;
pub mod inbound;
pub mod target;

use std::io::{self, Write};

/// Writes a complete error response that closes the connection.
pub fn write_error<W: Write>(dst: &mut W, status: u16, message: &str) -> io::Result<()> {
    write_json_error(dst, status, message, true)
}

/// Writes a complete error response; `closes` adds `Connection: close` (the gate ends the
/// connection after it).
pub fn write_json_error<W: Write>(
    dst: &mut W,
    status: u16,
    message: &str,
    closes: bool,
) -> io::Result<()> {
    let body = format!("{}\n", serde_json::json!({ "message": message }));
    let connection = if closes { "Connection: close\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{connection}\r\n",
        reason_phrase(status),
        body.len()
    );
    let mut response = head.into_bytes();
    response.extend_from_slice(body.as_bytes());
    dst.write_all(&response)
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_responses_carry_a_docker_style_json_message() {
        let mut out = Vec::new();
        super::write_error(&mut out, 502, "dockgate: cannot reach \"Docker\"").unwrap();
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["message"], "dockgate: cannot reach \"Docker\"");
    }
}
