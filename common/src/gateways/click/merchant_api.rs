//! Client for the Click Merchant API calls paygate makes
//! (docs/gateways/click.md, "Merchant API"): payment status and payment
//! reversal (the refund Click's docs prescribe when fulfilment fails after a
//! successful Complete).
//!
//! ```text
//! GET    {base}/payment/status/{service_id}/{payment_id}
//! DELETE {base}/payment/reversal/{service_id}/{payment_id}
//! Auth: {merchant_user_id}:{sha1(timestamp ‖ secret_key)}:{timestamp}
//! ```
//!
//! `base` is `https://api.click.uz/v2/merchant`; `payment_id` is Click's
//! `click_paydoc_id` from Prepare/Complete. Replies are JSON with
//! `error_code` (0 = success) and `error_note`; status replies add
//! `payment_status` (<0 error, 0 created, 1 processing, 2 successful).
//!
//! Errors: no answer, HTTP 5xx/429 and an unreadable 200 are retryable; HTTP
//! 401 (`click_unauthorized`), 403 (`click_forbidden`), 404
//! (`click_not_found`), other 4xx (`click_bad_request`) and a non-zero
//! `error_code` (`click_error_<n>` for code -n) are permanent. Click documents
//! no `error_code` as "try again", so none is retried. The secret and the
//! `Auth` digest never appear in errors or logs.

use super::super::http::{client, observe, status_error, transport_error};
use super::super::GatewayError;
use serde_json::Value;
use sha1::{Digest, Sha1};
use std::fmt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const PROVIDER: &str = "click";

#[derive(Clone)]
pub struct MerchantApiConfig {
    /// e.g. `https://api.click.uz/v2/merchant` (a trailing slash is fine).
    pub base_url: String,
    pub service_id: i64,
    pub merchant_user_id: String,
    pub secret_key: String,
    pub timeout: Duration,
}

impl fmt::Debug for MerchantApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MerchantApiConfig")
            .field("base_url", &self.base_url)
            .field("service_id", &self.service_id)
            .field("merchant_user_id", &self.merchant_user_id)
            .field("secret_key", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The `Auth` header value for `timestamp` (Unix seconds).
pub fn auth_header(merchant_user_id: &str, secret_key: &str, timestamp: u64) -> String {
    let digest = Sha1::digest(format!("{timestamp}{secret_key}").as_bytes());
    format!("{merchant_user_id}:{}:{timestamp}", hex::encode(digest))
}

/// A Click payment's `payment_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClickPaymentStatus {
    Created,
    Processing,
    Successful,
    /// Negative: failed, cancelled or reversed (the code says which).
    Failed {
        code: i64,
    },
}

impl ClickPaymentStatus {
    fn from_code(code: i64) -> Option<Self> {
        match code {
            c if c < 0 => Some(ClickPaymentStatus::Failed { code: c }),
            0 => Some(ClickPaymentStatus::Created),
            1 => Some(ClickPaymentStatus::Processing),
            2 => Some(ClickPaymentStatus::Successful),
            _ => None,
        }
    }
}

pub struct ClickMerchantApi {
    cfg: MerchantApiConfig,
    http: reqwest::Client,
}

impl fmt::Debug for ClickMerchantApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClickMerchantApi")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// A number or a numeric string (Click's ids are `bigint`; some replies quote them).
fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn unreadable() -> GatewayError {
    GatewayError::retryable("Click answered a body that is not its JSON")
}

impl ClickMerchantApi {
    pub fn new(cfg: MerchantApiConfig) -> Result<Self, crate::gateways::http::ClientSetupError> {
        let http = client(cfg.timeout)?;
        Ok(ClickMerchantApi { cfg, http })
    }

    fn url(&self, operation: &str, payment_id: i64) -> String {
        format!(
            "{}/payment/{operation}/{}/{payment_id}",
            self.cfg.base_url.trim_end_matches('/'),
            self.cfg.service_id
        )
    }

