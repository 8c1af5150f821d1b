//! Waking requests that wait for a payment to change (issue 16).
//!
//! A request that waits (a seed route's bounded wait for the payment URL,
//! `Prefer: wait` on `/v1`) registers with the process's [`PaymentWatch`] for
//! its payment id *before* it re-reads the payment, then sleeps until
//! [`PaymentWatch::wake`] is called for that id (or its safety re-read is
//! due). Registering first means a change committed between the read and the
//! sleep is not missed: the wake-up is remembered by the registration.
//!
//! Who wakes: whoever commits a payment change announces it through a
//! [`PaymentAnnouncer`] — in `paygate serve` straight to this hub; in scaled
//! mode also over Redis pub/sub ([`redis`]), where each API process keeps one
//! subscriber that fans out to its hub. Any payment change is announced: the
//! waiter re-reads and decides whether it is what it waits for (a URL, a
//! terminal status), so the announcers need not know what anyone waits for.
//!
//! The hub knows nothing of HTTP, SQL or Redis.

mod announce;
pub mod redis;

pub use announce::PaymentAnnouncer;

use crate::domain::PaymentId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Where waiters register and announcers wake them; cheap to clone (one hub
/// per process).
#[derive(Clone, Default)]
pub struct PaymentWatch {
    slots: Arc<Mutex<HashMap<PaymentId, Slot>>>,
}

/// The waiters of one payment share a generation counter: a wake bumps it,
/// and each waiter's receiver remembers the last generation it saw.
struct Slot {
    generation: watch::Sender<u64>,
    waiters: usize,
}

impl std::fmt::Debug for PaymentWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentWatch")
            .field("watched", &self.watched())
            .finish()
    }
}

impl PaymentWatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a waiter for `id`. Wake-ups from now on are kept until the
    /// waiter takes them with [`Waiter::changed`]; dropping it unregisters.
    pub fn watch(&self, id: PaymentId) -> Waiter {
        let mut slots = self.lock();
        let slot = slots.entry(id).or_insert_with(|| Slot {
            generation: watch::Sender::new(0),
            waiters: 0,
        });
        slot.waiters += 1;
        // `subscribe` marks the current generation as seen: only later wakes count.
        let seen = slot.generation.subscribe();
        drop(slots);
        metrics::gauge!("paygate_waiters").increment(1.0);
        Waiter {
            hub: self.clone(),
            id,
            seen,
        }
    }

    /// Wakes every waiter of `id`; returns how many there were (none is
    /// normal: most changes have no one waiting, or the waiter is elsewhere).
    pub fn wake(&self, id: PaymentId) -> usize {
        let slots = self.lock();
        let Some(slot) = slots.get(&id) else {
            return 0;
        };
        slot.generation.send_modify(|g| *g = g.wrapping_add(1));
        let woken = slot.waiters;
        drop(slots);
        metrics::counter!("paygate_waiter_wakeups_total").increment(woken as u64);
        woken
    }

    /// Wakes every waiter of every payment: after a gap in the announcements
    /// (a Redis subscription re-established) each re-reads at once instead of
    /// at its next safety re-read.
    pub fn wake_all(&self) -> usize {
        let slots = self.lock();
        let mut woken = 0;
        for slot in slots.values() {
            slot.generation.send_modify(|g| *g = g.wrapping_add(1));
            woken += slot.waiters;
        }
        drop(slots);
        metrics::counter!("paygate_waiter_wakeups_total").increment(woken as u64);
        woken
    }

    /// How many payments have at least one waiter.
    pub fn watched(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PaymentId, Slot>> {
        // The map is left consistent by every critical section (none can
        // panic half-way), so a poisoned lock is still safe to use.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn unregister(&self, id: PaymentId) {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(&id) {
            slot.waiters -= 1;
            if slot.waiters == 0 {
                slots.remove(&id);
            }
        }
        drop(slots);
        metrics::gauge!("paygate_waiters").decrement(1.0);
    }
}

/// One registration for one payment; unregisters when dropped.
pub struct Waiter {
    hub: PaymentWatch,
    id: PaymentId,
    seen: watch::Receiver<u64>,
}

