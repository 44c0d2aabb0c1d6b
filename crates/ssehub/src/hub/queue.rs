//! One subscriber's queue between the dispatcher and its stream: bounded in updates and in
//! bytes, and holding no allocation while empty.
//!
//! Most subscribers are idle most of the time, so what an empty queue costs is paid by every
//! connection: tokio's bounded channel allocates its first 32-slot block and its cache-padded
//! state up front (about 1.8 KiB per subscriber, measured with heaptrack; BENCHMARKS.md, hub
//! load). This queue is a `VecDeque` under a mutex that only the dispatcher and the one stream
//! ever take, briefly, and it gives its buffer back once drained after a burst.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// Capacity kept when the queue drains; a bigger buffer (left by a burst) is released.
const KEEP_CAPACITY: usize = 16;

/// One encoded update on its way to a subscriber.
#[derive(Clone, Debug)]
pub(crate) struct Delivery {
    /// The update's position in history: lets a stream skip what replay already sent.
    pub seq: u64,
    /// The update encoded once as an SSE frame, shared by every recipient.
    pub bytes: Bytes,
}

/// Bounds on each subscriber's queue.
#[derive(Clone, Copy, Debug)]
pub struct QueueLimits {
    /// Encoded bytes a subscriber may have waiting before it is cut off.
    pub queue_bytes: usize,
    /// Updates a subscriber may have waiting before it is cut off.
    pub queue_events: usize,
}

/// What [`Queue::push`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Push {
    /// The delivery is queued.
    Queued,
    /// The delivery would exceed the bounds: the queue is now closed and emptied, and the
    /// subscriber must be cut off.
    Overflowed,
    /// The queue was already closed; nothing was queued.
    Closed,
}

/// What a live stream waits for, in the order it is told: shutdown first, then deliveries,
/// then the end.
#[derive(Debug)]
pub(crate) enum Next {
    /// The hub is shutting down (see [`Queue::shut_down`]).
    ShutDown,
    /// The next delivery.
    Delivery(Delivery),
    /// Closed and drained: no more deliveries will come.
    Closed,
}

/// A bounded single-consumer queue of deliveries.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Delivery>,
    /// Encoded bytes in `items`.
    bytes: usize,
    /// The stream waiting for the next delivery.
    waker: Option<Waker>,
    /// No more deliveries will come: the subscriber was cut off or left the fan-out.
    closed: bool,
    /// Closed because the subscriber fell behind (see [`Queue::poll_cut_off`]).
    cut_off: bool,
    /// The connection's writer, waiting to hear of a cut-off while a write is stuck.
    cut_waker: Option<Waker>,
    /// The hub is shutting down: told through the queue the stream already waits on, so an
    /// idle stream needs no registration of its own on the shutdown token.
    shut_down: bool,
}

impl State {
    fn pop(&mut self) -> Option<Delivery> {
        let d = self.items.pop_front()?;
        self.bytes -= d.bytes.len();
        if self.items.is_empty() && self.items.capacity() > KEEP_CAPACITY {
            self.items = VecDeque::new();
        }
        Some(d)
    }
}

