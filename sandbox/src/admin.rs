//! The `_config`, `_stats` and `_reset` endpoints every simulator exposes,
//! so tests and operators can steer a running sandbox.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

pub(crate) trait Admin: Clone + Send + Sync + 'static {
    type Config: Serialize + DeserializeOwned + Send;
    type Stats: Serialize;

    fn config(&self) -> Self::Config;
    /// Validates and installs a new configuration.
    fn set_config(&self, config: Self::Config) -> Result<Self::Config, String>;
    fn stats(&self) -> Self::Stats;
    fn reset(&self);
}

pub(crate) fn routes<A: Admin>() -> Router<A> {
    Router::new()
        .route("/_config", get(get_config::<A>).put(put_config::<A>))
        .route("/_stats", get(get_stats::<A>))
        .route("/_reset", post(reset::<A>))
}

async fn get_config<A: Admin>(State(sim): State<A>) -> Json<A::Config> {
    Json(sim.config())
}

async fn put_config<A: Admin>(State(sim): State<A>, body: Bytes) -> Response {
    let config: A::Config = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return bad_request(format!("invalid config JSON: {e}")),
    };
    match sim.set_config(config) {
        Ok(installed) => Json(installed).into_response(),
        Err(e) => bad_request(e),
    }
}

async fn get_stats<A: Admin>(State(sim): State<A>) -> Json<A::Stats> {
    Json(sim.stats())
}

async fn reset<A: Admin>(State(sim): State<A>) -> Json<serde_json::Value> {
    sim.reset();
    Json(json!({"reset": true}))
}

fn bad_request(error: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
}
