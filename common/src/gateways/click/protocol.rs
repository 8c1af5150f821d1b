//! Click SHOP-API wire format: the Prepare/Complete form bodies Click POSTs,
//! their `sign_string`, and our JSON answers (docs/gateways/click.md,
//! "Prepare request", "Complete request", "sign_string formulas", "Error codes").
//!
//! - [`parse_form`] turns a body into a [`ClickRequest`]. Every field's text is
//!   kept exactly as received in [`RawFields`], because the signature is md5
//!   over those texts: `"5000"`, `"5000.0"` and `"5000.00"` are the same amount
//!   but hash differently, so nothing is ever re-printed before hashing.
//!   Missing or malformed fields answer -8; an `action` other than 0 or 1
//!   answers -3.
//! - [`authenticate`] checks `sign_string` in constant time and that
//!   `service_id` is ours (-1 for either), giving a [`Verified`] request, the
//!   only kind [`super::rules::decide`] accepts.
//! - [`Answer`] is the JSON reply; it echoes `click_trans_id` and
//!   `merchant_trans_id` and carries our `merchant_prepare_id` /
//!   `merchant_confirm_id` when known.

use md5::{Digest, Md5};
use serde::Serialize;
use subtle::ConstantTimeEq;

/// Our reply codes (docs/gateways/click.md, "Error codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Success,
    /// Bad `sign_string`, or a `service_id` that is not ours.
    SignCheckFailed,
    /// The amount differs from the order's.
    IncorrectAmount,
    /// `action` is neither 0 nor 1.
    ActionNotFound,
    /// The payment was already confirmed.
    AlreadyPaid,
    /// `merchant_trans_id` names no order.
    UserDoesNotExist,
    /// `merchant_prepare_id` names no prepare (of this order and attempt).
    TransactionDoesNotExist,
    /// We could not record the outcome (our database is down).
    FailedToUpdate,
    /// Missing or malformed fields.
    RequestError,
    /// The payment was cancelled, or Click reports its own failure (`error < 0`).
    TransactionCancelled,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 10] = [
        ErrorCode::Success,
        ErrorCode::SignCheckFailed,
        ErrorCode::IncorrectAmount,
        ErrorCode::ActionNotFound,
        ErrorCode::AlreadyPaid,
        ErrorCode::UserDoesNotExist,
        ErrorCode::TransactionDoesNotExist,
        ErrorCode::FailedToUpdate,
        ErrorCode::RequestError,
        ErrorCode::TransactionCancelled,
    ];

    /// The number in the answer's `error` field.
    pub fn code(self) -> i32 {
        match self {
            ErrorCode::Success => 0,
            ErrorCode::SignCheckFailed => -1,
            ErrorCode::IncorrectAmount => -2,
            ErrorCode::ActionNotFound => -3,
            ErrorCode::AlreadyPaid => -4,
            ErrorCode::UserDoesNotExist => -5,
            ErrorCode::TransactionDoesNotExist => -6,
            ErrorCode::FailedToUpdate => -7,
            ErrorCode::RequestError => -8,
            ErrorCode::TransactionCancelled => -9,
        }
    }

    /// The documented English `error_note`.
    pub fn note(self) -> &'static str {
        match self {
            ErrorCode::Success => "Success",
            ErrorCode::SignCheckFailed => "SIGN CHECK FAILED!",
            ErrorCode::IncorrectAmount => "Incorrect parameter amount",
            ErrorCode::ActionNotFound => "Action not found",
            ErrorCode::AlreadyPaid => "Already paid",
            ErrorCode::UserDoesNotExist => "User does not exist",
            ErrorCode::TransactionDoesNotExist => "Transaction does not exist",
            ErrorCode::FailedToUpdate => "Failed to update user",
            ErrorCode::RequestError => "Error in request from click",
            ErrorCode::TransactionCancelled => "Transaction cancelled",
        }
    }

    pub fn from_code(code: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }
}

/// Which call this is. Complete carries the `merchant_prepare_id` our
/// Prepare answer gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Prepare,
    Complete { merchant_prepare_id: i64 },
}

