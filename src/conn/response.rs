//! The response side of a session: answers the queued requests in order, relaying Docker's
//! responses and writing the gate's own answers, until the connection closes or a response
//! switches it to a raw stream, which it then copies toward the client (see `relay`).
//!
//! Only dockerd's answer decides whether a connection is now a raw stream (`101 UPGRADED`, or a
//! `200` with a raw-stream content type and no framing, the legacy answer to attach and exec
//! start), whatever the path looks like; so this side reports a verdict for every forwarded
//! request, and the request side reads the client's next bytes as HTTP only once every request
//! before them is known not to have switched.

use std::io::Write;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread;

use log::{debug, warn};

use super::answer::LocalAnswer;
use super::exchanges::{Next, Queued};
use super::request::{Forwarded, Queue};
use crate::audit::{self, Client, Outcome};
use crate::http::body::{self, RelayError};
use crate::http::head::{self, Framing, HeadError, ResponseHead, MAX_HEAD};
use crate::http::inbound::Inbound;
use crate::registry::{Activity, Doing, LiveConn};
use crate::relay;
use crate::tls::stream::{TlsControl, TlsWriter};
use crate::upstream::UpstreamRead;

type DockerSide = Inbound<Box<dyn UpstreamRead>>;

/// The response side: owns the writing half toward the client.
pub struct ResponseSide {
    client: Arc<Client>,
    live: Arc<LiveConn>,
    /// The current upstream connection's reading half (none before the first request, and
    /// after a local answer dropped it).
    upstream: Option<DockerSide>,
    writer: TlsWriter,
    control: TlsControl,
    exchanges: Option<Arc<Queue>>,
    verdicts: Option<Sender<bool>>,
}

/// A hijacked session, as its `session end` record needs it.
pub struct Hijack {
    pub request: Forwarded,
    pub bytes_out: u64,
    pub outcome: Outcome,
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
    pub fn new(
        client: Arc<Client>,
        live: Arc<LiveConn>,
        writer: TlsWriter,
        control: TlsControl,
        exchanges: Arc<Queue>,
        verdicts: Sender<bool>,
    ) -> ResponseSide {
        ResponseSide {
            client,
            live,
            upstream: None,
            writer,
            control,
            exchanges: Some(exchanges),
            verdicts: Some(verdicts),
        }
    }

    pub fn run(mut self) -> Option<Hijack> {
        if let Some((request, upstream)) = self.relay_responses() {
            return Some(self.run_hijacked(request, upstream));
        }
        // Docker will not be read any more: unblock a request side still writing to it.
        if let Some(upstream) = &self.upstream {
            upstream.get_ref().abort();
        }
        super::close_toward_client(&mut self.writer, &self.control);
        None
    }

    /// Answers the queued requests in order until the connection must close (`None`) or a
    /// response hijacks it (the request it answered, and the connection it came on).
    fn relay_responses(&mut self) -> Option<(Forwarded, DockerSide)> {
        let exchanges = self.exchanges.clone()?;
        let mut completed_one = false;
        loop {
            let item = match exchanges.next(std::mem::take(&mut completed_one)) {
                Next::Item(item) => item,
                Next::Ended => return None,
                Next::Empty if self.upstream.is_none() => match exchanges.wait() {
                    Next::Item(item) => item,
                    Next::Empty | Next::Ended => return None,
                },
                Next::Empty => self.wait_for_docker(&exchanges)?,
            };
            match item {
                Queued::Connected(reader) => {
                    self.upstream = Some(Inbound::new(reader, MAX_HEAD));
                }
                Queued::Local {
                    answer,
                    request,
                    upstream_dropped,
                } => {
                    let head_only = request.as_ref().is_some_and(|r| r.method == "HEAD");
                    let written = answer.write_to(&mut self.writer, head_only);
                    if let Some(request) = request {
                        let outcome = if written.is_ok() {
                            answer.outcome()
                        } else {
                            Outcome::ClientAborted
                        };
                        request.log(&self.client, Some(answer.status()), 0, outcome);
                        self.live.request_answered(request.started);
                    }
                    if upstream_dropped {
                        self.upstream = None;
                    }
                    if answer.closes() || written.is_err() {
                        return None;
                    }
                }
                Queued::Interim {
                    bytes,
                    upstream_dropped,
                } => {
                    if self.writer.write_all(bytes).is_err() {
                        return None;
                    }
                    if upstream_dropped {
                        self.upstream = None;
                    }
                }
                Queued::Forwarded(request) => {
                    let mut upstream = self.upstream.take()?;
                    let end = self.relay_response(&mut upstream, &request);
                    if !matches!(end, ResponseEnd::Hijacked) {
                        // Answered (completely or not): a hijacked request is never done.
                        self.live.work.request_done();
                        self.live.request_answered(request.started);
                    }
                    match end {
                        ResponseEnd::KeepAlive => completed_one = true,
                        ResponseEnd::Close => {
                            self.upstream = Some(upstream);
                            return None;
                        }
                        ResponseEnd::Hijacked => return Some((request, upstream)),
                    }
                    self.upstream = Some(upstream);
                }
            }
        }
    }

