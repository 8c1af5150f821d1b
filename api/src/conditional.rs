//! Conditional reads that can wait (a long poll): every payment and order
//! read carries an `ETag`; a request whose `If-None-Match` still matches gets
//! `304 Not Modified`, and with `Prefer: wait=N` that `304` comes only after up
//! to N seconds without a change — or a `200` as soon as the resource changes.
//!
//! The result pages used to poll the status route every second; now their
//! script sends its last `ETag` with `Prefer: wait` and is answered when the
//! payment moves (docs/design.md). The wait uses the same wake-ups as the
//! seed route's wait; [`READ_SAFETY_REREAD`] bounds how late a lost one is
//! noticed.
//!
//! Standard HTTP (RFC 9110 `ETag`/`If-None-Match` with weak comparison, RFC
//! 7240 `Prefer: wait`), so any client can use it; nothing here needs a
//! crate beyond the `sha2` the project already has for signatures.

use crate::error::ApiResult;
use crate::routes::v1::preferred_wait;
use crate::state::AppState;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use paygate_common::domain::PaymentId;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How often a waiting read re-reads without a wake-up. Longer than the
/// create's [`crate::payments::SAFETY_REREAD`] (500 ms): a result page stays
/// open for minutes, and these re-reads are most of what an open page costs
/// (`paygate-bench pages`, PERFORMANCE.md). Wake-ups are lost only when a
/// process dies between its commit and its publish or its publish backlog
/// overflows (counted); a dropped Redis subscription already wakes every
/// waiter when it resubscribes. A page a person is looking at shows such a
/// change at most 5 s late.
pub const READ_SAFETY_REREAD: Duration = Duration::from_secs(5);

/// What the client already has, and how long it is willing to wait for
/// something newer.
#[derive(Debug, Clone, Default)]
pub struct Condition {
    /// The `If-None-Match` entity tags, opaque parts only (weak comparison).
    tags: Vec<String>,
    /// `*`: any current representation matches.
    any: bool,
    wait: Duration,
}

impl Condition {
    /// From the request's headers; `Prefer: wait` is bounded by `max` (the
    /// same `PAYGATE_MAX_WAIT_MS` as a create's wait).
    pub fn from_headers(headers: &HeaderMap, max: Duration) -> Self {
        let mut cond = Condition {
            wait: preferred_wait(headers, max).unwrap_or_default(),
            ..Condition::default()
        };
        for value in headers.get_all(header::IF_NONE_MATCH) {
            // A header that is not text cannot match anything we sent.
            let Ok(value) = value.to_str() else { continue };
            for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                if tag == "*" {
                    cond.any = true;
                } else {
                    cond.tags.push(opaque(tag).to_string());
                }
            }
        }
        cond
    }

    /// True when the client already has the representation tagged `tag`.
    fn holds(&self, tag: &str) -> bool {
        self.any || self.tags.iter().any(|t| t == opaque(tag))
    }
}

/// The quoted part of an entity tag: weak comparison ignores `W/`.
fn opaque(tag: &str) -> &str {
    tag.strip_prefix("W/").unwrap_or(tag)
}

/// A representation serialized once: the bytes sent and their validator.
struct Representation {
    bytes: Vec<u8>,
    tag: String,
}

impl Representation {
    fn of(body: &Value) -> Self {
        let bytes = body.to_string().into_bytes();
        let tag = etag(&bytes);
        Representation { bytes, tag }
    }
}

/// A weak validator of the JSON bytes: the same body, the same tag. Weak
/// because it names the JSON value, not an encoding of it on the wire.
fn etag(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    format!("W/\"{}\"", hex::encode(&digest[..12]))
}

/// Answers a read: `200` with the body and its `ETag`, or `304` when the
/// client's `If-None-Match` still holds — after waiting up to the client's
/// `Prefer: wait` for the resource to change. `first` is the representation
/// just read, `reread` produces the current one; `watched` is the payment
/// whose announced changes wake the wait (`None`: re-read every
/// [`READ_SAFETY_REREAD`] only).
pub async fn answer<F, Fut>(
    state: &AppState,
    cond: &Condition,
    watched: Option<PaymentId>,
    first: Value,
    mut reread: F,
) -> ApiResult<Response>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ApiResult<Value>>,
{
    let rep = Representation::of(&first);
    if !cond.holds(&rep.tag) {
        return Ok(fresh(rep));
    }
    if cond.wait.is_zero() {
        return Ok(not_modified(&rep.tag));
    }
    let deadline = Instant::now() + cond.wait;
    // Registered before the re-read: a change committed after the first read
    // is seen by the re-read or wakes the waiter (as in the seed's wait).
    let mut waiter = watched.map(|id| state.watch.watch(id));
    let applied = |mut resp: Response| {
        let v = format!("wait={}", cond.wait.as_secs());
        if let Ok(v) = HeaderValue::from_str(&v) {
            resp.headers_mut().insert("preference-applied", v);
        }
        resp
    };
    loop {
        let rep = Representation::of(&reread().await?);
        if !cond.holds(&rep.tag) {
            return Ok(applied(fresh(rep)));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(applied(not_modified(&rep.tag)));
        }
        let pause = READ_SAFETY_REREAD.min(deadline - now);
        match waiter.as_mut() {
            Some(w) => {
                tokio::select! {
                    _ = w.changed() => {}
                    _ = tokio::time::sleep(pause) => {}
                }
            }
            None => tokio::time::sleep(pause).await,
        }
    }
}

fn with_tag(mut resp: Response, tag: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(tag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    // A status changes under the client's feet: caches must ask every time.
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn fresh(rep: Representation) -> Response {
    let resp = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        rep.bytes,
    )
        .into_response();
    with_tag(resp, &rep.tag)
}

fn not_modified(tag: &str) -> Response {
    with_tag(StatusCode::NOT_MODIFIED.into_response(), tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(pairs: &[(&'static str, &str)]) -> Condition {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        Condition::from_headers(&h, Duration::from_secs(30))
    }

    fn tag(body: Value) -> String {
        Representation::of(&body).tag
    }

    #[test]
    fn the_tag_follows_the_body() {
        let a = tag(json!({"status": "pending"}));
        assert_eq!(a, tag(json!({"status": "pending"})));
        assert_ne!(a, tag(json!({"status": "completed"})));
        assert!(a.starts_with("W/\"") && a.ends_with('"'));
    }

    #[test]
    fn if_none_match_compares_weakly_and_in_lists() {
        let tag = self::tag(json!({"status": "pending"}));
        let strong = tag.trim_start_matches("W/").to_string();
        assert!(cond(&[("if-none-match", &tag)]).holds(&tag));
        assert!(cond(&[("if-none-match", &strong)]).holds(&tag));
        assert!(cond(&[("if-none-match", &format!("\"x\", {tag}"))]).holds(&tag));
        assert!(cond(&[("if-none-match", "*")]).holds(&tag));
        assert!(!cond(&[("if-none-match", "\"x\"")]).holds(&tag));
        assert!(!cond(&[]).holds(&tag));
    }

    #[test]
    fn the_wait_is_bounded() {
        assert_eq!(cond(&[("prefer", "wait=5")]).wait, Duration::from_secs(5));
        assert_eq!(
            cond(&[("prefer", "wait=3600")]).wait,
            Duration::from_secs(30)
        );
        assert_eq!(cond(&[]).wait, Duration::ZERO);
    }
}
