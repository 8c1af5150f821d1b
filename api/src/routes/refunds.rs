//! `/v1/payments/{id}/refunds`: ask for a refund of a completed payment
//! (`202`, carried out by a `refund` job) and list a payment's refunds. Any
//! API key may refund (admin or not). `Idempotency-Key` is the one layer of
//! `crate::idempotency` (Stripe's rules: a repeat replays the first answer);
//! the refund row stores the layer's derived key under a unique index, so a
//! repeat that runs the handler again (after a crash between the refund's
//! write and the stored answer) finds the refund instead of making another.

use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_object, read_body, Caller, Fields};
use crate::idempotency::{idempotent, IdempotencyKey};
use crate::payments::load_payment;
use crate::state::AppState;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
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
    Router::new().route(
        "/v1/payments/{id}/refunds",
        idempotent(post(create)).get(list),
    )
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
    answer(StatusCode::ACCEPTED, refund, payment)
}

/// The refund this request's derived key already made: only when the
/// idempotency layer runs a request again (its first run crashed or outlived
/// its lease before its answer was stored). Like `/v1/payments`, `200` with
/// the refund as it is now: the first answer was never kept.
fn found(refund: &Refund, payment: &Payment) -> Response {
    answer(StatusCode::OK, refund, payment)
}

fn answer(status: StatusCode, refund: &Refund, payment: &Payment) -> Response {
    let mut resp = (status, Json(resource(refund, payment))).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/payments/{}/refunds", payment.id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    resp
}

#[utoipa::path(post, path = "/v1/payments/{id}/refunds", tag = "v1",
    summary = "Refund a completed payment (API key)",
    description = "Accepts the refund (`202`, status `requested`); a `refund` job asks the gateway and the refund ends `succeeded` or `failed` (read it with the GET). No body refunds all that is left; `amount` refunds part (gateways that allow it). One live refund per payment at a time. `Idempotency-Key` follows Stripe's rules like every creating route: a repeat with the same body replays the first answer (`Idempotent-Replayed: true`), a different body or another payment with the same key is `422 idempotency_key_reused`, a repeat while the first runs is `409 idempotency_key_in_use`.",
    request_body(content = Option<crate::openapi::schemas::RefundRequest>, content_type = "application/json",
        description = "Optional: no body refunds all that is left"),
    params(
        ("id" = String, Path, format = Uuid, description = "The payment id (UUID)"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters; a repeat replays the first answer (24 h)"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The refund this request's key made before (the first run's answer was lost in a crash), as it is now", body = crate::openapi::schemas::Refund,
            headers(("Location" = String, description = "The payment's refunds"))),
        (status = 202, description = "Accepted; the refund job runs. Poll Location", body = crate::openapi::schemas::Refund,
            headers(("Location" = String, description = "The payment's refunds"))),
        (status = 400, description = "`invalid_field` (unknown member, `amount` not a whole number or not above zero, `reason` too long), `invalid_json`, `invalid_body`, `invalid_id`, `invalid_amount`, `invalid_idempotency_key`", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such payment", body = crate::openapi::schemas::ErrorBody),
        (status = 409, description = "`payment_not_refundable` (not completed), `idempotency_key_in_use`, `conflict`", body = crate::openapi::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::openapi::schemas::ErrorBody),
        (status = 422, description = "`amount_exceeds_remaining` (with `remaining`, minor units), `partial_refund_not_supported`, `refund_not_supported`, `refund_in_gateway_cabinet`, `idempotency_key_reused`", body = crate::openapi::schemas::ErrorBody,
            example = json!({"error": {"code": "amount_exceeds_remaining", "message": "the amount is more than what is left to refund (5000)", "remaining": 5000}})),
        (status = 503, description = "`service_unavailable`: nothing was changed, try again", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    Caller(key): Caller,
    Path(id): Path<String>,
    IdempotencyKey(idempotency_key): IdempotencyKey,
    request: Request,
) -> ApiResult<Response> {
    let input = parse_input(&read_body(request).await?)?;
    let payment = load_payment(&state, &id).await?;
    let caller = key.id.clone();
    if let Some(k) = &idempotency_key {
        if let Some(existing) = state.store.refund_by_key(payment.id, &caller, k).await? {
            return Ok(found(&existing, &payment));
        }
    }
    let refunds = state.store.refunds_of(payment.id).await?;
    let amount = match plan(&payment, &refunds, input.amount) {
        Ok(amount) => amount,
        Err(refusal) => {
            // A run again of a request whose first run outlived its lease may
            // race it: the first may have committed between the key lookup
            // above and the read of the refunds.
            if let Some(k) = &idempotency_key {
                if let Some(existing) = state.store.refund_by_key(payment.id, &caller, k).await? {
                    return Ok(found(&existing, &payment));
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
        // A concurrent request won the race. With the same derived key (only
        // a run again racing a first run that outlived its lease) it is this
        // request's refund: answer it (such a repeat breaks both unique
        // indexes, and databases differ in which they name). Otherwise it took
        // what was left: refuse as it now stands.
        Err(StoreError::Taken(UniqueKey::RefundIdempotencyKey | UniqueKey::RefundLive)) => {
            if let Some(k) = &idempotency_key {
                if let Some(existing) = state.store.refund_by_key(payment.id, &caller, k).await? {
                    return Ok(found(&existing, &payment));
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

#[utoipa::path(get, path = "/v1/payments/{id}/refunds", tag = "v1",
    summary = "A payment's refunds (API key)",
    params(("id" = String, Path, format = Uuid, description = "The payment id (UUID)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The refunds, oldest first", body = crate::openapi::schemas::Refunds),
        (status = 400, description = "`invalid_id`", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "`service_unavailable`", body = crate::openapi::schemas::ErrorBody),
    ))]
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
