//! The payment activity log (the seed's CrazyMinerPaymentLog): append-only,
//! one row per thing that happened, with detail that has been redacted before
//! it is built.

use super::payment::PaymentId;
use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Request,
    UserFetch,
    Invoice,
    Callback,
    Webhook,
    Verification,
    StatusChange,
    Error,
    /// A gateway confirmed money for a payment that had already ended
    /// (failed, cancelled or expired): it completes after all.
    LateSettlement,
    /// A refund was asked for, returned the money, or failed.
    Refund,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::Request,
        EventKind::UserFetch,
        EventKind::Invoice,
        EventKind::Callback,
        EventKind::Webhook,
        EventKind::Verification,
        EventKind::StatusChange,
        EventKind::Error,
        EventKind::LateSettlement,
        EventKind::Refund,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Request => "request",
            EventKind::UserFetch => "user_fetch",
            EventKind::Invoice => "invoice",
            EventKind::Callback => "callback",
            EventKind::Webhook => "webhook",
            EventKind::Verification => "verification",
            EventKind::StatusChange => "status_change",
            EventKind::Error => "error",
            EventKind::LateSettlement => "late_settlement",
            EventKind::Refund => "refund",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub payment_id: PaymentId,
    pub kind: EventKind,
    pub message: String,
    pub detail: serde_json::Value,
}

impl NewEvent {
    pub fn new(payment_id: PaymentId, kind: EventKind, message: impl Into<String>) -> Self {
        NewEvent {
            payment_id,
            kind,
            message: message.into(),
            detail: serde_json::Value::Null,
        }
    }
    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = redact(detail);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PaymentEvent {
    pub id: i64,
    pub payment_id: PaymentId,
    pub kind: EventKind,
    pub message: String,
    pub detail: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// Keys whose values are secrets or personal data. Matching is on the key
/// name, case-insensitive, anywhere in the document.
const SENSITIVE_KEYS: &[&str] = &[
    "api",
    "api_key",
    "apikey",
    "key",
    "secret",
    "password",
    "token",
    "access_token",
    "authorization",
    "sign",
    "signature",
    "card",
    "cardnum",
    "card_number",
    "pan",
    "expiry",
    "otp",
    "phone",
    "mobile",
    "mobilenum",
    "email",
    "name",
    "first_name",
    "last_name",
    "full_name",
    "username",
    "user",
    "user_data",
    "address",
    "national_code",
];

/// Replaces sensitive values with "[redacted]", keeping the document's shape
/// so the log still says which fields were present.
pub fn redact(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let lower = k.to_ascii_lowercase();
                    if SENSITIVE_KEYS.contains(&lower.as_str()) && !v.is_null() {
                        (k, Value::String("[redacted]".into()))
                    } else {
                        (k, redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(redact).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_hides_secrets_and_personal_data_at_any_depth() {
        let doc = json!({
            "amount": 1000,
            "api": "k",
            "nested": {"Email": "a@b.c", "cardNum": "6037", "ok": true},
            "list": [{"password": "p"}],
            "token": null
        });
        let r = redact(doc);
        assert_eq!(r["amount"], 1000);
        assert_eq!(r["api"], "[redacted]");
        assert_eq!(r["nested"]["Email"], "[redacted]");
        assert_eq!(r["nested"]["cardNum"], "[redacted]");
        assert_eq!(r["nested"]["ok"], true);
        assert_eq!(r["list"][0]["password"], "[redacted]");
        assert!(r["token"].is_null());
        assert!(!r.to_string().contains("a@b.c"));
    }

    #[test]
    fn kinds_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
    }
}
