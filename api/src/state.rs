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
    /// Retry budgets of the jobs the API writes.
    pub retry: paygate_common::domain::RetryPolicies,
    /// Rate limit, trusted proxies, allowlists, the user_identifier pattern.
    pub security: paygate_common::security::SecuritySettings,
    /// How long a rotated-out webhook secret keeps signing.
    pub webhook_rotation_grace: Duration,
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub queue: Arc<dyn JobQueue>,
    pub settings: Arc<ApiSettings>,
    /// The configured gateways (which providers take payments; whose
    /// inbound routes are mounted).
    pub gateways: paygate_common::gateways::GatewayRegistry,
    /// Where gateways send payers back (checkout links built by the API).
    pub return_urls: paygate_common::gateways::ReturnUrls,
    pub metrics: PrometheusHandle,
    /// Where waiting requests register to be woken when their payment changes.
    pub watch: paygate_common::payment_watch::PaymentWatch,
    /// Whom the API's own payment changes are announced to.
    pub announcer: paygate_common::payment_watch::PaymentAnnouncer,
    /// Runs a waited payment's first jobs here (`PAYGATE_API_RUNS_WAITED_JOBS`);
    /// `None`: they go to the workers' queue.
    pub waited_jobs: Option<crate::waited_jobs::WaitedJobs>,
}
