//! `/v1/webhook-endpoints`: where merchant notifications go (admin keys only).
//! The secret is shown when an endpoint is created and when it is rotated,
//! never in listings. The endpoint `PAYGATE_WEBHOOK_URL` configures is
//! listed, and its attempts can be read and redriven, but only the
//! environment changes it.

use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, Fields, JsonObject};
use crate::state::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use paygate_common::domain::{DeliverArgs, EventType, JobPayload, NewJob};
use paygate_common::queue::dispatch_all;
use paygate_common::store::{EndpointPatch, WebhookEndpoint};
use paygate_common::webhooks::check_url;
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhook-endpoints", post(create).get(list))
        .route(
            "/v1/webhook-endpoints/{id}",
            get(show).patch(update).delete(remove),
        )
        .route("/v1/webhook-endpoints/{id}/rotate-secret", post(rotate))
        .route("/v1/webhook-endpoints/{id}/attempts", get(attempts))
        .route("/v1/webhook-endpoints/{id}/redrive", post(redrive_since))
        .route(
            "/v1/webhook-endpoints/{id}/messages/{message_id}/redrive",
            post(redrive_one),
        )
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn resource(e: &WebhookEndpoint) -> Map<String, Value> {
    let value = json!({
        "id": e.id,
        "url": e.url,
        "description": e.description,
        "event_types": e.event_types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "status": if e.enabled { "enabled" } else { "disabled" },
        "disabled_reason": e.disabled_reason,
        "managed_by_config": e.is_config(),
        "last_success_at": e.last_success_at_ms.map(time),
        "created_at": time(e.created_at_ms),
        "updated_at": time(e.updated_at_ms),
    });
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The endpoint with its secret: only for create and rotate.
fn with_secret(e: &WebhookEndpoint) -> Value {
    let mut m = resource(e);
    m.insert("secret".into(), e.secret.expose().into());
    if let Some(until) = e.previous_secret_until_ms {
        m.insert("previous_secret_expires_at".into(), time(until).into());
    }
    Value::Object(m)
}

fn url_field(fields: &Fields<'_>) -> ApiResult<Option<String>> {
    fields
        .optional_string("url")?
        .map(|u| check_url(&u).map_err(|m| ApiError::invalid_field("url", m)))
        .transpose()
}

fn description_field(fields: &Fields<'_>) -> ApiResult<Option<String>> {
    let d = fields.optional_string("description")?;
    if d.as_ref().is_some_and(|d| d.chars().count() > 500) {
        return Err(ApiError::invalid_field(
            "description",
            "description is at most 500 characters",
        ));
    }
    Ok(d)
}

/// `event_types`: an array of event names; empty or absent means every event.
fn event_types_field(body: &Map<String, Value>) -> ApiResult<Option<Vec<EventType>>> {
    let bad = || {
        ApiError::invalid_field(
            "event_types",
            format!("event_types is an array of: {}", EventType::names()),
        )
    };
    match body.get("event_types") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => {
            let mut out = Vec::new();
            for item in items {
                let t = item.as_str().and_then(EventType::parse).ok_or_else(bad)?;
                if !out.contains(&t) {
                    out.push(t);
                }
            }
            Ok(Some(out))
        }
        Some(_) => Err(bad()),
    }
}

fn refuse_unknown(body: &Map<String, Value>, known: &[&str]) -> ApiResult<()> {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::invalid_field(k, format!("unknown field {k:?}"))),
        None => Ok(()),
    }
}

async fn load(state: &AppState, id: &str) -> ApiResult<WebhookEndpoint> {
    state
        .store
        .webhook_endpoint(id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint"))
}

fn managed_by_config() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "endpoint_managed_by_config",
        "this endpoint is configured by PAYGATE_WEBHOOK_URL and PAYGATE_WEBHOOK_SECRET; change those",
    )
}

