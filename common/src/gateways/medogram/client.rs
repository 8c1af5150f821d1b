//! medogram speaks the bitpay.ir protocol (docs/gateways/medogram.md):
//! `gateway-send` answers a bare integer (id_get > 0, or an error code ≤ 0);
//! the payer pays at `gateway-{id_get}-get`; `gateway-result-second` with
//! `json=1` says whether the money moved. There is no signature: the API key
//! and the server-to-server verification are the security.

use crate::domain::Provider;
use crate::gateways::http::{client, observe, status_error, transport_error, ClientSetupError};
use crate::gateways::{
    Gateway, GatewayError, Invoice, InvoiceRequest, Verification, VerifyRequest,
};
use async_trait::async_trait;
use serde::Deserialize;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct MedogramConfig {
    /// `PAYMENT_GATEWAY_URL`, e.g. https://api.medogram.ir (no trailing slash).
    pub base_url: String,
    /// `PAYMENT_API_KEY`.
    pub api_key: String,
    /// Use the `/payment-test/` endpoints instead of `/payment/`.
    pub test_mode: bool,
    /// Payment page as `gateway-{id}-get` (official samples) or `gateway-{id}` (older ones).
    pub page_suffix_get: bool,
    pub timeout: Duration,
}

pub struct MedogramGateway {
    cfg: MedogramConfig,
    http: reqwest::Client,
}

impl MedogramGateway {
    /// Fails only when the HTTP client cannot be built (see [`ClientSetupError`]).
    pub fn new(cfg: MedogramConfig) -> Result<Self, ClientSetupError> {
        let http = client(cfg.timeout)?;
        Ok(MedogramGateway { cfg, http })
    }

    fn endpoint(&self, name: &str) -> String {
        let prefix = if self.cfg.test_mode {
            "payment-test"
        } else {
            "payment"
        };
        format!(
            "{}/{prefix}/{name}",
            self.cfg.base_url.trim_end_matches('/')
        )
    }

    async fn post_form(&self, name: &str, form: &[(&str, &str)]) -> Result<String, GatewayError> {
        let resp = self
            .http
            .post(self.endpoint(name))
            .form(form)
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        if !resp.status().is_success() {
            return Err(status_error(&resp, "gateway_rejected_request"));
        }
        resp.text().await.map_err(|e| transport_error(&e))
    }
}

/// Meaning of `gateway-send`'s error codes. -5 ("error connecting to the
/// gateway, try again") is the only retryable one.
pub fn send_error(code: i64) -> GatewayError {
    match code {
        -1 => GatewayError::permanent(
            "gateway_invalid_api_key",
            "gateway-send -1: API key mismatch",
        ),
        -2 => GatewayError::permanent(
            "gateway_invalid_amount",
            "gateway-send -2: amount not numeric or below 1000 rial",
        ),
        -3 => GatewayError::permanent(
            "gateway_missing_redirect",
            "gateway-send -3: redirect is empty",
        ),
        -4 => GatewayError::permanent(
            "gateway_not_found",
            "gateway-send -4: no gateway matches or it is awaiting approval",
        ),
        -5 => GatewayError::retryable("gateway-send -5: gateway connection error"),
        other => GatewayError::permanent(
            "gateway_unknown_error",
            format!("gateway-send answered unexpected code {other}"),
        ),
    }
}

#[derive(Debug, Deserialize)]
struct ResultSecond {
    status: i64,
    #[serde(default)]
    amount: Option<serde_json::Value>,
}

/// Reads `gateway-result-second`'s JSON. `amount` may be a number or a
/// numeric string (both are seen in the wild).
pub fn parse_verification(body: &str) -> Result<Verification, GatewayError> {
    let body = body.trim();
    // Without json=1 the answer is the bare status; some deployments ignore the flag.
    let parsed: ResultSecond = match body.parse::<i64>() {
        Ok(status) => ResultSecond {
            status,
            amount: None,
        },
        Err(_) => serde_json::from_str(body).map_err(|_| {
            GatewayError::retryable("gateway-result-second answered something that is not its JSON")
        })?,
    };
    match parsed.status {
        1 | 11 => {
            let amount = match parsed.amount {
                Some(serde_json::Value::Number(n)) => n.as_i64(),
                Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| {
                GatewayError::permanent(
                    "verification_amount_missing",
                    "gateway confirmed payment without a readable amount",
                )
            })?;
            Ok(Verification::Paid {
                amount,
                trans_id: None,
                repeated: parsed.status == 11,
            })
        }
        // "No such transaction, or it did not succeed": about the trans_id
        // the callback named, which anyone can make up (the id_get is in the
        // payment URL). It cannot end the invoice (docs/expiry.md).
        -4 => Ok(Verification::Unconfirmed {
            reason: "not_paid".into(),
        }),
        -1 => Err(GatewayError::permanent(
            "gateway_invalid_api_key",
            "gateway-result-second -1: API key mismatch",
        )),
        // The trans_id came from a callback: a malformed one is the caller's
        // fault, not the invoice's.
        -2 => Ok(Verification::Unconfirmed {
            reason: "invalid_trans_id".into(),
        }),
        -3 => Err(GatewayError::permanent(
            "invalid_id_get",
            "gateway-result-second -3: id_get is not valid",
        )),
        other => Err(GatewayError::permanent(
            "verification_unknown_status",
            format!("gateway-result-second answered unexpected status {other}"),
        )),
    }
}

