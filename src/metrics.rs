//! Counters for Prometheus, and the plain-HTTP listener (`--metrics-listen`) that serves them at
//! `/metrics` (text exposition format 0.0.4) next to `/healthz`.
//!
//! The counters are process-wide atomics bumped by one-line calls where things happen (accept,
//! handshake refusal, request log, session start and end, cuts, reloads); gauges that the gate
//! already knows (open connections, pending handshakes, the CRLs in force) are read from the
//! `Gate` at scrape time. No label carries a client identity or a path: their number is
//! unbounded, and the audit log already has them.
//!
//! The listener speaks just enough HTTP/1.1 for a scraper: one request per connection, a short
//! read deadline, and nothing but GET/HEAD on the two paths. It is plain text on purpose (no TLS,
//! no client check): bind it to localhost or a management network.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{debug, info, warn};

use crate::gate::Gate;

/// A monotonic counter (or, with `sub`, a gauge kept by the code that changes it).
pub struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn dec(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
    }

    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// TCP connections accepted on the `--listen` addresses.
pub static CONNECTIONS_ACCEPTED: Counter = Counter::new();
/// Plaintext bytes from clients (toward Docker) and to clients (from Docker or the gate).
pub static BYTES_FROM_CLIENTS: Counter = Counter::new();
pub static BYTES_TO_CLIENTS: Counter = Counter::new();
/// Hijacked sessions (attach, exec, BuildKit) open now.
pub static SESSIONS_OPEN: Counter = Counter::new();
/// Verified clients turned away with 503 by `--max-connections` / `--max-connections-per-client`.
pub static LIMITED_TOTAL: Counter = Counter::new();
pub static LIMITED_PER_CLIENT: Counter = Counter::new();
/// Open connections closed by the gate: their client was revoked by a reload, or the shutdown
/// grace period ran out.
pub static CUT_REVOKED: Counter = Counter::new();
pub static CUT_SHUTDOWN: Counter = Counter::new();
/// Unix times (seconds) of the last successful and failed reload; 0 = never.
pub static RELOAD_LAST_SUCCESS: Counter = Counter::new();
pub static RELOAD_LAST_FAILURE: Counter = Counter::new();

/// Why handshakes were refused: a fixed set of labels, so a client cannot invent new series.
const REFUSAL_REASONS: [(&str, &str); 15] = [
    ("certificate revoked", "revoked"),
    ("unknown issuer", "unknown_issuer"),
    ("certificate expired", "certificate_expired"),
    ("certificate not yet valid", "certificate_not_yet_valid"),
    ("no client certificate", "no_certificate"),
    ("revocation status unknown", "revocation_unknown"),
    ("CRL expired", "crl_expired"),
    ("handshake timed out", "timeout"),
    ("client closed", "client_closed"),
    ("network error", "network_error"),
    ("protocol error", "protocol_error"),
    (TOO_MANY_HANDSHAKES, "too_many_pending_handshakes"),
    (NO_CLIENT_HELLO, "no_client_hello"),
    (CLOSED_BEFORE_SENDING, "closed_before_sending"),
    ("", "other"),
];
/// The reason for connections closed unread because too many handshakes are pending.
pub const TOO_MANY_HANDSHAKES: &str = "too many pending handshakes";
/// Connections closed because they sent no ClientHello within `server::FIRST_BYTES_TIMEOUT`.
pub const NO_CLIENT_HELLO: &str = "no TLS ClientHello";
/// Connections that closed before sending anything.
pub const CLOSED_BEFORE_SENDING: &str = "closed before sending anything";
static HANDSHAKES_REFUSED: [Counter; REFUSAL_REASONS.len()] =
    [const { Counter::new() }; REFUSAL_REASONS.len()];

const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
static REQUESTS: [[Counter; STATUS_CLASSES.len()]; METHODS.len()] =
    [const { [const { Counter::new() }; STATUS_CLASSES.len()] }; METHODS.len()];

/// Counts a refused handshake under the label its logged reason starts with.
pub fn handshake_refused(reason: &str) {
    let index = REFUSAL_REASONS
        .iter()
        .position(|(prefix, _)| reason.starts_with(prefix))
        .unwrap_or(REFUSAL_REASONS.len() - 1);
    HANDSHAKES_REFUSED[index].inc();
}

