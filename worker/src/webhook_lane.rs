//! The delivery lane: merchant endpoints get their own bounded concurrency so
//! a slow or dead endpoint never holds the worker slots payments need.
//!
//! Deliveries run as jobs in the same worker pool, but each one first takes a
//! permit here (at most `PAYGATE_WEBHOOK_CONCURRENCY` per process, fewer than
//! the pool's slots). A delivery that cannot get one within `PERMIT_WAIT`
//! gives its slot back at once and is put back in the ledger for a moment
//! later (see `deliver_webhook.rs`), so at most that many slots ever wait on
//! merchants, each for at most `PAYGATE_WEBHOOK_TIMEOUT`.

use paygate_common::webhooks::WebhookSettings;
use std::time::Duration;
use tokio::sync::{Semaphore, SemaphorePermit};

/// How long a delivery waits for a permit before yielding its worker slot.
const PERMIT_WAIT: Duration = Duration::from_millis(500);

pub struct WebhookLane {
    pub settings: WebhookSettings,
    pub client: reqwest::Client,
    permits: Semaphore,
}

impl WebhookLane {
    pub fn new(settings: WebhookSettings) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            // A merchant answers, it does not send us elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("paygate-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(WebhookLane {
            permits: Semaphore::new(settings.concurrency),
            settings,
            client,
        })
    }

    /// A delivery's turn, or `None` when the lane stayed full.
    pub async fn permit(&self) -> Option<SemaphorePermit<'_>> {
        tokio::time::timeout(PERMIT_WAIT, self.permits.acquire())
            .await
            .ok()?
            .ok()
    }
}
