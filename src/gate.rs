//! The running gate's shared state: the current TLS configuration (replaced whole by a reload),
//! the upstream, and the registry of live connections.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

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

/// Connections still in their TLS handshake (not yet authenticated) beyond this many are closed
/// at once, so that unauthenticated clients cannot take every thread and file descriptor.
pub const MAX_PENDING_HANDSHAKES: usize = 512;

pub struct Gate {
    tls: RwLock<Arc<TlsState>>,
    generations: AtomicU64,
    pending_handshakes: AtomicUsize,
    pub upstream: Upstream,
    pub connections: Registry,
    pub limits: Limits,
}

impl Gate {
    pub fn new(tls: LoadedTls, upstream: Upstream, limits: Limits) -> Gate {
        Gate {
            tls: RwLock::new(Arc::new(TlsState { tls, generation: 0 })),
            generations: AtomicU64::new(0),
            pending_handshakes: AtomicUsize::new(0),
            upstream,
            connections: Registry::default(),
            limits,
        }
    }

    /// Connections in their TLS handshake now.
    pub fn pending_handshakes(&self) -> usize {
        self.pending_handshakes.load(Ordering::SeqCst)
    }

    /// The configuration new handshakes use.
    pub fn tls(&self) -> Arc<TlsState> {
        self.tls.read().expect("TLS state lock poisoned").clone()
    }

    /// Installs a new configuration for new connections; open ones keep theirs until the
    /// caller re-verifies them (`Registry::cut_invalid`).
    pub fn replace_tls(&self, tls: LoadedTls) -> Arc<TlsState> {
        let generation = self.generations.fetch_add(1, Ordering::SeqCst) + 1;
        let state = Arc::new(TlsState { tls, generation });
        *self.tls.write().expect("TLS state lock poisoned") = state.clone();
        state
    }
}

/// A place among the connections still in their handshake, given back when dropped (right
/// after the handshake, or when the connection ends before it).
pub struct HandshakeSlot(Arc<Gate>);

impl HandshakeSlot {
    /// `None` when `MAX_PENDING_HANDSHAKES` connections are already handshaking.
    pub fn take(gate: &Arc<Gate>) -> Option<HandshakeSlot> {
        let pending = gate.pending_handshakes.fetch_add(1, Ordering::SeqCst);
        if pending >= MAX_PENDING_HANDSHAKES {
            gate.pending_handshakes.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(HandshakeSlot(gate.clone()))
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.0.pending_handshakes.fetch_sub(1, Ordering::SeqCst);
    }
}
