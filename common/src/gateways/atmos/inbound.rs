//! Atmos' signed callback (`POST /atmos/webhook/`). Atmos asks permission
//! before it debits the card, so the answer is synchronous: `{"status": 1}`
//! allows the payment, `{"status": 0, "message": reason}` refuses it
//! (docs/gateways/atmos.md, "The merchant callback"). Everything received is
//! stored verbatim; an accepted callback queues verification
//! (`/merchant/pay/get` must show `confirmed` before the order is paid).

use super::{verify_sign, SignAlgorithm};
use crate::domain::{
    EventKind, JobPayload, NewEvent, NewJob, Payment, PaymentId, Provider, VerifyArgs,
};
use crate::gateways::inbound::{
    refusal_key, Decision, InboundAdapter, InboundContext, InboundReply, InboundRequest,
    InboundRoute,
};
use crate::store::{Changeset, NewInbound, Store, StoreError};
use async_trait::async_trait;
use serde_json::json;
use std::collections::HashMap;

const ACCEPTED: &str = "Успешно";

/// What the webhook needs to judge a callback.
#[derive(Debug, Clone)]
pub struct AtmosWebhook {
    pub store_id: String,
    /// The callback signing key (`ATMOS_API_KEY`).
    pub api_key: String,
    pub algorithms: Vec<SignAlgorithm>,
}

/// The callback's fields as the exact texts that were signed: JSON strings
/// unquoted, JSON numbers as written (re-formatting `100000.00` would break
/// the signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackTexts {
    pub store_id: String,
    pub transaction_id: String,
    pub invoice: String,
    pub amount: String,
    pub sign: String,
}

pub fn raw_texts(body: &[u8]) -> Result<CallbackTexts, &'static str> {
    let map: HashMap<String, Box<serde_json::value::RawValue>> =
        serde_json::from_slice(body).map_err(|_| "invalid request: not a JSON object")?;
    let text = |k: &str| -> Option<String> {
        let raw = map.get(k)?.get().trim();
        if raw.starts_with('"') {
            serde_json::from_str::<String>(raw).ok()
        } else if raw.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
            Some(raw.to_string())
        } else {
            None
        }
    };
    let need = |k: &'static str| text(k).filter(|v| !v.is_empty() && v.len() <= 128).ok_or(k);
    Ok(CallbackTexts {
        store_id: need("store_id").map_err(|_| "invalid request: store_id")?,
        transaction_id: need("transaction_id").map_err(|_| "invalid request: transaction_id")?,
        // Some integrations name it `account` (the field we sent at create time).
        invoice: need("invoice")
            .or_else(|_| need("account"))
            .map_err(|_| "invalid request: invoice")?,
        amount: need("amount").map_err(|_| "invalid request: amount")?,
        sign: need("sign").map_err(|_| "invalid request: sign")?,
    })
}

/// Tiyin from the amount text: an integer, or a decimal with a zero fraction.
pub fn amount_minor(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if !frac.bytes().all(|b| b == b'0')
        || whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    whole.parse().ok()
}

fn answer(status: u8, message: &str) -> InboundReply {
    InboundReply::ok(json!({ "status": status, "message": message }))
}

/// The payment a callback is about: by the Atmos transaction id once the
/// invoice job recorded it, otherwise by the order id in `invoice` (the
/// callback can outrun our invoice job's commit). A signed callback naming a
/// different transaction than the one we recorded is not ours to allow.
async fn find_payment(store: &Store, f: &CallbackTexts) -> Result<Option<Payment>, StoreError> {
    if let Some(p) = store
        .payment_by_gateway_ref(Provider::Atmos, &f.transaction_id)
        .await?
    {
        return Ok(Some(p).filter(|p| p.merchant_ref == f.invoice));
    }
    let Ok(order_id) = f.invoice.parse::<i64>() else {
        return Ok(None);
    };
    let Some(order) = store.order(order_id).await? else {
        return Ok(None);
    };
    let Some(payment_id) = order.payment_id else {
        return Ok(None);
    };
    let payment = store.payment(payment_id).await?;
    Ok(payment.filter(|p| p.provider == Provider::Atmos && p.gateway_ref.is_none()))
}

fn message(
    req: &InboundRequest,
    payment: Option<PaymentId>,
    key: String,
    outcome: String,
) -> NewInbound {
    NewInbound {
        provider: Provider::Atmos,
        dedupe_key: key,
        payment_id: payment,
        method: "POST".into(),
        query: String::new(),
        headers: req.headers.clone(),
        body: req.body_text(),
        outcome,
    }
}

/// A refusal, stored under its own key so none hides another.
fn refusal(
    req: &InboundRequest,
    payment: Option<PaymentId>,
    stored_as: &str,
    label: &'static str,
    reply: &str,
    event: Option<NewEvent>,
) -> Decision {
    let write = Changeset::from_inbound(message(
        req,
        payment,
        refusal_key("refused"),
        format!("refused:{stored_as}"),
    ))
    .events(event);
    Decision::refuse(Some(write), label, answer(0, reply), payment)
}

#[async_trait]
impl InboundAdapter for AtmosWebhook {
    fn provider(&self) -> Provider {
        Provider::Atmos
    }

