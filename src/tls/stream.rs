//! One rustls server connection used by two threads at once: one reads from the client, the
//! other writes to it. rustls 0.23 has no split, so both halves share the connection behind a
//! mutex, and the rule that keeps this deadlock-free is:
//!
//! - the connection lock is never held across a blocking socket call;
//! - the writer takes the socket-writer lock, then the connection lock (never the reverse);
//! - the reader never blocks on the writer lock: it only `try_lock`s it to flush protocol replies.
//!
//! One exception to the first rule: `flush_replies` writes to the socket with the connection
//! lock held. It does so only when its `try_lock` got the writer lock, so no other thread can be
//! waiting on the socket, and the replies (an alert, a KeyUpdate answer) are a few bytes.
//!
//! Poisoned locks (see `locks`): the connection lock is not recovered, since a panic inside
//! rustls can leave it half-updated; only this connection's threads stop.
//!
//! The reader reads the socket through its own `Arc`, so a blocked `read` holds no lock at all.
//! The two halves and the control handle share one socket (one file descriptor per client, not
//! a `try_clone` each: fewer descriptors per session leaves more before the process limit).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustls::ServerConnection;

/// Ciphertext is read in pieces of this size at first and of `MAX_NET_READ` as soon as a read
/// fills the buffer (a bulk transfer: ramping up by doubling cost five small reads, and five
/// small upstream writes, per burst); after a small read the buffer goes back to this size, so
/// idle sessions stay small. A small request fits in one read. 256 KiB (with the plaintext
/// buffer of `conn::CLIENT_BUFFER`) took a 1 GiB upload from 0.64-1.11 to 0.51-0.73 CPU s and
/// 790-1,360 to 1,130-1,670 MB/s side by side; 64 KiB pieces meant four times the reads, writes
/// and wake-ups.
const MIN_NET_READ: usize = 2 * 1024;
const MAX_NET_READ: usize = 256 * 1024;
/// The ciphertext buffer of the writing half is freed after a write of at most this much
/// follows larger ones, so a session that once streamed does not keep 64 KiB while idle.
const KEEP_CIPHERTEXT: usize = 4 * 1024;

struct Shared {
    conn: Mutex<ServerConnection>,
    /// The socket, locked by whoever writes to it.
    writer: Mutex<Arc<TcpStream>>,
    /// Plaintext bytes read from and written to the client, for the live-session registry.
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Set by `TlsControl::abort`: the reader then reports an error, not a client EOF.
    aborted: AtomicBool,
    /// The client ended its stream / the gate ended its stream to the client. Whichever side
    /// ends second sees the other flag and ends the session (see `watch_after_client_end`).
    client_ended: AtomicBool,
    gate_ended: AtomicBool,
}

impl Shared {
    fn conn(&self) -> MutexGuard<'_, ServerConnection> {
        // `locks`, data of one connection: a panic while holding the lock leaves rustls in an
        // unknown state; ending this connection's thread (and so the connection) is the answer.
        self.conn.lock().expect("TLS connection lock poisoned")
    }
}

/// A handle that can end the whole connection from any thread, even while the two halves are
/// blocked in socket calls.
#[derive(Clone)]
pub struct TlsControl {
    socket: Arc<TcpStream>,
    shared: Arc<Shared>,
}

impl TlsControl {
    /// Ends the connection from any thread: blocked reads and writes return at once, and the
    /// reading half reports `ConnectionAborted` (a local shutdown would otherwise read as the
    /// client's EOF, which only half-closes the session).
    pub fn abort(&self) {
        self.shared.aborted.store(true, Ordering::SeqCst);
        let _ = self.socket.shutdown(Shutdown::Both);
    }

    /// Ends the client's direction only, from any thread: a blocked read returns the end of
    /// the stream, as if the client had closed, while what the gate still sends goes out.
    /// (Graceful shutdown of an idle connection.)
    pub fn close_read(&self) {
        let _ = self.socket.shutdown(Shutdown::Read);
    }

    /// Plaintext bytes (from the client, to the client) so far.
    pub fn traffic(&self) -> (u64, u64) {
        (
            self.shared.bytes_in.load(Ordering::Relaxed),
            self.shared.bytes_out.load(Ordering::Relaxed),
        )
    }

    /// Bounds how long the reading half may still wait (used after the other direction ended).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        let _ = self.socket.set_read_timeout(timeout);
    }
}

/// The half that reads plaintext from the client.
pub struct TlsReader {
    shared: Arc<Shared>,
    socket: Arc<TcpStream>,
    net_buf: Vec<u8>,
    /// Ciphertext read from the socket that rustls has not taken yet: `net_buf[pending..filled]`.
    pending: usize,
    filled: usize,
    eof: bool,
}

