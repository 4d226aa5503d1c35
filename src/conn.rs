//! One client connection, from accept to close. Reading one request top-down:
//!
//! 1. `serve` (here), on a handshake thread: the TLS handshake (`tls::handshake`), the
//!    connection limits, the registration in the live-connection registry (where a revocation
//!    or a policy reload can cut it);
//! 2. a session thread with a small stack (`REQUEST_THREADS`, reused) runs the request side
//!    (`request`): it reads a request head, opens the upstream connection if there is none, and
//!    forwards the request;
//! 3. the response side (`response`), on a second session thread (`RESPONSE_THREADS`) taken
//!    with the first thing it has to say, answers every request in order: Docker's responses
//!    and the gate's own answers (`answer`) come to it through one queue (`exchanges`);
//! 4. a response that switches the connection to a raw stream turns each thread into one
//!    direction of a byte copy (`relay`);
//! 5. every record is written through `audit`.
//!
//! The handshake stays on the handshake thread so that its deep stack is not kept dirty for as
//! long as the session lives (idle `attach` sessions and `/events` streams last hours).
//!
//! Nothing reaches Docker before the handshake has verified the client certificate, and the
//! upstream connection is only opened once a complete request head has arrived.

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use log::{debug, error};
use rustls::pki_types::CertificateDer;

use crate::audit::{self, Client};
use crate::enforce::PolicyInForce;
use crate::gate::{Gate, HandshakeSlot};
use crate::http::inbound::Inbound;
use crate::net;
use crate::registry::{LiveConn, Registration};
use crate::threads::{self, Pool};
use crate::tls::handshake::handshake;
use crate::tls::stream::{self, TlsControl, TlsReader, TlsWriter};
use crate::tls::verifier::refusal_reason;

mod answer;
mod exchanges;
mod request;
mod response;
mod tenancy;
// Over a `UnixStream::pair` upstream: unix only (the Windows build runs the other unit tests).
#[cfg(all(test, unix))]
mod tests;

use request::{Dial, RequestSide};

/// After the gate has said its last word on a connection, the client gets this long to close
/// its side; reading what it still sends keeps the kernel from resetting the connection before
/// the client has read the gate's answer.
const LINGER: Duration = Duration::from_secs(5);
const LINGER_MAX_BYTES: u64 = 1 << 20;
/// Stack of the two threads of an authenticated session (request side, response side). They
/// parse heads (64 headers on the stack, more on the heap), decrypt or encrypt one TLS record at
/// a time, open the upstream connection and write log lines; every buffer lives on the heap.
/// The deep work, the handshake and the verification of certificate chains, never runs here:
/// the handshake and the check after registration (`still_valid`) run on the handshake thread,
/// the re-verification after a reload on the reload thread. These threads touch 12 KiB of stack
/// (release build, 1,000 idle sessions), and every integration test, a 12 KB request head and a
/// `tcp://localhost:PORT` upstream (name resolution) also pass with 32 KiB in a debug build;
/// 128 KiB leaves a wide margin. Only touched pages cost memory, the rest is address space.
pub const SESSION_THREAD_STACK: usize = 128 * 1024;
/// The threads that run request sides, and those that run response sides: reused, like the
/// handshake threads (`threads`), so that a new connection starts no thread when one is idle.
/// Two pools so that a thread's name still says which side it runs.
static REQUEST_THREADS: Pool = Pool::new(
    "dockgate-requests",
    SESSION_THREAD_STACK,
    threads::IDLE_EXIT,
);
static RESPONSE_THREADS: Pool = Pool::new(
    "dockgate-responses",
    SESSION_THREAD_STACK,
    threads::IDLE_EXIT,
);
/// The most of the client's plaintext read at once, and so the largest write toward Docker:
/// uploads (`docker cp` into a container, `exec -i`, build contexts) move in pieces this size.
/// The buffer only grows this large during a transfer (see `Inbound`); heads stay limited to
/// `MAX_HEAD`. Docker's side keeps `MAX_HEAD`: 256 KiB measured no faster there.
const CLIENT_BUFFER: usize = 256 * 1024;

