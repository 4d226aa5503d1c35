//! Listening: one accept loop per `--listen` address; each accepted connection goes to a handshake
//! thread (`handshakers`), which hands the authenticated session to the session threads of `conn`.

use std::net::TcpListener;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use log::{error, info, warn};

use crate::gate::{Gate, HandshakeSlot, MAX_PENDING_HANDSHAKES};
use crate::handshakers::Handshakers;

/// After an accept error (say, out of file descriptors) wait a little instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections on every listener until a shutdown signal stops them (`shutdown`).
pub fn serve_forever(gate: Arc<Gate>, listeners: Vec<TcpListener>) {
    // The gate lives as long as the process (this function never returns): `'static` borrows
    // let handshake threads outlive the accept loops and sessions carry their registry entry
    // onto their own threads.
    let gate: &'static Arc<Gate> = Box::leak(Box::new(gate));
    let handshakers: &'static Handshakers = Box::leak(Box::new(Handshakers::new(gate)));
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|listener| {
            thread::Builder::new()
                .name("dockgate-accept".into())
                .spawn(move || accept_loop(gate, handshakers, &listener))
                .expect("cannot start the accept thread")
        })
        .collect();
    for handle in loops {
        let _ = handle.join();
    }
}

fn accept_loop(gate: &Arc<Gate>, handshakers: &'static Handshakers, listener: &TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        info!("listening on {addr}");
    }
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(_) if crate::shutdown::is_draining() => return,
            Err(e) => {
                error!("accept failed: {e}");
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
        };
        crate::metrics::CONNECTIONS_ACCEPTED.inc();
        let Some(slot) = HandshakeSlot::take(gate) else {
            crate::metrics::handshake_refused(crate::metrics::TOO_MANY_HANDSHAKES);
            warn!("peer={peer}: {MAX_PENDING_HANDSHAKES} handshakes already pending, connection closed");
            continue;
        };
        handshakers.dispatch(slot, stream, peer);
    }
}