impl Queue {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Nothing here can panic while holding the lock, but a poisoned queue is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `delivery` and wakes the stream. When it would exceed `limits` (the subscriber
    /// fell behind) the queue closes instead and this says [`Push::Overflowed`], once; later
    /// pushes say [`Push::Closed`]. One update is always accepted into an empty queue, however
    /// large, so a big update cannot starve a subscriber that keeps up.
    pub(crate) fn push(&self, delivery: Delivery, limits: &QueueLimits) -> Push {
        let mut s = self.state();
        if s.closed {
            return Push::Closed;
        }
        let len = delivery.bytes.len();
        let over = s.items.len() >= limits.queue_events.max(1)
            || (!s.items.is_empty() && s.bytes + len > limits.queue_bytes);
        if over {
            // What is queued is dropped too: the subscriber resumes from history after its
            // last complete event anyway, and its stream can end at once instead of first
            // waiting for a socket that stopped taking data.
            s.closed = true;
            s.cut_off = true;
            s.items = VecDeque::new();
            s.bytes = 0;
        } else {
            s.bytes += len;
            s.items.push_back(delivery);
        }
        let waker = s.waker.take();
        let cut_waker = if over { s.cut_waker.take() } else { None };
        drop(s);
        for w in [waker, cut_waker].into_iter().flatten() {
            w.wake();
        }
        if over { Push::Overflowed } else { Push::Queued }
    }

    /// Ends the queue: the stream receives what is queued, then `None`.
    pub(crate) fn close(&self) {
        let mut s = self.state();
        s.closed = true;
        let waker = s.waker.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The next delivery if one is queued.
    pub(crate) fn try_pop(&self) -> Option<Delivery> {
        self.state().pop()
    }

    /// Tells the stream the hub is shutting down: its next poll says [`Next::ShutDown`],
    /// whatever is queued.
    pub(crate) fn shut_down(&self) {
        let mut s = self.state();
        s.shut_down = true;
        let waker = s.waker.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// What a live stream does next: [`Next::ShutDown`] before anything queued (the hub stops
    /// streams without writing what is still waiting), then deliveries, then [`Next::Closed`].
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Next> {
        let mut s = self.state();
        if s.shut_down {
            return Poll::Ready(Next::ShutDown);
        }
        if let Some(d) = s.pop() {
            return Poll::Ready(Next::Delivery(d));
        }
        if s.closed {
            return Poll::Ready(Next::Closed);
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Ready once the subscriber has been cut off for falling behind. Its stream then ends at
    /// once, but the connection's writer may be stuck writing an earlier chunk to a socket the
    /// client stopped reading; this tells it to give up soon instead of after the write-stall
    /// timeout.
    pub(crate) fn poll_cut_off(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.state();
        if s.cut_off {
            return Poll::Ready(());
        }
        match &s.cut_waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.cut_waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Updates and bytes waiting.
    #[cfg(test)]
    fn waiting(&self) -> (usize, usize) {
        let s = self.state();
        (s.items.len(), s.bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;

    use super::*;

    fn d(seq: u64, len: usize) -> Delivery {
        Delivery {
            seq,
            bytes: Bytes::from(vec![b'x'; len]),
        }
    }

    const LIMITS: QueueLimits = QueueLimits {
        queue_bytes: 100,
        queue_events: 3,
    };

    #[test]
    fn over_the_update_bound_the_queue_closes_and_drops_its_backlog() {
        let q = Queue::default();
        for seq in 1..=3 {
            assert_eq!(q.push(d(seq, 1), &LIMITS), Push::Queued);
        }
        assert_eq!(q.push(d(4, 1), &LIMITS), Push::Overflowed);
        // Closed and empty: the stream ends at once (the client resumes from history), nothing
        // more gets in even with room, and the overflow is reported once.
        assert_eq!(q.waiting(), (0, 0));
        assert!(q.try_pop().is_none());
        assert_eq!(q.push(d(5, 1), &LIMITS), Push::Closed);
        assert!(q.try_pop().is_none());
    }

    #[test]
    fn the_byte_bound_counts_what_is_waiting_but_always_admits_one() {
        let q = Queue::default();
        // Larger than the bound, into an empty queue: accepted.
        assert_eq!(q.push(d(1, 150), &LIMITS), Push::Queued);
        assert_eq!(q.waiting(), (1, 150));
        assert_eq!(q.try_pop().map(|d| d.seq), Some(1));
        assert_eq!(q.waiting(), (0, 0));
        assert_eq!(q.push(d(2, 60), &LIMITS), Push::Queued);
        assert_eq!(q.push(d(3, 40), &LIMITS), Push::Queued);
        assert_eq!(
            q.push(d(4, 1), &LIMITS),
            Push::Overflowed,
            "101 bytes would be waiting"
        );
    }

    #[test]
    fn a_drained_queue_gives_back_a_burst_buffer() {
        let q = Queue::default();
        let roomy = QueueLimits {
            queue_bytes: usize::MAX,
            queue_events: 1000,
        };
        for seq in 0..500 {
            assert_eq!(q.push(d(seq, 1), &roomy), Push::Queued);
        }
        while q.try_pop().is_some() {}
        assert!(q.state().items.capacity() <= KEEP_CAPACITY);
        // Drained through the waiting path too.
        for seq in 0..500 {
            assert_eq!(q.push(d(seq, 1), &roomy), Push::Queued);
        }
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        while let Poll::Ready(Next::Delivery(_)) = q.poll_next(&mut cx) {}
        assert!(q.state().items.capacity() <= KEEP_CAPACITY);
    }

    #[tokio::test]
    async fn a_waiting_stream_is_woken_by_a_push_and_ends_after_close() {
        let q = Arc::new(Queue::default());
        let reader = {
            let q = q.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                while let Next::Delivery(d) = std::future::poll_fn(|cx| q.poll_next(cx)).await {
                    seqs.push(d.seq);
                }
                seqs
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(q.push(d(1, 1), &LIMITS), Push::Queued);
        tokio::task::yield_now().await;
        assert_eq!(q.push(d(2, 1), &LIMITS), Push::Queued);
        q.close();
        assert_eq!(reader.await.unwrap(), vec![1, 2]);
    }

    #[tokio::test]
    async fn shutdown_wakes_a_waiting_stream_and_comes_before_what_is_queued() {
        let q = Arc::new(Queue::default());
        let reader = {
            let q = q.clone();
            tokio::spawn(async move { std::future::poll_fn(|cx| q.poll_next(cx)).await })
        };
        tokio::task::yield_now().await;
        q.shut_down();
        assert!(matches!(reader.await.unwrap(), Next::ShutDown));
        // Told again on every poll, ahead of a delivery still waiting.
        let q = Queue::default();
        assert_eq!(q.push(d(1, 1), &LIMITS), Push::Queued);
        q.shut_down();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(q.poll_next(&mut cx), Poll::Ready(Next::ShutDown)));
        assert!(matches!(q.poll_next(&mut cx), Poll::Ready(Next::ShutDown)));
    }
}
