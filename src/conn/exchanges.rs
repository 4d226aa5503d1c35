//! The hand-over between a connection's two threads: which request each response answers.
//!
//! The request side queues every request before sending it to Docker. The response side does not
//! sleep on this queue: it sleeps in its read from Docker and looks at the queue when Docker's
//! answer arrives, which by then holds its request. One wake-up per exchange instead of two (a
//! queue wake-up, then a read that finds nothing yet) is what keeps keep-alive requests cheap.
//!
//! The price: when the request side stops without sending anything more (the client closed, a
//! refused request head), a response side that has answered everything is asleep in a read that
//! nothing will end. `finish` says so, and the request side then aborts the upstream connection
//! to wake it; nothing is lost, since no answer is outstanding.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Shared by the two threads of a connection until it is hijacked or closed.
pub struct Exchanges<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    queue: VecDeque<Queued<T>>,
    forwarded: u64,
    answered: u64,
    requests_ended: bool,
}

/// One entry of the queue.
pub enum Queued<T> {
    /// A request on its way to Docker; its response comes next.
    Forwarded(T),
    /// A request the gate refuses: answer it after the earlier responses, then close.
    Refused { status: u16, message: String },
}

/// What the response side finds in the queue.
pub enum Next<T> {
    Item(Queued<T>),
    /// Nothing queued; the request side goes on.
    Empty,
    /// Nothing queued, and the request side has stopped: no more exchanges.
    Ended,
}

impl<T> Exchanges<T> {
    pub fn new() -> Self {
        Exchanges {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                forwarded: 0,
                answered: 0,
                requests_ended: false,
            }),
        }
    }

    /// Request side: queue a request before it is sent to Docker.
    pub fn forward(&self, request: T) {
        let mut state = self.lock();
        state.forwarded += 1;
        state.queue.push_back(Queued::Forwarded(request));
    }

    /// Request side: no more requests (after `refusal`, if any). Returns true when every forwarded
    /// request has been answered, that is when the response side may be asleep in a read from
    /// Docker that only an abort of the upstream connection ends.
    pub fn finish(&self, refusal: Option<(u16, String)>) -> bool {
        let mut state = self.lock();
        if let Some((status, message)) = refusal {
            state.queue.push_back(Queued::Refused { status, message });
        }
        state.requests_ended = true;
        state.answered == state.forwarded
    }

    /// Response side: the next entry, after counting the response just completed (if any) as
    /// answered. Both happen under one lock, so `finish` can never see every request answered
    /// while the response side still goes back to sleep without having seen what `finish` queued.
    pub fn next(&self, completed_one: bool) -> Next<T> {
        let mut state = self.lock();
        if completed_one {
            state.answered += 1;
        }
        match state.queue.pop_front() {
            Some(item) => Next::Item(item),
            None if state.requests_ended => Next::Ended,
            None => Next::Empty,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        // A panic on the other thread while holding the lock leaves only counters and a queue:
        // still consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_come_out_in_order_then_the_refusal_then_the_end() {
        let exchanges = Exchanges::new();
        exchanges.forward("a");
        exchanges.forward("b");
        assert!(matches!(
            exchanges.next(false),
            Next::Item(Queued::Forwarded("a"))
        ));
        assert!(
            !exchanges.finish(Some((400, "bad".into()))),
            "b is still unanswered"
        );
        assert!(matches!(
            exchanges.next(true),
            Next::Item(Queued::Forwarded("b"))
        ));
        assert!(matches!(
            exchanges.next(true),
            Next::Item(Queued::Refused { status: 400, .. })
        ));
        assert!(matches!(exchanges.next(false), Next::Ended));
    }

    #[test]
    fn finish_reports_a_response_side_with_nothing_outstanding() {
        let exchanges = Exchanges::new();
        assert!(matches!(exchanges.next(false), Next::Empty));
        exchanges.forward(1);
        assert!(matches!(
            exchanges.next(false),
            Next::Item(Queued::Forwarded(1))
        ));
        // The response to 1 is complete and the response side found nothing more: it will sleep
        // in its next read from Docker, so finishing must ask for the wake-up.
        assert!(matches!(exchanges.next(true), Next::Empty));
        assert!(exchanges.finish(None));
        assert!(matches!(exchanges.next(false), Next::Ended));
    }
}
