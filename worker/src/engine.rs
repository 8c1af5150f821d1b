//! Everything a job handler may use, built once per process.

use paygate_common::crypto::Cipher;
use paygate_common::domain::RetryPolicies;
use paygate_common::gateways::GatewayRegistry;
use paygate_common::queue::JobQueue;
use paygate_common::store::Store;
use paygate_common::userdir::UserDirectory;
use std::sync::Arc;
use std::time::Duration;

use paygate_common::domain::{Payment, Provider};

/// Where each gateway sends the payer back after the checkout.
#[derive(Debug, Clone)]
pub struct ReturnUrls {
    /// medogram: our callback route, which verifies and then redirects the payer.
    pub medogram: String,
    /// Atmos: a page for the payer; `{order_id}` and `{order_token}` (the
    /// order's read token) are replaced. (Atmos tells us about the payment
    /// through its webhook, not through this redirect.)
    pub atmos_template: String,
}

impl ReturnUrls {
    pub fn for_payment(&self, payment: &Payment, order_token: Option<&str>) -> String {
        match payment.provider {
            Provider::Medogram => self.medogram.clone(),
            Provider::Atmos => self
                .atmos_template
                .replace("{order_id}", &payment.merchant_ref)
                .replace("{order_token}", order_token.unwrap_or_default()),
        }
    }
}

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
    /// This process's unique name (the ledger's `locked_by`).
    pub worker_id: String,
}
