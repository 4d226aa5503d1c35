//! A buffered reader that can hold a whole message head while it is parsed, then hands out body
//! bytes without copying them twice.
//!
//! It starts small and grows (up to the head limit) only when a head or a burst of data needs
//! it, and goes back to its small size when a burst is over, so a thousand idle connections do
//! not each pin 64 KiB.

use std::fmt;
use std::io::{self, Read};

/// The size a buffer starts at and returns to. Docker clients' request heads and dockerd's
/// heads for `/_ping`, `101 UPGRADED` and small JSON answers fit; a larger head grows the buffer
/// by doubling, a body or stream that fills a read grows it to its maximum at once. Every
/// session holds two of these (one per direction) for as long as it is open, idle hijacked
/// sessions included.
const SMALL_CAPACITY: usize = 1024;

/// The error inside the `io::Error` that `read_line` returns for a line over its limit: the
/// peer's framing is wrong, which callers answer differently from a failed read (a TLS error
/// also comes as `InvalidData`, so the kind alone cannot tell them apart).
#[derive(Debug)]
pub struct LineTooLong;

impl LineTooLong {
    /// True when `e` is the over-long-line error of `read_line`.
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<LineTooLong>())
    }

    fn error() -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, LineTooLong)
    }
}

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("line too long")
    }
}

impl std::error::Error for LineTooLong {}

pub struct Inbound<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: usize,
}

impl<R: Read> Inbound<R> {
    /// `max` bounds the buffer: the largest read, and the largest head that fits (heads are
    /// further limited to `MAX_HEAD` when parsed).
    pub fn new(inner: R, max: usize) -> Self {
        Inbound {
            inner,
            buf: vec![0; SMALL_CAPACITY.min(max)],
            start: 0,
            end: 0,
            max,
        }
    }

    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.end - self.start);
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads once more from the source, keeping what is buffered. Returns the number of new
    /// bytes (0 at end of stream) or `None` when the buffer is full at its maximum.
    pub fn read_more(&mut self) -> io::Result<Option<usize>> {
        if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < self.max {
                let grown = (self.buf.len() * 2).min(self.max);
                self.buf.resize(grown, 0);
            } else {
                return Ok(None);
            }
        }
        let n = read_retrying(&mut self.inner, &mut self.buf[self.end..])?;
        self.end += n;
        self.shrink_after_burst();
        Ok(Some(n))
    }

    /// Returns buffered bytes, reading once from the source if none are buffered. An empty
    /// slice means end of stream. Body relays call this so that every read is forwarded at
    /// once: nothing waits for a buffer to fill.
    pub fn fill(&mut self) -> io::Result<&[u8]> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            let n = read_retrying(&mut self.inner, &mut self.buf)?;
            self.end = n;
            if n == self.buf.len() && n < self.max {
                // A full read suggests a bulk transfer: read as much as allowed from now on.
                // (Doubling instead made every burst start with a run of small writes, and
                // a burst whose tail came as a small read start over again.)
                self.buf.resize(self.max, 0);
            } else {
                self.shrink_after_burst();
            }
        }
        Ok(self.buffered())
    }

    /// After a read that did not fill the buffer and left no more than the small size in it: the
    /// burst that grew the buffer is over (a session typing, a small answer, or silence), so the
    /// grown buffer is given back instead of staying pinned while the connection sleeps in its
    /// next read. A bulk transfer fills its reads and keeps its large buffer.
    fn shrink_after_burst(&mut self) {
        let held = self.end - self.start;
        if self.buf.len() > SMALL_CAPACITY && held <= SMALL_CAPACITY && self.end < self.buf.len() {
            let mut small = vec![0; SMALL_CAPACITY];
            small[..held].copy_from_slice(&self.buf[self.start..self.end]);
            self.buf = small;
            self.start = 0;
            self.end = held;
        }
    }

    /// Reads one line ending in LF (CRLF or bare LF) of at most `limit` bytes, without the line
    /// ending. `Ok(None)` at end of stream before any byte of the line; a longer line is a
    /// [`LineTooLong`] error.
    pub fn read_line(&mut self, limit: usize) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(pos) = self.buffered().iter().position(|&b| b == b'\n') {
                let mut line = self.buffered()[..pos].to_vec();
                self.consume(pos + 1);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                // The limit holds however the line arrived (in one read or several).
                if line.len() > limit {
                    return Err(LineTooLong::error());
                }
                return Ok(Some(line));
            }
            // `limit` bytes and a CR may still be waiting for their LF.
            if self.buffered().len() > limit + 1 {
                return Err(LineTooLong::error());
            }
            match self.read_more()? {
                Some(0) if self.buffered().is_empty() => return Ok(None),
                Some(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "stream ended inside a line",
                    ))
                }
                Some(_) => {}
                None => return Err(LineTooLong::error()),
            }
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// Reading through the buffer: buffered bytes first, then the source.
impl<R: Read> Read for Inbound<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

