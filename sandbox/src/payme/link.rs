//! Reading a checkout link, GET form: `<checkout>/<base64("m=…;ac.<field>=…;a=…;c=…;l=…")>`
//! (docs/gateways/payme.md, "Checkout URL").
//!
//! Pairs are split at `;`, each at its first `=`. Payme's own example uses
//! standard base64; URL-safe base64 and missing padding are read too, since
//! merchants' libraries differ.

use base64::Engine;
use serde_json::{Map, Value};

/// A decoded checkout link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    /// `m`: the cashbox id.
    pub merchant_id: String,
    /// `ac.*`: the account, in the order given.
    pub account: Vec<(String, String)>,
    /// `a`: tiyin.
    pub amount: i64,
    /// `c`: where the payer returns.
    pub return_url: Option<String>,
    /// `l`: ru, uz or en (ru when absent or unknown).
    pub lang: String,
}

impl Link {
    /// The `account` object of the JSON-RPC calls.
    pub(crate) fn account_json(&self) -> Map<String, Value> {
        self.account
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    }
}

/// Why a link cannot be paid (shown to the payer, like Payme's -31610).
pub(crate) fn decode(encoded: &str) -> Result<Link, String> {
    // A `+` that reached us as a space (an unencoded form post) is restored.
    let encoded = encoded.trim().trim_end_matches('/').replace(' ', "+");
    let bytes = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ]
    .iter()
    .find_map(|engine| engine.decode(&encoded).ok())
    .ok_or("the link is not base64")?;
    let text = String::from_utf8(bytes).map_err(|_| "the link is not UTF-8 text")?;
    let mut merchant_id = None;
    let mut account = Vec::new();
    let mut amount = None;
    let mut return_url = None;
    let mut lang = "ru".to_owned();
    for pair in text.split(';').filter(|p| !p.trim().is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not key=value"))?;
        match key.trim() {
            "m" => merchant_id = Some(value.trim().to_owned()),
            "a" => {
                let v = value.trim();
                let parsed = v
                    .parse::<i64>()
                    .ok()
                    .filter(|a| *a > 0 && v.bytes().all(|b| b.is_ascii_digit()));
                amount =
                    Some(parsed.ok_or_else(|| {
                        format!("amount {v:?} is not a positive number of tiyin")
                    })?);
            }
            "c" => return_url = Some(value.trim().to_owned()).filter(|c| !c.is_empty()),
            "l" if ["ru", "uz", "en"].contains(&value.trim()) => lang = value.trim().to_owned(),
            k => {
                if let Some(field) = k.strip_prefix("ac.").filter(|f| !f.is_empty()) {
                    account.push((field.to_owned(), value.to_owned()));
                }
                // ct, cr and unknown keys do not change what the simulator does.
            }
        }
    }
    let merchant_id = merchant_id
        .filter(|m| !m.is_empty())
        .ok_or("the link has no merchant (m)")?;
    if account.is_empty() {
        return Err("the link has no account (ac.…)".into());
    }
    let amount = amount.ok_or("the link has no amount (a)")?;
    Ok(Link {
        merchant_id,
        account,
        amount,
        return_url,
        lang,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn decodes_the_documented_example() {
        let link =
            decode("bT01ODdmNzJjNzJjYWMwZDE2MmM3MjJhZTI7YWMub3JkZXJfaWQ9MTk3O2E9NTAw").unwrap();
        assert_eq!(
            link,
            Link {
                merchant_id: "587f72c72cac0d162c722ae2".into(),
                account: vec![("order_id".into(), "197".into())],
                amount: 500,
                return_url: None,
                lang: "ru".into(),
            }
        );
    }

    #[test]
    fn reads_return_url_language_and_several_account_fields() {
        let link = decode(&enc(
            "m=abc;ac.order_id=7;ac.phone=998901234567;a=5000;c=https://shop.example/r?o=7&x=1;l=uz;ct=500",
        ))
        .unwrap();
        assert_eq!(link.account.len(), 2);
        assert_eq!(
            link.return_url.as_deref(),
            Some("https://shop.example/r?o=7&x=1")
        );
        assert_eq!(link.lang, "uz");
        assert_eq!(link.account_json()["phone"], "998901234567");
    }

    #[test]
    fn url_safe_and_unpadded_links_are_read() {
        let text = "m=abc;ac.order_id=1;a=1";
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        assert_eq!(decode(&url_safe).unwrap().amount, 1);
        let plus = enc("m=abc;ac.order_id=1;a=1;c=>>>");
        assert!(plus.contains('+'));
        assert_eq!(decode(&plus.replace('+', " ")).unwrap().amount, 1);
    }

    #[test]
    fn refuses_broken_links() {
        for text in [
            "ac.order_id=1;a=100",
            "m=abc;a=100",
            "m=abc;ac.order_id=1",
            "m=abc;ac.order_id=1;a=-5",
            "m=abc;ac.order_id=1;a=1.5",
            "m=abc;ac.order_id=1;a=0",
            "m=abc;garbage;a=1",
        ] {
            assert!(decode(&enc(text)).is_err(), "{text}");
        }
        assert!(decode("%%%").is_err());
    }
}
