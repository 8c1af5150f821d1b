//! The payer's side of the Atmos simulator's hosted checkout, for the tests
//! that pay through it (tests/atmos.rs, tests/notifications.rs, tests/expiry.rs): read the
//! checkout page's form and press its buttons as a browser would.

use crate::support::client;
use reqwest::StatusCode;

/// The `transactionId` of a checkout URL.
pub fn transaction_id(payment_url: &str) -> String {
    let query = payment_url.split_once('?').expect("query").1;
    query
        .split('&')
        .find_map(|p| p.strip_prefix("transactionId="))
        .expect("transactionId")
        .to_string()
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// The hidden fields of the checkout form whose action is `action`.
fn form_fields(html: &str, action: &str) -> Vec<(String, String)> {
    let form = html
        .split("<form")
        .skip(1)
        .map(|f| f.split("</form>").next().unwrap_or_default())
        .find(|f| attr(f, "action").as_deref() == Some(action))
        .unwrap_or_else(|| panic!("no {action} form on the checkout page: {html}"));
    form.split("<input")
        .skip(1)
        .filter_map(|i| Some((attr(i, "name")?, attr(i, "value").unwrap_or_default())))
        .collect()
}

/// The payer's browser: open the checkout page, then press `action`
/// ("pay", "decline") by posting the form fields the page carries. Every
/// test that uses it orders 50.00 so'm, which the page must show.
pub async fn press(payment_url: &str, action: &str) -> reqwest::Response {
    let page = client().get(payment_url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "{payment_url}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("50.00 UZS"),
        "the page shows the amount: {html}"
    );
    let fields = form_fields(&html, action);
    assert!(
        fields
            .iter()
            .any(|(k, v)| k == "transactionId" && *v == transaction_id(payment_url)),
        "{fields:?}"
    );
    // The form's action is relative to the page (…/invoice/get → …/invoice/pay).
    let dir = payment_url
        .split('?')
        .next()
        .unwrap()
        .rsplit_once('/')
        .unwrap()
        .0;
    client()
        .post(format!("{dir}/{action}"))
        .form(&fields)
        .send()
        .await
        .unwrap()
}
