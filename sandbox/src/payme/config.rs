//! Knobs of the Payme simulator.

use crate::env::Env;
use crate::faults;
use serde::{Deserialize, Serialize};

/// The simulator's cashbox id and key. paygate's Payme settings default to
/// the same two values (`paygate_common::gateways::payme::settings`); they
/// are repeated here because the simulator shares no code with its client.
pub const DEFAULT_MERCHANT_ID: &str = "5e730e8e0b852a417aa49ceb";
pub const DEFAULT_KEY: &str = "sandbox-payme-key-0123456789abcdefgh";

/// Runtime-changeable knobs (`GET`/`PUT /sandbox/payme/_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PaymeConfig {
    /// The cashbox id checkout links must carry as `m`.
    pub merchant_id: String,
    /// The merchant's Payme endpoint, e.g. `http://127.0.0.1:8080/payme/`.
    /// `None`: Pay can only show that no endpoint is configured.
    pub merchant_url: Option<String>,
    /// The cashbox key sent as `Authorization: Basic base64("Paycom:<key>")`.
    pub key: String,
    /// Added before every call to the merchant.
    pub latency_ms: u64,
    /// Fraction (0..=1) of payments whose card debit fails after
    /// CreateTransaction; the simulator then sends CancelTransaction with
    /// reason 2, as Payme does.
    pub error_rate: f64,
    /// Send every call twice, concurrently (Payme retries); the answers
    /// must be identical, and `_stats` counts those that are not.
    pub duplicate_calls: bool,
    /// Opening a checkout link pays at once (no click), for scripts and load.
    pub autopay: bool,
    /// Added to the `time` sent with CreateTransaction. A large negative
    /// value (e.g. -43200000) makes transactions look 12 hours old, so the
    /// merchant's timeout rule can be exercised.
    pub clock_offset_ms: i64,
}

impl Default for PaymeConfig {
    fn default() -> Self {
        Self {
            merchant_id: DEFAULT_MERCHANT_ID.to_owned(),
            merchant_url: None,
            key: DEFAULT_KEY.to_owned(),
            latency_ms: 0,
            error_rate: 0.0,
            duplicate_calls: false,
            autopay: false,
            clock_offset_ms: 0,
        }
    }
}

/// Keeps a typo from moving the clock by years (30 days either way).
const MAX_CLOCK_OFFSET_MS: i64 = 30 * 24 * 3_600_000;

impl PaymeConfig {
    pub(crate) const ENV_PREFIX: &'static str = "PAYGATE_SANDBOX_PAYME_";

    /// Validates and tidies (an empty `merchant_url` means none).
    pub fn validated(mut self) -> Result<Self, String> {
        for (name, value) in [("merchant_id", &self.merchant_id), ("key", &self.key)] {
            if value.trim().is_empty() {
                return Err(format!("{name} must not be empty"));
            }
        }
        self.merchant_url = self
            .merchant_url
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty());
        if let Some(u) = &self.merchant_url {
            let parsed = url::Url::parse(u).map_err(|e| format!("merchant_url {u:?}: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!("merchant_url {u:?} must be http or https"));
            }
        }
        if self.clock_offset_ms.abs() > MAX_CLOCK_OFFSET_MS {
            return Err(format!(
                "clock_offset_ms must be within ±{MAX_CLOCK_OFFSET_MS}"
            ));
        }
        faults::validate(self.latency_ms, self.error_rate)?;
        Ok(self)
    }

    pub(crate) fn from_env(env: &Env<'_>) -> Result<Self, String> {
        let mut c = Self::default();
        env.string("MERCHANT_ID", &mut c.merchant_id);
        env.opt_string("MERCHANT_URL", &mut c.merchant_url);
        env.string("KEY", &mut c.key);
        env.parse("LATENCY_MS", &mut c.latency_ms)?;
        env.parse("ERROR_RATE", &mut c.error_rate)?;
        env.bool("DUPLICATE_CALLS", &mut c.duplicate_calls)?;
        env.bool("AUTOPAY", &mut c.autopay)?;
        env.parse("CLOCK_OFFSET_MS", &mut c.clock_offset_ms)?;
        c.validated().map_err(|e| env.context(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(PaymeConfig::default().validated().is_ok());
        let c = PaymeConfig {
            merchant_url: Some("  ".into()),
            ..PaymeConfig::default()
        };
        assert_eq!(c.validated().unwrap().merchant_url, None);
        for bad in [
            PaymeConfig {
                key: " ".into(),
                ..PaymeConfig::default()
            },
            PaymeConfig {
                merchant_url: Some("ftp://x".into()),
                ..PaymeConfig::default()
            },
            PaymeConfig {
                clock_offset_ms: -MAX_CLOCK_OFFSET_MS - 1,
                ..PaymeConfig::default()
            },
            PaymeConfig {
                error_rate: 1.5,
                ..PaymeConfig::default()
            },
        ] {
            assert!(bad.validated().is_err());
        }
    }
}
