//! Background work: the kinds of job, their ledger status, and the retry
//! policy of each kind (the one place retries are decided).

use super::notification::{DeliverArgs, NotifyArgs};
use super::payment::PaymentId;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// GET the payer from the main server and store it encrypted.
    FetchUser,
    /// Ask the gateway for an invoice and a payment URL.
    CreateInvoice,
    /// Ask the gateway whether the payer really paid, after a callback or webhook.
    VerifyPayment,
    /// Move the shop order to the status its settled payment implies.
    UpdateOrder,
    /// A payment waited for its payer past its time to live: verify once
    /// more where the gateway can answer, then cancel it as `expired`.
    ExpirePayment,
    /// Ask the gateway to return a refund's money (domain::refund).
    Refund,
    /// Fan a merchant notification out to the subscribed webhook endpoints.
    Notify,
    /// Deliver one notification message to one webhook endpoint.
    DeliverWebhook,
}

impl JobKind {
    pub const ALL: [JobKind; 8] = [
        JobKind::FetchUser,
        JobKind::CreateInvoice,
        JobKind::VerifyPayment,
        JobKind::UpdateOrder,
        JobKind::ExpirePayment,
        JobKind::Refund,
        JobKind::Notify,
        JobKind::DeliverWebhook,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::FetchUser => "fetch_user",
            JobKind::CreateInvoice => "create_invoice",
            JobKind::VerifyPayment => "verify_payment",
            JobKind::UpdateOrder => "update_order",
            JobKind::ExpirePayment => "expire_payment",
            JobKind::Refund => "refund",
            JobKind::Notify => "notify",
            JobKind::DeliverWebhook => "deliver_webhook",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// The steps between a created payment and its payment URL: what a
    /// client waiting for the URL is waiting on.
    pub fn leads_to_payment_url(self) -> bool {
        matches!(self, JobKind::FetchUser | JobKind::CreateInvoice)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Waiting for `run_at`, or for a worker to pick up its message.
    Queued,
    /// Claimed by a worker whose lease has not expired.
    Running,
    Succeeded,
    /// Stopped for a reason retrying cannot fix (the payment got a reason too).
    Failed,
    /// Ran out of attempts on retryable errors; an operator may redrive it.
    Dead,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Dead,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Dead => "dead",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What a verification was asked for with: what the callback or webhook told us.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trans_id: Option<String>,
    /// The invoice the callback named (medogram `id_get`), when it named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_get: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracking_code: Option<String>,
}

/// Which refund a refund job carries out (its payment is the job's payment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundArgs {
    pub refund_id: Uuid,
}

/// A job's input, typed. The API writes jobs and the worker reads them through
/// this one type, so the two cannot disagree about a payload's shape. The
/// ledger stores the kind in its own column and the arguments as JSON (`null`
/// for kinds without arguments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobPayload {
    FetchUser,
    CreateInvoice,
    VerifyPayment(VerifyArgs),
    UpdateOrder,
    ExpirePayment,
    Refund(RefundArgs),
    Notify(NotifyArgs),
    DeliverWebhook(DeliverArgs),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {kind} job's payload is malformed: {reason}")]
pub struct PayloadError {
    pub kind: &'static str,
    pub reason: String,
}

impl JobPayload {
    pub fn kind(&self) -> JobKind {
        match self {
            JobPayload::FetchUser => JobKind::FetchUser,
            JobPayload::CreateInvoice => JobKind::CreateInvoice,
            JobPayload::VerifyPayment(_) => JobKind::VerifyPayment,
            JobPayload::UpdateOrder => JobKind::UpdateOrder,
            JobPayload::ExpirePayment => JobKind::ExpirePayment,
            JobPayload::Refund(_) => JobKind::Refund,
            JobPayload::Notify(_) => JobKind::Notify,
            JobPayload::DeliverWebhook(_) => JobKind::DeliverWebhook,
        }
    }

