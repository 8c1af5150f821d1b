//! One module per job kind. Each reads: load state, decide, call out, and
//! return a [`Step`] that the runner records through the state machine.

pub mod create_invoice;
pub mod fetch_user;
pub mod verify_payment;

use paygate_common::domain::{NewEvent, PaymentChange};
use paygate_common::gateways::GatewayError;
use paygate_common::store::NewJob;
use std::time::Duration;

/// What one attempt of a job decided.
#[derive(Debug)]
pub enum Step {
    /// Finished: record these changes (possibly none: the work was already done).
    Done {
        change: Option<PaymentChange>,
        events: Vec<NewEvent>,
        next: Vec<NewJob>,
    },
    /// A transient failure: try again after back-off.
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help: the payment fails with `reason`.
    Fail { reason: String, error: String },
}

impl Step {
    pub fn nothing() -> Step {
        Step::Done {
            change: None,
            events: Vec::new(),
            next: Vec::new(),
        }
    }
}

impl From<GatewayError> for Step {
    fn from(e: GatewayError) -> Step {
        match e {
            GatewayError::Retryable {
                message,
                retry_after,
            } => Step::Retry {
                error: message,
                retry_after,
            },
            GatewayError::Permanent { reason, message } => Step::Fail {
                reason,
                error: message,
            },
        }
    }
}
