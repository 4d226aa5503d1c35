//! The gate's one rule for poisoned locks (a thread panicked while holding one).
//!
//! - Data that is only ever replaced whole, or whose every update is a single step (the
//!   registry's map, a connection's activity, the pending-handshake counters, the handshake
//!   queue, the current TLS configuration, the queue between a connection's two threads),
//!   cannot be torn by a panic: the lock is recovered (`lock`) and the process goes on. Turning
//!   the poison into a panic would make every later connection panic on the same global lock,
//!   leaving a process that accepts and serves nobody.
//! - Data that a panic can leave half-updated (a rustls connection in the middle of processing
//!   a record, see `tls::stream`) is only ever per connection: that connection's threads stop
//!   and the rest of the gate goes on.
//! - A global lock whose data could be torn would have to `abort_on_poison` (the process
//!   exits, and a supervisor restarts it). None exists today.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, recovering it when poisoned (for data that cannot be torn, see above).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Locks `mutex`, ending the process when it is poisoned (for global data a panic could tear).
#[allow(dead_code)]
pub fn abort_on_poison<'a, T>(mutex: &'a Mutex<T>, what: &str) -> MutexGuard<'a, T> {
    mutex.lock().unwrap_or_else(|_| {
        log::error!("{what}: a thread panicked while changing it; exiting");
        std::process::abort()
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_poisoned_lock_is_recovered_with_its_data() {
        let shared = Arc::new(Mutex::new(7));
        let poisoner = shared.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock().unwrap();
            panic!("poison");
        })
        .join();
        assert!(shared.is_poisoned());
        assert_eq!(*super::lock(&shared), 7);
    }
}
