//! `expire_payment`: a payment still waiting for its payer after its time to
//! live (`PAYGATE_PAYMENT_TTL`) gets one last verification where the gateway
//! can be asked about the invoice itself (its `reconcile` capability: Atmos'
//! `/merchant/pay/get`), then ends `cancelled` with reason `expired`.
//!
//! Idempotent: a payment that is no longer pending or processing is left as
//! it is, and a crash anywhere leaves the job to run again. A gateway that
//! confirms later still wins: the payment is then settled late
//! (verify_payment.rs; docs/expiry.md).

use super::verify_payment;
use super::{missing_payment, wrong_payload, Effects, JobHandler, Step};
use crate::Engine;
use async_trait::async_trait;
use paygate_common::domain::{
    EventKind, JobPayload, NewEvent, Payment, PaymentStatus, VerifyArgs, EXPIRED,
};
use paygate_common::gateways::{Verification, VerifyRequest};

pub struct ExpirePayment;

#[async_trait]
impl JobHandler for ExpirePayment {
    async fn run(&self, engine: &Engine, payment: Option<&Payment>, payload: &JobPayload) -> Step {
        if !matches!(payload, JobPayload::ExpirePayment) {
            return wrong_payload(payload);
        }
        match payment {
            Some(p) => run(engine, p).await,
            None => missing_payment(),
        }
    }
    fn exhausted_reason(&self) -> &'static str {
        "last_verification_unavailable"
    }
    /// The last verification could not be had (the gateway stayed down, or
    /// refused the question): the payment has outlived its time to live all
    /// the same, so it expires; a confirmation that comes later settles it late.
    fn give_up(&self, payment: Option<&Payment>, reason: &str, error: &str) -> Effects {
        let Some(p) = payment else {
            return Effects::default();
        };
        let mut effects = expire(p, None);
        effects.events.insert(
            0,
            NewEvent::new(
                p.id,
                EventKind::Error,
                format!("last verification before expiry: {reason}: {error}"),
            ),
        );
        effects
    }
}

/// Whether the expiry asks the gateway first: only a gateway that can be
/// asked about the invoice without a callback in hand can answer. medogram
/// can only be asked about a `trans_id` its callback names, and each such
/// callback already has its own verification, which keeps running after expiry.
pub fn asks_first(payment: &Payment) -> bool {
    payment.status == PaymentStatus::Processing
        && payment.gateway_ref.is_some()
        && payment.provider.descriptor().capabilities.verify
        && payment.provider.descriptor().capabilities.reconcile
}

/// The pure part: the gateway's last answer (if it was asked) decides.
pub fn decide(payment: &Payment, last_answer: Option<Verification>) -> Step {
    if !matches!(
        payment.status,
        PaymentStatus::Pending | PaymentStatus::Processing
    ) {
        // Settled or ended meanwhile (a repeat, or a racing verification).
        return Step::nothing();
    }
    match last_answer {
        // Paid after all: completed as any confirmation would (a different
        // amount fails it with `amount_mismatch`).
        Some(paid @ Verification::Paid { .. }) => {
            verify_payment::decide(payment, &VerifyArgs::default(), paid)
        }
        other => Step::Done(expire(payment, other)),
    }
}

/// Cancels `payment` with reason `expired`, noting the last answer.
fn expire(payment: &Payment, last_answer: Option<Verification>) -> Effects {
    let Ok(change) = payment
        .change()
        .status(PaymentStatus::Cancelled, Some(EXPIRED))
    else {
        return Effects::default();
    };
    let mut events = Vec::new();
    if let Some(answer) = last_answer {
        let said = match answer {
            Verification::Pending => "pending".to_string(),
            Verification::NotPaid { reason } | Verification::Unconfirmed { reason } => reason,
            Verification::Paid { .. } => "paid".to_string(),
        };
        events.push(
            NewEvent::new(
                payment.id,
                EventKind::Verification,
                format!("last verification before expiry: the gateway answered {said}"),
            )
            .detail(serde_json::json!({ "answer": said })),
        );
    }
    events.push(NewEvent::new(
        payment.id,
        EventKind::StatusChange,
        format!("{} → cancelled ({EXPIRED})", payment.status),
    ));
    Effects {
        change: Some(change),
        events,
        ..Effects::default()
    }
}