/// Serves one accepted TCP connection: runs the handshake on this thread, then carries the
/// session on to a session thread (which serves it until both directions have ended) and
/// returns.
pub fn serve(gate: &'static Gate, slot: HandshakeSlot, tcp: TcpStream, peer: SocketAddr) {
    let Some(session) = authenticate(gate, slot, tcp, peer) else {
        return;
    };
    let started = REQUEST_THREADS.run(Box::new(move || session.run(&gate.upstream, &gate.policy)));
    if let Err(e) = started {
        // The closure, and with it the connection and its registry entry, is dropped: the
        // client sees its connection close.
        error!("peer={peer}: cannot start a session thread, dropping the connection: {e}");
    }
}

/// An authenticated, registered connection, before its request side starts.
struct Session {
    client: Arc<Client>,
    live: Arc<LiveConn>,
    reader: TlsReader,
    writer: TlsWriter,
    control: TlsControl,
    /// Keeps the connection in the registry (where a revocation can cut it) until it ends.
    _registration: Registration<'static>,
    /// Counts the connection against `--max-connections(-per-client)` until it ends.
    _admission: crate::limits::Admission<'static>,
}

impl Session {
    fn run(self, upstream: &dyn Dial, policy: &PolicyInForce) {
        let inbound = Inbound::new(self.reader, CLIENT_BUFFER);
        RequestSide::new(
            self.client,
            self.live,
            inbound,
            self.writer,
            self.control,
            upstream,
            policy,
        )
        .run();
    }
}

/// The handshake and the registration of the verified client; `None` when the client is
/// refused (logged) or the connection cannot be set up.
fn authenticate(
    gate: &'static Gate,
    slot: HandshakeSlot,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<Session> {
    net::tune_socket(&tcp);
    let state = gate.tls();
    // `slot` (a pending handshake, as shutdown counts them) is held until the connection is
    // registered: a shutdown that saw neither would exit under a client it just let in.
    let (tls, identity) = handshake(state.tls.config.clone(), &tcp, peer)?;
    debug!(
        "handshake ok peer={peer} subject=\"{}\" serial={}",
        identity.subject, identity.serial
    );
    let chain: Vec<CertificateDer<'static>> = tls
        .peer_certificates()
        .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let client = Arc::new(Client { peer, identity });
    let (reader, writer, control) = match stream::split(tls, tcp) {
        Ok(halves) => halves,
        Err(e) => {
            error!("peer={peer}: cannot share the socket between threads: {e}");
            return None;
        }
    };
    let leaf = chain.first().map_or(&[][..], |leaf| leaf.as_ref());
    let admission = match gate.limits.admit(leaf) {
        Ok(admission) => admission,
        Err(exceeded) => {
            // Not a handshake any more: the refusal lingers for the client's close, and must
            // not hold a handshake slot (a refused client could pin them all).
            drop(slot);
            crate::limits::refuse(&client, &exceeded, reader, writer, control);
            return None;
        }
    };
    let registration = gate
        .connections
        .register(client.clone(), chain, control.clone());
    drop(slot);
    if !still_valid(gate, state.generation, &registration.conn) {
        control.abort();
        return None;
    }
    Some(Session {
        client,
        live: registration.conn.clone(),
        reader,
        writer,
        control,
        _registration: registration,
        _admission: admission,
    })
}

/// A reload may have happened between this connection's handshake and its registration, after
/// the reload's sweep of the registry: verify such a chain against the newest configuration.
fn still_valid(gate: &Gate, generation: u64, live: &LiveConn) -> bool {
    let current = gate.tls();
    if current.generation == generation {
        return true;
    }
    match live.verify(&*current.tls.client_verifier) {
        Ok(()) => true,
        Err(e) => {
            let client = &live.client;
            audit::handshake_refused(client.peer, &refusal_reason(&e), Some(&client.identity));
            false
        }
    }
}

/// The gate's last word on a connection is said: end the stream toward the client, and leave
/// it `LINGER` to close its side (see `linger`).
fn close_toward_client(writer: &mut TlsWriter, control: &TlsControl) {
    let _ = writer.shutdown_write();
    control.set_read_timeout(Some(LINGER));
}

/// Reads (and drops, undecrypted) what the client still sends, until it closes, `LINGER`
/// passes or `LINGER_MAX_BYTES` arrived.
fn linger(inbound: &mut Inbound<TlsReader>, control: &TlsControl) {
    control.set_read_timeout(Some(LINGER));
    let _ = inbound.get_mut().wait_for_transport_end(LINGER_MAX_BYTES);
}
