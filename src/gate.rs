//! The running gate's shared state: the current TLS configuration (replaced whole by a reload),
//! the upstream, the registry of live connections, and the count of connections not yet
//! authenticated (in total and per source address). Its locks are recovered when poisoned
//! (see `locks`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::enforce::PolicyInForce;
use crate::limits::Limits;
use crate::registry::Registry;
use crate::tls::LoadedTls;
use crate::upstream::Upstream;

/// One generation of the TLS configuration.
pub struct TlsState {
    pub tls: LoadedTls,
    /// Increases with every successful reload.
    pub generation: u64,
}

/// Connections not yet authenticated (waiting for their first bytes or in their TLS handshake)
/// beyond this many are closed at once, so that unauthenticated clients cannot take every
/// thread and file descriptor.
pub const MAX_PENDING_HANDSHAKES: usize = 512;
/// The same, per source (an IPv4 address, or an IPv6 /64): one address cannot take the
/// places of everyone else. A docker CLI opens one connection per command, and a handshake
/// lasts milliseconds, so even a busy CI host behind one address stays far below this.
pub const MAX_PENDING_PER_SOURCE: usize = 32;

/// Why `HandshakeSlot::take` said no.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlotRefused {
    /// `MAX_PENDING_HANDSHAKES` reached.
    Total,
    /// `MAX_PENDING_PER_SOURCE` reached for this source.
    Source,
}

#[derive(Default)]
struct Pending {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

pub struct Gate {
    tls: RwLock<Arc<TlsState>>,
    generations: AtomicU64,
    pending: Mutex<Pending>,
    pub upstream: Upstream,
    pub connections: Registry,
    pub limits: Limits,
    /// The access policy in force (`--policy`), if any.
    pub policy: PolicyInForce,
}

impl Gate {
    pub fn new(tls: LoadedTls, upstream: Upstream, limits: Limits) -> Gate {
        Gate {
            tls: RwLock::new(Arc::new(TlsState { tls, generation: 0 })),
            generations: AtomicU64::new(0),
            pending: Mutex::default(),
            upstream,
            connections: Registry::default(),
            limits,
            policy: PolicyInForce::none(),
        }
    }

    /// The gate with an access policy in force.
    pub fn with_policy(self, policy: PolicyInForce) -> Gate {
        Gate { policy, ..self }
    }

    /// Connections in their TLS handshake now.
    pub fn pending_handshakes(&self) -> usize {
        self.pending().total
    }

    /// The configuration new handshakes use.
    pub fn tls(&self) -> Arc<TlsState> {
        // Recovered when poisoned: the state is one `Arc`, replaced whole (see `locks`).
        self.tls
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Installs a new configuration for new connections; open ones keep theirs until the
    /// caller re-verifies them (`Registry::cut_invalid`).
    pub fn replace_tls(&self, tls: LoadedTls) -> Arc<TlsState> {
        let generation = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
        let state = Arc::new(TlsState { tls, generation });
        *self
            .tls
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = state.clone();
        state
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        crate::locks::recover(&self.pending)
    }
}

/// The source a connection is counted under: its IPv4 address, or the /64 of its IPv6 address
/// (one host usually has a whole /64 to pick addresses from).
pub fn source_of(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

/// A place among the connections not yet authenticated, given back when dropped (right after
/// the handshake, or when the connection ends before it).
pub struct HandshakeSlot {
    gate: Arc<Gate>,
    source: IpAddr,
}

impl HandshakeSlot {
    /// A place for a connection from `source` (see `source_of`), unless a cap is reached.
    pub fn take(gate: &Arc<Gate>, source: IpAddr) -> Result<HandshakeSlot, SlotRefused> {
        let mut pending = gate.pending();
        if pending.total >= MAX_PENDING_HANDSHAKES {
            return Err(SlotRefused::Total);
        }
        let from_source = pending.by_source.entry(source).or_insert(0);
        if *from_source >= MAX_PENDING_PER_SOURCE {
            return Err(SlotRefused::Source);
        }
        *from_source += 1;
        pending.total += 1;
        Ok(HandshakeSlot {
            gate: gate.clone(),
            source,
        })
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut pending = self.gate.pending();
        pending.total -= 1;
        if let Some(count) = pending.by_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                pending.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::source_of;
    use std::net::IpAddr;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_slash_64s() {
        assert_eq!(source_of(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(source_of(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(source_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            source_of(ip("2001:db8:1:2:ffff::9")),
            source_of(ip("2001:db8:1:2::1"))
        );
        assert_ne!(
            source_of(ip("2001:db8:1:3::1")),
            source_of(ip("2001:db8:1:2::1"))
        );
    }
}
