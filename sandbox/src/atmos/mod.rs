//! Simulator of the Atmos merchant API and hosted checkout (docs/gateways/atmos.md).

mod api;
mod callback;
mod checkout;
mod codes;
mod config;
mod direct;
mod sign;
mod store;
mod token;

pub use config::{AtmosConfig, CallbackField, HashAlg};
pub use store::AtmosStats;

use crate::admin::{self, Admin};
use crate::locks::lock;
use axum::routing::{get, post};
use axum::Router;
use std::sync::{Arc, Mutex, MutexGuard};
use store::Store;

/// Shared state of the Atmos simulator; cheap to clone.
#[derive(Clone)]
pub(crate) struct Atmos {
    inner: Arc<Inner>,
}

struct Inner {
    config: Mutex<AtmosConfig>,
    store: Mutex<Store>,
    http: reqwest::Client,
    return_links: crate::links::ReturnLinks,
}

impl Atmos {
    pub(crate) fn new(
        config: AtmosConfig,
        http: reqwest::Client,
        return_links: crate::links::ReturnLinks,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: Mutex::new(config),
                store: Mutex::new(Store::default()),
                http,
                return_links,
            }),
        }
    }

    /// `link` if the payer may be sent there, else nothing.
    fn allowed_link<'l>(&self, link: Option<&'l str>) -> Option<&'l str> {
        link.filter(|l| self.inner.return_links.allows(l))
    }

    /// A snapshot, so one request sees one consistent set of knobs.
    pub(crate) fn config(&self) -> AtmosConfig {
        lock(&self.inner.config).clone()
    }

    /// Never hold the guard across an `.await`.
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.inner.store)
    }

    fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn stats(&self) -> AtmosStats {
        self.store().stats.clone()
    }

    pub(crate) fn router(&self) -> Router {
        // The hosted checkout answers on both path styles seen in the wild.
        let invoice = Router::new()
            .route("/get", get(checkout::page))
            .route("/pay", post(checkout::pay))
            .route("/decline", post(checkout::decline))
            .route("/wrong-otp", post(checkout::wrong_otp));
        Router::new()
            .route("/token", post(token::issue))
            .route("/merchant/pay/create", post(api::create))
            .route("/merchant/pay/get", post(api::get))
            .route("/merchant/pay/info", post(api::get))
            .route("/merchant/pay/reverse", post(api::reverse))
            .route("/merchant/pay/cancel", post(direct::cancel))
            .route("/merchant/pay/pre-apply", post(direct::pre_apply))
            .route("/merchant/pay/apply", post(direct::apply))
            .nest("/invoice", invoice.clone())
            .nest("/checkout/invoice", invoice)
            .merge(admin::routes::<Self>())
            .fallback(direct::unknown)
            .method_not_allowed_fallback(direct::unknown)
            .with_state(self.clone())
    }
}

impl Admin for Atmos {
    type Config = AtmosConfig;
    type Stats = AtmosStats;

    fn config(&self) -> AtmosConfig {
        Atmos::config(self)
    }

    fn set_config(&self, config: AtmosConfig) -> Result<AtmosConfig, String> {
        let config = config.validated()?;
        *lock(&self.inner.config) = config.clone();
        Ok(config)
    }

    fn stats(&self) -> AtmosStats {
        Atmos::stats(self)
    }

    /// Forgets transactions and counters; config and issued tokens stay.
    fn reset(&self) {
        self.store().reset();
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
