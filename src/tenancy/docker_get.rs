//! One blocking `GET` to dockerd on a fresh upstream connection, for the resolver: an HTTP/1.0
//! request (so the answer is never chunked: the gate's chunked relay re-chunks, it does not
//! decode), the answer read with the gate's own HTTP framing (`crate::http`), and its body kept
//! in memory (up to [`MAX_ANSWER`]: inspect answers are
//! a few KiB).

use std::io::{self, Write};

use crate::http::body::{relay_length, relay_until_eof, RelayError};
use crate::http::head::{read_response, Framing, MAX_HEAD};
use crate::http::inbound::Inbound;
use crate::upstream::Upstream;

/// The largest answer body kept.
pub const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// dockerd's answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// `GET path` (already percent-encoded, starting with `/`).
pub fn get(upstream: &Upstream, path: &str) -> io::Result<Answer> {
    let mut conn = upstream.connect()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n");
    conn.writer.write_all(request.as_bytes())?;
    conn.writer.flush()?;
    let mut inbound = Inbound::new(conn.reader, MAX_HEAD);
    let head = read_response(&mut inbound, "GET")
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{e:?}")))?
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
        RelayError::Source(e) | RelayError::Sink(e) => e,
        RelayError::Malformed(why) => io::Error::new(io::ErrorKind::InvalidData, why),
    })?;
    Ok(Answer {
        status: head.status,
        body: body.0,
    })
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
