//! The merchant API's card flow and the calls third-party clients make
//! besides create/get/reverse (gateways.md §1.3): `pre-apply` attaches a
//! card (number + YYMM expiry, or a card token) and "sends" the SMS code,
//! `apply` checks the code (`111111` for test cards) and pays, which asks the
//! merchant's callback exactly like the hosted checkout does; `cancel`
//! closes an unpaid transaction; `info` is another client's name for `get`.
//! Anything unknown answers in Atmos' `result` envelope.

use super::api::{id, preamble, refuse, result, store_matches, text};
use super::callback::{self, PayOutcome};
use super::codes;
use super::store::{NotPayable, TxnStatus};
use super::Atmos;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// The SMS code the simulator "sends" (Atmos' test cards use it too).
const TEST_OTP: &str = "111111";

fn digits(s: &str, len: std::ops::RangeInclusive<usize>) -> bool {
    len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

pub(super) async fn pre_apply(State(a): State<Atmos>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match preamble(&a, &headers, &body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    if !store_matches(&body, &a.config().store_id) {
        return refuse(&codes::UNKNOWN_STORE);
    }
    let card = text(body.get("card_number")).filter(|c| !c.is_empty());
    let expiry = text(body.get("expiry")).filter(|e| !e.is_empty());
    let token = text(body.get("card_token")).filter(|t| !t.is_empty());
    let card_ok = match (&card, &expiry, &token) {
        (Some(c), Some(e), None) => digits(c, 16..=19) && digits(e, 4..=4),
        (None, None, Some(_)) => true,
        _ => false, // neither, or both kinds at once
    };
    if !card_ok {
        return refuse(&codes::BAD_REQUEST);
    }
    let Some(trans_id) = id(body.get("transaction_id")) else {
        return refuse(&codes::BAD_REQUEST);
    };
    let mut store = a.store();
    match store.get(trans_id).map(|t| (t.status, t.paying)) {
        None => refuse(&codes::NOT_FOUND),
        Some((TxnStatus::Pending, false)) => {
            store.pre_applied.insert(trans_id);
            Json(json!({ "result": result(&codes::OK), "transaction_id": trans_id }))
                .into_response()
        }
        Some(_) => refuse(&codes::CLOSED),
    }
}

pub(super) async fn apply(State(a): State<Atmos>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match preamble(&a, &headers, &body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    if !store_matches(&body, &a.config().store_id) {
        return refuse(&codes::UNKNOWN_STORE);
    }
    let Some(trans_id) = id(body.get("transaction_id")) else {
        return refuse(&codes::BAD_REQUEST);
    };
    {
        let store = a.store();
        if store.get(trans_id).is_none() {
            return refuse(&codes::NOT_FOUND);
        }
        if !store.pre_applied.contains(&trans_id) {
            return refuse(&codes::NOT_PRE_APPLIED);
        }
    }
    if text(body.get("otp")).as_deref() != Some(TEST_OTP) {
        return refuse(&codes::WRONG_OTP);
    }
    let outcome = callback::pay(&a, trans_id).await;
    let mut store = a.store();
    store.pre_applied.remove(&trans_id);
    let txn = store.get(trans_id).map(|t| t.to_json());
    match outcome {
        PayOutcome::Confirmed => Json(json!({
            "result": result(&codes::OK),
            "store_transaction": txn,
            "ofd_url": null,
            "ofd_url_commission": null,
        }))
        .into_response(),
        PayOutcome::Refused(_) => refuse(&codes::DECLINED),
        PayOutcome::NotPayable(NotPayable::NotFound) => refuse(&codes::NOT_FOUND),
        PayOutcome::NotPayable(NotPayable::InProgress) => refuse(&codes::BAD_REQUEST),
        PayOutcome::NotPayable(NotPayable::Settled(_)) => refuse(&codes::CLOSED),
    }
}

/// Closes an unpaid transaction; cancelling it again answers the same.
pub(super) async fn cancel(State(a): State<Atmos>, headers: HeaderMap, body: Bytes) -> Response {
    let body = match preamble(&a, &headers, &body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    if body.contains_key("store_id") && !store_matches(&body, &a.config().store_id) {
        return refuse(&codes::UNKNOWN_STORE);
    }
    let Some(trans_id) = id(body.get("transaction_id")) else {
        return refuse(&codes::BAD_REQUEST);
    };
    let mut store = a.store();
    match store.decline(trans_id) {
        None => refuse(&codes::NOT_FOUND),
        Some(TxnStatus::Declined) => {
            store.pre_applied.remove(&trans_id);
            let txn = store.get(trans_id).map(|t| t.to_json());
            Json(json!({
                "result": result(&codes::OK),
                "transaction_id": trans_id,
                "store_transaction": txn,
            }))
            .into_response()
        }
        Some(_) => refuse(&codes::CLOSED),
    }
}

/// Any path or method the simulated API does not have: Atmos' envelope, so
/// a client can read why instead of choking on an empty 404.
pub(super) async fn unknown() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "result": result(&codes::UNKNOWN_METHOD) })),
    )
        .into_response()
}
