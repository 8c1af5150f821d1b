//! The hosted checkout page (docs/gateways/atmos.md, 'Checkout link') with Pay, Decline and
//! Wrong OTP buttons.

use super::callback::{self, PayOutcome};
use super::codes;
use super::store::{NotPayable, Txn, TxnStatus};
use super::Atmos;
use crate::form::FormFields;
use crate::html::{self, escape};
use crate::links::{decode_lenient, percent_decode};
use axum::extract::{RawQuery, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Default, PartialEq, Eq)]
struct CheckoutQuery {
    store_id: Option<String>,
    transaction_id: Option<String>,
    redirect_link: Option<String>,
}

fn form_decode(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

/// Parses the checkout query leniently. Some clients append `redirectLink`
/// unencoded, so its own `&x=y` pairs land as separate parameters; those are
/// glued back onto the link.
fn parse_query(raw: &str) -> CheckoutQuery {
    let mut q = CheckoutQuery::default();
    let mut link: Option<String> = None;
    for segment in raw.split('&').filter(|s| !s.is_empty()) {
        let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
        match form_decode(key).as_str() {
            "storeId" => q.store_id = Some(form_decode(value).trim().to_owned()),
            "transactionId" => q.transaction_id = Some(form_decode(value).trim().to_owned()),
            "redirectLink" => link = Some(value.to_owned()),
            _ => {
                if let Some(l) = link.as_mut() {
                    l.push('&');
                    l.push_str(segment);
                }
            }
        }
    }
    q.redirect_link = link
        .map(|raw| {
            if raw.contains("://") {
                raw // sent unencoded: take it verbatim
            } else {
                decode_lenient(&percent_decode(&raw))
            }
        })
        .filter(|l| !l.trim().is_empty());
    q
}

fn parse_id(s: Option<&str>) -> Option<u64> {
    let s = s?.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `1234567` tiyin → `12,345.67`.
fn som(tiyin: u64) -> String {
    format!("{}.{:02}", html::group_thousands(tiyin / 100), tiyin % 100)
}

fn render(txn: &Txn, store_id: &str, redirect: Option<&str>, error: Option<&str>) -> Response {
    let trans_id = txn.trans_id.to_string();
    let link = redirect.unwrap_or_default();
    let fields = [
        ("transactionId", trans_id.as_str()),
        ("storeId", store_id),
        ("redirectLink", link),
    ];
    let notice = match (txn.status, txn.paying, error) {
        (_, _, Some(e)) => format!("<p class=\"error\">{}</p>", escape(e)),
        (TxnStatus::Pending, true, _) => "<p class=\"error\">Payment in progress…</p>".to_owned(),
        (TxnStatus::Pending, false, _) => String::new(),
        (TxnStatus::Confirmed, _, _) => {
            "<p class=\"error\">This transaction is already paid.</p>".to_owned()
        }
        (TxnStatus::Declined | TxnStatus::Reversed, _, _) => {
            "<p class=\"error\">Транзакция закрыта / This transaction is closed.</p>".to_owned()
        }
    };
    let actions = if txn.status == TxnStatus::Pending && !txn.paying {
        // Relative actions work under /invoice/ and /checkout/invoice/ alike.
        format!(
            "{}{}{}",
            html::post_form("pay", &fields, "Pay / Оплатить", "primary"),
            html::post_form("decline", &fields, "Decline / Отказаться", "secondary"),
            html::post_form("wrong-otp", &fields, "Wrong OTP / Неверный код", "danger"),
        )
    } else if !link.is_empty() {
        format!("<a href=\"{}\">Return to the merchant</a>", escape(link))
    } else {
        String::new()
    };
    let account = txn.account.clone();
    let body = format!(
        "<h1>ATMOS — оплата (sandbox)</h1><p class=\"amount\">{} UZS</p>{notice}{}\
<div class=\"actions\">{actions}</div>\
<p class=\"note\">Simulated checkout. Test card 8600 49** **** 3347, SMS code 111111; no money moves.</p>",
        escape(&som(txn.amount)),
        html::details(&[
            ("Transaction", &trans_id),
            ("Store", store_id),
            ("Account", &account),
            ("Details", txn.details.as_deref().unwrap_or_default()),
        ]),
    );
    html::page(StatusCode::OK, "ATMOS checkout", &body)
}

/// Why a checkout link or form does not lead to a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LookupError {
    UnknownStore,
    BadLink,
    NotFound,
}

impl IntoResponse for LookupError {
    fn into_response(self) -> Response {
        match self {
            LookupError::UnknownStore => html::message(
                StatusCode::NOT_FOUND,
                "Store not found",
                "This payment link names an unknown store.",
            ),
            LookupError::BadLink => html::message(
                StatusCode::BAD_REQUEST,
                "Invalid payment link",
                "The link has no valid transactionId.",
            ),
            LookupError::NotFound => not_found(),
        }
    }
}

fn not_found() -> Response {
    html::message(
        StatusCode::NOT_FOUND,
        "Transaction not found",
        "Транзакция не найдена.",
    )
}

fn lookup(
    a: &Atmos,
    store_id: Option<&str>,
    transaction_id: Option<&str>,
) -> Result<(Txn, String), LookupError> {
    let cfg = a.config();
    if store_id.is_some_and(|s| !s.is_empty() && s != cfg.store_id) {
        return Err(LookupError::UnknownStore);
    }
    let id = parse_id(transaction_id).ok_or(LookupError::BadLink)?;
    let txn = a.store().get(id).cloned().ok_or(LookupError::NotFound)?;
    Ok((txn, cfg.store_id))
}

pub(super) async fn page(State(a): State<Atmos>, RawQuery(query): RawQuery) -> Response {
    let q = parse_query(query.as_deref().unwrap_or_default());
    let link = a.allowed_link(q.redirect_link.as_deref());
    match lookup(&a, q.store_id.as_deref(), q.transaction_id.as_deref()) {
        Ok((txn, store_id)) => render(&txn, &store_id, link, None),
        Err(e) => e.into_response(),
    }
}

/// The hidden fields the checkout forms post back; a return link the payer
/// may not be sent to is dropped (the page then just says what happened).
fn posted<'f>(
    a: &Atmos,
    form: &'f FormFields,
) -> (Option<&'f str>, Option<&'f str>, Option<&'f str>) {
    (
        form.get("storeId"),
        form.get("transactionId"),
        a.allowed_link(form.get("redirectLink").filter(|l| !l.is_empty())),
    )
}

