//! Who did what: the structured audit records. See `logging` for how records are rendered
//! (escaped, values capped) and README "Logs" for the fields.
//!
//! - `request start`: an exchange that may run long (a chunked or large upload, or a response
//!   streamed without a length: `/events`, `logs -f`, `build`, `wait`, `pull`...), written when
//!   it starts, so that nothing in flight is missing from the log if the gate stops;
//! - `request`: every exchange when it ends, with the bytes that actually moved each way and its
//!   `outcome` (`complete`, `client_aborted`, `upstream_closed`);
//! - `session start` / `session end`: a connection dockerd switched to a raw stream (attach,
//!   exec, BuildKit), recognised from dockerd's answer, never from the path;
//! - `request denied` / `would deny`: a request the access policy denies (or, in audit mode,
//!   would deny), with the role, the rule and the field;
//! - `tenancy refused`: a tenant's request naming an object that is not its own (or otherwise
//!   refused by tenancy), with the owner, the status the client got and the reason;
//! - `request refused`: a request head the gate refused before anything reached Docker (400,
//!   431), or a body it read for the policy and refused (400 malformed chunked, 413), with the
//!   status and the reason (and for a body the method and path);
//! - `connection refused`: a verified client turned away by a connection limit (503);
//! - `connection cut`: a live connection the gate ended (revocation, expiry, shutdown), with
//!   what it was doing;
//! - `handshake refused`: with the subject and serial the refused certificate claims;
//! - `handshakes refused`: connections closed before any handshake, aggregated per source.
//!
//! Paths are logged decoded, as dockerd routes them, with `raw_path` (the target as sent) when
//! that differs; `buildargs` values are redacted (see `http::target`).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use log::kv::Value;
use log::{Level, Record};

use crate::http::target::LoggedTarget;
use crate::tls::identity::PeerIdentity;

const TARGET: &str = "dockgate::audit";

/// The authenticated client of one connection.
#[derive(Debug)]
pub struct Client {
    pub peer: SocketAddr,
    pub identity: PeerIdentity,
}

/// How an exchange or a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Everything was relayed both ways.
    Complete,
    /// The client went away (reset, close, or a failed read or write on its side) first.
    ClientAborted,
    /// Docker closed or failed first (before or during its answer).
    UpstreamClosed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::ClientAborted => "client_aborted",
            Outcome::UpstreamClosed => "upstream_closed",
        }
    }
}

/// One request/response exchange or session, as its records need it.
pub struct Exchange<'a> {
    pub client: &'a Client,
    pub method: &'a str,
    pub target: &'a LoggedTarget,
    /// The status the client was sent (dockerd's, or the gate's own 502); `None` when no
    /// answer was sent, e.g. the client went away before Docker answered.
    pub status: Option<u16>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub started: Instant,
    pub outcome: Outcome,
    /// The client's role under `--policy` (`None`: no policy in force).
    pub role: Option<&'a str>,
    /// The tenant's owner (`None`: the role owns nothing).
    pub owner: Option<&'a str>,
    /// The full ID of the object tenancy resolved and forwarded the request to.
    pub id: Option<&'a str>,
}

/// A long-running exchange has started (`status`: dockerd's, once its head is in).
pub fn request_start(client: &Client, method: &str, target: &LoggedTarget, status: Option<u16>) {
    let mut fields = exchange_fields(client, method, target);
    if let Some(status) = status {
        fields.push(("status", Value::from(status)));
    }
    emit(Level::Info, "request start", &fields);
}

/// An exchange has ended.
pub fn request(e: &Exchange<'_>) {
    if let Some(status) = e.status {
        crate::metrics::request(e.method, status);
    }
    emit(Level::Info, "request", &end_fields(e, true));
}

/// A response switched the connection to a raw stream (attach, exec, BuildKit session).
pub fn session_start(client: &Client, method: &str, target: &LoggedTarget, status: u16) {
    let mut fields = exchange_fields(client, method, target);
    fields.push(("status", Value::from(status)));
    emit(Level::Info, "session start", &fields);
}

pub fn session_end(e: &Exchange<'_>) {
    emit(Level::Info, "session end", &end_fields(e, false));
}

/// A request the policy denies (`enforced`: answered 403 or 400 and not forwarded) or, in
/// `mode = "audit"`, would deny (forwarded).
pub struct Denial<'a> {
    pub client: &'a Client,
    pub method: &'a str,
    pub target: &'a LoggedTarget,
    pub role: &'a str,
    pub rule: &'a str,
    pub field: Option<&'a str>,
    pub message: &'a str,
    pub enforced: bool,
}

pub fn request_denied(d: &Denial<'_>) {
    crate::metrics::request_denied(d.role);
    let mut fields = exchange_fields(d.client, d.method, d.target);
    fields.push(("role", Value::from(d.role)));
    fields.push(("rule", Value::from(d.rule)));
    if let Some(field) = d.field {
        fields.push(("field", Value::from(field)));
    }
    fields.push(("reason", Value::from(d.message)));
    let event = if d.enforced {
        "request denied"
    } else {
        "would deny"
    };
    emit(Level::Warn, event, &fields);
}

/// A request tenancy refused (not the tenant's object, a spoofed owner label, dockerd not
/// answering the lookup); the client got `status` (for a foreign object dockerd's own 404),
/// `reason` says more.
pub fn tenancy_refused(
    client: &Client,
    method: &str,
    target: &LoggedTarget,
    owner: Option<&str>,
    status: u16,
    reason: &str,
) {
    let mut fields = exchange_fields(client, method, target);
    if let Some(owner) = owner {
        fields.push(("owner", Value::from(owner)));
    }
    fields.push(("status", Value::from(status)));
    fields.push(("reason", Value::from(reason)));
    emit(Level::Warn, "tenancy refused", &fields);
}

