//! Simulator of Payme calling a merchant (docs/gateways/payme.md, "Simulator
//! checklist"): the checkout page a link opens, which on Pay calls the
//! merchant's endpoint exactly as Payme does, and the merchant test run
//! ([`merchant_test`]), like Payme's own sandbox test tool.
//!
//! Routes under `/sandbox/payme`:
//! - `GET /<base64 link>`: the checkout page (pays at once with `autopay`);
//! - `POST /pay`, `POST /cancel`: its buttons;
//! - `POST /_cancel {"id", "reason"?}`: the cabinet cancels (refunds) a
//!   transaction;
//! - `GET`/`PUT /_config`, `GET /_stats`, `POST /_reset`.

mod checkout;
mod config;
mod link;
pub mod merchant_test;
mod pay;
mod rpc;
mod store;

pub use config::PaymeConfig;
pub use store::PaymeStats;

use crate::admin::{self, Admin};
use crate::locks::lock;
use axum::routing::{get, post};
use axum::Router;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use store::Store;

/// Where [`crate::Sandbox::router`] mounts this simulator; the page's forms
/// post to absolute paths under it (a base64 link may contain `/`, so
/// relative actions would not resolve).
pub(crate) const MOUNT: &str = "/sandbox/payme";

/// Shared state of the Payme simulator; cheap to clone.
#[derive(Clone)]
pub(crate) struct Payme {
    inner: Arc<Inner>,
}

struct Inner {
    config: Mutex<PaymeConfig>,
    store: Mutex<Store>,
    http: reqwest::Client,
    /// Where payers may be sent back to (an open redirect otherwise).
    links: crate::links::ReturnLinks,
    next_id: AtomicU64,
}

impl Payme {
    pub(crate) fn new(
        config: PaymeConfig,
        http: reqwest::Client,
        links: crate::links::ReturnLinks,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: Mutex::new(config),
                store: Mutex::new(Store::default()),
                http,
                links,
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// True when the payer may be sent to `url`.
    pub(crate) fn return_allowed(&self, url: &str) -> bool {
        self.inner.links.allows(url)
    }

    /// A snapshot, so one payment sees one consistent set of knobs.
    pub(crate) fn config(&self) -> PaymeConfig {
        lock(&self.inner.config).clone()
    }

    /// Never hold the guard across an `.await`.
    fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.inner.store)
    }

    fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// JSON-RPC ids, increasing like Payme's.
    fn next_request_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> PaymeStats {
        self.store().stats.clone()
    }

    pub(crate) fn router(&self) -> Router {
        Router::new()
            .route("/pay", post(checkout::pay))
            .route("/cancel", post(checkout::cancel))
            .route("/_cancel", post(checkout::cabinet_cancel))
            .route("/{*link}", get(checkout::page))
            .merge(admin::routes::<Self>())
            .with_state(self.clone())
    }
}

impl Admin for Payme {
    type Config = PaymeConfig;
    type Stats = PaymeStats;

    fn config(&self) -> PaymeConfig {
        Payme::config(self)
    }

    fn set_config(&self, config: PaymeConfig) -> Result<PaymeConfig, String> {
        let config = config.validated()?;
        *lock(&self.inner.config) = config.clone();
        Ok(config)
    }

    fn stats(&self) -> PaymeStats {
        Payme::stats(self)
    }

    /// Forgets the counters; the config stays.
    fn reset(&self) {
        *self.store() = Store::default();
    }
}
