//! Per-gateway source allowlists: a gateway's callback route answers only
//! the addresses the gateway calls from (Payme and Click publish theirs,
//! docs/gateways/payme.md and docs/gateways/click.md). The client address
//! follows the same trusted-proxy rule as the rate limit. An empty list lets
//! everyone through, so the layer is off until configured.

use super::client;
use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Clone)]
struct Allowlist {
    provider: &'static str,
    nets: Arc<Vec<IpNet>>,
    trusted_proxies: usize,
}

fn allowed(nets: &[IpNet], ip: IpAddr) -> bool {
    // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    nets.iter().any(|n| n.contains(&ip))
}

async fn check(State(list): State<Allowlist>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    match client::from_parts(&parts, list.trusted_proxies) {
        Some(ip) if allowed(&list.nets, ip) => next.run(Request::from_parts(parts, body)).await,
        _ => {
            metrics::counter!("paygate_source_refused_total", "provider" => list.provider)
                .increment(1);
            ApiError::new(
                StatusCode::FORBIDDEN,
                "source_not_allowed",
                "this address may not call this route",
            )
            .into_response()
        }
    }
}

/// Restricts every route of `router` to sources in `nets` (`provider` names
/// the gateway in the metric). With an empty list the router is unchanged.
pub fn restrict<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    provider: &'static str,
    nets: &[IpNet],
    trusted_proxies: usize,
) -> Router<S> {
    if nets.is_empty() {
        return router;
    }
    router.route_layer(axum::middleware::from_fn_with_state(
        Allowlist {
            provider,
            nets: Arc::new(nets.to_vec()),
            trusted_proxies,
        },
        check,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_includes_mapped_ipv4() {
        let nets: Vec<IpNet> = vec!["185.234.113.0/28".parse().unwrap()];
        assert!(allowed(&nets, "185.234.113.1".parse().unwrap()));
        assert!(allowed(&nets, "::ffff:185.234.113.15".parse().unwrap()));
        assert!(!allowed(&nets, "185.234.113.16".parse().unwrap()));
        assert!(!allowed(&nets, "2001:db8::1".parse().unwrap()));
    }
}
