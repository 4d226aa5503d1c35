//! The copy engine of a hijacked session (`docker run -i`, `exec -it`, `attach`, BuildKit):
//! after the `101`, each direction is a plain byte copy on its own thread.
//!
//! Half-close rules (the part proxies usually get wrong, see docker-wire.md §2):
//! - client ends its side (close_notify or FIN) -> `shutdown(Write)` toward Docker, which closes
//!   the container's stdin; Docker's output keeps flowing to the client;
//! - Docker ends its output -> close_notify and FIN to the client; the client may still send for
//!   a bounded time (`AFTER_OUTPUT`), then the session is closed;
//! - an error in either direction ends both.

use std::io::{self, Read, Write};
use std::time::Duration;

use crate::http::inbound::Inbound;
use crate::tls::stream::{TlsControl, TlsReader, TlsWriter};
use crate::upstream::{UpstreamRead, UpstreamWrite};

/// After Docker ended its output, how long the client may keep its side open. The docker CLI
/// closes at once; this only bounds clients that never do.
const AFTER_OUTPUT: Duration = Duration::from_secs(30);

/// Copies the client's bytes (stdin) to Docker until the client ends its side. Returns the
/// number of bytes copied.
///
/// After a clean end the client is still watched at the TCP level until it closes or Docker's
/// output ends too: if its connection fails meanwhile (a vanished host, found by keepalive) or
/// the gate cuts it (a revocation), Docker's side is aborted, so the output direction does not
/// wait forever on a container that prints nothing.
pub fn client_to_upstream(
    client: &mut Inbound<TlsReader>,
    upstream: &mut dyn UpstreamWrite,
) -> u64 {
    let (copied, result) = copy(client, upstream);
    let ended_cleanly = result.is_ok()
        && upstream.close_write().is_ok()
        && client.get_mut().watch_after_client_end().is_ok();
    if !ended_cleanly {
        upstream.abort();
    }
    copied
}

/// Copies Docker's output to the client until Docker ends it. Returns the number of bytes.
pub fn upstream_to_client(
    upstream: &mut Inbound<Box<dyn UpstreamRead>>,
    client: &mut TlsWriter,
    control: &TlsControl,
) -> u64 {
    let (copied, result) = copy(upstream, client);
    match result {
        Ok(()) => {
            if client.shutdown_write().is_err() {
                control.abort();
            } else {
                control.set_read_timeout(Some(AFTER_OUTPUT));
            }
        }
        Err(_) => {
            upstream.get_ref().abort();
            control.abort();
        }
    }
    copied
}

/// Copies until the source ends, forwarding every read at once.
fn copy<R: Read, W: Write + ?Sized>(src: &mut Inbound<R>, dst: &mut W) -> (u64, io::Result<()>) {
    let mut copied = 0;
    loop {
        let available = match src.fill() {
            Ok(available) => available,
            Err(e) => return (copied, Err(e)),
        };
        if available.is_empty() {
            return (copied, Ok(()));
        }
        let n = available.len();
        if let Err(e) = dst.write_all(available) {
            return (copied, Err(e));
        }
        src.consume(n);
        copied += n as u64;
    }
}