#[async_trait]
impl Gateway for MedogramGateway {
    fn provider(&self) -> Provider {
        Provider::Medogram
    }

    async fn create_invoice(&self, req: &InvoiceRequest) -> Result<Invoice, GatewayError> {
        let started = Instant::now();
        let amount = req.amount.minor().to_string();
        let factor = req.payment_id.to_string();
        let name = req.payer.name.clone().unwrap_or_default();
        let email = req.payer.email.clone().unwrap_or_default();
        let result = async {
            let body = self
                .post_form(
                    "gateway-send",
                    &[
                        ("api", self.cfg.api_key.as_str()),
                        ("amount", amount.as_str()),
                        ("redirect", req.callback_url.as_str()),
                        ("factorId", factor.as_str()),
                        ("name", name.as_str()),
                        ("email", email.as_str()),
                        ("description", req.description.as_str()),
                    ],
                )
                .await?;
            let code: i64 = body.trim().parse().map_err(|_| {
                GatewayError::retryable("gateway-send answered something that is not an integer")
            })?;
            if code <= 0 {
                return Err(send_error(code));
            }
            let suffix = if self.cfg.page_suffix_get { "-get" } else { "" };
            let prefix = if self.cfg.test_mode {
                "payment-test"
            } else {
                "payment"
            };
            Ok(Invoice {
                gateway_ref: Some(code.to_string()),
                payment_url: format!(
                    "{}/{prefix}/gateway-{code}{suffix}",
                    self.cfg.base_url.trim_end_matches('/')
                ),
            })
        }
        .await;
        observe("medogram", "create_invoice", started, &result);
        result
    }

    async fn verify(&self, req: &VerifyRequest) -> Result<Verification, GatewayError> {
        let started = Instant::now();
        let result = async {
            let trans_id = req.trans_id.as_deref().ok_or_else(|| {
                GatewayError::permanent("missing_trans_id", "no trans_id to verify")
            })?;
            let body = self
                .post_form(
                    "gateway-result-second",
                    &[
                        ("api", self.cfg.api_key.as_str()),
                        ("trans_id", trans_id),
                        ("id_get", req.gateway_ref.as_str()),
                        ("json", "1"),
                    ],
                )
                .await?;
            parse_verification(&body).map(|v| match v {
                Verification::Paid {
                    amount, repeated, ..
                } => Verification::Paid {
                    amount,
                    trans_id: Some(trans_id.to_string()),
                    repeated,
                },
                other => other,
            })
        }
        .await;
        observe("medogram", "verify", started, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_codes_map_to_reasons_and_only_minus_five_retries() {
        for code in [-1, -2, -3, -4, 0, -9] {
            assert!(
                matches!(send_error(code), GatewayError::Permanent { .. }),
                "{code}"
            );
        }
        assert!(matches!(send_error(-5), GatewayError::Retryable { .. }));
        assert!(
            matches!(send_error(-2), GatewayError::Permanent { reason, .. } if reason == "gateway_invalid_amount")
        );
    }

    #[test]
    fn verification_reads_numbers_and_numeric_strings() {
        assert_eq!(
            parse_verification(
                r#"{"status":1,"amount":150000,"cardNum":"603799******1234","factorId":"1001"}"#
            ),
            Ok(Verification::Paid {
                amount: 150000,
                trans_id: None,
                repeated: false
            })
        );
        assert_eq!(
            parse_verification(r#"{"status":11,"amount":"150000"}"#),
            Ok(Verification::Paid {
                amount: 150000,
                trans_id: None,
                repeated: true
            })
        );
        assert_eq!(
            parse_verification(r#"{"status":-4}"#),
            Ok(Verification::Unconfirmed {
                reason: "not_paid".into()
            })
        );
        assert!(matches!(
            parse_verification(r#"{"status":1}"#),
            Err(GatewayError::Permanent { .. })
        ));
        assert_eq!(
            parse_verification("-4"),
            Ok(Verification::Unconfirmed {
                reason: "not_paid".into()
            })
        );
        assert_eq!(
            parse_verification(r#"{"status":-2}"#),
            Ok(Verification::Unconfirmed {
                reason: "invalid_trans_id".into()
            })
        );
        assert!(matches!(
            parse_verification("<html>"),
            Err(GatewayError::Retryable { .. })
        ));
        assert!(matches!(
            parse_verification(r#"{"status":-1}"#),
            Err(GatewayError::Permanent { .. })
        ));
    }
}
