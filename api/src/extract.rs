//! Request extractors that turn every malformed input into an [`ApiError`]
//! instead of axum's plain-text rejections.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use paygate_common::store::ApiKey;
use serde_json::{Map, Value};

/// A JSON object body. Wrong content type, oversized, malformed or non-object
/// bodies are refused with a clear code.
pub struct JsonObject(pub Map<String, Value>);

pub async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, &()).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large",
            )
        } else {
            ApiError::bad_request("invalid_body", "the request body could not be read")
        }
    })
}

pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "invalid_json",
            "the body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(
            "invalid_json",
            format!(
                "the body is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )),
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|ct| {
                let ct = ct.to_ascii_lowercase();
                ct.starts_with("application/json") || ct.contains("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = read_body(req).await?;
        parse_object(&bytes).map(JsonObject)
    }
}

/// Typed reading of fields from a JSON object, with errors that name the field.
pub struct Fields<'a>(pub &'a Map<String, Value>);

impl Fields<'_> {
    /// A required integer: a JSON integer, or a string of digits (as Django REST
    /// Framework accepts). Fractions, floats, booleans are refused.
    pub fn integer(&self, name: &str) -> Result<i64, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => {
                Err(ApiError::invalid_field(name, format!("{name} is required")))
            }
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
                ApiError::invalid_field(name, format!("{name} must be a whole number within range"))
            }),
            Some(Value::String(s)) => {
                let t = s.trim();
                let digits = t.strip_prefix('-').unwrap_or(t);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(ApiError::invalid_field(
                        name,
                        format!("{name} must be a whole number"),
                    ));
                }
                t.parse().map_err(|_| {
                    ApiError::invalid_field(
                        name,
                        format!("{name} must be a whole number within range"),
                    )
                })
            }
            Some(_) => Err(ApiError::invalid_field(
                name,
                format!("{name} must be a whole number"),
            )),
        }
    }

    pub fn string(&self, name: &str) -> Result<String, ApiError> {
        self.optional_string(name)?
            .ok_or_else(|| ApiError::invalid_field(name, format!("{name} is required")))
    }

    pub fn optional_string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::invalid_field(
                name,
                format!("{name} must be a string"),
            )),
        }
    }
}

/// `user_identifier` must match `PAYGATE_USER_IDENTIFIER_PATTERN` (the seed's
/// phone format by default): it becomes a path segment of the main server's
/// user URL, so only the shape the main server expects is let through.
/// A missing or non-string value is left to the full input parser's message.
pub fn check_user_identifier(
    settings: &crate::state::ApiSettings,
    fields: &Fields<'_>,
) -> Result<(), ApiError> {
    let Ok(Some(raw)) = fields.optional_string("user_identifier") else {
        return Ok(());
    };
    let value = raw.trim();
    if value.is_empty() || settings.security.user_identifier_pattern.is_match(value) {
        return Ok(());
    }
    Err(ApiError::invalid_field(
        "user_identifier",
        "user_identifier does not have the expected format (e.g. 09123456789)",
    ))
}

/// An authenticated caller: `Authorization: Bearer <key>` (or DRF's `Token <key>`).
pub struct Caller(pub ApiKey);

fn bearer(parts: &Parts) -> Option<String> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, key) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token") {
        Some(key.trim().to_string())
    } else {
        None
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = bearer(parts).ok_or_else(ApiError::unauthorized)?;
        if key.is_empty() || key.len() > 200 {
            return Err(ApiError::unauthorized());
        }
        match state.store.verify_api_key(&key).await? {
            Some(k) => Ok(Caller(k)),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// An authenticated caller whose key is an admin key.
pub struct Admin(pub ApiKey);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(key) = Caller::from_request_parts(parts, state).await?;
        if key.is_admin {
            Ok(Admin(key))
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// The request headers worth keeping with a stored callback: enough to trace
/// it, never credentials or cookies.
pub fn kept_headers(headers: &axum::http::HeaderMap) -> Value {
    let mut out = Map::new();
    for name in [
        "content-type",
        "user-agent",
        "x-forwarded-for",
        "x-real-ip",
        "x-request-id",
    ] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            out.insert(name.to_string(), Value::String(v.to_string()));
        }
    }
    Value::Object(out)
}
