//! Turns every rejection the framework makes on its own (a path segment that
//! is not UTF-8, a malformed query, a JSON body it could not read, a length
//! it refuses) into paygate's JSON error shape. paygate's own errors are JSON
//! already; anything else that is an error and `text/plain` came from axum.

use crate::error::ApiError;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

fn code_for(status: StatusCode, has_path_params: bool) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 if has_path_params => ("invalid_id", "the id in the path is malformed"),
        400 => ("invalid_request", "the request is malformed"),
        404 => ("not_found", "not found"),
        405 => (
            "method_not_allowed",
            "this route does not accept that method",
        ),
        408 => ("request_timeout", "the request did not arrive in time"),
        411 => ("length_required", "send a Content-Length"),
        413 => ("payload_too_large", "the request body is too large"),
        415 => ("unsupported_media_type", "unsupported content type"),
        422 => ("invalid_json", "the body could not be read as expected"),
        _ if status.is_server_error() => ("internal_error", "an internal error occurred"),
        _ => ("invalid_request", "the request was refused"),
    }
}

pub async fn json_rejections(req: Request, next: Next) -> Response {
    let has_path_params = req
        .extensions()
        .get::<MatchedPath>()
        .is_some_and(|p| p.as_str().contains('{'));
    let resp = next.run(req).await;
    let status = resp.status();
    let plain = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return resp;
    }
    // The framework's text can quote the input back; it is not passed on.
    let (code, message) = code_for(status, has_path_params);
    let mut out = ApiError::new(status, code, message).into_response();
    if let Some(allow) = resp.headers().get(header::ALLOW) {
        out.headers_mut().insert(header::ALLOW, allow.clone());
    }
    out
}
