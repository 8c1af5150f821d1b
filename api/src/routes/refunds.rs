//! `/v1/payments/{id}/refunds`: ask for a refund of a completed payment
//! (`202`, carried out by a `refund` job) and list a payment's refunds. Any
//! API key may refund (admin or not); an `Idempotency-Key` is scoped to the
//! key and the payment, and a repeat answers the refund the first created.

use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_object, read_body, Caller, Fields};
use crate::payments::load_payment;
use crate::state::AppState;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use paygate_common::domain::refund::{plan, MAX_REASON_CHARS};
use paygate_common::domain::{
    EventKind, JobPayload, NewEvent, NewJob, Payment, Refund, RefundArgs, RefundRefusal,
};
use paygate_common::queue::dispatch_all;
use paygate_common::store::{NewRefund, StoreError, UniqueKey};
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/payments/{id}/refunds", post(create).get(list))
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn resource(r: &Refund, payment: &Payment) -> Value {
    json!({
        "id": r.id,
        "payment_id": r.payment_id,
        "amount": r.amount_minor,
        "currency": payment.currency.code(),
        "status": r.status.as_str(),
        "reason": r.reason,
        "failure_reason": r.failure_reason,
        "gateway_ref": r.gateway_ref,
        "created_at": time(r.created_at),
        "updated_at": time(r.updated_at),
        "links": {
            "payment": format!("/v1/payments/{}", r.payment_id),
            "refunds": format!("/v1/payments/{}/refunds", r.payment_id),
        },
    })
}

/// The validated body: `{amount?, reason?}`, nothing else.
struct RefundInput {
    amount: Option<i64>,
    reason: Option<String>,
}

fn parse_input(bytes: &[u8]) -> ApiResult<RefundInput> {
    // No body at all asks for the whole payment.
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(RefundInput {
            amount: None,
            reason: None,
        });
    }
    let body = parse_object(bytes)?;
    if let Some(unknown) = body.keys().find(|k| *k != "amount" && *k != "reason") {
        return Err(ApiError::invalid_field(
            unknown,
            format!("unknown field {unknown:?}; a refund takes amount and reason"),
        ));
    }
    let fields = Fields(&body);
    let amount = match body.get("amount") {
        None | Some(Value::Null) => None,
        Some(_) => Some(fields.integer("amount")?),
    };
    if amount.is_some_and(|a| a <= 0) {
        return Err(ApiError::invalid_field(
            "amount",
            "amount must be greater than zero (minor units)",
        ));
    }
    let reason = fields
        .optional_string("reason")?
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    if reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > MAX_REASON_CHARS || r.chars().any(char::is_control))
    {
        return Err(ApiError::invalid_field(
            "reason",
            format!(
                "reason must be at most {MAX_REASON_CHARS} characters without control characters"
            ),
        ));
    }
    Ok(RefundInput { amount, reason })
}

/// `Idempotency-Key`, validated as on `POST /v1/payments`.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key").map(|v| v.to_str()) {
        Some(Ok(k)) if !k.trim().is_empty() && k.len() <= 255 => Ok(Some(k.trim().to_string())),
        Some(_) => Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible characters",
        )),
        None => Ok(None),
    }
}

fn refused(r: RefundRefusal) -> ApiError {
    let status = match r {
        RefundRefusal::NotCompleted { .. } => StatusCode::CONFLICT,
        RefundRefusal::AmountNotPositive => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let message = r.to_string();
    let err = ApiError::new(status, r.code(), message);
    match r {
        RefundRefusal::AmountExceedsRemaining { remaining } => err.with("remaining", remaining),
        RefundRefusal::AmountNotPositive => err.with("field", "amount"),
        _ => err,
    }
}

fn accepted(refund: &Refund, payment: &Payment) -> Response {
    let mut resp = (StatusCode::ACCEPTED, Json(resource(refund, payment))).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/payments/{}/refunds", payment.id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp
}

async fn create(
    State(state): State<AppState>,
    Caller(key): Caller,
    Path(id): Path<String>,
    request: Request,
) -> ApiResult<Response> {
    let headers = request.headers().clone();
    let input = parse_input(&read_body(request).await?)?;
    let idempotency_key = idempotency_key(&headers)?;
    let payment = load_payment(&state, &id).await?;
    let caller = key.id.clone();
    if let Some(k) = &idempotency_key {
        if let Some(existing) = state.store.refund_by_key(payment.id, &caller, k).await? {
            return Ok(accepted(&existing, &payment));
        }
    }
    let refunds = state.store.refunds_of(payment.id).await?;
    let amount = match plan(&payment, &refunds, input.amount) {
        Ok(amount) => amount,
        Err(refusal) => {
            // A repeat racing its first request: the first may have committed
            // between the key lookup above and the read of the refunds.
            if let Some(k) = &idempotency_key {
                if let Some(existing) = state.store.refund_by_key(payment.id, &caller, k).await? {
                    return Ok(accepted(&existing, &payment));
                }
            }
            return Err(refused(refusal));
        }
    };
    let refund_id = uuid::Uuid::now_v7();
    let new = NewRefund {
        id: refund_id,
        payment_id: payment.id,
        amount_minor: amount,
        reason: input.reason,
        caller: caller.clone(),
        idempotency_key: idempotency_key.clone(),
    };
    let event = NewEvent::new(
        payment.id,
        EventKind::Refund,
        format!("refund {refund_id} requested"),
    )
    .detail(json!({ "refund_id": refund_id, "amount": amount, "api_key_id": key.id }));
    let job = NewJob::new(
        JobPayload::Refund(RefundArgs { refund_id }),
        Some(payment.id),
        &state.settings.retry,
    )
    .dedupe(format!("refund:{refund_id}"));
    match state.store.request_refund(new, event, job).await {
        Ok(messages) => {
            dispatch_all(state.queue.as_ref(), &messages).await;
            tracing::info!(payment_id = %payment.id, refund_id = %refund_id, "refund requested");
            let refund = state
                .store
                .refund(refund_id)
                .await?
                .ok_or_else(ApiError::internal)?;
            Ok(accepted(&refund, &payment))
        }
        // A concurrent request won the race. With the same key it is this
        // request's refund: answer it (a repeat breaks both unique indexes, and
        // databases differ in which they name). Otherwise it took what was left:
        // refuse as it now stands.
        Err(StoreError::Taken(UniqueKey::RefundIdempotencyKey | UniqueKey::RefundLive)) => {
            if let Some(k) = &idempotency_key {
                if let Some(existing) = state.store.refund_by_key(payment.id, &caller, k).await? {
                    return Ok(accepted(&existing, &payment));
                }
            }
            let refunds = state.store.refunds_of(payment.id).await?;
            let refusal = plan(&payment, &refunds, Some(amount))
                .err()
                .unwrap_or(RefundRefusal::AmountExceedsRemaining { remaining: 0 });
            Err(refused(refusal))
        }
        Err(e) => Err(e.into()),
    }
}

async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let payment = load_payment(&state, &id).await?;
    let refunds = state.store.refunds_of(payment.id).await?;
    Ok(Json(json!({
        "payment_id": payment.id,
        "refunds": refunds.iter().map(|r| resource(r, &payment)).collect::<Vec<_>>(),
    })))
}
