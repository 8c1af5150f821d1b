//! `/v1`: the provider-neutral API. Creation answers `202` at once unless the
//! client sends `Prefer: wait=N` (RFC 7240); reads are by id; the activity log
//! and the job ledger need an API key.

use crate::conditional::{answer, Condition};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, Caller, Fields, JsonObject};
use crate::idempotency::{idempotent, IdempotencyKey};
use crate::payments::{
    create_crazyminer_payment, load_payment, reload_payment, CrazyMinerPaymentInput,
};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use paygate_common::domain::{JobStatus, Lang, Payment, Provider};
use paygate_common::queue::dispatch_all;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/payments", idempotent(post(create)))
        .route("/v1/payments/{id}", get(show))
        .route("/v1/payments/{id}/events", get(events))
        .route("/v1/admin/jobs", get(list_jobs))
        .route("/v1/admin/jobs/{id}/redrive", post(redrive))
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn resource(p: &Payment, lang: Lang) -> Value {
    json!({
        "id": p.id,
        "provider": p.provider.as_str(),
        "status": p.status.as_str(),
        "status_display": p.status.display(lang),
        "status_reason": p.status_reason,
        "amount": p.amount.minor(),
        "currency": p.currency.code(),
        "description": p.description.as_str(),
        "payment_url": p.payment_url,
        "tracking_code": p.tracking_code,
        "created_at": time(p.created_at),
        "updated_at": time(p.updated_at),
        "completed_at": p.completed_at.map(time),
        "links": {
            "self": format!("/v1/payments/{}", p.id),
            "events": format!("/v1/payments/{}/events", p.id),
        },
    })
}

pub fn lang(headers: &HeaderMap) -> Lang {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Lang::from_accept_language)
        .unwrap_or(Lang::En)
}

/// `Prefer: wait=N` in seconds, bounded by configuration.
pub fn preferred_wait(headers: &HeaderMap, max: Duration) -> Option<Duration> {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|pref| pref.trim().strip_prefix("wait="))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .map(|n| Duration::from_secs(n).min(max))
        .next()
}

