//! Connection limits for verified clients: `--max-connections` in total and
//! `--max-connections-per-client` per client certificate (its subject and issuer), so that one
//! certificate opening connections in a loop cannot take every thread and file descriptor.
//!
//! A client past a limit has already proved who it is, so it gets an answer it can read: `503`
//! with a Docker-style JSON message, and the gate logs one WARN line. Connections still in their
//! handshake are bounded separately (`gate::MAX_PENDING_HANDSHAKES`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::audit::{self, Client};
use crate::http::write_error;
use crate::metrics;
use crate::tls::identity::CertFacts;
use crate::tls::stream::{TlsControl, TlsReader, TlsWriter};

pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
pub const DEFAULT_MAX_PER_CLIENT: usize = 256;

/// After the 503, how long the client gets to close (its request is read and dropped
/// meanwhile, so the kernel does not reset the connection before the answer is read). Shorter
/// than a normal session's linger: this runs on a handshake thread.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);
const REFUSAL_LINGER_BYTES: u64 = 64 * 1024;

pub struct Limits {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_client: HashMap<String, usize>,
}

/// Which limit a connection ran into.
#[derive(Debug, PartialEq, Eq)]
pub enum Exceeded {
    Total(usize),
    PerClient(usize),
}

/// A place among the open connections, given back when dropped (when the connection ends).
pub struct Admission<'a> {
    limits: &'a Limits,
    client: String,
}

impl Limits {
    pub fn new(max_total: usize, max_per_client: usize) -> Limits {
        Limits {
            max_total,
            max_per_client,
            open: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // Each update of the counts is one step (see `locks`).
        crate::locks::recover(&self.open)
    }

    /// Admits one more connection of the client whose certificate is `leaf` (DER).
    pub fn admit(&self, leaf: &[u8]) -> Result<Admission<'_>, Exceeded> {
        let client = client_key(leaf);
        let mut open = self.lock();
        if open.total >= self.max_total {
            return Err(Exceeded::Total(self.max_total));
        }
        let count = open.per_client.entry(client.clone()).or_insert(0);
        if *count >= self.max_per_client {
            return Err(Exceeded::PerClient(self.max_per_client));
        }
        *count += 1;
        open.total += 1;
        Ok(Admission {
            limits: self,
            client,
        })
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        let mut open = self.limits.lock();
        open.total -= 1;
        if let Some(count) = open.per_client.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.per_client.remove(&self.client);
            }
        }
    }
}

/// One client, for counting: its certificate's issuer and subject (the same subject from two
/// CAs is two clients). The DER itself if it does not parse, which cannot happen after a
/// successful handshake. The names come from the certificate cache (`tls::identity`): no
/// parse per connection.
fn client_key(leaf: &[u8]) -> String {
    match CertFacts::of(leaf) {
        Some(facts) => format!("{}\n{}", facts.issuer, facts.identity.subject),
        None => leaf.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// Answers a verified client past a limit with 503, logs it, and closes the connection.
pub fn refuse(
    client: &Client,
    exceeded: &Exceeded,
    mut reader: TlsReader,
    mut writer: TlsWriter,
    control: TlsControl,
) {
    let (message, flag) = match exceeded {
        Exceeded::Total(max) => {
            metrics::LIMITED_TOTAL.inc();
            (
                format!("dockgate: too many connections ({max} open); try again later"),
                "--max-connections",
            )
        }
        Exceeded::PerClient(max) => {
            metrics::LIMITED_PER_CLIENT.inc();
            (
                format!(
                    "dockgate: too many connections from this client certificate ({max} open); close some and try again"
                ),
                "--max-connections-per-client",
            )
        }
    };
    audit::connection_refused(client, 503, &format!("{flag} reached"));
    let _ = write_error(&mut writer, 503, &message);
    let _ = writer.shutdown_write();
    control.set_read_timeout(Some(REFUSAL_LINGER));
    let _ = reader.wait_for_transport_end(REFUSAL_LINGER_BYTES);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(subject: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, subject);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn per_client_and_total_limits() {
        let limits = Limits::new(3, 2);
        let (alice, bob) = (cert("alice"), cert("bob"));
        let a1 = limits.admit(&alice).unwrap();
        let _a2 = limits.admit(&alice).unwrap();
        assert_eq!(limits.admit(&alice).err(), Some(Exceeded::PerClient(2)));
        let _b1 = limits.admit(&bob).unwrap();
        assert_eq!(limits.admit(&bob).err(), Some(Exceeded::Total(3)));
        drop(a1);
        let _a3 = limits.admit(&alice).unwrap();
        assert_eq!(limits.lock().per_client.len(), 2);
    }
}
