//! Faithful HTTP simulators of the payment gateways paygate talks to, used by
//! `paygate serve`'s built-in test mode, `paygate sandbox`, integration tests
//! and benchmarks (docs/design.md, 'Gateway simulators'; protocols in docs/gateways/atmos.md
//! and docs/gateways/medogram.md).
//!
//! [`Sandbox::router`] serves:
//! - `/sandbox/medogram/…`: the BitPay.ir protocol the medogram gateway speaks
//!   (`gateway-send`, the hosted page, `gateway-result-second`) and the
//!   medogram main server's user API;
//! - `/sandbox/atmos/…`: the Atmos OAuth token, merchant API and hosted
//!   checkout, which POSTs the signed callback to the merchant;
//! - `/sandbox/payme/…`: the Payme checkout, which calls the merchant's
//!   Payme endpoint as Payme does; [`payme_test`] is the merchant test run.
//! - `/sandbox/click/…`: Click's pay page, which calls the merchant's Prepare
//!   and Complete, and the Merchant API (payment status, reversal). The
//!   merchant acceptance test is [`click::merchant_test`].
//!
//! Each simulator also has `GET`/`PUT _config`, `GET _stats` and
//! `POST _reset`, so knobs can be turned while it runs.
//!
//! This crate deliberately depends on no other paygate crate: it plays the
//! outside world, and must not share code (or bugs) with the client side.

mod admin;
mod atmos;
pub mod click;
mod env;
mod faults;
mod form;
mod html;
mod links;
mod locks;
mod medogram;
mod payme;

pub use atmos::{AtmosConfig, AtmosStats, CallbackField, HashAlg};
pub use click::{AmountFormat, ClickConfig, ClickStats};
pub use links::ReturnLinks;
pub use medogram::{MedogramConfig, MedogramStats, ReturnMethod};
pub use payme::merchant_test as payme_test;
pub use payme::{PaymeConfig, PaymeStats};

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// Decides whether a request may use the control endpoints, given its
/// `Authorization` credential (the text after `Bearer `), if any.
pub type ControlCheck =
    Arc<dyn Fn(Option<String>) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Knobs of every simulator.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SandboxConfig {
    pub medogram: MedogramConfig,
    pub atmos: AtmosConfig,
    pub payme: PaymeConfig,
    pub click: ClickConfig,
}

impl SandboxConfig {
    /// Reads `PAYGATE_SANDBOX_MEDOGRAM_*`, `PAYGATE_SANDBOX_ATMOS_*` and
    /// `PAYGATE_SANDBOX_CLICK_*`;
    /// every variable is optional. The error names the offending variable.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Result<Self, String> {
        Ok(Self {
            medogram: MedogramConfig::from_env(&env::Env::new(lookup, MedogramConfig::ENV_PREFIX))?,
            atmos: AtmosConfig::from_env(&env::Env::new(lookup, AtmosConfig::ENV_PREFIX))?,
            payme: PaymeConfig::from_env(&env::Env::new(lookup, PaymeConfig::ENV_PREFIX))?,
            click: ClickConfig::from_env(&env::Env::new(lookup, ClickConfig::ENV_PREFIX))?,
        })
    }
}

/// Every simulator with its shared state. Clones share the state.
#[derive(Clone)]
pub struct Sandbox {
    medogram: medogram::Medogram,
    atmos: atmos::Atmos,
    payme: payme::Payme,
    click: click::Click,
}

impl Sandbox {
    /// Simulators that send payers to any http(s) return link.
    pub fn new(cfg: SandboxConfig) -> Self {
        Self::with_return_links(cfg, ReturnLinks::AnyHttp)
    }

    pub fn with_return_links(cfg: SandboxConfig, links: ReturnLinks) -> Self {
        let http = http_client();
        Self {
            medogram: medogram::Medogram::new(cfg.medogram, http.clone(), links.clone()),
            atmos: atmos::Atmos::new(cfg.atmos, http.clone(), links.clone()),
            payme: payme::Payme::new(cfg.payme, http.clone(), links.clone()),
            click: click::Click::new(cfg.click, http, links),
        }
    }

