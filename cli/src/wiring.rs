//! Builds the pieces (store, cipher, gateways, engine, API state) from config,
//! in one place, so every subcommand and every test assembles them the same way.

use anyhow::Context;
use paygate_api::waited_jobs::WaitedJobs;
use paygate_api::{ApiSettings, AppState};
use paygate_common::config::Config;
use paygate_common::crypto::Cipher;
use paygate_common::domain::Priority;
use paygate_common::gateways::registry;
use paygate_common::payment_watch::{PaymentAnnouncer, PaymentWatch};
use paygate_common::queue::JobQueue;
use paygate_common::store::{Store, StoreOptions};
use paygate_common::userdir::{UserDirectory, UserDirectoryConfig};
use paygate_worker::{Engine, ReturnUrls};
use std::sync::Arc;

pub async fn connect_store(cfg: &Config) -> anyhow::Result<Store> {
    let opts = StoreOptions {
        max_connections: cfg.db_max_connections,
        priority_connections: cfg.db_priority_connections,
        ..StoreOptions::default()
    };
    Store::connect(&cfg.database_url, &opts)
        .await
        .context("connecting to DATABASE_URL")
}

pub async fn migrate(cfg: &Config) -> anyhow::Result<()> {
    let store = connect_store(cfg).await?;
    store.migrate().await.context("applying migrations")?;
    println!("migrations applied");
    Ok(())
}

pub async fn create_api_key(cfg: &Config, name: &str, admin: bool) -> anyhow::Result<()> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        anyhow::bail!("--name must be 1 to 100 characters");
    }
    let store = connect_store(cfg).await?;
    store.migrate().await.context("applying migrations")?;
    let key = store.create_api_key(name, admin).await?;
    println!("{}", key.plaintext);
    eprintln!(
        "API key {:?} created ({}); it is shown only now.",
        name,
        if admin { "admin" } else { "read" }
    );
    Ok(())
}

fn return_urls(cfg: &Config) -> ReturnUrls {
    ReturnUrls {
        medogram: cfg.crazyminer_callback_url(),
        shop_template: cfg.shop_return_url_template(),
    }
}

pub fn engine(
    cfg: &Config,
    store: Store,
    queue: Arc<dyn JobQueue>,
    secret: &str,
    announcer: PaymentAnnouncer,
) -> anyhow::Result<Engine> {
    let cipher = Cipher::from_secrets(secret, &cfg.secret_key_fallbacks).context("SECRET_KEY")?;
    let users = UserDirectory::new(UserDirectoryConfig {
        base_url: cfg.medogram.user_url.clone(),
        path: cfg.medogram.user_path.clone(),
        auth_header: cfg.medogram.user_auth_header.clone(),
        auth_prefix: cfg.medogram.user_auth_prefix.clone(),
        api_key: cfg.medogram.api_key.clone(),
        timeout: cfg.gateway_timeout,
    })
    .context("user directory")?;
    Ok(Engine {
        store,
        queue,
        cipher,
        gateways: registry::configured(cfg).context("building the gateway clients")?,
        users,
        return_urls: return_urls(cfg),
        retry: cfg.retry,
        job_lease: cfg.job_lease,
        background_follow_up_inside: cfg.background_follow_up_inside,
        worker_id: cfg.worker_id.clone(),
        webhooks: paygate_worker::webhook_lane::WebhookLane::new(cfg.webhooks.clone())
            .context("building the webhook HTTP client")?,
        announcer,
    })
}

/// The runner of waited payments' first jobs in the process their clients
/// wait on, when `PAYGATE_API_RUNS_WAITED_JOBS` is on: the worker's own
/// runner on `engine`, with `PAYGATE_WORKER_CONCURRENCY` slots.
pub fn waited_jobs(cfg: &Config, engine: Arc<Engine>) -> Option<WaitedJobs> {
    if !cfg.api_runs_waited_jobs {
        return None;
    }
    let (claimant, lease) = (engine.worker_id.clone(), engine.job_lease);
    let ahead = engine.clone();
    Some(
        WaitedJobs::new(&claimant, lease, cfg.worker_concurrency, move |claim| {
            let engine = engine.clone();
            async move {
                paygate_worker::runner::run_claimed_job(&engine, claim, Priority::Waited).await
            }
        })
        .with_head_start(move |payment, job| {
            paygate_worker::jobs::head_start(&ahead, payment, job)
        }),
    )
}

/// `watch` is the hub its waiting requests register with; `announcer` tells
/// waiters (here and elsewhere) about the API's own payment changes.
pub fn api_state(
    cfg: &Config,
    store: Store,
    queue: Arc<dyn JobQueue>,
    watch: PaymentWatch,
    announcer: PaymentAnnouncer,
    waited_jobs: Option<WaitedJobs>,
) -> anyhow::Result<AppState> {
    Ok(AppState {
        store,
        queue,
        settings: Arc::new(ApiSettings {
            seed_wait: cfg.seed_wait,
            max_wait: cfg.max_wait,
            payment_redirect_url: cfg.payment_redirect_url.clone(),
            public_url: cfg.public_url.clone(),
            max_body_bytes: cfg.max_body_bytes,
            retry: cfg.retry,
            security: cfg.security.clone(),
            webhook_rotation_grace: cfg.webhooks.rotation_grace,
        }),
        gateways: registry::configured(cfg).context("building the gateway clients")?,
        return_urls: return_urls(cfg),
        metrics: paygate_common::telemetry::metrics(),
        watch,
        announcer,
        waited_jobs,
    })
}

/// Prints an admin key the first time a database is used, so a new user can
/// call the authenticated routes without another step.
pub async fn first_start_admin_key(store: &Store) -> anyhow::Result<()> {
    if store.api_key_count().await? == 0 {
        let key = store.create_api_key("admin (first start)", true).await?;
        println!("admin API key (shown once, keep it): {}", key.plaintext);
    }
    Ok(())
}