#[utoipa::path(post, path = "/v1/payments", tag = "v1",
    summary = "Create a payment",
    description = "Answers `202` at once; with `Prefer: wait=N` waits up to N seconds (bounded) for the payment URL and answers `201` when it is there.",
    request_body(content = crate::openapi::schemas::PaymentRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters; a repeat replays the first answer (24 h)"),
        ("Prefer" = Option<String>, Header, description = "`wait=N`: wait up to N seconds for the payment URL"),
        ("Accept-Language" = Option<String>, Header, description = "Language of `status_display` (en, ru, fa, uz)"),
    ),
    responses(
        (status = 200, description = "The payment this request's payment-level key created before (a retry after a crash)", body = crate::openapi::schemas::Payment),
        (status = 201, description = "Created, with its payment URL (after `Prefer: wait`)", body = crate::openapi::schemas::Payment,
            headers(("Location" = String, description = "The payment's URL"))),
        (status = 202, description = "Created; poll Location", body = crate::openapi::schemas::Payment,
            headers(("Location" = String, description = "The payment's URL"))),
        (status = 400, description = "Invalid input (`invalid_field`, `invalid_json`, `amount_too_small`, `invalid_idempotency_key`, ...)", body = crate::openapi::schemas::ErrorBody),
        (status = 409, description = "`idempotency_key_in_use`: the first request with this key is still being processed", body = crate::openapi::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::openapi::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = crate::openapi::schemas::ErrorBody),
        (status = 422, description = "`idempotency_key_reused` (the key was used with a different request) or `payment_failed`", body = crate::openapi::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "`service_unavailable`: nothing was changed, try again", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let fields = Fields(&body);
    let provider = match fields.optional_string("provider")? {
        None => Provider::Medogram,
        Some(p) => Provider::parse(&p).ok_or_else(|| {
            ApiError::invalid_field(
                "provider",
                format!("provider must be one of: {}", Provider::names()),
            )
        })?,
    };
    if provider != Provider::Medogram {
        return Err(ApiError::bad_request(
            "provider_not_supported",
            "payments for this provider are created through their own flow (e.g. /v1/orders for atmos)",
        ));
    }
    if let Some(currency) = fields.optional_string("currency")? {
        if !currency.eq_ignore_ascii_case("IRR") {
            return Err(ApiError::invalid_field(
                "currency",
                "medogram payments are in IRR",
            ));
        }
    }
    crate::extract::check_user_identifier(&state.settings, &fields)?;
    let input = CrazyMinerPaymentInput::parse(&fields)?;
    let wait = preferred_wait(&headers, state.settings.max_wait);
    let started = create_crazyminer_payment(&state, input, key, wait.unwrap_or_default()).await?;
    let created = started.created;
    let payment = match wait {
        Some(bound) => started.wait(&state, bound).await?,
        None => started.payment,
    };
    let ready = payment.payment_url.is_some() || payment.status.is_terminal();
    let code = match (wait.is_some() && ready, created) {
        (true, _) => StatusCode::CREATED,
        (false, false) => StatusCode::OK,
        (false, true) => StatusCode::ACCEPTED,
    };
    let mut resp = (code, Json(resource(&payment, lang(&headers)))).into_response();
    if let Ok(loc) = HeaderValue::from_str(&format!("/v1/payments/{}", payment.id)) {
        resp.headers_mut().insert(header::LOCATION, loc);
    }
    if let Some(w) = wait {
        if let Ok(v) = HeaderValue::from_str(&format!("wait={}", w.as_secs())) {
            resp.headers_mut().insert("preference-applied", v);
        }
    }
    Ok(resp)
}

#[utoipa::path(get, path = "/v1/payments/{id}", tag = "v1",
    summary = "A payment",
    params(("id" = String, Path, format = Uuid, description = "The payment id (UUID)"),
        ("Accept-Language" = Option<String>, Header, description = "Language of `status_display`"),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` the client has: `304` while it is current"),
        ("Prefer" = Option<String>, Header, description = "`wait=N` with `If-None-Match`: wait up to N seconds (bounded) for a change before answering `304`")),
    responses(
        (status = 200, description = "The payment, with its `ETag`", body = crate::openapi::schemas::Payment),
        (status = 304, description = "Unchanged: `If-None-Match` still holds (after the `Prefer: wait`, if any)"),
        (status = 400, description = "`invalid_id`", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let payment = load_payment(&state, &id).await?;
    let cond = Condition::from_headers(&headers, state.settings.max_wait);
    let (st, id, lang) = (&state, payment.id, lang(&headers));
    answer(
        st,
        &cond,
        Some(id),
        resource(&payment, lang),
        move || async move { Ok(resource(&reload_payment(st, id).await?, lang)) },
    )
    .await
}

#[utoipa::path(get, path = "/v1/payments/{id}/events", tag = "v1",
    summary = "A payment's activity log (API key)",
    params(("id" = String, Path, format = Uuid, description = "The payment id (UUID)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The events, oldest first", body = crate::openapi::schemas::PaymentEvents),
        (status = 400, description = "`invalid_id`", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn events(
    State(state): State<AppState>,
    _caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let payment = load_payment(&state, &id).await?;
    let events = state.store.events(payment.id).await?;
    Ok(Json(json!({ "payment_id": payment.id, "events": events })))
}

#[derive(Debug, Deserialize)]
struct JobsQuery {
    status: Option<String>,
    payment_id: Option<String>,
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/admin/jobs", tag = "admin",
    summary = "The job ledger (admin key)",
    params(
        ("status" = Option<String>, Query, description = "queued, running, succeeded, failed or dead"),
        ("payment_id" = Option<String>, Query, description = "Only this payment's jobs"),
        ("limit" = Option<i64>, Query, description = "At most this many (default 100)"),
    ),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Jobs, newest first", body = crate::openapi::schemas::Jobs),
        (status = 400, description = "`invalid_field`, `invalid_query`, `invalid_id`", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: not an admin key", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn list_jobs(
    State(state): State<AppState>,
    _admin: Admin,
    query: Result<Query<JobsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query
        .map_err(|_| ApiError::bad_request("invalid_query", "the query string is malformed"))?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            JobStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_field(
                    "status",
                    "status must be queued, running, succeeded, failed or dead",
                )
            })
        })
        .transpose()?;
    let payment_id = q
        .payment_id
        .as_deref()
        .map(crate::payments::parse_payment_id)
        .transpose()?;
    let jobs = state
        .store
        .list_jobs(status, payment_id, q.limit.unwrap_or(100))
        .await?;
    Ok(Json(json!({ "jobs": jobs })))
}

#[utoipa::path(post, path = "/v1/admin/jobs/{id}/redrive", tag = "admin",
    summary = "Queue a dead or failed job again (admin key)",
    params(("id" = String, Path, format = Uuid, description = "The job id (UUID)")),
    security(("api_key" = [])),
    responses(
        (status = 202, description = "Queued", body = crate::openapi::schemas::Redriven),
        (status = 400, description = "`invalid_id`", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "`forbidden`", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`", body = crate::openapi::schemas::ErrorBody),
        (status = 409, description = "`job_not_redrivable`", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn redrive(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| ApiError::bad_request("invalid_id", "the job id must be a UUID"))?;
    match state.store.redrive_job(id).await? {
        Some(msg) => {
            dispatch_all(state.queue.as_ref(), &[msg]).await;
            tracing::info!(job_id = %id, "job redriven by an operator");
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "job_id": id, "status": "queued" })),
            )
                .into_response())
        }
        None => match state.store.job(id).await? {
            Some(job) => Err(ApiError::new(
                StatusCode::CONFLICT,
                "job_not_redrivable",
                format!(
                    "only dead or failed jobs can be redriven; this one is {}",
                    job.status.as_str()
                ),
            )),
            None => Err(ApiError::not_found("job")),
        },
    }
}
