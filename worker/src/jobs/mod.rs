//! One module per job kind. Each reads: load state, decide, call out, and
//! return a [`Step`] that the runner records through the state machine.

pub mod create_invoice;
pub mod fetch_user;
pub mod update_order;
pub mod verify_payment;

use paygate_common::domain::{NewEvent, OrderStatus, PaymentChange};
use paygate_common::gateways::GatewayError;
use paygate_common::store::NewJob;
use std::time::Duration;

/// What one attempt of a job decided.
#[derive(Debug)]
pub enum Step {
    /// Finished: record these changes (possibly none: the work was already done).
    Done(Effects),
    /// A transient failure: try again after back-off. When attempts run out,
    /// the payment fails with `exhausted_reason` (or the kind's default).
    Retry {
        error: String,
        retry_after: Option<Duration>,
        exhausted_reason: Option<&'static str>,
    },
    /// Retrying cannot help: the payment fails with `reason`.
    Fail { reason: String, error: String },
}

/// What a finished attempt changes, recorded in one transaction.
#[derive(Debug, Default)]
pub struct Effects {
    pub change: Option<PaymentChange>,
    pub order_status: Option<(i64, OrderStatus)>,
    pub events: Vec<NewEvent>,
    pub next: Vec<NewJob>,
}

impl Step {
    pub fn nothing() -> Step {
        Step::Done(Effects::default())
    }
    pub fn retry(error: impl Into<String>) -> Step {
        Step::Retry {
            error: error.into(),
            retry_after: None,
            exhausted_reason: None,
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
                exhausted_reason: None,
            },
            GatewayError::Permanent { reason, message } => Step::Fail {
                reason,
                error: message,
            },
        }
    }
}