    /// The arguments as stored in the ledger's `payload` column.
    pub fn args_json(&self) -> serde_json::Value {
        match self {
            JobPayload::VerifyPayment(args) => {
                serde_json::to_value(args).unwrap_or(serde_json::Value::Null)
            }
            JobPayload::Refund(args) => {
                serde_json::to_value(args).unwrap_or(serde_json::Value::Null)
            }
            JobPayload::Notify(args) => {
                serde_json::to_value(args).unwrap_or(serde_json::Value::Null)
            }
            JobPayload::DeliverWebhook(args) => {
                serde_json::to_value(args).unwrap_or(serde_json::Value::Null)
            }
            JobPayload::FetchUser
            | JobPayload::CreateInvoice
            | JobPayload::UpdateOrder
            | JobPayload::ExpirePayment => serde_json::Value::Null,
        }
    }

    /// Reads a payload back from its kind and stored arguments. Anything that
    /// does not fit the kind is an error, never a default.
    pub fn from_stored(kind: JobKind, args: &serde_json::Value) -> Result<Self, PayloadError> {
        let err = |reason: String| PayloadError {
            kind: kind.as_str(),
            reason,
        };
        let no_args = |p: JobPayload| match args {
            serde_json::Value::Null => Ok(p),
            other => Err(err(format!("expected no arguments, got {other}"))),
        };
        match kind {
            JobKind::FetchUser => no_args(JobPayload::FetchUser),
            JobKind::CreateInvoice => no_args(JobPayload::CreateInvoice),
            JobKind::UpdateOrder => no_args(JobPayload::UpdateOrder),
            JobKind::ExpirePayment => no_args(JobPayload::ExpirePayment),
            JobKind::VerifyPayment => serde_json::from_value(args.clone())
                .map(JobPayload::VerifyPayment)
                .map_err(|e| err(e.to_string())),
            JobKind::Refund => serde_json::from_value(args.clone())
                .map(JobPayload::Refund)
                .map_err(|e| err(e.to_string())),
            JobKind::Notify => serde_json::from_value(args.clone())
                .map(JobPayload::Notify)
                .map_err(|e| err(e.to_string())),
            JobKind::DeliverWebhook => serde_json::from_value(args.clone())
                .map(JobPayload::DeliverWebhook)
                .map_err(|e| err(e.to_string())),
        }
    }
}

/// A job to be written to the ledger, in the same write as the change that
/// needs it. Built from a [`JobPayload`], so its kind always matches its input.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub id: Uuid,
    pub payload: JobPayload,
    /// What the job works on; a job may own nothing (e.g. housekeeping).
    pub payment_id: Option<PaymentId>,
    /// Jobs with the same key are one job: the second insert is ignored.
    pub dedupe_key: Option<String>,
    pub max_attempts: u32,
    pub run_at_ms: i64,
}

impl NewJob {
    /// A job due now, with the retry budget `policies` give its kind.
    pub fn new(
        payload: JobPayload,
        payment_id: Option<PaymentId>,
        policies: &RetryPolicies,
    ) -> Self {
        let max_attempts = policies.for_kind(payload.kind()).max_attempts;
        NewJob {
            id: Uuid::now_v7(),
            payload,
            payment_id,
            dedupe_key: None,
            max_attempts,
            run_at_ms: chrono::Utc::now().timestamp_millis(),
        }
    }
    /// The one job of its kind a payment has (its user fetch, its invoice, its
    /// order update): a second one for the same payment is the same job.
    pub fn once_per_payment(
        payload: JobPayload,
        payment_id: PaymentId,
        policies: &RetryPolicies,
    ) -> Self {
        let key = format!("{}:{payment_id}", payload.kind().as_str());
        NewJob::new(payload, Some(payment_id), policies).dedupe(key)
    }
    pub fn kind(&self) -> JobKind {
        self.payload.kind()
    }
    pub fn dedupe(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }
    pub fn run_at(mut self, run_at_ms: i64) -> Self {
        self.run_at_ms = run_at_ms;
        self
    }
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }
}

/// What travels through the queue: only a pointer into the ledger. The ledger
/// row is the truth; a message may be lost or delivered twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub job_id: Uuid,
    pub kind: JobKind,
    /// Whether a client is waiting on this job's outcome. Absent in messages
    /// of older releases (and in every background one), which read as
    /// [`Priority::Background`].
    #[serde(default, skip_serializing_if = "Priority::is_background")]
    pub priority: Priority,
}

