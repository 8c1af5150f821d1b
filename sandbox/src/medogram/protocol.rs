//! `gateway-send` and `gateway-result-second` (docs/gateways/medogram.md,
//! 'Create invoice: gateway-send', 'Verify: gateway-result-second' and 'Simulator').

use super::store::NewInvoice;
use super::{autopay, Medogram};
use crate::faults;
use crate::form::FormFields;
use crate::links::decode_lenient;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

// Send answers (docs/gateways/medogram.md, 'Send answers and error codes').
const SEND_BAD_API: i64 = -1;
const SEND_BAD_AMOUNT: i64 = -2;
const SEND_NO_REDIRECT: i64 = -3;
// Verify answers (docs/gateways/medogram.md, 'Verify answers and status codes').
const VERIFY_BAD_API: i64 = -1;
const VERIFY_BAD_TRANS_ID: i64 = -2;
const VERIFY_BAD_ID_GET: i64 = -3;
const VERIFY_NOT_PAID: i64 = -4;

const MIN_AMOUNT_RIAL: u64 = 1000;

/// BitPay answers with a bare integer in a text body.
fn bare(n: impl ToString) -> Response {
    ([(CONTENT_TYPE, "text/plain; charset=utf-8")], n.to_string()).into_response()
}

pub(super) fn unavailable() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
}

/// Injected faults, counted; `Some` is the response to give instead.
pub(super) async fn fault(m: &Medogram) -> Option<Response> {
    let cfg = m.config();
    if faults::inject(cfg.latency_ms, cfg.error_rate).await {
        m.store().stats.injected_errors_total += 1;
        return Some(unavailable());
    }
    None
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Validates in the order the checklist gives: api, amount, redirect.
fn validate_send(
    api_key: &str,
    form: &FormFields,
    links: &crate::links::ReturnLinks,
) -> Result<NewInvoice, i64> {
    if form.get("api") != Some(api_key) {
        return Err(SEND_BAD_API);
    }
    let amount = form
        .get("amount")
        .and_then(digits)
        .filter(|a| *a >= MIN_AMOUNT_RIAL)
        .ok_or(SEND_BAD_AMOUNT)?;
    let redirect = decode_lenient(form.get("redirect").unwrap_or_default());
    // A link the payer may not be sent to counts as no usable redirect.
    if redirect.is_empty() || !links.allows(&redirect) {
        return Err(SEND_NO_REDIRECT);
    }
    let text = |name: &str| form.get(name).unwrap_or_default().to_owned();
    Ok(NewInvoice {
        amount,
        redirect,
        factor_id: text("factorId"),
        name: text("name"),
        email: text("email"),
        description: text("description"),
    })
}

pub(super) async fn gateway_send(State(m): State<Medogram>, form: FormFields) -> Response {
    if let Some(response) = fault(&m).await {
        return response;
    }
    let cfg = m.config();
    m.store()
        .record_send(form.get("factorId").unwrap_or_default());
    let new = match validate_send(&cfg.api_key, &form, m.return_links()) {
        Ok(new) => new,
        Err(code) => return bare(code),
    };
    let (id_get, created) = m.store().create_invoice(new, cfg.send_dedupe_by_factor);
    if created && cfg.autopay {
        autopay::spawn(m.clone(), id_get, cfg.autopay_delay_ms);
    }
    bare(id_get)
}

pub(super) async fn gateway_result_second(State(m): State<Medogram>, form: FormFields) -> Response {
    if let Some(response) = fault(&m).await {
        return response;
    }
    let cfg = m.config();
    let json = matches!(form.get("json"), Some("1" | "true"));
    let outcome = {
        let mut store = m.store();
        store.stats.verifies_total += 1;
        if form.get("api") != Some(cfg.api_key.as_str()) {
            Err(VERIFY_BAD_API)
        } else {
            match (
                form.get("trans_id").and_then(digits),
                form.get("id_get").and_then(digits),
            ) {
                (None, _) => Err(VERIFY_BAD_TRANS_ID),
                (_, None) => Err(VERIFY_BAD_ID_GET),
                (Some(trans_id), Some(id_get)) => {
                    store.verify(trans_id, id_get).ok_or(VERIFY_NOT_PAID)
                }
            }
        }
    };
    match (outcome, json) {
        (Ok(v), true) => Json(json!({
            "status": v.status,
            "amount": v.amount,
            "cardNum": v.card_num,
            "factorId": v.factor_id,
        }))
        .into_response(),
        (Ok(v), false) => bare(v.status),
        (Err(code), true) => Json(json!({ "status": code })).into_response(),
        (Err(code), false) => bare(code),
    }
}