/// Every field Click sends, as the exact text received (after form decoding).
/// `merchant_prepare_id` is present on Complete only; `error_note` may be
/// absent (it is not signed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawFields {
    pub click_trans_id: String,
    pub service_id: String,
    pub click_paydoc_id: String,
    pub merchant_trans_id: String,
    pub merchant_prepare_id: Option<String>,
    pub amount: String,
    pub action: String,
    pub error: String,
    pub error_note: String,
    pub sign_time: String,
    pub sign_string: String,
}

/// The typed reading of [`RawFields`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// Click's id of this payment attempt; Prepare and Complete of one attempt share it.
    pub click_trans_id: i64,
    pub service_id: i64,
    /// Click's payment number (the Merchant API's `payment_id`).
    pub click_paydoc_id: i64,
    /// Our order reference (`transaction_param` of the pay link).
    pub merchant_trans_id: String,
    /// `amount` (so'm) converted exactly to tiyin.
    pub amount_tiyin: i64,
    /// Click's own status: 0, or negative when Click failed or cancelled
    /// (e.g. -5017, insufficient funds).
    pub click_error: i32,
    pub error_note: String,
    pub sign_time: String,
}

impl Fields {
    /// `merchant_trans_id` as a paygate order id: plain decimal digits without
    /// a leading zero (anything else names no order of ours).
    pub fn order_id(&self) -> Option<i64> {
        let text = self.merchant_trans_id.as_str();
        let id = parse_id(text)?;
        (id.to_string() == text).then_some(id)
    }
}

/// A parsed Prepare or Complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickRequest {
    pub action: Action,
    pub fields: Fields,
    pub raw: RawFields,
}

/// A request whose signature and `service_id` were checked by [`authenticate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    request: ClickRequest,
}

impl Verified {
    pub fn request(&self) -> &ClickRequest {
        &self.request
    }
    pub fn into_request(self) -> ClickRequest {
        self.request
    }
}

impl std::ops::Deref for Verified {
    type Target = ClickRequest;
    fn deref(&self) -> &ClickRequest {
        &self.request
    }
}

/// Why a request is answered before any decision: what to answer, and a short
/// reason for logs (field names only, never values or secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: ErrorCode,
    pub reason: String,
    /// Echoed when readable.
    pub click_trans_id: Option<i64>,
    pub merchant_trans_id: Option<String>,
}

impl Rejection {
    pub fn answer(&self) -> Answer {
        Answer {
            click_trans_id: self.click_trans_id,
            merchant_trans_id: self.merchant_trans_id.clone(),
            ..Answer::new(self.code)
        }
    }
}

/// Our JSON answer. Unknown ids are left out rather than sent as 0 or null;
/// the docs list only `error` and `error_note` as required on errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub click_trans_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_trans_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_prepare_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merchant_confirm_id: Option<i64>,
    pub error: i32,
    pub error_note: String,
}

impl Answer {
    /// An answer with `error`/`error_note` only.
    pub fn new(code: ErrorCode) -> Self {
        Answer {
            click_trans_id: None,
            merchant_trans_id: None,
            merchant_prepare_id: None,
            merchant_confirm_id: None,
            error: code.code(),
            error_note: code.note().to_owned(),
        }
    }

    /// An answer to `request`, echoing its `click_trans_id` and `merchant_trans_id`.
    pub fn to(request: &ClickRequest, code: ErrorCode) -> Self {
        Answer {
            click_trans_id: Some(request.fields.click_trans_id),
            merchant_trans_id: Some(request.fields.merchant_trans_id.clone()),
            ..Answer::new(code)
        }
    }

    /// -7: the outcome could not be stored. Never answer success instead.
    pub fn failed_to_update(request: &ClickRequest) -> Self {
        Answer::to(request, ErrorCode::FailedToUpdate)
    }

    pub fn with_prepare_id(mut self, id: i64) -> Self {
        self.merchant_prepare_id = Some(id);
        self
    }

    pub fn with_confirm_id(mut self, id: i64) -> Self {
        self.merchant_confirm_id = Some(id);
        self
    }

