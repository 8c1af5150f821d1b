//! The checkout page a payer opens from a merchant's link, with Pay and
//! Cancel buttons (plain HTML forms, no script).

use super::link::{self, Link};
use super::pay::{self, PayOutcome};
use super::rpc::Reply;
use super::{Payme, MOUNT};
use crate::form::FormFields;
use crate::html::{self, escape};
use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

/// `500000` tiyin → `5,000.00`.
fn som(tiyin: i64) -> String {
    let tiyin = tiyin.unsigned_abs();
    format!("{}.{:02}", html::group_thousands(tiyin / 100), tiyin % 100)
}

/// Why a link does not lead to a payment (Payme's checkout error codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LinkError {
    /// -31610: the link cannot be read.
    Invalid(String),
    /// -31601: the link names another cashbox.
    UnknownMerchant,
    /// The return link is not an allowed http(s) URL (no open redirects).
    ReturnNotAllowed,
}

impl IntoResponse for LinkError {
    fn into_response(self) -> Response {
        match self {
            LinkError::Invalid(why) => html::message(
                StatusCode::BAD_REQUEST,
                "Invalid payment link",
                &format!("-31610: {why}."),
            ),
            LinkError::UnknownMerchant => html::message(
                StatusCode::NOT_FOUND,
                "Merchant not found",
                "-31601: this link names a cashbox the simulator does not know (merchant_id).",
            ),
            LinkError::ReturnNotAllowed => html::message(
                StatusCode::BAD_REQUEST,
                "Invalid payment link",
                "-31610: the return link (c) must be an http(s) URL of the merchant's site.",
            ),
        }
    }
}

/// The link, decoded and addressed to this cashbox.
fn open(p: &Payme, encoded: &str) -> Result<Link, LinkError> {
    let link = link::decode(encoded).map_err(LinkError::Invalid)?;
    if link.merchant_id != p.config().merchant_id {
        return Err(LinkError::UnknownMerchant);
    }
    if link
        .return_url
        .as_deref()
        .is_some_and(|c| !p.return_allowed(c))
    {
        return Err(LinkError::ReturnNotAllowed);
    }
    Ok(link)
}

fn render(link: &Link, encoded: &str) -> Response {
    let amount = som(link.amount);
    let mut rows: Vec<(String, String)> = vec![("Cashbox".into(), link.merchant_id.clone())];
    rows.extend(link.account.iter().map(|(k, v)| (k.clone(), v.clone())));
    rows.push(("Language".into(), link.lang.clone()));
    if let Some(c) = &link.return_url {
        rows.push(("Returns to".into(), c.clone()));
    }
    let rows: Vec<(&str, &str)> = rows.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let fields = [("link", encoded)];
    let body = format!(
        "<h1>Payme — оплата (sandbox)</h1><p class=\"amount\">{} so'm</p>{}\
<div class=\"actions\">{}{}</div>\
<p class=\"note\">Simulated Payme checkout: Pay calls the merchant's endpoint \
(CheckPerformTransaction, CreateTransaction, PerformTransaction); no money moves.</p>",
        escape(&amount),
        html::details(&rows),
        html::post_form(
            &format!("{MOUNT}/pay"),
            &fields,
            "Pay / Оплатить",
            "primary"
        ),
        html::post_form(
            &format!("{MOUNT}/cancel"),
            &fields,
            "Cancel / Отменить",
            "secondary"
        ),
    );
    html::page(StatusCode::OK, "Payme checkout", &body)
}

