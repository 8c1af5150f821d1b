//! `verify_payment`: after a callback or webhook, ask the gateway server to
//! server whether the money moved, and settle the payment. The callback itself
//! proves nothing.

use super::{missing_payment, wrong_payload, Effects, JobHandler, Step};
use crate::Engine;
use async_trait::async_trait;
use paygate_common::domain::{EventKind, JobPayload, NewEvent, Payment, PaymentStatus, VerifyArgs};
use paygate_common::gateways::{Verification, VerifyRequest};

/// What the callback told us, carried in the job's payload.
pub type VerifyPayload = VerifyArgs;

pub struct VerifyPayment;

#[async_trait]
impl JobHandler for VerifyPayment {
    async fn run(&self, engine: &Engine, payment: Option<&Payment>, payload: &JobPayload) -> Step {
        let JobPayload::VerifyPayment(args) = payload else {
            return wrong_payload(payload);
        };
        match payment {
            Some(p) => run(engine, p, args).await,
            None => missing_payment(),
        }
    }
    fn exhausted_reason(&self) -> &'static str {
        "verification_unavailable"
    }
}

/// The pure part: given the payment and the gateway's answer, what changes.
///
/// A confirmation (right amount) completes a `processing` payment, and
/// settles late a `failed` or `cancelled` one: the money moved, so the
/// payment is completed after all. A "not paid" about the invoice ends a
/// payable payment; an unconfirmed transaction that a caller named leaves it
/// payable (anyone can name one: docs/expiry.md).
pub fn decide(payment: &Payment, payload: &VerifyPayload, answer: Verification) -> Step {
    let id = payment.id;
    match answer {
        Verification::Paid {
            amount,
            trans_id,
            repeated,
        } => {
            if amount != payment.amount.minor() {
                return fail(
                    payment,
                    "amount_mismatch",
                    serde_json::json!({ "expected": payment.amount.minor(), "gateway": amount }),
                );
            }
            let trans_id = trans_id.or_else(|| payload.trans_id.clone());
            let tracking = payload.tracking_code.clone().or_else(|| trans_id.clone());
            let late = payment.status.can_settle_late();
            let change = if late {
                payment.change().settle_late()
            } else {
                payment.change().status(PaymentStatus::Completed, None)
            };
            let Ok(mut change) = change else {
                return Step::nothing();
            };
            if let Some(t) = trans_id.clone() {
                change = change.gateway_trans_id(t);
            }
            if let Some(t) = tracking {
                change = change.tracking_code(t);
            }
            let detail =
                serde_json::json!({ "amount": amount, "repeated": repeated, "trans_id": trans_id });
            let mut events =
                vec![
                    NewEvent::new(id, EventKind::Verification, "gateway confirmed the payment")
                        .detail(detail.clone()),
                ];
            if late {
                events.push(
                    NewEvent::new(
                        id,
                        EventKind::LateSettlement,
                        format!(
                            "late settlement: the gateway confirmed the money after the payment was {} ({})",
                            payment.status,
                            payment.status_reason.as_deref().unwrap_or("no reason")
                        ),
                    )
                    .detail(detail),
                );
            }
            events.push(NewEvent::new(
                id,
                EventKind::StatusChange,
                format!("{} → completed", payment.status),
            ));
            Step::Done(Effects {
                order_status: None,
                change: Some(change),
                events,
                next: Vec::new(),
                refund: None,
            })
        }
        Verification::NotPaid { reason } => fail(payment, &reason, serde_json::Value::Null),
        Verification::Unconfirmed { reason } => Step::Done(Effects {
            events: vec![NewEvent::new(
                id,
                EventKind::Verification,
                format!(
                    "the gateway did not confirm the transaction the callback named ({reason}); \
                     the payment stays {}",
                    payment.status
                ),
            )
            .detail(serde_json::json!({ "trans_id": payload.trans_id }))],
            ..Effects::default()
        }),
        Verification::Pending => Step::Retry {
            error: "the gateway has not confirmed the payment yet".into(),
            retry_after: None,
            exhausted_reason: Some("confirmation_timeout"),
        },
    }
}

fn fail(payment: &Payment, reason: &str, detail: serde_json::Value) -> Step {
    let Ok(change) = payment.change().status(PaymentStatus::Failed, Some(reason)) else {
        // Already ended: the answer is kept in the log, the status stays.
        return Step::Done(Effects {
            events: vec![NewEvent::new(
                payment.id,
                EventKind::Verification,
                format!(
                    "verification failed: {reason} (the payment is {})",
                    payment.status
                ),
            )
            .detail(detail)],
            ..Effects::default()
        });
    };
    Step::Done(Effects {
        order_status: None,
        change: Some(change),
        events: vec![
            NewEvent::new(
                payment.id,
                EventKind::Verification,
                format!("verification failed: {reason}"),
            )
            .detail(detail),
            NewEvent::new(
                payment.id,
                EventKind::StatusChange,
                format!("{} → failed ({reason})", payment.status),
            ),
        ],
        next: Vec::new(),
        refund: None,
    })
}