#[utoipa::path(post, path = "/v1/webhook-endpoints", tag = "admin",
    summary = "Add a webhook endpoint (admin key)",
    description = "Notifications of the chosen event types (all when empty) are signed with the endpoint's own secret and sent to `url` (see docs/notifications.md).",
    request_body(content = crate::openapi::schemas::WebhookEndpointRequest, content_type = "application/json"),
    security(("api_key" = [])),
    responses(
        (status = 201, description = "Created. The answer carries the signing `secret`: the only time it is shown (apart from rotate-secret)", body = crate::openapi::schemas::WebhookEndpointWithSecret),
        (status = 400, description = "`invalid_field` (`url` missing or not an http(s) URL with a host and without credentials, `description` over 500 characters, unknown `event_types` or member), `invalid_json`, `invalid_body`", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: not an admin key", body = crate::openapi::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::openapi::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "`service_unavailable`: nothing was changed, try again", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    refuse_unknown(&body, &["url", "description", "event_types"])?;
    let fields = Fields(&body);
    let url =
        url_field(&fields)?.ok_or_else(|| ApiError::invalid_field("url", "url is required"))?;
    let description = description_field(&fields)?.unwrap_or_default();
    let types = event_types_field(&body)?.unwrap_or_default();
    let e = state
        .store
        .create_webhook_endpoint(&url, &description, &types)
        .await?;
    tracing::info!(endpoint_id = %e.id, "webhook endpoint created");
    Ok((StatusCode::CREATED, Json(with_secret(&e))).into_response())
}

#[utoipa::path(get, path = "/v1/webhook-endpoints", tag = "admin",
    summary = "The webhook endpoints (admin key)",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Every endpoint, including the one `PAYGATE_WEBHOOK_URL` configures; never their secrets", body = crate::openapi::schemas::WebhookEndpoints),
        (status = 401, description = "`unauthorized`", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: not an admin key", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "`service_unavailable`: nothing was changed, try again", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn list(State(state): State<AppState>, _admin: Admin) -> ApiResult<Json<Value>> {
    let all = state.store.webhook_endpoints().await?;
    let items: Vec<Value> = all.iter().map(|e| Value::Object(resource(e))).collect();
    Ok(Json(json!({ "endpoints": items })))
}

#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}", tag = "admin",
    summary = "A webhook endpoint (admin key)",
    params(("id" = String, Path, description = "The endpoint id (`ep_…`)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The endpoint, without its secret", body = crate::openapi::schemas::WebhookEndpoint),
        (status = 401, description = "`unauthorized`", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: not an admin key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such endpoint", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "`service_unavailable`: nothing was changed, try again", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn show(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(Value::Object(resource(&load(&state, &id).await?))))
}

#[utoipa::path(patch, path = "/v1/webhook-endpoints/{id}", tag = "admin",
    summary = "Change a webhook endpoint (admin key)",
    request_body(content = crate::openapi::schemas::WebhookEndpointPatch, content_type = "application/json"),
    params(("id" = String, Path, description = "The endpoint id (`ep_…`)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The endpoint as changed, without its secret", body = crate::openapi::schemas::WebhookEndpoint),
        (status = 400, description = "`invalid_field` (bad `url`, `description`, `event_types`, `enabled`, or an unknown member), `invalid_json`, `invalid_body`", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: not an admin key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such endpoint", body = crate::openapi::schemas::ErrorBody),
        (status = 409, description = "`endpoint_managed_by_config`: the endpoint `PAYGATE_WEBHOOK_URL` configures changes only through the environment", body = crate::openapi::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::openapi::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "`service_unavailable`: nothing was changed, try again", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn update(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Json<Value>> {
    refuse_unknown(&body, &["url", "description", "event_types", "enabled"])?;
    if load(&state, &id).await?.is_config() {
        return Err(managed_by_config());
    }
    let fields = Fields(&body);
    let enabled = match body.get("enabled") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(ApiError::invalid_field(
                "enabled",
                "enabled is true or false",
            ))
        }
    };
    let patch = EndpointPatch {
        url: url_field(&fields)?,
        description: description_field(&fields)?,
        event_types: event_types_field(&body)?,
        enabled,
    };
    let e = state
        .store
        .update_webhook_endpoint(&id, &patch)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint"))?;
    Ok(Json(Value::Object(resource(&e))))
}

#[utoipa::path(delete, path = "/v1/webhook-endpoints/{id}", tag = "admin",
    summary = "Delete a webhook endpoint (admin key)",
    params(("id" = String, Path, description = "The endpoint id (`ep_…`)")),
    security(("api_key" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "`unauthorized`", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: not an admin key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such endpoint", body = crate::openapi::schemas::ErrorBody),
        (status = 409, description = "`endpoint_managed_by_config`: the endpoint `PAYGATE_WEBHOOK_URL` configures changes only through the environment", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "`service_unavailable`: nothing was changed, try again", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn remove(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    if load(&state, &id).await?.is_config() {
        return Err(managed_by_config());
    }
    if state.store.delete_webhook_endpoint(&id).await? {
        tracing::info!(endpoint_id = %id, "webhook endpoint deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("webhook endpoint"))
    }
}

#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/rotate-secret", tag = "admin",
    summary = "Give a webhook endpoint a new secret (admin key)",
    description = "For the grace period `PAYGATE_WEBHOOK_ROTATION_GRACE` configures, deliveries carry signatures with the old and the new secret, so the merchant can switch without losing any.",
    params(("id" = String, Path, description = "The endpoint id (`ep_…`)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The endpoint with its new `secret` (shown only here) and `previous_secret_expires_at`: until then deliveries are signed with both secrets", body = crate::openapi::schemas::WebhookEndpointWithSecret),
        (status = 401, description = "`unauthorized`", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: not an admin key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such endpoint", body = crate::openapi::schemas::ErrorBody),
        (status = 409, description = "`endpoint_managed_by_config`: the endpoint `PAYGATE_WEBHOOK_URL` configures changes only through the environment", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "`service_unavailable`: nothing was changed, try again", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn rotate(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if load(&state, &id).await?.is_config() {
        return Err(managed_by_config());
    }
    let grace = state.settings.webhook_rotation_grace;
    let until = chrono::Utc::now().timestamp_millis() + grace.as_millis() as i64;
    let e = state
        .store
        .rotate_webhook_secret(&id, until)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook endpoint"))?;
    tracing::info!(endpoint_id = %id, "webhook secret rotated");
    Ok(Json(with_secret(&e)))
}

#[derive(Debug, Deserialize)]
struct AttemptsQuery {
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/v1/webhook-endpoints/{id}/attempts", tag = "admin",
    summary = "An endpoint's delivery attempts (admin key)",
    params(("id" = String, Path, description = "The endpoint id (`ep_…`)"),
        ("limit" = Option<i64>, Query, description = "At most this many, 1 to 1000 (default 100)")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Attempts, newest first", body = crate::openapi::schemas::WebhookAttempts),
        (status = 400, description = "`invalid_query`", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: not an admin key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such endpoint", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "`service_unavailable`: nothing was changed, try again", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn attempts(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    query: Result<Query<AttemptsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = query
        .map_err(|_| ApiError::bad_request("invalid_query", "the query string is malformed"))?;
    let endpoint = load(&state, &id).await?;
    let list = state
        .store
        .webhook_attempts(&endpoint.id, q.limit.unwrap_or(100))
        .await?;
    let items: Vec<Value> = list
        .iter()
        .map(|a| {
            json!({
                "message_id": a.message_id,
                "attempt": a.attempt,
                "outcome": a.outcome,
                "status_code": a.status_code,
                "error": a.error,
                "response": a.response,
                "latency_ms": a.latency_ms,
                "created_at": time(a.created_at_ms),
            })
        })
        .collect();
    Ok(Json(
        json!({ "endpoint_id": endpoint.id, "attempts": items }),
    ))
}

/// Queues one delivery per redriven message and answers with their ids.
async fn requeue(state: &AppState, redriven: Vec<(String, i64)>) -> ApiResult<Response> {
    let jobs: Vec<NewJob> = redriven
        .iter()
        .map(|(message_id, _)| {
            NewJob::new(
                JobPayload::DeliverWebhook(DeliverArgs {
                    message_id: message_id.clone(),
                }),
                None,
                &state.settings.retry,
            )
            // A redrive starts a chain of its own.
            .dedupe(format!(
                "deliver:{message_id}:redrive:{}",
                uuid::Uuid::now_v7().simple()
            ))
        })
        .collect();
    let messages = match state.store.enqueue_jobs(&jobs).await {
        Ok(m) => m,
        Err(e) => {
            // Put them back as they were, so a later redrive finds them.
            for (id, _) in &redriven {
                let _ = state
                    .store
                    .fail_webhook_message(id, "redrive not queued")
                    .await;
            }
            return Err(e.into());
        }
    };
    dispatch_all(state.queue.as_ref(), &messages).await;
    let ids: Vec<&String> = redriven.iter().map(|(id, _)| id).collect();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "redriven": ids.len(), "message_ids": ids })),
    )
        .into_response())
}

#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/messages/{message_id}/redrive", tag = "admin",
    summary = "Send one failed message again (admin key)",
    params(("id" = String, Path, description = "The endpoint id (`ep_…`)"),
        ("message_id" = String, Path, description = "The message id (from the attempts)")),
    security(("api_key" = [])),
    responses(
        (status = 202, description = "Queued: a new delivery chain for the message", body = crate::openapi::schemas::WebhookRedriven),
        (status = 401, description = "`unauthorized`", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: not an admin key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such endpoint, or no such message of it", body = crate::openapi::schemas::ErrorBody),
        (status = 409, description = "`message_not_redrivable`: only failed messages are sent again", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "`service_unavailable`: nothing was changed, try again", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn redrive_one(
    State(state): State<AppState>,
    _admin: Admin,
    Path((id, message_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let endpoint = load(&state, &id).await?;
    let redriven = state
        .store
        .redrive_webhook_messages(&endpoint.id, Some(&message_id), None)
        .await?;
    if redriven.is_empty() {
        return match state.store.webhook_message(&message_id).await? {
            Some(m) if m.endpoint_id == endpoint.id => Err(ApiError::new(
                StatusCode::CONFLICT,
                "message_not_redrivable",
                format!(
                    "only failed messages can be redriven; this one is {}",
                    m.status.as_str()
                ),
            )),
            _ => Err(ApiError::not_found("webhook message")),
        };
    }
    requeue(&state, redriven).await
}

#[utoipa::path(post, path = "/v1/webhook-endpoints/{id}/redrive", tag = "admin",
    summary = "Send an endpoint's failed messages again (admin key)",
    request_body(content = crate::openapi::schemas::WebhookRedriveRequest, content_type = "application/json"),
    params(("id" = String, Path, description = "The endpoint id (`ep_…`)")),
    security(("api_key" = [])),
    responses(
        (status = 202, description = "Queued: one new delivery chain per failed message created since `since` (possibly none)", body = crate::openapi::schemas::WebhookRedriven),
        (status = 400, description = "`invalid_field` (`since` missing or not RFC 3339, an unknown member), `invalid_json`, `invalid_body`", body = crate::openapi::schemas::ErrorBody),
        (status = 401, description = "`unauthorized`", body = crate::openapi::schemas::ErrorBody),
        (status = 403, description = "`forbidden`: not an admin key", body = crate::openapi::schemas::ErrorBody),
        (status = 404, description = "`not_found`: no such endpoint", body = crate::openapi::schemas::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::openapi::schemas::ErrorBody),
        (status = 415, description = "`unsupported_media_type`: send JSON", body = crate::openapi::schemas::ErrorBody),
        (status = 503, description = "`service_unavailable`: nothing was changed, try again", body = crate::openapi::schemas::ErrorBody),
    ))]
async fn redrive_since(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    refuse_unknown(&body, &["since"])?;
    let since = Fields(&body)
        .optional_string("since")?
        .ok_or_else(|| ApiError::invalid_field("since", "since is required (RFC 3339 time)"))?;
    let since = chrono::DateTime::parse_from_rfc3339(&since)
        .map_err(|_| {
            ApiError::invalid_field(
                "since",
                "since is an RFC 3339 time, e.g. 2026-01-31T00:00:00Z",
            )
        })?
        .timestamp_millis();
    let endpoint = load(&state, &id).await?;
    let redriven = state
        .store
        .redrive_webhook_messages(&endpoint.id, None, Some(since))
        .await?;
    requeue(&state, redriven).await
}
