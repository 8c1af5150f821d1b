//! `paygate serve` (everything in one process) and `paygate sandbox`.

use crate::{background, secret, shutdown, wiring};
use anyhow::Context;
use paygate_common::config::Config;
use paygate_common::queue::embedded::EmbeddedQueue;
use paygate_common::queue::JobQueue;
use paygate_common::telemetry;
use paygate_sandbox::{Sandbox, SandboxConfig};
use std::sync::Arc;

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
    // ...and call this paygate's Payme endpoint as the configured cashbox.
    if let Some(p) = &cfg.payme {
        if sc.payme.merchant_url.is_none() {
            sc.payme.merchant_url = Some(format!("{}/payme/", cfg.public_url));
        }
        if std::env::var("PAYGATE_SANDBOX_PAYME_KEY").is_err() {
            sc.payme.key = p.key.clone();
        }
        if std::env::var("PAYGATE_SANDBOX_PAYME_MERCHANT_ID").is_err() {
            sc.payme.merchant_id = p.merchant_id.clone();
        }
    }
    // ...and send Click's Prepare and Complete to this paygate, signed with
    // the key it checks.
    if let Some(c) = &cfg.click {
        if sc.click.prepare_url.is_none() {
            sc.click.prepare_url = Some(click_url(cfg));
        }
        if std::env::var("PAYGATE_SANDBOX_CLICK_SECRET_KEY").is_err() {
            sc.click.secret_key = c.secret_key.clone();
        }
        if std::env::var("PAYGATE_SANDBOX_CLICK_SERVICE_ID").is_err() {
            sc.click.service_id = c.service_id.to_string();
        }
        if std::env::var("PAYGATE_SANDBOX_CLICK_MERCHANT_ID").is_err() {
            sc.click.merchant_id = c.merchant_id.clone();
        }
    }
    Ok(Sandbox::new(sc))
}

/// Where the built-in Click simulator sends Prepare and Complete.
fn sandbox_click_target(cfg: &Config) -> String {
    std::env::var("PAYGATE_SANDBOX_CLICK_PREPARE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| click_url(cfg))
}

/// The one Click URL that branches on `action`.
fn click_url(cfg: &Config) -> String {
    format!("{}/click/", cfg.public_url)
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
    let state = wiring::api_state(&cfg, store.clone(), queue.clone())?;
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
        let click = match &cfg.click {
            Some(_) => format!(
                ", http://{local}/sandbox/click (Click, calling {})",
                sandbox_click_target(&cfg)
            ),
            None => String::new(),
        };
        println!("gateway simulators: http://{local}/sandbox/medogram (medogram), http://{local}/sandbox/atmos (Atmos), http://{local}/sandbox/payme (Payme){click}");
    }

    let background = background::start(engine.clone(), &cfg, None, {
        let engine = engine.clone();
        let concurrency = cfg.worker_concurrency;
        move |stop| async move {
            if let Err(e) =
                paygate_worker::pool::run_embedded(engine, storage, concurrency, stop).await
            {
                tracing::error!(error = %e, "the worker pool stopped");
            }
        }
    });

    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown::signal())
        .await
        .context("HTTP server")?;
    // HTTP has drained; now let in-flight jobs finish within the grace period.
    background.stop(cfg.shutdown_grace).await;
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
