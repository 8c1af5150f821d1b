//! `refund`: ask the payment's gateway to return a refund's money. On the
//! gateway's yes, one write moves the refund to `succeeded`, the payment
//! `completed → refunded` (when nothing is left of it) and its shop order
//! `paid → cancelled`. Retryable gateway failures are retried by the kind's
//! policy; a refusal, or attempts running out, ends the refund `failed` and
//! leaves the payment as it was.

use super::{wrong_payload, Effects, JobHandler, Step};
use crate::Engine;
use async_trait::async_trait;
use paygate_common::domain::refund::completes_refund_of;
use paygate_common::domain::{
    EventKind, JobPayload, NewEvent, OrderChange, OrderStatus, Payment, PaymentStatus, Refund,
    RefundStatus,
};
use paygate_common::gateways::{RefundReceipt, RefundRequest};

pub struct RefundJob;

#[async_trait]
impl JobHandler for RefundJob {
    async fn run(&self, engine: &Engine, payment: Option<&Payment>, payload: &JobPayload) -> Step {
        let JobPayload::Refund(args) = payload else {
            return wrong_payload(payload);
        };
        let Some(payment) = payment else {
            return super::missing_payment();
        };
        let refunds = match engine.store.refunds_of(payment.id).await {
            Ok(r) => r,
            Err(e) => return Step::retry(format!("loading the refunds failed: {e}")),
        };
        let Some(refund) = refunds.iter().find(|r| r.id == args.refund_id).cloned() else {
            return Step::Fail {
                reason: "refund_missing".into(),
                error: format!("refund {} does not exist", args.refund_id),
            };
        };
        if refund.status != RefundStatus::Requested {
            // A repeated job after its refund ended: nothing left to do.
            return Step::nothing();
        }
        if payment.status != PaymentStatus::Completed {
            return Step::Fail {
                reason: "payment_not_refundable".into(),
                error: format!("the payment is {}", payment.status),
            };
        }
        let Some(refunder) = engine.gateways.refunder(payment.provider) else {
            return Step::Fail {
                reason: "gateway_not_configured".into(),
                error: format!("cannot refund a {} payment here", payment.provider),
            };
        };
        let request = RefundRequest {
            payment_id: payment.id,
            refund_id: refund.id,
            amount_minor: refund.amount_minor,
            gateway_ref: payment.gateway_ref.clone(),
            gateway_trans_id: payment.gateway_trans_id.clone(),
            tracking_code: payment.tracking_code.clone(),
            reason: refund
                .reason
                .clone()
                .unwrap_or_else(|| "refund requested by the merchant".into()),
        };
        match refunder.refund(&request).await {
            Ok(receipt) => succeeded(payment, &refunds, &refund, receipt),
            // Retryable: back off (then `gateway_unavailable` when attempts
            // run out); permanent: the gateway's reason ends the refund.
            Err(e) => e.into(),
        }
    }

    fn exhausted_reason(&self) -> &'static str {
        "gateway_unavailable"
    }

    /// A refund job owns its refund, never the payment: the refund fails
    /// and the payment stays completed (the money never left).
    fn give_up(&self, _: Option<&Payment>, _: &str, _: &str) -> Effects {
        Effects::default()
    }

    fn give_up_job(
        &self,
        payment: Option<&Payment>,
        payload: Option<&JobPayload>,
        reason: &str,
        error: &str,
    ) -> Effects {
        let (Some(payment), Some(JobPayload::Refund(args))) = (payment, payload) else {
            return Effects::default();
        };
        failed(payment, args.refund_id, reason, error)
    }
}

/// The pure part of a success: the refund, the payment, the order, the events.
pub fn succeeded(
    payment: &Payment,
    refunds: &[Refund],
    refund: &Refund,
    receipt: RefundReceipt,
) -> Step {
    let Some(mut refund_change) = refund.change(RefundStatus::Succeeded) else {
        return Step::nothing();
    };
    refund_change.gateway_ref = receipt.gateway_ref.clone();
    let mut events = vec![NewEvent::new(
        payment.id,
        EventKind::Refund,
        format!("refund {} succeeded", refund.id),
    )
    .detail(serde_json::json!({
        "refund_id": refund.id,
        "amount": refund.amount_minor,
        "gateway_ref": receipt.gateway_ref,
    }))];
    let mut effects = Effects {
        refund: Some(refund_change),
        ..Effects::default()
    };
    if completes_refund_of(payment, refunds, refund) {
        if let Ok(change) = payment.change().status(PaymentStatus::Refunded, None) {
            effects.change = Some(change);
            events.push(NewEvent::new(
                payment.id,
                EventKind::StatusChange,
                "completed → refunded",
            ));
            // The order is cancelled in the same write when it is paid (the
            // update is conditional on `paid`); one still pending follows
            // through its own order update, which maps refunded → cancelled.
            if let Some(order_id) = payment.order_id {
                effects.order_status =
                    OrderChange::new(order_id, OrderStatus::Paid, OrderStatus::Cancelled);
            }
        }
    }
    effects.events = events;
    Step::Done(effects)
}

