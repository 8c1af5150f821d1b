//! Turn-taking for SQLite's single writer connection.
//!
//! Embedded mode has one writer for everything: the API's acknowledgements
//! (a create, a callback) and the workers' job transactions. A payment's
//! background work is several times the writes of its create, so with plain
//! first-come turns a burst of creates waits behind the backlog it makes, and
//! the client sees the whole engine's latency. Here acknowledgements go first,
//! but background work keeps a guaranteed share ([`BACKGROUND_EVERY`]), so it
//! never starves: under overload the backlog grows and drains when the burst
//! ends, which is what a queue is for, while clients keep getting fast answers.

use std::collections::VecDeque;
use std::panic::Location;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// A wait this long for the writer is logged with the code that holds it: a
/// statement takes milliseconds, so a turn held for seconds is a bug to find.
const SLOW_WAIT: Duration = Duration::from_secs(5);

/// Which kind of write asks for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// A write a caller is waiting on for its answer (API requests).
    Ack,
    /// Job bookkeeping done by workers, sweepers and samplers.
    Background,
}

/// When both lanes wait, at least one turn in this many goes to background work.
pub(crate) const BACKGROUND_EVERY: u32 = 4;

/// Waiters of both lanes, taken in the order this module promises:
/// acknowledgements first, background at least one in [`BACKGROUND_EVERY`].
/// Also the writer thread's queue (`writer_thread.rs`).
#[derive(Debug)]
pub(crate) struct Lanes<T> {
    ack: VecDeque<T>,
    background: VecDeque<T>,
    /// Consecutive turns given to `Ack` while background work was waiting.
    ack_streak: u32,
}

impl<T> Default for Lanes<T> {
    fn default() -> Self {
        Lanes {
            ack: VecDeque::new(),
            background: VecDeque::new(),
            ack_streak: 0,
        }
    }
}

impl<T> Lanes<T> {
    pub(crate) fn push(&mut self, lane: Lane, item: T) {
        match lane {
            Lane::Ack => self.ack.push_back(item),
            Lane::Background => self.background.push_back(item),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ack.is_empty() && self.background.is_empty()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ack.len() + self.background.len()
    }

    /// The lane of the most urgent waiter: `Ack` while any acknowledgement waits.
    pub(crate) fn urgent_lane(&self) -> Lane {
        if self.ack.is_empty() {
            Lane::Background
        } else {
            Lane::Ack
        }
    }

    pub(crate) fn next(&mut self) -> Option<T> {
        let background_due = self.ack_streak + 1 >= BACKGROUND_EVERY;
        if !self.ack.is_empty() && (self.background.is_empty() || !background_due) {
            if !self.background.is_empty() {
                self.ack_streak += 1;
            }
            self.ack.pop_front()
        } else {
            self.ack_streak = 0;
            self.background.pop_front()
        }
    }
}

#[derive(Debug, Default)]
struct State {
    busy: bool,
    waiting: Lanes<oneshot::Sender<()>>,
    /// Who holds the writer, and since when (for the slow-wait log).
    holder: Option<(&'static Location<'static>, Instant)>,
}

#[derive(Debug, Default)]
pub(crate) struct WriteGate {
    state: Mutex<State>,
}

/// The right to use the writer; the next turn is handed on when dropped.
#[derive(Debug)]
pub(crate) struct Turn {
    gate: Arc<WriteGate>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.gate.hand_on();
    }
}

/// Waiting for a turn. If the wait is abandoned after the turn was handed to
/// it, the turn is passed on rather than lost.
struct Waiting {
    gate: Arc<WriteGate>,
    rx: Option<oneshot::Receiver<()>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            // After close() no turn can arrive; one that already did is ours to pass on.
            rx.close();
            if rx.try_recv().is_ok() {
                self.gate.hand_on();
            }
        }
    }
}

