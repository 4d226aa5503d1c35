//! The copy engine of a hijacked session (`docker run -i`, `exec -it`, `attach`, BuildKit):
//! after the `101`, each direction is a plain byte copy on its own thread.
//!
//! Half-close rules (the part proxies usually get wrong, see docker-wire.md §2):
//! - client ends its side (close_notify or FIN) -> `shutdown(Write)` toward Docker, which closes
//!   the container's stdin; Docker's output keeps flowing to the client;
//! - Docker ends its output -> close_notify and FIN to the client; the client may still send for
//!   a bounded time (`AFTER_OUTPUT`), then the session is closed;
//! - an error in either direction ends both.

use std::io::{Read, Write};
use std::time::Duration;

use crate::audit::Outcome;
use crate::http::inbound::Inbound;
use crate::tls::stream::{TlsControl, TlsReader, TlsWriter};
use crate::upstream::{UpstreamRead, UpstreamWrite};

/// After Docker ended its output, how long the client may keep its side open. The docker CLI
/// closes at once; this only bounds clients that never do.
const AFTER_OUTPUT: Duration = Duration::from_secs(30);

/// Copies the client's bytes (stdin) to Docker until the client ends its side. Returns the
/// number of bytes copied and how this direction ended.
///
/// After a clean end the client is still watched at the TCP level until it closes or Docker's
/// output ends too: if its connection fails meanwhile (a vanished host, found by keepalive) or
/// the gate cuts it (a revocation), Docker's side is aborted, so the output direction does not
/// wait forever on a container that prints nothing.
pub fn client_to_upstream(
    client: &mut Inbound<TlsReader>,
    upstream: &mut dyn UpstreamWrite,
) -> (u64, Outcome) {
    let (copied, result) = copy(client, upstream);
    let outcome = match result {
        Ok(()) if upstream.close_write().is_err() => Outcome::UpstreamClosed,
        Ok(()) if client.get_mut().watch_after_client_end().is_err() => Outcome::ClientAborted,
        Ok(()) => Outcome::Complete,
        Err(Failed::Source) => Outcome::ClientAborted,
        Err(Failed::Sink) => Outcome::UpstreamClosed,
    };
    if outcome != Outcome::Complete {
        upstream.abort();
    }
    (copied, outcome)
}

/// Copies Docker's output to the client until Docker ends it. Returns the number of bytes and
/// how this direction ended.
pub fn upstream_to_client(
    upstream: &mut Inbound<Box<dyn UpstreamRead>>,
    client: &mut TlsWriter,
    control: &TlsControl,
) -> (u64, Outcome) {
    let (copied, result) = copy(upstream, client);
    let outcome = match result {
        Ok(()) => {
            if client.shutdown_write().is_err() {
                control.abort();
                Outcome::ClientAborted
            } else {
                control.set_read_timeout(Some(AFTER_OUTPUT));
                Outcome::Complete
            }
        }
        Err(failed) => {
            upstream.get_ref().abort();
            control.abort();
            match failed {
                Failed::Source => Outcome::UpstreamClosed,
                Failed::Sink => Outcome::ClientAborted,
            }
        }
    };
    (copied, outcome)
}

/// Which end of a copy failed.
enum Failed {
    Source,
    Sink,
}

/// Copies until the source ends, forwarding every read at once.
fn copy<R: Read, W: Write + ?Sized>(
    src: &mut Inbound<R>,
    dst: &mut W,
) -> (u64, Result<(), Failed>) {
    let mut copied = 0;
    loop {
        let Ok(available) = src.fill() else {
            return (copied, Err(Failed::Source));
        };
        if available.is_empty() {
            return (copied, Ok(()));
        }
        let n = available.len();
        if dst.write_all(available).is_err() {
            return (copied, Err(Failed::Sink));
        }
        src.consume(n);
        copied += n as u64;
    }
}
