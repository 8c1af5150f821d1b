//! Simulator of Click (gateways.md §4): the pay page that runs an attempt
//! against the merchant's Prepare and Complete URLs exactly as Click does, the
//! Merchant API endpoints paygate calls (payment status, reversal), and the
//! merchant acceptance test ([`merchant_test`]).
//!
//! Routes under `/sandbox/click`:
//! - `GET /services/pay?service_id=&merchant_id=&amount=&transaction_param=&return_url=`:
//!   the pay page; its buttons POST `/services/pay/confirm` (Pay) and
//!   `/services/pay/insufficient` (Complete with error -5017);
//! - `GET /v2/merchant/payment/status/{service_id}/{payment_id}` and
//!   `DELETE /v2/merchant/payment/reversal/{service_id}/{payment_id}`, with
//!   the `Auth` header checked;
//! - `_config`, `_stats`, `_reset`.

mod api;
mod attempt;
mod checkout;
mod config;
pub mod merchant_test;
mod store;
mod wire;

pub use config::ClickConfig;
pub use store::ClickStats;
pub use wire::AmountFormat;

use crate::admin::{self, Admin};
use crate::locks::lock;
use axum::routing::{delete, get, post};
use axum::Router;
use std::sync::{Arc, Mutex, MutexGuard};
use store::Store;

/// Shared state of the Click simulator; cheap to clone.
#[derive(Clone)]
pub(crate) struct Click {
    inner: Arc<Inner>,
}

struct Inner {
    config: Mutex<ClickConfig>,
    store: Mutex<Store>,
    http: reqwest::Client,
    /// Where payers may be sent back to (an open redirect otherwise).
    links: crate::links::ReturnLinks,
}

impl Click {
    pub(crate) fn new(
        config: ClickConfig,
        http: reqwest::Client,
        links: crate::links::ReturnLinks,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: Mutex::new(config),
                store: Mutex::new(Store::default()),
                http,
                links,
            }),
        }
    }

    /// True when the payer may be sent to `url`.
    pub(crate) fn return_allowed(&self, url: &str) -> bool {
        self.inner.links.allows(url)
    }

    /// A snapshot, so one request sees one consistent set of knobs.
    pub(crate) fn config(&self) -> ClickConfig {
        lock(&self.inner.config).clone()
    }

    /// Never hold the guard across an `.await`.
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.inner.store)
    }

    fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    pub(crate) fn stats(&self) -> ClickStats {
        self.store().stats.clone()
    }

    pub(crate) fn router(&self) -> Router {
        Router::new()
            .route("/services/pay", get(checkout::page))
            .route("/services/pay/confirm", post(checkout::confirm))
            .route("/services/pay/insufficient", post(checkout::insufficient))
            .route(
                "/v2/merchant/payment/status/{service_id}/{payment_id}",
                get(api::status),
            )
            .route(
                "/v2/merchant/payment/reversal/{service_id}/{payment_id}",
                delete(api::reversal),
            )
            .merge(admin::routes::<Self>())
            .with_state(self.clone())
    }
}

impl Admin for Click {
    type Config = ClickConfig;
    type Stats = ClickStats;

    fn config(&self) -> ClickConfig {
        Click::config(self)
    }

    fn set_config(&self, config: ClickConfig) -> Result<ClickConfig, String> {
        let config = config.validated()?;
        *lock(&self.inner.config) = config.clone();
        Ok(config)
    }

    fn stats(&self) -> ClickStats {
        Click::stats(self)
    }

    /// Forgets payments and counters; config stays.
    fn reset(&self) {
        self.store().reset();
    }
}