impl WriteGate {
    pub(crate) async fn turn(self: &Arc<Self>, lane: Lane, at: &'static Location<'static>) -> Turn {
        let rx = {
            let mut s = self.lock();
            if !s.busy {
                s.busy = true;
                s.holder = Some((at, Instant::now()));
                return Turn { gate: self.clone() };
            }
            let (tx, rx) = oneshot::channel();
            s.waiting.push(lane, tx);
            rx
        };
        let mut waiting = Waiting {
            gate: self.clone(),
            rx: Some(rx),
        };
        let received = loop {
            let rx = waiting.rx.as_mut().expect("set above");
            match tokio::time::timeout(SLOW_WAIT, rx).await {
                Ok(r) => break r.is_ok(),
                Err(_) => {
                    let holder = self.lock().holder;
                    tracing::warn!(
                        waiter = %at,
                        holder = ?holder.map(|(l, since)| (l.to_string(), since.elapsed())),
                        "waiting for the SQLite writer for over {SLOW_WAIT:?}"
                    );
                }
            }
        };
        waiting.rx = None;
        self.lock().holder = Some((at, Instant::now()));
        debug_assert!(
            received,
            "a waiter's sender is only dropped by handing it a turn"
        );
        Turn { gate: self.clone() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave State half-updated in a
        // way that matters more than stopping every writer would.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Gives the writer to the next waiter, or marks it free.
    fn hand_on(&self) {
        let mut s = self.lock();
        loop {
            match s.waiting.next() {
                // A waiter that gave up has closed its end: try the next one.
                Some(tx) => {
                    if tx.send(()).is_ok() {
                        return;
                    }
                }
                None => {
                    s.busy = false;
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Fills the gate with waiters of the given lanes (in order) behind a held
    /// turn, releases it, and records the order in which turns are granted.
    async fn grant_order(lanes: &[Lane]) -> Vec<(usize, Lane)> {
        let gate = Arc::new(WriteGate::default());
        let held = gate.turn(Lane::Ack, Location::caller()).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, lane) in lanes.iter().copied().enumerate() {
            let (g, order) = (gate.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let _turn = g.turn(lane, Location::caller()).await;
                order.lock().unwrap().push((i, lane));
                tokio::task::yield_now().await;
            }));
            // Each waiter is queued before the next is spawned.
            while {
                let s = gate.lock();
                s.waiting.len()
            } < i + 1
            {
                tokio::task::yield_now().await;
            }
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        let v = order.lock().unwrap().clone();
        v
    }

    #[tokio::test]
    async fn acknowledgements_go_first_but_background_keeps_its_share() {
        use Lane::*;
        let lanes = [Background, Background, Ack, Ack, Ack, Ack, Ack, Ack, Ack];
        let order: Vec<usize> = grant_order(&lanes).await.iter().map(|(i, _)| *i).collect();
        // Three acks, then one background turn, and so on; the rest in order.
        assert_eq!(order, vec![2, 3, 4, 0, 5, 6, 7, 1, 8]);
    }

    #[tokio::test]
    async fn one_lane_alone_is_first_come_first_served() {
        let order = grant_order(&[Lane::Background; 5]).await;
        assert_eq!(
            order.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        let order = grant_order(&[Lane::Ack; 5]).await;
        assert_eq!(
            order.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
    }

    #[tokio::test]
    async fn an_abandoned_wait_does_not_lose_the_turn() {
        let gate = Arc::new(WriteGate::default());
        let held = gate.turn(Lane::Ack, Location::caller()).await;
        // Give up waiting (the turn may be handed over at the same moment).
        let gave_up = tokio::time::timeout(
            Duration::from_millis(10),
            gate.turn(Lane::Background, Location::caller()),
        )
        .await;
        assert!(gave_up.is_err());
        drop(held);
        // The gate is free again: a new turn comes at once.
        tokio::time::timeout(
            Duration::from_secs(1),
            gate.turn(Lane::Ack, Location::caller()),
        )
        .await
        .expect("the turn was lost");
        // And when the abandoned waiter was the one handed the turn.
        let gate2 = Arc::new(WriteGate::default());
        let held = gate2.turn(Lane::Ack, Location::caller()).await;
        let mut wait = Box::pin(gate2.turn(Lane::Background, Location::caller()));
        assert!(futures_poll_once(&mut wait).await.is_none());
        drop(held); // hands the turn to `wait`
        drop(wait); // which never takes it
        tokio::time::timeout(
            Duration::from_secs(1),
            gate2.turn(Lane::Ack, Location::caller()),
        )
        .await
        .expect("a handed-over turn was lost with its waiter");
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Option<F::Output> {
        use std::task::Poll;
        std::future::poll_fn(|cx| match std::pin::Pin::new(&mut *f).poll(cx) {
            Poll::Ready(v) => Poll::Ready(Some(v)),
            Poll::Pending => Poll::Ready(None),
        })
        .await
    }
}
