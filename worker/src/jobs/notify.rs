//! `notify`: the outbox's reader. Written by the status-change hook
//! (`domain::reactions`) in the same commit as a payment's or order's move,
//! it freezes the event's body, writes one message per subscribed endpoint
//! and queues one delivery job per message. Idempotent: a rerun writes no
//! second message (one per event and endpoint) and no second job (dedupe).

use super::{wrong_payload, Effects, JobHandler, Step};
use crate::Engine;
use async_trait::async_trait;
use paygate_common::domain::{
    DeliverArgs, JobPayload, NewJob, NotifyArgs, Order, Payment, PaymentId, Subject,
};
use serde_json::{json, Value};

pub struct Notify;

#[async_trait]
impl JobHandler for Notify {
    async fn run(&self, engine: &Engine, payment: Option<&Payment>, payload: &JobPayload) -> Step {
        match payload {
            JobPayload::Notify(args) => run(engine, payment, args).await,
            other => wrong_payload(other),
        }
    }
    fn exhausted_reason(&self) -> &'static str {
        "notification_unavailable"
    }
    /// The change it announces has happened; giving up on telling the
    /// merchant must not touch it (the dead job can be redriven).
    fn give_up(&self, _: Option<&Payment>, _: &str, _: &str) -> Effects {
        Effects::default()
    }
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The Standard Webhooks body: `type`, `timestamp`, `data`.
pub fn body(args: &NotifyArgs, data: Value) -> Value {
    json!({
        "type": args.event_type.as_str(),
        "timestamp": time(args.at_ms),
        "data": data,
    })
}

/// A payment at the version of the event. No payer data: the merchant
/// already holds it, and bodies are stored.
fn payment_data(args: &NotifyArgs, p: &Payment) -> Option<Value> {
    let Subject::Payment {
        status,
        version,
        status_reason,
    } = &args.subject
    else {
        return None;
    };
    Some(json!({
        "event_id": args.event_id,
        "payment_id": p.id,
        "provider": p.provider.as_str(),
        "status": status.as_str(),
        "status_reason": status_reason,
        "version": version,
        "amount": p.amount.minor(),
        "currency": p.currency.code(),
        "order_id": p.order_id,
        "created_at": p.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }))
}

fn order_data(args: &NotifyArgs, o: &Order) -> Value {
    json!({
        "event_id": args.event_id,
        "order_id": o.id,
        "status": o.status.as_str(),
        "payment_id": o.payment_id,
        "payment_type": o.payment_type,
        "amount": o.amount.minor(),
    })
}

async fn run(engine: &Engine, payment: Option<&Payment>, args: &NotifyArgs) -> Step {
    let (data, payment_id): (Value, Option<PaymentId>) = match &args.subject {
        Subject::Payment { .. } => {
            match payment.and_then(|p| payment_data(args, p).map(|d| (d, p.id))) {
                Some((d, id)) => (d, Some(id)),
                None => return super::missing_payment(),
            }
        }
        Subject::Order { order_id, status } => match engine.store.order(*order_id).await {
            Ok(Some(o)) if o.status == *status => (order_data(args, &o), o.payment_id),
            // The move did not land (the order had moved on), or a later move
            // superseded it before we ran: nothing to announce.
            Ok(Some(_)) | Ok(None) => return Step::nothing(),
            Err(e) => return Step::retry(format!("loading the order failed: {e}")),
        },
    };
    let endpoints = match engine.store.webhook_endpoints().await {
        Ok(list) => list,
        Err(e) => return Step::retry(format!("loading webhook endpoints failed: {e}")),
    };
    let ids: Vec<String> = endpoints
        .iter()
        .filter(|e| e.enabled && e.wants(args.event_type))
        .map(|e| e.id.clone())
        .collect();
    if ids.is_empty() {
        return Step::nothing();
    }
    let body = body(args, data).to_string();
    let messages = match engine
        .store
        .fan_out_webhook_event(
            &args.event_id.to_string(),
            args.event_type,
            payment_id,
            &body,
            &ids,
        )
        .await
    {
        Ok(m) => m,
        Err(e) => return Step::retry(format!("writing webhook messages failed: {e}")),
    };
    let next = messages
        .into_iter()
        .map(|message_id| {
            let key = format!("deliver:{message_id}:0");
            NewJob::new(
                JobPayload::DeliverWebhook(DeliverArgs { message_id }),
                None,
                &engine.retry,
            )
            .dedupe(key)
        })
        .collect();
    Step::Done(Effects {
        next,
        ..Effects::default()
    })
}
