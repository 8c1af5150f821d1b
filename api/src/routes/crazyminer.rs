//! The seed's CrazyMiner routes, with the seed's paths and JSON shapes:
//! create, gateway callback, status, list (authenticated), and a result page
//! for payers when no `PAYMENT_REDIRECT_URL` is configured.

use crate::error::{ApiError, ApiResult};
use crate::extract::{kept_headers, parse_object, read_body, Caller, Fields, JsonObject};
use crate::payments::{
    create_crazyminer_payment, failed_to_start, load_payment, wait_for_payment_url,
    CrazyMinerPaymentInput,
};
use crate::state::AppState;
use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use paygate_common::domain::{
    EventKind, JobKind, Lang, NewEvent, Payment, PaymentStatus, Provider,
};
use paygate_common::queue::dispatch_all;
use paygate_common::store::{InboundOutcome, NewInbound, NewJob, PaymentFilter};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/crazyminer/payment/create/", post(create))
        .route("/crazyminer/payment/status/{id}/", get(status))
        .route("/crazyminer/payment/list/", get(list))
        .route("/crazyminer/payment/result/{id}/", get(result_page))
}

/// The gateway's return route alone, so a source allowlist can guard it.
pub fn callback_router() -> Router<AppState> {
    Router::new().route(
        "/crazyminer/payment/callback/",
        get(callback).post(callback),
    )
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

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(v) => {
            let key = v.to_str().map(str::trim).unwrap_or("");
            if key.is_empty() || key.len() > 255 {
                return Err(ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be 1 to 255 visible characters",
                ));
            }
            Ok(Some(key.to_string()))
        }
    }
}

/// `201` with the seed's body once the worker produced the payment URL;
/// `202` with `payment_url: null` and a `Location` if the wait bound passed;
/// a 4xx/`422` with the reason if the payment failed while we waited.
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    crate::extract::check_user_identifier(&state.settings, &Fields(&body))?;
    let input = CrazyMinerPaymentInput::parse(&Fields(&body))?;
    let (payment, _) = create_crazyminer_payment(&state, input, idempotency_key(&headers)?).await?;
    let payment = wait_for_payment_url(&state, payment, state.settings.seed_wait).await?;
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

