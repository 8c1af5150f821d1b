//! Calling a merchant's Payme endpoint the way Payme does: `POST` a JSON-RPC
//! body with `Authorization: Basic base64("Paycom:<key>")`, and read the
//! answer strictly (docs/gateways/payme.md, "Envelope"): HTTP 200, the
//! request's `id` echoed, exactly one of `result` and `error`.

use base64::Engine;
use serde_json::{json, Map, Value};

/// What the merchant answered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    Result(Map<String, Value>),
    Error {
        code: i64,
        message: Value,
        data: Value,
    },
}

/// One request and how it went. `reply` is `Err` when there is no usable
/// answer (transport failure, not HTTP 200, not the envelope).
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub reply: Result<Reply, String>,
    /// Envelope faults that still left a usable answer (no `id` echo).
    pub problems: Vec<String>,
}

pub(crate) fn basic_auth(key: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("Paycom:{key}"))
    )
}

pub(crate) fn request_body(id: u64, method: &str, params: Value) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        .to_string()
        .into_bytes()
}

/// Sends `body` as it is. `auth`: the whole `Authorization` value, if any.
pub(crate) async fn send(
    http: &reqwest::Client,
    url: &str,
    auth: Option<&str>,
    body: Vec<u8>,
    id: &Value,
) -> Exchange {
    let mut request = http
        .post(url)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/json; charset=UTF-8",
        )
        .body(body);
    if let Some(auth) = auth {
        request = request.header(reqwest::header::AUTHORIZATION, auth);
    }
    let failed = |why: String| Exchange {
        reply: Err(why),
        problems: Vec::new(),
    };
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return failed(format!("request failed: {e}")),
    };
    let status = response.status();
    let text = match response.text().await {
        Ok(t) => t,
        Err(e) => return failed(format!("reading the answer failed: {e}")),
    };
    if status != reqwest::StatusCode::OK {
        return failed(format!(
            "answered HTTP {} (Payme expects 200 always): {}",
            status.as_u16(),
            clip(&text)
        ));
    }
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(_) => return failed(format!("answer is not JSON: {}", clip(&text))),
    };
    let mut problems = Vec::new();
    if value.get("id") != Some(id) {
        problems.push(format!(
            "id {} not echoed (got {})",
            id,
            value
                .get("id")
                .map_or("nothing".to_owned(), Value::to_string)
        ));
    }
    let reply = match (value.get("result"), value.get("error")) {
        (Some(Value::Object(result)), None | Some(Value::Null)) => {
            Ok(Reply::Result(result.clone()))
        }
        (None | Some(Value::Null), Some(Value::Object(error))) => {
            match error.get("code").and_then(Value::as_i64) {
                Some(code) => Ok(Reply::Error {
                    code,
                    message: error.get("message").cloned().unwrap_or(Value::Null),
                    data: error.get("data").cloned().unwrap_or(Value::Null),
                }),
                None => Err(format!("error without an integer code: {}", clip(&text))),
            }
        }
        _ => Err(format!(
            "answer has neither a result object nor an error object: {}",
            clip(&text)
        )),
    };
    Exchange { reply, problems }
}

/// A call with Payme's credentials.
pub(crate) async fn call(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    id: u64,
    method: &str,
    params: Value,
) -> Exchange {
    let auth = basic_auth(key);
    send(
        http,
        url,
        Some(&auth),
        request_body(id, method, params),
        &json!(id),
    )
    .await
}

/// A localized error message in `lang`, or whatever text it has.
pub(crate) fn message_in(message: &Value, lang: &str) -> String {
    match message {
        Value::String(s) => s.clone(),
        Value::Object(m) => m
            .get(lang)
            .or_else(|| m.get("ru"))
            .or_else(|| m.values().next())
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

/// A long body shortened for a message.
fn clip(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// A fresh 24-character transaction id (hex, like Payme's object ids).
pub(crate) fn new_payme_id() -> String {
    hex::encode(rand::random::<[u8; 12]>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_header() {
        assert_eq!(basic_auth("TEST_KEY"), "Basic UGF5Y29tOlRFU1RfS0VZ");
    }

    #[test]
    fn ids_are_24_hex() {
        let id = new_payme_id();
        assert_eq!(id.len(), 24);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, new_payme_id());
    }

    #[test]
    fn messages_by_language() {
        let m =
            json!({"ru": "Заказ не найден", "uz": "Buyurtma topilmadi", "en": "Order not found"});
        assert_eq!(message_in(&m, "en"), "Order not found");
        assert_eq!(message_in(&m, "fa"), "Заказ не найден");
        assert_eq!(message_in(&json!("plain"), "en"), "plain");
        assert_eq!(message_in(&Value::Null, "en"), "");
    }

    #[test]
    fn clips_long_text() {
        assert_eq!(clip("short"), "short");
        assert_eq!(clip(&"я".repeat(400)).chars().count(), 301);
    }
}
