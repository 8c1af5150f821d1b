//! Everything a job handler may use, built once per process.

use paygate_common::crypto::Cipher;
use paygate_common::domain::RetryPolicies;
use paygate_common::gateways::GatewayRegistry;
use paygate_common::queue::JobQueue;
use paygate_common::store::Store;
use paygate_common::userdir::UserDirectory;
use std::sync::Arc;
use std::time::Duration;

pub use paygate_common::gateways::ReturnUrls;

pub struct Engine {
    pub store: Store,
    pub queue: Arc<dyn JobQueue>,
    pub cipher: Cipher,
    pub gateways: GatewayRegistry,
    pub users: UserDirectory,
    pub return_urls: ReturnUrls,
    pub retry: RetryPolicies,
    /// How long a claimed job is ours; longer than any single outbound call.
    pub job_lease: Duration,
    /// Background work runs its follow-up inside the attempt too
    /// (`PAYGATE_BACKGROUND_FOLLOW_UP_INSIDE`, `runner::follow_up_inside`).
    pub background_follow_up_inside: bool,
    /// This process's unique name (the ledger's `locked_by`).
    pub worker_id: String,
    /// Merchant notifications: settings, HTTP client, own concurrency.
    pub webhooks: crate::webhook_lane::WebhookLane,
    /// Whom a committed payment change is announced to (waiting requests).
    pub announcer: paygate_common::payment_watch::PaymentAnnouncer,
}
