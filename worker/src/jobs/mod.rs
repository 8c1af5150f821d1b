//! One module per job kind, and the registry that maps a kind to its
//! handler. Each handler reads: load state, decide, call out, and return a
//! [`Step`] that the runner records through the state machine.

pub mod create_invoice;
pub mod deliver_webhook;
pub mod expire_payment;
pub mod fetch_user;
pub mod notify;
pub mod refund;
pub mod update_order;
pub mod verify_payment;

use crate::Engine;
use async_trait::async_trait;
use paygate_common::domain::{
    EventKind, JobKind, JobPayload, NewEvent, NewJob, OrderChange, Payment, PaymentChange,
    PaymentStatus, RefundChange,
};
use paygate_common::gateways::GatewayError;
use paygate_common::store::NewPayment;
use std::time::Duration;

/// A kind of job: how one attempt runs, and what giving up on it means for
/// what the job owns. The retry policy of each kind is in the domain
/// (`RetryPolicies`), next to the kinds themselves.
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// Runs one attempt. `payment` is the job's payment as claimed, when it
    /// has one.
    async fn run(&self, engine: &Engine, payment: Option<&Payment>, payload: &JobPayload) -> Step;

    /// The reason recorded when the job runs out of attempts.
    fn exhausted_reason(&self) -> &'static str;

    /// What giving up (a permanent failure, or attempts run out) changes in
    /// what the job owns. The default fails the job's payment, if it still
    /// can fail; a job that owns nothing changes nothing.
    fn give_up(&self, payment: Option<&Payment>, reason: &str, error: &str) -> Effects {
        fail_payment(payment, reason, error)
    }

    /// [`JobHandler::give_up`] for handlers that need the job's input to know
    /// what they own (a refund job owns its refund, named in its payload).
    /// The runner calls this one; the default forwards to `give_up`.
    fn give_up_job(
        &self,
        payment: Option<&Payment>,
        _payload: Option<&JobPayload>,
        reason: &str,
        error: &str,
    ) -> Effects {
        self.give_up(payment, reason, error)
    }
}

/// The handler of every kind. A new kind does not compile until it is here.
pub fn handler(kind: JobKind) -> &'static dyn JobHandler {
    match kind {
        JobKind::FetchUser => &fetch_user::FetchUser,
        JobKind::CreateInvoice => &create_invoice::CreateInvoice,
        JobKind::VerifyPayment => &verify_payment::VerifyPayment,
        JobKind::UpdateOrder => &update_order::UpdateOrder,
        JobKind::ExpirePayment => &expire_payment::ExpirePayment,
        JobKind::Refund => &refund::RefundJob,
        JobKind::Notify => &notify::Notify,
        JobKind::DeliverWebhook => &deliver_webhook::DeliverWebhook,
    }
}

/// What a waited job's run can start before its create commits, kept alive
/// by the returned guard until the run ends (docs/priority.md, "The payer's
/// fetch starts beside the create"). Only reads that change nothing anywhere
/// qualify, since the create may still fail: the payer's profile for
/// `fetch_user`. `None` when the job has nothing to start.
pub fn head_start(engine: &Engine, payment: &NewPayment, job: &NewJob) -> Option<StartedAhead> {
    match job.payload {
        JobPayload::FetchUser => Some(Box::new(
            engine.users.fetch_ahead(payment.id, &payment.merchant_ref),
        )),
        _ => None,
    }
}

/// A guard over work started ahead; dropping it cancels what was not used.
pub type StartedAhead = Box<dyn Send>;

/// The step that ends a payment job whose payment does not exist.
pub fn missing_payment() -> Step {
    Step::Fail {
        reason: "payment_missing".into(),
        error: "the job's payment does not exist".into(),
    }
}

/// Fails `payment` (if it still can fail) with an error event.
pub fn fail_payment(payment: Option<&Payment>, reason: &str, error: &str) -> Effects {
    let mut effects = Effects::default();
    let Some(p) = payment else { return effects };
    effects.events.push(NewEvent::new(
        p.id,
        EventKind::Error,
        format!("{reason}: {error}"),
    ));
    if let Ok(change) = p.change().status(PaymentStatus::Failed, Some(reason)) {
        effects.change = Some(change);
        effects.events.push(NewEvent::new(
            p.id,
            EventKind::StatusChange,
            format!("{} → failed ({reason})", p.status),
        ));
    }
    effects
}

/// What one attempt of a job decided.
// One short-lived value per job attempt, moved once into the runner: boxing
// `Done` would add an allocation per attempt and buy nothing.
#[allow(clippy::large_enum_variant)]
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
    pub order_status: Option<OrderChange>,
    pub events: Vec<NewEvent>,
    pub next: Vec<NewJob>,
    /// A refund that moves with this attempt.
    pub refund: Option<RefundChange>,
}

/// A payload that is not the one `kind`'s handler takes: the ledger row was
/// written by something else than this build's API or worker.
pub fn wrong_payload(payload: &JobPayload) -> Step {
    Step::Fail {
        reason: "job_invalid".into(),
        error: format!("unexpected {} payload", payload.kind().as_str()),
    }
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
