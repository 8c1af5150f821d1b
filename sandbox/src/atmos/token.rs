//! OAuth2 client-credentials tokens (docs/gateways/atmos.md, 'Token') and the Bearer check
//! of the business endpoints.

use super::Atmos;
use crate::form::FormFields;
use axum::extract::{RawQuery, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use rand::distr::{Alphanumeric, SampleString};
use serde_json::json;
use std::time::{Duration, Instant};

fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (key, secret) = text.split_once(':')?;
    Some((key.to_owned(), secret.to_owned()))
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// `POST /token`. The docs' curl sends `grant_type` in the query string as
/// well as in the body, so either is accepted.
pub(super) async fn issue(
    State(a): State<Atmos>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    form: FormFields,
) -> Response {
    if let Some(response) = super::api::fault(&a).await {
        return response;
    }
    let cfg = a.config();
    match credentials(&headers) {
        Some((key, secret)) if key == cfg.consumer_key && secret == cfg.consumer_secret => {}
        _ => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client Authentication failed.",
            )
        }
    }
    let from_query = query.as_deref().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "grant_type")
            .map(|(_, v)| v.trim().to_owned())
    });
    let grant_type = form.get("grant_type").map(str::to_owned).or(from_query);
    match grant_type.as_deref() {
        Some("client_credentials") => {}
        None | Some("") => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Missing grant_type parameter value",
            )
        }
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "Unsupported grant_type value",
            )
        }
    }
    let token = Alphanumeric.sample_string(&mut rand::rng(), 32);
    {
        let mut store = a.store();
        let now = Instant::now();
        // Expired tokens are dropped here so a long benchmark cannot grow
        // the map without bound.
        store.tokens.retain(|_, expiry| *expiry > now);
        store
            .tokens
            .insert(token.clone(), now + Duration::from_secs(cfg.token_ttl_secs));
        store.stats.tokens_issued += 1;
    }
    Json(json!({
        "access_token": token,
        "scope": "am_application_scope default",
        "token_type": "Bearer",
        "expires_in": cfg.token_ttl_secs,
    }))
    .into_response()
}

/// WSO2-style fault body that the API gateway in front of Atmos returns.
fn unauthorized(description: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({
            "fault": {
                "code": 900901,
                "message": "Invalid Credentials",
                "description": description,
            }
        })),
    )
        .into_response()
}

/// Why a business call is not authorised; answered with HTTP 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AuthError {
    Missing,
    Unknown,
    Expired,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        unauthorized(match self {
            AuthError::Missing => "Invalid Credentials. Make sure your API invocation call has a header: 'Authorization : Bearer ACCESS_TOKEN'",
            AuthError::Unknown => "Invalid Credentials. Make sure you have provided the correct security credentials",
            AuthError::Expired => "Access token expired",
        })
    }
}

pub(super) fn check_bearer(a: &Atmos, headers: &HeaderMap) -> Result<(), AuthError> {
    let token = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned())
        .ok_or(AuthError::Missing)?;
    let mut store = a.store();
    match store.tokens.get(&token) {
        Some(expiry) if *expiry > Instant::now() => Ok(()),
        Some(_) => {
            store.tokens.remove(&token);
            Err(AuthError::Expired)
        }
        None => Err(AuthError::Unknown),
    }
}
