//! The live connections, so that a revocation also ends what a revoked client already has open:
//! a `docker exec -it` shell or a `docker events` stream started before the CRL changed.
//!
//! Each authenticated connection registers its client chain and a control handle; after every
//! change of the TLS state the reload watcher re-verifies each chain with the verifier new
//! handshakes use, and closes the connections whose chain no longer passes. A connection is
//! also closed when a certificate of its chain expires (`cut_at_expiry`), on time rather than
//! at the next reload.
//!
//! Each connection also says what it is doing (`Activity`: the request or raw session in
//! progress, its classified endpoint and when it started), for the `connection cut` record and
//! so that a policy reload can re-check what live connections are doing.
//!
//! Locks: the registry map and each activity are only ever replaced whole under their lock, so
//! a panic elsewhere while one is held cannot leave them torn; a poisoned lock is recovered
//! (see `crate::locks`), never turned into a panic of every later connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use x509_parser::prelude::{FromDer, X509Certificate};

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;

use crate::api::Endpoint;
use crate::audit::{self, Client};
use crate::locks;
use crate::policy::CertIdentity;
use crate::tls::stream::TlsControl;
use crate::tls::verifier::refusal_reason;

#[derive(Default)]
pub struct Registry {
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Arc<LiveConn>>>,
    /// Wakes `cut_at_expiry` when a connection registers that expires before it would wake.
    expiry_changed: Condvar,
    /// When `cut_at_expiry` next wakes, seconds since the epoch (0: not waiting).
    next_wake: AtomicU64,
}

/// `cut_at_expiry` looks at least this often, so that a clock change cannot delay it long.
const MAX_EXPIRY_SLEEP: Duration = Duration::from_secs(60);

/// What the registry knows about one open connection.
pub struct LiveConn {
    pub client: Arc<Client>,
    /// The chain the client presented: its certificate, then intermediates.
    chain: Vec<CertificateDer<'static>>,
    control: TlsControl,
    started: Instant,
    /// What the connection is doing, for the log line when it is cut and for policy re-checks.
    activity: Mutex<Activity>,
    /// Set once the connection was cut, so that a later reload does not cut (and log) it again.
    cut: AtomicBool,
    /// The earliest notAfter in the chain, seconds since the epoch (`u64::MAX`: unknown).
    expires: u64,
    /// Requests in flight, for a graceful shutdown (`shutdown::drain`).
    pub work: crate::shutdown::Work,
    /// The names the access policy matches, parsed from the leaf on first use.
    cert_identity: std::sync::OnceLock<CertIdentity>,
}

impl LiveConn {
    /// Verifies the client's chain again, with `verifier` and the current time.
    pub fn verify(&self, verifier: &dyn ClientCertVerifier) -> Result<(), rustls::Error> {
        let (leaf, intermediates) = self
            .chain
            .split_first()
            .ok_or(rustls::Error::NoCertificatesPresented)?;
        verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
    }

    /// The client certificate's names, as the access policy matches them.
    pub fn cert_identity(&self) -> &CertIdentity {
        self.cert_identity.get_or_init(|| {
            self.chain
                .first()
                .and_then(|leaf| CertIdentity::from_der(leaf))
                .unwrap_or_default()
        })
    }

    /// Records what the connection is doing now.
    pub fn set_activity(&self, activity: Activity) {
        *locks::recover(&self.activity) = activity;
    }

    /// The request taken up at `started` was answered: the connection is idle now, unless it
    /// has already moved on to the next request (pipelined) or to a session. (An idle
    /// connection is not re-checked by a policy reload; the next request is decided anew.)
    pub fn request_answered(&self, started: Instant) {
        let mut activity = locks::recover(&self.activity);
        if matches!(&*activity, Activity::Request(doing) if doing.started == started) {
            *activity = Activity::Idle;
        }
    }

    /// What the connection is doing now.
    pub fn activity(&self) -> Activity {
        locks::recover(&self.activity).clone()
    }

