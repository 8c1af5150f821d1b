//! The shop seed's order routes (`/api/orders/...`) and their `/v1` twins.
//! An order is paid through its payment; the order's status follows it.

use crate::conditional::{answer, Condition};
use crate::error::{ApiError, ApiResult};
use crate::extract::Caller;
use crate::extract::{Fields, JsonObject};
use crate::idempotency::{idempotent, IdempotencyKey};
use crate::payments::{create_order, failed_to_start, wait_for_payment_url, OrderInput};
use crate::routes::v1::{lang, preferred_wait, resource};
use crate::state::AppState;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use paygate_common::domain::{Lang, Order, Payment};
use serde::Deserialize;
use serde_json::{json, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/orders/create", idempotent(post(create_seed)))
        .route("/api/orders/{id}", get(show_seed))
        .route("/api/orders/{id}/result/", get(result_page))
        .route("/v1/orders", idempotent(post(create_v1)))
        .route("/v1/orders/{id}", get(show_v1))
}

fn parse_order_id(raw: &str) -> ApiResult<i64> {
    match raw.trim_end_matches('/').parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::bad_request(
            "invalid_id",
            "the order id must be a positive integer",
        )),
    }
}

async fn load(state: &AppState, raw: &str) -> ApiResult<(Order, Option<Payment>)> {
    let id = parse_order_id(raw)?;
    let order = state
        .store
        .order(id)
        .await?
        .ok_or_else(|| ApiError::not_found("order"))?;
    let payment = match order.payment_id {
        Some(pid) => state.store.payment(pid).await?,
        None => None,
    };
    Ok((order, payment))
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Reading an order needs an API key or the order's own token; without
/// either it answers as if the order did not exist, so ids cannot be counted.
async fn authorize(
    state: &AppState,
    parts: &mut axum::http::request::Parts,
    token: Option<&str>,
    order: &Order,
) -> ApiResult<()> {
    if let (Some(given), Some(expected)) = (token, order.access_token.as_deref()) {
        if bool::from(subtle::ConstantTimeEq::ct_eq(
            given.as_bytes(),
            expected.as_bytes(),
        )) {
            return Ok(());
        }
    }
    if parts.headers.contains_key(header::AUTHORIZATION) {
        Caller::from_request_parts(parts, state).await?;
        return Ok(());
    }
    Err(ApiError::not_found("order").with(
        "hint",
        "reading an order needs its token (?token=) or an API key",
    ))
}

fn order_link(o: &Order, base: &str) -> String {
    match &o.access_token {
        Some(t) => format!("{base}/{}?token={t}", o.id),
        None => format!("{base}/{}", o.id),
    }
}

fn amount_text(o: &Order) -> String {
    o.amount
        .to_decimal_string(paygate_common::domain::Currency::Uzs)
}

/// The seed's body for a created order.
fn seed_body(o: &Order, p: &Payment) -> Value {
    json!({
        "order_id": o.id,
        "payment_url": p.payment_url,
        "payment_type": o.payment_type.as_str(),
        "amount": amount_text(o),
        "status": o.status.as_str(),
        "order_token": o.access_token,
    })
}

fn order_resource(o: &Order, p: Option<&Payment>, lang: Lang) -> Value {
    json!({
        "order_id": o.id,
        "product_name": o.product_name.as_str(),
        "amount": amount_text(o),
        "amount_tiyin": o.amount.minor(),
        "payment_type": o.payment_type.as_str(),
        "status": o.status.as_str(),
        "payment_url": p.and_then(|p| p.payment_url.clone()),
        "payment": p.map(|p| resource(p, lang)),
        "created_at": o.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "updated_at": o.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

#[utoipa::path(post, path = "/api/orders/create", tag = "shop",
    summary = "Create an order (the shop seed's route)",
    request_body(content = crate::openapi::schemas::OrderRequest, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters; a repeat replays the first answer (24 h)")),
    responses(
        (status = 201, description = "Created, with its payment URL", body = crate::openapi::schemas::SeedOrder,
            headers(("Location" = String, description = "The order's URL (with its token)"))),
        (status = 202, description = "Created; the payment URL is not ready yet", body = crate::openapi::schemas::SeedOrder,
            headers(("Location" = String, description = "The order's URL (with its token)"))),
        (status = 400, description = "Invalid input (`invalid_field`, `invalid_json`, `amount_too_small`, `invalid_idempotency_key`, ...)", body = crate::openapi::schemas::ErrorBody),
        (status = 409, description = "`idempotency_key_in_use`: the first request with this key is still being processed", body = crate::openapi::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::openapi::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = crate::openapi::schemas::ErrorBody),
        (status = 422, description = "`idempotency_key_reused` (the key was used with a different request) or `payment_failed`", body = crate::openapi::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "`service_unavailable`: nothing was changed, try again", body = crate::openapi::schemas::ErrorBody),
    ))]
/// Seed contract: wait (bounded) for the payment link, then `201`; `202` with
/// `payment_url: null` and a `Location` if the bound passes.
async fn create_seed(
    State(state): State<AppState>,
    IdempotencyKey(key): IdempotencyKey,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let input = OrderInput::parse(&Fields(&body))?;
    let (order, payment) = create_order(&state, input, key, state.settings.seed_wait).await?;
    let payment = wait_for_payment_url(&state, payment, state.settings.seed_wait).await?;
    if let Some(e) = failed_to_start(&payment) {
        return Err(e.with("order_id", order.id));
    }
    let code = if payment.payment_url.is_some() {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        code,
        [(header::LOCATION, order_link(&order, "/api/orders"))],
        Json(seed_body(&order, &payment)),
    )
        .into_response())
}

#[utoipa::path(post, path = "/v1/orders", tag = "shop",
    summary = "Create an order",
    request_body(content = crate::openapi::schemas::OrderRequest, content_type = "application/json"),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 characters; a repeat replays the first answer (24 h)"),
        ("Prefer" = Option<String>, Header, description = "`wait=N`: wait up to N seconds for the payment URL"),
    ),
    responses(
        (status = 201, description = "Created, with its payment URL (after `Prefer: wait`)", body = crate::openapi::schemas::Order,
            headers(("Location" = String, description = "The order's URL (with its token)"))),
        (status = 202, description = "Created; poll Location", body = crate::openapi::schemas::Order,
            headers(("Location" = String, description = "The order's URL (with its token)"))),
        (status = 400, description = "Invalid input (`invalid_field`, `invalid_json`, `amount_too_small`, `invalid_idempotency_key`, ...)", body = crate::openapi::schemas::ErrorBody),
        (status = 409, description = "`idempotency_key_in_use`: the first request with this key is still being processed", body = crate::openapi::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::openapi::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = crate::openapi::schemas::ErrorBody),
        (status = 422, description = "`idempotency_key_reused` (the key was used with a different request) or `payment_failed`", body = crate::openapi::schemas::ErrorBody),
        (status = 429, description = "`rate_limited`", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "`service_unavailable`: nothing was changed, try again", body = crate::openapi::schemas::ErrorBody),
    ))]
