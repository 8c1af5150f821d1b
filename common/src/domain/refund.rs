//! Refunds: money going back to the payer of a completed payment, through the
//! gateway's own refund call, as a job. This module is the refund's state
//! machine (requested → succeeded | failed) and the rules that decide whether
//! a refund may be asked for at all; it knows nothing of HTTP or SQL.

use super::payment::{Payment, PaymentId};
use super::provider::Provider;
use super::status::PaymentStatus;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// The longest `reason` a merchant may attach (it goes to the gateway too).
pub const MAX_REASON_CHARS: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefundStatus {
    /// Accepted; its job has not had the gateway's answer yet.
    Requested,
    /// The gateway returned the money.
    Succeeded,
    /// The gateway refused, or kept failing until the job's attempts ran out.
    /// The payment was not touched.
    Failed,
}

impl RefundStatus {
    pub const ALL: [RefundStatus; 3] = [
        RefundStatus::Requested,
        RefundStatus::Succeeded,
        RefundStatus::Failed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Requested => "requested",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
    /// requested → succeeded | failed; nothing leaves an end.
    pub fn can_become(self, to: RefundStatus) -> bool {
        matches!(
            (self, to),
            (RefundStatus::Requested, RefundStatus::Succeeded)
                | (RefundStatus::Requested, RefundStatus::Failed)
        )
    }
    /// True while the refund holds (or has taken) part of the payment's amount.
    pub fn counts_against_payment(self) -> bool {
        self != RefundStatus::Failed
    }
}

impl fmt::Display for RefundStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored refund.
#[derive(Debug, Clone, PartialEq)]
pub struct Refund {
    pub id: Uuid,
    pub payment_id: PaymentId,
    /// Minor units, in the payment's currency.
    pub amount_minor: i64,
    pub reason: Option<String>,
    pub status: RefundStatus,
    /// Why it failed (a stable snake_case code), once failed.
    pub failure_reason: Option<String>,
    /// The gateway's id of the reversal or of the reversed payment.
    pub gateway_ref: Option<String>,
    /// The API key that asked for it; idempotency keys are scoped to it.
    pub caller: String,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A checked move of a refund, applied only while the row is still `from`.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundChange {
    pub id: Uuid,
    pub from: RefundStatus,
    pub to: RefundStatus,
    pub failure_reason: Option<String>,
    pub gateway_ref: Option<String>,
}

impl Refund {
    /// The move to `to`, if the refund's state machine allows it.
    pub fn change(&self, to: RefundStatus) -> Option<RefundChange> {
        self.status.can_become(to).then_some(RefundChange {
            id: self.id,
            from: self.status,
            to,
            failure_reason: None,
            gateway_ref: None,
        })
    }
}

/// How a gateway refunds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundMode {
    /// Through an API we call, and only the whole payment (Atmos
    /// `/merchant/pay/reverse`, Click's payment reversal).
    FullThroughApi,
    /// Only from the gateway's own merchant cabinet, which then tells us
    /// (Payme: CancelTransaction on a performed transaction).
    InGatewayCabinet,
    /// The gateway has no refund call at all (medogram/bitpay).
    Unsupported,
}

/// How `provider` refunds. Exhaustive, so a new gateway must decide.
pub fn mode(provider: Provider) -> RefundMode {
    match provider {
        Provider::Atmos | Provider::Click => RefundMode::FullThroughApi,
        Provider::Payme => RefundMode::InGatewayCabinet,
        Provider::Medogram => RefundMode::Unsupported,
    }
}

/// Why a refund request is refused before anything is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefundRefusal {
    #[error("{provider} has no refund call; refund the payer outside paygate")]
    Unsupported { provider: Provider },
    #[error("{provider} refunds are started in {provider}'s merchant cabinet; paygate records them when {provider} reports them")]
    InGatewayCabinet { provider: Provider },
    #[error("only a completed payment can be refunded; this one is {status}")]
    NotCompleted { status: PaymentStatus },
    #[error("the amount is more than what is left to refund ({remaining})")]
    AmountExceedsRemaining { remaining: i64 },
    #[error("{provider} refunds only the whole payment ({amount})")]
    PartialUnsupported { provider: Provider, amount: i64 },
    #[error("the amount must be greater than zero")]
    AmountNotPositive,
}

