//! Listening and admission: one thread accepts on every `--listen` address and holds each new
//! connection, without a thread of its own, until the client has sent its first bytes; only
//! then does a handshake thread (`handshakers`) take it, and hand the authenticated session to
//! the session threads of `conn`.
//!
//! Why: a connection that sends nothing must cost a file descriptor, not a thread, and not
//! for long. The admission thread poll(2)s the listeners and the waiting connections together
//! (`rustix::event::poll`, a safe wrapper; WSAPoll on Windows). A connection that sends nothing
//! within `FIRST_BYTES_TIMEOUT` is closed; one that closes without sending anything never
//! reaches a thread. The caps of `HandshakeSlot` (in total, and per source address) count a
//! connection from its accept to the end of its handshake, so that one address cannot take
//! the places of everyone else. The refusals are logged in aggregate (`refusals`).

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use log::{error, info};
use rustix::event::{poll, PollFd, PollFlags, Timespec};

use crate::gate::{source_of, Gate, HandshakeSlot, SlotRefused};
use crate::handshakers::Handshakers;
use crate::refusals::{Reason, Tally};

/// After an accept error (say, out of file descriptors) wait a little instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// A connection that has not sent the first bytes of its ClientHello this long after it was
/// accepted is closed. A real client sends its ClientHello right after the TCP handshake (one
/// round trip, less than a second even across continents); the whole handshake then gets its
/// own deadline (`conn::HANDSHAKE_TIMEOUT`, 10 s), counted from these first bytes.
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(3);

/// New connections taken from one listener before the waiting ones are looked at again.
const ACCEPT_BATCH: usize = 64;

/// An accepted connection that has sent nothing yet.
struct Waiting {
    stream: TcpStream,
    peer: SocketAddr,
    slot: HandshakeSlot,
    deadline: Instant,
}

/// Accepts connections on every listener until a shutdown signal stops them (`shutdown`): the
/// signal shuts the listening sockets down, which wakes the poll; connections still waiting
/// for their first bytes are then closed (they are not authenticated, nothing is lost).
pub fn serve_forever(gate: Arc<Gate>, listeners: Vec<TcpListener>) {
    // The gate lives as long as the process (this function never returns): `'static` borrows
    // let handshake threads outlive the admission loop and sessions carry their registry entry
    // onto their own threads.
    let gate: &'static Arc<Gate> = Box::leak(Box::new(gate));
    let handshakers: &'static Handshakers = Box::leak(Box::new(Handshakers::new(gate)));
    for listener in &listeners {
        if let Ok(addr) = listener.local_addr() {
            info!("listening on {addr}");
        }
        if let Err(e) = listener.set_nonblocking(true) {
            error!("cannot make the listener non-blocking: {e}");
            return;
        }
    }
    Admission {
        gate,
        handshakers,
        listeners,
        waiting: Vec::new(),
        refusals: Tally::default(),
    }
    .run();
}

struct Admission {
    gate: &'static Arc<Gate>,
    handshakers: &'static Handshakers,
    listeners: Vec<TcpListener>,
    waiting: Vec<Waiting>,
    refusals: Tally,
}

impl Admission {
    fn run(mut self) {
        loop {
            if crate::shutdown::is_draining() {
                return;
            }
            let now = Instant::now();
            self.close_silent(now);
            self.refusals.flush(now);
            let (listeners_ready, waiting_ready) = match self.wait(now) {
                Ok(ready) => ready,
                Err(e) => {
                    error!("poll failed: {e}");
                    thread::sleep(ACCEPT_BACKOFF);
                    continue;
                }
            };
            self.start_handshakes(&waiting_ready);
            for (index, ready) in listeners_ready.into_iter().enumerate() {
                if ready {
                    self.accept_from(index);
                }
            }
        }
    }