    /// Ends the connection and logs why, unless it was cut before. Returns whether it was
    /// cut now.
    pub fn cut(&self, reason: &str) -> bool {
        if self.cut.swap(true, Ordering::SeqCst) {
            return false;
        }
        // What it was doing, read before the abort: the aborted sides record the end of their
        // request at once, and the log must name the request that was cut, not "idle".
        let activity = self.activity();
        self.control.abort();
        log_cut(self, &activity, reason);
        true
    }
}

/// What a live connection is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Activity {
    /// Between requests.
    Idle,
    /// An exchange in progress (possibly a long one: `/events`, `logs -f`).
    Request(Doing),
    /// A raw stream dockerd switched to (attach, exec, BuildKit).
    Session(Doing),
}

/// The request behind an activity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doing {
    pub method: String,
    /// The request target as sent (for a policy re-check).
    pub target: String,
    /// The path as the audit log shows it (decoded, query redacted).
    pub path: String,
    /// The classified endpoint; `None` for a target the classifier refuses.
    pub endpoint: Option<Endpoint>,
    pub started: Instant,
}

impl Doing {
    /// `target` as sent, `logged` as the audit log shows it, `endpoint` as the request side
    /// classified the target (the registry does not parse it again).
    /// `started` is when the request side took the request up: it tells this request from
    /// the next one on the connection (see `LiveConn::request_answered`).
    pub fn new(
        method: &str,
        target: &str,
        logged: &str,
        endpoint: Option<Endpoint>,
        started: Instant,
    ) -> Doing {
        Doing {
            method: method.to_string(),
            target: target.to_string(),
            path: logged.to_string(),
            endpoint,
            started,
        }
    }
}

impl std::fmt::Display for Activity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Activity::Idle => f.write_str("idle"),
            Activity::Request(d) => write!(f, "request {} {}", d.method, d.path),
            Activity::Session(d) => write!(f, "session {} {}", d.method, d.path),
        }
    }
}

/// Removes the connection from the registry when dropped.
pub struct Registration<'a> {
    registry: &'a Registry,
    id: u64,
    pub conn: Arc<LiveConn>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<LiveConn>>> {
        locks::recover(&self.live)
    }

    /// Every connection open now (for the policy re-check after a reload).
    pub fn live(&self) -> Vec<Arc<LiveConn>> {
        self.lock().values().cloned().collect()
    }

    pub fn register(
        &self,
        client: Arc<Client>,
        chain: Vec<CertificateDer<'static>>,
        control: TlsControl,
    ) -> Registration<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let expires = earliest_not_after(&chain);
        let conn = Arc::new(LiveConn {
            client,
            chain,
            control,
            started: Instant::now(),
            activity: Mutex::new(Activity::Idle),
            cut: AtomicBool::new(false),
            expires,
            work: Default::default(),
            cert_identity: std::sync::OnceLock::new(),
        });
        self.lock().insert(id, conn.clone());
        let wake = self.next_wake.load(Ordering::SeqCst);
        if wake != 0 && expires < wake {
            self.expiry_changed.notify_one();
        }
        Registration {
            registry: self,
            id,
            conn,
        }
    }

    /// Re-verifies every live chain and closes the connections that fail. Returns how many
    /// were closed.
    ///
    /// An expired CRL that does not list the certificate is the one failure that does not cut:
    /// it refuses new handshakes (fail closed) but says nothing new about the certificates
    /// already admitted, and cutting every open session because a CRL was published late would
    /// punish the wrong people. A certificate an expired CRL lists is "revoked", and cut.
    pub fn cut_invalid(&self, verifier: &dyn ClientCertVerifier) -> usize {
        // Verify outside the lock: connections come and go meanwhile.
        let live: Vec<Arc<LiveConn>> = self.lock().values().cloned().collect();
        let mut cut = 0;
        for conn in live {
            if let Err(e) = conn.verify(verifier) {
                if !is_expired_crl(&e) && conn.cut(&refusal_reason(&e)) {
                    crate::metrics::CUT_REVOKED.inc();
                    cut += 1;
                }
            }
        }
        cut
    }
}

