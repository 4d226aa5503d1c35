//! Who did what: one structured log record per request, per hijacked session (start and end)
//! and per refused handshake. See `logging` for how records are rendered and what they may hold.

use std::net::SocketAddr;
use std::time::Instant;

use log::{info, warn};

use crate::tls::identity::PeerIdentity;

const TARGET: &str = "dockgate::audit";

/// The authenticated client of one connection.
#[derive(Debug)]
pub struct Client {
    pub peer: SocketAddr,
    pub identity: PeerIdentity,
}

/// One request/response exchange, logged when the response is complete.
pub struct Exchange<'a> {
    pub client: &'a Client,
    pub method: &'a str,
    pub target: &'a str,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub started: Instant,
}

pub fn request(e: &Exchange<'_>) {
    crate::metrics::request(e.method, e.status);
    info!(target: TARGET,
        peer:% = e.client.peer,
        subject = e.client.identity.subject.as_str(),
        serial = e.client.identity.serial.as_str(),
        method = e.method,
        path = e.target,
        status = e.status,
        bytes_in = e.bytes_in,
        bytes_out = e.bytes_out,
        duration_ms = millis(e.started);
        "request");
}

/// A response switched the connection to a raw stream (attach, exec, BuildKit session).
pub fn session_start(client: &Client, method: &str, target: &str, status: u16) {
    info!(target: TARGET,
        peer:% = client.peer,
        subject = client.identity.subject.as_str(),
        serial = client.identity.serial.as_str(),
        method = method,
        path = target,
        status = status;
        "session start");
}

pub fn session_end(e: &Exchange<'_>) {
    info!(target: TARGET,
        peer:% = e.client.peer,
        subject = e.client.identity.subject.as_str(),
        serial = e.client.identity.serial.as_str(),
        method = e.method,
        path = e.target,
        bytes_in = e.bytes_in,
        bytes_out = e.bytes_out,
        duration_ms = millis(e.started);
        "session end");
}

pub fn handshake_refused(peer: SocketAddr, reason: &str, identity: Option<&PeerIdentity>) {
    crate::metrics::handshake_refused(reason);
    match identity {
        Some(id) => warn!(target: TARGET,
            peer:% = peer,
            reason = reason,
            subject = id.subject.as_str(),
            serial = id.serial.as_str();
            "handshake refused"),
        None => warn!(target: TARGET, peer:% = peer, reason = reason; "handshake refused"),
    }
}

fn millis(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