impl RefundRefusal {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            RefundRefusal::Unsupported { .. } => "refund_not_supported",
            RefundRefusal::InGatewayCabinet { .. } => "refund_in_gateway_cabinet",
            RefundRefusal::NotCompleted { .. } => "payment_not_refundable",
            RefundRefusal::AmountExceedsRemaining { .. } => "amount_exceeds_remaining",
            RefundRefusal::PartialUnsupported { .. } => "partial_refund_not_supported",
            RefundRefusal::AmountNotPositive => "invalid_amount",
        }
    }
}

/// What is left to refund of `payment` given its refunds so far (requested
/// ones count: their money is on its way back).
pub fn remaining(payment: &Payment, refunds: &[Refund]) -> i64 {
    let taken: i64 = refunds
        .iter()
        .filter(|r| r.payment_id == payment.id && r.status.counts_against_payment())
        .map(|r| r.amount_minor)
        .sum();
    (payment.amount.minor() - taken).max(0)
}

/// Decides the amount of a new refund of `payment` (`requested`: the
/// merchant's amount, `None` for all that is left), or why there is none.
pub fn plan(
    payment: &Payment,
    refunds: &[Refund],
    requested: Option<i64>,
) -> Result<i64, RefundRefusal> {
    let provider = payment.provider;
    match mode(provider) {
        RefundMode::Unsupported => return Err(RefundRefusal::Unsupported { provider }),
        RefundMode::InGatewayCabinet => return Err(RefundRefusal::InGatewayCabinet { provider }),
        RefundMode::FullThroughApi => {}
    }
    if requested.is_some_and(|a| a <= 0) {
        return Err(RefundRefusal::AmountNotPositive);
    }
    if payment.status != PaymentStatus::Completed {
        return Err(RefundRefusal::NotCompleted {
            status: payment.status,
        });
    }
    let left = remaining(payment, refunds);
    let amount = requested.unwrap_or(left);
    if left == 0 || amount > left {
        return Err(RefundRefusal::AmountExceedsRemaining { remaining: left });
    }
    if amount != payment.amount.minor() {
        return Err(RefundRefusal::PartialUnsupported {
            provider,
            amount: payment.amount.minor(),
        });
    }
    Ok(amount)
}