/// The half that writes plaintext to the client.
pub struct TlsWriter {
    shared: Arc<Shared>,
    ciphertext: Vec<u8>,
}

/// Splits a connection whose handshake is complete into its two halves and a control handle.
pub fn split(
    conn: ServerConnection,
    socket: TcpStream,
) -> io::Result<(TlsReader, TlsWriter, TlsControl)> {
    let socket = Arc::new(socket);
    let shared = Arc::new(Shared {
        conn: Mutex::new(conn),
        writer: Mutex::new(socket.clone()),
        bytes_in: AtomicU64::new(0),
        bytes_out: AtomicU64::new(0),
        aborted: AtomicBool::new(false),
        client_ended: AtomicBool::new(false),
        gate_ended: AtomicBool::new(false),
    });
    let control = TlsControl {
        socket: socket.clone(),
        shared: shared.clone(),
    };
    let reader = TlsReader {
        shared: shared.clone(),
        socket,
        net_buf: vec![0; MIN_NET_READ],
        pending: 0,
        filled: 0,
        eof: false,
    };
    let writer = TlsWriter {
        shared,
        ciphertext: Vec::new(),
    };
    Ok((reader, writer, control))
}

impl Read for TlsReader {
    /// Returns `Ok(0)` when the client ended its sending direction, by close_notify (the Go
    /// client's CloseWrite over TLS) or by a bare TCP FIN (docker-py, older clients): both mean
    /// "client stdin ended".
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        let shared = self.shared.clone();
        loop {
            {
                let mut conn = shared.conn();
                match conn.reader().read(out) {
                    Ok(0) => return Ok(0),
                    Ok(n) => {
                        let n = n + self.read_buffered(&mut conn, &mut out[n..])?;
                        shared.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                        crate::metrics::BYTES_FROM_CLIENTS.add(n as u64);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                if self.pending < self.filled || self.eof {
                    self.feed(&mut conn)?;
                    continue;
                }
            }
            self.read_socket()?;
        }
    }
}

impl TlsReader {
    /// Adds to `out` whatever the ciphertext already read from the socket decrypts to, without
    /// reading the socket again. rustls hands out about one record (16 KiB) per read; a bulk
    /// upload would otherwise cost one upstream write, and one wake-up of Docker, per record.
    fn read_buffered(&mut self, conn: &mut ServerConnection, out: &mut [u8]) -> io::Result<usize> {
        let mut total = 0;
        while total < out.len() && self.pending < self.filled {
            let pending_before = self.pending;
            self.feed(conn)?;
            match conn.reader().read(&mut out[total..]) {
                Ok(n) if n > 0 => total += n,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock && self.pending > pending_before => {}
                // The end of the stream, an error, or no progress: the next call reports it.
                _ => break,
            }
        }
        Ok(total)
    }

    /// Reads ciphertext with no lock held: this is where an idle session sleeps.
    fn read_socket(&mut self) -> io::Result<()> {
        if self.filled < MIN_NET_READ && self.net_buf.len() > MIN_NET_READ {
            // The last read was small (not merely short of a large buffer): the burst that grew
            // the buffer is over, and this read may sleep for hours.
            self.net_buf = vec![0; MIN_NET_READ];
        }
        let n = self.read_raw()?;
        if n == 0 {
            self.eof = true;
        } else if n == self.net_buf.len() && n < MAX_NET_READ {
            self.net_buf.resize(MAX_NET_READ, 0);
        }
        self.pending = 0;
        self.filled = n;
        Ok(())
    }

    /// One read from the socket, retried on EINTR; an abort turns into an error.
    fn read_raw(&mut self) -> io::Result<usize> {
        let result = loop {
            match (&*self.socket).read(&mut self.net_buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        if self.shared.aborted.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed by the gate",
            ));
        }
        result
    }

    /// After the client ended its TLS stream, waits until its TCP connection ends too, reading
    /// and dropping raw bytes (nothing after close_notify is decrypted). Returns `Ok(())` when the
    /// client closed cleanly, an error when the connection failed or was aborted: a vanished
    /// client (keepalive timeout) is noticed here even though nobody reads its data any more.
    pub fn wait_for_transport_end(&mut self, max_bytes: u64) -> io::Result<()> {
        let mut dropped = 0;
        while dropped < max_bytes {
            match self.read_raw()? {
                0 => return Ok(()),
                n => dropped += n as u64,
            }
        }
        Err(io::Error::other(
            "client kept sending after its end of stream",
        ))
    }