/// The refund ends `failed` with `reason`; the payment is not touched.
pub fn failed(payment: &Payment, refund_id: uuid::Uuid, reason: &str, error: &str) -> Effects {
    let change = paygate_common::domain::RefundChange {
        id: refund_id,
        from: RefundStatus::Requested,
        to: RefundStatus::Failed,
        failure_reason: Some(reason.to_string()),
        gateway_ref: None,
    };
    Effects {
        refund: Some(change),
        events: vec![NewEvent::new(
            payment.id,
            EventKind::Refund,
            format!("refund {refund_id} failed: {reason}"),
        )
        .detail(serde_json::json!({ "refund_id": refund_id, "error": error }))],
        ..Effects::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paygate_common::domain::{Amount, Currency, Description, PaymentId, Provider};

    fn payment(order_id: Option<i64>) -> Payment {
        let now = chrono::Utc::now();
        Payment {
            id: PaymentId::new(),
            provider: Provider::Atmos,
            merchant_ref: "1".into(),
            amount: Amount::from_minor(500_000).unwrap(),
            currency: Currency::Uzs,
            description: Description::default(),
            status: PaymentStatus::Completed,
            status_reason: None,
            payment_url: None,
            gateway_ref: Some("77".into()),
            gateway_trans_id: Some("987".into()),
            tracking_code: None,
            encrypted_user_data: None,
            idempotency_key: None,
            order_id,
            created_at: now,
            updated_at: now,
            completed_at: Some(now),
            version: 5,
        }
    }

    fn refund(p: &Payment) -> Refund {
        Refund {
            id: uuid::Uuid::now_v7(),
            payment_id: p.id,
            amount_minor: p.amount.minor(),
            reason: None,
            status: RefundStatus::Requested,
            failure_reason: None,
            gateway_ref: None,
            caller: "k".into(),
            idempotency_key: None,
            created_at: p.created_at,
            updated_at: p.created_at,
        }
    }

    #[test]
    fn success_moves_refund_payment_and_order_together() {
        let p = payment(Some(9));
        let r = refund(&p);
        let receipt = RefundReceipt {
            gateway_ref: Some("987".into()),
        };
        let Step::Done(e) = succeeded(&p, std::slice::from_ref(&r), &r, receipt) else {
            panic!("expected done");
        };
        let rc = e.refund.unwrap();
        assert_eq!(
            (rc.from, rc.to),
            (RefundStatus::Requested, RefundStatus::Succeeded)
        );
        assert_eq!(rc.gateway_ref.as_deref(), Some("987"));
        let change = e.change.unwrap();
        assert_eq!(change.new_status, Some(PaymentStatus::Refunded));
        assert_eq!(change.expected_version, 5);
        let o = e.order_status.unwrap();
        assert_eq!(
            (o.id, o.from, o.to),
            (9, OrderStatus::Paid, OrderStatus::Cancelled)
        );
    }

    #[test]
    fn failure_touches_only_the_refund() {
        let p = payment(Some(9));
        let r = refund(&p);
        let e = failed(&p, r.id, "gateway_unavailable", "HTTP 500");
        assert!(e.change.is_none() && e.order_status.is_none());
        let rc = e.refund.unwrap();
        assert_eq!(rc.to, RefundStatus::Failed);
        assert_eq!(rc.failure_reason.as_deref(), Some("gateway_unavailable"));
        // The runner's give-up path reaches the same through the payload.
        let payload = JobPayload::Refund(paygate_common::domain::RefundArgs { refund_id: r.id });
        let via_runner = RefundJob.give_up_job(Some(&p), Some(&payload), "x", "y");
        assert_eq!(via_runner.refund.unwrap().id, r.id);
        assert!(via_runner.change.is_none());
    }
}