/// True when `refund`, succeeding, returns everything the payment took, so the
/// payment itself becomes `refunded` (every refund paygate makes today is
/// whole; the rule is written for the partial ones a gateway may add).
pub fn completes_refund_of(payment: &Payment, refunds: &[Refund], refund: &Refund) -> bool {
    let succeeded: i64 = refunds
        .iter()
        .filter(|r| r.id != refund.id && r.status == RefundStatus::Succeeded)
        .map(|r| r.amount_minor)
        .sum();
    succeeded + refund.amount_minor >= payment.amount.minor()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Amount, Currency, Description};

    fn payment(provider: Provider, status: PaymentStatus, amount: i64) -> Payment {
        let now = Utc::now();
        Payment {
            id: PaymentId::new(),
            provider,
            merchant_ref: "1".into(),
            amount: Amount::from_minor(amount).unwrap(),
            currency: Currency::Uzs,
            description: Description::default(),
            status,
            status_reason: None,
            payment_url: None,
            gateway_ref: None,
            gateway_trans_id: None,
            tracking_code: None,
            encrypted_user_data: None,
            idempotency_key: None,
            order_id: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
            version: 3,
        }
    }

    fn refund(p: &Payment, amount: i64, status: RefundStatus) -> Refund {
        Refund {
            id: Uuid::now_v7(),
            payment_id: p.id,
            amount_minor: amount,
            reason: None,
            status,
            failure_reason: None,
            gateway_ref: None,
            caller: "k".into(),
            idempotency_key: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn the_transition_table_is_exactly_the_documented_one() {
        use RefundStatus::*;
        let allowed = [(Requested, Succeeded), (Requested, Failed)];
        for from in RefundStatus::ALL {
            for to in RefundStatus::ALL {
                assert_eq!(from.can_become(to), allowed.contains(&(from, to)));
            }
            assert_eq!(RefundStatus::parse(from.as_str()), Some(from));
        }
    }

    #[test]
    fn a_completed_atmos_or_click_payment_is_refunded_in_full() {
        for provider in [Provider::Atmos, Provider::Click] {
            let p = payment(provider, PaymentStatus::Completed, 500_000);
            assert_eq!(plan(&p, &[], None), Ok(500_000));
            assert_eq!(plan(&p, &[], Some(500_000)), Ok(500_000));
        }
    }

    #[test]
    fn gateways_without_a_refund_call_are_refused_whatever_the_status() {
        for status in PaymentStatus::ALL {
            let p = payment(Provider::Payme, status, 500_000);
            assert_eq!(
                plan(&p, &[], None).unwrap_err().code(),
                "refund_in_gateway_cabinet"
            );
            let p = payment(Provider::Medogram, status, 500_000);
            assert_eq!(
                plan(&p, &[], None).unwrap_err().code(),
                "refund_not_supported"
            );
        }
    }

    #[test]
    fn only_completed_payments_are_refundable() {
        for status in PaymentStatus::ALL {
            let p = payment(Provider::Atmos, status, 500_000);
            let r = plan(&p, &[], None);
            assert_eq!(r.is_ok(), status == PaymentStatus::Completed, "{status}");
            if status != PaymentStatus::Completed {
                assert_eq!(r.unwrap_err().code(), "payment_not_refundable");
            }
        }
    }

    #[test]
    fn amounts_are_bounded_by_what_is_left_and_must_be_whole() {
        let p = payment(Provider::Atmos, PaymentStatus::Completed, 500_000);
        assert_eq!(
            plan(&p, &[], Some(500_001)),
            Err(RefundRefusal::AmountExceedsRemaining { remaining: 500_000 })
        );
        assert_eq!(
            plan(&p, &[], Some(100)).unwrap_err().code(),
            "partial_refund_not_supported"
        );
        assert_eq!(
            plan(&p, &[], Some(0)),
            Err(RefundRefusal::AmountNotPositive)
        );
        assert_eq!(
            plan(&p, &[], Some(-5)),
            Err(RefundRefusal::AmountNotPositive)
        );
        // A requested or succeeded refund holds the amount; a failed one frees it.
        for held in [RefundStatus::Requested, RefundStatus::Succeeded] {
            let r = refund(&p, 500_000, held);
            assert_eq!(
                plan(&p, &[r], None),
                Err(RefundRefusal::AmountExceedsRemaining { remaining: 0 })
            );
        }
        let failed = refund(&p, 500_000, RefundStatus::Failed);
        assert_eq!(plan(&p, &[failed], None), Ok(500_000));
    }

    #[test]
    fn a_refund_returning_everything_refunds_the_payment() {
        let p = payment(Provider::Atmos, PaymentStatus::Completed, 500_000);
        let whole = refund(&p, 500_000, RefundStatus::Requested);
        assert!(completes_refund_of(
            &p,
            std::slice::from_ref(&whole),
            &whole
        ));
        let part = refund(&p, 100, RefundStatus::Requested);
        assert!(!completes_refund_of(&p, std::slice::from_ref(&part), &part));
    }

    #[test]
    fn changes_follow_the_state_machine() {
        let p = payment(Provider::Atmos, PaymentStatus::Completed, 500_000);
        let r = refund(&p, 500_000, RefundStatus::Requested);
        assert!(r.change(RefundStatus::Succeeded).is_some());
        let done = refund(&p, 500_000, RefundStatus::Succeeded);
        assert!(done.change(RefundStatus::Failed).is_none());
    }

    #[test]
    fn modes_agree_with_the_descriptors() {
        use strum::IntoEnumIterator;
        for provider in Provider::iter() {
            assert_eq!(
                mode(provider) == RefundMode::FullThroughApi,
                provider.descriptor().capabilities.refund,
                "{provider:?}"
            );
        }
    }
}
