//! Scaled mode: `paygate api` and `paygate worker`, any number of each, sharing
//! PostgreSQL and Redis. Each starts in any order and waits for what it needs
//! (with a log line, not a crash loop).

use crate::{background, secret, shutdown, wiring};
use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use paygate_common::config::Config;
use paygate_common::payment_watch::redis::RedisPublisher;
use paygate_common::payment_watch::{self, PaymentAnnouncer, PaymentWatch};
use paygate_common::queue::redis::{RedisQueue, RedisQueueConfig};
use paygate_common::queue::JobQueue;
use paygate_common::store::Store;
use paygate_common::telemetry;
use paygate_worker::sampler::DepthProbe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Connects to the database, waiting (and saying so) until it answers and its
/// schema is migrated.
async fn wait_for_store(cfg: &Config) -> anyhow::Result<Store> {
    let started = Instant::now();
    let mut last_log = Instant::now() - Duration::from_secs(60);
    let mut pause = Duration::from_millis(200);
    loop {
        let problem = match wiring::connect_store(cfg).await {
            Ok(store) => match store.schema_ready().await {
                Ok(true) => return Ok(store),
                Ok(false) => "the schema is not migrated yet (run `paygate migrate`)".to_string(),
                Err(e) => e.to_string(),
            },
            Err(e) => format!("{e:#}"),
        };
        if last_log.elapsed() >= Duration::from_secs(5) {
            tracing::warn!(waited_s = started.elapsed().as_secs(), problem = %problem, "waiting for the database (DATABASE_URL)");
            last_log = Instant::now();
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown::signal() => anyhow::bail!("stopped while waiting for the database"),
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

fn redis_config(cfg: &Config) -> anyhow::Result<RedisQueueConfig> {
    let url = cfg
        .redis_url
        .clone()
        .context("REDIS_URL is required for `paygate api` and `paygate worker`")?;
    let mut rc = RedisQueueConfig::new(url);
    rc.queue = cfg.redis_queue.clone();
    Ok(rc)
}

/// Connects to Redis, waiting (and saying so) until it answers.
async fn wait_for_redis(cfg: &Config) -> anyhow::Result<RedisQueue> {
    let rc = redis_config(cfg)?;
    let started = Instant::now();
    let mut last_log = Instant::now() - Duration::from_secs(60);
    loop {
        match RedisQueue::connect(rc.clone()).await {
            Ok(q) => return Ok(q),
            Err(e) => {
                if last_log.elapsed() >= Duration::from_secs(5) {
                    tracing::warn!(waited_s = started.elapsed().as_secs(), problem = %e, "waiting for Redis (REDIS_URL)");
                    last_log = Instant::now();
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown::signal() => anyhow::bail!("stopped while waiting for Redis"),
        }
    }
}

pub async fn api(cfg: Config) -> anyhow::Result<()> {
    telemetry::init_logging(cfg.log_format);
    let store = wait_for_store(&cfg).await?;
    // The API starts even while Redis is down: requests are still made durable
    // in the database, /readyz says the queue is unavailable, and the workers'
    // sweepers dispatch the jobs once Redis is back.
    let redis =
        RedisQueue::connect_lazy(redis_config(&cfg)?).map_err(|e| anyhow::anyhow!("{e}"))?;
    // One subscriber per process wakes this process's waiting requests when a
    // worker announces a payment change; it reconnects on its own.
    let watch = PaymentWatch::new();
    let subscriber = payment_watch::redis::subscribe(redis.clone(), watch.clone());
    let announcer =
        PaymentAnnouncer::local_and_remote(watch.clone(), RedisPublisher::start(redis.clone()));
    let queue: Arc<dyn JobQueue> = Arc::new(redis);
    // With SECRET_KEY and the gateway's address, this process runs a waited
    // payment's first jobs itself (docs/priority.md).
    let waited_jobs = match (&cfg.secret_key, cfg.api_runs_waited_jobs) {
        (Some(secret), true) => {
            let engine = wiring::engine(
                &cfg,
                store.clone(),
                queue.clone(),
                secret,
                announcer.clone(),
            )?;
            wiring::waited_jobs(&cfg, Arc::new(engine))
        }
        _ => None,
    };
    match &waited_jobs {
        Some(_) => tracing::info!(slots = cfg.worker_concurrency,
            "waited payments' first jobs run in this process (PAYGATE_API_RUNS_WAITED_JOBS)"),
        None => tracing::info!(
            "waited payments' first jobs go to the workers (PAYGATE_API_RUNS_WAITED_JOBS is off: set false, or SECRET_KEY or PAYMENT_GATEWAY_URL missing)"),
    }
    let state = wiring::api_state(
        &cfg,
        store.clone(),
        queue,
        watch,
        announcer,
        waited_jobs.clone(),
    )?;
    let app = paygate_api::router(state, None);
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding PAYGATE_LISTEN={}", cfg.listen))?;
    println!("paygate api listening on http://{}", listener.local_addr()?);
    paygate_api::server::serve(listener, app, cfg.security.http.clone(), shutdown::signal())
        .await
        .context("HTTP server")?;
    if let Some(jobs) = &waited_jobs {
        jobs.drain(cfg.shutdown_grace).await;
    }
    subscriber.abort();
    store.close().await;
    tracing::info!("api stopped");
    Ok(())
}

#[derive(Clone)]
struct WorkerProbe {
    store: Store,
    queue: RedisQueue,
}

/// `/healthz`, `/readyz` and `/metrics` of a worker process.
fn probe_router(probe: WorkerProbe) -> Router {
    async fn healthz() -> Json<serde_json::Value> {
        Json(serde_json::json!({ "status": "ok" }))
    }
    async fn readyz(State(p): State<WorkerProbe>) -> impl IntoResponse {
        let database = p.store.ping().await.is_ok();
        let queue = p.queue.ping().await.is_ok();
        let word = |ok: bool| if ok { "ok" } else { "unavailable" };
        let code = if database && queue {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (
            code,
            Json(serde_json::json!({
                "status": word(database && queue),
                "checks": { "database": word(database), "queue": word(queue) },
            })),
        )
    }
    async fn metrics() -> impl IntoResponse {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            telemetry::metrics().render(),
        )
    }
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(probe)
}

pub async fn worker(cfg: Config) -> anyhow::Result<()> {
    telemetry::init_logging(cfg.log_format);
    let _ = telemetry::metrics();
    let secret = secret::resolve(cfg.secret_key.clone(), &cfg.database_url)?;
    let store = wait_for_store(&cfg).await?;
    store
        .sync_config_webhook_endpoint(cfg.webhooks.config_endpoint.as_ref())
        .await
        .context("recording PAYGATE_WEBHOOK_URL")?;
    let queue = wait_for_redis(&cfg).await?;
    let engine = Arc::new(wiring::engine(
        &cfg,
        store.clone(),
        Arc::new(queue.clone()),
        &secret,
        // The waiting requests are in the API processes.
        PaymentAnnouncer::remote(RedisPublisher::start(queue.clone())),
    )?);
    let (probe_stop_tx, probe_stop) = watch::channel(false);

    if let Some(addr) = cfg.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding PAYGATE_METRICS_LISTEN={addr}"))?;
        println!(
            "paygate worker {} metrics on http://{}",
            cfg.worker_id,
            listener.local_addr()?
        );
        let app = probe_router(WorkerProbe {
            store: store.clone(),
            queue: queue.clone(),
        });
        let mut stop = probe_stop.clone();
        let limits = cfg.security.http.clone();
        tokio::spawn(async move {
            let _ = paygate_api::server::serve(listener, app, limits, async move {
                let _ = stop.changed().await;
            })
            .await;
        });
    }
    println!(
        "paygate worker {} started (concurrency {})",
        cfg.worker_id, cfg.worker_concurrency
    );

    let depth_queue = queue.clone();
    let redis_depth: DepthProbe = Arc::new(move || {
        let q = depth_queue.clone();
        Box::pin(async move { q.depth().await.ok() })
    });
    let background = background::start(engine.clone(), &cfg, Some(redis_depth), {
        let concurrency = cfg.worker_concurrency;
        move |stop| async move {
            if let Err(e) = paygate_worker::pool::run_redis(engine, &queue, concurrency, stop).await
            {
                tracing::error!(error = %e, "the worker pool stopped");
            }
        }
    });

    shutdown::signal().await;
    background.stop(cfg.shutdown_grace).await;
    let _ = probe_stop_tx.send(true);
    store.close().await;
    tracing::info!("worker stopped");
    Ok(())
}
