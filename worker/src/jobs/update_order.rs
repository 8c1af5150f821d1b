//! `update_order`: once a shop order's payment settles, move the order to the
//! matching status (completed → paid, failed → failed, cancelled → cancelled).

use super::{Effects, Step};
use crate::Engine;
use paygate_common::domain::{EventKind, JobKind, NewEvent, OrderStatus, Payment};
use paygate_common::store::NewJob;

pub fn job(engine: &Engine, payment: &Payment) -> NewJob {
    NewJob::now(
        JobKind::UpdateOrder,
        payment.id,
        engine.retry.update_order.max_attempts,
    )
    .dedupe(format!("update_order:{}", payment.id))
}

pub async fn run(engine: &Engine, payment: &Payment) -> Step {
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
    if !order.status.can_become(target) {
        // Already moved (a repeated job) or moved by someone else: nothing to do.
        return Step::nothing();
    }
    Step::Done(Effects {
        order_status: Some((order_id, target)),
        events: vec![NewEvent::new(
            payment.id,
            EventKind::StatusChange,
            format!("order {order_id}: pending → {}", target.as_str()),
        )],
        ..Effects::default()
    })
}
