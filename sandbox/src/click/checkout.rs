//! The pay page `…/services/pay?service_id=&merchant_id=&amount=&transaction_param=&return_url=`
//! (gateways.md §4.7) with "Pay" and "Insufficient funds" buttons. Pressing
//! one runs a whole attempt against the merchant, then sends the browser to
//! `return_url`. Plain HTML forms; no script.

use super::attempt::{self, Funds, Outcome};
use super::wire::parse_som;
use super::Click;
use crate::form::FormFields;
use crate::html::{self, escape};
use crate::links::decode_lenient;
use axum::extract::{RawQuery, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

/// A validated pay request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PayRequest {
    service_id: String,
    merchant_id: String,
    amount: String,
    amount_tiyin: u64,
    transaction_param: String,
    return_url: Option<String>,
}

/// Why a pay link or form is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkError {
    UnknownService,
    BadAmount,
    NoTransactionParam,
    /// The return link is not an allowed http(s) URL (no open redirects).
    ReturnNotAllowed,
}

impl IntoResponse for LinkError {
    fn into_response(self) -> Response {
        let bad = |text| html::message(StatusCode::BAD_REQUEST, "Invalid payment link", text);
        match self {
            LinkError::UnknownService => html::message(
                StatusCode::NOT_FOUND,
                "Service not found",
                "This payment link names an unknown service or merchant.",
            ),
            LinkError::BadAmount => bad("amount must be a positive number of so'm such as 50.00."),
            LinkError::NoTransactionParam => bad("transaction_param is missing."),
            LinkError::ReturnNotAllowed => {
                bad("return_url must be an http(s) URL of the merchant's site.")
            }
        }
    }
}

fn read(click: &Click, get: impl Fn(&str) -> Option<String>) -> Result<PayRequest, LinkError> {
    let cfg = click.config();
    let service_id = get("service_id").unwrap_or_default();
    let merchant_id = get("merchant_id").unwrap_or_default();
    if service_id != cfg.service_id || merchant_id != cfg.merchant_id {
        return Err(LinkError::UnknownService);
    }
    let amount = get("amount").unwrap_or_default();
    let amount_tiyin = parse_som(&amount)
        .filter(|t| *t > 0)
        .ok_or(LinkError::BadAmount)?;
    let transaction_param = get("transaction_param")
        .filter(|t| !t.is_empty())
        .ok_or(LinkError::NoTransactionParam)?;
    let return_url = get("return_url")
        .map(|u| decode_lenient(&u))
        .filter(|u| !u.is_empty());
    if return_url
        .as_deref()
        .is_some_and(|u| !click.return_allowed(u))
    {
        return Err(LinkError::ReturnNotAllowed);
    }
    Ok(PayRequest {
        service_id,
        merchant_id,
        amount,
        amount_tiyin,
        transaction_param,
        return_url,
    })
}

fn render(req: &PayRequest) -> Response {
    let fields = [
        ("service_id", req.service_id.as_str()),
        ("merchant_id", req.merchant_id.as_str()),
        ("amount", req.amount.as_str()),
        ("transaction_param", req.transaction_param.as_str()),
        ("return_url", req.return_url.as_deref().unwrap_or_default()),
    ];
    let tiyin = req.amount_tiyin;
    let body = format!(
        "<h1>CLICK — to'lov (sandbox)</h1><p class=\"amount\">{} so'm</p>{}\
<div class=\"actions\">{}{}</div>\
<p class=\"note\">Simulated Click. \"Pay\" calls the merchant's Prepare and Complete; \
\"Insufficient funds\" sends Complete with error -5017. No money moves.</p>",
        escape(&format!(
            "{}.{:02}",
            html::group_thousands(tiyin / 100),
            tiyin % 100
        )),
        html::details(&[
            ("Order", &req.transaction_param),
            ("Service", &req.service_id),
            ("Merchant", &req.merchant_id),
        ]),
        html::post_form("pay/confirm", &fields, "Pay / To'lash", "primary"),
        html::post_form(
            "pay/insufficient",
            &fields,
            "Insufficient funds / Mablag' yetarli emas",
            "danger"
        ),
    );
    html::page(StatusCode::OK, "CLICK payment", &body)
}

pub(super) async fn page(State(click): State<Click>, RawQuery(query): RawQuery) -> Response {
    let pairs: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    match read(&click, |k| pairs.get(k).map(|v| v.trim().to_owned())) {
        Ok(req) => render(&req),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn confirm(State(click): State<Click>, form: FormFields) -> Response {
    pay(click, form, Funds::Enough).await
}

pub(super) async fn insufficient(State(click): State<Click>, form: FormFields) -> Response {
    pay(click, form, Funds::Insufficient).await
}

async fn pay(click: Click, form: FormFields, funds: Funds) -> Response {
    let req = match read(&click, |k| form.get(k).map(str::to_owned)) {
        Ok(req) => req,
        Err(e) => return e.into_response(),
    };
    let outcome = attempt::run(&click, &req.transaction_param, req.amount_tiyin, funds).await;
    tracing::info!(order = %req.transaction_param, ?outcome, "click: attempt finished");
    let link = req.return_url.as_deref();
    match outcome {
        Outcome::Paid | Outcome::Declined { .. } => match link.map(HeaderValue::from_str) {
            Some(Ok(location)) => (StatusCode::FOUND, [(LOCATION, location)]).into_response(),
            _ if matches!(outcome, Outcome::Paid) => html::message(
                StatusCode::OK,
                "Payment successful",
                "To'lov muvaffaqiyatli amalga oshirildi. You may close this page.",
            ),
            _ => html::message(
                StatusCode::OK,
                "Insufficient funds",
                "Mablag' yetarli emas. No money was taken.",
            ),
        },
        Outcome::PrepareRefused { error, note } => tell(
            "Payment refused by the merchant",
            &format!(
                "The merchant refused this payment (error {error}: {note}). No money was taken."
            ),
            link,
        ),
        Outcome::CompleteRefused { error, note } => tell(
            "Payment under investigation",
            &format!(
                "The money was taken but the merchant answered error {error} ({note}); \
Click support would now investigate it by hand."
            ),
            link,
        ),
        Outcome::Unreachable(why) => tell(
            "Merchant unavailable",
            &format!("The merchant could not be reached ({why})."),
            link,
        ),
        Outcome::NoMerchant => html::message(
            StatusCode::SERVICE_UNAVAILABLE,
            "No merchant configured",
            "Set the simulator's prepare_url (PAYGATE_SANDBOX_CLICK_PREPARE_URL or PUT _config).",
        ),
    }
}

fn tell(title: &str, text: &str, link: Option<&str>) -> Response {
    match link {
        Some(l) => html::message_then_redirect(StatusCode::OK, title, text, l),
        None => html::message(StatusCode::OK, title, text),
    }
}