/// `/v1`: `202` at once unless `Prefer: wait=N`.
async fn create_v1(
    State(state): State<AppState>,
    headers: HeaderMap,
    IdempotencyKey(key): IdempotencyKey,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let input = OrderInput::parse(&Fields(&body))?;
    let wait = preferred_wait(&headers, state.settings.max_wait);
    let (order, payment) = create_order(&state, input, key, wait.unwrap_or_default()).await?;
    let payment = match wait {
        Some(bound) => wait_for_payment_url(&state, payment, bound).await?,
        None => payment,
    };
    let ready = payment.payment_url.is_some() || payment.status.is_terminal();
    let code = if wait.is_some() && ready {
        StatusCode::CREATED
    } else {
        StatusCode::ACCEPTED
    };
    Ok((
        code,
        [(header::LOCATION, order_link(&order, "/v1/orders"))],
        Json({
            let mut body = order_resource(&order, Some(&payment), lang(&headers));
            body["order_token"] = json!(order.access_token);
            body
        }),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/orders/{id}", tag = "shop",
    summary = "An order (its token or an API key)",
    params(("id" = i64, Path, minimum = 1, description = "The order id"),
        ("token" = Option<String>, Query, description = "The order's token (from its creation)"),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` the client has: `304` while it is current"),
        ("Prefer" = Option<String>, Header, description = "`wait=N` with `If-None-Match`: wait up to N seconds (bounded) for a change before answering `304`")),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "The order, with its `ETag`", body = crate::openapi::schemas::Order),
        (status = 304, description = "Unchanged: `If-None-Match` still holds (after the `Prefer: wait`, if any)"),
        (status = 400, description = "`invalid_id`", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: a bad API key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found` (also without a token or key)", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn show_seed(
    state: State<AppState>,
    id: Path<String>,
    q: Query<TokenQuery>,
    parts: axum::http::request::Parts,
) -> ApiResult<Response> {
    show(state, id, q, parts).await
}

#[utoipa::path(get, path = "/v1/orders/{id}", tag = "shop",
    summary = "An order (its token or an API key)",
    params(("id" = i64, Path, minimum = 1, description = "The order id"),
        ("token" = Option<String>, Query, description = "The order's token (from its creation)"),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` the client has: `304` while it is current"),
        ("Prefer" = Option<String>, Header, description = "`wait=N` with `If-None-Match`: wait up to N seconds (bounded) for a change before answering `304`")),
    security((), ("api_key" = [])),
    responses(
        (status = 200, description = "The order, with its `ETag`", body = crate::openapi::schemas::Order),
        (status = 304, description = "Unchanged: `If-None-Match` still holds (after the `Prefer: wait`, if any)"),
        (status = 400, description = "`invalid_id`", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`: a bad API key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found` (also without a token or key)", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn show_v1(
    state: State<AppState>,
    id: Path<String>,
    q: Query<TokenQuery>,
    parts: axum::http::request::Parts,
) -> ApiResult<Response> {
    show(state, id, q, parts).await
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
    mut parts: axum::http::request::Parts,
) -> ApiResult<Response> {
    let (order, payment) = load(&state, &id).await?;
    authorize(&state, &mut parts, q.token.as_deref(), &order).await?;
    let lang = lang(&parts.headers);
    let cond = Condition::from_headers(&parts.headers, state.settings.max_wait);
    let first = order_resource(&order, payment.as_ref(), lang);
    // The order moves in the same commits as its payment, so the payment's
    // announcements wake this wait; an order without one is re-read only.
    let st = &state;
    answer(st, &cond, order.payment_id, first, move || {
        let id = id.clone();
        async move {
            let (order, payment) = load(st, &id).await?;
            Ok(order_resource(&order, payment.as_ref(), lang))
        }
    })
    .await
}

#[utoipa::path(get, path = "/api/orders/{id}/result/", tag = "shop",
    summary = "The payer's order page (HTML)",
    params(("id" = i64, Path, minimum = 1, description = "The order id"),
        ("token" = Option<String>, Query, description = "The order's token")),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 400, description = "`invalid_id`", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn result_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<TokenQuery>,
    mut parts: axum::http::request::Parts,
) -> ApiResult<Html<String>> {
    let (order, _) = load(&state, &id).await?;
    authorize(&state, &mut parts, q.token.as_deref(), &order).await?;
    let token = order.access_token.clone().unwrap_or_default();
    Ok(Html(crate::pages::order_page(&order, &token)))
}