    fn routes(&self) -> &'static [InboundRoute] {
        &[InboundRoute {
            path: "/atmos/webhook/",
            get: false,
            post: true,
        }]
    }

    async fn decide(
        &self,
        ctx: &InboundContext<'_>,
        req: &InboundRequest,
    ) -> Result<Decision, StoreError> {
        let f = match raw_texts(&req.body) {
            Ok(f) => f,
            Err(reason) => return Ok(refusal(req, None, reason, "invalid", reason, None)),
        };
        if verify_sign(
            &f.store_id,
            &f.transaction_id,
            &f.invoice,
            &f.amount,
            &self.api_key,
            &f.sign,
            &self.algorithms,
        )
        .is_none()
        {
            return Ok(refusal(
                req,
                None,
                "bad_signature",
                "bad_signature",
                "invalid sign",
                None,
            ));
        }
        if f.store_id != self.store_id {
            return Ok(refusal(
                req,
                None,
                "wrong_store",
                "refused",
                "unknown store",
                None,
            ));
        }
        let Some(payment) = find_payment(ctx.store, &f).await? else {
            return Ok(refusal(
                req,
                None,
                "unknown_invoice",
                "unknown",
                "invoice not found",
                None,
            ));
        };
        let event = |text: String| {
            Some(
                NewEvent::new(payment.id, EventKind::Webhook, text)
                    .detail(json!({ "transaction_id": f.transaction_id, "amount": f.amount })),
            )
        };
        if amount_minor(&f.amount) != Some(payment.amount.minor()) {
            let text = format!(
                "callback refused: amount {} ≠ {}",
                f.amount,
                payment.amount.minor()
            );
            return Ok(refusal(
                req,
                Some(payment.id),
                "refused",
                "refused",
                "amount mismatch",
                event(text),
            ));
        }
        let dedupe_key = format!("transaction:{}", f.transaction_id);
        // A failed or cancelled (expired) payment is still allowed: whether
        // Atmos asks before the debit or tells after it is disputed
        // (docs/gateways/atmos.md), so refusing could lose money it took. The
        // verification decides; a confirmation settles the payment late.
        if payment.status.is_terminal() && !payment.status.can_settle_late() {
            // A repeat of a callback we allowed is allowed again; anything else is late.
            if ctx
                .store
                .inbound_outcome(Provider::Atmos, &dedupe_key)
                .await?
                .as_deref()
                == Some("accepted")
            {
                return Ok(Decision::refuse(
                    None,
                    "duplicate",
                    answer(1, ACCEPTED),
                    Some(payment.id),
                ));
            }
            let text = format!("callback refused: payment is {}", payment.status);
            return Ok(refusal(
                req,
                Some(payment.id),
                "refused",
                "refused",
                "payment is not payable",
                event(text),
            ));
        }
        let job = NewJob::new(
            JobPayload::VerifyPayment(VerifyArgs {
                trans_id: Some(f.transaction_id.clone()),
                ..VerifyArgs::default()
            }),
            Some(payment.id),
            ctx.retry,
        )
        .dedupe(format!("verify:{}:{}", payment.id, f.transaction_id));
        let write = Changeset::from_inbound(message(
            req,
            Some(payment.id),
            dedupe_key,
            "accepted".into(),
        ))
        .events(event(if payment.status.is_terminal() {
            format!(
                "Atmos callback accepted for a {} payment: a confirmation settles it late",
                payment.status
            )
        } else {
            "Atmos callback accepted".into()
        }))
        .job(job);
        Ok(Decision {
            write: Some(write),
            reply: answer(1, ACCEPTED),
            on_duplicate: answer(1, ACCEPTED),
            outcome: "accepted",
            payment_id: Some(payment.id),
        })
    }

    /// We could not store it, so we must not allow the debit: Atmos retries,
    /// and the reconciler catches up if it does not.
    fn unavailable(&self, _req: &InboundRequest) -> InboundReply {
        InboundReply::Json {
            status: 503,
            body: json!({ "status": 0, "message": "temporarily unavailable" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_texts_keep_what_was_signed() {
        let f = raw_texts(br#"{"store_id":8157,"transaction_id":"123456789","amount":5000000.00,"invoice":"197","sign":"x"}"#).unwrap();
        assert_eq!(f.store_id, "8157");
        assert_eq!(f.amount, "5000000.00");
        assert_eq!(f.invoice, "197");
        let f = raw_texts(
            br#"{"store_id":"8157","transaction_id":1,"amount":"5","account":"7","sign":"x"}"#,
        )
        .unwrap();
        assert_eq!(f.invoice, "7");
        assert!(raw_texts(b"[1]").is_err());
        assert!(raw_texts(br#"{"store_id":"8157"}"#).is_err());
        assert!(raw_texts(
            br#"{"store_id":true,"transaction_id":1,"amount":"5","invoice":"7","sign":"x"}"#
        )
        .is_err());
    }

    #[test]
    fn amounts_are_whole_tiyin() {
        assert_eq!(amount_minor("5000000"), Some(5_000_000));
        assert_eq!(amount_minor("5000000.00"), Some(5_000_000));
        assert_eq!(amount_minor("5000000.5"), None);
        assert_eq!(amount_minor("-5"), None);
        assert_eq!(amount_minor("abc"), None);
    }

    #[test]
    fn unavailable_never_allows_the_debit() {
        let w = AtmosWebhook {
            store_id: "1".into(),
            api_key: "k".into(),
            algorithms: vec![SignAlgorithm::Md5],
        };
        assert_eq!(
            w.unavailable(&InboundRequest::default()),
            InboundReply::Json {
                status: 503,
                body: json!({"status": 0, "message": "temporarily unavailable"})
            }
        );
    }
}
