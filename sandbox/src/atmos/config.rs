//! Knobs of the Atmos simulator.

use crate::env::Env;
use crate::faults;
use serde::{Deserialize, Serialize};

/// Hash of the callback `sign` (docs/gateways/atmos.md, 'Signature rule':
/// Atmos' docs never name it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HashAlg {
    #[default]
    Md5,
    Sha256,
    Sha1,
}

/// Name of the callback field carrying the merchant's `account`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackField {
    #[default]
    Invoice,
    Account,
}

impl CallbackField {
    pub(crate) fn name(self) -> &'static str {
        match self {
            CallbackField::Invoice => "invoice",
            CallbackField::Account => "account",
        }
    }
}

/// Runtime-changeable knobs (`GET`/`PUT /sandbox/atmos/_config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AtmosConfig {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub store_id: String,
    /// The separate callback-signing key (not the consumer key or secret).
    pub api_key: String,
    /// Where the signed callback is POSTed. `None`: no callback is sent and a
    /// payment is confirmed straight away.
    pub callback_url: Option<String>,
    pub hash: HashAlg,
    /// `false`: store_id, transaction_id and amount are JSON strings in the
    /// callback; `true`: JSON numbers. The sign covers the same text either way.
    pub callback_numbers: bool,
    pub callback_field: CallbackField,
    /// Extra identical callbacks sent after the first; their answers are
    /// counted but never change the transaction.
    pub duplicate_callbacks: u32,
    pub callback_delay_ms: u64,
    /// Lifetime of issued tokens. 0 issues tokens that are already expired,
    /// which exercises a client's refresh-on-401 path.
    pub token_ttl_secs: u64,
    pub latency_ms: u64,
    /// Fraction (0..=1) of API calls (token and /merchant/*) answered HTTP 500.
    pub error_rate: f64,
    /// Pay every created transaction automatically (callback, no browser).
    pub autopay: bool,
    pub autopay_delay_ms: u64,
    /// The callback claims 100 tiyin more than the transaction's amount.
    pub wrong_amount: bool,
    /// The callback's sign is computed with a wrong key.
    pub bad_signature: bool,
}

impl Default for AtmosConfig {
    fn default() -> Self {
        Self {
            consumer_key: "sandbox-consumer-key".to_owned(),
            consumer_secret: "sandbox-consumer-secret".to_owned(),
            store_id: "8157".to_owned(),
            api_key: "sandbox-atmos-api-key".to_owned(),
            callback_url: None,
            hash: HashAlg::Md5,
            callback_numbers: false,
            callback_field: CallbackField::Invoice,
            duplicate_callbacks: 0,
            callback_delay_ms: 0,
            token_ttl_secs: 3600,
            latency_ms: 0,
            error_rate: 0.0,
            autopay: false,
            autopay_delay_ms: 50,
            wrong_amount: false,
            bad_signature: false,
        }
    }
}

const MAX_DUPLICATES: u32 = 100;
const MAX_TOKEN_TTL_SECS: u64 = 30 * 24 * 3600;

impl AtmosConfig {
    pub(crate) const ENV_PREFIX: &'static str = "PAYGATE_SANDBOX_ATMOS_";

    /// Validates and tidies (an empty `callback_url` means none).
    pub fn validated(mut self) -> Result<Self, String> {
        for (name, value) in [
            ("consumer_key", &self.consumer_key),
            ("consumer_secret", &self.consumer_secret),
            ("store_id", &self.store_id),
            ("api_key", &self.api_key),
        ] {
            if value.trim().is_empty() {
                return Err(format!("{name} must not be empty"));
            }
        }
        self.callback_url = self
            .callback_url
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty());
        if let Some(u) = &self.callback_url {
            let parsed = url::Url::parse(u).map_err(|e| format!("callback_url {u:?}: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!("callback_url {u:?} must be http or https"));
            }
        }
        if self.duplicate_callbacks > MAX_DUPLICATES {
            return Err(format!(
                "duplicate_callbacks must be at most {MAX_DUPLICATES}"
            ));
        }
        if self.token_ttl_secs > MAX_TOKEN_TTL_SECS {
            return Err(format!(
                "token_ttl_secs must be at most {MAX_TOKEN_TTL_SECS}"
            ));
        }
        faults::validate(self.latency_ms, self.error_rate)?;
        faults::validate_delay("callback_delay_ms", self.callback_delay_ms)?;
        faults::validate_delay("autopay_delay_ms", self.autopay_delay_ms)?;
        Ok(self)
    }

    pub(crate) fn from_env(env: &Env<'_>) -> Result<Self, String> {
        let mut c = Self::default();
        env.string("CONSUMER_KEY", &mut c.consumer_key);
        env.string("CONSUMER_SECRET", &mut c.consumer_secret);
        env.string("STORE_ID", &mut c.store_id);
        env.string("API_KEY", &mut c.api_key);
        env.opt_string("CALLBACK_URL", &mut c.callback_url);
        env.choice("HASH", &mut c.hash, "md5, sha256 or sha1")?;
        env.bool("CALLBACK_NUMBERS", &mut c.callback_numbers)?;
        env.choice(
            "CALLBACK_FIELD",
            &mut c.callback_field,
            "invoice or account",
        )?;
        env.parse("DUPLICATE_CALLBACKS", &mut c.duplicate_callbacks)?;
        env.parse("CALLBACK_DELAY_MS", &mut c.callback_delay_ms)?;
        env.parse("TOKEN_TTL_SECS", &mut c.token_ttl_secs)?;
        env.parse("LATENCY_MS", &mut c.latency_ms)?;
        env.parse("ERROR_RATE", &mut c.error_rate)?;
        env.bool("AUTOPAY", &mut c.autopay)?;
        env.parse("AUTOPAY_DELAY_MS", &mut c.autopay_delay_ms)?;
        env.bool("WRONG_AMOUNT", &mut c.wrong_amount)?;
        env.bool("BAD_SIGNATURE", &mut c.bad_signature)?;
        c.validated().map_err(|e| env.context(e))
    }
}
