//! The request side of a session: reads requests from the client, opens the upstream
//! connection when the first one needs it (and again after a local answer dropped it), checks
//! each request's framing, and forwards it; the gate's own answers go through the same queue as
//! forwarded requests (`exchanges`), so every answer leaves in order from the response side.
//!
//! Whatever way this side ends (a normal end, an early return, a panic), dropping it finishes
//! the queue and aborts what is left of the upstream connection, so the response side never
//! goes on relaying Docker's output for a request side that is gone; a panic also aborts the
//! client connection.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use log::{error, warn};

use super::answer::LocalAnswer;
use super::exchanges::Exchanges;
use super::response::{Hijack, ResponseSide};
use super::tenancy::{expects_continue, rewrite_head, Tenancy, TenantOf};
use super::RESPONSE_THREADS;
use crate::api::{self, ApiRequest, TargetError};
use crate::audit::{self, Client, Outcome};
use crate::enforce::PolicyInForce;
use crate::http::body::{self, RelayError};
use crate::http::head::{self, RequestFraming, RequestHead};
use crate::http::inbound::Inbound;
use crate::http::target::LoggedTarget;
use crate::policy::decide::{Outcome as PolicyOutcome, Request as PolicyRequest};
use crate::policy::{Mode, Policy};
use crate::registry::{Activity, Doing, LiveConn};
use crate::relay;
use crate::tls::stream::{TlsControl, TlsReader, TlsWriter};
use crate::upstream::{Upstream, UpstreamConn, UpstreamRead, UpstreamWrite};

/// Request bodies from this size on get a `request start` record (chunked ones always do): an
/// upload this large may take long, and must be in the log while it runs.
const LARGE_UPLOAD: u64 = 1024 * 1024;

/// The queue between the two sides: forwarded requests, upstream connections (their reading
/// halves), local answers.
pub type Queue = Exchanges<Forwarded, Box<dyn UpstreamRead>>;

/// Where the upstream connection comes from (Docker's endpoint; a socket pair in tests).
pub trait Dial: Sync {
    fn dial(&self) -> io::Result<UpstreamConn>;
    /// For the 502 message.
    fn describe(&self) -> String;
    /// The endpoint tenancy resolves references through (`None`: a test double, and a
    /// tenant's request that needs resolving gets a 502).
    fn resolver(&self) -> Option<&Upstream> {
        None
    }
}

impl Dial for Upstream {
    fn dial(&self) -> io::Result<UpstreamConn> {
        self.connect()
    }
    fn describe(&self) -> String {
        self.to_string()
    }
    fn resolver(&self) -> Option<&Upstream> {
        Some(self)
    }
}

/// A request on its way to Docker (or answered by the gate), as the response side needs it.
pub struct Forwarded {
    pub method: String,
    pub target: LoggedTarget,
    /// When its head was read.
    pub started: Instant,
    /// Filled in by the request side as the body goes through.
    pub upload: Arc<Upload>,
    /// A `request start` record was written when the request was forwarded.
    pub announced: bool,
    /// The client's role under the access policy (`None`: no policy in force).
    pub role: Option<String>,
    /// The tenant's owner (`None`: not a tenant).
    pub owner: Option<String>,
    /// The full ID tenancy resolved the request's object to, and forwarded it with.
    pub id: Option<String>,
}

/// How the request body of one exchange went, as the request side reports it.
#[derive(Default)]
pub struct Upload {
    /// Body bytes written to Docker so far, counted as they flow.
    bytes: AtomicU64,
    /// The client's connection failed (a reset, a broken TLS record, an end in the middle of
    /// the body) while this was the latest exchange. The request side sets it before it aborts
    /// the upstream connection, so the response side, which then sees Docker's side fail, does
    /// not blame Docker.
    client_aborted: AtomicBool,
}

impl Upload {
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn client_aborted(&self) -> bool {
        self.client_aborted.load(Ordering::SeqCst)
    }

    fn mark_client_aborted(&self) {
        self.client_aborted.store(true, Ordering::SeqCst);
    }
}

impl Forwarded {
    /// The audit line for this request, once its answer is complete (or failed).
    pub fn log(&self, client: &Client, status: Option<u16>, bytes_out: u64, outcome: Outcome) {
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
            bytes_in: self.upload.bytes(),
            bytes_out,
            started: self.started,
            outcome,
            role: self.role.as_deref(),
            owner: self.owner.as_deref(),
            id: self.id.as_deref(),
        });
    }
}

