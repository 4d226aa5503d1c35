//! The threads that run TLS handshakes.
//!
//! The handshake, with the verification of the client's chain and CRLs, is the deepest and most
//! allocation-heavy work of the gate. It runs on these threads; the authenticated session then
//! moves on to fresh session threads with small stacks (`conn::serve`), so that an idle session
//! does not keep the handshake's dirty stack pages.
//!
//! A handshake thread waits a while for the next connection instead of ending: starting and
//! ending a thread per connection (mapping and unmapping its stacks, with the TLB shootdowns
//! that come with it) cost ~15 % of the handshake rate. The pool grows on demand: a connection
//! goes to an idle handshake thread if one is waiting, otherwise to a new thread, so a client
//! that handshakes slowly never delays another client. A connection only gets here once it has
//! sent its first bytes (`server`), and its `HandshakeSlot` bounds the threads busy with a
//! handshake, in total and per source address; idle ones end after `IDLE_EXIT`.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use log::error;

use crate::conn;
use crate::gate::{Gate, HandshakeSlot};

/// Stack of a handshake thread: the TLS handshake and the client's chain and CRL verification
/// run here, the deepest code of the gate.
///
/// Why 1 MiB, when the handshake needs far less: glibc keeps the stacks of ended threads in a
/// cache and hands one to a new thread whose requested size is at least a quarter of the cached
/// one; an ended thread's stack keeps ~24 KiB dirty. At eight times the session stack (four
/// times plus room for guard pages and rounding), a handshake stack is never reused for a
/// session thread (which would then start with the handshake's dirty pages) and vice versa.
/// Untouched pages cost address space only.
const HANDSHAKE_THREAD_STACK: usize = 1024 * 1024;
const _: () = assert!(HANDSHAKE_THREAD_STACK >= 8 * conn::SESSION_THREAD_STACK);

/// How long an idle handshake thread waits for the next connection before it ends: long enough
/// to be reused under a steady stream of connections, short enough that the threads of a burst
/// go away soon after it.
const IDLE_EXIT: Duration = Duration::from_secs(5);

/// One accepted connection, waiting for its handshake.
struct Job {
    slot: HandshakeSlot,
    stream: TcpStream,
    peer: SocketAddr,
}

/// Connections handed to idle threads, and how many idle threads are not promised one yet.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Idle threads minus queued jobs: a connection queued only when this is above zero is
    /// always taken at once.
    idle: usize,
}

pub struct Handshakers {
    gate: &'static Gate,
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Handshakers {
    pub fn new(gate: &'static Gate) -> Handshakers {
        Handshakers {
            gate,
            queue: Mutex::default(),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Recovered when poisoned: a queue and a counter (see `locks`).
        crate::locks::recover(&self.queue)
    }

    /// Runs the handshake of an accepted connection on an idle handshake thread, or a new one.
    pub fn dispatch(&'static self, slot: HandshakeSlot, stream: TcpStream, peer: SocketAddr) {
        let job = Job { slot, stream, peer };
        {
            let mut queue = self.lock();
            if queue.idle > 0 {
                queue.idle -= 1;
                queue.jobs.push_back(job);
                self.wake.notify_one();
                return;
            }
        }
        let spawned = thread::Builder::new()
            .name("dockgate-handshake".into())
            .stack_size(HANDSHAKE_THREAD_STACK)
            .spawn(move || self.work(job));
        if let Err(e) = spawned {
            // The job, and with it the connection, is dropped: the client sees it close.
            error!("peer={peer}: cannot start a handshake thread, dropping the connection: {e}");
        }
    }

    /// A handshake thread: serves connections until none came for `IDLE_EXIT`.
    fn work(&self, first: Job) {
        let mut job = first;
        loop {
            conn::serve(self.gate, job.slot, job.stream, job.peer);
            match self.next_job() {
                Some(next) => job = next,
                None => return,
            }
        }
    }

    /// Waits idle for the next connection; `None` when the thread may end.
    fn next_job(&self) -> Option<Job> {
        let mut queue = self.lock();
        queue.idle += 1;
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                return Some(job);
            }
            let (guard, waited) = self
                .wake
                .wait_timeout(queue, IDLE_EXIT)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            queue = guard;
            if waited.timed_out() && queue.jobs.is_empty() {
                // No job is queued, so no job is promised to this thread: `idle` counts it.
                queue.idle -= 1;
                return None;
            }
        }
    }
}
