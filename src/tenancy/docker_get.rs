//! One blocking `GET` to dockerd on a fresh upstream connection, for the resolver: an HTTP/1.0
//! request (so the answer is never chunked: the gate's chunked relay re-chunks, it does not
//! decode), the answer read with the gate's own HTTP framing (`crate::http`), and its body kept
//! in memory (up to [`MAX_ANSWER`]: inspect answers are
//! a few KiB). Each read waits at most [`READ_TIMEOUT`] (unix and tcp bound each read; over a
//! named pipe, which has no read timeout, a [`Watchdog`] aborts the whole exchange once that
//! long has passed), so a dockerd that accepts and never answers costs the client a 502, not a
//! session that hangs forever.

use std::io::{self, Write};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::http::body::{relay_length, relay_until_eof, RelayError};
use crate::http::head::{read_response, Framing, HeadError, MAX_HEAD};
use crate::http::inbound::Inbound;
use crate::upstream::{Upstream, UpstreamRead, UpstreamWrite};

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
    let reads_bounded = match conn.reader.set_read_timeout(Some(timeout)) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::Unsupported => false,
        Err(e) => return Err(e),
    };
    let request = format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n");
    conn.writer.write_all(request.as_bytes())?;
    conn.writer.flush()?;
    let watchdog = if reads_bounded {
        None
    } else {
        Some(Watchdog::arm(conn.writer, timeout)?)
    };
    let answer = read_answer(conn.reader);
    if watchdog.is_some_and(Watchdog::disarm) {
        // Whatever the aborted read returned, the cause is dockerd's silence.
        return Err(timed_out(io::ErrorKind::TimedOut.into()));
    }
    answer
}

/// Reads dockerd's answer to the GET: its head, then a body of at most `MAX_ANSWER` bytes.
fn read_answer(reader: Box<dyn UpstreamRead>) -> io::Result<Answer> {
    let mut inbound = Inbound::new(reader, MAX_HEAD);
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

/// Aborts an upstream connection (waking a blocked read) unless disarmed within a deadline: the
/// read timeout of transports that have none.
pub struct Watchdog {
    disarm: mpsc::Sender<()>,
    thread: thread::JoinHandle<bool>,
}

impl Watchdog {
    /// An error when no thread could be started (the lookup then fails: a 502).
    pub fn arm(mut writer: Box<dyn UpstreamWrite>, deadline: Duration) -> io::Result<Watchdog> {
        let (disarm, disarmed) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("dockgate-watchdog".into())
            .spawn(move || match disarmed.recv_timeout(deadline) {
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    writer.abort();
                    true
                }
                _ => false,
            })?;
        Ok(Watchdog { disarm, thread })
    }

    /// Stops the watchdog; true when it had already fired (the connection was aborted).
    pub fn disarm(self) -> bool {
        let _ = self.disarm.send(());
        self.thread.join().unwrap_or(true)
    }
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

/// The watchdog, with any transport: it wakes a read that nothing else would.
#[cfg(all(test, unix))]
mod watchdog_tests {
    use super::*;
    use crate::upstream::UpstreamConn;
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    #[test]
    fn a_fired_watchdog_wakes_a_blocked_read() {
        let (ours, _silent_dockerd) = UnixStream::pair().unwrap();
        let conn = UpstreamConn::from(ours);
        let watchdog = Watchdog::arm(conn.writer, Duration::from_millis(200)).unwrap();
        // A backstop, so that a watchdog that does not wake the read fails the test instead of
        // hanging it.
        conn.reader
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let started = Instant::now();
        let mut reader = conn.reader;
        let read = reader.read(&mut [0; 16]);
        let woke_after = started.elapsed();
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert!(
            woke_after >= Duration::from_millis(150) && woke_after < Duration::from_secs(2),
            "{woke_after:?}"
        );
        assert!(watchdog.disarm(), "the watchdog says it fired");
    }

    #[test]
    fn a_disarmed_watchdog_leaves_the_connection_alone() {
        let (ours, mut dockerd) = UnixStream::pair().unwrap();
        let conn = UpstreamConn::from(ours);
        let watchdog = Watchdog::arm(conn.writer, Duration::from_millis(100)).unwrap();
        assert!(!watchdog.disarm());
        std::thread::sleep(Duration::from_millis(200));
        std::io::Write::write_all(&mut dockerd, b"x").unwrap();
        let mut reader = conn.reader;
        let mut byte = [0; 1];
        assert_eq!(reader.read(&mut byte).unwrap(), 1);
    }
}

// Named pipes have no read timeout: the watchdog bounds the lookup (run under wine by
// `make test-windows`).
#[cfg(all(test, windows))]
mod pipe_tests {
    use super::*;
    use interprocess::os::windows::named_pipe::{pipe_mode, PipeListenerOptions, PipeMode};
    use std::ffi::OsStr;
    use std::time::Instant;

    #[test]
    fn a_silent_dockerd_on_a_pipe_is_given_up_on() {
        let path = format!(r"\\.\pipe\dockgate-silent-{}", std::process::id());
        let listener = PipeListenerOptions::new()
            .path(OsStr::new(&path))
            .mode(PipeMode::Messages)
            .create_duplex::<pipe_mode::Bytes>()
            .unwrap();
        // Accepts, never answers, keeps the pipe open until the test ends.
        let (accepted, held) = mpsc::channel();
        thread::spawn(move || {
            let conn = listener.accept().unwrap();
            let _ = accepted.send(());
            thread::sleep(Duration::from_secs(5));
            drop(conn);
        });
        let started = Instant::now();
        let e = get_within(
            &Upstream::Npipe(path),
            "/containers/x/json",
            Duration::from_millis(500),
        )
        .unwrap_err();
        assert!(held.recv().is_ok());
        assert!(started.elapsed() < Duration::from_secs(4), "{e}");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e:?}");
    }
}
