//! Atmos (Uzbekistan, UzCard/Humo acquiring), docs/gateways/atmos.md.
//!
//! Flow: an OAuth2 client-credentials token (`POST /token`), then
//! `POST /merchant/pay/create` for a draft transaction, the payer pays on the
//! hosted checkout (`{checkout_base}/invoice/get?...`), Atmos POSTs a signed
//! callback to the store's configured URL (see [`sign`] / [`verify_sign`]),
//! and we confirm server to server with `POST /merchant/pay/get`.
//!
//! Business errors arrive as HTTP 200 with `result.code != "OK"`
//! (`STPIMS-ERR-NNN`). Their meanings are low-confidence
//! (docs/gateways/atmos.md, 'Result envelope and error codes'); the mapping
//! used here ([`result_error`]) is:
//!
//! | code | meaning (as far as known) | error |
//! |---|---|---|
//! | STPIMS-ERR-001 | bad request (one mock calls it "internal error") | permanent `atmos_bad_request` |
//! | STPIMS-ERR-003 | unknown store | permanent `atmos_unknown_store` |
//! | STPIMS-ERR-012 | bad amount | permanent `atmos_invalid_amount` |
//! | STPIMS-ERR-014 | bad account | permanent `atmos_invalid_account` |
//! | STPIMS-ERR-044 | wrong OTP | permanent `atmos_wrong_otp` |
//! | STPIMS-ERR-061 | transaction not found | permanent `atmos_transaction_not_found` |
//! | STPIMS-ERR-092 | transaction closed | permanent `atmos_transaction_closed` (but `verify` reads it as NotPaid, `reverse` as done) |
//! | STPIMS-ERR-093 | transaction not confirmed | permanent `atmos_not_confirmed` |
//! | anything else | unknown | permanent `atmos_<code in snake_case>`, e.g. `atmos_stpims_err_098` |
//!
//! No known business code means "try again", so none is retryable. Transport
//! failures, timeouts, HTTP 5xx and 429 are retryable (`http.rs`), as is a
//! 200 whose body is not Atmos's JSON. Other 4xx are permanent
//! (`atmos_forbidden` for 403: IP not whitelisted / API not enabled). Bodies
//! of WSO2 gateway faults (XML `<faultstring>` or `<ams:message>`, or JSON
//! `{"fault":{...}}`) are summarised into the error message.
//!
//! The token is cached for the whole process and fetched single-flight; an
//! HTTP 401 from a business endpoint drops it, refreshes once and retries the
//! call once. Neither the token nor the consumer secret is ever logged or put
//! into an error message.

use crate::domain::Provider;
use crate::gateways::http::{client, observe, status_error, transport_error, ClientSetupError};
use crate::gateways::{
    Gateway, GatewayError, Invoice, InvoiceRequest, Verification, VerifyRequest,
};
use async_trait::async_trait;
use serde_json::{json, Map, Value};
use std::fmt;
use std::time::{Duration, Instant};

const PROVIDER: &str = "atmos";

/// Used when the token reply has no readable `expires_in` (the docs' prose).
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Refresh this long before the token expires (or at half its life if shorter).
const TOKEN_REFRESH_MARGIN: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct AtmosConfig {
    /// e.g. https://partner.atmos.uz or https://apigw.atmos.uz (no trailing slash needed).
    pub api_base: String,
    /// https://checkout.pays.uz or https://test-checkout.pays.uz, see [`AtmosConfig::checkout_base_for`].
    pub checkout_base: String,
    pub consumer_key: String,
    pub consumer_secret: String,
    pub store_id: String,
    pub terminal_id: Option<String>,
    /// `ru`, `uz` or `en`.
    pub lang: String,
    pub timeout: Duration,
}

impl AtmosConfig {
    /// The hosted checkout host for production or test stores
    /// (docs/gateways/atmos.md, 'Hosts and environments').
    pub fn checkout_base_for(test_mode: bool) -> &'static str {
        if test_mode {
            "https://test-checkout.pays.uz"
        } else {
            "https://checkout.pays.uz"
        }
    }
}