/// How the request loop stopped.
enum RequestsEnd {
    /// The client ended its side between requests.
    ClientDone,
    /// The client or the connection failed; the upstream must not wait for more.
    Broken,
    /// The gate answered a request itself and the connection closes after it.
    Refused,
    /// A response switched the connection to a raw stream.
    Hijacked,
}

/// The request side of one session. See the module doc.
pub struct RequestSide<'a> {
    client: Arc<Client>,
    live: Arc<LiveConn>,
    inbound: Inbound<TlsReader>,
    control: TlsControl,
    dial: &'a dyn Dial,
    policy: &'a PolicyInForce,
    /// The writing half toward the client, until the response side starts and takes it.
    writer: Option<TlsWriter>,
    /// Once the response side runs: the queue, its verdicts and its outcome.
    responses: Option<Responses>,
    /// The upstream connection's writing half, once opened (and until dropped).
    upstream: Option<Box<dyn UpstreamWrite>>,
    /// Requests forwarded whose verdict (did the answer switch to a raw stream?) is not in.
    undecided: usize,
}

struct Responses {
    queue: Arc<Queue>,
    /// `None` once hijacked: nothing more is decided.
    verdicts: Option<Receiver<bool>>,
    /// What the response side returns, sent when it has ended (and dropped): a closed channel
    /// when it panicked. `None` once taken.
    ended: Option<Receiver<Option<Hijack>>>,
}

