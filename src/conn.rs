//! One client connection, from accept to close.
//!
//! The handshake runs on a handshake thread (`handshakers`, which calls `serve`). Once the client
//! is verified and registered, that thread hands the session to a fresh thread with a small stack
//! and goes back to waiting for connections, so the deep stack of the handshake is not kept
//! dirty for as long as the session lives (idle `attach` sessions and `/events` streams last
//! hours). Two threads then share the connection:
//! - the request thread reads requests from the client, checks their framing and forwards them;
//! - a second thread reads Docker's responses and relays them to the client.
//!
//! The request side tells the response side, through a queue (`exchanges`), which request each
//! response answers (its method decides whether a body follows) and hands it the gate's own
//! refusals, so that every answer leaves in order. When a response switches the connection to
//! a raw stream (`101 UPGRADED`, or a `200` with a raw-stream content type and no framing, the
//! legacy answer to attach and exec start), each thread turns into one direction of a plain
//! byte copy (see `relay`). Only dockerd's answer decides this, whatever the path looks like
//! (dockerd routes on the percent-decoded path: `/exec/ID/st%61rt` is exec start); so the
//! response side reports a verdict for every request, and the request side reads the client's
//! next bytes as HTTP only once every request before them is known not to have switched.
//!
//! Nothing reaches Docker before the handshake has verified the client certificate, and the
//! upstream connection is only opened once a first complete request head has arrived.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use log::{debug, error, warn};
use rustls::pki_types::CertificateDer;
use rustls::{ServerConfig, ServerConnection};

use crate::audit::{self, Client, Outcome};
use crate::gate::{Gate, HandshakeSlot};
use crate::http::body::{self, RelayError};
use crate::http::head::{self, Framing, HeadError, RequestHead, MAX_HEAD};
use crate::http::inbound::Inbound;
use crate::http::target::LoggedTarget;
use crate::http::write_error;
use crate::net;
use crate::registry::{LiveConn, Registration};
use crate::relay;
use crate::tls::identity::PeerIdentity;
use crate::tls::stream::{self, TlsControl, TlsReader, TlsWriter};
use crate::tls::verifier::{refusal_reason, take_refused_identity};
use crate::upstream::{Upstream, UpstreamRead, UpstreamWrite};

mod exchanges;
use exchanges::{Exchanges, Next, Queued};

/// A client that connects but does not finish the handshake is dropped after this long, counted
/// from its first bytes (before them, `server::FIRST_BYTES_TIMEOUT` applies).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
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
/// The most of the client's plaintext read at once, and so the largest write toward Docker:
/// uploads (`docker cp` into a container, `exec -i`, build contexts) move in pieces this size.
/// The buffer only grows this large during a transfer (see `Inbound`); heads stay limited to
/// `MAX_HEAD`. Docker's side keeps `MAX_HEAD`: 256 KiB measured no faster there.
const CLIENT_BUFFER: usize = 256 * 1024;
/// Request bodies from this size on get a `request start` record (chunked ones always do): an
/// upload this large may take long, and must be in the log while it runs.
const LARGE_UPLOAD: u64 = 1024 * 1024;

/// Serves one accepted TCP connection: runs the handshake on this thread, then carries the
/// session on to fresh session threads (which serve it until both directions have ended) and
/// returns.
pub fn serve(gate: &'static Gate, slot: HandshakeSlot, tcp: TcpStream, peer: SocketAddr) {
    let Some((connection, writer)) = authenticate(gate, slot, tcp, peer) else {
        return;
    };
    let spawned = thread::Builder::new()
        .name("dockgate-requests".into())
        .stack_size(SESSION_THREAD_STACK)
        .spawn(move || connection.run(&gate.upstream, writer));
    if let Err(e) = spawned {
        // The closure, and with it the connection and its registry entry, is dropped: the
        // client sees its connection close.
        error!("peer={peer}: cannot start a session thread, dropping the connection: {e}");
    }
}

