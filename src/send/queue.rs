//! The work a sender takes next: retries whose time has come first, then fresh messages from
//! the preparers; a transiently failed recipient waits here, in a timed queue, instead of in
//! its sender.
//!
//! Why a binary heap with `sleep_until` rather than tokio-util's `DelayQueue`: every sender
//! takes from one shared queue, and a `DelayQueue` is a single consumer polled through
//! `&mut self`, so it would need its own task and a channel in front; the progress line needs
//! the earliest due time and the count (a heap's `peek` and `len`); and a stop must release
//! every waiting entry at once, due or not, which a heap does by ignoring the times. The heap
//! is behind a `std` mutex held for a push or a pop only, never across an await.
//!
//! Time is tokio's monotonic [`Instant`]: back-off is a duration, not a date, and a pinned
//! wall clock (`MAILSHOT_FIXED_TIME`) must not freeze the retries.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Mutex;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

pub use crate::progress::Waiting;

/// What a sender gets from [`Scheduler::next`].
#[derive(Debug)]
pub enum Next<F, R> {
    /// A waiting entry whose time has come (or any waiting entry, once the run is stopping).
    Retry(R),
    /// A fresh message from the preparers.
    Fresh(F),
    /// Nothing is left: the preparers are done, nothing waits and nothing is out.
    Done,
}

