//! medogram's return (`/crazyminer/payment/callback/`): the payer's browser
//! redirect (GET query or POST form) or a server POST with JSON, carrying
//! `trans_id`, `id_get`, optional `tracking_code` and `factorId`
//! (docs/gateways/medogram.md, "Return to the merchant").
//!
//! The callback proves nothing: it is stored verbatim once per
//! `(id_get, trans_id)` and queues a verification; the verify job decides.
//! Browsers are sent on (to `PAYMENT_REDIRECT_URL` or the built-in result
//! page); JSON callers get `{"status": "received"}`.

use crate::domain::{
    EventKind, JobPayload, NewEvent, NewJob, Payment, PaymentId, PaymentStatus, Provider,
    VerifyArgs,
};
use crate::gateways::inbound::{
    refusal_key, Decision, InboundAdapter, InboundContext, InboundReply, InboundRequest,
    InboundRoute,
};
use crate::store::{Changeset, NewInbound, Store, StoreError};
use async_trait::async_trait;
use serde_json::{json, Map, Value};

pub struct MedogramCallback {
    /// `PAYMENT_REDIRECT_URL`: where payers go afterwards (`?transaction_id=`
    /// is added); `None` sends them to the built-in result page.
    pub payment_redirect_url: Option<String>,
}

/// What medogram sends back, validated.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CallbackFields {
    pub trans_id: String,
    pub id_get: String,
    pub tracking_code: Option<String>,
    pub factor_id: Option<String>,
}

/// A refusal of the callback's shape: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRefusal {
    pub code: &'static str,
    pub field: Option<&'static str>,
    pub message: String,
}

fn field_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The callback's parameters from a JSON body, a form body or the query.
pub fn callback_map(req: &InboundRequest) -> Result<Map<String, Value>, FieldRefusal> {
    if req.is_post() && req.is_json() {
        return match serde_json::from_slice::<Value>(&req.body) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(FieldRefusal {
                code: "invalid_json",
                field: None,
                message: "the body must be a JSON object".into(),
            }),
            Err(_) => Err(FieldRefusal {
                code: "invalid_json",
                field: None,
                message: "the body is not valid JSON".into(),
            }),
        };
    }
    let source: &[u8] = if req.is_post() && !req.body.is_empty() {
        &req.body
    } else {
        req.query.as_bytes()
    };
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(source)
        .map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect()
        })
        .map_err(|_| FieldRefusal {
            code: "invalid_callback",
            field: None,
            message: "the callback parameters are malformed".into(),
        })
}

/// Validates the fields: `trans_id` and `id_get` numeric, the others short.
pub fn callback_fields(map: &Map<String, Value>) -> Result<CallbackFields, FieldRefusal> {
    let get = |k: &str| map.get(k).and_then(field_text).filter(|s| !s.is_empty());
    let invalid = |field: &'static str, message: String| FieldRefusal {
        code: "invalid_field",
        field: Some(field),
        message,
    };
    let numeric = |name: &'static str| -> Result<String, FieldRefusal> {
        let v = get(name).ok_or_else(|| invalid(name, format!("{name} is required")))?;
        if v.len() > 32 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(name, format!("{name} must be numeric")));
        }
        Ok(v)
    };
    let short = |name: &'static str| -> Result<Option<String>, FieldRefusal> {
        match get(name) {
            Some(v) if v.len() > 64 || v.chars().any(char::is_control) => {
                Err(invalid(name, format!("{name} is malformed")))
            }
            other => Ok(other),
        }
    };
    Ok(CallbackFields {
        trans_id: numeric("trans_id")?,
        id_get: numeric("id_get")?,
        tracking_code: short("tracking_code")?,
        factor_id: short("factorId")?,
    })
}

