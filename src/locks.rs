//! The gate's one rule for poisoned locks (a thread panicked while holding one).
//!
//! Left alone, a poisoned process-wide lock makes every later thread that takes it panic too:
//! the process keeps its port and accepts, but serves nobody. So every lock follows one of
//! these rules, and a new lock names its rule in a comment where it is taken:
//!
//! - **The data cannot be torn**: it is only ever replaced whole, or every update is a single
//!   step (the registry's map, a connection's activity, the pending-handshake and connection
//!   counters, the handshake queue, the current TLS configuration and policy, the queue between
//!   a connection's two threads, caches of verdicts and parsed certificates, the CRL history,
//!   updated fact by fact where a missing fact is only re-learnt). The lock is recovered
//!   ([`recover`]) and the process goes on.
//! - **Data of one connection that a panic can leave half-updated** (a rustls connection in the
//!   middle of processing a record, see `tls::stream`): the thread that finds it poisoned panics
//!   with a message, which ends that connection and nothing else.
//! - **Process-wide data that a panic could tear** would have to abort the process, so that a
//!   supervisor (systemd `Restart=on-failure`, a container restart policy) starts a clean one.
//!   None exists today; a change that adds such data adds that rule here first.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, recovering it when poisoned (for data that cannot be torn, see above).
pub fn recover<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_poisoned_lock_is_recovered_with_its_data() {
        let shared = Arc::new(Mutex::new(vec![7]));
        let poisoner = shared.clone();
        let _ = std::thread::spawn(move || {
            let mut guard = poisoner.lock().unwrap();
            guard.push(8);
            panic!("poison");
        })
        .join();
        assert!(shared.is_poisoned());
        assert_eq!(*super::recover(&shared), [7, 8]);
    }
}
