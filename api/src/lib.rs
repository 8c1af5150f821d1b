//! paygate's HTTP API. Handlers are thin: parse → domain → store → dispatch →
//! respond; the persistence and queue sit behind `paygate-common`.

pub mod error;
pub mod extract;
pub mod inbound;
pub mod middleware;
pub mod pages;
pub mod payments;
pub mod routes;
pub mod state;

pub use state::{ApiSettings, AppState};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Router;
use error::ApiError;

/// The complete API router. `extra` is merged in (the built-in gateway
/// simulators in `paygate serve`).
pub fn router(state: AppState, extra: Option<Router>) -> Router {
    let max_body = state.settings.max_body_bytes;
    let api = Router::new()
        .merge(routes::crazyminer::router())
        .merge(routes::v1::router())
        .merge(routes::shop::router())
        .merge(inbound::router(state.gateways.inbound()))
        .merge(routes::health::router())
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method",
            )
        })
        .with_state(state);
    let mut app = api;
    if let Some(extra) = extra {
        app = app.merge(extra);
    }
    app.fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(axum::middleware::from_fn(middleware::request_context))
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            tracing::error!("a request handler panicked");
            ApiError::internal().into_response()
        }))
}