async fn status(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let payment = load_payment(&state, &id).await?;
    Ok(Json(status_body(&payment)))
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

/// What medogram sends back (as query, form or JSON).
#[derive(Debug, Default, Clone)]
struct CallbackFields {
    trans_id: String,
    id_get: String,
    tracking_code: Option<String>,
    factor_id: Option<String>,
}

fn field_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn callback_fields(map: &serde_json::Map<String, Value>) -> ApiResult<CallbackFields> {
    let get = |k: &str| map.get(k).and_then(field_text).filter(|s| !s.is_empty());
    let numeric = |name: &'static str| -> ApiResult<String> {
        let v = get(name)
            .ok_or_else(|| ApiError::invalid_field(name, format!("{name} is required")))?;
        if v.len() > 32 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid_field(
                name,
                format!("{name} must be numeric"),
            ));
        }
        Ok(v)
    };
    let short = |name: &'static str| -> ApiResult<Option<String>> {
        match get(name) {
            Some(v) if v.len() > 64 || v.chars().any(char::is_control) => Err(
                ApiError::invalid_field(name, format!("{name} is malformed")),
            ),
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

/// Receives medogram's return: a browser redirect (GET query or POST form) or
/// a server POST with JSON. Stores it verbatim (once), queues verification, and
/// sends the payer on. The callback proves nothing; the verify job decides.
async fn callback(
    State(state): State<AppState>,
    RawQuery(raw_query): RawQuery,
    req: Request,
) -> ApiResult<Response> {
    let method = req.method().clone();
    let headers = req.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let raw_query = raw_query.unwrap_or_default();
    let body = if method == Method::POST {
        read_body(req).await?
    } else {
        Default::default()
    };
    let is_json = content_type.starts_with("application/json");
    let map: serde_json::Map<String, Value> = if method == Method::POST && is_json {
        parse_object(&body)?
    } else {
        let source: &[u8] = if method == Method::POST && !body.is_empty() {
            &body
        } else {
            raw_query.as_bytes()
        };
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(source)
            .map_err(|_| {
                ApiError::bad_request("invalid_callback", "the callback parameters are malformed")
            })?
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect()
    };
    let fields = callback_fields(&map)?;
    let body_text = String::from_utf8_lossy(&body).into_owned();
    let dedupe_key = format!("{}:{}", fields.id_get, fields.trans_id);
    let payment = find_payment(&state, &fields).await?;
    if let Some(p) = &payment {
        crate::middleware::note_payment(p.id);
    }
    // Only an accepted callback takes the event's dedupe key: a refused or
    // unknown one must not block a later, legitimate delivery of the same event.
    let inbound = |payment_id, outcome: &str| NewInbound {
        provider: Provider::Medogram,
        dedupe_key: if outcome == "accepted" {
            dedupe_key.clone()
        } else {
            format!("{outcome}:{}", uuid::Uuid::now_v7())
        },
        payment_id,
        method: method.to_string(),
        query: raw_query.clone(),
        headers: kept_headers(&headers),
        body: body_text.clone(),
        outcome: outcome.to_string(),
    };
    let Some(payment) = payment else {
        state
            .store
            .record_inbound(&inbound(None, "unknown"), &[], &[])
            .await?;
        metrics::counter!("paygate_callbacks_total", "provider" => "medogram", "outcome" => "unknown").increment(1);
        tracing::info!(id_get = %fields.id_get, "callback for an unknown invoice refused");
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_payment",
            "no payment matches this id_get",
        ));
    };
    if let Some(factor) = &fields.factor_id {
        if factor != &payment.id.to_string() {
            let event = NewEvent::new(
                payment.id,
                EventKind::Callback,
                "callback refused: factorId does not match",
            )
            .detail(json!({ "id_get": fields.id_get, "trans_id": fields.trans_id }));
            state
                .store
                .record_inbound(
                    &inbound(Some(payment.id), "refused:factor_mismatch"),
                    &[event],
                    &[],
                )
                .await?;
            metrics::counter!("paygate_callbacks_total", "provider" => "medogram", "outcome" => "refused").increment(1);
            return Err(ApiError::bad_request(
                "callback_mismatch",
                "factorId does not belong to this id_get",
            ));
        }
    }
    let event = NewEvent::new(payment.id, EventKind::Callback, "gateway callback received").detail(json!({
        "id_get": fields.id_get, "trans_id": fields.trans_id, "tracking_code": fields.tracking_code, "method": method.as_str(),
    }));
    let job = NewJob::now(
        JobKind::VerifyPayment,
        payment.id,
        state.settings.verify_attempts,
    )
    .payload(json!({ "trans_id": fields.trans_id, "tracking_code": fields.tracking_code }))
    .dedupe(format!("verify:{}:{}", payment.id, fields.trans_id));
    let outcome = match state
        .store
        .record_inbound(&inbound(Some(payment.id), "accepted"), &[event], &[job])
        .await?
    {
        InboundOutcome::Recorded(messages) => {
            dispatch_all(state.queue.as_ref(), &messages).await;
            "accepted"
        }
        InboundOutcome::Duplicate => "duplicate",
    };
    metrics::counter!("paygate_callbacks_total", "provider" => "medogram", "outcome" => outcome)
        .increment(1);
    tracing::info!(payment_id = %payment.id, outcome, "callback received");
    if method == Method::POST && is_json {
        return Ok(
            Json(json!({ "status": "received", "transaction_id": payment.id })).into_response(),
        );
    }
    Ok(Redirect::to(&payer_destination(&state, &payment)).into_response())
}

/// The payment a callback is about: by `id_get` once the invoice job recorded
/// it; otherwise by `factorId` (our payment id) while that job is still
/// committing, since a fast gateway can call back before our commit lands.
async fn find_payment(state: &AppState, f: &CallbackFields) -> ApiResult<Option<Payment>> {
    if let Some(p) = state
        .store
        .payment_by_gateway_ref(Provider::Medogram, &f.id_get)
        .await?
    {
        return Ok(Some(p));
    }
    let Some(id) = f
        .factor_id
        .as_deref()
        .and_then(paygate_common::domain::PaymentId::parse)
    else {
        return Ok(None);
    };
    // Between the two reads the invoice may have been recorded: then it must be this one.
    Ok(state.store.payment(id).await?.filter(|p| {
        p.provider == Provider::Medogram
            && match &p.gateway_ref {
                None => p.status == PaymentStatus::Pending,
                Some(g) => g == &f.id_get,
            }
    }))
}

/// Where the payer's browser goes after the callback.
fn payer_destination(state: &AppState, payment: &Payment) -> String {
    match &state.settings.payment_redirect_url {
        Some(url) => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}transaction_id={}", payment.id)
        }
        None => format!("/crazyminer/payment/result/{}/", payment.id),
    }
}

/// A small page that shows the payment's status and polls until it settles.
async fn result_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Html<String>> {
    let payment = load_payment(&state, &id).await?;
    Ok(Html(crate::pages::result_page(&payment)))
}

#[cfg(test)]
mod props;
