//! `Idempotency-Key` on creating routes, with Stripe's rules, parsed and
//! enforced here and nowhere else. Apply it to a route with one line:
//!
//! ```ignore
//! .route("/v1/payments", idempotent(post(create)))
//! ```
//!
//! - A key is 1 to 255 visible ASCII characters (`400 invalid_idempotency_key`
//!   otherwise), scoped to the caller: the API key when the request carries
//!   one, else the route alone (unauthenticated seed routes). It is
//!   remembered for 24 hours.
//! - A repeat of the same request (method, path, body; a JSON body compared
//!   by its content, not its spacing or key order) replays the first answer:
//!   its status, body and `Location`/`Content-Type`/`Preference-Applied`,
//!   marked `Idempotent-Replayed: true`.
//! - A repeat with a different request: `422 idempotency_key_reused`.
//! - A repeat while the first is still being processed: `409 idempotency_key_in_use`.
//! - Answers that say "try again" (5xx, 408, 409, 429) are not kept: the
//!   next repeat runs again.
//!
//! The handler runs in its own task, so a client that hangs up does not cut
//! it short between its write and the stored answer. Handlers read the
//! payment-level key to store with what they create from [`IdempotencyKey`]
//! (see `common/src/store/idempotency.rs` for why that makes a crash between
//! the two writes safe).

use crate::error::ApiError;
use crate::extract::Caller;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Extension;
use paygate_common::store::{Claim, IdempotencyScope, IdempotencyTimes, StoredAnswer};
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::time::Duration;
use tracing::Instrument;

/// How long a key is remembered (Stripe: 24 hours).
pub const KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest key accepted (Stripe: 255 characters).
pub const MAX_KEY_LEN: usize = 255;

/// Beyond the longest a creating request may wait (seed wait, `Prefer:
/// wait`), how long a running request holds its key before a repeat may take
/// it over (only matters when the process died mid-request).
const LEASE_MARGIN: Duration = Duration::from_secs(10);

/// An answer larger than this is not one of ours; it is not kept.
const MAX_KEPT_BODY: usize = 1 << 20;

/// The headers a replay carries.
const KEPT_HEADERS: [HeaderName; 3] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    HeaderName::from_static("preference-applied"),
];

/// Puts the idempotency rules in front of a creating route.
pub fn idempotent(route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.route_layer(axum::middleware::from_fn(guard))
}

/// The payment-level key a handler stores with what it creates: derived from
/// the caller's scope, the route, the key and the record's generation, so it
/// is unique per caller and names one attempt family. `None` without an
/// `Idempotency-Key` header.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(IdempotencyKey(
            parts.extensions.get::<DerivedKey>().map(|k| k.0.clone()),
        ))
    }
}

#[derive(Clone)]
struct DerivedKey(String);

/// The header's value, if present: 1 to 255 visible ASCII characters (spaces
/// inside allowed), surrounding blanks ignored.
pub fn parse_key(value: Option<&HeaderValue>) -> Result<Option<String>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let invalid = || {
        ApiError::bad_request(
            "invalid_idempotency_key",
            format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        )
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    if text.is_empty()
        || text.len() > MAX_KEY_LEN
        || !text.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
    {
        return Err(invalid());
    }
    Ok(Some(text.to_string()))
}

/// What makes two requests "the same": method, path, and the body — a JSON
/// body by its parsed content (serde_json's map is ordered by key, so
/// re-serialising is canonical), anything else byte for byte.
pub fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b"\n");
    h.update(path.as_bytes());
    h.update(b"\n");
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => {
            h.update(b"json\n");
            h.update(v.to_string().as_bytes());
        }
        Err(_) => {
            h.update(b"raw\n");
            h.update(body);
        }
    }
    hex::encode(h.finalize())
}

fn derived_key(scope: &IdempotencyScope, generation: i64) -> String {
    let mut h = Sha256::new();
    for part in [&scope.caller, &scope.route, &scope.key] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(generation.to_be_bytes());
    format!("idem_{}", hex::encode(h.finalize()))
}

fn reused() -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
        "this Idempotency-Key was used with a different request; use a new key",
    )
}

fn in_use() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_key_in_use",
        "a request with this Idempotency-Key is still being processed; retry later",
    )
}

/// Answers that invite a retry are not kept.
fn keepable(status: StatusCode) -> bool {
    !(status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::CONFLICT
        || status == StatusCode::TOO_MANY_REQUESTS)
}

fn replay(answer: StoredAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, answer.body).into_response();
    let headers = resp.headers_mut();
    headers.remove(header::CONTENT_TYPE);
    for (name, value) in answer.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.insert(n, v);
        }
    }
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    resp
}

