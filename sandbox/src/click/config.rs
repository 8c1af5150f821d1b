//! Knobs of the Click simulator.

use super::wire::AmountFormat;
use crate::env::Env;
use crate::faults;
use serde::{Deserialize, Serialize};

/// Runtime-changeable knobs (`GET`/`PUT /sandbox/click/_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClickConfig {
    pub service_id: String,
    pub merchant_id: String,
    /// The Merchant API user whose `Auth` header is accepted.
    pub merchant_user_id: String,
    /// Signs Prepare/Complete and checks the Merchant API digest.
    pub secret_key: String,
    /// Where Prepare is POSTed. `None`: the pay page cannot take payments.
    pub prepare_url: Option<String>,
    /// Where Complete is POSTed; `None` uses `prepare_url` (one URL that
    /// branches on `action`, as cabinets allow).
    pub complete_url: Option<String>,
    /// How `amount` is printed in Prepare/Complete (and so signed).
    pub amount_format: AmountFormat,
    /// Extra identical sends of every Prepare and Complete after the first
    /// (Click retrying); the merchant must answer them from stored state.
    pub duplicate_calls: u32,
    /// Delay before each call to the merchant.
    pub call_delay_ms: u64,
    /// How long the merchant may take to answer one call.
    pub call_timeout_ms: u64,
    /// Merchant API latency and fraction (0..=1) of calls answered HTTP 500.
    pub latency_ms: u64,
    pub error_rate: f64,
    /// How far an `Auth` timestamp may be from now.
    pub auth_max_skew_secs: u64,
}

impl Default for ClickConfig {
    fn default() -> Self {
        Self {
            service_id: "41001".to_owned(),
            merchant_id: "17001".to_owned(),
            merchant_user_id: "30001".to_owned(),
            secret_key: "sandbox-click-secret-key".to_owned(),
            prepare_url: None,
            complete_url: None,
            amount_format: AmountFormat::Integer,
            duplicate_calls: 0,
            call_delay_ms: 0,
            call_timeout_ms: 10_000,
            latency_ms: 0,
            error_rate: 0.0,
            auth_max_skew_secs: 300,
        }
    }
}

const MAX_DUPLICATES: u32 = 100;

fn tidy_url(name: &str, url: Option<String>) -> Result<Option<String>, String> {
    let url = url.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty());
    if let Some(u) = &url {
        let parsed = url::Url::parse(u).map_err(|e| format!("{name} {u:?}: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("{name} {u:?} must be http or https"));
        }
    }
    Ok(url)
}

impl ClickConfig {
    pub(crate) const ENV_PREFIX: &'static str = "PAYGATE_SANDBOX_CLICK_";

    /// Validates and tidies (an empty URL means none).
    pub fn validated(mut self) -> Result<Self, String> {
        for (name, value) in [
            ("service_id", &self.service_id),
            ("merchant_id", &self.merchant_id),
            ("merchant_user_id", &self.merchant_user_id),
        ] {
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{name} must be digits"));
            }
        }
        if self.secret_key.is_empty() {
            return Err("secret_key must not be empty".into());
        }
        self.prepare_url = tidy_url("prepare_url", self.prepare_url)?;
        self.complete_url = tidy_url("complete_url", self.complete_url)?;
        if self.duplicate_calls > MAX_DUPLICATES {
            return Err(format!("duplicate_calls must be at most {MAX_DUPLICATES}"));
        }
        faults::validate(self.latency_ms, self.error_rate)?;
        faults::validate_delay("call_delay_ms", self.call_delay_ms)?;
        faults::validate_delay("call_timeout_ms", self.call_timeout_ms)?;
        if self.call_timeout_ms == 0 {
            return Err("call_timeout_ms must be positive".into());
        }
        Ok(self)
    }

    pub(crate) fn from_env(env: &Env<'_>) -> Result<Self, String> {
        let mut c = Self::default();
        env.string("SERVICE_ID", &mut c.service_id);
        env.string("MERCHANT_ID", &mut c.merchant_id);
        env.string("MERCHANT_USER_ID", &mut c.merchant_user_id);
        env.string("SECRET_KEY", &mut c.secret_key);
        env.opt_string("PREPARE_URL", &mut c.prepare_url);
        env.opt_string("COMPLETE_URL", &mut c.complete_url);
        env.parse("AMOUNT_FORMAT", &mut c.amount_format)?;
        env.parse("DUPLICATE_CALLS", &mut c.duplicate_calls)?;
        env.parse("CALL_DELAY_MS", &mut c.call_delay_ms)?;
        env.parse("CALL_TIMEOUT_MS", &mut c.call_timeout_ms)?;
        env.parse("LATENCY_MS", &mut c.latency_ms)?;
        env.parse("ERROR_RATE", &mut c.error_rate)?;
        env.parse("AUTH_MAX_SKEW_SECS", &mut c.auth_max_skew_secs)?;
        c.validated().map_err(|e| env.context(e))
    }

    /// Where Complete goes.
    pub(crate) fn complete_target(&self) -> Option<&str> {
        self.complete_url.as_deref().or(self.prepare_url.as_deref())
    }
}
