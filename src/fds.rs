//! File descriptors: the process limit, and a reserve kept for the reload watcher.
//!
//! Every session holds descriptors and clients decide how many sessions there are, so running
//! out of descriptors (EMFILE) is something a client can cause. Two defences:
//! - at start the soft `RLIMIT_NOFILE` is raised to the hard limit (systemd's default soft
//!   limit of 1024 was about 200 sessions);
//! - the reload watcher holds a few spare descriptors (opened on the null device) and closes
//!   them just before it reads its files, so that a revocation can still be loaded when clients
//!   hold every other descriptor. Another thread can take a released descriptor first (an
//!   accept); the watcher then retries the reload (`reload`), and takes its spares back after
//!   each reload, as far as descriptors are free.

use std::fs::File;
use std::io;

use log::{info, warn};

/// Descriptors the reload keeps in reserve. A reload reads one file at a time, so one would do;
/// a few more leave room for a handshake or an accept that takes one in between.
pub const RESERVE: usize = 8;

/// Raises the soft limit on open files to the hard limit and logs the result.
pub fn raise_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => info!("open file limit: {limit}"),
        Err(e) => warn!("cannot raise the open file limit: {e}"),
    }
}

/// Spare descriptors, given back to the process only while the reload reads its files.
pub struct FdReserve {
    spare: Vec<File>,
    size: usize,
}

impl FdReserve {
    pub fn new() -> FdReserve {
        FdReserve::with_size(RESERVE)
    }

    fn with_size(size: usize) -> FdReserve {
        let mut reserve = FdReserve {
            spare: Vec::with_capacity(size),
            size,
        };
        reserve.refill();
        reserve
    }

    /// Runs `work` with the spare descriptors closed, then opens them again.
    pub fn released<T>(&mut self, work: impl FnOnce() -> T) -> T {
        self.spare.clear();
        let result = work();
        self.refill();
        result
    }

    /// Spare descriptors held now.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.spare.len()
    }

    fn refill(&mut self) {
        while self.spare.len() < self.size {
            match open_spare() {
                Ok(file) => self.spare.push(file),
                // Out of descriptors right now: take them back at the next reload.
                Err(_) => break,
            }
        }
    }
}

fn open_spare() -> io::Result<File> {
    #[cfg(unix)]
    let null = "/dev/null";
    #[cfg(windows)]
    let null = "NUL";
    File::open(null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_is_closed_during_the_work_and_held_again_after() {
        let mut reserve = FdReserve::with_size(3);
        assert_eq!(reserve.held(), 3);
        let during = reserve.released(|| 0);
        assert_eq!(during, 0);
        assert_eq!(reserve.held(), 3);
        let mut inner = FdReserve::with_size(2);
        let held_inside = inner.released(|| reserve.held());
        assert_eq!(held_inside, 3, "another reserve is not touched");
    }

    /// Under a real descriptor shortage: the spare descriptors are exactly what lets the work
    /// open a file. Runs in a child process so the lowered limit touches no other test.
    #[cfg(target_os = "linux")]
    #[test]
    fn released_spares_let_the_work_open_a_file_when_none_are_left() {
        if std::env::var_os("DOCKGATE_FD_RESERVE_CHILD").is_none() {
            let exe = std::env::current_exe().unwrap();
            let out = std::process::Command::new(exe)
                .args([
                    "--exact",
                    "fds::tests::released_spares_let_the_work_open_a_file_when_none_are_left",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("DOCKGATE_FD_RESERVE_CHILD", "1")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
        let mut reserve = FdReserve::with_size(2);
        // Fill every descriptor up to a low limit.
        rlimit::Resource::NOFILE.set(64, hard).unwrap();
        let mut hog = Vec::new();
        while let Ok(file) = open_spare() {
            hog.push(file);
        }
        assert!(open_spare().is_err(), "no descriptor left");
        let opened = reserve.released(|| File::open("/proc/self/status").is_ok());
        assert!(opened, "a released spare let the work open its file");
        drop(hog);
        rlimit::Resource::NOFILE.set(hard, hard).unwrap();
    }
}