/// The payment a callback is about: by `id_get` once the invoice job recorded
/// it; otherwise by `factorId` (our payment id) while that job is still
/// committing, since a fast gateway can call back before our commit lands.
async fn find_payment(store: &Store, f: &CallbackFields) -> Result<Option<Payment>, StoreError> {
    if let Some(p) = store
        .payment_by_gateway_ref(Provider::Medogram, &f.id_get)
        .await?
    {
        return Ok(Some(p));
    }
    let Some(id) = f.factor_id.as_deref().and_then(PaymentId::parse) else {
        return Ok(None);
    };
    // Between the two reads the invoice may have been recorded: then it must be this one.
    Ok(store.payment(id).await?.filter(|p| {
        p.provider == Provider::Medogram
            && match &p.gateway_ref {
                None => p.status == PaymentStatus::Pending,
                Some(g) => g == &f.id_get,
            }
    }))
}

impl MedogramCallback {
    /// Where the payer's browser goes after the callback.
    pub fn payer_destination(&self, payment: PaymentId) -> String {
        match &self.payment_redirect_url {
            Some(url) => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}transaction_id={payment}")
            }
            None => format!("/crazyminer/payment/result/{payment}/"),
        }
    }

    /// The answer to a stored callback: JSON for servers, a redirect for browsers.
    fn received(&self, req: &InboundRequest, payment: PaymentId) -> InboundReply {
        if req.is_post() && req.is_json() {
            InboundReply::ok(json!({ "status": "received", "transaction_id": payment }))
        } else {
            InboundReply::Redirect(self.payer_destination(payment))
        }
    }
}

/// The call as stored; only an accepted one takes the event's dedupe key.
fn message(
    req: &InboundRequest,
    payment: Option<PaymentId>,
    dedupe_key: String,
    outcome: &str,
) -> NewInbound {
    NewInbound {
        provider: Provider::Medogram,
        dedupe_key,
        payment_id: payment,
        method: req.method.clone(),
        query: req.query.clone(),
        headers: req.headers.clone(),
        body: req.body_text(),
        outcome: outcome.to_string(),
    }
}

#[async_trait]
impl InboundAdapter for MedogramCallback {
    fn provider(&self) -> Provider {
        Provider::Medogram
    }

