//! Pools of reusable threads: the handshake threads (`handshakers`) and the two threads of every
//! authenticated session (`conn`) run their work here.
//!
//! A thread waits a while for its next job instead of ending: starting and ending a thread per
//! job (mapping and unmapping its stack, with the TLB shootdowns that come with it) cost ~15 % of
//! the handshake rate for the handshake threads, and ~9 % of the gate's CPU samples were still
//! thread starts (`clone3`) while the two session threads were started fresh per connection.
//!
//! A pool grows on demand: a job goes to an idle thread if one is waiting, otherwise to a new
//! thread, so a job never waits for another job (a slow client never delays another client;
//! whatever bounds the work, such as the handshake slots or the connection limits, is decided
//! before a job gets here). A thread that found no job for the pool's idle time ends, so the
//! threads (and the dirty pages of their stacks) of a burst go away soon after it.
//!
//! A job that panics ends its thread, as it would have without a pool; the pool only counts a
//! thread as idle while it waits in `next_job`, so the panicking thread is simply not counted,
//! and the next job starts a new thread. The job's own drop guards run during the unwinding, as
//! before.

use std::collections::VecDeque;
use std::io;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

/// How long an idle pool thread waits for its next job before it ends: long enough to be reused
/// under a steady stream of connections, short enough that the threads of a burst go away soon
/// after it.
pub const IDLE_EXIT: Duration = Duration::from_secs(5);

/// One piece of work: the whole life of a handshake, or of one side of a session.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Threads with one name and stack size that take jobs until they have been idle too long.
pub struct Pool {
    /// The threads' name (`top -H`, `/proc/PID/task/*/comm`, panic messages).
    name: &'static str,
    stack_size: usize,
    idle_exit: Duration,
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// Jobs handed to idle threads, and how many idle threads are not promised one yet.
struct Queue {
    jobs: VecDeque<Job>,
    /// Idle threads minus queued jobs: a job queued only when this is above zero is always
    /// taken at once.
    idle: usize,
}

impl Pool {
    /// A pool without threads yet; `const` so that a pool can be a `static`.
    pub const fn new(name: &'static str, stack_size: usize, idle_exit: Duration) -> Pool {
        Pool {
            name,
            stack_size,
            idle_exit,
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                idle: 0,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Recovered when poisoned: a queue and a counter (see `locks`).
        crate::locks::recover(&self.queue)
    }

    /// Runs `job` on an idle thread of this pool, or on a new one. An error (no thread could be
    /// started) means the job was dropped without running: whatever it owned is closed.
    pub fn run(&'static self, job: Job) -> io::Result<()> {
        {
            let mut queue = self.lock();
            if queue.idle > 0 {
                queue.idle -= 1;
                queue.jobs.push_back(job);
                self.wake.notify_one();
                return Ok(());
            }
        }
        thread::Builder::new()
            .name(self.name.into())
            .stack_size(self.stack_size)
            .spawn(move || self.work(job))
            .map(drop)
    }

    /// A pool thread: runs jobs until none came for `idle_exit`.
    fn work(&self, first: Job) {
        let mut job = first;
        loop {
            job();
            match self.next_job() {
                Some(next) => job = next,
                None => return,
            }
        }
    }

    /// Waits idle for the next job; `None` when the thread may end.
    fn next_job(&self) -> Option<Job> {
        let mut queue = self.lock();
        queue.idle += 1;
        loop {
            if let Some(job) = queue.jobs.pop_front() {
                return Some(job);
            }
            let (guard, waited) = self
                .wake
                .wait_timeout(queue, self.idle_exit)
                .unwrap_or_else(PoisonError::into_inner);
            queue = guard;
            if waited.timed_out() && queue.jobs.is_empty() {
                // No job is queued, so no job is promised to this thread: `idle` counts it.
                queue.idle -= 1;
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Instant;

    fn thread_id_of(pool: &'static Pool) -> thread::ThreadId {
        let (tx, rx) = mpsc::channel();
        pool.run(Box::new(move || tx.send(thread::current().id()).unwrap()))
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    /// Waits until the pool counts `n` idle threads (a thread counts itself after its job).
    fn wait_idle(pool: &Pool, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while pool.lock().idle != n {
            assert!(
                Instant::now() < deadline,
                "idle threads: {}",
                pool.lock().idle
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn an_idle_thread_takes_the_next_job_and_keeps_the_pools_name() {
        static POOL: Pool = Pool::new("dockgate-test-reuse", 64 * 1024, Duration::from_secs(60));
        let first = thread_id_of(&POOL);
        wait_idle(&POOL, 1);
        assert_eq!(thread_id_of(&POOL), first);
        let (tx, rx) = mpsc::channel();
        POOL.run(Box::new(move || {
            tx.send(thread::current().name().map(String::from)).unwrap()
        }))
        .unwrap();
        assert_eq!(rx.recv().unwrap().as_deref(), Some("dockgate-test-reuse"));
    }

    #[test]
    fn a_job_never_waits_for_a_busy_thread() {
        static POOL: Pool = Pool::new("dockgate-test-grow", 64 * 1024, Duration::from_secs(60));
        let (release, blocked) = mpsc::channel::<()>();
        POOL.run(Box::new(move || blocked.recv().unwrap())).unwrap();
        // The only thread is busy until the second job has run: the second needs its own.
        let (tx, rx) = mpsc::channel();
        POOL.run(Box::new(move || tx.send(()).unwrap())).unwrap();
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the second job ran while the first was busy");
        release.send(()).unwrap();
        wait_idle(&POOL, 2);
    }

    #[test]
    fn a_panicking_job_ends_its_thread_and_the_pool_goes_on() {
        static POOL: Pool = Pool::new("dockgate-test-panic", 64 * 1024, Duration::from_secs(60));
        POOL.run(Box::new(|| panic!("a bug in a job"))).unwrap();
        // Not counted idle: the next job gets a new thread instead of being queued for a dead one.
        let (tx, rx) = mpsc::channel();
        POOL.run(Box::new(move || tx.send(()).unwrap())).unwrap();
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the job after a panic ran");
        wait_idle(&POOL, 1);
    }

    /// Sends on its channel when dropped: kept in a thread-local, when its thread ends.
    struct OnThreadEnd(mpsc::Sender<()>);
    impl Drop for OnThreadEnd {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    thread_local! {
        static THREAD_END: std::cell::RefCell<Option<OnThreadEnd>> = const { std::cell::RefCell::new(None) };
    }

    #[test]
    fn idle_threads_end_after_the_idle_time() {
        static POOL: Pool = Pool::new("dockgate-test-exit", 64 * 1024, Duration::from_millis(50));
        let (tx, ended) = mpsc::channel();
        POOL.run(Box::new(move || {
            THREAD_END.with(|end| *end.borrow_mut() = Some(OnThreadEnd(tx)))
        }))
        .unwrap();
        ended
            .recv_timeout(Duration::from_secs(10))
            .expect("the idle thread ended");
        assert_eq!(POOL.lock().idle, 0);
    }
}