async fn guard(
    Extension(state): Extension<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(key) = parse_key(req.headers().get("idempotency-key"))? else {
        return Ok(next.run(req).await);
    };
    let (mut parts, body) = req.into_parts();
    // A key without a valid API key has no caller to belong to: unauthenticated
    // requests share the route's scope, and a request whose Authorization is
    // refused is refused here (any route would refuse it too).
    let caller = if parts.headers.contains_key(header::AUTHORIZATION) {
        let Caller(k) = Caller::from_request_parts(&mut parts, &state).await?;
        format!("key:{}", k.id)
    } else {
        "anonymous".to_string()
    };
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let bytes = crate::extract::read_body(Request::from_parts(parts.clone(), body)).await?;
    let scope = IdempotencyScope { caller, route, key };
    let print = fingerprint(parts.method.as_str(), parts.uri.path(), &bytes);
    let s = &state.settings;
    let times = IdempotencyTimes {
        ttl: KEY_TTL,
        lease: s.seed_wait.max(s.max_wait) + LEASE_MARGIN,
    };
    let generation = match state
        .store
        .claim_idempotency_key(&scope, &print, times)
        .await?
    {
        Claim::Run { generation } => generation,
        Claim::Replay(answer) => return Ok(replay(answer)),
        Claim::InProgress => return Err(in_use()),
        Claim::Reused => return Err(reused()),
    };
    parts
        .extensions
        .insert(DerivedKey(derived_key(&scope, generation)));
    let req = Request::from_parts(parts, Body::from(bytes));
    let store = state.store.clone();
    // Its own task: finishes (and stores its answer) even if the client leaves.
    let task = tokio::spawn(
        async move {
            let resp = next.run(req).await;
            let (head, body) = resp.into_parts();
            let body = axum::body::to_bytes(body, MAX_KEPT_BODY).await;
            let kept = match (&body, keepable(head.status)) {
                (Ok(bytes), true) => std::str::from_utf8(bytes).ok().map(|text| StoredAnswer {
                    status: head.status.as_u16(),
                    headers: KEPT_HEADERS
                        .iter()
                        .filter_map(|n| {
                            let v = head.headers.get(n)?.to_str().ok()?;
                            Some((n.as_str().to_string(), v.to_string()))
                        })
                        .collect(),
                    body: text.to_string(),
                }),
                _ => None,
            };
            let stored = match &kept {
                Some(answer) => {
                    store
                        .finish_idempotency_key(&scope, generation, answer)
                        .await
                }
                None => store.release_idempotency_key(&scope, generation).await,
            };
            if let Err(e) = stored {
                // The answer stands; the key stays `processing` until its lease
                // runs out, then a repeat runs again and finds what this one made.
                tracing::warn!(error = %e, "an idempotent answer could not be stored");
            }
            match body {
                Ok(bytes) => Response::from_parts(head, Body::from(bytes)),
                Err(_) => ApiError::internal().into_response(),
            }
        }
        .instrument(tracing::Span::current()),
    );
    match task.await {
        Ok(resp) => Ok(resp),
        Err(_) => {
            tracing::error!("an idempotent request handler panicked");
            Err(ApiError::internal())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_to_255_visible_characters() {
        let parse = |s: &str| parse_key(Some(&HeaderValue::from_str(s).unwrap()));
        assert_eq!(parse("order-77").unwrap().as_deref(), Some("order-77"));
        assert_eq!(parse("  a b  ").unwrap().as_deref(), Some("a b"));
        assert_eq!(parse(&"k".repeat(255)).unwrap().map(|k| k.len()), Some(255));
        assert!(parse(&"k".repeat(256)).is_err());
        assert!(parse("   ").is_err());
        assert!(parse("a\tb").is_err());
        assert_eq!(parse_key(None).unwrap(), None);
        let err = parse("").unwrap_err();
        assert_eq!(err.code, "invalid_idempotency_key");
    }

    #[test]
    fn json_bodies_compare_by_content() {
        let a = fingerprint("POST", "/v1/payments", br#"{"amount": 1, "b": "x"}"#);
        let b = fingerprint("POST", "/v1/payments", br#"{"b":"x","amount":1}"#);
        let c = fingerprint("POST", "/v1/payments", br#"{"b":"x","amount":2}"#);
        let d = fingerprint("POST", "/v1/orders", br#"{"b":"x","amount":1}"#);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert_ne!(
            fingerprint("POST", "/x", b"not json"),
            fingerprint("POST", "/x", b"not json!")
        );
    }

    #[test]
    fn derived_keys_differ_by_caller_route_key_and_generation() {
        let s = |c: &str, r: &str, k: &str| IdempotencyScope {
            caller: c.into(),
            route: r.into(),
            key: k.into(),
        };
        let base = derived_key(&s("anonymous", "/v1/payments", "k"), 1);
        assert_ne!(base, derived_key(&s("key:1", "/v1/payments", "k"), 1));
        assert_ne!(base, derived_key(&s("anonymous", "/v1/orders", "k"), 1));
        assert_ne!(base, derived_key(&s("anonymous", "/v1/payments", "k2"), 1));
        assert_ne!(base, derived_key(&s("anonymous", "/v1/payments", "k"), 2));
        assert_eq!(base, derived_key(&s("anonymous", "/v1/payments", "k"), 1));
    }
}