    /// Waits until a listener or a waiting connection is readable, or the next deadline.
    /// Returns which listeners and which waiting connections are ready.
    fn wait(&self, now: Instant) -> io::Result<(Vec<bool>, Vec<bool>)> {
        let next_deadline = self.waiting.iter().map(|w| w.deadline).min();
        let wake_at = match (next_deadline, self.refusals.next_flush()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let timeout = wake_at.map(|at| {
            // Rounded up to the millisecond, so that the deadline has passed when poll returns.
            let left = at.saturating_duration_since(now) + Duration::from_millis(1);
            Timespec {
                tv_sec: left.as_secs() as _,
                tv_nsec: left.subsec_nanos() as _,
            }
        });
        let mut fds: Vec<PollFd<'_>> = self
            .listeners
            .iter()
            .map(|l| PollFd::new(l, PollFlags::IN))
            .chain(
                self.waiting
                    .iter()
                    .map(|w| PollFd::new(&w.stream, PollFlags::IN)),
            )
            .collect();
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds.iter().map(|fd| !fd.revents().is_empty()).collect();
        let (listeners, waiting) = ready.split_at(self.listeners.len());
        Ok((listeners.to_vec(), waiting.to_vec()))
    }

    /// Hands the connections that have sent something to handshake threads.
    fn start_handshakes(&mut self, ready: &[bool]) {
        let mut still_waiting = Vec::with_capacity(self.waiting.len());
        for (index, waiting) in self.waiting.drain(..).enumerate() {
            let is_ready = ready.get(index).copied().unwrap_or(false);
            if !is_ready {
                still_waiting.push(waiting);
                continue;
            }
            // Readable: data, end of stream or an error. Only data deserves a thread.
            match waiting.stream.peek(&mut [0u8; 1]) {
                Ok(n) if n > 0 => {
                    self.handshakers
                        .dispatch(waiting.slot, waiting.stream, waiting.peer);
                }
                _ => self.refusals.record(
                    source_of(waiting.peer.ip()),
                    Reason::ClosedBeforeSending,
                    Instant::now(),
                ),
            }
        }
        self.waiting = still_waiting;
    }

    /// Closes the connections that sent nothing in time.
    fn close_silent(&mut self, now: Instant) {
        let refusals = &mut self.refusals;
        self.waiting.retain(|waiting| {
            if waiting.deadline > now {
                return true;
            }
            refusals.record(source_of(waiting.peer.ip()), Reason::NothingSent, now);
            false
        });
    }

    /// Accepts what is pending on listener `index`, up to `ACCEPT_BATCH` connections.
    fn accept_from(&mut self, index: usize) {
        for _ in 0..ACCEPT_BATCH {
            let accepted = self.listeners[index].accept();
            match accepted {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // The listener was shut down by a shutdown signal; `run` stops.
                Err(_) if crate::shutdown::is_draining() => return,
                // The client reset the connection before it was accepted.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    error!("accept failed: {e}");
                    thread::sleep(ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }

    /// Takes a place for a new connection and puts it among the waiting ones, or closes it.
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        crate::metrics::CONNECTIONS_ACCEPTED.inc();
        let now = Instant::now();
        let source = source_of(peer.ip());
        let slot = match HandshakeSlot::take(self.gate, source) {
            Ok(slot) => slot,
            Err(refused) => {
                let reason = match refused {
                    SlotRefused::Source => Reason::TooManyFromSource,
                    SlotRefused::Total => Reason::TooManyInTotal,
                };
                self.refusals.record(source, reason, now);
                return;
            }
        };
        // Windows hands out accepted sockets in the listener's non-blocking mode; the
        // handshake thread reads with timeouts on a blocking socket.
        if let Err(e) = stream.set_nonblocking(false) {
            error!("peer={peer}: cannot set up the connection: {e}");
            return;
        }
        self.waiting.push(Waiting {
            stream,
            peer,
            slot,
            deadline: now + FIRST_BYTES_TIMEOUT,
        });
    }
}
