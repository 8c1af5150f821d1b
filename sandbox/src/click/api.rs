//! The Click Merchant API calls paygate makes (gateways.md §4.8): payment
//! status and payment reversal, behind the `Auth` header check.
//!
//! Click documents `error_code` 0 as success and nothing else; the non-zero
//! codes here are the simulator's own. A repeated reversal answers 0 again.

use super::store::{STATUS_REVERSED, STATUS_SUCCESSFUL};
use super::Click;
use crate::faults;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use sha1::{Digest, Sha1};

pub(super) const PAYMENT_NOT_FOUND: i64 = -5001;
pub(super) const NOT_REVERSIBLE: i64 = -5002;
pub(super) const UNKNOWN_SERVICE: i64 = -5003;

/// Checks `Auth: merchant_user_id:sha1(timestamp + secret_key):timestamp`.
fn authorized(click: &Click, headers: &HeaderMap) -> bool {
    let cfg = click.config();
    let Some(value) = headers.get("Auth").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut parts = value.trim().splitn(3, ':');
    let (Some(user), Some(digest), Some(timestamp)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    let now = chrono::Utc::now().timestamp();
    if timestamp.len() != 10 || now.abs_diff(ts) > cfg.auth_max_skew_secs {
        return false;
    }
    let expected = hex::encode(Sha1::digest(format!("{timestamp}{}", cfg.secret_key)));
    user == cfg.merchant_user_id && digest.eq_ignore_ascii_case(&expected)
}

/// Fault injection and the `Auth` check every call goes through.
async fn gate(click: &Click, headers: &HeaderMap) -> Option<Response> {
    let cfg = click.config();
    if faults::inject(cfg.latency_ms, cfg.error_rate).await {
        return Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error_code": -500, "error_note": "Internal error (injected)"})),
            )
                .into_response(),
        );
    }
    if !authorized(click, headers) {
        click.store().stats.auth_failures += 1;
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error_code": -401, "error_note": "Not authorized"})),
            )
                .into_response(),
        );
    }
    None
}

fn error(code: i64, note: &str, payment_id: &str) -> Response {
    Json(json!({"error_code": code, "error_note": note, "payment_id": payment_id})).into_response()
}

/// `GET …/payment/status/{service_id}/{payment_id}`
pub(super) async fn status(
    State(click): State<Click>,
    Path((service_id, payment_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = gate(&click, &headers).await {
        return refusal;
    }
    if service_id != click.config().service_id {
        return error(UNKNOWN_SERVICE, "Service not found", &payment_id);
    }
    let mut store = click.store();
    store.stats.status_queries += 1;
    let found = payment_id
        .parse::<u64>()
        .ok()
        .and_then(|id| store.payments.get(&id).map(|p| (id, p.status)));
    match found {
        Some((id, status)) => Json(json!({
            "error_code": 0,
            "error_note": "Success",
            "payment_id": id,
            "payment_status": status,
        }))
        .into_response(),
        None => error(PAYMENT_NOT_FOUND, "Payment not found", &payment_id),
    }
}

/// `DELETE …/payment/reversal/{service_id}/{payment_id}`
pub(super) async fn reversal(
    State(click): State<Click>,
    Path((service_id, payment_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = gate(&click, &headers).await {
        return refusal;
    }
    if service_id != click.config().service_id {
        return error(UNKNOWN_SERVICE, "Service not found", &payment_id);
    }
    let mut store = click.store();
    let Some((id, status)) = payment_id
        .parse::<u64>()
        .ok()
        .and_then(|id| store.payments.get(&id).map(|p| (id, p.status)))
    else {
        return error(PAYMENT_NOT_FOUND, "Payment not found", &payment_id);
    };
    match status {
        STATUS_SUCCESSFUL | STATUS_REVERSED => {
            if status == STATUS_SUCCESSFUL {
                store.set_status(id, STATUS_REVERSED);
                store.stats.reversals += 1;
            }
            Json(json!({"error_code": 0, "error_note": "Success", "payment_id": id}))
                .into_response()
        }
        _ => error(
            NOT_REVERSIBLE,
            "Only a successful payment can be reversed",
            &payment_id,
        ),
    }
}
