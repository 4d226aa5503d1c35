//! The hand-over between a connection's two threads: the upstream connection the request side
//! opened, which request each response answers, and the gate's own answers, all in the order
//! the client must receive them.
//!
//! The request side queues every request before sending it to Docker. The response side does not
//! sleep on this queue while Docker has answers to send: it sleeps in its read from Docker and
//! looks at the queue when Docker's answer arrives, which by then holds its request. One wake-up
//! per exchange instead of two (a queue wake-up, then a read that finds nothing yet) is what
//! keeps keep-alive requests cheap. Only while there is no upstream connection (before the
//! first request, after a local answer dropped it) does the response side wait on the queue.
//!
//! The price: when the request side queues something that is not a forwarded request (a local
//! answer, the end) while every forwarded request has been answered, the response side may be
//! asleep in a read that nothing will end. `answer_locally` and `finish` say so, and the request
//! side then aborts the upstream connection to wake it; nothing is lost, since no answer is
//! outstanding, and the next request opens a new connection.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use super::answer::LocalAnswer;
use crate::locks;

/// Shared by the two threads of a connection until it is hijacked or closed.
pub struct Exchanges<T, U> {
    state: Mutex<State<T, U>>,
    /// Wakes a response side that has no upstream connection to sleep in.
    queued: Condvar,
}

struct State<T, U> {
    queue: VecDeque<Queued<T, U>>,
    forwarded: u64,
    answered: u64,
    requests_ended: bool,
}

/// One entry of the queue.
pub enum Queued<T, U> {
    /// A new upstream connection (its reading half): the requests after it go there.
    Connected(U),
    /// A request on its way to Docker; its response comes next.
    Forwarded(T),
    /// The gate answers this request itself, after the earlier responses.
    Local {
        answer: LocalAnswer,
        /// The request, when its audit record is written with the answer.
        request: Option<T>,
        /// The request side aborted the upstream connection to wake the response side (see
        /// the module doc): drop it after this answer.
        upstream_dropped: bool,
    },
    /// The gate's own interim response (`100 Continue`) to the request whose body it is about
    /// to read; that exchange goes on.
    Interim {
        bytes: &'static [u8],
        /// As for `Local`.
        upstream_dropped: bool,
    },
}

/// What the response side finds in the queue.
pub enum Next<T, U> {
    Item(Queued<T, U>),
    /// Nothing queued; the request side goes on.
    Empty,
    /// Nothing queued, and the request side has stopped: no more exchanges.
    Ended,
}