    /// Sends one signed call and returns the reply body once `error_code` is 0.
    async fn call(&self, method: reqwest::Method, url: String) -> Result<Value, GatewayError> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let auth = auth_header(&self.cfg.merchant_user_id, &self.cfg.secret_key, timestamp);
        let resp = self
            .http
            .request(method, url)
            .header("Auth", auth)
            .header(reqwest::header::ACCEPT, "application/json")
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        match resp.status().as_u16() {
            200 | 201 => {}
            401 => return Err(permanent_http("click_unauthorized", 401)),
            403 => return Err(permanent_http("click_forbidden", 403)),
            404 => return Err(permanent_http("click_not_found", 404)),
            _ => return Err(status_error(&resp, "click_bad_request")),
        }
        let body: Value = resp.json().await.map_err(|_| unreadable())?;
        let code = int(body.get("error_code")).ok_or_else(unreadable)?;
        if code != 0 {
            let note: String = body
                .get("error_note")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect();
            return Err(GatewayError::permanent(
                format!("click_error_{}", code.unsigned_abs()),
                format!("Click error_code {code}: {note}"),
            ));
        }
        Ok(body)
    }

    /// `payment_status` of Click payment `payment_id` (`click_paydoc_id`).
    pub async fn payment_status(
        &self,
        payment_id: i64,
    ) -> Result<ClickPaymentStatus, GatewayError> {
        let started = Instant::now();
        let result = async {
            let body = self
                .call(reqwest::Method::GET, self.url("status", payment_id))
                .await?;
            int(body.get("payment_status"))
                .and_then(ClickPaymentStatus::from_code)
                .ok_or_else(unreadable)
        }
        .await;
        observe(PROVIDER, "payment_status", started, &result);
        result
    }

    /// Reverses (refunds) Click payment `payment_id`; `Ok` once Click accepted it.
    pub async fn reverse_payment(&self, payment_id: i64) -> Result<(), GatewayError> {
        let started = Instant::now();
        let result = self
            .call(reqwest::Method::DELETE, self.url("reversal", payment_id))
            .await
            .map(|_| ());
        observe(PROVIDER, "reverse_payment", started, &result);
        result
    }
}

fn permanent_http(reason: &str, status: u16) -> GatewayError {
    GatewayError::permanent(reason, format!("Click answered HTTP {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_matches_the_docs_shape() {
        // sha1("1519051543" + "secret"), computed independently with `sha1sum`.
        let h = auth_header("123", "secret", 1_519_051_543);
        assert_eq!(h, "123:342712d77c0fe30bfe18e34b81dcb1833feb485e:1519051543");
    }

    #[test]
    fn statuses() {
        assert_eq!(
            ClickPaymentStatus::from_code(2),
            Some(ClickPaymentStatus::Successful)
        );
        assert_eq!(
            ClickPaymentStatus::from_code(1),
            Some(ClickPaymentStatus::Processing)
        );
        assert_eq!(
            ClickPaymentStatus::from_code(0),
            Some(ClickPaymentStatus::Created)
        );
        assert_eq!(
            ClickPaymentStatus::from_code(-5017),
            Some(ClickPaymentStatus::Failed { code: -5017 })
        );
        assert_eq!(ClickPaymentStatus::from_code(3), None);
    }

    #[test]
    fn ids_as_numbers_or_text() {
        assert_eq!(int(Some(&serde_json::json!(5))), Some(5));
        assert_eq!(
            int(Some(&serde_json::json!("598761234"))),
            Some(598_761_234)
        );
        assert_eq!(int(Some(&serde_json::json!(null))), None);
        assert_eq!(int(None), None);
    }

    #[test]
    fn config_debug_hides_the_secret() {
        let cfg = MerchantApiConfig {
            base_url: "https://api.click.uz/v2/merchant".into(),
            service_id: 1,
            merchant_user_id: "2".into(),
            secret_key: "top-secret".into(),
            timeout: Duration::from_secs(1),
        };
        assert!(!format!("{cfg:?}").contains("top-secret"));
    }
}
