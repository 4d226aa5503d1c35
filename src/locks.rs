//! What a poisoned lock means, decided once for the whole program. A lock is poisoned when a
//! thread panicked while holding it; `std` then refuses it to everyone else. Left alone, a
//! poisoned process-wide lock makes every later thread that takes it panic too: the process
//! keeps its port and accepts, but serves nobody. So every lock follows one of three rules:
//!
//! - **The data cannot be torn** (a cache of verdicts, a record updated fact by fact where a
//!   missing fact is only re-learnt): take it anyway, [`recover`].
//! - **Process-wide data that a panic can leave half-changed** (the TLS configuration, the
//!   registry of live connections, the limits' counters): log one ERROR line and abort the
//!   process, [`or_abort`], so that a supervisor (systemd `Restart=on-failure`, a container
//!   restart policy) starts a clean one. Aborting skips destructors; nothing on disk depends on
//!   them (cache and history files are replaced by rename).
//! - **Data of one connection** (its rustls state): the thread that finds it poisoned panics
//!   with a message, which ends that connection and nothing else.
//!
//! A new lock names its rule in a comment where it is taken.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Takes a lock whose data a panic cannot leave torn, poisoned or not.
pub fn recover<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes a process-wide lock whose data a panic may have left half-changed; when it is
/// poisoned, the process aborts (see the module doc). `what` names the data for the log.
#[allow(dead_code)] // for gate.rs, registry.rs, limits.rs (issue #11, request-path branch)
pub fn or_abort<'a, T>(mutex: &'a Mutex<T>, what: &str) -> MutexGuard<'a, T> {
    mutex.lock().unwrap_or_else(|_| abort(what))
}

/// [`or_abort`] for reading an `RwLock`.
#[allow(dead_code)] // for gate.rs (issue #11, request-path branch)
pub fn read_or_abort<'a, T>(lock: &'a RwLock<T>, what: &str) -> RwLockReadGuard<'a, T> {
    lock.read().unwrap_or_else(|_| abort(what))
}

/// [`or_abort`] for writing an `RwLock`.
#[allow(dead_code)] // for gate.rs (issue #11, request-path branch)
pub fn write_or_abort<'a, T>(lock: &'a RwLock<T>, what: &str) -> RwLockWriteGuard<'a, T> {
    lock.write().unwrap_or_else(|_| abort(what))
}

fn abort(what: &str) -> ! {
    log::error!(
        "{what}: a thread panicked while changing it, so it may be half-changed; aborting so that the supervisor restarts dockgate"
    );
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recover_takes_a_poisoned_lock() {
        let mutex = Mutex::new(vec![1]);
        let poisoned = std::panic::catch_unwind(|| {
            let mut guard = mutex.lock().unwrap();
            guard.push(2);
            panic!("poison it");
        });
        assert!(poisoned.is_err() && mutex.is_poisoned());
        assert_eq!(*recover(&mutex), [1, 2]);
    }

    /// Run by `a_poisoned_lock_that_may_be_torn_aborts_the_process` in a child process.
    #[test]
    #[ignore]
    fn child_takes_a_poisoned_lock_or_aborts() {
        if std::env::var_os("DOCKGATE_LOCKS_CHILD").is_none() {
            return;
        }
        let mutex = Mutex::new(0);
        let _ = std::panic::catch_unwind(|| {
            let _guard = mutex.lock().unwrap();
            panic!("poison it");
        });
        let _guard = or_abort(&mutex, "the test state");
        std::process::exit(0); // not reached when or_abort aborts
    }

    #[cfg(unix)]
    #[test]
    fn a_poisoned_lock_that_may_be_torn_aborts_the_process() {
        use std::os::unix::process::ExitStatusExt;
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "locks::tests::child_takes_a_poisoned_lock_or_aborts",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env("DOCKGATE_LOCKS_CHILD", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.signal(), Some(6), "SIGABRT expected, got {status:?}");
    }
}
