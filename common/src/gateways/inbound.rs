//! "A gateway calls us": one trait for every gateway's callbacks, webhooks and
//! RPC endpoints (the shape of Hyperswitch's `IncomingWebhook`). An adapter
//! authenticates the call, parses it, reads what its decision needs, and
//! decides: the write (the call stored verbatim, and what it changes, as one
//! [`Changeset`]) and the answer in the gateway's own format. One generic
//! path in the API (`api/src/inbound.rs`) commits the write, decides again
//! from fresh state when a concurrent write got there first, pushes the jobs
//! and answers; a gateway never gets a success for a call we did not store.

use crate::domain::{PaymentId, Provider, RetryPolicies};
use crate::store::{Applied, Changeset, Store, StoreError};
use async_trait::async_trait;
use serde_json::{json, Value};

/// A call as received. Headers worth keeping are already picked out (never
/// `Authorization` or cookies); the credentials travel apart and are never
/// stored.
#[derive(Debug, Clone, Default)]
pub struct InboundRequest {
    pub method: String,
    pub query: String,
    pub content_type: String,
    /// JSON object of the headers worth keeping.
    pub headers: Value,
    /// The `Authorization` header, for adapters that authenticate with it.
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

impl InboundRequest {
    pub fn is_post(&self) -> bool {
        self.method.eq_ignore_ascii_case("POST")
    }
    pub fn is_json(&self) -> bool {
        self.content_type
            .to_ascii_lowercase()
            .starts_with("application/json")
    }
    /// The body as text, for storing verbatim (invalid UTF-8 is replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An answer in the gateway's format (or paygate's JSON error shape where the
/// gateway dictates none).
#[derive(Debug, Clone, PartialEq)]
pub enum InboundReply {
    Json {
        status: u16,
        body: Value,
    },
    /// Send the payer's browser on (a callback that came through a browser).
    Redirect(String),
}

impl InboundReply {
    pub fn ok(body: Value) -> Self {
        InboundReply::Json { status: 200, body }
    }
    /// paygate's error shape: `{"error": {"code", "message", …extra}}`.
    pub fn error(status: u16, code: &str, message: &str, extra: Value) -> Self {
        let mut error = json!({ "code": code, "message": message });
        if let (Some(e), Value::Object(more)) = (error.as_object_mut(), extra) {
            e.extend(more);
        }
        InboundReply::Json {
            status,
            body: json!({ "error": error }),
        }
    }
}

/// What an adapter decided about one call.
#[derive(Debug)]
pub struct Decision {
    /// The write; `None` when the call is refused before it is worth storing
    /// (a malformed browser redirect).
    pub write: Option<Changeset>,
    /// The answer once the write is committed.
    pub reply: InboundReply,
    /// The answer when the write turns out to repeat a call stored before.
    pub on_duplicate: InboundReply,
    /// The metric outcome (one of the provider's `inbound_outcomes`).
    pub outcome: &'static str,
    /// The payment the call is about, when known (for request logs).
    pub payment_id: Option<PaymentId>,
}

impl Decision {
    /// A call refused with `reply` and stored as `write`.
    pub fn refuse(
        write: Option<Changeset>,
        outcome: &'static str,
        reply: InboundReply,
        payment_id: Option<PaymentId>,
    ) -> Self {
        Decision {
            write,
            on_duplicate: reply.clone(),
            reply,
            outcome,
            payment_id,
        }
    }
}

/// What an adapter may read while it decides.
pub struct InboundContext<'a> {
    pub store: &'a Store,
    pub retry: &'a RetryPolicies,
}

/// A route a gateway calls: its path and methods.
#[derive(Debug, Clone, Copy)]
pub struct InboundRoute {
    pub path: &'static str,
    pub get: bool,
    pub post: bool,
}

#[async_trait]
pub trait InboundAdapter: Send + Sync + 'static {
    fn provider(&self) -> Provider;

    /// Where the gateway calls us.
    fn routes(&self) -> &'static [InboundRoute];

    /// Authenticates, parses, reads what the decision needs, and decides.
    /// A store error means the call could not be judged (the generic path
    /// answers with [`InboundAdapter::unavailable`]).
    async fn decide(
        &self,
        ctx: &InboundContext<'_>,
        req: &InboundRequest,
    ) -> Result<Decision, StoreError>;

    /// The answer once the decision's write is committed. Almost every
    /// answer is known before the commit, so the default is the decided
    /// `reply`; an answer that names a row the commit creates (Click's
    /// `merchant_prepare_id` is the new gateway transaction's id) is finished
    /// here from what the commit produced.
    fn committed(&self, reply: InboundReply, _applied: &Applied) -> InboundReply {
        reply
    }

    /// The answer when our database cannot store the call: never a false
    /// success, so the gateway tries again.
    fn unavailable(&self, req: &InboundRequest) -> InboundReply;
}

/// A refused call's dedupe key: unique, so a refusal never hides a later,
/// legitimate delivery of the same gateway event.
pub fn refusal_key(outcome: &str) -> String {
    format!("{outcome}:{}", uuid::Uuid::now_v7())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_paygates_shape_with_extras() {
        let r = InboundReply::error(404, "unknown_payment", "no", json!({"field": "id_get"}));
        assert_eq!(
            r,
            InboundReply::Json {
                status: 404,
                body: json!({"error": {"code": "unknown_payment", "message": "no", "field": "id_get"}})
            }
        );
    }

    #[test]
    fn refusal_keys_never_repeat() {
        assert_ne!(refusal_key("refused"), refusal_key("refused"));
        assert!(refusal_key("unknown").starts_with("unknown:"));
    }
}