impl Waiter {
    pub fn id(&self) -> PaymentId {
        self.id
    }

    /// Returns once the payment was announced changed since registration or
    /// since the last call (at once if that already happened).
    pub async fn changed(&mut self) {
        // The sender lives in the hub while this waiter is registered, so
        // this cannot fail; if it ever did, returning makes the caller
        // re-read, which is always safe.
        let _ = self.seen.changed().await;
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn woken_within(w: &mut Waiter, ms: u64) -> bool {
        tokio::time::timeout(Duration::from_millis(ms), w.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn a_wake_between_registration_and_wait_is_not_lost() {
        let hub = PaymentWatch::new();
        let id = PaymentId::new();
        let mut w = hub.watch(id);
        // The change lands before the waiter sleeps (say, while it re-reads).
        assert_eq!(hub.wake(id), 1);
        assert!(woken_within(&mut w, 1000).await);
        // Taken: the next wait sleeps until the next wake.
        assert!(!woken_within(&mut w, 50).await);
    }

    #[tokio::test]
    async fn a_wake_before_registration_does_not_count() {
        let hub = PaymentWatch::new();
        let id = PaymentId::new();
        assert_eq!(hub.wake(id), 0);
        let mut w = hub.watch(id);
        assert!(!woken_within(&mut w, 50).await);
    }

    #[tokio::test]
    async fn only_the_payment_announced_is_woken() {
        let hub = PaymentWatch::new();
        let (a, b) = (PaymentId::new(), PaymentId::new());
        let mut wa = hub.watch(a);
        let mut wb = hub.watch(b);
        hub.wake(a);
        assert!(woken_within(&mut wa, 1000).await);
        assert!(!woken_within(&mut wb, 50).await);
    }

    #[tokio::test]
    async fn many_waiters_of_one_payment_all_wake() {
        let hub = PaymentWatch::new();
        let id = PaymentId::new();
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let mut w = hub.watch(id);
                tokio::spawn(async move {
                    tokio::time::timeout(Duration::from_secs(5), w.changed())
                        .await
                        .is_ok()
                })
            })
            .collect();
        assert_eq!(hub.watched(), 1);
        assert_eq!(hub.wake(id), 200);
        for t in tasks {
            assert!(t.await.unwrap());
        }
        // Every waiter has been dropped by its task.
        assert_eq!(hub.watched(), 0);
    }

    #[tokio::test]
    async fn dropped_waiters_leave_nothing_behind() {
        let hub = PaymentWatch::new();
        let waiters: Vec<_> = (0..5000)
            .map(|i| {
                // Some payments with two waiters: the slot stays until both go.
                let id = PaymentId::new();
                if i % 2 == 0 {
                    vec![hub.watch(id), hub.watch(id)]
                } else {
                    vec![hub.watch(id)]
                }
            })
            .collect();
        assert_eq!(hub.watched(), 5000);
        let mut waiters = waiters;
        let first = waiters[0].pop().unwrap();
        drop(first);
        assert_eq!(hub.watched(), 5000, "one waiter of the payment remains");
        drop(waiters);
        assert_eq!(hub.watched(), 0);
    }

    #[tokio::test]
    async fn a_waiter_dropped_while_waiting_unregisters() {
        let hub = PaymentWatch::new();
        let id = PaymentId::new();
        let mut w = hub.watch(id);
        // A client gone mid-wait: the request future (and its waiter) is dropped.
        assert!(!woken_within(&mut w, 20).await);
        drop(w);
        assert_eq!(hub.watched(), 0);
        assert_eq!(hub.wake(id), 0);
    }

    #[tokio::test]
    async fn wake_all_wakes_every_payment() {
        let hub = PaymentWatch::new();
        let mut a = hub.watch(PaymentId::new());
        let mut b = hub.watch(PaymentId::new());
        assert_eq!(hub.wake_all(), 2);
        assert!(woken_within(&mut a, 1000).await);
        assert!(woken_within(&mut b, 1000).await);
    }
}