/// A request head the gate refused (it never reached Docker); the connection then closes.
pub fn request_refused(client: &Client, status: u16, reason: &str) {
    refused("request refused", client, status, reason);
}

/// A request whose body the gate read for the policy (or dropped for a denial) and refused
/// (`400` malformed chunked framing, `413` over the limit): nothing of it reached Docker and the
/// connection then closes.
/// The same record as a refused head, with the method and path.
pub fn body_refused(
    client: &Client,
    method: &str,
    target: &LoggedTarget,
    status: u16,
    reason: &str,
) {
    let mut fields = exchange_fields(client, method, target);
    fields.push(("status", Value::from(status)));
    fields.push(("reason", Value::from(reason)));
    emit(Level::Warn, "request refused", &fields);
}

/// A verified client's connection the gate turned away before serving it (a connection limit
/// reached): it got `status` and was closed.
pub fn connection_refused(client: &Client, status: u16, reason: &str) {
    refused("connection refused", client, status, reason);
}

fn refused(event: &str, client: &Client, status: u16, reason: &str) {
    let fields: Fields<'_> = vec![
        ("peer", Value::from_display(&client.peer)),
        ("subject", Value::from(client.identity.subject.as_str())),
        ("serial", Value::from(client.identity.serial.as_str())),
        ("status", Value::from(status)),
        ("reason", Value::from(reason)),
    ];
    emit(Level::Warn, event, &fields);
}

/// A live connection the gate ended, and why.
pub struct Cut<'a> {
    pub client: &'a Client,
    pub reason: &'a str,
    /// What it was doing, for people: `session POST /v1.41/exec/ID/start, 4.2 MiB, 12 min`.
    pub what: &'a str,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub age: Duration,
}

pub fn connection_cut(cut: &Cut<'_>) {
    let fields: Fields<'_> = vec![
        ("peer", Value::from_display(&cut.client.peer)),
        ("subject", Value::from(cut.client.identity.subject.as_str())),
        ("serial", Value::from(cut.client.identity.serial.as_str())),
        ("reason", Value::from(cut.reason)),
        ("what", Value::from(cut.what)),
        ("bytes_in", Value::from(cut.bytes_in)),
        ("bytes_out", Value::from(cut.bytes_out)),
        (
            "duration_ms",
            Value::from(u64::try_from(cut.age.as_millis()).unwrap_or(u64::MAX)),
        ),
    ];
    emit(Level::Warn, "connection cut", &fields);
}

/// A refused handshake; the identity is what the certificate claims (it was not accepted).
pub fn handshake_refused(peer: SocketAddr, reason: &str, claimed: Option<&PeerIdentity>) {
    crate::metrics::handshake_refused(reason);
    let mut fields = vec![
        ("peer", Value::from_display(&peer)),
        ("reason", Value::from(reason)),
    ];
    if let Some(id) = claimed {
        fields.push(("claimed_subject", Value::from(id.subject.as_str())));
        fields.push(("claimed_serial", Value::from(id.serial.as_str())));
    }
    emit(Level::Warn, "handshake refused", &fields);
}

type Fields<'a> = Vec<(&'static str, Value<'a>)>;

fn exchange_fields<'a>(
    client: &'a Client,
    method: &'a str,
    target: &'a LoggedTarget,
) -> Fields<'a> {
    // Room for every field of the longest record, so the vector is allocated once.
    let mut fields = Vec::with_capacity(14);
    fields.extend([
        ("peer", Value::from_display(&client.peer)),
        ("subject", Value::from(client.identity.subject.as_str())),
        ("serial", Value::from(client.identity.serial.as_str())),
        ("method", Value::from(method)),
        ("path", Value::from(target.path.as_str())),
    ]);
    if let Some(raw) = &target.raw {
        fields.push(("raw_path", Value::from(raw.as_str())));
    }
    fields
}

fn end_fields<'a>(e: &'a Exchange<'a>, with_status: bool) -> Fields<'a> {
    let mut fields = exchange_fields(e.client, e.method, e.target);
    if let (true, Some(status)) = (with_status, e.status) {
        fields.push(("status", Value::from(status)));
    }
    fields.push(("bytes_in", Value::from(e.bytes_in)));
    fields.push(("bytes_out", Value::from(e.bytes_out)));
    fields.push(("duration_ms", Value::from(millis(e.started))));
    fields.push(("outcome", Value::from(e.outcome.as_str())));
    if let Some(role) = e.role {
        fields.push(("role", Value::from(role)));
    }
    if let Some(owner) = e.owner {
        fields.push(("owner", Value::from(owner)));
    }
    if let Some(id) = e.id {
        fields.push(("id", Value::from(id)));
    }
    fields
}

/// Logs one record with exactly these fields (optional ones are left out rather than written
/// as `None`).
fn emit(level: Level, event: &str, fields: &Fields<'_>) {
    if !log::log_enabled!(target: TARGET, level) {
        return;
    }
    log::logger().log(
        &Record::builder()
            .level(level)
            .target(TARGET)
            .args(format_args!("{event}"))
            .key_values(fields)
            .build(),
    );
}

/// Connections from `source` refused before any handshake (a cap reached, nothing sent in
/// time), aggregated: `count` of them since the previous line for this source and reason.
/// An IPv6 source is a /64 and is written so (`2001:db8:1:2::/64`).
pub fn handshakes_refused(source: IpAddr, reason: &str, count: u64) {
    let source = match source {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{v6}/64"),
    };
    let fields: Fields<'_> = vec![
        ("source", Value::from(source.as_str())),
        ("reason", Value::from(reason)),
        ("count", Value::from(count)),
    ];
    emit(Level::Warn, "handshakes refused", &fields);
}

fn millis(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
