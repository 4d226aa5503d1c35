//! Relaying message bodies as they arrive: every read is written on at once, so streams such as
//! `logs -f`, `/events` and `/containers/{id}/wait` reach the client without delay, and a body of
//! any size passes through a bounded buffer.
//!
//! Chunked bodies are re-chunked: each piece that arrives becomes one chunk on the other side,
//! written with its size line and CRLF in a single write. The output is therefore always
//! well-formed, whatever chunk sizes or extensions the sender used.
//!
//! Each relay adds the payload bytes it has written on to a `moved` counter as it goes, so when
//! a transfer is cut the caller still knows (and logs) how much went through.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a relay adds the payload bytes it has written: a plain count, or one another thread
/// reads while the body still flows (the request side's upload, logged by the response side).
pub trait Tally {
    fn add(&mut self, n: u64);
}

impl Tally for u64 {
    fn add(&mut self, n: u64) {
        *self += n;
    }
}

impl Tally for &AtomicU64 {
    fn add(&mut self, n: u64) {
        self.fetch_add(n, Ordering::Relaxed);
    }
}

use super::inbound::{Inbound, LineTooLong};

/// Chunk-size lines and trailer lines longer than this are refused.
const MAX_LINE: usize = 4096;
/// All trailer lines of one chunked body together.
const MAX_TRAILERS: usize = 16 * 1024;

/// Which side failed, so the caller knows whom to blame and what is still usable.
#[derive(Debug)]
pub enum RelayError {
    /// Reading the source failed, or it ended early.
    Source(io::Error),
    /// Writing to the destination failed.
    Sink(io::Error),
    /// The source sent bytes that are not valid chunked encoding.
    Malformed(&'static str),
}

impl std::fmt::Display for RelayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayError::Source(e) => write!(f, "reading: {e}"),
            RelayError::Sink(e) => write!(f, "writing: {e}"),
            RelayError::Malformed(why) => write!(f, "malformed chunked body: {why}"),
        }
    }
}

fn ended_early() -> RelayError {
    RelayError::Source(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "connection closed in the middle of a body",
    ))
}

/// Waits for body bytes and returns how many of those buffered belong to the `remaining` rest
/// of the body (whatever arrived, never more than is left).
fn next_piece<R: Read>(src: &mut Inbound<R>, remaining: u64) -> Result<usize, RelayError> {
    let available = src.fill().map_err(RelayError::Source)?.len();
    if available == 0 {
        return Err(ended_early());
    }
    Ok(available.min(usize::try_from(remaining).unwrap_or(usize::MAX)))
}

/// The payload of a chunked body as `relay_chunked` writes it (one chunk per piece, no chunk
/// extensions), without its framing. `None` when `chunked` is not such a body.
pub fn dechunk(chunked: &[u8]) -> Option<Vec<u8>> {
    let mut payload = Vec::with_capacity(chunked.len());
    let mut rest = chunked;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).ok()?, 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(payload);
        }
        payload.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

/// Relays exactly `length` bytes, adding them to `moved` as they are written.
pub fn relay_length<R: Read, W: Write + ?Sized>(
    src: &mut Inbound<R>,
    dst: &mut W,
    length: u64,
    moved: &mut impl Tally,
) -> Result<(), RelayError> {
    let mut remaining = length;
    while remaining > 0 {
        let n = next_piece(src, remaining)?;
        dst.write_all(&src.buffered()[..n])
            .map_err(RelayError::Sink)?;
        src.consume(n);
        remaining -= n as u64;
        moved.add(n as u64);
    }
    Ok(())
}

/// Relays everything until the source ends, adding the bytes to `moved` as they are written.
pub fn relay_until_eof<R: Read, W: Write + ?Sized>(
    src: &mut Inbound<R>,
    dst: &mut W,
    moved: &mut impl Tally,
) -> Result<(), RelayError> {
    loop {
        let available = src.fill().map_err(RelayError::Source)?;
        if available.is_empty() {
            return Ok(());
        }
        let n = available.len();
        dst.write_all(available).map_err(RelayError::Sink)?;
        src.consume(n);
        moved.add(n as u64);
    }
}

/// Relays a chunked body up to and including its trailers, adding the payload bytes (not the
/// framing) to `moved` as they are written.
pub fn relay_chunked<R: Read, W: Write + ?Sized>(
    src: &mut Inbound<R>,
    dst: &mut W,
    moved: &mut impl Tally,
) -> Result<(), RelayError> {
    let mut out = Vec::new();
    loop {
        let size = read_chunk_size(src)?;
        if size == 0 {
            return finish_chunked(src, dst, &mut out);
        }
        let mut remaining = size;
        while remaining > 0 {
            let n = next_piece(src, remaining)?;
            out.clear();
            write!(out, "{n:x}\r\n").expect("writing to a Vec");
            out.extend_from_slice(&src.buffered()[..n]);
            out.extend_from_slice(b"\r\n");
            src.consume(n);
            dst.write_all(&out).map_err(RelayError::Sink)?;
            remaining -= n as u64;
            moved.add(n as u64);
        }
        match read_framing_line(src, "chunk data longer than its size")? {
            Some(line) if line.is_empty() => {}
            Some(_) => return Err(RelayError::Malformed("chunk data longer than its size")),
            None => return Err(ended_early()),
        }
    }
}