impl JobMessage {
    /// A background message for a job row.
    pub fn new(job_id: Uuid, kind: JobKind) -> Self {
        JobMessage {
            job_id,
            kind,
            priority: Priority::Background,
        }
    }

    /// The same message, marked as work a client is waiting on.
    pub fn waited_on(self) -> Self {
        JobMessage {
            priority: Priority::Waited,
            ..self
        }
    }

    /// The message of a follow-up job queued by a job of `parent` priority:
    /// a waiting client waits for its payment URL, so the steps on the way
    /// there (`fetch_user` → `create_invoice`) keep the priority; everything
    /// else (notifications, order updates, verification) is background work.
    pub fn follow_up_of(self, parent: Priority) -> Self {
        if parent == Priority::Waited && self.kind.leads_to_payment_url() {
            self.waited_on()
        } else {
            self
        }
    }
}

/// The queue's two lanes. Work a client is waiting on (the bounded wait of
/// the seed routes and of `Prefer: wait` for the payment URL) runs ahead of
/// background work: it is queued at the head instead of the tail, and the
/// worker runs it on database connections of its own, so a backlog of
/// thousands of background jobs does not stand between a waiting client and
/// its answer (docs/priority.md).
///
/// A hint, not a guarantee: the ledger does not store it, so a job the
/// sweeper re-dispatches (a lost message, an expired lease) runs as
/// background work; by then its client's bounded wait has passed anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    #[default]
    Background,
    Waited,
}

impl Priority {
    pub fn is_background(&self) -> bool {
        *self == Priority::Background
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Background => "background",
            Priority::Waited => "waited",
        }
    }
}

/// Exponential back-off with jitter for one job kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    /// Delay before attempt `attempt + 1`, given that attempt `attempt` (1-based)
    /// just failed. "Equal jitter": half the exponential step is fixed so a retry
    /// never comes back instantly, half is random so a crowd of retries spreads out.
    /// A gateway's `Retry-After` is a floor.
    pub fn delay_after(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        random_unit: f64,
    ) -> Duration {
        let exp = attempt.saturating_sub(1).min(30);
        let step = self.base.saturating_mul(1u32 << exp.min(20)).min(self.cap);
        let half = step / 2;
        let jitter = half.mul_f64(random_unit.clamp(0.0, 1.0));
        let delay = half + jitter;
        match retry_after {
            Some(ra) => delay.max(ra.min(Duration::from_secs(3600))),
            None => delay,
        }
    }

    pub fn exhausted(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts
    }
}

/// Retry policy for every kind, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicies {
    pub fetch_user: RetryPolicy,
    pub create_invoice: RetryPolicy,
    pub verify_payment: RetryPolicy,
    pub update_order: RetryPolicy,
    pub expire_payment: RetryPolicy,
    pub refund: RetryPolicy,
    pub notify: RetryPolicy,
    /// Not the delivery schedule (that is the webhook settings'): how often a
    /// delivery job may be put back because the delivery lane was full or the
    /// database did not answer, before it gives up.
    pub deliver_webhook: RetryPolicy,
}

impl Default for RetryPolicies {
    fn default() -> Self {
        let quick = RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(60),
        };
        RetryPolicies {
            fetch_user: quick,
            create_invoice: quick,
            // The payer may already have paid: keep asking for longer.
            verify_payment: RetryPolicy {
                max_attempts: 12,
                base: Duration::from_secs(1),
                cap: Duration::from_secs(300),
            },
            update_order: quick,
            // The last verification before expiry: a gateway outage delays
            // the expiry rather than ending the payment unasked.
            expire_payment: RetryPolicy {
                max_attempts: 12,
                base: Duration::from_secs(1),
                cap: Duration::from_secs(300),
            },
            // A gateway that is down for a while should not fail a refund:
            // about an hour of retries before it ends `failed`.
            refund: RetryPolicy {
                max_attempts: 12,
                base: Duration::from_secs(2),
                cap: Duration::from_secs(600),
            },
            notify: quick,
            deliver_webhook: RetryPolicy {
                max_attempts: 10_000,
                base: Duration::from_millis(200),
                cap: Duration::from_secs(5),
            },
        }
    }
}

