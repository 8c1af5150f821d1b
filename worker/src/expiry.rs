//! The expiry sweep: payments still waiting for their payer after their
//! gateway's time to live (`PAYGATE_PAYMENT_TTL`, `PAYGATE_PAYMENT_TTL_<GATEWAY>`)
//! get one `expire_payment` job each, which verifies once where it can and
//! cancels them as `expired`. Every worker process runs this loop, but only
//! the holder of the `payment-expiry` lease queries, so the database sees one
//! sweep per interval however many pods there are; the job's once-per-payment
//! key makes a sweep that overlaps a lease hand-over harmless.

use crate::Engine;
use paygate_common::domain::{JobPayload, NewJob, Provider};
use paygate_common::payment_ttl::PaymentTtl;
use paygate_common::queue::dispatch_all;
use paygate_common::store::StoreError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const LEASE: &str = "payment-expiry";

/// How often to sweep: a quarter of the shortest time to live, between
/// 200 ms (tests use tiny TTLs) and a minute.
pub fn interval(ttl: &PaymentTtl) -> Duration {
    (ttl.shortest() / 4).clamp(Duration::from_millis(200), Duration::from_secs(60))
}

pub async fn run(
    engine: Arc<Engine>,
    ttl: PaymentTtl,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let lease_ms = (interval * 3).as_millis() as i64;
    loop {
        match engine
            .store
            .try_lease(LEASE, &engine.worker_id, lease_ms)
            .await
        {
            Ok(true) => {
                if let Err(e) = expire_once(&engine, &ttl).await {
                    tracing::warn!(error = %e, "expiry sweep could not read the ledger");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::debug!(error = %e, "expiry sweep could not take its lease"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// One pass over every gateway; returns how many expiry jobs were queued.
pub async fn expire_once(engine: &Engine, ttl: &PaymentTtl) -> Result<usize, StoreError> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut queued = 0;
    // Every provider, configured or not: a payment of a gateway that was
    // since removed from the configuration must not hang either.
    for provider in Provider::all() {
        let cutoff = now - ttl.for_provider(provider).as_millis() as i64;
        let ids = engine
            .store
            .expiry_candidates(provider, cutoff, 500)
            .await?;
        if ids.is_empty() {
            continue;
        }
        let jobs: Vec<NewJob> = ids
            .iter()
            .map(|id| NewJob::once_per_payment(JobPayload::ExpirePayment, *id, &engine.retry))
            .collect();
        let messages = engine.store.enqueue_jobs(&jobs).await?;
        if !messages.is_empty() {
            tracing::info!(
                provider = provider.as_str(),
                count = messages.len(),
                "payments past their time to live queued for expiry"
            );
            metrics::counter!("paygate_expiry_checks_total", "provider" => provider.as_str())
                .increment(messages.len() as u64);
            dispatch_all(engine.queue.as_ref(), &messages).await;
        }
        queued += messages.len();
    }
    Ok(queued)
}
