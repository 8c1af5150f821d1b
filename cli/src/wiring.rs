//! Builds the pieces (store, cipher, gateways, engine, API state) from config,
//! in one place, so every subcommand and every test assembles them the same way.

use anyhow::Context;
use paygate_api::{ApiSettings, AppState, AtmosWebhookSettings};
use paygate_common::config::Config;
use paygate_common::crypto::Cipher;
use paygate_common::gateways::atmos::{AtmosConfig, AtmosGateway, SignAlgorithm};
use paygate_common::gateways::medogram::{MedogramConfig, MedogramGateway};
use paygate_common::gateways::GatewayRegistry;
use paygate_common::queue::JobQueue;
use paygate_common::store::{Store, StoreOptions};
use paygate_common::userdir::{UserDirectory, UserDirectoryConfig};
use paygate_worker::{Engine, ReturnUrls};
use std::sync::Arc;

pub async fn connect_store(cfg: &Config) -> anyhow::Result<Store> {
    let opts = StoreOptions {
        max_connections: cfg.db_max_connections,
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

pub fn gateways(cfg: &Config) -> GatewayRegistry {
    let mut registry =
        GatewayRegistry::default().with(Arc::new(MedogramGateway::new(MedogramConfig {
            base_url: cfg.medogram.gateway_url.clone(),
            api_key: cfg.medogram.api_key.clone(),
            test_mode: cfg.medogram.test_mode,
            page_suffix_get: cfg.medogram.page_suffix_get,
            timeout: cfg.gateway_timeout,
        })));
    if let Some(a) = &cfg.atmos {
        registry = registry.with(Arc::new(AtmosGateway::new(AtmosConfig {
            api_base: a.api_base.clone(),
            checkout_base: a.checkout_base.clone(),
            consumer_key: a.consumer_key.clone(),
            consumer_secret: a.consumer_secret.clone(),
            store_id: a.store_id.clone(),
            terminal_id: a.terminal_id.clone(),
            lang: a.lang.clone(),
            timeout: cfg.gateway_timeout,
        })));
    }
    registry
}

pub fn engine(
    cfg: &Config,
    store: Store,
    queue: Arc<dyn JobQueue>,
    secret: &str,
) -> anyhow::Result<Engine> {
    let cipher = Cipher::from_secrets(secret, &cfg.secret_key_fallbacks).context("SECRET_KEY")?;
    let users = UserDirectory::new(UserDirectoryConfig {
        base_url: cfg.medogram.user_url.clone(),
        path: cfg.medogram.user_path.clone(),
        auth_header: cfg.medogram.user_auth_header.clone(),
        auth_prefix: cfg.medogram.user_auth_prefix.clone(),
        api_key: cfg.medogram.api_key.clone(),
        timeout: cfg.gateway_timeout,
    });
    Ok(Engine {
        store,
        queue,
        cipher,
        gateways: gateways(cfg),
        users,
        return_urls: ReturnUrls {
            medogram: cfg.crazyminer_callback_url(),
            atmos_template: cfg.atmos_return_url_template(),
        },
        retry: cfg.retry,
        job_lease: cfg.job_lease,
        worker_id: cfg.worker_id.clone(),
    })
}

pub fn api_state(cfg: &Config, store: Store, queue: Arc<dyn JobQueue>) -> AppState {
    AppState {
        store,
        queue,
        settings: Arc::new(ApiSettings {
            seed_wait: cfg.seed_wait,
            max_wait: cfg.max_wait,
            payment_redirect_url: cfg.payment_redirect_url.clone(),
            public_url: cfg.public_url.clone(),
            max_body_bytes: cfg.max_body_bytes,
            fetch_user_attempts: cfg.retry.fetch_user.max_attempts,
            verify_attempts: cfg.retry.verify_payment.max_attempts,
            create_invoice_attempts: cfg.retry.create_invoice.max_attempts,
            atmos: cfg.atmos.as_ref().map(|a| AtmosWebhookSettings {
                store_id: a.store_id.clone(),
                api_key: a.api_key.clone(),
                algorithms: a
                    .sign_algorithms
                    .iter()
                    .filter_map(|s| SignAlgorithm::parse(s))
                    .collect(),
            }),
            security: cfg.security.clone(),
        }),
        metrics: paygate_common::telemetry::metrics(),
    }
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