/// The handshake and the registration of the verified client; `None` when the client is
/// refused (logged) or the connection cannot be set up.
fn authenticate(
    gate: &'static Gate,
    slot: HandshakeSlot,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<(Connection, TlsWriter)> {
    net::tune_socket(&tcp);
    let state = gate.tls();
    let handshaken = handshake(state.tls.config.clone(), &tcp, peer);
    drop(slot);
    let (tls, identity) = handshaken?;
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
            crate::limits::refuse(&client, &exceeded, reader, writer, control);
            return None;
        }
    };
    let registration = gate
        .connections
        .register(client.clone(), chain, control.clone());
    if !still_valid(gate, state.generation, &registration.conn) {
        control.abort();
        return None;
    }
    let connection = Connection {
        client,
        live: registration.conn.clone(),
        inbound: Inbound::new(reader, CLIENT_BUFFER),
        control,
        _registration: registration,
        _admission: admission,
    };
    Some((connection, writer))
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

/// Runs the TLS handshake with a deadline; logs and returns `None` when the client is refused.
fn handshake(
    config: Arc<ServerConfig>,
    tcp: &TcpStream,
    peer: SocketAddr,
) -> Option<(ServerConnection, PeerIdentity)> {
    let mut tls = match ServerConnection::new(config) {
        Ok(tls) => tls,
        Err(e) => {
            error!("peer={peer}: cannot create a TLS session: {e}");
            return None;
        }
    };
    // Handshake threads serve one connection after another: never name an earlier client.
    let _ = take_refused_identity();
    if let Err(e) = drive_handshake(&mut tls, tcp) {
        let reason = describe_handshake_failure(&e);
        audit::handshake_refused(peer, &reason, take_refused_identity().as_ref());
        return None;
    }
    // Hijacked sessions and /events streams may be idle for hours: no timeouts from here on.
    // (SO_RCVTIMEO is shared by every clone of the socket, so this must happen before the split.)
    let _ = tcp.set_read_timeout(None);
    let _ = tcp.set_write_timeout(None);
    let identity = tls
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| PeerIdentity::from_der(leaf));
    match identity {
        Some(identity) => Some((tls, identity)),
        None => {
            // Unreachable with a mandatory client verifier; refuse rather than trust that.
            audit::handshake_refused(peer, "no client certificate", None);
            None
        }
    }
}

/// Runs the handshake one read or write at a time against one deadline for the whole of it
/// (rustls' `complete_io` loops internally, so a per-read timeout would let a client that
/// trickles one byte at a time hold an unauthenticated connection for as long as it likes).
fn drive_handshake(tls: &mut ServerConnection, tcp: &TcpStream) -> io::Result<()> {
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut io = tcp;
    while tls.is_handshaking() || tls.wants_write() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "handshake timed out",
            ));
        }
        tcp.set_read_timeout(Some(left))?;
        tcp.set_write_timeout(Some(left))?;
        if tls.wants_write() {
            tls.write_tls(&mut io)?;
            continue;
        }
        if tls.read_tls(&mut io)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Err(e) = tls.process_new_packets() {
            // Send the alert that says why (certificate_revoked, unknown_ca, ...).
            while tls.wants_write() && tls.write_tls(&mut io).is_ok() {}
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
    }
    Ok(())
}

fn describe_handshake_failure(e: &io::Error) -> String {
    if let Some(tls_error) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return refusal_reason(tls_error);
    }
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "handshake timed out".into(),
        io::ErrorKind::UnexpectedEof => "client closed the connection during the handshake".into(),
        _ => format!("network error during the handshake: {e}"),
    }
}

/// The authenticated connection, on the request side.
struct Connection {
    client: Arc<Client>,
    live: Arc<LiveConn>,
    inbound: Inbound<TlsReader>,
    control: TlsControl,
    /// Keeps the connection in the registry (where a revocation can cut it) until it ends.
    _registration: Registration<'static>,
    /// Counts the connection against `--max-connections(-per-client)` until it ends.
    _admission: crate::limits::Admission<'static>,
}

/// A request on its way to Docker, as the response side needs it.
struct Forwarded {
    method: String,
    target: LoggedTarget,
    started: Instant,
    /// Filled in by the request side as the body goes through.
    upload: Arc<Upload>,
    /// A `request start` record was written when the request was forwarded.
    announced: bool,
}

