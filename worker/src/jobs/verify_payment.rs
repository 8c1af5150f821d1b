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
            let Ok(mut change) = payment.change().status(PaymentStatus::Completed, None) else {
                return Step::nothing();
            };
            if let Some(t) = trans_id.clone() {
                change = change.gateway_trans_id(t);
            }
            if let Some(t) = tracking {
                change = change.tracking_code(t);
            }
            Step::Done(Effects {
        order_status: None,
                change: Some(change),
                events: vec![
                    NewEvent::new(id, EventKind::Verification, "gateway confirmed the payment")
                        .detail(serde_json::json!({ "amount": amount, "repeated": repeated, "trans_id": trans_id })),
                    NewEvent::new(id, EventKind::StatusChange, "processing → completed"),
                ],
                next: Vec::new(),
                refund: None,
            })
        }
        Verification::NotPaid { reason } => fail(payment, &reason, serde_json::Value::Null),
        Verification::Pending => Step::Retry {
            error: "the gateway has not confirmed the payment yet".into(),
            retry_after: None,
            exhausted_reason: Some("confirmation_timeout"),
        },
    }
}

fn fail(payment: &Payment, reason: &str, detail: serde_json::Value) -> Step {
    let Ok(change) = payment.change().status(PaymentStatus::Failed, Some(reason)) else {
        return Step::nothing();
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
                format!("processing → failed ({reason})"),
            ),
        ],
        next: Vec::new(),
        refund: None,
    })
}

async fn run(engine: &Engine, payment: &Payment, payload: &VerifyArgs) -> Step {
    if payment.status.is_terminal() {
        // Settled already (e.g. bitpay's "11, verified before"): change nothing.
        return Step::nothing();
    }
    if payment.status != PaymentStatus::Processing {
        return Step::retry("the payment has no invoice yet");
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
