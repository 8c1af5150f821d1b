//! The payment domain: values, the state machine, events and job kinds.
//! Knows nothing of HTTP, SQL or Redis.

pub mod event;
pub mod job;
pub mod money;
pub mod notification;
pub mod order;
pub mod payment;
pub mod provider;
pub mod reactions;
pub mod refund;
pub mod status;

pub use event::{EventKind, NewEvent, PaymentEvent};
pub use job::{
    JobKind, JobMessage, JobPayload, JobStatus, NewJob, PayloadError, Priority, RefundArgs,
    RetryPolicies, RetryPolicy, VerifyArgs,
};
pub use money::{Amount, Currency, MoneyError};
pub use notification::{DeliverArgs, EventType, NotifyArgs, Subject};
pub use order::{Order, OrderChange, OrderStatus, PaymentType, ProductName};
pub use payment::{
    Description, FieldError, Payment, PaymentChange, PaymentId, UserIdentifier, EXPIRED,
    LATE_SETTLEMENT,
};
pub use provider::{Capabilities, Checkout, Descriptor, InboundMetric, Provider};
pub use refund::{Refund, RefundChange, RefundRefusal, RefundStatus};
pub use status::{IllegalTransition, Lang, PaymentStatus};