impl fmt::Debug for AtmosConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtmosConfig")
            .field("api_base", &self.api_base)
            .field("checkout_base", &self.checkout_base)
            .field("consumer_key", &self.consumer_key)
            .field("consumer_secret", &"<redacted>")
            .field("store_id", &self.store_id)
            .field("terminal_id", &self.terminal_id)
            .field("lang", &self.lang)
            .field("timeout", &self.timeout)
            .finish()
    }
}

struct CachedToken {
    value: String,
    /// After this instant the token is refreshed before use.
    fresh_until: Instant,
}

/// How long a token with lifetime `ttl` is used before it is refreshed.
fn usable_for(ttl: Duration) -> Duration {
    ttl - TOKEN_REFRESH_MARGIN.min(ttl / 2)
}

/// What a business endpoint answered, short of an error.
enum Reply {
    /// HTTP 401: the token expired or was revoked. Carries a fault summary.
    Unauthorized(String),
    Body(Value),
}

pub struct AtmosGateway {
    cfg: AtmosConfig,
    http: reqwest::Client,
    /// Held across the token request, so concurrent jobs share one refresh.
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

impl fmt::Debug for AtmosGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtmosGateway")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl AtmosGateway {
    /// Fails only when the HTTP client cannot be built (see [`ClientSetupError`]).
    pub fn new(cfg: AtmosConfig) -> Result<Self, ClientSetupError> {
        let http = client(cfg.timeout)?;
        Ok(AtmosGateway {
            cfg,
            http,
            token: tokio::sync::Mutex::new(None),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.api_base.trim_end_matches('/'))
    }

    /// A usable token: the cached one unless it is near expiry or is the
    /// `rejected` one a business endpoint just answered 401 to. Only that
    /// exact token is dropped, so N jobs hitting 401 together refresh once.
    async fn token(&self, rejected: Option<&str>) -> Result<String, GatewayError> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref() {
            let is_rejected = rejected.is_some_and(|r| r == t.value);
            if !is_rejected && Instant::now() < t.fresh_until {
                return Ok(t.value.clone());
            }
        }
        *cached = None;
        let fresh = self.fetch_token().await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    async fn fetch_token(&self) -> Result<CachedToken, GatewayError> {
        let started = Instant::now();
        let result = async {
            let resp = self
                .http
                .post(self.url("/token"))
                .basic_auth(&self.cfg.consumer_key, Some(&self.cfg.consumer_secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .map_err(|e| transport_error(&e))?;
            let status = resp.status();
            if matches!(status.as_u16(), 400 | 401 | 403) {
                let body = resp.text().await.unwrap_or_default();
                return Err(GatewayError::permanent(
                    "atmos_auth_failed",
                    format!(
                        "atmos token request answered HTTP {}{}",
                        status.as_u16(),
                        fault_detail(&body)
                    ),
                ));
            }
            if !status.is_success() {
                let err = status_error(&resp, "atmos_token_rejected");
                let body = resp.text().await.unwrap_or_default();
                return Err(append_detail(err, &fault_detail(&body)));
            }
            let received = Instant::now();
            let body = resp.text().await.map_err(|e| transport_error(&e))?;
            let v: Value = serde_json::from_str(&body).map_err(|_| {
                GatewayError::retryable(format!(
                    "atmos token answer is not JSON{}",
                    fault_detail(&body)
                ))
            })?;
            let value = v
                .get("access_token")
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| GatewayError::retryable("atmos token answer has no access_token"))?
                .to_owned();
            let ttl = lenient_i64(v.get("expires_in"))
                .map(|s| Duration::from_secs(s.max(0) as u64))
                .unwrap_or(DEFAULT_TOKEN_TTL);
            Ok(CachedToken {
                value,
                fresh_until: received + usable_for(ttl),
            })
        }
        .await;
        observe(PROVIDER, "token", started, &result);
        if result.is_ok() {
            metrics::counter!("paygate_gateway_token_refreshes_total", "provider" => PROVIDER)
                .increment(1);
            tracing::debug!(provider = PROVIDER, "gateway token refreshed");
        }
        result
    }

    async fn post_json(
        &self,
        path: &str,
        token: &str,
        body: &Value,
    ) -> Result<Reply, GatewayError> {
        let resp = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = resp.status();
        if status.as_u16() == 401 {
            let text = resp.text().await.unwrap_or_default();
            return Ok(Reply::Unauthorized(fault_detail(&text)));
        }
        if !status.is_success() {
            let reason = match status.as_u16() {
                403 => "atmos_forbidden",
                404 => "atmos_endpoint_not_found",
                _ => "atmos_rejected_request",
            };
            let err = status_error(&resp, reason);
            let text = resp.text().await.unwrap_or_default();
            return Err(append_detail(err, &fault_detail(&text)));
        }
        let text = resp.text().await.map_err(|e| transport_error(&e))?;
        match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => Ok(Reply::Body(v)),
            _ => Err(GatewayError::retryable(format!(
                "atmos {path} answered HTTP {} with a body that is not its JSON{}",
                status.as_u16(),
                fault_detail(&text)
            ))),
        }
    }

    /// One business call with the 401 → refresh → retry-once rule. A 401
    /// means the gateway refused the request before acting on it, so the
    /// retry cannot duplicate anything.
    async fn call(&self, path: &str, body: &Value) -> Result<Value, GatewayError> {
        let token = self.token(None).await?;
        match self.post_json(path, &token, body).await? {
            Reply::Body(v) => Ok(v),
            Reply::Unauthorized(_) => {
                tracing::debug!(
                    provider = PROVIDER,
                    path,
                    "gateway answered 401; refreshing the token"
                );
                let token = self.token(Some(&token)).await?;
                match self.post_json(path, &token, body).await? {
                    Reply::Body(v) => Ok(v),
                    Reply::Unauthorized(detail) => Err(GatewayError::permanent(
                        "atmos_unauthorized",
                        format!("atmos {path} answered HTTP 401 with a fresh token{detail}"),
                    )),
                }
            }
        }
    }

    /// Full refund of a confirmed payment (`POST /merchant/pay/reverse`).
    ///
    /// Body variant (a) of docs/gateways/atmos.md, 'Refunds',
    /// `{transaction_id: <success_trans_id>, reason}`: three sources (A8,
    /// A11, A13) key the reverse on the processing id, while (c) is flagged
    /// unverified. When `success_trans_id` is empty,
    /// variant (c) `{transaction_id: <gateway_ref>, store_id, reason}` is sent
    /// instead. `STPIMS-ERR-092` (already closed) counts as done, so a
    /// repeated reverse after a lost reply succeeds.
    pub async fn reverse(
        &self,
        gateway_ref: &str,
        success_trans_id: &str,
        reason: &str,
    ) -> Result<(), GatewayError> {
        let started = Instant::now();
        let result = async {
            let body = if success_trans_id.trim().is_empty() {
                let id = parse_id(gateway_ref).ok_or_else(|| {
                    GatewayError::permanent(
                        "invalid_gateway_ref",
                        "atmos transaction id is not an integer",
                    )
                })?;
                json!({ "transaction_id": id, "store_id": self.cfg.store_id, "reason": reason })
            } else {
                let id = parse_id(success_trans_id).ok_or_else(|| {
                    GatewayError::permanent(
                        "invalid_trans_id",
                        "atmos success_trans_id is not an integer",
                    )
                })?;
                json!({ "transaction_id": id, "reason": reason })
            };
            let v = self.call("/merchant/pay/reverse", &body).await?;
            let (code, description) = result_code(&v)?;
            match code.as_str() {
                "OK" => Ok(()),
                CODE_CLOSED => {
                    tracing::info!(
                        provider = PROVIDER,
                        gateway_ref,
                        "reverse: transaction already closed"
                    );
                    Ok(())
                }
                _ => Err(result_error(&code, &description)),
            }
        }
        .await;
        observe(PROVIDER, "reverse", started, &result);
        result
    }

    fn payment_url(&self, transaction_id: &str, callback_url: &str) -> String {
        let mut url = format!(
            "{}/invoice/get?storeId={}&transactionId={}",
            self.cfg.checkout_base.trim_end_matches('/'),
            encode(&self.cfg.store_id),
            transaction_id
        );
        if !callback_url.is_empty() {
            url.push_str("&redirectLink=");
            url.push_str(&encode(callback_url));
        }
        url
    }
}

#[async_trait]
impl Gateway for AtmosGateway {
    fn provider(&self) -> Provider {
        Provider::Atmos
    }