fn read_retrying<R: Read>(inner: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match inner.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_accept_crlf_and_lf_and_report_eof() {
        let mut inbound = Inbound::new(&b"1a;ext=1\r\n\nlast"[..], 64);
        assert_eq!(inbound.read_line(16).unwrap().unwrap(), b"1a;ext=1");
        assert_eq!(inbound.read_line(16).unwrap().unwrap(), b"");
        assert!(
            inbound.read_line(16).is_err(),
            "a line cut by EOF is an error"
        );
        let mut empty = Inbound::new(&b""[..], 64);
        assert!(empty.read_line(16).unwrap().is_none());
        let mut long = Inbound::new(&b"0123456789abcdefXYZ\r\n"[..], 64);
        assert!(LineTooLong::is(&long.read_line(16).unwrap_err()));
        let mut longer_than_the_buffer = Inbound::new(&[b'x'; 100][..], 64);
        assert!(LineTooLong::is(
            &longer_than_the_buffer.read_line(16).unwrap_err()
        ));
        let mut at_the_limit = Inbound::new(&b"0123456789abcdef\r\n"[..], 64);
        assert_eq!(at_the_limit.read_line(16).unwrap().unwrap().len(), 16);
        let mut cut = Inbound::new(&b"12"[..], 64);
        assert!(!LineTooLong::is(&cut.read_line(16).unwrap_err()));
    }

    #[test]
    fn buffer_grows_to_its_maximum_and_no_further() {
        let data = vec![b'x'; 100_000];
        let mut inbound = Inbound::new(&data[..], 20_000);
        let mut total = 0;
        while let Some(n) = inbound.read_more().unwrap() {
            assert!(n > 0);
            total += n;
        }
        assert_eq!(total, 20_000);
        assert_eq!(inbound.buffered().len(), 20_000);
    }

    /// Gives out at most the next length of `reads` per call, like a socket.
    struct Bursts {
        reads: Vec<usize>,
        next: usize,
    }

    impl Read for Bursts {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let Some(&want) = self.reads.get(self.next) else {
                return Ok(0);
            };
            self.next += 1;
            let n = want.min(out.len());
            out[..n].fill(b'x');
            Ok(n)
        }
    }

    #[test]
    fn buffer_grows_for_a_burst_and_shrinks_after_it() {
        let reads = vec![usize::MAX, usize::MAX, 30_000, usize::MAX, 10];
        let mut inbound = Inbound::new(Bursts { reads, next: 0 }, 64 * 1024);
        let mut sizes = Vec::new();
        let mut total = 0;
        loop {
            let n = inbound.fill().unwrap().len();
            if n == 0 {
                break;
            }
            total += n;
            inbound.consume(n);
            sizes.push(inbound.buf.len());
        }
        assert_eq!(total, 1024 + 65536 + 30_000 + 65536 + 10);
        assert_eq!(
            sizes,
            [65536, 65536, 65536, 65536, SMALL_CAPACITY],
            "a full read grows the buffer to its maximum at once; a read that is short but not \
             small keeps it (the burst goes on); a small read gives it back"
        );
    }
}