/// How the request body of one exchange went, as the request side reports it.
#[derive(Default)]
struct Upload {
    /// Body bytes written to Docker so far.
    bytes: AtomicU64,
    /// The client's connection failed (a reset, a broken TLS record, an end in the middle of
    /// the body) while this was the latest exchange. The request side sets it before it aborts
    /// the upstream connection, so the response side, which then sees Docker's side fail, does
    /// not blame Docker.
    client_aborted: AtomicBool,
}

impl Upload {
    fn client_aborted(&self) -> bool {
        self.client_aborted.load(Ordering::SeqCst)
    }

    fn mark_client_aborted(&self) {
        self.client_aborted.store(true, Ordering::SeqCst);
    }
}

impl Forwarded {
    /// The audit line for this request, once its response is complete (or failed).
    fn log(&self, client: &Client, status: Option<u16>, bytes_out: u64, outcome: Outcome) {
        let outcome = if self.upload.client_aborted() {
            Outcome::ClientAborted
        } else {
            outcome
        };
        audit::request(&audit::Exchange {
            client,
            method: &self.method,
            target: &self.target,
            status,
            bytes_in: self.upload.bytes.load(Ordering::Relaxed),
            bytes_out,
            started: self.started,
            outcome,
        });
    }
}

/// How the request side stopped.
enum RequestsEnd {
    /// The client ended its side between requests.
    ClientDone,
    /// The client or the connection failed; the upstream must not wait for more.
    Broken,
    /// The gate refused a request head; the response side answers and closes.
    Refused { status: u16, message: String },
    /// A response switched the connection to a raw stream.
    Hijacked,
}

/// How the response side stopped, with what the session log needs.
struct Hijack {
    method: String,
    target: LoggedTarget,
    started: Instant,
    upload: Arc<Upload>,
    bytes_out: u64,
    outcome: Outcome,
}

impl Connection {
    fn run(mut self, upstream: &Upstream, mut writer: TlsWriter) {
        let first = match head::read_request(&mut self.inbound) {
            Ok(Some(first)) => first,
            Ok(None) => return,
            Err(e) => {
                if let Some((status, message)) = self.refusal(&e) {
                    let _ = write_error(&mut writer, status, &message);
                }
                return self.close(writer);
            }
        };
        let conn = match upstream.connect() {
            Ok(conn) => conn,
            Err(e) => {
                let message = format!("dockgate: cannot reach Docker at {upstream}: {e}");
                error!("peer={}: {message}", self.client.peer);
                let _ = write_error(&mut writer, 502, &message);
                audit::request(&audit::Exchange {
                    client: &self.client,
                    method: &first.method,
                    target: &LoggedTarget::new(first.target.clone()),
                    status: Some(502),
                    bytes_in: 0,
                    bytes_out: 0,
                    started: Instant::now(),
                    outcome: Outcome::UpstreamClosed,
                });
                return self.close(writer);
            }
        };

        let exchanges = Arc::new(Exchanges::new());
        let (verdict_tx, verdicts) = mpsc::channel();
        let responses = ResponseSide {
            client: self.client.clone(),
            live: self.live.clone(),
            upstream: Inbound::new(conn.reader, MAX_HEAD),
            writer,
            control: self.control.clone(),
            exchanges: exchanges.clone(),
            verdicts: verdict_tx,
        };
        let response_thread = match thread::Builder::new()
            .name("dockgate-responses".into())
            .stack_size(SESSION_THREAD_STACK)
            .spawn(move || responses.run())
        {
            Ok(handle) => handle,
            Err(e) => return error!("peer={}: cannot start a thread: {e}", self.client.peer),
        };

        let mut upstream_writer = conn.writer;
        let end = self.forward_requests(first, &mut *upstream_writer, &exchanges, &verdicts);
        let (bytes_in_raw, outcome_in) = match end {
            RequestsEnd::Hijacked => {
                // The queue and the channel are done with; a session may last hours.
                drop((exchanges, verdicts));
                relay::client_to_upstream(&mut self.inbound, &mut *upstream_writer)
            }
            RequestsEnd::ClientDone => {
                // Like a direct client closing its socket: dockerd ends what it was streaming.
                let _ = upstream_writer.close_write();
                if exchanges.finish(None) {
                    // Nothing outstanding: wake the response side rather than wait for Docker
                    // to close (a named pipe or another proxy may never do so).
                    upstream_writer.abort();
                }
                (0, Outcome::Complete)
            }
            RequestsEnd::Refused { status, message } => {
                if exchanges.finish(Some((status, message))) {
                    // Wake the response side, which then answers the refusal.
                    upstream_writer.abort();
                }
                (0, Outcome::Complete)
            }
            RequestsEnd::Broken => {
                exchanges.finish(None);
                upstream_writer.abort();
                (0, Outcome::ClientAborted)
            }
        };
        let hijack = response_thread.join().unwrap_or(None);
        if let Some(session) = hijack {
            crate::metrics::SESSIONS_OPEN.dec();
            // Whichever direction failed says how the session ended; the client's side first.
            let outcome = match (outcome_in, session.outcome) {
                (Outcome::ClientAborted, _) | (_, Outcome::ClientAborted) => Outcome::ClientAborted,
                (Outcome::UpstreamClosed, _) | (_, Outcome::UpstreamClosed) => {
                    Outcome::UpstreamClosed
                }
                _ => Outcome::Complete,
            };
            audit::session_end(&audit::Exchange {
                client: &self.client,
                method: &session.method,
                target: &session.target,
                status: Some(101),
                bytes_in: session.upload.bytes.load(Ordering::Relaxed) + bytes_in_raw,
                bytes_out: session.bytes_out,
                started: session.started,
                outcome,
            });
        }
        self.linger();
    }