impl RetryPolicies {
    pub fn for_kind(&self, kind: JobKind) -> RetryPolicy {
        match kind {
            JobKind::FetchUser => self.fetch_user,
            JobKind::CreateInvoice => self.create_invoice,
            JobKind::VerifyPayment => self.verify_payment,
            JobKind::UpdateOrder => self.update_order,
            JobKind::ExpirePayment => self.expire_payment,
            JobKind::Refund => self.refund,
            JobKind::Notify => self.notify,
            JobKind::DeliverWebhook => self.deliver_webhook,
        }
    }
    pub fn for_kind_mut(&mut self, kind: JobKind) -> &mut RetryPolicy {
        match kind {
            JobKind::FetchUser => &mut self.fetch_user,
            JobKind::CreateInvoice => &mut self.create_invoice,
            JobKind::VerifyPayment => &mut self.verify_payment,
            JobKind::UpdateOrder => &mut self.update_order,
            JobKind::ExpirePayment => &mut self.expire_payment,
            JobKind::Refund => &mut self.refund,
            JobKind::Notify => &mut self.notify,
            JobKind::DeliverWebhook => &mut self.deliver_webhook,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        }
    }

    #[test]
    fn delays_grow_exponentially_within_jitter_bounds_and_cap() {
        let p = policy();
        assert_eq!(p.delay_after(1, None, 0.0), Duration::from_millis(50));
        assert_eq!(p.delay_after(1, None, 1.0), Duration::from_millis(100));
        assert_eq!(p.delay_after(3, None, 0.0), Duration::from_millis(200));
        assert_eq!(p.delay_after(3, None, 1.0), Duration::from_millis(400));
        assert_eq!(p.delay_after(30, None, 1.0), Duration::from_secs(1));
        assert_eq!(
            p.delay_after(u32::MAX, None, 0.5),
            Duration::from_millis(750)
        );
    }

    #[test]
    fn retry_after_is_a_floor_but_bounded() {
        let p = policy();
        assert_eq!(
            p.delay_after(1, Some(Duration::from_secs(7)), 0.0),
            Duration::from_secs(7)
        );
        assert_eq!(
            p.delay_after(1, Some(Duration::from_secs(86400)), 0.0),
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn attempts_are_bounded() {
        assert!(!policy().exhausted(4));
        assert!(policy().exhausted(5));
    }

    #[test]
    fn payloads_round_trip_through_their_stored_form() {
        let verify = JobPayload::VerifyPayment(VerifyArgs {
            trans_id: Some("123".into()),
            id_get: None,
            tracking_code: Some("T".into()),
        });
        for p in [
            JobPayload::FetchUser,
            JobPayload::CreateInvoice,
            JobPayload::UpdateOrder,
            JobPayload::ExpirePayment,
            JobPayload::Refund(RefundArgs {
                refund_id: Uuid::now_v7(),
            }),
            verify,
        ] {
            assert_eq!(JobPayload::from_stored(p.kind(), &p.args_json()), Ok(p));
        }
    }

    #[test]
    fn malformed_payloads_are_errors_not_defaults() {
        let junk = serde_json::json!({"unexpected": 1});
        assert!(JobPayload::from_stored(JobKind::VerifyPayment, &junk).is_err());
        assert!(JobPayload::from_stored(JobKind::VerifyPayment, &serde_json::json!(7)).is_err());
        assert!(JobPayload::from_stored(JobKind::FetchUser, &junk).is_err());
        // An empty verification (a reconciler's check) is valid.
        assert_eq!(
            JobPayload::from_stored(JobKind::VerifyPayment, &serde_json::json!({})),
            Ok(JobPayload::VerifyPayment(VerifyArgs::default()))
        );
    }

    #[test]
    fn new_jobs_take_their_budget_from_the_kind() {
        let policies = RetryPolicies::default();
        let j = NewJob::new(
            JobPayload::VerifyPayment(VerifyArgs::default()),
            None,
            &policies,
        );
        assert_eq!(j.kind(), JobKind::VerifyPayment);
        assert_eq!(j.max_attempts, policies.verify_payment.max_attempts);
    }

    #[test]
    fn names_round_trip() {
        for k in JobKind::ALL {
            assert_eq!(JobKind::parse(k.as_str()), Some(k));
        }
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
    }
}
