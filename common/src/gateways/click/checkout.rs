//! The Click pay link for an order (docs/gateways/click.md, "Checkout"):
//!
//! ```text
//! https://my.click.uz/services/pay?service_id=…&merchant_id=…&amount=50.00&transaction_param=<order>&return_url=…
//! ```
//!
//! Nothing is called: the payer opens the link, Click shows its page and then
//! calls our Prepare and Complete with `merchant_trans_id = transaction_param`.
//! `amount` is in so'm with exactly two decimals, as the payment-button docs
//! require. The legacy POST form to `my.click.uz/pay/` is shut down, so it is
//! not offered.

use super::settings::ClickSettings;

/// `tiyin` as so'm with two decimals: 5000 → `50.00`. Negative amounts never
/// reach here (orders are positive); they would print with a sign.
pub fn som_text(tiyin: i64) -> String {
    let sign = if tiyin < 0 { "-" } else { "" };
    let t = tiyin.unsigned_abs();
    format!("{sign}{}.{:02}", t / 100, t % 100)
}

/// The pay link for `transaction_param` (our order reference) and `amount_tiyin`.
/// `return_url` is where Click sends the payer afterwards.
pub fn pay_url(
    settings: &ClickSettings,
    transaction_param: &str,
    amount_tiyin: i64,
    return_url: Option<&str>,
) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("service_id", &settings.service_id.to_string())
        .append_pair("merchant_id", &settings.merchant_id)
        .append_pair("amount", &som_text(amount_tiyin))
        .append_pair("transaction_param", transaction_param);
    if let Some(url) = return_url {
        query.append_pair("return_url", url);
    }
    let base = settings.checkout_url.as_str();
    // A configured URL may already carry a query (e.g. a card_type preset).
    let sep = match base.find('?') {
        None => "?",
        Some(_) if base.ends_with('?') || base.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{base}{sep}{}", query.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(checkout_url: &str) -> ClickSettings {
        let vars: HashMap<&str, &str> = [
            ("CLICK_SERVICE_ID", "12345"),
            ("CLICK_MERCHANT_ID", "678"),
            ("CLICK_SECRET_KEY", "s"),
            ("CLICK_CHECKOUT_URL", checkout_url),
        ]
        .into_iter()
        .collect();
        ClickSettings::from_lookup(&|k| vars.get(k).map(|v| v.to_string()), None)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn the_documented_link() {
        let url = pay_url(
            &settings("https://my.click.uz/services/pay"),
            "197",
            5000,
            Some("https://shop.example/orders/197?x=1&y=2"),
        );
        assert_eq!(
            url,
            "https://my.click.uz/services/pay?service_id=12345&merchant_id=678&amount=50.00\
&transaction_param=197&return_url=https%3A%2F%2Fshop.example%2Forders%2F197%3Fx%3D1%26y%3D2"
        );
        let parsed = url::Url::parse(&url).unwrap();
        let q: HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["return_url"], "https://shop.example/orders/197?x=1&y=2");
    }

    #[test]
    fn amounts_have_two_decimals() {
        assert_eq!(som_text(5000), "50.00");
        assert_eq!(som_text(5), "0.05");
        assert_eq!(som_text(123_456_789), "1234567.89");
        assert_eq!(som_text(0), "0.00");
    }

    #[test]
    fn an_override_with_a_query_keeps_it() {
        let url = pay_url(
            &settings("https://pay.example/p?card_type=humo"),
            "1",
            100,
            None,
        );
        assert_eq!(
            url,
            "https://pay.example/p?card_type=humo&service_id=12345&merchant_id=678&amount=1.00&transaction_param=1"
        );
    }
}
