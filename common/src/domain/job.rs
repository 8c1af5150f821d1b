//! Background work: the kinds of job, their ledger status, and the retry
//! policy of each kind (the one place retries are decided).

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
}

impl JobKind {
    pub const ALL: [JobKind; 4] = [
        JobKind::FetchUser,
        JobKind::CreateInvoice,
        JobKind::VerifyPayment,
        JobKind::UpdateOrder,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::FetchUser => "fetch_user",
            JobKind::CreateInvoice => "create_invoice",
            JobKind::VerifyPayment => "verify_payment",
            JobKind::UpdateOrder => "update_order",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
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

/// What travels through the queue: only a pointer into the ledger. The ledger
/// row is the truth; a message may be lost or delivered twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub job_id: Uuid,
    pub kind: JobKind,
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
        }
    }
    pub fn for_kind_mut(&mut self, kind: JobKind) -> &mut RetryPolicy {
        match kind {
            JobKind::FetchUser => &mut self.fetch_user,
            JobKind::CreateInvoice => &mut self.create_invoice,
            JobKind::VerifyPayment => &mut self.verify_payment,
            JobKind::UpdateOrder => &mut self.update_order,
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
    fn names_round_trip() {
        for k in JobKind::ALL {
            assert_eq!(JobKind::parse(k.as_str()), Some(k));
        }
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
    }
}
