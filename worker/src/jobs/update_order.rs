//! `update_order`: once a shop order's payment settles, move the order to the
//! matching status (completed → paid, failed → failed, cancelled → cancelled).

use super::{missing_payment, Effects, JobHandler, Step};
use crate::Engine;
use async_trait::async_trait;
use paygate_common::domain::{
    EventKind, JobPayload, NewEvent, OrderChange, OrderStatus, Payment, PaymentStatus,
    LATE_SETTLEMENT,
};

/// Queued by the status-change hook (`domain::reactions`) in the same write
/// that settles a shop order's payment.
pub struct UpdateOrder;

#[async_trait]
impl JobHandler for UpdateOrder {
    async fn run(&self, engine: &Engine, payment: Option<&Payment>, _: &JobPayload) -> Step {
        match payment {
            Some(p) => run(engine, p).await,
            None => missing_payment(),
        }
    }
    fn exhausted_reason(&self) -> &'static str {
        "order_update_unavailable"
    }
    /// The payment has settled already; giving up on its order must not
    /// touch it. The ledger keeps the dead job for an operator to redrive.
    fn give_up(&self, _: Option<&Payment>, _: &str, _: &str) -> Effects {
        Effects::default()
    }
}

async fn run(engine: &Engine, payment: &Payment) -> Step {
    let Some(order_id) = payment.order_id else {
        return Step::nothing();
    };
    let Some(target) = OrderStatus::for_payment(payment.status) else {
        return Step::retry("the payment has not settled yet");
    };
    let order = match engine.store.order(order_id).await {
        Ok(Some(o)) => o,
        Ok(None) => {
            return Step::Fail {
                reason: "order_missing".into(),
                error: format!("order {order_id} does not exist"),
            }
        }
        Err(e) => return Step::retry(format!("loading the order failed: {e}")),
    };
    // A payment settled late (completed after it had failed or expired)
    // takes its failed or cancelled order to paid; nothing else reopens one.
    let change = OrderChange::new(order_id, order.status, target).or_else(|| {
        let late = payment.status == PaymentStatus::Completed
            && payment.status_reason.as_deref() == Some(LATE_SETTLEMENT);
        late.then(|| OrderChange::paid_late(order_id, order.status))
            .flatten()
    });
    let Some(change) = change else {
        // Already moved (a repeated job) or moved by someone else: nothing to do.
        return Step::nothing();
    };
    Step::Done(Effects {
        order_status: Some(change),
        events: vec![NewEvent::new(
            payment.id,
            EventKind::StatusChange,
            format!(
                "order {order_id}: {} → {}",
                change.from.as_str(),
                change.to.as_str()
            ),
        )],
        ..Effects::default()
    })
}