    /// Everything under `/sandbox/{medogram,atmos,payme,click}`, ready to be
    /// merged into another router or served alone. The control endpoints are
    /// open: for tests that embed the simulators; servers use [`Self::guarded_router`].
    pub fn router(&self) -> Router {
        Router::new()
            .nest("/sandbox/medogram", self.medogram.router())
            .nest("/sandbox/atmos", self.atmos.router())
            .nest(payme::MOUNT, self.payme.router())
            .nest("/sandbox/click", self.click.router())
    }

    /// [`Self::router`] with the control endpoints (`_config`, `_stats`,
    /// `_reset`, registering users) behind `check`: they show and change the
    /// simulators' secrets, so a stranger must not reach them.
    pub fn guarded_router(&self, check: ControlCheck) -> Router {
        self.router().layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let check = check.clone();
                async move { guard_control(check, req, next).await }
            },
        ))
    }
}

fn is_control(req: &Request) -> bool {
    let path = req.uri().path();
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    last.starts_with('_')
        || (req.method() == axum::http::Method::PUT && path.contains("/api/users/"))
}

async fn guard_control(check: ControlCheck, req: Request, next: Next) -> Response {
    if !is_control(&req) {
        return next.run(req).await;
    }
    let credential = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim().to_string());
    if check(credential).await {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"paygate-sandbox\"")],
            axum::Json(serde_json::json!({"error": {
                "code": "unauthorized",
                "message": "the simulators' control endpoints need the admin key (Authorization: Bearer <key>)",
            }})),
        )
            .into_response()
    }
}

impl Sandbox {
    pub fn medogram_stats(&self) -> MedogramStats {
        self.medogram.stats()
    }

    pub fn atmos_stats(&self) -> AtmosStats {
        self.atmos.stats()
    }

    pub fn payme_stats(&self) -> PaymeStats {
        self.payme.stats()
    }

    pub fn click_stats(&self) -> ClickStats {
        self.click.stats()
    }
}

