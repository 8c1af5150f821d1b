//! How Click talks to a merchant (gateways.md §4.2–4.4): form-encoded
//! Prepare/Complete bodies signed with md5 over the exact texts sent, and the
//! merchant's JSON answer. Written independently of paygate's client side.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// How the `amount` field is printed (the real format is unconfirmed, §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AmountFormat {
    /// `5000` (a fraction of a so'm still prints, e.g. `50.5`).
    #[default]
    #[serde(rename = "5000")]
    Integer,
    /// `5000.0` (or `50.05` when one decimal cannot say it).
    #[serde(rename = "5000.0")]
    OneDecimal,
    /// `5000.00`.
    #[serde(rename = "5000.00")]
    TwoDecimals,
}

impl AmountFormat {
    pub const ALL: [AmountFormat; 3] = [
        AmountFormat::Integer,
        AmountFormat::OneDecimal,
        AmountFormat::TwoDecimals,
    ];

    /// `tiyin` as so'm text in this format; always exact.
    pub fn text(self, tiyin: u64) -> String {
        let (som, t) = (tiyin / 100, tiyin % 100);
        let min_decimals = match self {
            AmountFormat::Integer => 0,
            AmountFormat::OneDecimal => 1,
            AmountFormat::TwoDecimals => 2,
        };
        let needed = if t == 0 {
            0
        } else if t % 10 == 0 {
            1
        } else {
            2
        };
        match needed.max(min_decimals) {
            0 => som.to_string(),
            1 => format!("{som}.{}", t / 10),
            _ => format!("{som}.{t:02}"),
        }
    }
}

impl std::fmt::Display for AmountFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text(500_000).as_str())
    }
}

impl std::str::FromStr for AmountFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        AmountFormat::ALL
            .into_iter()
            .find(|f| f.to_string() == s.trim())
            .ok_or_else(|| format!("expected 5000, 5000.0 or 5000.00, got {s:?}"))
    }
}

/// Parses a so'm text with at most two decimals into tiyin, exactly.
pub(crate) fn parse_som(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 15 || !digits(whole) || !digits(frac) || frac.len() > 2 {
        return None;
    }
    if text.ends_with('.') {
        return None;
    }
    let frac_tiyin: u64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<u64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    whole
        .parse::<u64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(frac_tiyin)
}

/// One Prepare (`action` "0") or Complete (`action` "1") call, as texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    pub click_trans_id: String,
    pub service_id: String,
    pub click_paydoc_id: String,
    pub merchant_trans_id: String,
    /// Complete only.
    pub merchant_prepare_id: Option<String>,
    pub amount: String,
    pub action: String,
    pub error: String,
    pub error_note: String,
    pub sign_time: String,
}

impl Call {
    /// md5(click_trans_id service_id secret merchant_trans_id
    /// [merchant_prepare_id] amount action sign_time), lowercase hex.
    pub fn sign(&self, secret_key: &str) -> String {
        let mut text = String::new();
        text.push_str(&self.click_trans_id);
        text.push_str(&self.service_id);
        text.push_str(secret_key);
        text.push_str(&self.merchant_trans_id);
        if let Some(id) = &self.merchant_prepare_id {
            text.push_str(id);
        }
        text.push_str(&self.amount);
        text.push_str(&self.action);
        text.push_str(&self.sign_time);
        hex::encode(Md5::digest(text.as_bytes()))
    }

    /// The form fields, with `sign_string` as given.
    pub fn form(&self, sign_string: &str) -> Vec<(&'static str, String)> {
        let mut form = vec![
            ("click_trans_id", self.click_trans_id.clone()),
            ("service_id", self.service_id.clone()),
            ("click_paydoc_id", self.click_paydoc_id.clone()),
            ("merchant_trans_id", self.merchant_trans_id.clone()),
        ];
        if let Some(id) = &self.merchant_prepare_id {
            form.push(("merchant_prepare_id", id.clone()));
        }
        form.extend([
            ("amount", self.amount.clone()),
            ("action", self.action.clone()),
            ("error", self.error.clone()),
            ("error_note", self.error_note.clone()),
            ("sign_time", self.sign_time.clone()),
            ("sign_string", sign_string.to_owned()),
        ]);
        form
    }
}

/// Click's `sign_time`: Tashkent wall-clock time (UTC+5), `YYYY-MM-DD HH:mm:ss`.
pub(crate) fn sign_time_now() -> String {
    const FORMAT: &str = "%Y-%m-%d %H:%M:%S";
    let now = chrono::Utc::now();
    match chrono::FixedOffset::east_opt(5 * 3600) {
        Some(tashkent) => now.with_timezone(&tashkent).format(FORMAT).to_string(),
        None => now.format(FORMAT).to_string(),
    }
}

/// A number or a numeric string, as text of an integer.
pub(crate) fn int_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => n.as_i64().map(|i| i.to_string()),
        Value::String(s) if !s.trim().is_empty() => {
            s.trim().parse::<i64>().ok().map(|i| i.to_string())
        }
        _ => None,
    }
}

