//! `POST /atmos/webhook/`: Atmos asks permission before it debits the card, so
//! this answers synchronously: `{"status": 1}` allows the payment, `{"status": 0,
//! "message": reason}` refuses it. Everything received is stored verbatim; an
//! accepted callback queues verification (`/merchant/pay/get` must show
//! `confirmed` before the order is paid).

use crate::extract::{kept_headers, read_body};
use crate::state::{AppState, AtmosWebhookSettings};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use paygate_common::domain::{EventKind, JobKind, NewEvent, Payment, Provider};
use paygate_common::gateways::atmos::verify_sign;
use paygate_common::queue::dispatch_all;
use paygate_common::store::{InboundOutcome, NewInbound, NewJob};
use serde_json::json;
use std::collections::HashMap;

pub fn router() -> Router<AppState> {
    Router::new().route("/atmos/webhook/", post(webhook))
}

const ACCEPTED: &str = "Успешно";

/// The callback's fields as the exact texts that were signed: JSON strings
/// unquoted, JSON numbers as written (re-formatting `100000.00` would break
/// the signature).
#[derive(Debug)]
struct CallbackTexts {
    store_id: String,
    transaction_id: String,
    invoice: String,
    amount: String,
    sign: String,
}

fn raw_texts(body: &[u8]) -> Result<CallbackTexts, &'static str> {
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
fn amount_minor(text: &str) -> Option<i64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if !frac.bytes().all(|b| b == b'0')
        || whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    whole.parse().ok()
}

fn answer(status: u8, message: &str) -> Response {
    Json(json!({ "status": status, "message": message })).into_response()
}

async fn webhook(State(state): State<AppState>, req: Request) -> Response {
    let headers = req.headers().clone();
    let body = match read_body(req).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let Some(cfg) = state.settings.atmos.clone() else {
        return answer(0, "Atmos is not configured");
    };
    let outcome = judge(&state, &cfg, &headers, &body).await;
    match outcome {
        Ok(Judgement::Accept) => {
            metrics::counter!("paygate_webhooks_total", "provider" => "atmos", "outcome" => "accepted").increment(1);
            answer(1, ACCEPTED)
        }
        Ok(Judgement::Duplicate) => {
            metrics::counter!("paygate_webhooks_total", "provider" => "atmos", "outcome" => "duplicate").increment(1);
            answer(1, ACCEPTED)
        }
        Ok(Judgement::Refuse { label, message }) => {
            metrics::counter!("paygate_webhooks_total", "provider" => "atmos", "outcome" => label)
                .increment(1);
            tracing::info!(outcome = label, "Atmos callback refused");
            answer(0, &message)
        }
        Err(e) => {
            // We could not store it, so we must not allow the debit: Atmos
            // retries, and the reconciler catches up if it does not.
            tracing::warn!(error = %e, "Atmos callback could not be stored");
            metrics::counter!("paygate_webhooks_total", "provider" => "atmos", "outcome" => "error").increment(1);
            (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": 0, "message": "temporarily unavailable" })),
            )
                .into_response()
        }
    }
}

enum Judgement {
    Accept,
    Duplicate,
    Refuse {
        label: &'static str,
        message: String,
    },
}

fn refuse(label: &'static str, message: impl Into<String>) -> Judgement {
    Judgement::Refuse {
        label,
        message: message.into(),
    }
}

