//! Simulator of the BitPay.ir protocol that the "medogram" gateway speaks
//! (docs/gateways/medogram.md), plus the medogram main server's user API.

mod autopay;
mod checkout;
mod config;
mod protocol;
mod store;
mod users;

pub use config::{MedogramConfig, ReturnMethod};
pub use store::MedogramStats;

use crate::admin::{self, Admin};
use crate::locks::lock;
use axum::routing::{get, post};
use axum::Router;
use std::sync::{Arc, Mutex, MutexGuard};
use store::Store;

/// Shared state of the medogram simulator; cheap to clone.
#[derive(Clone)]
pub(crate) struct Medogram {
    inner: Arc<Inner>,
}

struct Inner {
    config: Mutex<MedogramConfig>,
    store: Mutex<Store>,
    http: reqwest::Client,
    return_links: crate::links::ReturnLinks,
}

impl Medogram {
    pub(crate) fn new(
        config: MedogramConfig,
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

    fn return_links(&self) -> &crate::links::ReturnLinks {
        &self.inner.return_links
    }

    /// A snapshot: each request works with the knobs as they were when it
    /// arrived, even if a test changes them meanwhile.
    pub(crate) fn config(&self) -> MedogramConfig {
        lock(&self.inner.config).clone()
    }

    /// Never hold the guard across an `.await`.
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.inner.store)
    }

    fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn stats(&self) -> MedogramStats {
        self.store().stats.clone()
    }

    pub(crate) fn router(&self) -> Router {
        // The same protocol is served under the production and the test prefix.
        let protocol = Router::new()
            .route("/gateway-send", post(protocol::gateway_send))
            .route(
                "/gateway-result-second",
                post(protocol::gateway_result_second),
            )
            .route("/{page}", get(checkout::page))
            .route("/{page}/pay", post(checkout::pay))
            .route("/{page}/cancel", post(checkout::cancel));
        Router::new()
            .nest("/payment", protocol.clone())
            .nest("/payment-test", protocol)
            .route(
                "/api/users/{identifier}/",
                get(users::get_user).put(users::put_user),
            )
            .route(
                "/api/users/{identifier}",
                get(users::get_user).put(users::put_user),
            )
            .merge(admin::routes::<Self>())
            .with_state(self.clone())
    }
}

impl Admin for Medogram {
    type Config = MedogramConfig;
    type Stats = MedogramStats;

    fn config(&self) -> MedogramConfig {
        Medogram::config(self)
    }

    fn set_config(&self, config: MedogramConfig) -> Result<MedogramConfig, String> {
        config.validate()?;
        *lock(&self.inner.config) = config.clone();
        Ok(config)
    }

    fn stats(&self) -> MedogramStats {
        Medogram::stats(self)
    }

    /// Forgets invoices, counters and registered users; the config stays.
    fn reset(&self) {
        *self.store() = Store::default();
    }
}
