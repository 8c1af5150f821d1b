//! The medogram main server's user API, which the CrazyMiner flow calls to
//! fetch the payer before creating an invoice.

use super::store::Store;
use super::Medogram;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

const FIRST_NAMES: [&str; 8] = [
    "علی",
    "محمد",
    "زهرا",
    "فاطمه",
    "رضا",
    "مریم",
    "حسین",
    "سارا",
];
const LAST_NAMES: [&str; 8] = [
    "احمدی",
    "محمدی",
    "حسینی",
    "رضایی",
    "کریمی",
    "موسوی",
    "جعفری",
    "کاظمی",
];

fn is_iranian_mobile(s: &str) -> bool {
    s.len() == 11 && s.starts_with("09") && s.bytes().all(|b| b.is_ascii_digit())
}

/// The user every valid mobile number has. The id is the number without its
/// leading zero: stable across restarts and unique per number.
fn generated(phone: &str) -> Option<Map<String, Value>> {
    if !is_iranian_mobile(phone) {
        return None;
    }
    let id: u64 = phone[1..].parse().ok()?;
    let last4 = &phone[7..];
    let digit_sum: u64 = phone.bytes().map(|b| u64::from(b - b'0')).sum();
    let first = FIRST_NAMES[(id % FIRST_NAMES.len() as u64) as usize];
    let last = LAST_NAMES[(digit_sum % LAST_NAMES.len() as u64) as usize];
    match json!({
        "id": id,
        "phone": phone,
        "username": format!("user{last4}"),
        "first_name": first,
        "last_name": last,
        "email": format!("user{last4}@example.com"),
    }) {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// FNV-1a, so registered non-phone identifiers also get a stable id.
fn stable_id(identifier: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in identifier.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash % 1_000_000_000 + 1
}

fn resolve(store: &Store, identifier: &str) -> Option<Map<String, Value>> {
    let Some(registered) = store.users.get(identifier) else {
        return generated(identifier);
    };
    if registered.get("_missing") == Some(&Value::Bool(true)) {
        return None;
    }
    let mut user = generated(identifier).unwrap_or_else(|| {
        let mut base = Map::new();
        base.insert("id".into(), json!(stable_id(identifier)));
        base.insert("username".into(), json!(identifier));
        base
    });
    for (k, v) in registered {
        if k != "_missing" {
            user.insert(k.clone(), v.clone());
        }
    }
    Some(user)
}

fn unauthorized(detail: &str) -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({ "detail": detail }))).into_response()
}

/// `Authorization: Api-Key <key>`, scheme case-insensitive as in DRF.
fn api_key(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, key) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("api-key").then(|| key.trim())
}

pub(super) async fn get_user(
    State(m): State<Medogram>,
    Path(identifier): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = super::protocol::fault(&m).await {
        return response;
    }
    let cfg = m.config();
    let mut store = m.store();
    store.stats.user_fetches_total += 1;
    match api_key(&headers) {
        None => return unauthorized("Authentication credentials were not provided."),
        Some(key) if key != cfg.api_key => return unauthorized("Invalid API key."),
        Some(_) => {}
    }
    match resolve(&store, identifier.trim()) {
        Some(user) => Json(Value::Object(user)).into_response(),
        None => (StatusCode::NOT_FOUND, Json(json!({"detail": "Not found."}))).into_response(),
    }
}

/// Test hook: registers or overrides a user; `{"_missing": true}` makes the
/// identifier answer 404. Not subject to faults or auth, like `_config`.
pub(super) async fn put_user(
    State(m): State<Medogram>,
    Path(identifier): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(Value::Object(user)) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"detail": "expected a JSON object"})),
        )
            .into_response();
    };
    let identifier = identifier.trim().to_owned();
    let mut store = m.store();
    store.users.insert(identifier.clone(), user);
    let resolved = resolve(&store, &identifier).map(Value::Object);
    Json(json!({ "identifier": identifier, "user": resolved })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_users_are_stable() {
        let a = generated("09123456789").unwrap();
        assert_eq!(a["id"], json!(9123456789u64));
        assert_eq!(a["username"], json!("user6789"));
        assert_eq!(a["email"], json!("user6789@example.com"));
        assert_eq!(generated("09123456789"), Some(a));
        assert!(generated("0912345678").is_none());
        assert!(generated("+989123456789").is_none());
        assert!(generated("08123456789").is_none());
    }
}