    /// With nothing queued, sleeps in a read from Docker rather than on the queue (see
    /// `exchanges`): when Docker's answer arrives its request is queued. Returns the entry
    /// found after the read, or `None` when the connection must close: the request side has
    /// stopped, Docker closed an idle connection, or Docker sent bytes that answer no request.
    fn wait_for_docker(
        &mut self,
        exchanges: &Queue,
    ) -> Option<Queued<Forwarded, Box<dyn UpstreamRead>>> {
        let read = self.upstream.as_mut()?.fill().map(|bytes| bytes.len());
        match exchanges.next(false) {
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

    fn verdict(&self, hijacked: bool) {
        if let Some(verdicts) = &self.verdicts {
            let _ = verdicts.send(hijacked);
        }
    }

    /// Relays interim responses and the final response of one request.
    fn relay_response(&mut self, upstream: &mut DockerSide, request: &Forwarded) -> ResponseEnd {
        loop {
            let response = match head::read_response(upstream, &request.method) {
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
                self.verdict(hijacked);
            }
            if hijacked {
                audit::session_start(
                    &self.client,
                    &request.method,
                    &request.target,
                    response.status,
                );
                crate::metrics::SESSIONS_OPEN.inc();
                let doing = match self.live.activity() {
                    Activity::Request(doing) => doing,
                    // Not reached while the request side records each request before it
                    // forwards it; kept so that a session is never left out of the registry.
                    _ => session_doing(request),
                };
                self.live.set_activity(Activity::Session(doing));
            }
            if hijacked || interim {
                // The head of a 101 (or a raw-stream 200), or 100 Continue and friends.
                let head_len = response.len;
                if self
                    .writer
                    .write_all(&upstream.buffered()[..head_len])
                    .is_err()
                {
                    return ResponseEnd::Close;
                }
                upstream.consume(head_len);
                if hijacked {
                    return ResponseEnd::Hijacked;
                }
                continue;
            }
            return self.relay_final(upstream, request, response);
        }
    }

    fn relay_final(
        &mut self,
        upstream: &mut DockerSide,
        request: &Forwarded,
        response: ResponseHead,
    ) -> ResponseEnd {
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
            Framing::Length(n) if (upstream.buffered().len() - response.len) as u64 >= n => {
                let total = response.len + n as usize;
                let result = self.writer.write_all(&upstream.buffered()[..total]);
                upstream.consume(total);
                result.map(|()| bytes_out = n).map_err(RelayError::Sink)
            }
            framing => self.relay_head_then_body(upstream, response.len, framing, &mut bytes_out),
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
        upstream: &mut DockerSide,
        head_len: usize,
        framing: Framing,
        moved: &mut u64,
    ) -> Result<(), RelayError> {
        self.writer
            .write_all(&upstream.buffered()[..head_len])
            .map_err(RelayError::Sink)?;
        upstream.consume(head_len);
        let writer = &mut self.writer;
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
        self.verdict(false);
        if request.upload.client_aborted() {
            request.log(&self.client, None, 0, Outcome::ClientAborted);
            return ResponseEnd::Close;
        }
        let answer = LocalAnswer::BadGateway(why.to_string());
        warn!(
            "peer={}: {} {}: {}",
            self.client.peer,
            request.method,
            request.target.path,
            answer.message()
        );
        let _ = answer.write_to(&mut self.writer, request.method == "HEAD");
        request.log(&self.client, Some(502), 0, Outcome::UpstreamClosed);
        ResponseEnd::Close
    }

    /// Copies Docker's side of a raw stream to the client until Docker ends it.
    fn run_hijacked(mut self, request: Forwarded, mut upstream: DockerSide) -> Hijack {
        // The queue and the verdict channel are done with, and a session may last hours.
        self.exchanges = None;
        self.verdicts = None;
        let (bytes_out, outcome) =
            relay::upstream_to_client(&mut upstream, &mut self.writer, &self.control);
        Hijack {
            request,
            bytes_out,
            outcome,
        }
    }
}

impl Drop for ResponseSide {
    /// A panic here must not leave the request side waiting for answers, nor the client
    /// connected to a gate that no longer answers.
    fn drop(&mut self) {
        if thread::panicking() {
            if let Some(upstream) = &self.upstream {
                upstream.get_ref().abort();
            }
            self.control.abort();
        }
    }
}

/// The activity of a session whose request the registry did not have: classified from the
/// logged (decoded) path, the only form of the target the response side keeps.
fn session_doing(request: &Forwarded) -> Doing {
    let path = &request.target.path;
    let endpoint = crate::api::classify(&request.method, path)
        .ok()
        .map(|r| r.endpoint);
    Doing::new(&request.method, path, path, endpoint, request.started)
}
