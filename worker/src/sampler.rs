//! Samples the queue gauges from the ledger. Every worker process runs this
//! loop, but only the holder of the `queue-sampler` lease queries and sets the
//! gauges, so the database sees one sampling query per interval however many
//! pods there are. Dashboards take `max()` across processes.

use crate::Engine;
use paygate_common::domain::JobKind;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const LEASE: &str = "queue-sampler";

/// Reads the Redis queue's depth (scaled mode), for the `paygate_redis_queue_depth` gauge.
pub type DepthProbe =
    Arc<dyn Fn() -> futures::future::BoxFuture<'static, Option<u64>> + Send + Sync>;

pub async fn run(
    engine: Arc<Engine>,
    interval: Duration,
    redispatch_after: Duration,
    redis_depth: Option<
        Arc<dyn Fn() -> futures::future::BoxFuture<'static, Option<u64>> + Send + Sync>,
    >,
    mut stop: watch::Receiver<bool>,
) {
    let ttl = (interval * 3).as_millis() as i64;
    loop {
        match engine.store.try_lease(LEASE, &engine.worker_id, ttl).await {
            Ok(true) => {
                sample(&engine, redispatch_after).await;
                if let Some(depth) = &redis_depth {
                    if let Some(d) = depth().await {
                        metrics::gauge!("paygate_redis_queue_depth").set(d as f64);
                    }
                }
            }
            // Not the sampler: report zeros, so `max()` across processes is
            // the leader's figure and never a stale one left from an old lease.
            Ok(false) => clear(),
            Err(e) => tracing::debug!(error = %e, "queue sampler could not take its lease"),
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

fn clear() {
    for kind in JobKind::ALL {
        metrics::gauge!("paygate_queue_depth", "kind" => kind.as_str()).set(0.0);
    }
    metrics::gauge!("paygate_queue_oldest_ready_age_seconds").set(0.0);
    metrics::gauge!("paygate_dead_letters").set(0.0);
    metrics::gauge!("paygate_jobs_dispatch_overdue").set(0.0);
    metrics::gauge!("paygate_redis_queue_depth").set(0.0);
}

async fn sample(engine: &Engine, redispatch_after: Duration) {
    match engine
        .store
        .queue_stats(redispatch_after.as_millis() as i64)
        .await
    {
        Ok(stats) => {
            for kind in JobKind::ALL {
                let n = stats
                    .ready_by_kind
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .map(|(_, n)| *n)
                    .unwrap_or(0);
                metrics::gauge!("paygate_queue_depth", "kind" => kind.as_str()).set(n as f64);
            }
            metrics::gauge!("paygate_queue_oldest_ready_age_seconds")
                .set(stats.oldest_ready_age_seconds);
            metrics::gauge!("paygate_dead_letters").set(stats.dead as f64);
            metrics::gauge!("paygate_jobs_dispatch_overdue").set(stats.dispatch_overdue as f64);
        }
        Err(e) => tracing::debug!(error = %e, "queue sampler could not read the ledger"),
    }
}