    fn routes(&self) -> &'static [InboundRoute] {
        &[InboundRoute {
            path: "/crazyminer/payment/callback/",
            get: true,
            post: true,
        }]
    }

    async fn decide(
        &self,
        ctx: &InboundContext<'_>,
        req: &InboundRequest,
    ) -> Result<Decision, StoreError> {
        let fields = match callback_map(req).and_then(|m| callback_fields(&m)) {
            Ok(f) => f,
            Err(r) => {
                let extra = r.field.map_or(json!({}), |f| json!({ "field": f }));
                return Ok(Decision::refuse(
                    None,
                    "invalid",
                    InboundReply::error(400, r.code, &r.message, extra),
                    None,
                ));
            }
        };
        let Some(payment) = find_payment(ctx.store, &fields).await? else {
            let write =
                Changeset::from_inbound(message(req, None, refusal_key("unknown"), "unknown"));
            return Ok(Decision::refuse(
                Some(write),
                "unknown",
                InboundReply::error(
                    404,
                    "unknown_payment",
                    "no payment matches this id_get",
                    json!({}),
                ),
                None,
            ));
        };
        if fields
            .factor_id
            .as_ref()
            .is_some_and(|factor| factor != &payment.id.to_string())
        {
            let event = NewEvent::new(
                payment.id,
                EventKind::Callback,
                "callback refused: factorId does not match",
            )
            .detail(json!({ "id_get": fields.id_get, "trans_id": fields.trans_id }));
            let outcome = "refused:factor_mismatch";
            let write = Changeset::from_inbound(message(
                req,
                Some(payment.id),
                refusal_key(outcome),
                outcome,
            ))
            .event(event);
            return Ok(Decision::refuse(
                Some(write),
                "refused",
                InboundReply::error(
                    400,
                    "callback_mismatch",
                    "factorId does not belong to this id_get",
                    json!({}),
                ),
                Some(payment.id),
            ));
        }
        let event = NewEvent::new(payment.id, EventKind::Callback, "gateway callback received")
            .detail(json!({
                "id_get": fields.id_get,
                "trans_id": fields.trans_id,
                "tracking_code": fields.tracking_code,
                "method": req.method,
            }));
        let job = NewJob::new(
            JobPayload::VerifyPayment(VerifyArgs {
                trans_id: Some(fields.trans_id.clone()),
                id_get: None,
                tracking_code: fields.tracking_code.clone(),
            }),
            Some(payment.id),
            ctx.retry,
        )
        .dedupe(format!("verify:{}:{}", payment.id, fields.trans_id));
        let dedupe_key = format!("{}:{}", fields.id_get, fields.trans_id);
        let reply = self.received(req, payment.id);
        Ok(Decision {
            write: Some(
                Changeset::from_inbound(message(req, Some(payment.id), dedupe_key, "accepted"))
                    .event(event)
                    .job(job),
            ),
            on_duplicate: reply.clone(),
            reply,
            outcome: "accepted",
            payment_id: Some(payment.id),
        })
    }

    fn unavailable(&self, _req: &InboundRequest) -> InboundReply {
        InboundReply::error(
            503,
            "service_unavailable",
            "the service is temporarily unavailable; try again",
            json!({}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(query: &str) -> InboundRequest {
        InboundRequest {
            method: "GET".into(),
            query: query.into(),
            ..InboundRequest::default()
        }
    }

    #[test]
    fn parses_query_form_and_json_alike() {
        let want = CallbackFields {
            trans_id: "123".into(),
            id_get: "456".into(),
            tracking_code: Some("T-1".into()),
            factor_id: None,
        };
        let q = get("trans_id=123&id_get=456&tracking_code=T-1");
        assert_eq!(
            callback_fields(&callback_map(&q).unwrap()),
            Ok(want.clone())
        );
        let form = InboundRequest {
            method: "POST".into(),
            content_type: "application/x-www-form-urlencoded".into(),
            body: b"trans_id=123&id_get=456&tracking_code=T-1".to_vec(),
            ..InboundRequest::default()
        };
        assert_eq!(
            callback_fields(&callback_map(&form).unwrap()),
            Ok(want.clone())
        );
        let json = InboundRequest {
            method: "POST".into(),
            content_type: "application/json".into(),
            body: br#"{"trans_id": 123, "id_get": "456", "tracking_code": "T-1"}"#.to_vec(),
            ..InboundRequest::default()
        };
        assert_eq!(callback_fields(&callback_map(&json).unwrap()), Ok(want));
    }

    #[test]
    fn refuses_missing_non_numeric_and_malformed_fields() {
        let refusal = |q: &str| callback_fields(&callback_map(&get(q)).unwrap()).unwrap_err();
        assert_eq!(refusal("id_get=1").field, Some("trans_id"));
        assert_eq!(refusal("trans_id=1&id_get=x1").field, Some("id_get"));
        assert_eq!(
            refusal(&format!("trans_id=1&id_get={}", "9".repeat(33))).field,
            Some("id_get")
        );
        assert_eq!(
            refusal(&format!(
                "trans_id=1&id_get=2&tracking_code={}",
                "a".repeat(65)
            ))
            .field,
            Some("tracking_code")
        );
        let bad_json = InboundRequest {
            method: "POST".into(),
            content_type: "application/json".into(),
            body: b"[1]".to_vec(),
            ..InboundRequest::default()
        };
        assert_eq!(callback_map(&bad_json).unwrap_err().code, "invalid_json");
    }

    #[test]
    fn browsers_are_sent_on_and_servers_get_json() {
        let id = PaymentId::new();
        let cb = MedogramCallback {
            payment_redirect_url: Some("https://shop.example/done?x=1".into()),
        };
        assert_eq!(
            cb.received(&get(""), id),
            InboundReply::Redirect(format!("https://shop.example/done?x=1&transaction_id={id}"))
        );
        let server = InboundRequest {
            method: "POST".into(),
            content_type: "application/json".into(),
            ..InboundRequest::default()
        };
        assert_eq!(
            cb.received(&server, id),
            InboundReply::ok(json!({"status": "received", "transaction_id": id}))
        );
        let built_in = MedogramCallback {
            payment_redirect_url: None,
        };
        assert_eq!(
            built_in.payer_destination(id),
            format!("/crazyminer/payment/result/{id}/")
        );
    }
}
