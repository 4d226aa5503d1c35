//! The running gate's shared state: the current TLS configuration (replaced whole by a reload),
//! the upstream, and the registry of live connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::registry::Registry;
use crate::tls::LoadedTls;
use crate::upstream::Upstream;

/// One generation of the TLS configuration.
pub struct TlsState {
    pub tls: LoadedTls,
    /// Increases with every successful reload.
    pub generation: u64,
}

pub struct Gate {
    tls: RwLock<Arc<TlsState>>,
    generations: AtomicU64,
    pub upstream: Upstream,
    pub connections: Registry,
}

impl Gate {
    pub fn new(tls: LoadedTls, upstream: Upstream) -> Gate {
        Gate {
            tls: RwLock::new(Arc::new(TlsState { tls, generation: 0 })),
            generations: AtomicU64::new(0),
            upstream,
            connections: Registry::default(),
        }
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