/// 302 to the merchant's link, or `otherwise` when there is none (or it is
/// not a usable header value).
fn back_to_merchant(link: Option<&str>, otherwise: Response) -> Response {
    match link.map(HeaderValue::from_str) {
        Some(Ok(location)) => (StatusCode::FOUND, [(LOCATION, location)]).into_response(),
        _ => otherwise,
    }
}

/// A page with a message that then forwards to the merchant, if it gave a link.
fn tell(title: &str, text: &str, link: Option<&str>) -> Response {
    match link {
        Some(l) => html::message_then_redirect(StatusCode::OK, title, text, l),
        None => html::message(StatusCode::OK, title, text),
    }
}

pub(super) async fn pay(State(a): State<Atmos>, form: FormFields) -> Response {
    let (store_id, transaction_id, link) = posted(&a, &form);
    let txn = match lookup(&a, store_id, transaction_id) {
        Ok((txn, _)) => txn,
        Err(e) => return e.into_response(),
    };
    match callback::pay(&a, txn.trans_id).await {
        PayOutcome::Confirmed
        | PayOutcome::NotPayable(NotPayable::Settled(TxnStatus::Confirmed)) => back_to_merchant(
            link,
            html::message(
                StatusCode::OK,
                "Payment successful",
                "Оплата прошла успешно. You may close this page.",
            ),
        ),
        PayOutcome::Refused(reason) => tell(
            "Payment refused by the merchant",
            &format!("The merchant did not accept this payment ({reason}). No money was taken."),
            link,
        ),
        PayOutcome::NotPayable(NotPayable::InProgress) => html::message(
            StatusCode::CONFLICT,
            "Payment in progress",
            "This payment is already being processed.",
        ),
        PayOutcome::NotPayable(NotPayable::NotFound) => not_found(),
        PayOutcome::NotPayable(NotPayable::Settled(_)) => tell(
            "Transaction closed",
            "Транзакция закрыта. This payment can no longer be made.",
            link,
        ),
    }
}

pub(super) async fn decline(State(a): State<Atmos>, form: FormFields) -> Response {
    let (store_id, transaction_id, link) = posted(&a, &form);
    let txn = match lookup(&a, store_id, transaction_id) {
        Ok((txn, _)) => txn,
        Err(e) => return e.into_response(),
    };
    let status = a.store().decline(txn.trans_id);
    match status {
        Some(TxnStatus::Declined) => back_to_merchant(
            link,
            html::message(
                StatusCode::OK,
                "Payment declined",
                "You declined this payment.",
            ),
        ),
        Some(TxnStatus::Confirmed) => {
            tell("Already paid", "This transaction is already paid.", link)
        }
        Some(TxnStatus::Pending) => html::message(
            StatusCode::CONFLICT,
            "Payment in progress",
            "This payment is already being processed.",
        ),
        Some(TxnStatus::Reversed) => tell("Transaction closed", "Транзакция закрыта.", link),
        None => not_found(),
    }
}

/// Shows the page again with the error Atmos gives for a wrong SMS code;
/// the transaction stays payable.
pub(super) async fn wrong_otp(State(a): State<Atmos>, form: FormFields) -> Response {
    let (store_id, transaction_id, link) = posted(&a, &form);
    match lookup(&a, store_id, transaction_id) {
        Ok((txn, store_id)) => {
            let error = format!(
                "{} ({})",
                codes::WRONG_OTP.description,
                codes::WRONG_OTP.code
            );
            render(&txn, &store_id, link, Some(&error))
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_link() {
        let q = parse_query("storeId=8157&transactionId=12&redirectLink=https%3A%2F%2Fshop.example%2Fr%3Fo%3D1%26p%3D2");
        assert_eq!(q.store_id.as_deref(), Some("8157"));
        assert_eq!(q.transaction_id.as_deref(), Some("12"));
        assert_eq!(
            q.redirect_link.as_deref(),
            Some("https://shop.example/r?o=1&p=2")
        );
    }

    #[test]
    fn double_encoded_link() {
        let q = parse_query("transactionId=12&redirectLink=https%253A%252F%252Fshop.example%252Fr");
        assert_eq!(q.redirect_link.as_deref(), Some("https://shop.example/r"));
    }

    #[test]
    fn raw_link_with_its_own_params() {
        let q = parse_query(
            "redirectLink=https://shop.example/r?o=1&p=2&storeId=8157&transactionId=12",
        );
        assert_eq!(
            q.redirect_link.as_deref(),
            Some("https://shop.example/r?o=1&p=2")
        );
        assert_eq!(q.transaction_id.as_deref(), Some("12"));
    }

    #[test]
    fn formats_som() {
        assert_eq!(som(5_000_000), "50,000.00");
        assert_eq!(som(1_234_567), "12,345.67");
        assert_eq!(som(5), "0.05");
    }
}
