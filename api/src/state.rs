//! What every handler can reach.

use paygate_common::queue::JobQueue;
use paygate_common::store::Store;
use paygate_common::telemetry::PrometheusHandle;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// How long seed routes wait for the payment URL before answering 202.
    pub seed_wait: Duration,
    /// The longest `Prefer: wait=N` honoured on /v1.
    pub max_wait: Duration,
    /// `PAYMENT_REDIRECT_URL`: where payers go after the gateway sends them back.
    pub payment_redirect_url: Option<String>,
    pub public_url: String,
    pub max_body_bytes: usize,
    /// Retry budget of the first job of a new payment.
    pub fetch_user_attempts: u32,
    /// Retry budget of verification jobs created by callbacks.
    pub verify_attempts: u32,
    /// Retry budget of the first job of a new order's payment.
    pub create_invoice_attempts: u32,
    /// `None` when Atmos is not configured.
    pub atmos: Option<AtmosWebhookSettings>,
    /// Rate limit, trusted proxies, allowlists, the user_identifier pattern.
    pub security: paygate_common::security::SecuritySettings,
}

/// What the Atmos webhook needs to judge a callback.
#[derive(Debug, Clone)]
pub struct AtmosWebhookSettings {
    pub store_id: String,
    /// The callback signing key (`ATMOS_API_KEY`).
    pub api_key: String,
    pub algorithms: Vec<paygate_common::gateways::atmos::SignAlgorithm>,
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub queue: Arc<dyn JobQueue>,
    pub settings: Arc<ApiSettings>,
    pub metrics: PrometheusHandle,
}
