//! `paygate serve` (everything in one process) and `paygate sandbox`.

use crate::{secret, shutdown, wiring};
use anyhow::Context;
use paygate_common::config::Config;
use paygate_common::queue::embedded::EmbeddedQueue;
use paygate_common::queue::JobQueue;
use paygate_common::telemetry;
use paygate_sandbox::{Sandbox, SandboxConfig};
use std::sync::Arc;
use tokio::sync::watch;

fn sandbox(cfg: &Config) -> anyhow::Result<Sandbox> {
    let mut sc = SandboxConfig::from_env().map_err(|e| anyhow::anyhow!(e))?;
    // The built-in simulator must accept the key paygate sends it.
    if std::env::var("PAYGATE_SANDBOX_MEDOGRAM_API_KEY").is_err() {
        sc.medogram.api_key = cfg.medogram.api_key.clone();
    }
    // ...and call this paygate's Atmos webhook with the key it checks.
    if let Some(a) = &cfg.atmos {
        if sc.atmos.callback_url.is_none() {
            sc.atmos.callback_url = Some(format!("{}/atmos/webhook/", cfg.public_url));
        }
        if std::env::var("PAYGATE_SANDBOX_ATMOS_API_KEY").is_err() {
            sc.atmos.api_key = a.api_key.clone();
        }
    }
    Ok(Sandbox::new(sc))
}

pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    telemetry::init_logging(cfg.log_format);
    let metrics = telemetry::metrics();
    let _ = metrics;
    let secret = secret::resolve(cfg.secret_key.clone(), &cfg.database_url)?;
    let store = wiring::connect_store(&cfg).await?;
    store.migrate().await.context("applying migrations")?;

    let (queue, storage) = EmbeddedQueue::new();
    let queue: Arc<dyn JobQueue> = Arc::new(queue);
    let engine = Arc::new(wiring::engine(&cfg, store.clone(), queue.clone(), &secret)?);
    let state = wiring::api_state(&cfg, store.clone(), queue.clone());
    let extra = if cfg.sandbox {
        Some(sandbox(&cfg)?.router())
    } else {
        None
    };
    let app = paygate_api::router(state, extra);

    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding PAYGATE_LISTEN={}", cfg.listen))?;
    let local = listener.local_addr()?;
    wiring::first_start_admin_key(&store).await?;
    println!("paygate serve listening on http://{local}");
    println!("database: {}", cfg.database_url);
    if cfg.sandbox {
        println!("gateway simulators: http://{local}/sandbox/medogram (medogram), http://{local}/sandbox/atmos (Atmos)");
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let worker = tokio::spawn(paygate_worker::pool::run_embedded(
        engine.clone(),
        storage,
        cfg.worker_concurrency,
        stop_rx.clone(),
    ));
    let sweeper = tokio::spawn(paygate_worker::sweeper::run(
        engine.clone(),
        cfg.sweep_interval,
        cfg.redispatch_after,
        stop_rx.clone(),
    ));
    let sampler = tokio::spawn(paygate_worker::sampler::run(
        engine.clone(),
        cfg.sample_interval,
        cfg.redispatch_after,
        None,
        stop_rx.clone(),
    ));
    let reconciler = cfg.atmos.as_ref().map(|a| {
        tokio::spawn(paygate_worker::reconciler::run(
            engine.clone(),
            (a.reconcile_after / 4).clamp(
                std::time::Duration::from_millis(200),
                std::time::Duration::from_secs(60),
            ),
            a.reconcile_after,
            stop_rx.clone(),
        ))
    });

    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown::signal())
        .await
        .context("HTTP server")?;
    // HTTP has drained; now let in-flight jobs finish within the grace period.
    let _ = stop_tx.send(true);
    let grace = cfg.shutdown_grace;
    if tokio::time::timeout(grace, async {
        let _ = worker.await;
        let _ = sweeper.await;
        let _ = sampler.await;
        if let Some(r) = reconciler {
            let _ = r.await;
        }
    })
    .await
    .is_err()
    {
        tracing::warn!(grace_ms = grace.as_millis() as u64,
            "jobs still running after the grace period; their leases will expire and another run will finish them");
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

pub async fn sandbox_only(cfg: Config) -> anyhow::Result<()> {
    telemetry::init_logging(cfg.log_format);
    let app = sandbox(&cfg)?.router();
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding PAYGATE_LISTEN={}", cfg.listen))?;
    println!(
        "paygate sandbox listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown::signal())
        .await
        .context("HTTP server")?;
    Ok(())
}
