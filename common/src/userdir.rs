//! The CrazyMiner main server, where payers' profiles live. paygate fetches a
//! profile once per payment (the `fetch_user` job) and keeps it only encrypted.

use crate::gateways::http::{client, observe, status_error, transport_error, ClientSetupError};
use crate::gateways::{GatewayError, Payer};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct UserDirectoryConfig {
    /// Base URL of the main server (defaults to `PAYMENT_GATEWAY_URL`).
    pub base_url: String,
    /// Path template; `{identifier}` is replaced by the percent-encoded identifier.
    pub path: String,
    /// Header carrying the credential, and the text before the key in it.
    pub auth_header: String,
    pub auth_prefix: String,
    pub api_key: String,
    pub timeout: Duration,
}

pub struct UserDirectory {
    cfg: UserDirectoryConfig,
    http: reqwest::Client,
}

impl UserDirectory {
    /// Fails only when the HTTP client cannot be built (see [`ClientSetupError`]).
    pub fn new(cfg: UserDirectoryConfig) -> Result<Self, ClientSetupError> {
        let http = client(cfg.timeout)?;
        Ok(UserDirectory { cfg, http })
    }

    /// The profile JSON, or `None` when the main server does not know the user.
    pub async fn fetch(&self, identifier: &str) -> Result<Option<serde_json::Value>, GatewayError> {
        let started = Instant::now();
        let result = self.fetch_inner(identifier).await;
        observe("main_server", "fetch_user", started, &result);
        result
    }

    async fn fetch_inner(
        &self,
        identifier: &str,
    ) -> Result<Option<serde_json::Value>, GatewayError> {
        let Some(encoded) = path_segment(identifier) else {
            return Err(GatewayError::permanent(
                "invalid_user_identifier",
                "the user identifier cannot be a URL path segment",
            ));
        };
        let url = format!(
            "{}{}",
            self.cfg.base_url.trim_end_matches('/'),
            self.cfg.path.replace("{identifier}", &encoded)
        );
        let resp = self
            .http
            .get(url)
            .header(
                self.cfg.auth_header.as_str(),
                format!("{}{}", self.cfg.auth_prefix, self.cfg.api_key),
            )
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        if resp.status().as_u16() == 404 {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(status_error(&resp, "user_server_rejected_request"));
        }
        let value: serde_json::Value = resp.json().await.map_err(|_| {
            GatewayError::permanent("user_data_invalid", "main server answered invalid JSON")
        })?;
        if !value.is_object() {
            return Err(GatewayError::permanent(
                "user_data_invalid",
                "main server answered JSON that is not an object",
            ));
        }
        Ok(Some(value))
    }
}

/// Everything but RFC 3986's unreserved characters is escaped, so input can
/// never add a `/`, `?`, `#` or `%` of its own to a URL path.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'~')
    .remove(b'.');

/// One URL path segment built from input, or `None` when it cannot be one.
/// Dot segments are refused outright: URL parsers resolve `..` (and its
/// escaped form `%2e%2e`) to the parent, which would steer the request.
pub fn path_segment(input: &str) -> Option<String> {
    if input.is_empty() || input.bytes().all(|b| b == b'.') {
        return None;
    }
    Some(percent_encoding::utf8_percent_encode(input, SEGMENT).to_string())
}

/// Picks the fields a gateway form wants from a profile of unknown shape
/// (Django user serializers vary: full_name, name, first/last name, username).
pub fn payer_from_profile(profile: &serde_json::Value) -> Payer {
    let text = |k: &str| {
        profile
            .get(k)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let joined = match (text("first_name"), text("last_name")) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(f), None) => Some(f),
        (None, Some(l)) => Some(l),
        (None, None) => None,
    };
    Payer {
        name: text("full_name")
            .or_else(|| text("name"))
            .or(joined)
            .or_else(|| text("username")),
        email: text("email"),
        phone: text("phone")
            .or_else(|| text("phone_number"))
            .or_else(|| text("mobile")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn path_segments_cannot_steer_the_url() {
        assert_eq!(path_segment("09123456789").as_deref(), Some("09123456789"));
        assert_eq!(
            path_segment("a/b?c#d%e").as_deref(),
            Some("a%2Fb%3Fc%23d%25e")
        );
        assert_eq!(path_segment("a b+c@d").as_deref(), Some("a%20b%2Bc%40d"));
        for bad in ["", ".", "..", "..."] {
            assert_eq!(path_segment(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn dot_identifiers_are_refused_before_any_request() {
        let dir = UserDirectory::new(UserDirectoryConfig {
            // Nothing listens here: a request would be a transport error instead.
            base_url: "http://127.0.0.1:9".into(),
            path: "/api/users/{identifier}/".into(),
            auth_header: "Authorization".into(),
            auth_prefix: "Api-Key ".into(),
            api_key: "k".into(),
            timeout: Duration::from_millis(200),
        })
        .expect("client");
        let e = dir.fetch("..").await.unwrap_err();
        assert!(
            matches!(&e, GatewayError::Permanent { reason, .. } if reason == "invalid_user_identifier"),
            "{e:?}"
        );
    }

    #[test]
    fn payer_fields_come_from_common_profile_shapes() {
        let p = payer_from_profile(
            &json!({"first_name": "Ali", "last_name": "Rezaei", "email": "a@x.ir", "phone": "0912"}),
        );
        assert_eq!(p.name.as_deref(), Some("Ali Rezaei"));
        assert_eq!(p.email.as_deref(), Some("a@x.ir"));
        let p = payer_from_profile(&json!({"full_name": "Sara", "username": "s"}));
        assert_eq!(p.name.as_deref(), Some("Sara"));
        let p = payer_from_profile(&json!({"username": "s", "email": ""}));
        assert_eq!(p.name.as_deref(), Some("s"));
        assert_eq!(p.email, None);
    }
}