/// Counts a completed request by method and status class.
pub fn request(method: &str, status: u16) {
    let method = METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1);
    let class = usize::from(status / 100).clamp(1, 5) - 1;
    REQUESTS[method][class].inc();
}

/// Requests the access policy denied (or would deny, in audit mode), by role. Roles come from
/// the policy file, so the label set is bounded by it.
static DENIALS: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

pub fn request_denied(role: &str) {
    *crate::locks::recover(&DENIALS)
        .entry(role.to_string())
        .or_insert(0) += 1;
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The whole exposition, rendered at scrape time.
pub fn render(gate: &Gate) -> String {
    let mut out = String::with_capacity(4096);
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |value: u64| [(String::new(), value)];
    family(
        "dockgate_build_info",
        "gauge",
        "Version and git commit of the running binary.",
        &[(
            format!(
                "{{version=\"{}\",commit=\"{}\"}}",
                env!("CARGO_PKG_VERSION"),
                escape(env!("DOCKGATE_COMMIT"))
            ),
            1,
        )],
    );
    family(
        "dockgate_connections_accepted_total",
        "counter",
        "TCP connections accepted on the --listen addresses.",
        &one(CONNECTIONS_ACCEPTED.get()),
    );
    family(
        "dockgate_connections_open",
        "gauge",
        "Authenticated client connections open now.",
        &one(gate.connections.len() as u64),
    );
    family(
        "dockgate_handshakes_pending",
        "gauge",
        "Connections in their TLS handshake now (not yet authenticated).",
        &one(gate.pending_handshakes() as u64),
    );
    let refused: Vec<_> = REFUSAL_REASONS
        .iter()
        .zip(&HANDSHAKES_REFUSED)
        .map(|((_, label), n)| (format!("{{reason=\"{label}\"}}"), n.get()))
        .collect();
    family(
        "dockgate_handshakes_refused_total",
        "counter",
        "TLS handshakes refused, by reason.",
        &refused,
    );
    let denials: Vec<_> = crate::locks::recover(&DENIALS)
        .iter()
        .map(|(role, n)| (format!("{{role=\"{}\"}}", escape(role)), *n))
        .collect();
    family(
        "dockgate_requests_denied_total",
        "counter",
        "Requests the access policy denied (or would deny in audit mode), by role.",
        &denials,
    );
    let mut requests = Vec::new();
    for (method, row) in METHODS.iter().zip(&REQUESTS) {
        for (class, n) in STATUS_CLASSES.iter().zip(row) {
            requests.push((format!("{{method=\"{method}\",code=\"{class}\"}}"), n.get()));
        }
    }
    family(
        "dockgate_requests_total",
        "counter",
        "Requests answered, by method and status class.",
        &requests,
    );
    family(
        "dockgate_client_bytes_total",
        "counter",
        "Plaintext bytes relayed, from clients (in) and to clients (out).",
        &[
            ("{direction=\"in\"}".into(), BYTES_FROM_CLIENTS.get()),
            ("{direction=\"out\"}".into(), BYTES_TO_CLIENTS.get()),
        ],
    );
    family(
        "dockgate_sessions_open",
        "gauge",
        "Hijacked sessions (attach, exec, BuildKit) open now.",
        &one(SESSIONS_OPEN.get()),
    );
    family(
        "dockgate_connections_cut_total",
        "counter",
        "Open connections closed by the gate, by reason.",
        &[
            ("{reason=\"revoked\"}".into(), CUT_REVOKED.get()),
            ("{reason=\"shutdown\"}".into(), CUT_SHUTDOWN.get()),
        ],
    );
    family(
        "dockgate_connections_limited_total",
        "counter",
        "Verified clients answered 503 because of a connection limit.",
        &[
            ("{limit=\"total\"}".into(), LIMITED_TOTAL.get()),
            ("{limit=\"per_client\"}".into(), LIMITED_PER_CLIENT.get()),
        ],
    );
    let tls = gate.tls();
    let crl_samples = |value: fn(&crate::tls::load::CrlSummary) -> Option<u64>| {
        tls.tls
            .crls
            .iter()
            .filter_map(|crl| Some((format!("{{file=\"{}\"}}", escape(&crl.file)), value(crl)?)))
            .collect::<Vec<_>>()
    };
    family(
        "dockgate_crl_next_update_timestamp_seconds",
        "gauge",
        "nextUpdate of each CRL in force, as a Unix time (absent: the CRL has none).",
        &crl_samples(|crl| {
            crl.next_update
                .and_then(|t| u64::try_from(t.timestamp()).ok())
        }),
    );
    family(
        "dockgate_crl_revoked_certificates",
        "gauge",
        "Certificates listed as revoked by each CRL in force.",
        &crl_samples(|crl| Some(crl.revoked as u64)),
    );
    family(
        "dockgate_tls_config_generation",
        "gauge",
        "Generation of the TLS configuration in force (0 at start, +1 per successful reload).",
        &one(tls.generation),
    );
    family(
        "dockgate_reload_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last successful reload (0: none since start).",
        &one(RELOAD_LAST_SUCCESS.get()),
    );
    family(
        "dockgate_reload_last_failure_timestamp_seconds",
        "gauge",
        "Unix time of the last failed reload (0: none since start).",
        &one(RELOAD_LAST_FAILURE.get()),
    );
    out
}

/// Label values: backslash, double quote and newline escaped, as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REQUEST: usize = 8 * 1024;

/// Binds `--metrics-listen` (so that a taken port fails the start).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    crate::net::bind(addr)
}

