//! The reconciler: a gateway's callback can be lost (network, a refused
//! delivery, our own outage). Payments of a gateway that can be asked about
//! a payment without a callback in hand (its descriptor's `reconcile`
//! capability: Atmos' `/merchant/pay/get`) that are still `processing` long
//! after their last change get a verification job, so they settle either
//! way. (medogram cannot be asked without the callback's `trans_id`.)

use crate::Engine;
use paygate_common::domain::{JobPayload, NewJob, Provider, VerifyArgs};
use paygate_common::queue::dispatch_all;
use paygate_common::store::StoreError;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub async fn run(
    engine: Arc<Engine>,
    provider: Provider,
    interval: Duration,
    stale_after: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = reconcile_once(&engine, provider, stale_after).await {
            tracing::warn!(error = %e, "reconciler could not read the ledger");
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

/// One pass; returns how many verifications were queued.
pub async fn reconcile_once(
    engine: &Engine,
    provider: Provider,
    stale_after: Duration,
) -> Result<usize, StoreError> {
    let stale_before = chrono::Utc::now().timestamp_millis() - stale_after.as_millis() as i64;
    let ids = engine
        .store
        .reconcile_candidates(provider, stale_before, 200)
        .await?;
    if ids.is_empty() {
        return Ok(0);
    }
    // One reconciliation per payment: its verification retries until the
    // payment settles or the confirmation deadline passes.
    let jobs: Vec<NewJob> = ids
        .iter()
        .map(|id| {
            NewJob::new(
                JobPayload::VerifyPayment(VerifyArgs::default()),
                Some(*id),
                &engine.retry,
            )
            .dedupe(format!("reconcile:{id}"))
        })
        .collect();
    let messages = engine.store.enqueue_jobs(&jobs).await?;
    if !messages.is_empty() {
        tracing::info!(
            count = messages.len(),
            "reconciler queued verification of stale payments"
        );
        metrics::counter!("paygate_reconciler_checks_total", "provider" => provider.as_str())
            .increment(messages.len() as u64);
        dispatch_all(engine.queue.as_ref(), &messages).await;
    }
    Ok(messages.len())
}
