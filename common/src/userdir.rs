//! The CrazyMiner main server, where payers' profiles live. paygate fetches a
//! profile once per payment (the `fetch_user` job) and keeps it only encrypted.

use crate::domain::PaymentId;
use crate::gateways::http::{client, observe, status_error, transport_error, ClientSetupError};
use crate::gateways::{GatewayError, Payer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

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

/// What a fetch of a profile answers: the profile JSON, or `None` when the
/// main server does not know the user.
pub type Fetched = Result<Option<serde_json::Value>, GatewayError>;

pub struct UserDirectory {
    fetcher: Arc<Fetcher>,
    ahead: Arc<Mutex<HashMap<PaymentId, Ahead>>>,
}

/// The main server's client proper; shared with the fetches made ahead.
struct Fetcher {
    cfg: UserDirectoryConfig,
    http: reqwest::Client,
}

/// A fetch started ahead of its payment's `fetch_user` job.
struct Ahead {
    identifier: String,
    task: JoinHandle<Fetched>,
}

impl UserDirectory {
    /// Fails only when the HTTP client cannot be built (see [`ClientSetupError`]).
    pub fn new(cfg: UserDirectoryConfig) -> Result<Self, ClientSetupError> {
        let http = client(cfg.timeout)?;
        Ok(UserDirectory {
            fetcher: Arc::new(Fetcher { cfg, http }),
            ahead: Arc::default(),
        })
    }

    /// The profile JSON, or `None` when the main server does not know the user.
    pub async fn fetch(&self, identifier: &str) -> Fetched {
        self.fetcher.fetch(identifier).await
    }

    /// Starts fetching `payment`'s payer now, before the payment is stored,
    /// for its `fetch_user` job to take up ([`UserDirectory::fetch_for`])
    /// instead of calling the main server itself (docs/priority.md, "The
    /// payer's fetch starts beside the create"). Only a read of the main
    /// server is made ahead: it changes nothing anywhere, so a payment that
    /// is never stored costs one unused GET and nothing else. Dropping the
    /// returned guard cancels the fetch if the job has not taken it, so every
    /// fetch made ahead ends with the run it was made for.
    pub fn fetch_ahead(&self, payment: PaymentId, identifier: &str) -> FetchAhead {
        let fetcher = self.fetcher.clone();
        let who = identifier.to_owned();
        let task = tokio::spawn(async move { fetcher.fetch(&who).await });
        let task_id = task.id();
        let ahead = Ahead {
            identifier: identifier.to_owned(),
            task,
        };
        // A second fetch ahead for the same payment replaces the first.
        let replaced = lock(&self.ahead).insert(payment, ahead);
        if let Some(old) = replaced {
            old.task.abort();
            ahead_outcome("cancelled");
        }
        FetchAhead {
            payment,
            task_id,
            ahead: self.ahead.clone(),
        }
    }

    /// `payment`'s payer: the fetch made ahead for it when there is one for
    /// the same identifier, a fetch of its own otherwise.
    pub async fn fetch_for(&self, payment: PaymentId, identifier: &str) -> Fetched {
        let ahead = lock(&self.ahead).remove(&payment);
        match ahead {
            Some(a) if a.identifier == identifier => {
                ahead_outcome("taken");
                match a.task.await {
                    Ok(fetched) => fetched,
                    // Only a panic ends the task this way (it is aborted only
                    // once out of the map): this attempt asks the server itself.
                    Err(e) => {
                        tracing::warn!(%payment, error = %e, "a fetch made ahead did not finish; fetching again");
                        self.fetch(identifier).await
                    }
                }
            }
            Some(a) => {
                a.task.abort();
                ahead_outcome("cancelled");
                self.fetch(identifier).await
            }
            None => self.fetch(identifier).await,
        }
    }
}

/// A fetch made ahead ([`UserDirectory::fetch_ahead`]); dropping it cancels
/// the fetch unless its job has taken it.
pub struct FetchAhead {
    payment: PaymentId,
    /// Which fetch this guard owns: a later one for the same payment is not its.
    task_id: tokio::task::Id,
    ahead: Arc<Mutex<HashMap<PaymentId, Ahead>>>,
}

impl Drop for FetchAhead {
    fn drop(&mut self) {
        let left = {
            let mut map = lock(&self.ahead);
            match map.get(&self.payment) {
                Some(a) if a.task.id() == self.task_id => map.remove(&self.payment),
                _ => None,
            }
        };
        if let Some(a) = left {
            a.task.abort();
            ahead_outcome("cancelled");
        }
    }
}

/// `paygate_user_fetch_ahead_total{outcome}`: fetches made ahead that a job
/// took up, or that ended unused (README, "Metrics").
fn ahead_outcome(outcome: &'static str) {
    metrics::counter!("paygate_user_fetch_ahead_total", "outcome" => outcome).increment(1);
}

/// The map holds no invariant a panicking holder could break halfway (one
/// insert or one remove), so a poisoned lock is used as it is.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Fetcher {
    async fn fetch(&self, identifier: &str) -> Fetched {
        let started = Instant::now();
        let result = self.fetch_inner(identifier).await;
        observe("main_server", "fetch_user", started, &result);
        result
    }

    async fn fetch_inner(&self, identifier: &str) -> Fetched {
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

    /// A main server that counts its calls and answers each identifier's
    /// profile; `/api/users/{identifier}/`.
    async fn counting_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use axum::extract::{Path, State};
        use std::sync::atomic::{AtomicUsize, Ordering};
        let calls = Arc::new(AtomicUsize::new(0));
        let app = axum::Router::new()
            .route(
                "/api/users/{identifier}/",
                axum::routing::get(
                    |State(calls): State<Arc<AtomicUsize>>, Path(who): Path<String>| async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        axum::Json(json!({ "username": who }))
                    },
                ),
            )
            .with_state(calls.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), calls)
    }

    fn directory(base_url: String) -> UserDirectory {
        UserDirectory::new(UserDirectoryConfig {
            base_url,
            path: "/api/users/{identifier}/".into(),
            auth_header: "Authorization".into(),
            auth_prefix: "Api-Key ".into(),
            api_key: "k".into(),
            timeout: Duration::from_secs(5),
        })
        .expect("client")
    }

    fn calls(c: &std::sync::atomic::AtomicUsize) -> usize {
        c.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[tokio::test]
    async fn the_job_takes_up_the_fetch_made_ahead_and_the_server_is_asked_once() {
        let (base, count) = counting_server().await;
        let dir = directory(base);
        let payment = PaymentId::new();
        let ahead = dir.fetch_ahead(payment, "0912");
        let profile = dir.fetch_for(payment, "0912").await.unwrap().unwrap();
        assert_eq!(profile, json!({"username": "0912"}));
        assert_eq!(calls(&count), 1);
        drop(ahead);
        assert!(lock(&dir.ahead).is_empty());
        // Taken once: a second attempt of the job asks the server again.
        dir.fetch_for(payment, "0912").await.unwrap().unwrap();
        assert_eq!(calls(&count), 2);
    }

    #[tokio::test]
    async fn a_fetch_ahead_nobody_took_ends_with_its_guard() {
        let (base, count) = counting_server().await;
        let dir = directory(base);
        let payment = PaymentId::new();
        drop(dir.fetch_ahead(payment, "0912"));
        assert!(lock(&dir.ahead).is_empty());
        let before = calls(&count); // the cancelled fetch may have reached the server
        dir.fetch_for(payment, "0912").await.unwrap().unwrap();
        assert_eq!(calls(&count), before + 1);
    }

    #[tokio::test]
    async fn a_fetch_ahead_for_another_identifier_is_not_used() {
        let (base, _count) = counting_server().await;
        let dir = directory(base);
        let payment = PaymentId::new();
        let _ahead = dir.fetch_ahead(payment, "0912");
        let profile = dir.fetch_for(payment, "0935").await.unwrap().unwrap();
        assert_eq!(profile, json!({"username": "0935"}));
        assert!(lock(&dir.ahead).is_empty());
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
