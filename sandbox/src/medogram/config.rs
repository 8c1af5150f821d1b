//! Knobs of the medogram (BitPay.ir) simulator.

use crate::env::Env;
use crate::faults;
use serde::{Deserialize, Serialize};

/// How the checkout sends the browser back to the merchant's `redirect` URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReturnMethod {
    /// 302 with `trans_id`, `id_get`, `factorId` in the query (official samples).
    #[default]
    Get,
    /// An auto-submitting HTML form POSTing the same fields (older plugins).
    Post,
}

/// Runtime-changeable knobs (`GET`/`PUT /sandbox/medogram/_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MedogramConfig {
    /// The merchant `api` key gateway-send and gateway-result-second accept;
    /// also the `Api-Key` the user API expects.
    pub api_key: String,
    /// Added to every protocol call (send, verify, user API).
    pub latency_ms: u64,
    /// Fraction (0..=1) of protocol calls answered HTTP 503 before doing anything.
    pub error_rate: f64,
    /// Pay every new invoice automatically and play the browser's return.
    pub autopay: bool,
    pub autopay_delay_ms: u64,
    pub return_method: ReturnMethod,
    /// A repeated gateway-send with the same `factorId` and amount returns the
    /// SAME `id_get` instead of creating a second invoice. This lets a client
    /// retry a send whose reply was lost without leaving two invoices behind.
    /// Turn it off to see what a naive retry does against a gateway without
    /// this courtesy.
    pub send_dedupe_by_factor: bool,
}

impl Default for MedogramConfig {
    fn default() -> Self {
        Self {
            api_key: "sandbox-medogram-api-key".to_owned(),
            latency_ms: 0,
            error_rate: 0.0,
            autopay: false,
            autopay_delay_ms: 50,
            return_method: ReturnMethod::Get,
            send_dedupe_by_factor: true,
        }
    }
}

impl MedogramConfig {
    pub(crate) const ENV_PREFIX: &'static str = "PAYGATE_SANDBOX_MEDOGRAM_";

    pub fn validate(&self) -> Result<(), String> {
        if self.api_key.trim().is_empty() {
            return Err("api_key must not be empty".to_owned());
        }
        faults::validate(self.latency_ms, self.error_rate)?;
        faults::validate_delay("autopay_delay_ms", self.autopay_delay_ms)
    }

    pub(crate) fn from_env(env: &Env<'_>) -> Result<Self, String> {
        let mut c = Self::default();
        env.string("API_KEY", &mut c.api_key);
        env.parse("LATENCY_MS", &mut c.latency_ms)?;
        env.parse("ERROR_RATE", &mut c.error_rate)?;
        env.bool("AUTOPAY", &mut c.autopay)?;
        env.parse("AUTOPAY_DELAY_MS", &mut c.autopay_delay_ms)?;
        env.choice("RETURN_METHOD", &mut c.return_method, "get or post")?;
        env.bool("SEND_DEDUPE_BY_FACTOR", &mut c.send_dedupe_by_factor)?;
        c.validate().map_err(|e| env.context(e))?;
        Ok(c)
    }
}