    async fn create_invoice(&self, req: &InvoiceRequest) -> Result<Invoice, GatewayError> {
        let started = Instant::now();
        let result = async {
            if req.account.is_empty() || !req.account.bytes().all(|b| b.is_ascii_digit()) {
                return Err(GatewayError::permanent(
                    "invalid_account",
                    "atmos account must be digits only",
                ));
            }
            let mut body = Map::new();
            body.insert("amount".into(), json!(req.amount.minor()));
            body.insert("account".into(), json!(req.account));
            body.insert("store_id".into(), json!(self.cfg.store_id));
            if let Some(t) = self.cfg.terminal_id.as_deref().filter(|t| !t.is_empty()) {
                body.insert("terminal_id".into(), json!(t));
            }
            body.insert("lang".into(), json!(self.cfg.lang));
            let v = self
                .call("/merchant/pay/create", &Value::Object(body))
                .await?;
            let (code, description) = result_code(&v)?;
            if code != "OK" {
                return Err(result_error(&code, &description));
            }
            let id = lenient_i64(v.get("transaction_id"))
                .filter(|id| *id > 0)
                .ok_or_else(|| {
                    GatewayError::retryable("atmos create answered OK without a transaction_id")
                })?
                .to_string();
            Ok(Invoice {
                payment_url: self.payment_url(&id, &req.callback_url),
                gateway_ref: Some(id),
            })
        }
        .await;
        observe(PROVIDER, "create_invoice", started, &result);
        result
    }

