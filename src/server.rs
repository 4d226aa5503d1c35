//! Listening: one accept loop per `--listen` address, one handshake thread per client connection
//! (which hands an authenticated session over to the session threads of `conn`).

use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use log::{error, info, warn};

use crate::conn;
use crate::gate::{Gate, HandshakeSlot, MAX_PENDING_HANDSHAKES};

/// Stack of a handshake thread: the TLS handshake and the client's chain and CRL verification
/// run here, the deepest code of the gate. The thread ends after the handshake (the session moves
/// to fresh threads with smaller stacks, see `conn::SESSION_THREAD_STACK`), so the pages it
/// touched do not stay dirty for the life of an idle session.
///
/// Why 1 MiB, when the handshake needs far less: glibc keeps the stacks of ended threads in a
/// cache and hands one to a new thread whose requested size is at least a quarter of the cached
/// one; an ended thread's stack keeps ~24 KiB dirty. At eight times the session stack (four
/// times plus room for guard pages and rounding), a handshake stack is never reused for a
/// session thread (which would then start with the handshake's dirty pages) and vice versa.
/// Untouched pages cost address space only.
const HANDSHAKE_THREAD_STACK: usize = 1024 * 1024;
const _: () = assert!(HANDSHAKE_THREAD_STACK >= 8 * conn::SESSION_THREAD_STACK);

/// After an accept error (say, out of file descriptors) wait a little instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Accepts connections on every listener until the process ends.
pub fn serve_forever(gate: Arc<Gate>, listeners: Vec<TcpListener>) {
    // The gate lives as long as the process (this function never returns): a `'static` borrow
    // lets each session carry its registry entry onto the session's own thread.
    let gate: &'static Arc<Gate> = Box::leak(Box::new(gate));
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            thread::Builder::new()
                .name("dockgate-accept".into())
                .spawn(move || accept_loop(gate, &listener))
                .expect("cannot start the accept thread")
        })
        .collect();
    for handle in loops {
        let _ = handle.join();
    }
}

fn accept_loop(gate: &'static Arc<Gate>, listener: &TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        info!("listening on {addr}");
    }
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                error!("accept failed: {e}");
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        let Some(slot) = HandshakeSlot::take(gate) else {
            warn!("peer={peer}: {MAX_PENDING_HANDSHAKES} handshakes already pending, connection closed");
            continue;
        };
        let spawned = thread::Builder::new()
            .name("dockgate-handshake".into())
            .stack_size(HANDSHAKE_THREAD_STACK)
            .spawn(move || conn::serve(gate, slot, stream, peer));
        if let Err(e) = spawned {
            error!("peer={peer}: cannot start a handshake thread, dropping it: {e}");
        }
    }
}
