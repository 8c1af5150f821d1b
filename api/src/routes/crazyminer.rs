//! The seed's CrazyMiner routes, with the seed's paths and JSON shapes:
//! create, gateway callback, status, list (authenticated), and a result page
//! for payers when no `PAYMENT_REDIRECT_URL` is configured.

use crate::conditional::{answer, Condition};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Caller, Fields, JsonObject};
use crate::idempotency::{idempotent, IdempotencyKey};
use crate::payments::{
    create_crazyminer_payment, failed_to_start, load_payment, reload_payment,
    CrazyMinerPaymentInput,
};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use paygate_common::domain::{Lang, Payment, PaymentStatus, Provider};
use paygate_common::store::PaymentFilter;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/crazyminer/payment/create/", idempotent(post(create)))
        .route("/crazyminer/payment/status/{id}/", get(status))
        .route("/crazyminer/payment/list/", get(list))
        .route("/crazyminer/payment/result/{id}/", get(result_page))
}

/// The seed's payment body.
pub fn seed_body(p: &Payment) -> Value {
    json!({
        "transaction_id": p.id,
        "payment_url": p.payment_url,
        "amount": p.amount.minor(),
        "status": p.status.as_str(),
        "status_display": p.status.display(Lang::Fa),
    })
}

fn status_body(p: &Payment) -> Value {
    json!({
        "transaction_id": p.id,
        "status": p.status.as_str(),
        "status_display": p.status.display(Lang::Fa),
        "amount": p.amount.minor(),
        "gateway_tracking_code": p.tracking_code,
        "created_at": p.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "completed_at": p.completed_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    })
}

fn status_url(p: &Payment) -> String {
    format!("/crazyminer/payment/status/{}/", p.id)
}

#[utoipa::path(post, path = "/crazyminer/payment/create/", tag = "seed",
    summary = "Create a payment (the seed's route)",
    request_body(content = crate::openapi::schemas::SeedPaymentRequest, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters; a repeat replays the first answer (24 h)")),
    responses(
        (status = 201, description = "Created, with its payment URL", body = crate::openapi::schemas::SeedPayment,
            headers(("Location" = String, description = "The status URL"))),
        (status = 202, description = "Created; the payment URL is not ready yet (poll Location)", body = crate::openapi::schemas::SeedPayment,
            headers(("Location" = String, description = "The status URL"))),
        (status = 400, description = "Invalid input (`invalid_field`, `invalid_json`, `amount_too_small`, `invalid_idempotency_key`, ...)", body = crate::openapi::schemas::ErrorBody),
        (status = 409, description = "`idempotency_key_in_use`: the first request with this key is still being processed", body = crate::openapi::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::openapi::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = crate::openapi::schemas::ErrorBody),
        (status = 422, description = "`idempotency_key_reused` (the key was used with a different request) or `payment_failed`", body = crate::openapi::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "`service_unavailable`: nothing was changed, try again", body = crate::openapi::schemas::ErrorBody),
    ))]
/// `201` with the seed's body once the worker produced the payment URL;
/// `202` with `payment_url: null` and a `Location` if the wait bound passed;
/// a 4xx/`422` with the reason if the payment failed while we waited.
async fn create(
    State(state): State<AppState>,
    IdempotencyKey(key): IdempotencyKey,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    crate::extract::check_user_identifier(&state.settings, &Fields(&body))?;
    let input = CrazyMinerPaymentInput::parse(&Fields(&body))?;
    let started = create_crazyminer_payment(&state, input, key, state.settings.seed_wait).await?;
    let payment = started.wait(&state, state.settings.seed_wait).await?;
    if let Some(e) = failed_to_start(&payment) {
        return Err(e.with("transaction_id", payment.id.to_string()));
    }
    let code = if payment.payment_url.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        code,
        [(header::LOCATION, status_url(&payment))],
        Json(seed_body(&payment)),
    )
        .into_response())
}