    async fn verify(&self, req: &VerifyRequest) -> Result<Verification, GatewayError> {
        let started = Instant::now();
        let result = async {
            let id = parse_id(&req.gateway_ref).ok_or_else(|| {
                GatewayError::permanent(
                    "invalid_gateway_ref",
                    "atmos transaction id is not an integer",
                )
            })?;
            let v = self
                .call(
                    "/merchant/pay/get",
                    &json!({ "store_id": self.cfg.store_id, "transaction_id": id }),
                )
                .await?;
            parse_get(&v)
        }
        .await;
        observe(PROVIDER, "verify", started, &result);
        result
    }
}

const CODE_CLOSED: &str = "STPIMS-ERR-092";

/// Maps a non-"OK" `result.code` (see the table in the module docs).
pub fn result_error(code: &str, description: &str) -> GatewayError {
    let reason = match code {
        "STPIMS-ERR-001" => "atmos_bad_request".to_owned(),
        "STPIMS-ERR-003" => "atmos_unknown_store".to_owned(),
        "STPIMS-ERR-012" => "atmos_invalid_amount".to_owned(),
        "STPIMS-ERR-014" => "atmos_invalid_account".to_owned(),
        "STPIMS-ERR-044" => "atmos_wrong_otp".to_owned(),
        "STPIMS-ERR-061" => "atmos_transaction_not_found".to_owned(),
        CODE_CLOSED => "atmos_transaction_closed".to_owned(),
        "STPIMS-ERR-093" => "atmos_not_confirmed".to_owned(),
        other => format!("atmos_{}", snake(other)),
    };
    GatewayError::permanent(
        reason,
        format!("atmos answered {}: {}", clip(code), clip(description)),
    )
}

/// `result.code` and `result.description`; no envelope means the answer is
/// not Atmos's (a proxy page, say), which is worth another try.
fn result_code(v: &Value) -> Result<(String, String), GatewayError> {
    let result = v.get("result");
    let code = lenient_text(result.and_then(|r| r.get("code")))
        .filter(|c| !c.is_empty())
        .ok_or_else(|| GatewayError::retryable("atmos answer has no result.code"))?;
    let description = lenient_text(result.and_then(|r| r.get("description"))).unwrap_or_default();
    Ok((code, description))
}

/// Reads `/merchant/pay/get`. Paid only when `confirmed` is true and
/// `status_code`/`status_message`, when present, say "0"/"Success".
fn parse_get(v: &Value) -> Result<Verification, GatewayError> {
    let (code, description) = result_code(v)?;
    let txn = v.get("store_transaction").filter(|t| t.is_object());
    let status_code = txn.and_then(|t| lenient_text(t.get("status_code")));
    let status_message = txn.and_then(|t| lenient_text(t.get("status_message")));
    let is_code = |c: &str| status_code.as_deref() == Some(c);
    let is_message = |ms: &[&str]| {
        status_message
            .as_deref()
            .is_some_and(|m| ms.iter().any(|x| m.eq_ignore_ascii_case(x)))
    };
    let cancelled = is_code("-20") || is_message(&["canceled", "cancelled"]);
    let declined = is_code("-1") || is_message(&["declined", "rejected"]);
    let not_paid = |reason: &str| Verification::NotPaid {
        reason: reason.to_owned(),
    };
    match code.as_str() {
        "OK" => {
            let Some(t) = txn else {
                return Err(GatewayError::retryable(
                    "atmos get answered OK without store_transaction",
                ));
            };
            if cancelled {
                return Ok(not_paid("cancelled"));
            }
            if declined {
                return Ok(not_paid("declined"));
            }
            let confirmed = lenient_bool(t.get("confirmed")).unwrap_or(false);
            let code_ok = status_code.as_deref().is_none_or(|c| c == "0");
            let message_ok = status_message
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case("success"));
            if !(confirmed && code_ok && message_ok) {
                return Ok(Verification::Pending);
            }
            let amount = lenient_i64(t.get("amount")).ok_or_else(|| {
                GatewayError::permanent(
                    "verification_amount_missing",
                    "atmos confirmed payment without a readable amount",
                )
            })?;
            Ok(Verification::Paid {
                amount,
                trans_id: lenient_text(t.get("success_trans_id")).filter(|s| !s.is_empty()),
                repeated: false,
            })
        }
        // Closed: reversed, cancelled or declined. The transaction, when
        // shown, tells a decline apart; otherwise it counts as cancelled.
        CODE_CLOSED if declined && !cancelled => Ok(not_paid("declined")),
        CODE_CLOSED => Ok(not_paid("cancelled")),
        _ => Err(result_error(&code, &description)),
    }
}

