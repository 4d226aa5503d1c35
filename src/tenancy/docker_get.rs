//! One blocking `GET` to dockerd on a fresh upstream connection, for the resolver: an HTTP/1.0
//! request (so the answer is never chunked: the gate's chunked relay re-chunks, it does not
//! decode), the answer read with the gate's own HTTP framing (`crate::http`), and its body kept
//! in memory (up to [`MAX_ANSWER`]: inspect answers are
//! a few KiB). Each read waits at most [`READ_TIMEOUT`] where the transport can bound it (unix
//! and tcp; not named pipes), so a dockerd that accepts and never answers costs the client a
//! 502, not a session that hangs forever.

use std::io::{self, Write};
use std::time::Duration;

use crate::http::body::{relay_length, relay_until_eof, RelayError};
use crate::http::head::{read_response, Framing, HeadError, MAX_HEAD};
use crate::http::inbound::Inbound;
use crate::upstream::Upstream;

/// The largest answer body kept.
pub const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// The longest wait for any one read of dockerd's answer. Inspect answers take milliseconds;
/// dockerd can hold one while a container is being killed, so the bound is generous.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// dockerd's answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// `GET path` (already percent-encoded, starting with `/`).
pub fn get(upstream: &Upstream, path: &str) -> io::Result<Answer> {
    get_within(upstream, path, READ_TIMEOUT)
}

fn get_within(upstream: &Upstream, path: &str, timeout: Duration) -> io::Result<Answer> {
    let mut conn = upstream.connect()?;
    match conn.reader.set_read_timeout(Some(timeout)) {
        Err(e) if e.kind() != io::ErrorKind::Unsupported => return Err(e),
        _ => {}
    }
    let request = format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n");
    conn.writer.write_all(request.as_bytes())?;
    conn.writer.flush()?;
    let mut inbound = Inbound::new(conn.reader, MAX_HEAD);
    let head = read_response(&mut inbound, "GET")
        .map_err(|e| match e {
            HeadError::Io(e) => timed_out(e),
            e => io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")),
        })?
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "no answer"))?;
    inbound.consume(head.len);
    let mut body = Capped(Vec::new());
    let mut moved = 0;
    let read = match head.framing {
        Framing::None => Ok(()),
        Framing::Length(n) if n > MAX_ANSWER as u64 => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "answer too large",
            ))
        }
        Framing::Length(n) => relay_length(&mut inbound, &mut body, n, &mut moved),
        Framing::Chunked => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a chunked answer to an HTTP/1.0 request",
            ))
        }
        Framing::UntilClose => relay_until_eof(&mut inbound, &mut body, &mut moved),
    };
    read.map_err(|e| match e {
        RelayError::Source(e) | RelayError::Sink(e) => timed_out(e),
        RelayError::Malformed(why) => io::Error::new(io::ErrorKind::InvalidData, why),
    })?;
    Ok(Answer {
        status: head.status,
        body: body.0,
    })
}

/// A read that hit the timeout says so (the OS says "would block").
fn timed_out(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            io::Error::new(io::ErrorKind::TimedOut, "dockerd did not answer in time")
        }
        _ => e,
    }
}

/// A Vec that refuses to grow past `MAX_ANSWER`.
struct Capped(Vec<u8>);

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0.len() + buf.len() > MAX_ANSWER {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "answer too large",
            ));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// A fake dockerd on a unix socket: unix only.
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn a_dockerd_that_never_answers_is_given_up_on() {
        let dir = std::env::temp_dir().join(format!("dockgate-get-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("silent.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).unwrap();
        // Accepts, reads the request, never answers (keeps the connection open).
        let silent = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_secs(1));
            drop(conn);
        });
        let started = std::time::Instant::now();
        let e = get_within(
            &Upstream::Unix(socket),
            "/containers/x/json",
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(900), "{e}");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e:?}");
        assert_eq!(e.to_string(), "dockerd did not answer in time");
        silent.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
