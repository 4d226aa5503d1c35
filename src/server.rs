//! Listening: one accept loop per `--listen` address, one thread per client connection.

use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use log::{error, info, warn};

use crate::conn;
use crate::gate::{Gate, HandshakeSlot, MAX_PENDING_HANDSHAKES};

/// Stack of a connection thread: the TLS handshake runs here. Threads touch only the pages
/// they use, so this bounds rather than costs memory.
const CONNECTION_THREAD_STACK: usize = 256 * 1024;
/// After an accept error (say, out of file descriptors) wait a little instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Accepts connections on every listener until the process ends.
pub fn serve_forever(gate: Arc<Gate>, listeners: Vec<TcpListener>) {
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            let gate = gate.clone();
            thread::Builder::new()
                .name("dockgate-accept".into())
                .spawn(move || accept_loop(&gate, &listener))
                .expect("cannot start the accept thread")
        })
        .collect();
    for handle in loops {
        let _ = handle.join();
    }
}

fn accept_loop(gate: &Arc<Gate>, listener: &TcpListener) {
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
            .name("dockgate-conn".into())
            .stack_size(CONNECTION_THREAD_STACK)
            .spawn(move || conn::serve(slot, stream, peer));
        if let Err(e) = spawned {
            error!("peer={peer}: cannot start a connection thread, dropping it: {e}");
        }
    }
}