/// The merchant's answer to one call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Reply {
    pub error: i64,
    pub error_note: String,
    pub click_trans_id: Option<String>,
    pub merchant_trans_id: Option<String>,
    pub merchant_prepare_id: Option<String>,
    pub merchant_confirm_id: Option<String>,
}

impl Reply {
    fn parse(body: &Value) -> Result<Reply, String> {
        let error = int_text(body.get("error"))
            .and_then(|e| e.parse().ok())
            .ok_or("the answer has no integer \"error\"")?;
        let text = |k: &str| match body.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Ok(Reply {
            error,
            error_note: text("error_note").unwrap_or_default(),
            click_trans_id: text("click_trans_id"),
            merchant_trans_id: text("merchant_trans_id"),
            merchant_prepare_id: int_text(body.get("merchant_prepare_id")),
            merchant_confirm_id: int_text(body.get("merchant_confirm_id")),
        })
    }

    /// The fields a repeat must answer identically.
    pub fn essence(&self) -> (i64, Option<&str>) {
        (self.error, self.merchant_prepare_id.as_deref())
    }
}

/// POSTs `form` to `url` and reads the merchant's JSON answer. Anything but
/// HTTP 200 with that JSON is an error text (Click treats it as no answer).
pub(crate) async fn send(
    http: &reqwest::Client,
    url: &str,
    form: &[(&'static str, String)],
    timeout: Duration,
) -> Result<Reply, String> {
    let resp = http
        .post(url)
        .timeout(timeout)
        .form(form)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                "the merchant did not answer in time".to_owned()
            } else {
                "could not reach the merchant".to_owned()
            }
        })?;
    let status = resp.status();
    let text = resp
        .text()
        .await
        .map_err(|_| "the merchant's answer could not be read".to_owned())?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("the merchant answered HTTP {}", status.as_u16()));
    }
    let body: Value = serde_json::from_str(&text).map_err(|_| {
        let shown: String = text.chars().take(120).collect();
        format!("the merchant's answer is not JSON: {shown:?}")
    })?;
    Reply::parse(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> Call {
        Call {
            click_trans_id: "2011976".into(),
            service_id: "12345".into(),
            click_paydoc_id: "3300112".into(),
            merchant_trans_id: "197".into(),
            merchant_prepare_id: None,
            amount: "5000".into(),
            action: "0".into(),
            error: "0".into(),
            error_note: "Success".into(),
            sign_time: "2024-05-01 12:00:00".into(),
        }
    }

    #[test]
    fn documented_vectors() {
        assert_eq!(call().sign("SECRET"), "949a79a260a3c2c0f9c766e9f52f1100");
        let complete = Call {
            merchant_prepare_id: Some("55".into()),
            action: "1".into(),
            sign_time: "2024-05-01 12:00:05".into(),
            ..call()
        };
        assert_eq!(complete.sign("SECRET"), "3be2bd63e3f89cc0d8476b24c0bf633e");
        let form = complete.form("x");
        assert_eq!(form[4], ("merchant_prepare_id", "55".to_owned()));
    }

    #[test]
    fn amount_formats() {
        let cases = [
            (500_000, ["5000", "5000.0", "5000.00"]),
            (5_050, ["50.5", "50.5", "50.50"]),
            (5_005, ["50.05", "50.05", "50.05"]),
            (10, ["0.1", "0.1", "0.10"]),
        ];
        for (tiyin, texts) in cases {
            for (fmt, text) in AmountFormat::ALL.into_iter().zip(texts) {
                assert_eq!(fmt.text(tiyin), text);
                assert_eq!(parse_som(text), Some(tiyin));
            }
        }
        for f in AmountFormat::ALL {
            assert_eq!(f.to_string().parse::<AmountFormat>(), Ok(f));
            assert_eq!(
                serde_json::to_value(f).unwrap(),
                serde_json::Value::String(f.to_string())
            );
        }
        assert!("50".parse::<AmountFormat>().is_err());
        for bad in ["", "5.", ".5", "5.001", "a", "-1"] {
            assert_eq!(parse_som(bad), None, "{bad}");
        }
    }

    #[test]
    fn replies_take_numbers_or_strings() {
        let r = Reply::parse(&serde_json::json!({
            "click_trans_id": 2011976, "merchant_trans_id": "197",
            "merchant_prepare_id": "55", "error": "0", "error_note": "Success"
        }))
        .unwrap();
        assert_eq!(r.essence(), (0, Some("55")));
        assert_eq!(r.click_trans_id.as_deref(), Some("2011976"));
        assert!(Reply::parse(&serde_json::json!({"error_note": "x"})).is_err());
    }

    #[test]
    fn sign_time_shape() {
        let t = sign_time_now();
        assert_eq!(t.len(), 19);
        assert_eq!(&t[4..5], "-");
        assert_eq!(&t[10..11], " ");
    }
}