    /// In a raw session, after the client ended its stream: keeps watching its TCP connection
    /// (`wait_for_transport_end`) until the gate has ended its own stream to the client too —
    /// then the session is over and this returns `Ok` at once.
    pub fn watch_after_client_end(&mut self) -> io::Result<()> {
        self.shared.client_ended.store(true, Ordering::SeqCst);
        if self.shared.gate_ended.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.wait_for_transport_end(u64::MAX)
    }

    /// Hands buffered ciphertext (or the EOF) to rustls and processes it.
    fn feed(&mut self, conn: &mut ServerConnection) -> io::Result<()> {
        let mut ciphertext = &self.net_buf[self.pending..self.filled];
        let before = ciphertext.len();
        conn.read_tls(&mut ciphertext)?;
        self.pending += before - ciphertext.len();
        if self.eof && self.pending == self.filled {
            // read_tls on an empty slice records the EOF inside rustls; after that, reader()
            // reports close_notify (Ok(0)) or a FIN without it (UnexpectedEof).
            conn.read_tls(&mut &[][..])?;
        }
        if let Err(error) = conn.process_new_packets() {
            self.flush_replies(conn);
            return Err(io::Error::new(io::ErrorKind::InvalidData, error));
        }
        self.flush_replies(conn);
        Ok(())
    }

    /// Sends what rustls wants to send after processing input (an alert, a KeyUpdate reply).
    /// Only if the writer is idle: when it is busy, its next write flushes these bytes too.
    fn flush_replies(&self, conn: &mut ServerConnection) {
        if !conn.wants_write() {
            return;
        }
        let Ok(socket) = self.shared.writer.try_lock() else {
            return;
        };
        let mut bytes = Vec::new();
        while conn.wants_write() {
            if conn.write_tls(&mut bytes).is_err() {
                return;
            }
        }
        // The socket write happens with the connection lock still held, but the writer lock
        // is ours too, so nothing else can be waiting on the socket; replies are tiny.
        let _ = (&**socket).write_all(&bytes);
    }
}

impl TlsWriter {
    /// Encrypts `plaintext` (at most rustls' buffer limit per call) and returns how much it took.
    fn encrypt(&mut self, plaintext: &[u8], close: bool) -> io::Result<usize> {
        let mut conn = self.shared.conn();
        let taken = if close {
            conn.send_close_notify();
            0
        } else {
            conn.writer().write(plaintext)?
        };
        while conn.wants_write() {
            conn.write_tls(&mut self.ciphertext)?;
        }
        Ok(taken)
    }

    fn send_ciphertext(&mut self, mut socket: &TcpStream) -> io::Result<()> {
        let result = socket.write_all(&self.ciphertext);
        if self.ciphertext.capacity() > KEEP_CIPHERTEXT && self.ciphertext.len() <= KEEP_CIPHERTEXT
        {
            // A bulk transfer is over: give its large buffer back.
            self.ciphertext = Vec::new();
        } else {
            self.ciphertext.clear();
        }
        result
    }

    /// Ends the direction toward the client: close_notify, then a TCP FIN. The client can go on
    /// sending; the reading half keeps working.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        let shared = self.shared.clone();
        // `locks`, data of one connection: poisoned, it ends this connection.
        let socket = shared.writer.lock().expect("TLS writer lock poisoned");
        self.encrypt(&[], true)?;
        self.send_ciphertext(&socket)?;
        socket.shutdown(Shutdown::Write)?;
        // Both directions have ended: wake the reader watching the client (a local read
        // shutdown makes its blocked read return 0).
        self.shared.gate_ended.store(true, Ordering::SeqCst);
        if self.shared.client_ended.load(Ordering::SeqCst) {
            let _ = socket.shutdown(Shutdown::Read);
        }
        Ok(())
    }
}

impl Write for TlsWriter {
    fn write(&mut self, plaintext: &[u8]) -> io::Result<usize> {
        if plaintext.is_empty() {
            return Ok(0);
        }
        let shared = self.shared.clone();
        // `locks`, data of one connection: poisoned, it ends this connection.
        let socket = shared.writer.lock().expect("TLS writer lock poisoned");
        let taken = self.encrypt(plaintext, false)?;
        self.send_ciphertext(&socket)?;
        shared.bytes_out.fetch_add(taken as u64, Ordering::Relaxed);
        crate::metrics::BYTES_TO_CLIENTS.add(taken as u64);
        if taken == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "TLS connection accepts no more data",
            ));
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