/// Serves `/metrics` and `/healthz` on a thread of its own, one connection at a time (a scrape
/// is small; a slow scraper is bounded by `REQUEST_TIMEOUT`).
pub fn spawn(gate: Arc<Gate>, listener: TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        info!("metrics: serving http://{addr}/metrics and /healthz");
    }
    let spawned = thread::Builder::new()
        .name("dockgate-metrics".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        if let Err(e) = answer(&gate, stream) {
                            debug!("metrics: {e}");
                        }
                    }
                    Err(e) => {
                        warn!("metrics: accept failed: {e}");
                        thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        });
    if let Err(e) = spawned {
        warn!("metrics: cannot start the listener thread: {e}");
    }
}

fn answer(gate: &Gate, mut stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut buf = vec![0; MAX_REQUEST];
    let mut filled = 0;
    let (method, path) = loop {
        let n = stream.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf[..filled]) {
            Ok(httparse::Status::Complete(_)) => {
                break (
                    request.method.unwrap_or_default().to_string(),
                    request.path.unwrap_or_default().to_string(),
                )
            }
            Ok(httparse::Status::Partial) if filled < buf.len() => continue,
            _ => {
                return respond(
                    &mut stream,
                    "400 Bad Request",
                    "text/plain",
                    "bad request\n",
                    true,
                )
            }
        }
    };
    let with_body = method != "HEAD";
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n",
            true,
        );
    }
    match path.split('?').next().unwrap_or_default() {
        "/metrics" => respond(
            &mut stream,
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            &render(gate),
            with_body,
        ),
        // Listening (this answer proves it) with a TLS configuration loaded: the gate holds one
        // from its start on (a failed reload keeps the previous one), so this is 200 whenever
        // the process can answer at all.
        "/healthz" => {
            let generation = gate.tls().generation;
            let body = format!("ok: listening, TLS configuration generation {generation}\n");
            respond(&mut stream, "200 OK", "text/plain", &body, with_body)
        }
        _ => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            "not found\n",
            with_body,
        ),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
    with_body: bool,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if with_body {
        stream.write_all(body.as_bytes())?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_reasons_map_to_fixed_labels() {
        let before = HANDSHAKES_REFUSED[0].get();
        handshake_refused("certificate revoked");
        assert_eq!(HANDSHAKES_REFUSED[0].get(), before + 1);
        let other = REFUSAL_REASONS.len() - 1;
        let before = HANDSHAKES_REFUSED[other].get();
        handshake_refused("invalid certificate: Something { new }");
        assert_eq!(HANDSHAKES_REFUSED[other].get(), before + 1);
    }

    #[test]
    fn requests_by_method_and_class() {
        let before = REQUESTS[0][1].get();
        request("GET", 204);
        assert_eq!(REQUESTS[0][1].get(), before + 1);
        let before = REQUESTS[7][4].get();
        request("BREW", 599);
        assert_eq!(REQUESTS[7][4].get(), before + 1);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