async fn run(engine: &Engine, payment: &Payment) -> Step {
    if !asks_first(payment) {
        return decide(payment, None);
    }
    let (Some(gateway), Some(gateway_ref)) = (
        engine.gateways.get(payment.provider),
        payment.gateway_ref.clone(),
    ) else {
        // Not configured here any more: nobody to ask.
        return decide(payment, None);
    };
    let request = VerifyRequest {
        payment_id: payment.id,
        gateway_ref,
        trans_id: None,
    };
    match gateway.verify(&request).await {
        Ok(answer) => decide(payment, Some(answer)),
        Err(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paygate_common::domain::{Amount, Description, PaymentId, Provider};

    fn payment(provider: Provider, status: PaymentStatus) -> Payment {
        let now = chrono::Utc::now();
        Payment {
            id: PaymentId::new(),
            provider,
            merchant_ref: "7".into(),
            amount: Amount::from_minor(5000).unwrap(),
            currency: provider.currency(),
            description: Description::default(),
            status,
            status_reason: None,
            payment_url: Some("https://pay.example/x".into()),
            gateway_ref: Some("42".into()),
            gateway_trans_id: None,
            tracking_code: None,
            encrypted_user_data: None,
            idempotency_key: None,
            order_id: Some(7),
            created_at: now,
            updated_at: now,
            completed_at: None,
            version: 2,
        }
    }

    fn change_of(step: Step) -> Option<(PaymentStatus, Option<String>)> {
        match step {
            Step::Done(e) => e.change.map(|c| (c.new_status.unwrap(), c.status_reason)),
            other => panic!("expected Done, got {other:?}"),
        }
    }

    #[test]
    fn only_gateways_that_can_be_asked_about_the_invoice_are_asked() {
        assert!(asks_first(&payment(
            Provider::Atmos,
            PaymentStatus::Processing
        )));
        assert!(!asks_first(&payment(
            Provider::Atmos,
            PaymentStatus::Pending
        )));
        for p in [Provider::Medogram, Provider::Payme, Provider::Click] {
            assert!(!asks_first(&payment(p, PaymentStatus::Processing)), "{p}");
        }
    }

    #[test]
    fn unpaid_or_unanswered_payments_are_cancelled_as_expired() {
        let expired = Some((PaymentStatus::Cancelled, Some(EXPIRED.to_string())));
        let p = payment(Provider::Atmos, PaymentStatus::Processing);
        assert_eq!(change_of(decide(&p, None)), expired);
        assert_eq!(change_of(decide(&p, Some(Verification::Pending))), expired);
        assert_eq!(
            change_of(decide(
                &p,
                Some(Verification::NotPaid {
                    reason: "declined".into()
                })
            )),
            expired
        );
        let pending = payment(Provider::Medogram, PaymentStatus::Pending);
        assert_eq!(change_of(decide(&pending, None)), expired);
    }

    #[test]
    fn a_last_confirmation_completes_instead() {
        let p = payment(Provider::Atmos, PaymentStatus::Processing);
        let paid = Verification::Paid {
            amount: 5000,
            trans_id: Some("9".into()),
            repeated: false,
        };
        assert_eq!(
            change_of(decide(&p, Some(paid))),
            Some((PaymentStatus::Completed, None))
        );
        let wrong = Verification::Paid {
            amount: 1,
            trans_id: None,
            repeated: false,
        };
        assert_eq!(
            change_of(decide(&p, Some(wrong))),
            Some((PaymentStatus::Failed, Some("amount_mismatch".into())))
        );
    }

    #[test]
    fn ended_payments_are_left_alone_and_giving_up_still_expires() {
        for st in [
            PaymentStatus::Completed,
            PaymentStatus::Failed,
            PaymentStatus::Cancelled,
            PaymentStatus::Refunded,
        ] {
            let p = payment(Provider::Atmos, st);
            assert_eq!(change_of(decide(&p, None)), None, "{st}");
            assert!(ExpirePayment.give_up(Some(&p), "x", "y").change.is_none());
        }
        let p = payment(Provider::Atmos, PaymentStatus::Processing);
        let e = ExpirePayment.give_up(Some(&p), "gateway_down", "timeout");
        assert_eq!(
            e.change.map(|c| c.status_reason),
            Some(Some(EXPIRED.to_string()))
        );
        assert_eq!(e.events[0].kind, EventKind::Error);
    }
}
