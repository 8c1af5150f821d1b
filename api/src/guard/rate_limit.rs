//! A per-client token bucket on the routes that create payments and orders
//! (each create costs a gateway invoice and a user-server call). Refusals are
//! `429` with `Retry-After`, in paygate's JSON error shape, counted in
//! `paygate_rate_limited_total{route}`.

use super::client;
use crate::error::ApiError;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use paygate_common::security::RateLimit;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

/// The public routes that create something.
pub const CREATING_ROUTES: [&str; 4] = [
    "/crazyminer/payment/create/",
    "/v1/payments",
    "/api/orders/create",
    "/v1/orders",
];

/// Keys past this many make the limiter forget clients that are full again.
const FORGET_AFTER_KEYS: usize = 50_000;

#[derive(Clone)]
pub struct CreateLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    trusted_proxies: usize,
}

impl CreateLimiter {
    pub fn new(limit: RateLimit, trusted_proxies: usize) -> Option<Self> {
        let per_second = NonZeroU32::new(limit.per_second)?;
        let burst = NonZeroU32::new(limit.burst.max(limit.per_second))?;
        Some(CreateLimiter {
            limiter: Arc::new(RateLimiter::keyed(
                Quota::per_second(per_second).allow_burst(burst),
            )),
            trusted_proxies,
        })
    }

    /// `Err(seconds to wait)` when `ip` has no token left.
    fn check(&self, ip: IpAddr) -> Result<(), u64> {
        if self.limiter.len() > FORGET_AFTER_KEYS {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

pub async fn limit_creates(
    axum::extract::State(limiter): axum::extract::State<CreateLimiter>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let creating = req.method() == Method::POST
        && route
            .as_deref()
            .is_some_and(|r| CREATING_ROUTES.contains(&r));
    if !creating {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    // Without a known address (not served by server::serve) nothing is limited.
    if let Some(ip) = client::from_parts(&parts, limiter.trusted_proxies) {
        if let Err(wait) = limiter.check(ip) {
            metrics::counter!("paygate_rate_limited_total", "route" => route.unwrap_or_default())
                .increment(1);
            let wait = wait.max(1);
            let mut resp = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests from this address; retry in {wait} s"),
            )
            .with("retry_after", wait)
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return resp;
        }
    }
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_waits_and_others_are_unaffected() {
        let l = CreateLimiter::new(
            RateLimit {
                per_second: 1,
                burst: 3,
            },
            0,
        )
        .unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check(a).is_ok());
        }
        let wait = l.check(a).unwrap_err();
        assert!((1..=2).contains(&wait), "{wait}");
        assert!(l.check(b).is_ok());
        assert!(CreateLimiter::new(
            RateLimit {
                per_second: 0,
                burst: 3
            },
            0
        )
        .is_none());
    }
}