async fn run(engine: &Engine, payment: &Payment, payload: &VerifyArgs) -> Step {
    if matches!(
        payment.status,
        PaymentStatus::Completed | PaymentStatus::Refunded
    ) {
        // Settled already (e.g. bitpay's "11, verified before"): change nothing.
        // A failed or cancelled one is still asked: a confirmation settles it late.
        return Step::nothing();
    }
    if payment.status == PaymentStatus::Pending {
        return Step::retry("the payment has no invoice yet");
    }
    if payment.gateway_ref.is_none() && payment.status.is_terminal() {
        // Ended before it was ever invoiced: there is nothing to ask about.
        return Step::nothing();
    }
    if let (Some(named), Some(ours)) = (&payload.id_get, &payment.gateway_ref) {
        if named != ours {
            // A callback for an invoice this payment does not have: not ours to judge.
            return Step::Done(Effects {
                events: vec![NewEvent::new(
                    payment.id,
                    EventKind::Verification,
                    "callback ignored: it names another invoice",
                )
                .detail(serde_json::json!({ "callback_id_get": named, "gateway_ref": ours }))],
                ..Effects::default()
            });
        }
    }
    let (Some(gateway), Some(gateway_ref)) = (
        engine.gateways.get(payment.provider),
        payment.gateway_ref.clone(),
    ) else {
        return Step::Fail {
            reason: "gateway_not_configured".into(),
            error: format!("cannot verify a {} payment here", payment.provider),
        };
    };
    let request = VerifyRequest {
        payment_id: payment.id,
        gateway_ref,
        trans_id: payload.trans_id.clone(),
    };
    match gateway.verify(&request).await {
        Ok(answer) => decide(payment, payload, answer),
        Err(e) => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paygate_common::domain::{Amount, Description, PaymentId, Provider, LATE_SETTLEMENT};

    fn payment(status: PaymentStatus, reason: Option<&str>) -> Payment {
        let now = chrono::Utc::now();
        Payment {
            id: PaymentId::new(),
            provider: Provider::Medogram,
            merchant_ref: "09123456789".into(),
            amount: Amount::from_minor(100000).unwrap(),
            currency: Provider::Medogram.currency(),
            description: Description::default(),
            status,
            status_reason: reason.map(str::to_string),
            payment_url: None,
            gateway_ref: Some("77".into()),
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

    fn args() -> VerifyArgs {
        VerifyArgs {
            trans_id: Some("12345678".into()),
            ..VerifyArgs::default()
        }
    }

    fn paid(amount: i64) -> Verification {
        Verification::Paid {
            amount,
            trans_id: None,
            repeated: false,
        }
    }

    fn effects(step: Step) -> Effects {
        match step {
            Step::Done(e) => e,
            other => panic!("expected Done, got {other:?}"),
        }
    }

    #[test]
    fn an_unconfirmed_trans_id_leaves_a_payable_payment_as_it_is() {
        let p = payment(PaymentStatus::Processing, None);
        let e = effects(decide(
            &p,
            &args(),
            Verification::Unconfirmed {
                reason: "not_paid".into(),
            },
        ));
        assert!(e.change.is_none());
        assert_eq!(e.events.len(), 1);
        assert_eq!(e.events[0].kind, EventKind::Verification);
        // A "not paid" about the invoice itself still fails it.
        let e = effects(decide(
            &p,
            &args(),
            Verification::NotPaid {
                reason: "declined".into(),
            },
        ));
        assert_eq!(e.change.unwrap().new_status, Some(PaymentStatus::Failed));
    }

    #[test]
    fn a_confirmation_after_failure_or_expiry_settles_late() {
        for (st, reason) in [
            (PaymentStatus::Cancelled, "expired"),
            (PaymentStatus::Failed, "not_paid"),
        ] {
            let p = payment(st, Some(reason));
            let e = effects(decide(&p, &args(), paid(100000)));
            let c = e.change.unwrap();
            assert!(c.late_settlement);
            assert_eq!(c.new_status, Some(PaymentStatus::Completed));
            assert_eq!(c.status_reason.as_deref(), Some(LATE_SETTLEMENT));
            assert_eq!(c.gateway_trans_id.as_deref(), Some("12345678"));
            assert!(e
                .events
                .iter()
                .any(|ev| ev.kind == EventKind::LateSettlement));
            // The wrong amount never settles it.
            let e = effects(decide(&p, &args(), paid(99999)));
            assert!(e.change.is_none());
        }
        // A processing payment completes the ordinary way.
        let e = effects(decide(
            &payment(PaymentStatus::Processing, None),
            &args(),
            paid(100000),
        ));
        let c = e.change.unwrap();
        assert!(!c.late_settlement);
        assert!(!e
            .events
            .iter()
            .any(|ev| ev.kind == EventKind::LateSettlement));
        // Completed and refunded payments are never settled again.
        for st in [PaymentStatus::Completed, PaymentStatus::Refunded] {
            assert!(effects(decide(&payment(st, None), &args(), paid(100000)))
                .change
                .is_none());
        }
    }
}