    pub fn code(&self) -> Option<ErrorCode> {
        ErrorCode::from_code(self.error)
    }
}

/// The texts `sign_string` covers, in formula order. `merchant_prepare_id` is
/// `Some` for Complete, whose formula inserts it after `merchant_trans_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInput<'a> {
    pub click_trans_id: &'a str,
    pub service_id: &'a str,
    pub merchant_trans_id: &'a str,
    pub merchant_prepare_id: Option<&'a str>,
    pub amount: &'a str,
    pub action: &'a str,
    pub sign_time: &'a str,
}

impl SignInput<'_> {
    /// `md5(click_trans_id ‖ service_id ‖ secret_key ‖ merchant_trans_id
    /// [‖ merchant_prepare_id] ‖ amount ‖ action ‖ sign_time)`, lowercase hex.
    pub fn sign(&self, secret_key: &str) -> String {
        let mut md5 = Md5::new();
        md5.update(self.click_trans_id);
        md5.update(self.service_id);
        md5.update(secret_key);
        md5.update(self.merchant_trans_id);
        if let Some(id) = self.merchant_prepare_id {
            md5.update(id);
        }
        md5.update(self.amount);
        md5.update(self.action);
        md5.update(self.sign_time);
        hex::encode(md5.finalize())
    }
}

impl RawFields {
    pub fn sign_input(&self) -> SignInput<'_> {
        SignInput {
            click_trans_id: &self.click_trans_id,
            service_id: &self.service_id,
            merchant_trans_id: &self.merchant_trans_id,
            merchant_prepare_id: self.merchant_prepare_id.as_deref(),
            amount: &self.amount,
            action: &self.action,
            sign_time: &self.sign_time,
        }
    }
}

/// Checks `sign_string` (constant time, hex in any case) and that `service_id`
/// is `our_service_id`. Both failures answer -1, as the reference PHP
/// implementation does for a foreign service.
pub fn authenticate(
    request: ClickRequest,
    secret_key: &str,
    our_service_id: i64,
) -> Result<Verified, Rejection> {
    let expected = request.raw.sign_input().sign(secret_key);
    let provided = request.raw.sign_string.to_ascii_lowercase();
    let sign_ok: bool = expected.as_bytes().ct_eq(provided.as_bytes()).into();
    let reason = if !sign_ok {
        "sign_string does not match"
    } else if request.fields.service_id != our_service_id {
        "service_id is not ours"
    } else {
        return Ok(Verified { request });
    };
    Err(Rejection {
        code: ErrorCode::SignCheckFailed,
        reason: reason.to_owned(),
        click_trans_id: Some(request.fields.click_trans_id),
        merchant_trans_id: Some(request.fields.merchant_trans_id),
    })
}

/// Parses an `application/x-www-form-urlencoded` body. Unknown fields are
/// ignored; a known field sent twice is refused (which copy was signed?).
pub fn parse_form(body: &[u8]) -> Result<ClickRequest, Rejection> {
    parse_pairs(url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())))
}

const FIELDS: [&str; 11] = [
    "click_trans_id",
    "service_id",
    "click_paydoc_id",
    "merchant_trans_id",
    "merchant_prepare_id",
    "amount",
    "action",
    "error",
    "error_note",
    "sign_time",
    "sign_string",
];

