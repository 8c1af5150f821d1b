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
        let encoded: String = url::form_urlencoded::byte_serialize(identifier.as_bytes()).collect();
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