struct Entry<T> {
    due: Instant,
    /// Ties keep their order of arrival.
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    /// Reversed, so that `BinaryHeap` (a max-heap) yields the earliest due first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

struct State<F, R> {
    heap: BinaryHeap<Entry<R>>,
    /// Fresh messages taken from the preparers' channel (a batch at a time) and not yet
    /// handed out: one at a time, so a retry that comes due meanwhile goes first.
    fresh: std::collections::VecDeque<F>,
    seq: u64,
    /// Items handed to senders and not yet settled or put back: while any is out, a retry
    /// may still come, so an idle sender must not leave.
    out: usize,
    /// The preparers' channel is closed and drained.
    fresh_done: bool,
    /// The run is stopping: waiting entries are handed out at once, whatever their time.
    stopping: bool,
    /// The run is gone (nobody takes outcomes any more): every sender leaves.
    closed: bool,
}

pub struct Scheduler<F, R> {
    fresh: tokio::sync::Mutex<mpsc::Receiver<Vec<F>>>,
    /// At most this many entries wait: past it, senders take no fresh work until some are
    /// done, so memory stays flat even when one provider's limit holds many messages back.
    cap: usize,
    state: Mutex<State<F, R>>,
    changed: Notify,
}

impl<F, R> Scheduler<F, R> {
    pub fn new(fresh: mpsc::Receiver<Vec<F>>, cap: usize) -> Scheduler<F, R> {
        Scheduler {
            fresh: tokio::sync::Mutex::new(fresh),
            cap: cap.max(1),
            state: Mutex::new(State {
                heap: BinaryHeap::new(),
                fresh: std::collections::VecDeque::new(),
                seq: 0,
                out: 0,
                fresh_done: false,
                stopping: false,
                closed: false,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<F, R>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An item taken from [`next`](Self::next) waits again until `due`.
    pub fn retry_at(&self, item: R, due: Instant) {
        {
            let mut s = self.lock();
            s.seq += 1;
            let seq = s.seq;
            s.heap.push(Entry { due, seq, item });
            s.out = s.out.saturating_sub(1);
        }
        self.changed.notify_waiters();
    }

    /// An item taken from [`next`](Self::next) is settled: it will not come back.
    pub fn settled(&self) {
        let last = {
            let mut s = self.lock();
            s.out = s.out.saturating_sub(1);
            // Only then can an idle sender's wait end (the run is over); waking every sender
            // each time the others run dry would only make them contend for the channel.
            s.out == 0 && s.fresh_done
        };
        if last {
            self.changed.notify_waiters();
        }
    }

    /// The run is stopping: every waiting entry is handed out now, so its sender can report
    /// it (deferred) instead of waiting out its back-off.
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.changed.notify_waiters();
    }

    /// Nobody takes outcomes any more: every sender leaves at once.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_waiters();
    }

    pub fn waiting(&self) -> Waiting {
        let s = self.lock();
        Waiting {
            count: s.heap.len(),
            next_due: s.heap.peek().map(|e| e.due),
        }
    }

    /// A due entry, or what to wait for: `Err(Some(due))` the earliest due time,
    /// `Err(None)` nothing waits. `Ok(None)` means the run is over for this sender.
    fn poll_ready(&self, now: Instant) -> Result<Next<F, R>, Option<Instant>> {
        let mut s = self.lock();
        if s.closed {
            return Ok(Next::Done);
        }
        let ready = s.heap.peek().is_some_and(|e| s.stopping || e.due <= now);
        if ready && let Some(e) = s.heap.pop() {
            s.out += 1;
            return Ok(Next::Retry(e.item));
        }
        if let Some(f) = s.fresh.pop_front() {
            s.out += 1;
            return Ok(Next::Fresh(f));
        }
        if s.fresh_done && s.heap.is_empty() && s.out == 0 {
            return Ok(Next::Done);
        }
        Err(s.heap.peek().map(|e| e.due))
    }

    /// The next piece of work: a due retry before any fresh message. A sender waits here
    /// only when there is nothing to do yet; it never sleeps through one recipient's
    /// back-off while others are ready.
    pub async fn next(&self) -> Next<F, R> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so a change between the look and the wait wakes us.
            changed.as_mut().enable();
            let due = match self.poll_ready(Instant::now()) {
                Ok(next) => return next,
                Err(due) => due,
            };
            let hold_fresh = {
                let s = self.lock();
                s.fresh_done || s.heap.len() >= self.cap
            };
            let timer = async {
                match due {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            if hold_fresh {
                tokio::select! {
                    () = timer => {}
                    () = &mut changed => {}
                }
                continue;
            }
            let fresh = async { self.fresh.lock().await.recv().await };
            tokio::select! {
                // A retry that comes due while this sender waits for the preparers goes first.
                biased;
                () = timer => {}
                () = &mut changed => {}
                batch = fresh => match batch {
                    // Handed out one at a time by the next look, retries first.
                    Some(b) => self.lock().fresh.extend(b),
                    None => {
                        self.lock().fresh_done = true;
                        self.changed.notify_waiters();
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// The due retry `poll_ready` hands out at `now`, if any.
    fn retry(q: &Scheduler<u32, u32>, now: Instant) -> Option<u32> {
        match q.poll_ready(now) {
            Ok(Next::Retry(r)) => Some(r),
            _ => None,
        }
    }

    fn scheduler() -> (mpsc::Sender<Vec<u32>>, Arc<Scheduler<u32, u32>>) {
        let (tx, rx) = mpsc::channel(4);
        (tx, Arc::new(Scheduler::new(rx, 100)))
    }

    #[test]
    fn earliest_due_first_and_ties_in_arrival_order() {
        let (_tx, q) = scheduler();
        let t0 = Instant::now();
        q.lock().out = 4;
        q.retry_at(1, t0 + Duration::from_secs(3));
        q.retry_at(2, t0 + Duration::from_secs(1));
        q.retry_at(3, t0 + Duration::from_secs(1));
        q.retry_at(4, t0 + Duration::from_secs(2));
        let w = q.waiting();
        assert_eq!(w.count, 4);
        assert_eq!(w.next_due, Some(t0 + Duration::from_secs(1)));
        // Nothing is due before its time.
        assert_eq!(q.poll_ready(t0).err(), Some(w.next_due));
        let later = t0 + Duration::from_secs(10);
        let order: Vec<u32> = std::iter::from_fn(|| retry(&q, later)).collect();
        assert_eq!(order, [2, 3, 4, 1]);
    }

    #[test]
    fn stopping_hands_out_everything_at_once() {
        let (_tx, q) = scheduler();
        let t0 = Instant::now();
        q.lock().out = 2;
        q.retry_at(7, t0 + Duration::from_secs(3600));
        q.retry_at(8, t0 + Duration::from_secs(7200));
        q.stop();
        assert_eq!(retry(&q, t0), Some(7));
        assert_eq!(retry(&q, t0), Some(8));
        assert_eq!(q.waiting().count, 0);
    }

    #[tokio::test]
    async fn a_due_retry_goes_before_fresh_work() {
        let (tx, q) = scheduler();
        tx.send(vec![10, 11]).await.unwrap();
        assert!(matches!(q.next().await, Next::Fresh(10)));
        // 10 fails at once: its retry goes before 11, which came in the same batch.
        q.retry_at(10, Instant::now());
        tx.send(vec![12]).await.unwrap();
        assert!(matches!(q.next().await, Next::Retry(10)));
        q.settled();
        assert!(matches!(q.next().await, Next::Fresh(11)));
        assert!(matches!(q.next().await, Next::Fresh(12)));
    }

    /// The run ends only when the preparers are done, nothing waits and nothing is out: a
    /// sender with nothing to do stays while another's recipient may still come back.
    #[tokio::test]
    async fn done_only_when_nothing_waits_and_nothing_is_out() {
        let (tx, q) = scheduler();
        tx.send(vec![1]).await.unwrap();
        drop(tx);
        assert!(matches!(q.next().await, Next::Fresh(_)));
        let idle = tokio::spawn({
            let q = q.clone();
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        assert!(!idle.is_finished());
        // The recipient comes back: the idle sender gets it when it is due.
        q.retry_at(1, Instant::now() + Duration::from_millis(20));
        assert!(matches!(idle.await.unwrap(), Next::Retry(1)));
        q.settled();
        assert!(matches!(q.next().await, Next::Done));
    }

    /// A sender waiting for the preparers (an empty channel) still wakes for a retry that
    /// comes due, so the waiting recipient is not held up by a slow preparer.
    #[tokio::test]
    async fn a_sender_waiting_for_fresh_work_wakes_for_a_due_retry() {
        let (tx, q) = scheduler();
        tx.send(vec![5]).await.unwrap();
        assert!(matches!(q.next().await, Next::Fresh(_)));
        q.retry_at(5, Instant::now() + Duration::from_millis(10));
        // The channel stays open and empty.
        assert!(matches!(q.next().await, Next::Retry(5)));
        drop(tx);
    }

    /// A full queue takes no fresh work: the sender waits for the first due entry instead.
    #[tokio::test]
    async fn a_full_queue_holds_fresh_work_back() {
        let (tx, rx) = mpsc::channel(4);
        let q = Scheduler::<u32, u32>::new(rx, 1);
        tx.send(vec![1]).await.unwrap();
        tx.send(vec![2]).await.unwrap();
        assert!(matches!(q.next().await, Next::Fresh(_)));
        q.retry_at(1, Instant::now() + Duration::from_millis(10));
        assert!(matches!(q.next().await, Next::Retry(1)));
        assert!(matches!(q.next().await, Next::Fresh(2)));
    }

    #[tokio::test]
    async fn stop_releases_a_sender_waiting_on_a_long_back_off() {
        let (tx, q) = scheduler();
        drop(tx);
        q.lock().out = 1;
        q.retry_at(9, Instant::now() + Duration::from_secs(3600));
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        q.stop();
        assert!(matches!(waiter.await.unwrap(), Next::Retry(9)));
    }
}