/// Same as [`parse_form`] for already decoded pairs (e.g. a framework's form map).
pub fn parse_pairs(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Result<ClickRequest, Rejection> {
    let mut values: [Option<String>; 11] = Default::default();
    let mut repeated: Option<&'static str> = None;
    for (key, value) in pairs {
        if let Some(i) = FIELDS.iter().position(|f| *f == key) {
            if values[i].is_some() {
                repeated.get_or_insert(FIELDS[i]);
            }
            values[i] = Some(value);
        }
    }
    let [click_trans_id, service_id, click_paydoc_id, merchant_trans_id, merchant_prepare_id, amount, action, error, error_note, sign_time, sign_string] =
        values;
    // What can be echoed in a refusal, read leniently.
    let echo_trans = click_trans_id.as_deref().and_then(parse_id);
    let echo_merchant = merchant_trans_id.clone().filter(|m| !m.is_empty());
    let reject = |code: ErrorCode, reason: String| Rejection {
        code,
        reason,
        click_trans_id: echo_trans,
        merchant_trans_id: echo_merchant.clone(),
    };
    let malformed = |field: &str| reject(ErrorCode::RequestError, format!("{field} is malformed"));
    if let Some(field) = repeated {
        return Err(reject(
            ErrorCode::RequestError,
            format!("{field} is sent more than once"),
        ));
    }
    let required = |value: Option<String>, field: &str| -> Result<String, Rejection> {
        value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| reject(ErrorCode::RequestError, format!("{field} is missing")))
    };

    let action_text = required(action, "action")?;
    let is_prepare = match action_text.as_str() {
        "0" => true,
        "1" => false,
        other if parse_signed(other).is_some() => {
            return Err(reject(
                ErrorCode::ActionNotFound,
                "action is neither 0 nor 1".into(),
            ))
        }
        _ => return Err(malformed("action")),
    };
    let click_trans_id = required(click_trans_id, "click_trans_id")?;
    let service_id = required(service_id, "service_id")?;
    let click_paydoc_id = required(click_paydoc_id, "click_paydoc_id")?;
    let merchant_trans_id = required(merchant_trans_id, "merchant_trans_id")?;
    let amount = required(amount, "amount")?;
    let error = required(error, "error")?;
    let sign_time = required(sign_time, "sign_time")?;
    let sign_string = required(sign_string, "sign_string")?;
    let merchant_prepare_id = if is_prepare {
        None
    } else {
        Some(required(merchant_prepare_id, "merchant_prepare_id")?)
    };

    let fields = Fields {
        click_trans_id: parse_id(&click_trans_id).ok_or_else(|| malformed("click_trans_id"))?,
        service_id: parse_id(&service_id).ok_or_else(|| malformed("service_id"))?,
        click_paydoc_id: parse_id(&click_paydoc_id).ok_or_else(|| malformed("click_paydoc_id"))?,
        merchant_trans_id: merchant_trans_id.clone(),
        amount_tiyin: parse_amount(&amount).ok_or_else(|| malformed("amount"))?,
        click_error: parse_signed(&error).ok_or_else(|| malformed("error"))?,
        error_note: error_note.clone().unwrap_or_default(),
        sign_time: sign_time.clone(),
    };
    let action = match &merchant_prepare_id {
        None => Action::Prepare,
        Some(text) => Action::Complete {
            merchant_prepare_id: parse_id(text).ok_or_else(|| malformed("merchant_prepare_id"))?,
        },
    };
    Ok(ClickRequest {
        action,
        fields,
        raw: RawFields {
            click_trans_id,
            service_id,
            click_paydoc_id,
            merchant_trans_id,
            merchant_prepare_id,
            amount,
            action: action_text,
            error,
            error_note: error_note.unwrap_or_default(),
            sign_time,
            sign_string,
        },
    })
}