    /// Forwards requests until the client is done, something breaks, or the connection is
    /// hijacked.
    fn forward_requests(
        &mut self,
        first: RequestHead,
        upstream: &mut dyn UpstreamWrite,
        exchanges: &Exchanges<Forwarded>,
        verdicts: &Receiver<bool>,
    ) -> RequestsEnd {
        let mut request = first;
        // Requests forwarded whose verdict (did the answer switch to a raw stream?) is not in.
        let mut undecided = 0usize;
        loop {
            let upload = Arc::new(Upload::default());
            let target = LoggedTarget::new(std::mem::take(&mut request.target));
            self.live
                .set_activity(format!("request {} {}", request.method, target.path));
            let announced = match request.framing {
                Framing::Chunked => true,
                Framing::Length(n) => n >= LARGE_UPLOAD,
                Framing::None | Framing::UntilClose => false,
            };
            if announced {
                audit::request_start(&self.client, &request.method, &target, None);
            }
            let forwarded = Forwarded {
                method: std::mem::take(&mut request.method),
                target,
                started: Instant::now(),
                upload: upload.clone(),
                announced,
            };
            exchanges.forward(forwarded);
            undecided += 1;
            self.live.work.request_started();
            if let Err(e) = self.forward_one(&request, upstream, &upload) {
                warn!("peer={}: request not forwarded: {e}", self.client.peer);
                return RequestsEnd::Broken;
            }
            if let Some(end) = self.await_verdicts(&mut undecided, verdicts, &upload) {
                return end;
            }
            request = match head::read_request(&mut self.inbound) {
                Ok(Some(next)) => next,
                Ok(None) => return RequestsEnd::ClientDone,
                Err(e) => {
                    return match self.refusal(&e) {
                        Some((status, message)) => RequestsEnd::Refused { status, message },
                        None => {
                            upload.mark_client_aborted();
                            RequestsEnd::Broken
                        }
                    }
                }
            };
        }
    }

