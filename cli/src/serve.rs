//! `paygate serve` (everything in one process) and `paygate sandbox`.

use crate::{background, secret, shutdown, wiring};
use anyhow::Context;
use paygate_common::config::Config;
use paygate_common::payment_watch::{PaymentAnnouncer, PaymentWatch};
use paygate_common::queue::embedded::EmbeddedQueue;
use paygate_common::queue::JobQueue;
use paygate_common::store::Store;
use paygate_common::telemetry;
use paygate_sandbox::{ControlCheck, ReturnLinks, Sandbox, SandboxConfig};
use std::sync::Arc;

/// `same_site`: the simulators share paygate's address (`serve`), so payers
/// may only be sent back to `PAYGATE_PUBLIC_URL` unless the operator allows
/// any link. The standalone sandbox serves other deployments: any http(s) link.
fn sandbox(cfg: &Config, same_site: bool) -> anyhow::Result<Sandbox> {
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
    // Payers are only sent back to this paygate, unless the operator allows more.
    let links = if !same_site || cfg.security.sandbox_any_return_link {
        ReturnLinks::AnyHttp
    } else {
        ReturnLinks::only(&cfg.public_url)
    };
    Ok(Sandbox::with_return_links(sc, links))
}

/// Why the simulators must not be mounted, if they must not: they accept
/// any card and would let anyone "pay" on a real deployment.
fn sandbox_refusal(cfg: &Config) -> Option<&'static str> {
    // A gateway URL that is not some paygate's /sandbox/… is a real gateway.
    let real = |base: &str| url::Url::parse(base).is_ok_and(|u| !u.path().starts_with("/sandbox/"));
    if cfg.production {
        return Some("PAYGATE_ENV=production");
    }
    if cfg.atmos.as_ref().is_some_and(|a| real(&a.api_base)) {
        return Some("the real Atmos gateway is configured (ATMOS_API_BASE)");
    }
    if real(&cfg.medogram.gateway_url) {
        return Some("the real medogram gateway is configured (PAYMENT_GATEWAY_URL)");
    }
    if cfg.payme.as_ref().is_some_and(|p| real(&p.checkout_url)) {
        return Some("the real Payme checkout is configured (PAYME_TEST_MODE, PAYME_CHECKOUT_URL)");
    }
    if cfg.click.as_ref().is_some_and(|c| real(&c.checkout_url)) {
        return Some("the real Click checkout is configured (CLICK_CHECKOUT_URL)");
    }
    None
}

/// `_config` and friends: the sandbox admin key, or (in `serve`) any admin API key.
fn control_check(cfg: &Config, store: Option<Store>) -> ControlCheck {
    let open = cfg.security.sandbox_open_control;
    let key = cfg.security.sandbox_admin_key.clone();
    Arc::new(move |given: Option<String>| {
        let key = key.clone();
        let store = store.clone();
        Box::pin(async move {
            if open {
                return true;
            }
            let Some(given) = given.filter(|g| !g.is_empty() && g.len() <= 200) else {
                return false;
            };
            if let Some(key) = key {
                if bool::from(subtle::ConstantTimeEq::ct_eq(
                    given.as_bytes(),
                    key.as_bytes(),
                )) {
                    return true;
                }
            }
            match store {
                Some(store) => {
                    matches!(store.verify_api_key(&given).await, Ok(Some(k)) if k.is_admin)
                }
                None => false,
            }
        })
    })
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
    store
        .sync_config_webhook_endpoint(cfg.webhooks.config_endpoint.as_ref())
        .await
        .context("recording PAYGATE_WEBHOOK_URL")?;

    let (queue, storage) = EmbeddedQueue::new();
    let queue: Arc<dyn JobQueue> = Arc::new(queue);
    // API and worker share one process: the worker's commits wake the API's
    // waiting requests directly.
    let watch = PaymentWatch::new();
    let announcer = PaymentAnnouncer::local(watch.clone());
    let engine = Arc::new(wiring::engine(
        &cfg,
        store.clone(),
        queue.clone(),
        &secret,
        announcer.clone(),
    )?);
    let waited_jobs = wiring::waited_jobs(&cfg, engine.clone());
    let state = wiring::api_state(
        &cfg,
        store.clone(),
        queue.clone(),
        watch,
        announcer,
        waited_jobs.clone(),
    )?;
    let mount = match (cfg.sandbox, sandbox_refusal(&cfg)) {
        (true, Some(why)) => {
            tracing::warn!(reason = why, "the gateway simulators are not mounted");
            false
        }
        (mounted, _) => mounted,
    };
    let extra = if mount {
        Some(sandbox(&cfg, true)?.guarded_router(control_check(&cfg, Some(store.clone()))))
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
    if mount {
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

    paygate_api::server::serve(listener, app, cfg.security.http.clone(), shutdown::signal())
        .await
        .context("HTTP server")?;
    // HTTP has drained; now let in-flight jobs finish within the grace period.
    if let Some(jobs) = &waited_jobs {
        jobs.drain(cfg.shutdown_grace).await;
    }
    background.stop(cfg.shutdown_grace).await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

pub async fn sandbox_only(cfg: Config) -> anyhow::Result<()> {
    telemetry::init_logging(cfg.log_format);
    if let Some(why) = sandbox_refusal(&cfg) {
        anyhow::bail!("refusing to run the gateway simulators: {why}");
    }
    let app = sandbox(&cfg, false)?
        .guarded_router(control_check(&cfg, None))
        .layer(axum::middleware::from_fn(
            paygate_api::browser::protect_pages,
        ));
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding PAYGATE_LISTEN={}", cfg.listen))?;
    println!(
        "paygate sandbox listening on http://{}",
        listener.local_addr()?
    );
    paygate_api::server::serve(listener, app, cfg.security.http.clone(), shutdown::signal())
        .await
        .context("HTTP server")?;
    Ok(())
}
