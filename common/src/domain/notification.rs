//! Merchant notifications: which status changes a merchant hears about, under
//! which event name, and what the outbox job that announces one carries.
//! Pure: the fan-out and the HTTP delivery live in the worker.

use super::order::{OrderChange, OrderStatus};
use super::payment::PaymentChange;
use super::status::PaymentStatus;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The event types a merchant endpoint can subscribe to (the README lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "payment.processing")]
    PaymentProcessing,
    #[serde(rename = "payment.completed")]
    PaymentCompleted,
    #[serde(rename = "payment.failed")]
    PaymentFailed,
    #[serde(rename = "payment.cancelled")]
    PaymentCancelled,
    #[serde(rename = "payment.refunded")]
    PaymentRefunded,
    #[serde(rename = "order.paid")]
    OrderPaid,
    #[serde(rename = "order.cancelled")]
    OrderCancelled,
}

impl EventType {
    pub const ALL: [EventType; 7] = [
        EventType::PaymentProcessing,
        EventType::PaymentCompleted,
        EventType::PaymentFailed,
        EventType::PaymentCancelled,
        EventType::PaymentRefunded,
        EventType::OrderPaid,
        EventType::OrderCancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PaymentProcessing => "payment.processing",
            EventType::PaymentCompleted => "payment.completed",
            EventType::PaymentFailed => "payment.failed",
            EventType::PaymentCancelled => "payment.cancelled",
            EventType::PaymentRefunded => "payment.refunded",
            EventType::OrderPaid => "order.paid",
            EventType::OrderCancelled => "order.cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The event a payment's new status is announced with (`pending` is where
    /// every payment starts, so it is never announced).
    pub fn for_payment(status: PaymentStatus) -> Option<Self> {
        match status {
            PaymentStatus::Pending => None,
            PaymentStatus::Processing => Some(EventType::PaymentProcessing),
            PaymentStatus::Completed => Some(EventType::PaymentCompleted),
            PaymentStatus::Failed => Some(EventType::PaymentFailed),
            PaymentStatus::Cancelled => Some(EventType::PaymentCancelled),
            PaymentStatus::Refunded => Some(EventType::PaymentRefunded),
        }
    }

    /// The event an order's new status is announced with. A failed order is
    /// not an event of its own: its payment's `payment.failed` says it.
    pub fn for_order(status: OrderStatus) -> Option<Self> {
        match status {
            OrderStatus::Paid => Some(EventType::OrderPaid),
            OrderStatus::Cancelled => Some(EventType::OrderCancelled),
            OrderStatus::Pending | OrderStatus::Failed => None,
        }
    }

    pub fn names() -> String {
        Self::ALL.map(|e| e.as_str()).join(", ")
    }
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "subject", rename_all = "snake_case")]
pub enum Subject {
    /// A payment at the version its change produced (receivers order a
    /// payment's events by it).
    Payment {
        status: PaymentStatus,
        version: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status_reason: Option<String>,
    },
    /// A shop order that moved to `status`.
    Order { order_id: i64, status: OrderStatus },
}

/// The `notify` job's input: one event, fixed when the change that causes it
/// is written (its id and time are the event's, whenever the job runs).
// No `deny_unknown_fields`: serde does not support it beside `flatten`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyArgs {
    pub event_id: Uuid,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub at_ms: i64,
    #[serde(flatten)]
    pub subject: Subject,
}

impl NotifyArgs {
    /// The event a payment change announces, if any.
    pub fn for_payment_change(change: &PaymentChange) -> Option<Self> {
        let status = change.new_status?;
        Some(NotifyArgs {
            event_id: Uuid::now_v7(),
            event_type: EventType::for_payment(status)?,
            at_ms: chrono::Utc::now().timestamp_millis(),
            subject: Subject::Payment {
                status,
                // The applier moves the row from `expected_version` up by one.
                version: change.expected_version + 1,
                status_reason: change.status_reason.clone(),
            },
        })
    }

    /// The event an order change announces, if any.
    pub fn for_order_change(change: &OrderChange) -> Option<Self> {
        Some(NotifyArgs {
            event_id: Uuid::now_v7(),
            event_type: EventType::for_order(change.to)?,
            at_ms: chrono::Utc::now().timestamp_millis(),
            subject: Subject::Order {
                order_id: change.id,
                status: change.to,
            },
        })
    }

    /// One event per change: a job with the same key is the same job (a
    /// repeated or re-decided write announces nothing twice).
    pub fn dedupe_key(&self, payment: Option<super::PaymentId>) -> String {
        match &self.subject {
            Subject::Payment { version, .. } => format!(
                "notify:{}:{}:{version}",
                self.event_type.as_str(),
                payment.map(|p| p.to_string()).unwrap_or_default()
            ),
            Subject::Order { order_id, .. } => {
                format!("notify:{}:{order_id}", self.event_type.as_str())
            }
        }
    }
}

/// The `deliver_webhook` job's input: one message to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliverArgs {
    pub message_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_name_round_trips_and_matches_serde() {
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(e));
            assert_eq!(
                serde_json::to_value(e).unwrap(),
                serde_json::Value::String(e.as_str().into())
            );
        }
        assert_eq!(EventType::parse("payment.pending"), None);
    }

    #[test]
    fn every_announced_status_has_an_event() {
        assert_eq!(EventType::for_payment(PaymentStatus::Pending), None);
        for s in PaymentStatus::ALL
            .into_iter()
            .filter(|s| *s != PaymentStatus::Pending)
        {
            let e = EventType::for_payment(s).unwrap();
            assert_eq!(e.as_str(), format!("payment.{}", s.as_str()));
        }
        assert_eq!(
            EventType::for_order(OrderStatus::Paid),
            Some(EventType::OrderPaid)
        );
        assert_eq!(EventType::for_order(OrderStatus::Failed), None);
    }

    #[test]
    fn notify_args_round_trip_through_json() {
        let a = NotifyArgs {
            event_id: Uuid::now_v7(),
            event_type: EventType::PaymentCompleted,
            at_ms: 5,
            subject: Subject::Payment {
                status: PaymentStatus::Completed,
                version: 3,
                status_reason: None,
            },
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["type"], "payment.completed");
        assert_eq!(v["version"], 3);
        assert_eq!(serde_json::from_value::<NotifyArgs>(v).unwrap(), a);
        let o =
            NotifyArgs::for_order_change(&OrderChange::from_pending(9, OrderStatus::Paid).unwrap())
                .unwrap();
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(serde_json::from_value::<NotifyArgs>(v).unwrap(), o);
        assert_eq!(o.dedupe_key(None), "notify:order.paid:9");
    }
}