    /// Waits until the response side has said, for every request forwarded, whether its answer
    /// switched the connection to a raw stream; `Some` when one did (or the response side is
    /// gone), and the client's next bytes are then no HTTP.
    ///
    /// It first waits for those next bytes (or the client's end): a client sends its next
    /// request only after it has read the answer to the last one, so the verdict is in by then
    /// and taking it costs no extra wake-up; and bytes a client sends before a `101` stay
    /// unparsed in the buffer until it is known what they are.
    fn await_verdicts(
        &mut self,
        undecided: &mut usize,
        verdicts: &Receiver<bool>,
        latest: &Upload,
    ) -> Option<RequestsEnd> {
        let next = self.inbound.fill().map(|bytes| bytes.is_empty());
        while *undecided > 0 {
            match verdicts.recv() {
                // The raw copy starts with what is buffered, and meets the end or the error
                // of the client's stream itself.
                Ok(true) => return Some(RequestsEnd::Hijacked),
                Ok(false) => *undecided -= 1,
                Err(_) => return Some(RequestsEnd::Broken),
            }
        }
        match next {
            Ok(false) => None,
            Ok(true) => Some(RequestsEnd::ClientDone),
            Err(_) => {
                latest.mark_client_aborted();
                Some(RequestsEnd::Broken)
            }
        }
    }

    /// Sends one request head unchanged and relays its body, counting the body bytes in
    /// `upload` (also when the body is cut).
    fn forward_one(
        &mut self,
        request: &RequestHead,
        upstream: &mut dyn UpstreamWrite,
        upload: &Upload,
    ) -> Result<(), RelayError> {
        upstream
            .write_all(&self.inbound.buffered()[..request.len])
            .map_err(RelayError::Sink)?;
        self.inbound.consume(request.len);
        let mut sent = 0;
        let result = match request.framing {
            Framing::None => Ok(()),
            Framing::Length(n) => body::relay_length(&mut self.inbound, upstream, n, &mut sent),
            Framing::Chunked => body::relay_chunked(&mut self.inbound, upstream, &mut sent),
            Framing::UntilClose => unreachable!("requests are never close-delimited"),
        };
        upload.bytes.store(sent, Ordering::Relaxed);
        if matches!(
            result,
            Err(RelayError::Source(_) | RelayError::Malformed(_))
        ) {
            // Before the caller aborts the upstream connection (see `Upload`).
            upload.mark_client_aborted();
        }
        result
    }

    /// The answer to a request head the gate refuses; `None` when the client just went away.
    fn refusal(&self, e: &HeadError) -> Option<(u16, String)> {
        let (status, message) = match e {
            HeadError::Malformed(why) => (400, format!("dockgate: bad request: {why}")),
            HeadError::TooLarge => (
                431,
                format!("dockgate: request head larger than {} KiB", MAX_HEAD / 1024),
            ),
            HeadError::Truncated | HeadError::Io(_) => return None,
        };
        warn!(target: "dockgate::audit",
            peer:% = self.client.peer,
            subject = self.client.identity.subject.as_str(),
            serial = self.client.identity.serial.as_str(),
            status = status,
            reason = message.as_str();
            "request refused");
        Some((status, message))
    }

    fn close(self, mut writer: TlsWriter) {
        let _ = writer.shutdown_write();
        self.control.set_read_timeout(Some(LINGER));
        self.linger();
    }

    /// Reads (and drops, undecrypted) what the client still sends, until it closes, `LINGER`
    /// passes or `LINGER_MAX_BYTES` arrived.
    fn linger(mut self) {
        let _ = self
            .inbound
            .get_mut()
            .wait_for_transport_end(LINGER_MAX_BYTES);
    }
}

/// The response side: owns the writing half toward the client.
struct ResponseSide {
    client: Arc<Client>,
    live: Arc<LiveConn>,
    upstream: Inbound<Box<dyn UpstreamRead>>,
    writer: TlsWriter,
    control: TlsControl,
    exchanges: Arc<Exchanges<Forwarded>>,
    verdicts: Sender<bool>,
}

/// How one response ended.
enum ResponseEnd {
    /// Complete; the connection can carry another exchange.
    KeepAlive,
    /// Complete, but the connection cannot carry more (close-delimited body, 502, ...).
    Close,
    /// The connection is now a raw stream.
    Hijacked,
}

impl ResponseSide {
    fn run(mut self) -> Option<Hijack> {
        if let Some(request) = self.relay_responses() {
            return Some(self.run_hijacked(request));
        }
        // Docker will not be read any more: unblock a request side still writing to it, and
        // close toward the client, leaving it `LINGER` to close its side.
        self.upstream.get_ref().abort();
        let _ = self.writer.shutdown_write();
        self.control.set_read_timeout(Some(LINGER));
        None
    }