/// A non-negative decimal id that fits i64 (`bigint`), digits only.
fn parse_id(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// An optionally negative integer (Click's `error`, e.g. `-5017`).
fn parse_signed(text: &str) -> Option<i32> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Largest whole-so'm part accepted; far above any payment, and it keeps the
/// tiyin value well inside i64.
const MAX_SOM_DIGITS: usize = 15;

/// Converts Click's so'm amount text to tiyin exactly: `5000`, `5000.0`,
/// `5000.00` (and `5000.000`) are 500000; `0.1` is 10. Text that is not a plain
/// decimal, or that names a fraction of a tiyin, is `None`.
///
/// Written here rather than with `domain::Amount::parse_decimal` because the
/// wire allows what an order amount does not: zero (answered -2 by the rules,
/// not -8) and zero digits past the tiyin.
pub fn parse_amount(text: &str) -> Option<i64> {
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) if !f.is_empty() => (w, f),
        Some(_) => return None,
        None => (text, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > MAX_SOM_DIGITS {
        return None;
    }
    let (tiyin, beyond) = frac.split_at(frac.len().min(2));
    if beyond.bytes().any(|b| b != b'0') {
        return None;
    }
    let som: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let tiyin: i64 = match tiyin.len() {
        0 => 0,
        1 => tiyin.parse::<i64>().ok()? * 10,
        _ => tiyin.parse().ok()?,
    };
    som.checked_mul(100)?.checked_add(tiyin)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SECRET: &str = "SECRET";
    pub(crate) const SERVICE_ID: i64 = 12345;

    /// A signed form body; `overrides` replace or (with `None`) drop fields.
    pub(crate) fn body(action: &str, overrides: &[(&str, Option<&str>)]) -> String {
        let mut fields: Vec<(String, String)> = [
            ("click_trans_id", "2011976"),
            ("service_id", "12345"),
            ("click_paydoc_id", "3300112"),
            ("merchant_trans_id", "197"),
            ("amount", "5000"),
            ("action", action),
            ("error", "0"),
            ("error_note", "Success"),
            ("sign_time", "2024-05-01 12:00:00"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        if action == "1" {
            fields.push(("merchant_prepare_id".into(), "55".into()));
        }
        for (k, v) in overrides {
            fields.retain(|(name, _)| name != k);
            if let Some(v) = v {
                fields.push((k.to_string(), v.to_string()));
            }
        }
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let prepare_id = fields
            .iter()
            .find(|(k, _)| k == "merchant_prepare_id")
            .map(|(_, v)| v.clone());
        let sign = SignInput {
            click_trans_id: &get("click_trans_id"),
            service_id: &get("service_id"),
            merchant_trans_id: &get("merchant_trans_id"),
            merchant_prepare_id: prepare_id.as_deref(),
            amount: &get("amount"),
            action: &get("action"),
            sign_time: &get("sign_time"),
        }
        .sign(SECRET);
        if !overrides.iter().any(|(k, _)| *k == "sign_string") {
            fields.push(("sign_string".into(), sign));
        }
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish()
    }

    pub(crate) fn verified(action: &str, overrides: &[(&str, Option<&str>)]) -> Verified {
        let req = parse_form(body(action, overrides).as_bytes()).expect("parses");
        authenticate(req, SECRET, SERVICE_ID).expect("authentic")
    }

    fn rejection(body: &str) -> Rejection {
        parse_form(body.as_bytes()).expect_err("refused")
    }

    #[test]
    fn documented_sign_vectors() {
        let prepare = SignInput {
            click_trans_id: "2011976",
            service_id: "12345",
            merchant_trans_id: "197",
            merchant_prepare_id: None,
            amount: "5000",
            action: "0",
            sign_time: "2024-05-01 12:00:00",
        };
        assert_eq!(prepare.sign(SECRET), "949a79a260a3c2c0f9c766e9f52f1100");
        let complete = SignInput {
            merchant_prepare_id: Some("55"),
            action: "1",
            sign_time: "2024-05-01 12:00:05",
            ..prepare
        };
        assert_eq!(complete.sign(SECRET), "3be2bd63e3f89cc0d8476b24c0bf633e");
    }

    #[test]
    fn parses_the_documented_prepare_example() {
        let body = "click_trans_id=2011976&service_id=12345&click_paydoc_id=3300112&merchant_trans_id=197&amount=5000&action=0&error=0&error_note=Success&sign_time=2024-05-01+12%3A00%3A00&sign_string=949a79a260a3c2c0f9c766e9f52f1100";
        let req = parse_form(body.as_bytes()).unwrap();
        assert_eq!(req.action, Action::Prepare);
        assert_eq!(req.fields.click_trans_id, 2011976);
        assert_eq!(req.fields.click_paydoc_id, 3300112);
        assert_eq!(req.fields.amount_tiyin, 500_000);
        assert_eq!(req.fields.sign_time, "2024-05-01 12:00:00");
        assert_eq!(req.fields.order_id(), Some(197));
        let v = authenticate(req, SECRET, SERVICE_ID).unwrap();
        assert_eq!(v.fields.merchant_trans_id, "197");
    }

    #[test]
    fn every_amount_format_is_the_same_amount_and_signed_as_sent() {
        for text in ["5000", "5000.0", "5000.00", "5000.000"] {
            let v = verified("0", &[("amount", Some(text))]);
            assert_eq!(v.fields.amount_tiyin, 500_000, "{text}");
            assert_eq!(v.raw.amount, text);
        }
        // A sign made over "5000" does not authenticate a body saying "5000.00".
        let honest = body("0", &[]);
        let sign = url::form_urlencoded::parse(honest.as_bytes())
            .find(|(k, _)| k == "sign_string")
            .unwrap()
            .1
            .into_owned();
        let tampered = body(
            "0",
            &[("amount", Some("5000.00")), ("sign_string", Some(&sign))],
        );
        let err =
            authenticate(parse_form(tampered.as_bytes()).unwrap(), SECRET, SERVICE_ID).unwrap_err();
        assert_eq!(err.code, ErrorCode::SignCheckFailed);
    }

    #[test]
    fn amounts_convert_exactly() {
        assert_eq!(parse_amount("0.1"), Some(10));
        assert_eq!(parse_amount("0.01"), Some(1));
        assert_eq!(parse_amount("1000.5"), Some(100_050));
        assert_eq!(parse_amount("007"), Some(700));
        assert_eq!(parse_amount("0"), Some(0));
        assert_eq!(
            parse_amount("999999999999999.99"),
            Some(99_999_999_999_999_999)
        );
        for bad in [
            "",
            ".",
            "5.",
            ".5",
            "5,00",
            "-5",
            "+5",
            "5e3",
            " 5",
            "5 ",
            "5.001",
            "1.2.3",
            "0x10",
            "1000000000000000",
        ] {
            assert_eq!(parse_amount(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn complete_includes_the_prepare_id_in_its_sign() {
        let v = verified("1", &[]);
        assert_eq!(
            v.action,
            Action::Complete {
                merchant_prepare_id: 55
            }
        );
        // Signed with the Prepare formula (no prepare id): refused.
        let raw = v.raw.clone();
        let prepare_formula = SignInput {
            merchant_prepare_id: None,
            ..raw.sign_input()
        }
        .sign(SECRET);
        let b = body("1", &[("sign_string", Some(&prepare_formula))]);
        let err = authenticate(parse_form(b.as_bytes()).unwrap(), SECRET, SERVICE_ID).unwrap_err();
        assert_eq!(err.code, ErrorCode::SignCheckFailed);
        assert_eq!(err.answer().click_trans_id, Some(2011976));
    }

    #[test]
    fn sign_is_compared_case_insensitively_and_needs_our_secret_and_service() {
        let b = body("0", &[]);
        let req = parse_form(b.as_bytes()).unwrap();
        let mut upper = req.clone();
        upper.raw.sign_string = upper.raw.sign_string.to_ascii_uppercase();
        assert!(authenticate(upper, SECRET, SERVICE_ID).is_ok());
        let err = authenticate(req.clone(), "OTHER", SERVICE_ID).unwrap_err();
        assert_eq!(err.code, ErrorCode::SignCheckFailed);
        let err = authenticate(req.clone(), SECRET, 54321).unwrap_err();
        assert_eq!(
            (err.code, err.reason.as_str()),
            (ErrorCode::SignCheckFailed, "service_id is not ours")
        );
        let mut short = req;
        short.raw.sign_string.pop();
        assert!(authenticate(short, SECRET, SERVICE_ID).is_err());
    }

    #[test]
    fn missing_or_malformed_fields_are_request_errors() {
        for field in [
            "click_trans_id",
            "service_id",
            "click_paydoc_id",
            "merchant_trans_id",
            "amount",
            "error",
            "sign_time",
            "sign_string",
        ] {
            for value in [None, Some("")] {
                let r = rejection(&body("0", &[(field, value)]));
                assert_eq!(r.code, ErrorCode::RequestError, "{field} {value:?}");
                assert!(r.reason.contains(field), "{}", r.reason);
            }
        }
        let r = rejection(&body("1", &[("merchant_prepare_id", None)]));
        assert_eq!(r.code, ErrorCode::RequestError);
        for (field, value) in [
            ("click_trans_id", "12a"),
            ("click_trans_id", "-5"),
            ("click_trans_id", "99999999999999999999"),
            ("service_id", "1 2"),
            ("click_paydoc_id", "x"),
            ("amount", "50,00"),
            ("amount", "5000.005"),
            ("error", "fail"),
            ("error", "--1"),
            ("merchant_prepare_id", "5.5"),
        ] {
            let action = if field == "merchant_prepare_id" {
                "1"
            } else {
                "0"
            };
            let r = rejection(&body(action, &[(field, Some(value))]));
            assert_eq!(r.code, ErrorCode::RequestError, "{field}={value}");
            assert_eq!(r.reason, format!("{field} is malformed"));
        }
        // The refusal echoes what it could read.
        let r = rejection(&body("0", &[("amount", Some("x"))]));
        assert_eq!(
            r.answer(),
            Answer {
                click_trans_id: Some(2011976),
                merchant_trans_id: Some("197".into()),
                ..Answer::new(ErrorCode::RequestError)
            }
        );
        assert_eq!(rejection("").code, ErrorCode::RequestError);
        assert_eq!(
            rejection("\u{0}\u{ff}garbage").code,
            ErrorCode::RequestError
        );
    }

    #[test]
    fn a_repeated_field_is_refused() {
        let b = format!("{}&amount=1", body("0", &[]));
        let r = rejection(&b);
        assert_eq!(r.code, ErrorCode::RequestError);
        assert!(r.reason.contains("amount"));
    }

    #[test]
    fn unknown_actions() {
        for action in ["2", "-1", "10"] {
            let r = rejection(&body(action, &[]));
            assert_eq!(r.code, ErrorCode::ActionNotFound, "{action}");
        }
        assert_eq!(rejection(&body("x", &[])).code, ErrorCode::RequestError);
        assert_eq!(
            rejection(&body("0", &[("action", None)])).code,
            ErrorCode::RequestError
        );
    }

    #[test]
    fn error_note_is_optional_and_unknown_fields_ignored() {
        let b = format!("{}&extra=1", body("0", &[("error_note", None)]));
        let req = parse_form(b.as_bytes()).unwrap();
        assert_eq!(req.fields.error_note, "");
        let v = verified(
            "1",
            &[
                ("error", Some("-5017")),
                ("error_note", Some("Insufficient funds")),
            ],
        );
        assert_eq!(v.fields.click_error, -5017);
        assert_eq!(v.fields.error_note, "Insufficient funds");
    }

    #[test]
    fn order_ids_are_canonical_decimals() {
        let id = |m: &str| {
            verified("0", &[("merchant_trans_id", Some(m))])
                .fields
                .order_id()
        };
        assert_eq!(id("197"), Some(197));
        assert_eq!(id("0197"), None);
        assert_eq!(id("order-197"), None);
        assert_eq!(id("99999999999999999999"), None);
    }

    #[test]
    fn answers_serialize_like_the_docs() {
        let v = verified("0", &[]);
        let prepared = Answer::to(&v, ErrorCode::Success).with_prepare_id(55);
        assert_eq!(
            serde_json::to_string(&prepared).unwrap(),
            r#"{"click_trans_id":2011976,"merchant_trans_id":"197","merchant_prepare_id":55,"error":0,"error_note":"Success"}"#
        );
        let confirmed = Answer::to(&v, ErrorCode::Success).with_confirm_id(55);
        assert_eq!(
            serde_json::to_value(&confirmed).unwrap()["merchant_confirm_id"],
            55
        );
        assert_eq!(
            serde_json::to_string(&Answer::to(&v, ErrorCode::SignCheckFailed)).unwrap(),
            r#"{"click_trans_id":2011976,"merchant_trans_id":"197","error":-1,"error_note":"SIGN CHECK FAILED!"}"#
        );
        let down = Answer::failed_to_update(&v);
        assert_eq!(
            (down.error, down.code()),
            (-7, Some(ErrorCode::FailedToUpdate))
        );
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code(c.code()), Some(c));
        }
        assert_eq!(ErrorCode::from_code(-10), None);
    }
}