#[utoipa::path(get, path = "/crazyminer/payment/status/{id}/", tag = "seed",
    summary = "A payment's status (the seed's route)",
    params(("id" = String, Path, format = Uuid, description = "The transaction id (UUID)"),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` the client has: `304` while it is current"),
        ("Prefer" = Option<String>, Header, description = "`wait=N` with `If-None-Match`: wait up to N seconds (bounded) for a change before answering `304`")),
    responses(
        (status = 200, description = "The payment, with its `ETag`", body = crate::openapi::schemas::SeedStatus),
        (status = 304, description = "Unchanged: `If-None-Match` still holds (after the `Prefer: wait`, if any)"),
        (status = 400, description = "`invalid_id`", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let payment = load_payment(&state, &id).await?;
    let cond = Condition::from_headers(&headers, state.settings.max_wait);
    let (st, id) = (&state, payment.id);
    answer(
        st,
        &cond,
        Some(id),
        status_body(&payment),
        move || async move { Ok(status_body(&reload_payment(st, id).await?)) },
    )
    .await
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    status: Option<String>,
    created_from: Option<String>,
    created_to: Option<String>,
    user_identifier: Option<String>,
    page: Option<String>,
    page_size: Option<String>,
}

fn parse_time(field: &str, raw: &str) -> ApiResult<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    Err(ApiError::invalid_field(
        field,
        format!("{field} must be a date (2024-01-31) or an RFC 3339 time"),
    ))
}

fn parse_positive(field: &str, raw: Option<&str>, default: i64, max: i64) -> ApiResult<i64> {
    match raw {
        None => Ok(default),
        Some(r) => match r.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid_field(
                field,
                format!("{field} must be a whole number from 1 to {max}"),
            )),
        },
    }
}

#[utoipa::path(get, path = "/crazyminer/payment/list/", tag = "seed",
    summary = "List payments (API key)",
    params(
        ("status" = Option<String>, Query, description = "pending, processing, completed, failed, cancelled"),
        ("created_from" = Option<String>, Query, description = "A date (2024-01-31) or an RFC 3339 time"),
        ("created_to" = Option<String>, Query, description = "A date (2024-01-31) or an RFC 3339 time"),
        ("user_identifier" = Option<String>, Query, description = "Only this payer's payments"),
        ("page" = Option<String>, Query, description = "1 to 1000000"),
        ("page_size" = Option<String>, Query, description = "1 to 100 (default 20)"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "A page of payments", body = crate::openapi::schemas::SeedList),
        (status = 400, description = "`invalid_field`, `invalid_query`", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::openapi::schemas::ErrorBody),
    ))]
/// DRF-style page: `{count, next, previous, results}`, newest first.
async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query
        .map_err(|_| ApiError::bad_request("invalid_query", "the query string is malformed"))?;
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(PaymentStatus::parse(s).ok_or_else(|| {
            ApiError::invalid_field(
                "status",
                "status must be one of pending, processing, completed, failed, cancelled",
            )
        })?),
    };
    let page = parse_positive("page", q.page.as_deref(), 1, 1_000_000)?;
    let page_size = parse_positive("page_size", q.page_size.as_deref(), 20, 100)?;
    let filter = PaymentFilter {
        provider: Some(Provider::Medogram),
        status,
        created_from_ms: q
            .created_from
            .as_deref()
            .map(|r| parse_time("created_from", r))
            .transpose()?,
        created_to_ms: q
            .created_to
            .as_deref()
            .map(|r| parse_time("created_to", r))
            .transpose()?,
        merchant_ref: q.user_identifier.clone().filter(|s| !s.is_empty()),
        limit: page_size,
        offset: (page - 1) * page_size,
    };
    let (count, payments) = state.store.list_payments(&filter).await?;
    let link = |p: i64| {
        let mut params = vec![format!("page={p}"), format!("page_size={page_size}")];
        if let Some(s) = status {
            params.push(format!("status={}", s.as_str()));
        }
        for (k, v) in [
            ("created_from", &q.created_from),
            ("created_to", &q.created_to),
            ("user_identifier", &q.user_identifier),
        ] {
            if let Some(v) = v {
                let enc: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
                params.push(format!("{k}={enc}"));
            }
        }
        format!(
            "{}/crazyminer/payment/list/?{}",
            state.settings.public_url,
            params.join("&")
        )
    };
    let next = (page * page_size < count).then(|| link(page + 1));
    let previous = (page > 1).then(|| link(page - 1));
    let results: Vec<Value> = payments
        .iter()
        .map(|p| {
            let mut v = status_body(p);
            v["description"] = json!(p.description.as_str());
            v["user_identifier"] = json!(p.merchant_ref);
            v["payment_url"] = json!(p.payment_url);
            v["status_reason"] = json!(p.status_reason);
            v
        })
        .collect();
    Ok(Json(
        json!({ "count": count, "next": next, "previous": previous, "results": results }),
    ))
}

#[utoipa::path(get, path = "/crazyminer/payment/result/{id}/", tag = "seed",
    summary = "The payer's result page (HTML)",
    params(("id" = String, Path, format = Uuid, description = "The transaction id (UUID)")),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 400, description = "`invalid_id`", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`", body = crate::openapi::schemas::ErrorBody),
    ))]
/// A small page that shows the payment's status and polls until it settles.
async fn result_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Html<String>> {
    let payment = load_payment(&state, &id).await?;
    Ok(Html(crate::pages::result_page(&payment)))
}