    /// Answers the queued requests in order until the connection must close (`None`) or a
    /// response hijacks it (the request it answered).
    fn relay_responses(&mut self) -> Option<Forwarded> {
        let mut completed_one = false;
        loop {
            let item = match self.exchanges.next(completed_one) {
                Next::Item(item) => item,
                Next::Ended => return None,
                Next::Empty => self.wait_for_docker()?,
            };
            match item {
                Queued::Refused { status, message } => {
                    let _ = write_error(&mut self.writer, status, &message);
                    return None;
                }
                Queued::Forwarded(request) => match self.relay_response(&request) {
                    ResponseEnd::KeepAlive => {
                        self.live.work.request_done();
                        completed_one = true
                    }
                    ResponseEnd::Close => {
                        self.live.work.request_done();
                        return None;
                    }
                    ResponseEnd::Hijacked => return Some(request),
                },
            }
        }
    }

    /// With nothing queued, sleeps in a read from Docker rather than on the queue (see
    /// `exchanges`): when Docker's answer arrives its request is queued. Returns the entry
    /// found after the read, or `None` when the connection must close: the request side has
    /// stopped, Docker closed an idle connection, or Docker sent bytes that answer no request.
    fn wait_for_docker(&mut self) -> Option<Queued<Forwarded>> {
        let read = self.upstream.fill().map(|bytes| bytes.len());
        match self.exchanges.next(false) {
            Next::Item(item) => Some(item),
            Next::Ended => None,
            Next::Empty => {
                match read {
                    Ok(0) => debug!(
                        "peer={}: Docker closed an idle connection",
                        self.client.peer
                    ),
                    Ok(n) => warn!(
                        "peer={}: Docker sent {n} bytes that answer no request; closing",
                        self.client.peer
                    ),
                    Err(e) => debug!(
                        "peer={}: idle connection to Docker failed: {e}",
                        self.client.peer
                    ),
                }
                None
            }
        }
    }

    /// Relays interim responses and the final response of one request.
    fn relay_response(&mut self, request: &Forwarded) -> ResponseEnd {
        loop {
            let response = match head::read_response(&mut self.upstream, &request.method) {
                Ok(Some(response)) => response,
                Ok(None) => {
                    return self
                        .bad_gateway(request, "Docker closed the connection without answering")
                }
                Err(HeadError::Io(e)) => {
                    return self
                        .bad_gateway(request, &format!("reading Docker's answer failed: {e}"))
                }
                Err(HeadError::Malformed(why)) => {
                    return self.bad_gateway(request, &format!("invalid answer from Docker: {why}"))
                }
                Err(HeadError::TooLarge | HeadError::Truncated) => {
                    return self.bad_gateway(
                        request,
                        "invalid answer from Docker: truncated or oversized head",
                    )
                }
            };
            // dockerd's answer alone says whether the connection is now a raw stream (the
            // request path may be spelled in ways only dockerd decodes).
            let hijacked = response.status == 101
                || (response.status == 200
                    && response.raw_stream
                    && response.framing == Framing::UntilClose);
            let interim = (100..200).contains(&response.status) && !hijacked;
            if !interim {
                // Tell the request side whether to keep parsing HTTP or to copy raw bytes.
                let _ = self.verdicts.send(hijacked);
            }
            if hijacked {
                audit::session_start(
                    &self.client,
                    &request.method,
                    &request.target,
                    response.status,
                );
                crate::metrics::SESSIONS_OPEN.inc();
                self.live.set_activity(format!(
                    "session {} {}",
                    request.method, request.target.path
                ));
                let head_len = response.len;
                if self
                    .writer
                    .write_all(&self.upstream.buffered()[..head_len])
                    .is_err()
                {
                    return ResponseEnd::Close;
                }
                self.upstream.consume(head_len);
                return ResponseEnd::Hijacked;
            }
            if interim {
                // 100 Continue and friends: forward, then wait for the final response.
                if self
                    .writer
                    .write_all(&self.upstream.buffered()[..response.len])
                    .is_err()
                {
                    return ResponseEnd::Close;
                }
                self.upstream.consume(response.len);
                continue;
            }
            return self.relay_final(request, response);
        }
    }