/// One line of the chunked framing (a size line, the end of a chunk, a trailer). A line over
/// `MAX_LINE` is the sender's malformed framing (`too_long` says which), not a failed read.
fn read_framing_line<R: Read>(
    src: &mut Inbound<R>,
    too_long: &'static str,
) -> Result<Option<Vec<u8>>, RelayError> {
    src.read_line(MAX_LINE).map_err(|e| {
        if LineTooLong::is(&e) {
            RelayError::Malformed(too_long)
        } else {
            RelayError::Source(e)
        }
    })
}

/// Parses `1a2b[;extensions]`.
fn read_chunk_size<R: Read>(src: &mut Inbound<R>) -> Result<u64, RelayError> {
    let line = read_framing_line(src, "chunk size line too long")?.ok_or_else(ended_early)?;
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits)
        .map_err(|_| RelayError::Malformed("chunk size is not text"))?
        .trim_matches([' ', '\t']);
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RelayError::Malformed("invalid chunk size"));
    }
    u64::from_str_radix(digits, 16).map_err(|_| RelayError::Malformed("invalid chunk size"))
}

/// Copies the trailer section and writes the last chunk.
fn finish_chunked<R: Read, W: Write + ?Sized>(
    src: &mut Inbound<R>,
    dst: &mut W,
    out: &mut Vec<u8>,
) -> Result<(), RelayError> {
    out.clear();
    out.extend_from_slice(b"0\r\n");
    loop {
        let line = read_framing_line(src, "trailer line too long")?.ok_or_else(ended_early)?;
        if line.is_empty() {
            break;
        }
        if out.len() + line.len() > MAX_TRAILERS {
            return Err(RelayError::Malformed("trailers too large"));
        }
        out.extend_from_slice(&line);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    dst.write_all(out).map_err(RelayError::Sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunk_takes_the_payload_out_of_a_relayed_chunked_body() {
        let mut src = Inbound::new(&b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n"[..], 64);
        let mut relayed = Vec::new();
        relay_chunked(&mut src, &mut relayed, &mut 0u64).unwrap();
        assert_eq!(dechunk(&relayed).unwrap(), b"abcde");
        assert!(dechunk(b"zz\r\n").is_none());
    }

    fn rechunk(input: &[u8]) -> Result<(Vec<u8>, u64), RelayError> {
        let mut src = Inbound::new(input, 1024);
        let mut out = Vec::new();
        let mut moved = 0;
        relay_chunked(&mut src, &mut out, &mut moved).map(|()| (out, moved))
    }

    #[test]
    fn chunked_bodies_are_reframed_with_trailers_kept() {
        let (out, n) =
            rechunk(b"5;name=x\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT").unwrap();
        assert_eq!(n, 11);
        assert_eq!(out, b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n");
    }

    #[test]
    fn broken_chunked_bodies_are_refused() {
        assert!(matches!(rechunk(b"zz\r\n"), Err(RelayError::Malformed(_))));
        assert!(matches!(
            rechunk(b"2\r\nabc\r\n0\r\n\r\n"),
            Err(RelayError::Malformed(_))
        ));
        assert!(matches!(rechunk(b"5\r\nab"), Err(RelayError::Source(_))));
        assert!(matches!(
            rechunk(b"11111111111111111\r\n"),
            Err(RelayError::Malformed(_))
        ));
        // Lines over MAX_LINE are malformed framing too, not a failed read.
        let long_size = [b"1".repeat(MAX_LINE + 10), b"\r\n".to_vec()].concat();
        assert!(matches!(
            rechunk(&long_size),
            Err(RelayError::Malformed("chunk size line too long"))
        ));
        let long_trailer = [b"0\r\nX: ".to_vec(), b"a".repeat(MAX_LINE + 10)].concat();
        assert!(matches!(
            rechunk(&long_trailer),
            Err(RelayError::Malformed("trailer line too long"))
        ));
    }

    #[test]
    fn length_bodies_stop_at_the_length() {
        let mut src = Inbound::new(&b"abcdefNEXT"[..], 1024);
        let mut out = Vec::new();
        let mut moved = 0;
        relay_length(&mut src, &mut out, 6, &mut moved).unwrap();
        assert_eq!((out.as_slice(), moved), (&b"abcdef"[..], 6));
        assert_eq!(src.buffered(), b"NEXT");
    }

    #[test]
    fn a_cut_body_still_counts_what_went_through() {
        let mut short = Inbound::new(&b"abc"[..], 1024);
        let mut moved = 0;
        assert!(matches!(
            relay_length(&mut short, &mut Vec::new(), 6, &mut moved),
            Err(RelayError::Source(_))
        ));
        assert_eq!(moved, 3);
        let mut cut = Inbound::new(&b"5\r\nhello\r\n6\r\n wo"[..], 1024);
        let mut moved = 0;
        assert!(relay_chunked(&mut cut, &mut Vec::new(), &mut moved).is_err());
        assert_eq!(moved, 8);
        // A destination that fails: what it took before failing is counted, no more.
        let mut dst = [0u8; 4];
        let mut dst = &mut dst[..];
        let mut src = Inbound::new(&b"abcdef"[..], 2);
        let mut moved = 0;
        assert!(matches!(
            relay_until_eof(&mut src, &mut dst, &mut moved),
            Err(RelayError::Sink(_))
        ));
        assert_eq!(moved, 4);
    }
}