/// For shutdown and metrics.
impl Registry {
    /// Connections open now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Connections registered since the start (open or not).
    pub fn registered(&self) -> u64 {
        self.next_id.load(Ordering::Relaxed)
    }

    /// Open connections with a request or a session in flight.
    pub fn count_busy(&self) -> usize {
        self.lock().values().filter(|c| c.work.is_busy()).count()
    }

    /// Shutdown: ends every connection that has nothing in flight, as if its client had closed.
    pub fn close_idle(&self) -> usize {
        let live: Vec<Arc<LiveConn>> = self.lock().values().cloned().collect();
        let idle: Vec<_> = live.iter().filter(|c| c.work.claim_idle_close()).collect();
        for conn in &idle {
            conn.control.close_read();
        }
        idle.len()
    }

    /// Shutdown: cuts every connection still open, logging each. Returns how many.
    pub fn cut_all(&self, reason: &str) -> usize {
        let live: Vec<Arc<LiveConn>> = self.lock().values().cloned().collect();
        let mut cut = 0;
        for conn in live {
            if conn.cut(reason) {
                cut += 1;
            }
        }
        cut
    }
}

impl Registry {
    /// Closes each connection when a certificate of its chain expires, within a second of its
    /// notAfter. Runs for as long as the process does, on its own thread.
    pub fn cut_at_expiry(&self) {
        let mut live = self.lock();
        loop {
            let now = unix_now();
            // A connection already cut stays listed until its threads end: not again.
            let uncut = live
                .values()
                .filter(|conn| !conn.cut.load(Ordering::SeqCst));
            let (expired, next) =
                uncut.fold((Vec::new(), u64::MAX), |(mut expired, next), conn| {
                    if conn.expires < now {
                        expired.push(conn.clone());
                        (expired, next)
                    } else {
                        (expired, next.min(conn.expires))
                    }
                });
            if !expired.is_empty() {
                drop(live);
                for conn in expired {
                    conn.cut("certificate expired");
                }
                live = self.lock();
                continue;
            }
            // A certificate is valid up to and including its notAfter second.
            let sleep = Duration::from_secs(next.saturating_add(1).saturating_sub(now))
                .min(MAX_EXPIRY_SLEEP);
            self.next_wake
                .store(now + sleep.as_secs().max(1), Ordering::SeqCst);
            live = self
                .expiry_changed
                .wait_timeout(live, sleep)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

/// The earliest notAfter of the chain's certificates, seconds since the epoch.
fn earliest_not_after(chain: &[CertificateDer<'static>]) -> u64 {
    chain
        .iter()
        .filter_map(|der| X509Certificate::from_der(der).ok())
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .map(|t| u64::try_from(t).unwrap_or(0))
        .min()
        .unwrap_or(u64::MAX)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn is_expired_crl(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            rustls::CertificateError::ExpiredRevocationList
                | rustls::CertificateError::ExpiredRevocationListContext { .. }
        )
    )
}

fn log_cut(conn: &LiveConn, activity: &Activity, reason: &str) {
    let (bytes_in, bytes_out) = conn.control.traffic();
    let age = conn.started.elapsed();
    let what = format!(
        "{}, {}, {}",
        activity,
        human_bytes(bytes_in + bytes_out),
        human_duration(age)
    );
    audit::connection_cut(&audit::Cut {
        client: &conn.client,
        reason,
        what: &what,
        bytes_in,
        bytes_out,
        age,
    });
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min", secs / 60),
        _ => format!("{:.1} h", secs as f64 / 3600.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(4_404_019), "4.2 MiB");
        assert_eq!(human_duration(Duration::from_secs(725)), "12 min");
        assert_eq!(human_duration(Duration::from_secs(7)), "7 s");
    }
}
