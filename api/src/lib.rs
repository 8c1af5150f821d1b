//! paygate's HTTP API. Handlers are thin: parse → domain → store → dispatch →
//! respond; the persistence and queue sit behind `paygate-common`.

pub mod browser;
pub mod conditional;
pub mod error;
pub mod extract;
pub mod guard;
pub mod idempotency;
pub mod inbound;
pub mod middleware;
pub mod openapi;
pub mod pages;
pub mod payments;
pub mod rejections;
pub mod routes;
pub mod server;
pub mod state;
pub mod static_files;
pub mod waited_jobs;

pub use state::{ApiSettings, AppState};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use error::ApiError;

/// The complete API router. `extra` is merged in (the built-in gateway
/// simulators in `paygate serve`); it gets the browser protections but keeps
/// its own error formats (a simulator speaks its gateway's).
pub fn router(state: AppState, extra: Option<Router>) -> Router {
    let max_body = state.settings.max_body_bytes;
    let security = &state.settings.security;
    let trusted = security.trusted_proxies;
    let limiter = security
        .rate_limit
        .and_then(|l| guard::rate_limit::CreateLimiter::new(l, trusted));
    let mut api = Router::new()
        .merge(routes::crazyminer::router())
        .merge(routes::v1::router())
        .merge(routes::webhook_endpoints::router())
        .merge(routes::shop::router())
        .merge(routes::refunds::router())
        .merge(inbound::router(
            state.gateways.inbound(),
            &security.allowlists,
            trusted,
        ))
        .merge(routes::health::router())
        .merge(static_files::router())
        .merge(openapi::router(openapi::document(state.gateways.inbound())))
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        });
    if let Some(limiter) = limiter {
        api = api.route_layer(axum::middleware::from_fn_with_state(
            limiter,
            guard::rate_limit::limit_creates,
        ));
    }
    let mut app = api
        // For route layers that need the state (`idempotency::idempotent`).
        .layer(axum::Extension(state.clone()))
        .layer(axum::middleware::from_fn(rejections::json_rejections))
        .with_state(state);
    if let Some(extra) = extra {
        app = app.merge(extra);
    }
    app.fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(axum::middleware::from_fn(middleware::request_context))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(browser::protect_pages))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            ApiError::internal().into_response()
        }))
}
