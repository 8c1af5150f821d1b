//! Telling waiters that a payment changed, wherever they are.

use super::redis::RedisPublisher;
use super::PaymentWatch;
use crate::domain::PaymentId;

/// What a committer calls after a write that changed a payment. Never blocks
/// and never fails: an announcement lost (Redis down, a crash right after the
/// commit) only delays a waiter until its safety re-read.
#[derive(Clone, Debug, Default)]
pub struct PaymentAnnouncer {
    /// This process's waiters (`paygate serve`, `paygate api`).
    local: Option<PaymentWatch>,
    /// Other processes' waiters (scaled mode).
    remote: Option<RedisPublisher>,
}

impl PaymentAnnouncer {
    /// Announces to no one (processes and tests without waiters).
    pub fn none() -> Self {
        Self::default()
    }

    /// Announces to this process's hub (`paygate serve`: API and worker share it).
    pub fn local(hub: PaymentWatch) -> Self {
        PaymentAnnouncer {
            local: Some(hub),
            remote: None,
        }
    }

    /// Announces over Redis (a worker process: its waiters are in the API
    /// processes).
    pub fn remote(publisher: RedisPublisher) -> Self {
        PaymentAnnouncer {
            local: None,
            remote: Some(publisher),
        }
    }

    /// Both: an API process wakes its own waiters at once and tells the others.
    pub fn local_and_remote(hub: PaymentWatch, publisher: RedisPublisher) -> Self {
        PaymentAnnouncer {
            local: Some(hub),
            remote: Some(publisher),
        }
    }

    pub fn changed(&self, id: PaymentId) {
        if let Some(hub) = &self.local {
            hub.wake(id);
        }
        if let Some(publisher) = &self.remote {
            publisher.publish(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_local_announcement_wakes_the_hub() {
        let hub = PaymentWatch::new();
        let id = PaymentId::new();
        let mut w = hub.watch(id);
        PaymentAnnouncer::local(hub.clone()).changed(id);
        assert!(tokio::time::timeout(Duration::from_secs(1), w.changed())
            .await
            .is_ok());
        // Announcing to no one is allowed and does nothing.
        PaymentAnnouncer::none().changed(id);
    }
}