impl<'a> RequestSide<'a> {
    pub fn new(
        client: Arc<Client>,
        live: Arc<LiveConn>,
        inbound: Inbound<TlsReader>,
        writer: TlsWriter,
        control: TlsControl,
        dial: &'a dyn Dial,
        policy: &'a PolicyInForce,
    ) -> RequestSide<'a> {
        RequestSide {
            client,
            live,
            inbound,
            control,
            dial,
            policy,
            writer: Some(writer),
            responses: None,
            upstream: None,
            undecided: 0,
        }
    }

    /// Serves requests until the connection ends, waits for the response side, writes the
    /// session record of a hijacked connection, and lingers (see `conn::linger`).
    pub fn run(mut self) {
        let end = self.forward_requests();
        let raw_in = self.end_requests(end);
        let hijack = self
            .responses
            .as_mut()
            .and_then(|r| r.ended.take())
            .and_then(|ended| ended.recv().ok().flatten());
        if let Some(session) = hijack {
            log_session_end(&self.client, session, raw_in);
        }
        super::linger(&mut self.inbound, &self.control);
    }

    /// What follows the request loop: the raw copy of a hijacked session (its byte count and
    /// outcome), or telling the upstream connection and the response side that nothing more
    /// comes.
    fn end_requests(&mut self, end: RequestsEnd) -> Option<(u64, Outcome)> {
        let idle = match &end {
            RequestsEnd::Hijacked => {
                // The queue and the verdicts are done with; a session may last hours.
                if let Some(responses) = self.responses.as_mut() {
                    responses.verdicts = None;
                }
                let upstream = self.upstream.as_mut()?;
                return Some(relay::client_to_upstream(
                    &mut self.inbound,
                    &mut **upstream,
                ));
            }
            _ => self.responses.as_ref().is_none_or(|r| r.queue.finish()),
        };
        match end {
            RequestsEnd::ClientDone => {
                // Like a direct client closing its socket: dockerd ends what it was streaming.
                if let Some(upstream) = self.upstream.as_mut() {
                    let _ = upstream.close_write();
                }
            }
            RequestsEnd::Broken => {
                if let Some(mut upstream) = self.upstream.take() {
                    upstream.abort();
                }
            }
            RequestsEnd::Refused | RequestsEnd::Hijacked => {}
        }
        match self.upstream.take() {
            // Nothing outstanding: wake the response side rather than wait for Docker to
            // close (a named pipe or another proxy may never do so).
            Some(mut upstream) if idle => upstream.abort(),
            // Answers are outstanding: the response side reads them, then ends.
            _ => {}
        }
        None
    }

    /// Forwards requests until the client is done, something breaks, the gate answers with
    /// an answer that closes, or the connection is hijacked.
    fn forward_requests(&mut self) -> RequestsEnd {
        let mut latest: Option<Arc<Upload>> = None;
        loop {
            let request = match head::read_request(&mut self.inbound) {
                Ok(Some(request)) => request,
                Ok(None) => return RequestsEnd::ClientDone,
                Err(e) => match LocalAnswer::for_head_error(&e) {
                    Some(answer) => {
                        audit::request_refused(&self.client, answer.status(), &answer.message());
                        self.answer(answer, None);
                        return RequestsEnd::Refused;
                    }
                    None => {
                        if let Some(upload) = &latest {
                            upload.mark_client_aborted();
                        }
                        return RequestsEnd::Broken;
                    }
                },
            };
            let upload = Arc::new(Upload::default());
            latest = Some(upload.clone());
            if let Some(end) = self.forward_request(request, upload) {
                return end;
            }
        }
    }

    /// Forwards one request and waits for what its answer decides; `Some` when the request
    /// loop ends here.
    fn forward_request(
        &mut self,
        mut request: RequestHead,
        upload: Arc<Upload>,
    ) -> Option<RequestsEnd> {
        let started = Instant::now();
        // Each target is parsed once, here: the registry, the policy and tenancy all get this.
        let classified = api::classify(&request.method, &request.target);
        let target = LoggedTarget::new(std::mem::take(&mut request.target));
        self.live.set_activity(Activity::Request(Doing::new(
            &request.method,
            target.raw.as_deref().unwrap_or(&target.path),
            &target.path,
            classified.as_ref().ok().map(|r| r.endpoint.clone()),
            started,
        )));
        // Read after the activity is recorded: a policy reload either happened before (and this
        // request gets the new policy) or finds the request and re-checks it.
        let policy = self.policy.current();
        let mut forwarded = Forwarded {
            method: std::mem::take(&mut request.method),
            target,
            started,
            upload: upload.clone(),
            announced: false,
            role: None,
            owner: None,
            id: None,
        };
        let mut prepared = None;
        if let Some(policy) = &policy {
            match self.decide(policy, &request, &classified, &mut forwarded) {
                Decided::Forward(bytes) => prepared = Some(bytes),
                Decided::Answer(answer) => {
                    let closes = answer.closes();
                    self.answer(answer, Some(forwarded));
                    return closes.then_some(RequestsEnd::Refused);
                }
                Decided::Broken => return Some(RequestsEnd::Broken),
            }
        }
        if self.upstream.is_none() {
            if let Err(answer) = self.connect() {
                self.answer(answer, Some(forwarded));
                return Some(RequestsEnd::Refused);
            }
        }
        forwarded.announced = match request.framing {
            RequestFraming::Chunked => true,
            RequestFraming::Length(n) => n >= LARGE_UPLOAD,
            RequestFraming::None => false,
        };
        if forwarded.announced {
            audit::request_start(&self.client, &forwarded.method, &forwarded.target, None);
        }
        let queue = self.queue()?.clone();
        queue.forward(forwarded);
        self.undecided += 1;
        self.live.work.request_started();
        let sent = match prepared {
            Some(prepared) => self.forward_prepared(prepared, &request, &upload),
            None => self.forward_one(&request, &upload),
        };
        if let Err(e) = sent {
            warn!("peer={}: request not forwarded: {e}", self.client.peer);
            return Some(RequestsEnd::Broken);
        }
        self.await_verdicts(&upload)
    }

    /// Opens the upstream connection and hands its reading half to the response side.
    fn connect(&mut self) -> Result<(), LocalAnswer> {
        let conn = self.dial.dial().map_err(|e| {
            let message = format!("cannot reach Docker at {}: {e}", self.dial.describe());
            error!("peer={}: dockgate: {message}", self.client.peer);
            LocalAnswer::BadGateway(message)
        })?;
        let Some(queue) = self.queue() else {
            return Err(LocalAnswer::ServiceUnavailable(
                "cannot start a session thread".into(),
            ));
        };
        queue.connected(conn.reader);
        self.upstream = Some(conn.writer);
        Ok(())
    }

    /// Queues the gate's own answer (after the answers before it).
    fn answer(&mut self, answer: LocalAnswer, request: Option<Forwarded>) {
        let Some(queue) = self.queue() else { return };
        if queue.answer_locally(answer, request) {
            // The response side may be asleep in a read from Docker: wake it (see `exchanges`).
            if let Some(mut upstream) = self.upstream.take() {
                upstream.abort();
            }
        }
    }

    /// The queue to the response side, starting that side on first use; `None` when its
    /// thread cannot start (logged).
    fn queue(&mut self) -> Option<&Arc<Queue>> {
        if self.responses.is_none() {
            let writer = self.writer.take()?;
            let queue = Arc::new(Queue::new());
            let (verdict_tx, verdicts) = mpsc::channel();
            let side = ResponseSide::new(
                self.client.clone(),
                self.live.clone(),
                writer,
                self.control.clone(),
                queue.clone(),
                verdict_tx,
            );
            let (ended_tx, ended) = mpsc::channel();
            let started = RESPONSE_THREADS.run(Box::new(move || {
                // `run` consumes the side: it is dropped (its guard has run) before this sends.
                let _ = ended_tx.send(side.run());
            }));
            match started {
                Ok(()) => {
                    self.responses = Some(Responses {
                        queue,
                        verdicts: Some(verdicts),
                        ended: Some(ended),
                    })
                }
                Err(e) => {
                    error!("peer={}: cannot start a thread: {e}", self.client.peer);
                    return None;
                }
            }
        }
        self.responses.as_ref().map(|r| &r.queue)
    }

    /// Waits until the response side has said, for every request forwarded, whether its answer
    /// switched the connection to a raw stream; `Some` when one did (or the response side is
    /// gone), and the client's next bytes are then no HTTP.
    ///
    /// It first waits for those next bytes (or the client's end): a client sends its next
    /// request only after it has read the answer to the last one, so the verdict is in by then
    /// and taking it costs no extra wake-up; and bytes a client sends before a `101` stay
    /// unparsed in the buffer until it is known what they are.
    fn await_verdicts(&mut self, latest: &Upload) -> Option<RequestsEnd> {
        let next = self.inbound.fill().map(|bytes| bytes.is_empty());
        let verdicts = self.responses.as_ref()?.verdicts.as_ref()?;
        while self.undecided > 0 {
            match verdicts.recv() {
                // The raw copy starts with what is buffered, and meets the end or the error
                // of the client's stream itself.
                Ok(true) => return Some(RequestsEnd::Hijacked),
                Ok(false) => self.undecided -= 1,
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
    /// `upload` as they go (also when the body is cut).
    fn forward_one(&mut self, request: &RequestHead, upload: &Upload) -> Result<(), RelayError> {
        let Some(upstream) = self.upstream.as_mut() else {
            return Err(RelayError::Sink(io::ErrorKind::NotConnected.into()));
        };
        upstream
            .write_all(&self.inbound.buffered()[..request.len])
            .map_err(RelayError::Sink)?;
        self.inbound.consume(request.len);
        self.relay_body(request.framing, upload)
    }

    /// Sends a request whose head (and body, when the policy needed it) the decision already
    /// took out of the client's buffer: exactly the bytes as received.
    fn forward_prepared(
        &mut self,
        prepared: Prepared,
        request: &RequestHead,
        upload: &Upload,
    ) -> Result<(), RelayError> {
        let Some(upstream) = self.upstream.as_mut() else {
            return Err(RelayError::Sink(io::ErrorKind::NotConnected.into()));
        };
        upstream
            .write_all(&prepared.head)
            .map_err(RelayError::Sink)?;
        match prepared.body {
            Some((raw, payload)) => {
                upstream.write_all(&raw).map_err(RelayError::Sink)?;
                upload.bytes.fetch_add(payload, Ordering::Relaxed);
                Ok(())
            }
            None => self.relay_body(request.framing, upload),
        }
    }

    /// Relays the body of the request whose head was just sent, counting it in `upload` as it
    /// goes (also when it is cut).
    fn relay_body(&mut self, framing: RequestFraming, upload: &Upload) -> Result<(), RelayError> {
        let Some(upstream) = self.upstream.as_mut() else {
            return Err(RelayError::Sink(io::ErrorKind::NotConnected.into()));
        };
        let mut sent = &upload.bytes;
        let result = match framing {
            RequestFraming::None => Ok(()),
            RequestFraming::Length(n) => {
                body::relay_length(&mut self.inbound, &mut **upstream, n, &mut sent)
            }
            RequestFraming::Chunked => {
                body::relay_chunked(&mut self.inbound, &mut **upstream, &mut sent)
            }
        };
        if matches!(
            result,
            Err(RelayError::Source(_) | RelayError::Malformed(_))
        ) {
            // Before the caller aborts the upstream connection (see `Upload`).
            upload.mark_client_aborted();
        }
        result
    }

    /// Decides one request under the policy before anything of it reaches Docker. Takes the
    /// head (and, when the decision needs it, the whole body, at most `POLICY_BODY_LIMIT`) out
    /// of the client's buffer, so that what is forwarded is exactly what was decided on.
    fn decide(
        &mut self,
        policy: &Policy,
        request: &RequestHead,
        classified: &Result<ApiRequest, TargetError>,
        forwarded: &mut Forwarded,
    ) -> Decided {
        let live = self.live.clone();
        let who = live.cert_identity();
        let head = self.inbound.buffered()[..request.len].to_vec();
        self.inbound.consume(request.len);
        let tenant = TenantOf::new(policy, who);
        // A refused target needs no body: the policy answers it 400 (and, in audit mode,
        // tenancy refuses it for a tenant).
        let api_request = classified.as_ref().ok();
        let mut body = None;
        let mut decoded = Vec::new();
        let mut continued = false;
        if request.framing != RequestFraming::None
            && api_request.is_some_and(|r| policy.needs_body(who, r) || tenant.needs_body(r))
        {
            // A client that waits for `100 Continue` before its body gets it from the gate,
            // which reads the body now; dockerd then gets head and body at once, no `Expect`.
            if expects_continue(&head::request_headers(&head)) {
                self.send_continue();
                continued = true;
            }
            match self.body_for_decision(request.framing, forwarded) {
                Ok((raw, payload, plain)) => {
                    body = Some((raw, payload));
                    decoded = plain;
                }
                Err(decided) => return decided,
            }
        }
        // Reading the body may have taken long: decide with the policy in force now, so that a
        // reload while it arrived applies to it (a reload's re-check skips a request whose
        // decision needs its body). A newer policy that needs a body no one read gets an empty
        // one, which its inspection refuses.
        let latest = body.as_ref().and_then(|_| self.policy.current());
        let policy = latest.as_deref().unwrap_or(policy);
        let tenant = TenantOf::new(policy, who);
        let headers = head::request_headers(&head);
        let decision = policy.decide(
            who,
            &PolicyRequest {
                method: &forwarded.method,
                target: classified,
                headers: &headers,
                body: &decoded,
            },
        );
        forwarded.role = Some(decision.role.clone());
        if !decision.allowed() {
            let enforced = policy.mode == Mode::Enforce;
            audit::request_denied(&audit::Denial {
                client: &self.client,
                method: &forwarded.method,
                target: &forwarded.target,
                role: &decision.role,
                rule: &decision.rule,
                field: decision.field.as_deref(),
                message: &decision.message,
                enforced,
            });
            if enforced {
                let answer = match decision.outcome {
                    PolicyOutcome::BadRequest => LocalAnswer::BadRequest(
                        decision
                            .message
                            .strip_prefix("dockgate: bad request: ")
                            .unwrap_or(&decision.message)
                            .to_string(),
                    ),
                    _ => LocalAnswer::Forbidden(decision.message),
                };
                return self.answer_instead(answer, request.framing, body.is_some(), forwarded);
            }
        }
        let tenancy = tenant.apply(api_request, &headers, &decoded, self.dial.resolver());
        self.after_tenancy(
            tenancy,
            Prepared { head, body },
            continued,
            request.framing,
            forwarded,
        )
    }

    /// What to forward (or answer) once tenancy has been applied: the head rewritten as
    /// tenancy and a gate-sent `100 Continue` require, or the local answer of a refusal.
    fn after_tenancy(
        &mut self,
        tenancy: Tenancy,
        prepared: Prepared,
        continued: bool,
        framing: RequestFraming,
        forwarded: &mut Forwarded,
    ) -> Decided {
        let Prepared { head, body } = prepared;
        let body_read = body.is_some();
        match tenancy {
            Tenancy::None if continued => Decided::Forward(Prepared {
                head: rewrite_head(&head, None, None, true),
                body,
            }),
            Tenancy::None => Decided::Forward(Prepared { head, body }),
            Tenancy::Forward { owner, forward } => {
                forwarded.owner = Some(owner);
                forwarded.id = forward.resolved.map(|r| r.id);
                // A new body goes with its own Content-Length (never chunked).
                let new_len = forward.body.as_ref().map(Vec::len);
                let body = match forward.body {
                    Some(new) => Some((new, new_len.unwrap_or_default() as u64)),
                    None => body,
                };
                let head = match (forward.target, new_len, continued) {
                    (None, None, false) => head,
                    (target, len, _) => rewrite_head(&head, target.as_deref(), len, continued),
                };
                Decided::Forward(Prepared { head, body })
            }
            Tenancy::Refused { owner, refusal } => {
                audit::tenancy_refused(
                    &self.client,
                    &forwarded.method,
                    &forwarded.target,
                    owner.as_deref(),
                    refusal.status,
                    &refusal.reason,
                );
                forwarded.owner = owner;
                let answer = LocalAnswer::Tenancy {
                    status: refusal.status,
                    message: refusal.message,
                };
                self.answer_instead(answer, framing, body_read, forwarded)
            }
        }
    }

    /// Queues the gate's own `100 Continue` (after the answers before it).
    fn send_continue(&mut self) {
        let Some(queue) = self.queue() else { return };
        if queue.interim(b"HTTP/1.1 100 Continue\r\n\r\n") {
            // As for a local answer: wake a response side asleep in a read from Docker.
            if let Some(mut upstream) = self.upstream.take() {
                upstream.abort();
            }
        }
    }

    /// Answers a request locally instead of forwarding it. An answer that keeps the connection
    /// first reads and drops the body no decision read; when that body turns out to be
    /// malformed chunked encoding, the answer is a 400 that closes instead.
    fn answer_instead(
        &mut self,
        answer: LocalAnswer,
        framing: RequestFraming,
        body_read: bool,
        forwarded: &mut Forwarded,
    ) -> Decided {
        if !answer.closes() && !body_read {
            let dropped = Upload::default();
            match self.discard_body(framing, &dropped) {
                Ok(()) => {}
                Err(RelayError::Malformed(why)) => {
                    return self.refuse_body(forwarded, BodyError::Malformed(why))
                }
                Err(_) => {
                    forwarded.upload.mark_client_aborted();
                    return Decided::Broken;
                }
            }
        }
        Decided::Answer(answer)
    }

    /// Reads the whole body of a request the decision needs: as received (re-chunked), its
    /// payload size, and the payload itself; or what to do instead (`refuse_body`).
    fn body_for_decision(
        &mut self,
        framing: RequestFraming,
        forwarded: &Forwarded,
    ) -> Result<(Vec<u8>, u64, Vec<u8>), Decided> {
        let (raw, payload) = self
            .read_body(framing)
            .map_err(|e| self.refuse_body(forwarded, e))?;
        let plain = match framing {
            // `relay_chunked` wrote `raw` in its own framing, so this holds; if it ever did
            // not, the policy must not decide on an empty body.
            RequestFraming::Chunked => body::dechunk(&raw).ok_or_else(|| {
                self.refuse_body(forwarded, BodyError::Malformed("cannot be decoded"))
            })?,
            _ => raw.clone(),
        };
        Ok((raw, payload, plain))
    }

    /// The answer to a body the gate could not read to its end: 413 or 400 (both close, since
    /// where the body ends is unknown), logged as a refused request; a client that failed or
    /// left in the middle breaks the connection.
    fn refuse_body(&self, forwarded: &Forwarded, error: BodyError) -> Decided {
        let refusal = match error {
            BodyError::TooLarge => LocalAnswer::PayloadTooLarge(POLICY_BODY_LIMIT),
            BodyError::Malformed(why) => {
                LocalAnswer::BadRequest(format!("malformed chunked body: {why}"))
            }
            BodyError::Broken => {
                forwarded.upload.mark_client_aborted();
                return Decided::Broken;
            }
        };
        audit::body_refused(
            &self.client,
            &forwarded.method,
            &forwarded.target,
            refusal.status(),
            &refusal.message(),
        );
        Decided::Answer(refusal)
    }

    /// Reads a whole request body (as received, and its payload size) for the decision.
    fn read_body(&mut self, framing: RequestFraming) -> Result<(Vec<u8>, u64), BodyError> {
        match framing {
            RequestFraming::None => Ok((Vec::new(), 0)),
            RequestFraming::Length(n) if n > POLICY_BODY_LIMIT => Err(BodyError::TooLarge),
            RequestFraming::Length(n) => {
                let mut raw = Vec::with_capacity(n as usize);
                body::relay_length(&mut self.inbound, &mut raw, n, &mut 0u64)
                    .map_err(|_| BodyError::Broken)?;
                Ok((raw, n))
            }
            RequestFraming::Chunked => {
                let mut capped = Capped {
                    out: Vec::new(),
                    // The payload limit, with room for the framing of small chunks.
                    cap: 2 * POLICY_BODY_LIMIT as usize + 64 * 1024,
                };
                let mut payload = 0u64;
                match body::relay_chunked(&mut self.inbound, &mut capped, &mut payload) {
                    Ok(()) if payload <= POLICY_BODY_LIMIT => Ok((capped.out, payload)),
                    Ok(()) | Err(RelayError::Sink(_)) => Err(BodyError::TooLarge),
                    Err(RelayError::Malformed(why)) => Err(BodyError::Malformed(why)),
                    Err(RelayError::Source(_)) => Err(BodyError::Broken),
                }
            }
        }
    }

    /// Reads and drops the body of a request that is answered without being forwarded.
    fn discard_body(&mut self, framing: RequestFraming, tally: &Upload) -> Result<(), RelayError> {
        let mut sink = io::sink();
        let mut count = &tally.bytes;
        match framing {
            RequestFraming::None => Ok(()),
            RequestFraming::Length(n) => {
                body::relay_length(&mut self.inbound, &mut sink, n, &mut count)
            }
            RequestFraming::Chunked => {
                body::relay_chunked(&mut self.inbound, &mut sink, &mut count)
            }
        }
    }
}

/// The most of a request body the gate reads to decide on it: larger ones get 413 (dockerd's
/// AuthZ plugins were bypassed by bodies over their limit, CVE-2026-34040).
const POLICY_BODY_LIMIT: u64 = 1024 * 1024;

/// What the policy made of a request.
enum Decided {
    /// Forward these bytes (head, and the body if it was read).
    Forward(Prepared),
    /// Answer locally instead.
    Answer(LocalAnswer),
    /// The client failed while its body was read.
    Broken,
}

/// A request taken out of the client's buffer for its decision.
struct Prepared {
    head: Vec<u8>,
    /// The body as received (re-chunked like every relayed chunked body) and its payload size.
    body: Option<(Vec<u8>, u64)>,
}

/// Why a body the decision needs was not read.
enum BodyError {
    /// Over `POLICY_BODY_LIMIT`.
    TooLarge,
    /// Not valid chunked encoding (a bad size line, data longer than its size, an over-long
    /// line): the client gets a 400, not a dropped connection.
    Malformed(&'static str),
    /// The client failed or ended in the middle of it.
    Broken,
}

/// A `Vec` writer that refuses to grow past `cap`.
struct Capped {
    out: Vec<u8>,
    cap: usize,
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.out.len() + buf.len() > self.cap {
            return Err(io::Error::other("request body over the policy's limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RequestSide<'_> {
    /// The guard of the two-thread protocol: however this side ends, the response side learns
    /// that no more requests come, and a response side blocked on Docker is woken.
    fn drop(&mut self) {
        if let Some(responses) = &self.responses {
            responses.queue.finish();
        }
        if let Some(mut upstream) = self.upstream.take() {
            upstream.abort();
        }
        if thread::panicking() {
            error!(
                "peer={}: the request side failed; closing the connection",
                self.client.peer
            );
            self.control.abort();
        }
    }
}

fn log_session_end(client: &Client, session: Hijack, raw_in: Option<(u64, Outcome)>) {
    crate::metrics::SESSIONS_OPEN.dec();
    let (bytes_in_raw, outcome_in) = raw_in.unwrap_or((0, Outcome::ClientAborted));
    // Whichever direction failed says how the session ended; the client's side first.
    let outcome = match (outcome_in, session.outcome) {
        (Outcome::ClientAborted, _) | (_, Outcome::ClientAborted) => Outcome::ClientAborted,
        (Outcome::UpstreamClosed, _) | (_, Outcome::UpstreamClosed) => Outcome::UpstreamClosed,
        _ => Outcome::Complete,
    };
    audit::session_end(&audit::Exchange {
        client,
        method: &session.request.method,
        target: &session.request.target,
        status: Some(101),
        bytes_in: session.request.upload.bytes() + bytes_in_raw,
        bytes_out: session.bytes_out,
        started: session.request.started,
        outcome,
        role: session.request.role.as_deref(),
        owner: session.request.owner.as_deref(),
        id: session.request.id.as_deref(),
    });
}