/// The client the simulators use to reach merchants (Atmos callbacks,
/// medogram autopay's browser return). Redirects are not followed: a
/// merchant's return endpoint typically redirects the browser onwards, and the
/// simulator only needs to have delivered the first hop.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("paygate-sandbox/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|err| {
            tracing::error!(%err, "sandbox HTTP client setup failed; using defaults");
            reqwest::Client::new()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> Result<SandboxConfig, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SandboxConfig::from_lookup(&move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_without_env() {
        assert_eq!(lookup(&[]).unwrap(), SandboxConfig::default());
    }

    #[test]
    fn reads_every_kind_of_variable() {
        let cfg = lookup(&[
            ("PAYGATE_SANDBOX_MEDOGRAM_API_KEY", "k"),
            ("PAYGATE_SANDBOX_MEDOGRAM_ERROR_RATE", "0.25"),
            ("PAYGATE_SANDBOX_MEDOGRAM_AUTOPAY", "yes"),
            ("PAYGATE_SANDBOX_MEDOGRAM_RETURN_METHOD", "POST"),
            ("PAYGATE_SANDBOX_MEDOGRAM_SEND_DEDUPE_BY_FACTOR", "false"),
            ("PAYGATE_SANDBOX_ATMOS_HASH", "sha256"),
            (
                "PAYGATE_SANDBOX_ATMOS_CALLBACK_URL",
                "http://127.0.0.1:8000/cb",
            ),
            ("PAYGATE_SANDBOX_ATMOS_CALLBACK_FIELD", "account"),
            ("PAYGATE_SANDBOX_ATMOS_DUPLICATE_CALLBACKS", "2"),
            ("PAYGATE_SANDBOX_ATMOS_STORE_ID", ""),
            (
                "PAYGATE_SANDBOX_PAYME_MERCHANT_URL",
                "http://127.0.0.1:8080/payme/",
            ),
            ("PAYGATE_SANDBOX_PAYME_DUPLICATE_CALLS", "on"),
            ("PAYGATE_SANDBOX_PAYME_CLOCK_OFFSET_MS", "-43200000"),
            ("PAYGATE_SANDBOX_CLICK_AMOUNT_FORMAT", "5000.00"),
            (
                "PAYGATE_SANDBOX_CLICK_PREPARE_URL",
                "http://127.0.0.1:8000/click/",
            ),
            ("PAYGATE_SANDBOX_CLICK_DUPLICATE_CALLS", "1"),
        ])
        .unwrap();
        assert_eq!(cfg.medogram.api_key, "k");
        assert_eq!(cfg.medogram.error_rate, 0.25);
        assert!(cfg.medogram.autopay);
        assert_eq!(cfg.medogram.return_method, ReturnMethod::Post);
        assert!(!cfg.medogram.send_dedupe_by_factor);
        assert_eq!(cfg.atmos.hash, HashAlg::Sha256);
        assert_eq!(
            cfg.atmos.callback_url.as_deref(),
            Some("http://127.0.0.1:8000/cb")
        );
        assert_eq!(cfg.atmos.callback_field, CallbackField::Account);
        assert_eq!(cfg.atmos.duplicate_callbacks, 2);
        assert_eq!(cfg.atmos.store_id, "8157", "empty means unset");
        assert_eq!(
            cfg.payme.merchant_url.as_deref(),
            Some("http://127.0.0.1:8080/payme/")
        );
        assert!(cfg.payme.duplicate_calls);
        assert_eq!(cfg.payme.clock_offset_ms, -43_200_000);
        assert_eq!(cfg.click.amount_format, AmountFormat::TwoDecimals);
        assert_eq!(
            cfg.click.prepare_url.as_deref(),
            Some("http://127.0.0.1:8000/click/")
        );
        assert_eq!(cfg.click.complete_url, None);
        assert_eq!(cfg.click.duplicate_calls, 1);
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, value) in [
            ("PAYGATE_SANDBOX_MEDOGRAM_LATENCY_MS", "soon"),
            ("PAYGATE_SANDBOX_MEDOGRAM_AUTOPAY", "maybe"),
            ("PAYGATE_SANDBOX_ATMOS_HASH", "crc32"),
            ("PAYGATE_SANDBOX_ATMOS_TOKEN_TTL_SECS", "-1"),
            ("PAYGATE_SANDBOX_PAYME_CLOCK_OFFSET_MS", "yesterday"),
            ("PAYGATE_SANDBOX_PAYME_AUTOPAY", "sometimes"),
            ("PAYGATE_SANDBOX_CLICK_AMOUNT_FORMAT", "50"),
            ("PAYGATE_SANDBOX_CLICK_CALL_DELAY_MS", "x"),
        ] {
            let err = lookup(&[(var, value)]).unwrap_err();
            assert!(err.contains(var), "{err}");
        }
        let err = lookup(&[("PAYGATE_SANDBOX_ATMOS_ERROR_RATE", "2")]).unwrap_err();
        assert!(
            err.contains("PAYGATE_SANDBOX_ATMOS_") && err.contains("error_rate"),
            "{err}"
        );
        let err = lookup(&[("PAYGATE_SANDBOX_ATMOS_CALLBACK_URL", "not a url")]).unwrap_err();
        assert!(err.contains("callback_url"), "{err}");
        let err = lookup(&[("PAYGATE_SANDBOX_CLICK_SERVICE_ID", "abc")]).unwrap_err();
        assert!(
            err.contains("PAYGATE_SANDBOX_CLICK_") && err.contains("service_id"),
            "{err}"
        );
    }
}
