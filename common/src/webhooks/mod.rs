//! Outgoing merchant notifications (Standard Webhooks): signing, settings,
//! and the URL rules endpoints follow. The tables are `store::webhooks`, the
//! fan-out and delivery jobs `worker/src/jobs/{notify,deliver_webhook}.rs`,
//! the admin API `api/src/routes/webhook_endpoints.rs`; the decisions are in
//! docs/notifications.md.

pub mod settings;
pub mod signing;

pub use settings::{ConfigEndpoint, WebhookSettings};
pub use signing::{Secret, SecretError};

/// The id of the endpoint `PAYGATE_WEBHOOK_URL` configures (the API cannot
/// change it; the environment does, at every start).
pub const CONFIG_ENDPOINT_ID: &str = "ep_config";

/// An endpoint URL: absolute http(s), no credentials in it, at most 2,000
/// characters. Returns it as given (trimmed).
pub fn check_url(text: &str) -> Result<String, &'static str> {
    let text = text.trim();
    if text.len() > 2000 {
        return Err("the URL is longer than 2000 characters");
    }
    let url = url::Url::parse(text).map_err(|_| "not a URL")?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http:// or https:// URL with a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; paygate signs every delivery instead");
    }
    Ok(text.to_string())
}

/// Body text kept from a merchant's answer, per attempt.
pub const RESPONSE_KEPT_BYTES: usize = 1024;

/// The first `RESPONSE_KEPT_BYTES` of a response, cut at a character boundary.
pub fn truncate_response(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(RESPONSE_KEPT_BYTES)]);
    text.trim_end_matches('\u{FFFD}').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://shop.example/hooks").is_ok());
        assert!(check_url("http://127.0.0.1:8080/x").is_ok());
        assert!(check_url("ftp://shop.example").is_err());
        assert!(check_url("https://user:pw@shop.example").is_err());
        assert!(check_url("/relative").is_err());
    }

    #[test]
    fn responses_are_truncated_on_a_character() {
        let long = "é".repeat(1000);
        let kept = truncate_response(long.as_bytes());
        assert!(kept.len() <= RESPONSE_KEPT_BYTES);
        assert!(kept.chars().all(|c| c == 'é'));
    }
}
