//! `/merchant/pay/create`, `/get` and `/reverse` (docs/gateways/atmos.md, 'Endpoints' and
//! 'Result envelope and error codes').

use super::codes::{self, Code};
use super::store::{NewTxn, ReverseError, TxnStatus};
use super::{callback, now_ms, token, Atmos};
use crate::faults;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

/// Injected faults, counted; `Some` is the response to give instead.
pub(super) async fn fault(a: &Atmos) -> Option<Response> {
    let cfg = a.config();
    if faults::inject(cfg.latency_ms, cfg.error_rate).await {
        a.store().stats.injected_errors_total += 1;
        return Some((StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response());
    }
    None
}

pub(super) fn result(code: &Code) -> Value {
    json!({ "code": code.code, "description": code.description })
}

/// Business errors are HTTP 200 with a non-"OK" `result.code`.
pub(super) fn refuse(code: &Code) -> Response {
    Json(json!({ "result": result(code) })).into_response()
}

/// Faults, then the Bearer check, then a JSON object body.
pub(super) async fn preamble(
    a: &Atmos,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Map<String, Value>, Response> {
    if let Some(response) = fault(a).await {
        return Err(response);
    }
    token::check_bearer(a, headers).map_err(IntoResponse::into_response)?;
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(refuse(&codes::BAD_REQUEST)),
    }
}

/// A JSON string (trimmed) or an integer, as text. Clients disagree on
/// whether ids travel as strings or numbers (docs/gateways/atmos.md,
/// 'Amounts and ids'), so both are accepted.
pub(super) fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A non-negative integer given as a number or a digit-only string.
pub(super) fn id(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if digits(s.trim()) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(super) fn store_matches(body: &Map<String, Value>, store_id: &str) -> bool {
    text(body.get("store_id")).as_deref() == Some(store_id)
}

pub(super) async fn create(State(a): State<Atmos>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match preamble(&a, &headers, &body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let cfg = a.config();
    if !store_matches(&body, &cfg.store_id) {
        return refuse(&codes::UNKNOWN_STORE);
    }
    let Some(amount) = id(body.get("amount")).filter(|a| *a > 0) else {
        return refuse(&codes::BAD_AMOUNT);
    };
    let Some(account) = text(body.get("account")).filter(|s| digits(s)) else {
        return refuse(&codes::BAD_ACCOUNT);
    };
    let new = NewTxn {
        account,
        amount,
        terminal_id: text(body.get("terminal_id")).filter(|s| !s.is_empty()),
        details: text(body.get("details")).filter(|s| !s.is_empty()),
    };
    let txn = a.store().create(new, now_ms());
    if cfg.autopay {
        callback::spawn_autopay(a.clone(), txn.trans_id, cfg.autopay_delay_ms);
    }
    Json(json!({
        "result": result(&codes::OK),
        "transaction_id": txn.trans_id,
        "store_transaction": {
            "trans_id": txn.trans_id,
            "account": txn.account,
            "amount": txn.amount,
            "terminal_id": txn.terminal_id,
            "confirmed": false,
            "total": txn.amount,
        },
    }))
    .into_response()
}

pub(super) async fn get(State(a): State<Atmos>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match preamble(&a, &headers, &body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let cfg = a.config();
    let mut store = a.store();
    store.stats.gets_total += 1;
    if !store_matches(&body, &cfg.store_id) {
        return refuse(&codes::UNKNOWN_STORE);
    }
    let Some(txn) = id(body.get("transaction_id")).and_then(|t| store.get(t)) else {
        return refuse(&codes::NOT_FOUND);
    };
    // Closed transactions still carry their details, so a client can log why.
    let code = match txn.status {
        TxnStatus::Declined | TxnStatus::Reversed => &codes::CLOSED,
        TxnStatus::Pending | TxnStatus::Confirmed => &codes::OK,
    };
    Json(json!({ "result": result(code), "store_transaction": txn.to_json() })).into_response()
}

/// Accepts the three body shapes seen in client code (docs/gateways/atmos.md, 'Refunds'):
/// (a) `{transaction_id: <success_trans_id>, reason}`,
/// (b) `{store_id, success_trans_id}`,
/// (c) `{transaction_id, store_id[, reason]}`.
pub(super) async fn reverse(State(a): State<Atmos>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match preamble(&a, &headers, &body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let cfg = a.config();
    // Variant (a) has no store_id; when one is present it must be ours.
    if body.contains_key("store_id") && !store_matches(&body, &cfg.store_id) {
        return refuse(&codes::UNKNOWN_STORE);
    }
    let success_trans_id = id(body.get("success_trans_id"));
    let transaction_id = id(body.get("transaction_id"));
    if success_trans_id.is_none() && transaction_id.is_none() {
        return refuse(&codes::BAD_REQUEST);
    }
    let mut store = a.store();
    let outcome = match store.find_for_reverse(success_trans_id, transaction_id) {
        Some(trans_id) => store.reverse(trans_id),
        None => Err(ReverseError::NotFound),
    };
    match outcome {
        Ok(txn) => Json(json!({
            "result": result(&codes::OK),
            "transaction_id": txn.trans_id,
            "store_transaction": txn.to_json(),
        }))
        .into_response(),
        Err(ReverseError::NotFound) => refuse(&codes::NOT_FOUND),
        Err(ReverseError::NotConfirmed) => refuse(&codes::NOT_CONFIRMED),
        Err(ReverseError::Closed) => refuse(&codes::CLOSED),
    }
}
