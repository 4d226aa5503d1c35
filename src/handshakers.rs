//! The threads that run TLS handshakes.
//!
//! The handshake, with the verification of the client's chain and CRLs, is the deepest and most
//! allocation-heavy work of the gate. It runs on these threads; the authenticated session then
//! moves on to the session threads with small stacks (`conn::serve`), so that an idle session
//! does not keep the handshake's dirty stack pages.
//!
//! The threads are a `threads::Pool`: reused for `threads::IDLE_EXIT`, started on demand when
//! none is idle, so a client that handshakes slowly never delays another client. A connection
//! only gets here once it has sent its first bytes (`server`), and its `HandshakeSlot` bounds
//! the threads busy with a handshake, in total and per source address.

use std::net::{SocketAddr, TcpStream};

use log::error;

use crate::conn;
use crate::gate::{Gate, HandshakeSlot};
use crate::threads::{Pool, IDLE_EXIT};

/// Stack of a handshake thread: the TLS handshake and the client's chain and CRL verification
/// run here, the deepest code of the gate.
///
/// Why 1 MiB, when the handshake needs far less: glibc keeps the stacks of ended threads in a
/// cache and hands one to a new thread whose requested size is at least a quarter of the cached
/// one; an ended thread's stack keeps ~24 KiB dirty. At eight times the session stack (four
/// times plus room for guard pages and rounding), a handshake stack is never reused for a
/// session thread (which would then start with the handshake's dirty pages) and vice versa.
/// Untouched pages cost address space only.
const HANDSHAKE_THREAD_STACK: usize = 1024 * 1024;
const _: () = assert!(HANDSHAKE_THREAD_STACK >= 8 * conn::SESSION_THREAD_STACK);

pub struct Handshakers {
    gate: &'static Gate,
    threads: Pool,
}

impl Handshakers {
    pub fn new(gate: &'static Gate) -> Handshakers {
        Handshakers {
            gate,
            threads: Pool::new("dockgate-handshake", HANDSHAKE_THREAD_STACK, IDLE_EXIT),
        }
    }

    /// Runs the handshake of an accepted connection on an idle handshake thread, or a new one.
    pub fn dispatch(&'static self, slot: HandshakeSlot, stream: TcpStream, peer: SocketAddr) {
        let gate = self.gate;
        let job = Box::new(move || conn::serve(gate, slot, stream, peer));
        if let Err(e) = self.threads.run(job) {
            // The job, and with it the connection, is dropped: the client sees it close.
            error!("peer={peer}: cannot start a handshake thread, dropping the connection: {e}");
        }
    }
}
