//! The link that sends a payer to Payme's checkout, GET form
//! (docs/gateways/payme.md, "Checkout URL"):
//! `<checkout>/<base64("m=<cashbox id>;ac.<field>=<order>;a=<tiyin>;c=<return url>;l=<lang>")>`.
//!
//! It is built locally; no call to Payme is needed. Pairs are separated by
//! `;` and split at their first `=`, so a value may contain `=` but not `;`
//! (such a value is refused rather than silently cut). The base64 is the
//! standard alphabet with padding, as in Payme's own example.

use super::settings::PaymeSettings;
use base64::Engine;
use std::fmt;

/// The checkout page's language (`l`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Ru,
    Uz,
    En,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::Uz => "uz",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ru" => Some(Lang::Ru),
            "uz" => Some(Lang::Uz),
            "en" => Some(Lang::En),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    #[error("{0} must not be empty or contain ';'")]
    BadValue(&'static str),
    #[error("the amount must be a positive number of tiyin")]
    BadAmount,
}

/// What one checkout link carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutLink<'a> {
    pub merchant_id: &'a str,
    pub account_field: &'a str,
    pub order_id: &'a str,
    pub amount_tiyin: i64,
    /// `c`: where Payme sends the payer afterwards.
    pub return_url: Option<&'a str>,
    pub lang: Lang,
}

impl fmt::Display for CheckoutLink<'_> {
    /// The parameter text before base64.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "m={};ac.{}={};a={}",
            self.merchant_id, self.account_field, self.order_id, self.amount_tiyin
        )?;
        if let Some(c) = self.return_url {
            write!(f, ";c={c}")?;
        }
        write!(f, ";l={}", self.lang.as_str())
    }
}

impl CheckoutLink<'_> {
    fn validate(&self) -> Result<(), CheckoutError> {
        let plain = |v: &str| !v.is_empty() && !v.contains(';');
        for (name, value) in [
            ("merchant id", self.merchant_id),
            ("account field", self.account_field),
            ("order id", self.order_id),
        ] {
            if !plain(value) || (name == "account field" && value.contains('=')) {
                return Err(CheckoutError::BadValue(name));
            }
        }
        if self.return_url.is_some_and(|c| !plain(c)) {
            return Err(CheckoutError::BadValue("return url"));
        }
        if self.amount_tiyin <= 0 {
            return Err(CheckoutError::BadAmount);
        }
        Ok(())
    }

    /// `<base>/<base64(params)>`.
    pub fn url(&self, base: &str) -> Result<String, CheckoutError> {
        self.validate()?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(self.to_string());
        Ok(format!("{}/{encoded}", base.trim_end_matches('/')))
    }
}

/// The checkout link for an order, with the configured cashbox, account
/// field and checkout host.
pub fn checkout_url(
    settings: &PaymeSettings,
    order_id: &str,
    amount_tiyin: i64,
    return_url: Option<&str>,
    lang: Lang,
) -> Result<String, CheckoutError> {
    CheckoutLink {
        merchant_id: &settings.merchant_id,
        account_field: &settings.account_field,
        order_id,
        amount_tiyin,
        return_url,
        lang,
    }
    .url(&settings.checkout_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link<'a>(return_url: Option<&'a str>) -> CheckoutLink<'a> {
        CheckoutLink {
            merchant_id: "587f72c72cac0d162c722ae2",
            account_field: "order_id",
            order_id: "197",
            amount_tiyin: 500,
            return_url,
            lang: Lang::Ru,
        }
    }

    fn decoded(url: &str, base: &str) -> String {
        let encoded = url.strip_prefix(&format!("{base}/")).expect("base");
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn reproduces_the_documented_example() {
        // The docs' example has no c and no l; its base64 is their prefix.
        let text = "m=587f72c72cac0d162c722ae2;ac.order_id=197;a=500";
        assert_eq!(
            base64::engine::general_purpose::STANDARD.encode(text),
            "bT01ODdmNzJjNzJjYWMwZDE2MmM3MjJhZTI7YWMub3JkZXJfaWQ9MTk3O2E9NTAw"
        );
        assert!(link(None).to_string().starts_with(text));
    }

    #[test]
    fn carries_every_parameter() {
        let url = link(Some("https://shop.example/orders/197?x=1"))
            .url("https://checkout.paycom.uz/")
            .unwrap();
        assert_eq!(
            decoded(&url, "https://checkout.paycom.uz"),
            "m=587f72c72cac0d162c722ae2;ac.order_id=197;a=500;c=https://shop.example/orders/197?x=1;l=ru"
        );
    }

    #[test]
    fn refuses_values_that_would_break_the_format() {
        assert_eq!(
            link(Some("https://x/;y")).url("b"),
            Err(CheckoutError::BadValue("return url"))
        );
        let mut l = link(None);
        l.order_id = "1;a=1";
        assert_eq!(l.url("b"), Err(CheckoutError::BadValue("order id")));
        let mut l = link(None);
        l.account_field = "a=b";
        assert_eq!(l.url("b"), Err(CheckoutError::BadValue("account field")));
        let mut l = link(None);
        l.amount_tiyin = 0;
        assert_eq!(l.url("b"), Err(CheckoutError::BadAmount));
    }

    #[test]
    fn uses_the_configured_host_and_field() {
        let lookup = |k: &str| match k {
            "PAYME_ID" => Some("5e730e8e0b852a417aa49ceb".to_owned()),
            "PAYME_KEY" => Some("k".to_owned()),
            "PAYME_ACCOUNT_FIELD" => Some("invoice".to_owned()),
            "PAYME_TEST_MODE" => Some("true".to_owned()),
            _ => None,
        };
        let s = PaymeSettings::from_lookup(&lookup, false, "http://127.0.0.1:8080")
            .unwrap()
            .unwrap();
        let url = checkout_url(&s, "42", 5000, None, Lang::Uz).unwrap();
        assert_eq!(
            decoded(&url, "https://test.paycom.uz"),
            "m=5e730e8e0b852a417aa49ceb;ac.invoice=42;a=5000;l=uz"
        );
    }

    #[test]
    fn languages() {
        assert_eq!(Lang::parse(" EN"), Some(Lang::En));
        assert_eq!(Lang::parse("fa"), None);
        assert_eq!(Lang::default().as_str(), "ru");
    }
}