async fn judge(
    state: &AppState,
    cfg: &AtmosWebhookSettings,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Judgement, paygate_common::store::StoreError> {
    let body_text = String::from_utf8_lossy(body).into_owned();
    // Refusals are kept too, each under its own key, so none hides another.
    let record = |payment: Option<&Payment>, dedupe_key: String, outcome: String| NewInbound {
        provider: Provider::Atmos,
        dedupe_key,
        payment_id: payment.map(|p| p.id),
        method: "POST".into(),
        query: String::new(),
        headers: kept_headers(headers),
        body: body_text.clone(),
        outcome,
    };
    let refused_key = || format!("refused:{}", uuid::Uuid::now_v7());
    let f = match raw_texts(body) {
        Ok(f) => f,
        Err(reason) => {
            state
                .store
                .record_inbound(
                    &record(None, refused_key(), format!("refused:{reason}")),
                    &[],
                    &[],
                )
                .await?;
            return Ok(refuse("invalid", reason));
        }
    };
    if verify_sign(
        &f.store_id,
        &f.transaction_id,
        &f.invoice,
        &f.amount,
        &cfg.api_key,
        &f.sign,
        &cfg.algorithms,
    )
    .is_none()
    {
        state
            .store
            .record_inbound(
                &record(None, refused_key(), "refused:bad_signature".into()),
                &[],
                &[],
            )
            .await?;
        return Ok(refuse("bad_signature", "invalid sign"));
    }
    if f.store_id != cfg.store_id {
        state
            .store
            .record_inbound(
                &record(None, refused_key(), "refused:wrong_store".into()),
                &[],
                &[],
            )
            .await?;
        return Ok(refuse("refused", "unknown store"));
    }
    let payment = find_payment(state, &f).await?;
    if let Some(p) = &payment {
        crate::middleware::note_payment(p.id);
    }
    let Some(payment) = payment else {
        state
            .store
            .record_inbound(
                &record(None, refused_key(), "refused:unknown_invoice".into()),
                &[],
                &[],
            )
            .await?;
        return Ok(refuse("unknown", "invoice not found"));
    };
    let refuse_with_event = |label: &'static str, message: &str, event_text: String| {
        let event = NewEvent::new(payment.id, EventKind::Webhook, event_text)
            .detail(json!({ "transaction_id": f.transaction_id, "amount": f.amount }));
        (
            record(Some(&payment), refused_key(), format!("refused:{label}")),
            event,
            refuse(label, message),
        )
    };
    if amount_minor(&f.amount) != Some(payment.amount.minor()) {
        let (msg, ev, j) = refuse_with_event(
            "refused",
            "amount mismatch",
            format!(
                "callback refused: amount {} ≠ {}",
                f.amount,
                payment.amount.minor()
            ),
        );
        state.store.record_inbound(&msg, &[ev], &[]).await?;
        return Ok(j);
    }
    let dedupe_key = format!("transaction:{}", f.transaction_id);
    if payment.status.is_terminal() {
        // A repeat of a callback we allowed is allowed again; anything else is late.
        if state
            .store
            .inbound_outcome(Provider::Atmos, &dedupe_key)
            .await?
            .as_deref()
            == Some("accepted")
        {
            return Ok(Judgement::Duplicate);
        }
        let (msg, ev, j) = refuse_with_event(
            "refused",
            "payment is not payable",
            format!("callback refused: payment is {}", payment.status),
        );
        state.store.record_inbound(&msg, &[ev], &[]).await?;
        return Ok(j);
    }
    let event = NewEvent::new(payment.id, EventKind::Webhook, "Atmos callback accepted")
        .detail(json!({ "transaction_id": f.transaction_id, "amount": f.amount }));
    let job = NewJob::now(
        JobKind::VerifyPayment,
        payment.id,
        state.settings.verify_attempts,
    )
    .payload(json!({ "trans_id": f.transaction_id }))
    .dedupe(format!("verify:{}:{}", payment.id, f.transaction_id));
    match state
        .store
        .record_inbound(
            &record(Some(&payment), dedupe_key, "accepted".into()),
            &[event],
            &[job],
        )
        .await?
    {
        InboundOutcome::Recorded(messages) => {
            dispatch_all(state.queue.as_ref(), &messages).await;
            tracing::info!(payment_id = %payment.id, "Atmos callback accepted");
            Ok(Judgement::Accept)
        }
        InboundOutcome::Duplicate => Ok(Judgement::Duplicate),
    }
}

/// The payment a callback is about: by the Atmos transaction id once the
/// invoice job recorded it, otherwise by the order id in `invoice` (the
/// callback can outrun our invoice job's commit). A signed callback naming a
/// different transaction than the one we recorded is not ours to allow.
async fn find_payment(
    state: &AppState,
    f: &CallbackTexts,
) -> Result<Option<Payment>, paygate_common::store::StoreError> {
    if let Some(p) = state
        .store
        .payment_by_gateway_ref(Provider::Atmos, &f.transaction_id)
        .await?
    {
        return Ok(Some(p).filter(|p| p.merchant_ref == f.invoice));
    }
    let Ok(order_id) = f.invoice.parse::<i64>() else {
        return Ok(None);
    };
    let Some(order) = state.store.order(order_id).await? else {
        return Ok(None);
    };
    let Some(payment_id) = order.payment_id else {
        return Ok(None);
    };
    let payment = state.store.payment(payment_id).await?;
    Ok(payment.filter(|p| p.provider == Provider::Atmos && p.gateway_ref.is_none()))
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
}

#[cfg(test)]
mod props;