/// 303 to the merchant's `c` (the browser then GETs it), or `otherwise`.
fn back_to_merchant(link: &Link, otherwise: Response) -> Response {
    match link.return_url.as_deref().map(HeaderValue::from_str) {
        Some(Ok(location)) => (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response(),
        _ => otherwise,
    }
}

/// A message page with a link back to the merchant, if it gave one.
fn tell(status: StatusCode, link: &Link, title: &str, text: &str) -> Response {
    let back = link
        .return_url
        .as_deref()
        .map(|c| {
            format!(
                "<p><a href=\"{}\">Return to the merchant</a></p>",
                escape(c)
            )
        })
        .unwrap_or_default();
    html::page(
        status,
        title,
        &format!("<h1>{}</h1><p>{}</p>{back}", escape(title), escape(text)),
    )
}

async fn pay_and_answer(p: &Payme, link: &Link) -> Response {
    match pay::pay(p, link).await {
        PayOutcome::Paid => back_to_merchant(
            link,
            html::message(StatusCode::OK, "Payment successful", "Оплата прошла успешно."),
        ),
        PayOutcome::Refused {
            method,
            code,
            message,
        } => {
            let code = code.map_or_else(|| "no valid answer".to_owned(), |c| c.to_string());
            tell(
                StatusCode::OK,
                link,
                "Payment refused by the merchant",
                &format!("{method}: {code}: {message}"),
            )
        }
        PayOutcome::DebitFailed => tell(
            StatusCode::OK,
            link,
            "Card debit failed",
            "The (simulated) card could not be debited; the transaction was cancelled with reason 2.",
        ),
        PayOutcome::NoMerchant => tell(
            StatusCode::SERVICE_UNAVAILABLE,
            link,
            "No merchant endpoint",
            "The simulator has no merchant_url (PAYGATE_SANDBOX_PAYME_MERCHANT_URL) to call.",
        ),
    }
}

pub(super) async fn page(State(p): State<Payme>, Path(encoded): Path<String>) -> Response {
    let link = match open(&p, &encoded) {
        Ok(link) => link,
        Err(e) => return e.into_response(),
    };
    if p.config().autopay {
        return pay_and_answer(&p, &link).await;
    }
    render(&link, &encoded)
}

fn posted(p: &Payme, form: &FormFields) -> Result<Link, LinkError> {
    open(p, form.get("link").unwrap_or_default())
}

pub(super) async fn pay(State(p): State<Payme>, form: FormFields) -> Response {
    match posted(&p, &form) {
        Ok(link) => pay_and_answer(&p, &link).await,
        Err(e) => e.into_response(),
    }
}

/// The payer gave up before paying: Payme has created nothing yet, so the
/// merchant hears nothing and the browser goes back.
pub(super) async fn cancel(State(p): State<Payme>, form: FormFields) -> Response {
    match posted(&p, &form) {
        Ok(link) => back_to_merchant(
            &link,
            html::message(
                StatusCode::OK,
                "Payment cancelled",
                "You cancelled this payment.",
            ),
        ),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub(super) struct CabinetCancel {
    id: String,
    #[serde(default = "refund_reason")]
    reason: i64,
}

fn refund_reason() -> i64 {
    5
}

/// `POST _cancel {"id", "reason"?}`: the cabinet cancels a transaction (a
/// refund after perform, reason 5 by default); answers the merchant's reply.
pub(super) async fn cabinet_cancel(State(p): State<Payme>, body: axum::body::Bytes) -> Response {
    let request: CabinetCancel = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("expected {{\"id\", \"reason\"?}}: {e}")})),
            )
                .into_response()
        }
    };
    match pay::cancel(&p, &request.id, request.reason).await {
        Ok(Reply::Result(result)) => Json(json!({"result": result})).into_response(),
        Ok(Reply::Error {
            code,
            message,
            data,
        }) => {
            Json(json!({"error": {"code": code, "message": message, "data": data}})).into_response()
        }
        Err(why) => (StatusCode::BAD_GATEWAY, Json(json!({"error": why}))).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_som() {
        assert_eq!(som(500_000), "5,000.00");
        assert_eq!(som(5), "0.05");
    }

    #[test]
    fn reasons_default_to_refund() {
        let c: CabinetCancel = serde_json::from_value(json!({"id": "x"})).unwrap();
        assert_eq!((c.id.as_str(), c.reason), ("x", 5));
    }
}
