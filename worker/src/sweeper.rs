//! The sweeper makes the ledger the truth and the queue mere transport: it
//! re-dispatches jobs that are due but whose message was lost (a failed push,
//! Redis restarted empty, a retry whose back-off has passed) and jobs whose
//! worker died mid-run (an expired lease).

use crate::Engine;
use paygate_common::queue::dispatch_all;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Sweeps every `interval` until `stop` turns true.
pub async fn run(
    engine: Arc<Engine>,
    interval: Duration,
    redispatch_after: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let redispatch_ms = redispatch_after.as_millis() as i64;
    loop {
        let pause = match sweep_once(&engine, redispatch_ms).await {
            Ok(n) if n >= 500 => Duration::ZERO, // more is waiting
            Ok(_) => interval,
            Err(e) => {
                tracing::warn!(error = %e, "sweeper could not read the ledger");
                interval.max(crate::runner::DB_BACKOFF)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// One pass; returns how many messages were dispatched.
pub async fn sweep_once(
    engine: &Engine,
    redispatch_after_ms: i64,
) -> Result<usize, paygate_common::store::StoreError> {
    let due = engine
        .store
        .take_due_for_dispatch(redispatch_after_ms, 500)
        .await?;
    if !due.is_empty() {
        tracing::debug!(count = due.len(), "sweeper dispatching due jobs");
        metrics::counter!("paygate_sweeper_dispatched_total").increment(due.len() as u64);
        dispatch_all(engine.queue.as_ref(), &due).await;
    }
    Ok(due.len())
}
