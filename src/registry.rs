//! The live connections, so that a revocation also ends what a revoked client already has open:
//! a `docker exec -it` shell or a `docker events` stream started before the CRL changed.
//!
//! Each authenticated connection registers its client chain and a control handle; after every
//! change of the TLS state the reload watcher re-verifies each chain with the verifier new
//! handshakes use, and closes the connections whose chain no longer passes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;

use crate::audit::Client;
use crate::tls::stream::TlsControl;
use crate::tls::verifier::refusal_reason;

#[derive(Default)]
pub struct Registry {
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Arc<LiveConn>>>,
}

/// What the registry knows about one open connection.
pub struct LiveConn {
    pub client: Arc<Client>,
    /// The chain the client presented: its certificate, then intermediates.
    chain: Vec<CertificateDer<'static>>,
    control: TlsControl,
    started: Instant,
    /// What the connection is doing, for the log line when it is cut.
    activity: Mutex<String>,
    /// Set once the connection was cut, so that a later reload does not cut (and log) it again.
    cut: AtomicBool,
    /// Requests in flight, for a graceful shutdown (`shutdown::drain`).
    pub work: crate::shutdown::Work,
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

    /// Records what the connection is doing now, e.g. `request GET /v1.41/events`.
    pub fn set_activity(&self, activity: String) {
        *self.activity.lock().expect("activity lock poisoned") = activity;
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
        self.live.lock().expect("registry lock poisoned")
    }

    pub fn register(
        &self,
        client: Arc<Client>,
        chain: Vec<CertificateDer<'static>>,
        control: TlsControl,
    ) -> Registration<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(LiveConn {
            client,
            chain,
            control,
            started: Instant::now(),
            activity: Mutex::new("idle".into()),
            cut: AtomicBool::new(false),
            work: Default::default(),
        });
        self.lock().insert(id, conn.clone());
        Registration {
            registry: self,
            id,
            conn,
        }
    }

    /// Re-verifies every live chain and closes the connections that fail. Returns how many
    /// were closed.
    ///
    /// An expired CRL is the one failure that does not cut: it refuses new handshakes (fail
    /// closed) but says nothing new about the certificates already admitted, and cutting every
    /// open session because a CRL was published late would punish the wrong people.
    pub fn cut_invalid(&self, verifier: &dyn ClientCertVerifier) -> usize {
        // Verify outside the lock: connections come and go meanwhile.
        let live: Vec<Arc<LiveConn>> = self.lock().values().cloned().collect();
        let mut cut = 0;
        for conn in live {
            if let Err(e) = conn.verify(verifier) {
                if is_expired_crl(&e) || conn.cut.swap(true, Ordering::SeqCst) {
                    continue;
                }
                conn.control.abort();
                log_cut(&conn, &refusal_reason(&e));
                crate::metrics::CUT_REVOKED.inc();
                cut += 1;
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
            if !conn.cut.swap(true, Ordering::SeqCst) {
                conn.control.abort();
                log_cut(&conn, reason);
                cut += 1;
            }
        }
        cut
    }
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

fn log_cut(conn: &LiveConn, reason: &str) {
    let (bytes_in, bytes_out) = conn.control.traffic();
    let age = conn.started.elapsed();
    let activity = conn
        .activity
        .lock()
        .expect("activity lock poisoned")
        .clone();
    let what = format!(
        "{activity}, {}, {}",
        human_bytes(bytes_in + bytes_out),
        human_duration(age)
    );
    log::warn!(target: "dockgate::audit",
        peer:% = conn.client.peer,
        subject = conn.client.identity.subject.as_str(),
        serial = conn.client.identity.serial.as_str(),
        reason = reason,
        what = what.as_str(),
        bytes_in = bytes_in,
        bytes_out = bytes_out,
        duration_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
        "connection cut");
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
