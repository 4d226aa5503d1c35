//! Graceful shutdown on SIGTERM and SIGINT.
//!
//! The first signal stops the accept loops at once (their listening sockets are shut down, so new
//! connections are refused by the kernel), then `drain` waits up to `--shutdown-grace`:
//! - a connection with nothing in flight (between two requests, or before its first) is closed
//!   as soon as it is seen idle: its client side is shut for reading, which the request side
//!   takes for the client's end, and the connection closes the normal way;
//! - a connection with a request in flight (a `docker logs -f`, a pull) or a hijacked session
//!   (`exec -i`, `attach`) is left alone until it ends, or closed as soon as it becomes idle;
//! - when the grace period runs out (or a second signal arrives), what is left is cut.
//!
//! A summary line says how many were drained and how many cut; the process then exits 0.
//! Windows has no SIGTERM: there the process ends as before, by being stopped.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use log::{info, warn};

use crate::gate::Gate;
use crate::metrics;

/// How often `drain` looks for connections that became idle.
const POLL: Duration = Duration::from_millis(50);

/// Set by the first SIGTERM/SIGINT: the accept loops stop instead of retrying.
static DRAINING: AtomicBool = AtomicBool::new(false);
/// Set by a second signal: cut at once, do not wait for the rest of the grace period.
static HURRY: AtomicBool = AtomicBool::new(false);

pub fn is_draining() -> bool {
    DRAINING.load(Ordering::SeqCst)
}

/// What a live connection has in flight, as far as shutdown cares. A hijacked session never
/// counts its request done, so it is never idle.
#[derive(Default)]
pub struct Work {
    in_flight: AtomicU32,
    /// Set once `drain` has closed the connection for being idle.
    closed: AtomicBool,
}

impl Work {
    /// A request was read and is on its way to Docker.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    /// Its response was relayed completely (or failed), and it did not hijack the connection.
    pub fn request_done(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    pub fn is_busy(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) > 0
    }

    /// True the first time it is called on an idle connection: the caller then closes it.
    pub fn claim_idle_close(&self) -> bool {
        !self.is_busy() && !self.closed.swap(true, Ordering::SeqCst)
    }
}

/// Handles SIGTERM and SIGINT: the first stops the accept loops (by shutting down `listeners`,
/// clones of theirs), a second one ends the grace period early.
#[cfg(unix)]
pub fn handle_signals(listeners: Vec<TcpListener>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    thread::Builder::new()
        .name("dockgate-shutdown".into())
        .spawn(move || {
            for signal in signals.forever() {
                let name = if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                if DRAINING.load(Ordering::SeqCst) {
                    warn!("{name} again: cutting the remaining connections now");
                    HURRY.store(true, Ordering::SeqCst);
                    continue;
                }
                info!("{name}: shutting down, no longer accepting connections");
                // STOPPING=1 goes out before DRAINING is set: an accept loop woken by a
                // connection sees DRAINING, drains and may exit the process at once, and
                // systemd must have heard it first. (This thread is the only writer.)
                crate::sd_notify::stopping();
                DRAINING.store(true, Ordering::SeqCst);
                for listener in &listeners {
                    // Wakes the accept loop blocked on this socket (accept then fails, and the
                    // loop sees `is_draining`), and the kernel refuses new connections.
                    let _ = socket2::SockRef::from(listener).shutdown(std::net::Shutdown::Both);
                }
            }
        })?;
    Ok(())
}

/// Windows: no signals to handle; the process is stopped from outside.
#[cfg(not(unix))]
pub fn handle_signals(_listeners: Vec<TcpListener>) -> std::io::Result<()> {
    Ok(())
}

/// Once the accept loops have stopped: lets the open connections finish within `grace`, cuts
/// the rest and logs the summary.
pub fn drain(gate: &Gate, grace: Duration) {
    let started = Instant::now();
    let registry = &gate.connections;
    let open = registry.len();
    let busy = registry.count_busy();
    let registered_before = registry.registered();
    info!(
        "shutdown: {open} connection(s) open ({busy} with a request or session in flight, the others closed at once), {} in their handshake; waiting up to {} for them",
        gate.pending_handshakes(),
        humantime::format_duration(grace)
    );
    let cut = loop {
        registry.close_idle();
        if registry.len() == 0 && gate.pending_handshakes() == 0 {
            break 0;
        }
        if started.elapsed() >= grace || HURRY.load(Ordering::SeqCst) {
            break registry.cut_all("shutdown: the grace period ran out");
        }
        thread::sleep(POLL);
    };
    metrics::CUT_SHUTDOWN.add(cut as u64);
    // Connections that finished their handshake during the grace period count as open ones.
    let seen = open + (registry.registered() - registered_before) as usize;
    let drained = seen.saturating_sub(cut);
    let summary = format!(
        "shutdown complete after {:.1}s: {drained} connection(s) drained, {cut} cut when the {} grace period ran out; exiting",
        started.elapsed().as_secs_f64(),
        humantime::format_duration(grace)
    );
    if cut > 0 {
        warn!("{summary}");
    } else {
        info!("{summary}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_close_is_claimed_once_and_never_while_busy() {
        let work = Work::default();
        work.request_started();
        assert!(work.is_busy() && !work.claim_idle_close());
        work.request_done();
        work.request_done(); // never below zero
        assert!(!work.is_busy());
        assert!(work.claim_idle_close());
        assert!(!work.claim_idle_close());
    }
}