impl<T, U> Exchanges<T, U> {
    pub fn new() -> Self {
        Exchanges {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                forwarded: 0,
                answered: 0,
                requests_ended: false,
            }),
            queued: Condvar::new(),
        }
    }

    /// Request side: a new upstream connection, before the first request sent on it.
    pub fn connected(&self, upstream: U) {
        self.push(Queued::Connected(upstream));
    }

    /// Request side: queue a request before it is sent to Docker.
    pub fn forward(&self, request: T) {
        let mut state = self.lock();
        state.forwarded += 1;
        state.queue.push_back(Queued::Forwarded(request));
        drop(state);
        self.queued.notify_one();
    }

    /// Request side: queue the gate's own answer. Returns true when every forwarded request has
    /// been answered: the response side may then be asleep in a read from Docker, and the caller
    /// must abort the upstream connection (which the answer's entry says is then gone).
    pub fn answer_locally(&self, answer: LocalAnswer, request: Option<T>) -> bool {
        let mut state = self.lock();
        let idle = state.answered == state.forwarded;
        state.queue.push_back(Queued::Local {
            answer,
            request,
            upstream_dropped: idle,
        });
        drop(state);
        self.queued.notify_one();
        idle
    }

    /// Request side: queue an interim response (after the earlier responses). Returns what
    /// `answer_locally` returns, for the same reason.
    pub fn interim(&self, bytes: &'static [u8]) -> bool {
        let mut state = self.lock();
        let idle = state.answered == state.forwarded;
        state.queue.push_back(Queued::Interim {
            bytes,
            upstream_dropped: idle,
        });
        drop(state);
        self.queued.notify_one();
        idle
    }

    /// Request side: no more requests. Returns true when every forwarded request has been
    /// answered, that is when the response side may be asleep in a read from Docker that only
    /// an abort of the upstream connection ends. Calling it again changes nothing.
    pub fn finish(&self) -> bool {
        let mut state = self.lock();
        state.requests_ended = true;
        let idle = state.answered == state.forwarded;
        drop(state);
        self.queued.notify_one();
        idle
    }

    /// Response side: the next entry, after counting the response just completed (if any) as
    /// answered. Both happen under one lock, so `finish` can never see every request answered
    /// while the response side still goes back to sleep without having seen what `finish` queued.
    pub fn next(&self, completed_one: bool) -> Next<T, U> {
        let mut state = self.lock();
        if completed_one {
            state.answered += 1;
        }
        Self::pop(&mut state)
    }

    /// Response side, with no upstream connection to sleep in: waits for the next entry or the
    /// end.
    pub fn wait(&self) -> Next<T, U> {
        let mut state = self.lock();
        loop {
            match Self::pop(&mut state) {
                Next::Empty => {
                    state = self
                        .queued
                        .wait(state)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                }
                next => return next,
            }
        }
    }

    fn pop(state: &mut State<T, U>) -> Next<T, U> {
        match state.queue.pop_front() {
            Some(item) => Next::Item(item),
            None if state.requests_ended => Next::Ended,
            None => Next::Empty,
        }
    }

    fn push(&self, item: Queued<T, U>) {
        self.lock().queue.push_back(item);
        self.queued.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T, U>> {
        // A panic on the other thread while holding the lock leaves only counters and a queue,
        // each updated in one step: still consistent (see `locks`).
        locks::recover(&self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Queue = Exchanges<&'static str, ()>;

    #[test]
    fn requests_come_out_in_order_then_the_local_answer_then_the_end() {
        let exchanges = Queue::new();
        exchanges.connected(());
        exchanges.forward("a");
        exchanges.forward("b");
        assert!(matches!(
            exchanges.next(false),
            Next::Item(Queued::Connected(()))
        ));
        assert!(matches!(
            exchanges.next(false),
            Next::Item(Queued::Forwarded("a"))
        ));
        let bad = LocalAnswer::BadRequest("bad".into());
        assert!(
            !exchanges.answer_locally(bad, None),
            "b is still unanswered"
        );
        assert!(!exchanges.finish());
        assert!(matches!(
            exchanges.next(true),
            Next::Item(Queued::Forwarded("b"))
        ));
        assert!(matches!(
            exchanges.next(true),
            Next::Item(Queued::Local {
                upstream_dropped: false,
                ..
            })
        ));
        assert!(matches!(exchanges.next(false), Next::Ended));
    }

    #[test]
    fn finish_and_local_answers_report_a_response_side_with_nothing_outstanding() {
        let exchanges = Queue::new();
        assert!(matches!(exchanges.next(false), Next::Empty));
        exchanges.forward("a");
        assert!(matches!(
            exchanges.next(false),
            Next::Item(Queued::Forwarded("a"))
        ));
        // The response to a is complete and the response side found nothing more: it will sleep
        // in its next read from Docker, so a local answer must ask for the wake-up.
        assert!(matches!(exchanges.next(true), Next::Empty));
        let denied = LocalAnswer::Forbidden("no".into());
        assert!(exchanges.answer_locally(denied, Some("b")));
        assert!(matches!(
            exchanges.next(false),
            Next::Item(Queued::Local {
                upstream_dropped: true,
                request: Some("b"),
                ..
            })
        ));
        assert!(exchanges.finish());
        assert!(matches!(exchanges.next(false), Next::Ended));
    }

    #[test]
    fn a_response_side_without_upstream_waits_on_the_queue() {
        let exchanges = std::sync::Arc::new(Queue::new());
        let waiter = {
            let exchanges = exchanges.clone();
            std::thread::spawn(move || {
                let first = matches!(exchanges.wait(), Next::Item(Queued::Forwarded("a")));
                let second = matches!(exchanges.wait(), Next::Ended);
                (first, second)
            })
        };
        exchanges.forward("a");
        exchanges.finish();
        assert_eq!(waiter.join().unwrap(), (true, true));
    }
}
