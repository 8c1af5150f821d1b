//! The worker side of a process: the job pool, the sweeper, the queue-gauge
//! sampler, the Atmos reconciler and the expiry sweep, started together and stopped together
//! (stop taking work, then let in-flight jobs finish within the grace period).

use paygate_common::config::Config;
use paygate_worker::sampler::DepthProbe;
use paygate_worker::Engine;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Background {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts everything; `pool` runs the job consumer until its stop flag turns true.
pub fn start<F, Fut>(
    engine: Arc<Engine>,
    cfg: &Config,
    redis_depth: Option<DepthProbe>,
    pool: F,
) -> Background
where
    F: FnOnce(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (stop, stop_rx) = watch::channel(false);
    let mut tasks = vec![
        tokio::spawn(pool(stop_rx.clone())),
        tokio::spawn(paygate_worker::sweeper::run(
            engine.clone(),
            cfg.sweep_interval,
            cfg.redispatch_after,
            stop_rx.clone(),
        )),
        tokio::spawn(paygate_worker::sampler::run(
            engine.clone(),
            cfg.sample_interval,
            cfg.redispatch_after,
            redis_depth,
            stop_rx.clone(),
        )),
    ];
    // Payments that waited for their payer too long expire (one sweeper at a time).
    tasks.push(tokio::spawn(paygate_worker::expiry::run(
        engine.clone(),
        cfg.payment_ttl.clone(),
        paygate_worker::expiry::interval(&cfg.payment_ttl),
        stop_rx.clone(),
    )));
    // One reconciler per configured gateway that can be asked about a payment.
    for provider in paygate_common::domain::Provider::all() {
        let Some(stale_after) = cfg.reconcile_after(provider) else {
            continue;
        };
        if !provider.descriptor().capabilities.reconcile || engine.gateways.get(provider).is_none()
        {
            continue;
        }
        tasks.push(tokio::spawn(paygate_worker::reconciler::run(
            engine.clone(),
            provider,
            (stale_after / 4).clamp(Duration::from_millis(200), Duration::from_secs(60)),
            stale_after,
            stop_rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(purge_idempotency_keys(
        engine.store.clone(),
        stop_rx.clone(),
    )));
    Background { stop, tasks }
}

/// Deletes `Idempotency-Key` records past their 24 hours, hourly (a key in
/// use again is restarted in place anyway; this keeps the table small).
async fn purge_idempotency_keys(
    store: paygate_common::store::Store,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        match store.purge_expired_idempotency_keys().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired idempotency keys purged"),
            Err(e) => tracing::warn!(error = %e, "purging expired idempotency keys failed"),
        }
    }
}

impl Background {
    /// Stops taking work and waits up to `grace` for in-flight jobs. Whatever
    /// is still running then is taken over by another worker when its lease expires.
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = futures::future::join_all(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "jobs still running after the grace period; their leases will expire and another worker will finish them"
            );
        }
    }
}
