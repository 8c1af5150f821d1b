//! The hosted payment page and the browser's return to the merchant
//! (docs/gateways/medogram.md, 'Payment page' and 'Return to the merchant').

use super::config::ReturnMethod;
use super::store::{BrowserReturn, Decision, Invoice, InvoiceState};
use super::Medogram;
use crate::html::{self, escape};
use crate::links::append_query;
use axum::extract::{Path, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// `gateway-123-get` and `gateway-123` both name invoice 123 (the official
/// samples disagree on the suffix, so the real gateway serves both).
fn invoice_id(page: &str) -> Option<u64> {
    let rest = page.strip_prefix("gateway-")?;
    let id = rest.strip_suffix("-get").unwrap_or(rest);
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok()
}

fn not_found() -> Response {
    html::message(
        StatusCode::NOT_FOUND,
        "Invoice not found",
        "No payment with this number exists at this gateway. / فاکتوری با این شماره یافت نشد.",
    )
}

pub(super) async fn page(State(m): State<Medogram>, Path(page): Path<String>) -> Response {
    let invoice = invoice_id(&page).and_then(|id| m.store().invoice(id).cloned());
    match invoice {
        Some(invoice) => render(&invoice),
        None => not_found(),
    }
}

fn render(inv: &Invoice) -> Response {
    // Relative actions keep the forms working under whatever prefix the
    // sandbox is mounted at, and under both /payment and /payment-test.
    let pay = format!("gateway-{}/pay", inv.id_get);
    let cancel = format!("gateway-{}/cancel", inv.id_get);
    let status = match inv.state {
        InvoiceState::Pending => String::new(),
        InvoiceState::Paid => "<p class=\"error\">This invoice is already paid.</p>".to_owned(),
        InvoiceState::Cancelled => "<p class=\"error\">This payment was cancelled.</p>".to_owned(),
    };
    let actions = match inv.state {
        InvoiceState::Pending => format!(
            "{}{}",
            html::post_form(&pay, &[], "Pay / پرداخت", "primary"),
            html::post_form(&cancel, &[], "Cancel / انصراف", "secondary")
        ),
        // Settled invoices only offer the way back; paying again would not
        // change anything anyway.
        _ => html::post_form(&pay, &[], "Return to merchant", "secondary"),
    };
    let id_get = inv.id_get.to_string();
    let body = format!(
        "<h1>BitPay — درگاه پرداخت (sandbox)</h1>\
<p class=\"amount\">{} ریال</p><p>{} Rial</p>{}{}\
<div class=\"actions\">{actions}</div>\
<p class=\"note\">Simulated gateway: no card is charged.</p>",
        escape(&html::group_thousands(inv.amount)),
        escape(&html::group_thousands(inv.amount)),
        status,
        html::details(&[
            ("Invoice", &id_get),
            ("Order", &inv.factor_id),
            ("Description", &inv.description),
            ("Payer", &inv.name),
            ("Email", &inv.email),
        ]),
    );
    html::page(StatusCode::OK, "BitPay payment", &body)
}

pub(super) async fn pay(State(m): State<Medogram>, Path(page): Path<String>) -> Response {
    decide(&m, &page, Decision::Pay)
}

pub(super) async fn cancel(State(m): State<Medogram>, Path(page): Path<String>) -> Response {
    decide(&m, &page, Decision::Cancel)
}

fn decide(m: &Medogram, page: &str, decision: Decision) -> Response {
    let Some(id_get) = invoice_id(page) else {
        return not_found();
    };
    let settled = m.store().settle(id_get, decision);
    match settled {
        Some(ret) => browser_return(&ret, m.config().return_method),
        None => not_found(),
    }
}

/// Sends the browser back to the merchant the way the config says.
fn browser_return(ret: &BrowserReturn, method: ReturnMethod) -> Response {
    match method {
        ReturnMethod::Get => {
            let target = append_query(&ret.redirect, &ret.fields());
            match HeaderValue::from_str(&target) {
                Ok(location) => (StatusCode::FOUND, [(LOCATION, location)]).into_response(),
                // A redirect that cannot be a header (e.g. raw non-ASCII in a
                // relative URL) still gets the person back via a link.
                Err(_) => html::message_then_redirect(
                    StatusCode::OK,
                    "Payment finished",
                    "Returning you to the merchant.",
                    &target,
                ),
            }
        }
        ReturnMethod::Post => html::auto_post("Payment finished", &ret.redirect, &ret.fields()),
    }
}

#[cfg(test)]
mod tests {
    use super::invoice_id;

    #[test]
    fn page_names() {
        assert_eq!(invoice_id("gateway-123-get"), Some(123));
        assert_eq!(invoice_id("gateway-123"), Some(123));
        assert_eq!(invoice_id("gateway--get"), None);
        assert_eq!(invoice_id("gateway-12x"), None);
        assert_eq!(invoice_id("gateway-send"), None);
        assert_eq!(invoice_id("gateway-99999999999999999999999"), None);
    }
}
