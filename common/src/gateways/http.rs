//! What every gateway client shares: one HTTP client with timeouts, the
//! mapping of transport failures to retryable/permanent, and call metrics.

use super::GatewayError;
use std::time::{Duration, Instant};

/// The outbound HTTP client could not be built (TLS backend, bad settings).
/// It stops start-up: a client without our timeouts would let a slow gateway
/// hold a job's lease indefinitely, so there is no default to fall back on.
#[derive(Debug, thiserror::Error)]
#[error("could not build the outbound HTTP client: {0}")]
pub struct ClientSetupError(#[source] reqwest::Error);

/// A client for outbound calls. Timeouts are short because a job holds a
/// lease while it waits; a slow gateway becomes a retry, not a stuck worker.
pub fn client(timeout: Duration) -> Result<reqwest::Client, ClientSetupError> {
    build(
        reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(256)
            .user_agent(concat!("paygate/", env!("CARGO_PKG_VERSION"))),
    )
}

fn build(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, ClientSetupError> {
    builder.build().map_err(ClientSetupError)
}

/// Maps a failed send (no HTTP answer at all) to a retryable error. The
/// message names the kind of failure only: URLs can carry secrets.
pub fn transport_error(e: &reqwest::Error) -> GatewayError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "transport error"
    };
    GatewayError::retryable(format!("gateway {what}"))
}

/// Maps a non-success HTTP status: 5xx and 429 are retryable (429 and 503
/// honour `Retry-After` in seconds); other 4xx are permanent.
pub fn status_error(resp: &reqwest::Response, reason_4xx: &str) -> GatewayError {
    let status = resp.status();
    if status.is_server_error() || status.as_u16() == 429 {
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        GatewayError::Retryable {
            message: format!("gateway answered HTTP {}", status.as_u16()),
            retry_after,
        }
    } else {
        GatewayError::permanent(
            reason_4xx,
            format!("gateway answered HTTP {}", status.as_u16()),
        )
    }
}

/// Records one outbound call: count by outcome and latency by operation.
pub fn observe<T>(
    provider: &'static str,
    operation: &'static str,
    started: Instant,
    result: &Result<T, GatewayError>,
) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(GatewayError::Retryable { .. }) => "retryable_error",
        Err(GatewayError::Permanent { .. }) => "permanent_error",
    };
    metrics::counter!("paygate_gateway_calls_total",
        "provider" => provider, "operation" => operation, "outcome" => outcome)
    .increment(1);
    metrics::histogram!("paygate_gateway_call_duration_seconds",
        "provider" => provider, "operation" => operation)
    .record(started.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_cannot_be_built_is_an_error_not_a_default() {
        // A header value with a newline makes reqwest's builder fail.
        let err = build(reqwest::Client::builder().user_agent("paygate\n")).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("could not build the outbound HTTP client"));
        assert!(client(Duration::from_secs(1)).is_ok());
    }
}