/// A JSON integer, an integral float, or a string holding one.
fn lenient_i64(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        Value::String(s) => {
            let s = s.trim();
            s.parse::<i64>().ok().or_else(|| {
                // "5000000.00"
                let (int, frac) = s.split_once('.')?;
                frac.bytes()
                    .all(|b| b == b'0')
                    .then(|| int.parse::<i64>().ok())
                    .flatten()
            })
        }
        _ => None,
    }
}

/// A JSON string (trimmed), number or bool as text; null and the rest: none.
fn lenient_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn lenient_bool(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A positive id given as digits.
fn parse_id(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Percent-encodes a query value. Spaces become `%20`, not `+`, because
/// some checkout parsers percent-decode without treating `+` as a space.
fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// `STPIMS-ERR-098` → `stpims_err_098`.
fn snake(code: &str) -> String {
    let mut out = String::new();
    for c in code.trim().chars().take(64) {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_');
    if out.is_empty() {
        "unknown".to_owned()
    } else {
        out.to_owned()
    }
}

/// At most 200 characters of printable text, for error messages.
fn clip(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect::<String>()
        .trim()
        .to_owned()
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let end = s[start..].find(close)? + start;
    Some(&s[start..end])
}

/// A short `": <text>"` describing a gateway fault body, or "" when the body
/// says nothing useful. Reads WSO2 XML (`<faultstring>`, `<ams:message>`,
/// `<ams:description>`), OAuth JSON (`error_description`/`error`) and WSO2
/// JSON (`fault.message`/`fault.description`).
fn fault_detail(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    let mut parts: Vec<String> = Vec::new();
    if body.starts_with('<') {
        for (open, close) in [
            ("<faultstring>", "</faultstring>"),
            ("<ams:message>", "</ams:message>"),
            ("<ams:description>", "</ams:description>"),
        ] {
            if let Some(text) = between(body, open, close) {
                parts.push(text.to_owned());
            }
        }
    } else if let Ok(v) = serde_json::from_str::<Value>(body) {
        let fault = v.get("fault");
        for field in [
            fault.and_then(|f| f.get("message")),
            fault.and_then(|f| f.get("description")),
            v.get("error"),
            v.get("error_description"),
        ] {
            if let Some(text) = field.and_then(Value::as_str) {
                parts.push(text.to_owned());
            }
        }
    }
    let text = clip(&parts.join("; "));
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

fn append_detail(err: GatewayError, detail: &str) -> GatewayError {
    if detail.is_empty() {
        return err;
    }
    match err {
        GatewayError::Retryable {
            message,
            retry_after,
        } => GatewayError::Retryable {
            message: format!("{message}{detail}"),
            retry_after,
        },
        GatewayError::Permanent { reason, message } => GatewayError::Permanent {
            reason,
            message: format!("{message}{detail}"),
        },
    }
}

// ---------------------------------------------------------------------------
// Callback signature (docs/gateways/atmos.md, 'Signature rule')
// ---------------------------------------------------------------------------

/// Hash of the callback `sign`. Atmos' docs never name it
/// (docs/gateways/atmos.md, 'Open questions', 1): md5 is the majority
/// reading, sha256 and sha1 are seen too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignAlgorithm {
    Md5,
    Sha256,
    Sha1,
}

impl SignAlgorithm {
    /// `md5`, `sha256`/`sha-256`, `sha1`/`sha-1`, any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "md5" => Some(SignAlgorithm::Md5),
            "sha256" | "sha-256" => Some(SignAlgorithm::Sha256),
            "sha1" | "sha-1" => Some(SignAlgorithm::Sha1),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SignAlgorithm::Md5 => "md5",
            SignAlgorithm::Sha256 => "sha256",
            SignAlgorithm::Sha1 => "sha1",
        }
    }
}

impl fmt::Display for SignAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lowercase hex of HASH(store_id ‖ transaction_id ‖ invoice ‖ amount ‖ api_key),
/// over the raw texts exactly as they arrived in the callback.
pub fn sign(
    store_id: &str,
    transaction_id: &str,
    invoice: &str,
    amount: &str,
    api_key: &str,
    alg: SignAlgorithm,
) -> String {
    use sha2::Digest;
    let input = format!("{store_id}{transaction_id}{invoice}{amount}{api_key}");
    match alg {
        SignAlgorithm::Md5 => hex::encode(md5::Md5::digest(input.as_bytes())),
        SignAlgorithm::Sha256 => hex::encode(sha2::Sha256::digest(input.as_bytes())),
        SignAlgorithm::Sha1 => hex::encode(sha1::Sha1::digest(input.as_bytes())),
    }
}

/// Checks `provided` (hex, any case) against each of `algs` in constant time
/// and returns the first algorithm that matches. Every listed algorithm is
/// computed and compared, match or not.
#[allow(clippy::too_many_arguments)]
pub fn verify_sign(
    store_id: &str,
    transaction_id: &str,
    invoice: &str,
    amount: &str,
    api_key: &str,
    provided: &str,
    algs: &[SignAlgorithm],
) -> Option<SignAlgorithm> {
    use subtle::ConstantTimeEq;
    let provided = provided.trim().to_ascii_lowercase();
    let mut matched = None;
    for &alg in algs {
        let expected = sign(store_id, transaction_id, invoice, amount, api_key, alg);
        let equal: bool = expected.as_bytes().ct_eq(provided.as_bytes()).into();
        if equal && matched.is_none() {
            matched = Some(alg);
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD5: &str = "f2561258ec213cc7ff8bc4ca50868cf7";
    const SHA256: &str = "b0965a223e4070c756ce7d8e39554f127dbf4dc5009a73241de01458dc12a0c8";

    fn vector(alg: SignAlgorithm) -> String {
        sign("8157", "123456789", "197", "5000000", "TEST_API_KEY", alg)
    }

    fn check(provided: &str, algs: &[SignAlgorithm]) -> Option<SignAlgorithm> {
        verify_sign(
            "8157",
            "123456789",
            "197",
            "5000000",
            "TEST_API_KEY",
            provided,
            algs,
        )
    }

    #[test]
    fn sign_vectors() {
        assert_eq!(vector(SignAlgorithm::Md5), MD5);
        assert_eq!(vector(SignAlgorithm::Sha256), SHA256);
        let sha1 = vector(SignAlgorithm::Sha1);
        assert_eq!(sha1.len(), 40);
        assert!(sha1
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }

    #[test]
    fn verify_sign_reports_the_matching_algorithm() {
        use SignAlgorithm::*;
        assert_eq!(check(MD5, &[Md5]), Some(Md5));
        assert_eq!(check(SHA256, &[Md5, Sha256, Sha1]), Some(Sha256));
        assert_eq!(check(&MD5.to_uppercase(), &[Md5]), Some(Md5));
        assert_eq!(check(SHA256, &[Md5]), None, "sha256 not enabled");
        assert_eq!(check(&vector(Sha1), &[Md5, Sha1]), Some(Sha1));
        assert_eq!(check("", &[Md5, Sha256, Sha1]), None);
        assert_eq!(check(&MD5[..31], &[Md5]), None);
        assert_eq!(check(MD5, &[]), None);
        assert_eq!(
            verify_sign(
                "8157",
                "123456789",
                "197",
                "5000001",
                "TEST_API_KEY",
                MD5,
                &[Md5]
            ),
            None
        );
    }

    #[test]
    fn algorithm_names() {
        assert_eq!(SignAlgorithm::parse(" MD5 "), Some(SignAlgorithm::Md5));
        assert_eq!(SignAlgorithm::parse("sha-256"), Some(SignAlgorithm::Sha256));
        assert_eq!(SignAlgorithm::parse("sha1"), Some(SignAlgorithm::Sha1));
        assert_eq!(SignAlgorithm::parse("crc32"), None);
        for alg in [
            SignAlgorithm::Md5,
            SignAlgorithm::Sha256,
            SignAlgorithm::Sha1,
        ] {
            assert_eq!(SignAlgorithm::parse(alg.as_str()), Some(alg));
        }
    }

    fn reason(e: GatewayError) -> String {
        match e {
            GatewayError::Permanent { reason, .. } => reason,
            other => panic!("expected permanent, got {other:?}"),
        }
    }

    #[test]
    fn result_codes_map_to_permanent_reasons() {
        assert_eq!(
            reason(result_error("STPIMS-ERR-003", "x")),
            "atmos_unknown_store"
        );
        assert_eq!(
            reason(result_error("STPIMS-ERR-014", "x")),
            "atmos_invalid_account"
        );
        assert_eq!(
            reason(result_error("STPIMS-ERR-098", "x")),
            "atmos_stpims_err_098"
        );
        assert_eq!(reason(result_error("-999998", "x")), "atmos_999998");
        assert_eq!(reason(result_error("  ", "x")), "atmos_unknown");
    }

    #[test]
    fn token_lifetime_keeps_a_margin() {
        assert_eq!(
            usable_for(Duration::from_secs(3600)),
            Duration::from_secs(3540)
        );
        assert_eq!(usable_for(Duration::from_secs(60)), Duration::from_secs(30));
        assert_eq!(usable_for(Duration::ZERO), Duration::ZERO);
    }

    fn get(v: Value) -> Result<Verification, GatewayError> {
        parse_get(&v)
    }

    #[test]
    fn get_paid_reads_strings_and_numbers() {
        let paid = get(json!({"result":{"code":"OK","description":"No errors"},
            "store_transaction":{"trans_id":1,"success_trans_id":987654,"amount":5000000,
            "confirmed":true,"status_code":"0","status_message":"Success"}}));
        assert_eq!(
            paid,
            Ok(Verification::Paid {
                amount: 5_000_000,
                trans_id: Some("987654".into()),
                repeated: false
            })
        );
        let stringy = get(json!({"result":{"code":"OK"},
            "store_transaction":{"success_trans_id":"987654","amount":"5000000.00","confirmed":"true"}}));
        assert_eq!(
            stringy,
            Ok(Verification::Paid {
                amount: 5_000_000,
                trans_id: Some("987654".into()),
                repeated: false
            })
        );
        assert!(matches!(
            get(json!({"result":{"code":"OK"},"store_transaction":{"confirmed":true}})),
            Err(GatewayError::Permanent { .. })
        ));
    }

    #[test]
    fn get_pending_declined_cancelled() {
        let not_paid = |r: &str| {
            Ok(Verification::NotPaid {
                reason: r.to_owned(),
            })
        };
        assert_eq!(
            get(
                json!({"result":{"code":"OK"},"store_transaction":{"confirmed":false,"status_code":"1","status_message":"Pending","amount":5}})
            ),
            Ok(Verification::Pending)
        );
        assert_eq!(
            get(
                json!({"result":{"code":"OK"},"store_transaction":{"confirmed":true,"status_code":"7","amount":5}})
            ),
            Ok(Verification::Pending),
            "confirmed but not Success"
        );
        assert_eq!(
            get(
                json!({"result":{"code":"OK"},"store_transaction":{"confirmed":true,"status_code":"-20","status_message":"Canceled","amount":5}})
            ),
            not_paid("cancelled")
        );
        assert_eq!(
            get(json!({"result":{"code":"STPIMS-ERR-092","description":"Транзакция закрыта"}})),
            not_paid("cancelled")
        );
        assert_eq!(
            get(
                json!({"result":{"code":"STPIMS-ERR-092"},"store_transaction":{"confirmed":false,"status_code":"-1","status_message":"Declined"}})
            ),
            not_paid("declined")
        );
        assert_eq!(
            get(
                json!({"result":{"code":"OK"},"store_transaction":{"confirmed":false,"status_code":-1}})
            ),
            not_paid("declined")
        );
        assert!(matches!(
            get(json!({"result":{"code":"STPIMS-ERR-061"}})),
            Err(GatewayError::Permanent { reason, .. }) if reason == "atmos_transaction_not_found"
        ));
        assert!(matches!(
            get(json!({"oops":1})),
            Err(GatewayError::Retryable { .. })
        ));
    }

    #[test]
    fn fault_bodies_are_summarised() {
        let xml = r#"<soapenv:Envelope><soapenv:Body><soapenv:Fault><faultcode>soapenv:Server</faultcode><faultstring>Runtime Error</faultstring></soapenv:Fault></soapenv:Body></soapenv:Envelope>"#;
        assert_eq!(fault_detail(xml), ": Runtime Error");
        let ams = r#"<ams:fault xmlns:ams="http://wso2.org/apimanager/security"><ams:code>900901</ams:code><ams:message>Invalid Credentials</ams:message><ams:description>Access failure</ams:description></ams:fault>"#;
        assert_eq!(fault_detail(ams), ": Invalid Credentials; Access failure");
        assert_eq!(
            fault_detail(r#"{"fault":{"code":900901,"message":"Invalid Credentials"}}"#),
            ": Invalid Credentials"
        );
        assert_eq!(fault_detail("<html><faultstring>"), "");
        assert_eq!(fault_detail(""), "");
        assert_eq!(fault_detail("Internal Server Error"), "");
    }

    #[test]
    fn lenient_numbers() {
        assert_eq!(lenient_i64(Some(&json!(" 42 "))), Some(42));
        assert_eq!(lenient_i64(Some(&json!(42.0))), Some(42));
        assert_eq!(lenient_i64(Some(&json!("42.50"))), None);
        assert_eq!(lenient_i64(Some(&json!(null))), None);
        assert_eq!(parse_id("123"), Some(123));
        assert_eq!(parse_id("-1"), None);
        assert_eq!(parse_id("12a"), None);
    }

    fn gateway() -> AtmosGateway {
        AtmosGateway::new(AtmosConfig {
            api_base: "http://127.0.0.1:9/".into(),
            checkout_base: AtmosConfig::checkout_base_for(true).into(),
            consumer_key: "key".into(),
            consumer_secret: "very-secret".into(),
            store_id: "8157".into(),
            terminal_id: None,
            lang: "ru".into(),
            timeout: Duration::from_secs(1),
        })
        .expect("HTTP client")
    }

    #[test]
    fn payment_url_and_debug() {
        let g = gateway();
        assert_eq!(
            g.payment_url("123", "https://shop.example/r?o=1&p=a b"),
            "https://test-checkout.pays.uz/invoice/get?storeId=8157&transactionId=123\
&redirectLink=https%3A%2F%2Fshop.example%2Fr%3Fo%3D1%26p%3Da%20b"
        );
        assert_eq!(
            g.payment_url("123", ""),
            "https://test-checkout.pays.uz/invoice/get?storeId=8157&transactionId=123"
        );
        assert_eq!(g.url("/token"), "http://127.0.0.1:9/token");
        assert!(!format!("{g:?}").contains("very-secret"));
        assert_eq!(
            AtmosConfig::checkout_base_for(false),
            "https://checkout.pays.uz"
        );
    }
}