    fn relay_final(&mut self, request: &Forwarded, response: head::ResponseHead) -> ResponseEnd {
        let streamed = matches!(response.framing, Framing::Chunked | Framing::UntilClose);
        if streamed && !request.announced {
            // A body without a length may run for hours (`/events`, `logs -f`, `wait`).
            audit::request_start(
                &self.client,
                &request.method,
                &request.target,
                Some(response.status),
            );
        }
        let mut bytes_out = 0;
        let relayed = match response.framing {
            // Head and a body that is already here leave in one write: one TLS record for
            // the common small JSON answer.
            Framing::Length(n) if (self.upstream.buffered().len() - response.len) as u64 >= n => {
                let total = response.len + n as usize;
                let result = self.writer.write_all(&self.upstream.buffered()[..total]);
                self.upstream.consume(total);
                result.map(|()| bytes_out = n).map_err(RelayError::Sink)
            }
            framing => self.relay_head_then_body(response.len, framing, &mut bytes_out),
        };
        // Without this, a `Connection: close` exchange would hang: Docker closes, but the
        // gate would wait for the client's next request while the client waits for the close.
        let keep_alive = response.framing != Framing::UntilClose && !response.closes;
        let (outcome, end) = match relayed {
            Ok(()) if keep_alive => (Outcome::Complete, ResponseEnd::KeepAlive),
            Ok(()) => (Outcome::Complete, ResponseEnd::Close),
            Err(e) => {
                debug!(
                    "peer={}: response to {} {} cut: {e}",
                    self.client.peer, request.method, request.target.path
                );
                let outcome = match e {
                    RelayError::Sink(_) => Outcome::ClientAborted,
                    RelayError::Source(_) | RelayError::Malformed(_) => Outcome::UpstreamClosed,
                };
                (outcome, ResponseEnd::Close)
            }
        };
        request.log(&self.client, Some(response.status), bytes_out, outcome);
        end
    }

    fn relay_head_then_body(
        &mut self,
        head_len: usize,
        framing: Framing,
        moved: &mut u64,
    ) -> Result<(), RelayError> {
        self.writer
            .write_all(&self.upstream.buffered()[..head_len])
            .map_err(RelayError::Sink)?;
        self.upstream.consume(head_len);
        let (upstream, writer) = (&mut self.upstream, &mut self.writer);
        match framing {
            Framing::None => Ok(()),
            Framing::Length(n) => body::relay_length(upstream, writer, n, moved),
            Framing::Chunked => body::relay_chunked(upstream, writer, moved),
            Framing::UntilClose => body::relay_until_eof(upstream, writer, moved),
        }
    }

    /// Answers 502 when Docker failed before the response head; the connection then closes.
    /// When the client broke off its request body first (and the gate then aborted the upstream
    /// connection), nobody is answered and nothing is blamed on Docker.
    fn bad_gateway(&mut self, request: &Forwarded, why: &str) -> ResponseEnd {
        let _ = self.verdicts.send(false);
        if request.upload.client_aborted() {
            request.log(&self.client, None, 0, Outcome::ClientAborted);
            return ResponseEnd::Close;
        }
        let message = format!("dockgate: {why}");
        warn!(
            "peer={}: {} {}: {message}",
            self.client.peer, request.method, request.target.path
        );
        let _ = write_error(&mut self.writer, 502, &message);
        request.log(&self.client, Some(502), 0, Outcome::UpstreamClosed);
        ResponseEnd::Close
    }

    /// Copies Docker's side of a raw stream to the client until Docker ends it.
    fn run_hijacked(self, request: Forwarded) -> Hijack {
        // Keep only what the copy needs (the queue and the verdict channel are done with).
        let ResponseSide {
            mut upstream,
            mut writer,
            control,
            ..
        } = self;
        let (bytes_out, outcome) = relay::upstream_to_client(&mut upstream, &mut writer, &control);
        Hijack {
            method: request.method,
            target: request.target,
            started: request.started,
            upload: request.upload,
            bytes_out,
            outcome,
        }
    }
}
