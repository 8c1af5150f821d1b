//! One atomic write. Every change paygate makes to its data — creating a
//! payment or an order, recording a gateway's call, finishing a job attempt,
//! settling a payment inside a gateway's request — is a [`Changeset`]: the
//! parts it touches, committed all-or-nothing by one applier per database
//! (`apply_sqlite.rs`: a transaction; `apply_pg.rs`: one statement).
//!
//! A changeset has one origin (the API, a gateway's call, or a job attempt)
//! and its conditions are checked before anything is written:
//! - a payment change applies only at the version and status it was built
//!   from ([`StoreError::Conflict`] otherwise);
//! - a gateway transaction update only at its version, and a new one only if
//!   its gateway id is new (`Conflict` otherwise);
//! - a job attempt finishes only while the claim is still ours
//!   ([`StoreError::LeaseLost`]);
//! - a gateway's call is recorded once per dedupe key ([`Committed::Duplicate`]).
//!
//! Payment status changes go through [`Changeset::change_payment`], which
//! adds the follow-up work the change calls for (see
//! [`crate::domain::reactions`]) to the same write, whoever makes it.

use super::jobs::{ClaimedJob, JobResult};
use crate::domain::RefundChange;
use crate::domain::{
    reactions, JobMessage, NewEvent, NewJob, Order, OrderChange, Payment, PaymentChange,
    RetryPolicies,
};
use crate::store::{NewInbound, NewOrder, NewPayment, NewRefund};

/// Where a changeset comes from; each origin has its own gate.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A client of the API (create a payment or an order).
    Api,
    /// A gateway's call, stored verbatim; a repeat of its dedupe key changes nothing.
    Inbound(NewInbound),
    /// A job attempt ending; applies only while the claim is still ours.
    Job(Fence),
}

/// The claim a finishing attempt must still hold, and how the attempt ends.
#[derive(Debug, Clone)]
pub struct Fence {
    pub job_id: uuid::Uuid,
    pub worker: String,
    pub attempt: u32,
    pub result: JobResult,
}

/// A gateway's own transaction (Payme, Click), written with the change it causes.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayTxnWrite {
    pub provider: crate::domain::Provider,
    /// The gateway's id of the transaction (Payme `id`, Click `click_trans_id`).
    pub external_id: String,
    pub payment_id: crate::domain::PaymentId,
    /// The protocol's own state, as text (Payme `1`, `2`, `-1`, `-2`; Click's names).
    pub state: String,
    pub amount_minor: i64,
    /// The gateway's own time of the transaction, ms.
    pub external_time_ms: Option<i64>,
    /// Provider-specific facts (times, reasons, fiscal data).
    pub data: serde_json::Value,
    /// `None` inserts a new row (its gateway id must be new); `Some(v)` updates
    /// the row that is still at version `v`.
    pub expected_version: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Changeset {
    pub(crate) origin: Origin,
    pub(crate) order: Option<NewOrder>,
    pub(crate) payment: Option<NewPayment>,
    pub(crate) change: Option<PaymentChange>,
    pub(crate) order_status: Option<OrderChange>,
    /// At most one new and one updated gateway transaction per write (e.g.
    /// Payme: the expired transaction that held an order, and the new one).
    pub(crate) gateway_txn_new: Option<GatewayTxnWrite>,
    pub(crate) gateway_txn_update: Option<GatewayTxnWrite>,
    /// Set when a second write of the same kind was added: committing refuses.
    pub(crate) overfull: bool,
    pub(crate) events: Vec<NewEvent>,
    pub(crate) jobs: Vec<NewJob>,
    /// A refund asked for (inserted `requested`).
    pub(crate) refund_new: Option<NewRefund>,
    /// A refund moving; a gate like the payment's expected version: it
    /// applies only while the refund is still in `from` (`Conflict` otherwise).
    pub(crate) refund_change: Option<RefundChange>,
    /// One of `jobs` that the finishing attempt's worker claims as it inserts
    /// it (a job's origin only): [`Changeset::claiming_next`].
    pub(crate) claim_next: Option<NextClaim>,
    /// Who claims `claim_next` when the origin is the API:
    /// [`Changeset::claimed_by`].
    pub(crate) claimant: Option<String>,
    /// One of `jobs` whose work the finishing attempt did itself, inserted
    /// already succeeded (a job's origin only): [`Changeset::ran_inside`].
    pub(crate) ran_inside: Option<uuid::Uuid>,
}

/// The next job a finishing attempt takes for its own worker, and until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextClaim {
    pub job_id: uuid::Uuid,
    pub lease_until_ms: i64,
}

/// What a committed changeset produced.
#[derive(Debug)]
pub enum Committed {
    /// Boxed: it carries the new payment and order rows, and a duplicate nothing.
    Applied(Box<Applied>),
    /// The gateway's call was recorded before: nothing changed.
    Duplicate,
}

#[derive(Debug, Default)]
pub struct Applied {
    /// The payment the changeset created, as stored.
    pub payment: Option<Payment>,
    /// The payment the changeset changed, as stored after the change, when
    /// the statement returns it: SQLite always, PostgreSQL for a job's finish
    /// and a gateway's call (the shapes with their own statement). `None`
    /// means read it. It saves the read a waiting client and a chained job
    /// would make right after (docs/priority.md, "The finish hands on the
    /// payment").
    pub changed: Option<Payment>,
    /// The order the changeset created, as stored.
    pub order: Option<Order>,
    /// The id of the gateway transaction row written, if any.
    pub gateway_txn_id: Option<i64>,
    /// Jobs that are due now: push these to the queue.
    pub messages: Vec<JobMessage>,
    /// The job the finishing attempt claimed for its worker, when it was
    /// inserted (a job with its dedupe key existed already: `None`).
    pub claimed_next: Option<uuid::Uuid>,
}

impl Changeset {
    fn with_origin(origin: Origin) -> Self {
        Changeset {
            origin,
            order: None,
            payment: None,
            change: None,
            order_status: None,
            gateway_txn_new: None,
            gateway_txn_update: None,
            overfull: false,
            events: Vec::new(),
            jobs: Vec::new(),
            refund_new: None,
            refund_change: None,
            claim_next: None,
            claimant: None,
            ran_inside: None,
        }
    }

    pub fn from_api() -> Self {
        Self::with_origin(Origin::Api)
    }

    pub fn from_inbound(message: NewInbound) -> Self {
        Self::with_origin(Origin::Inbound(message))
    }

    /// Ends `claim`'s attempt with `result`.
    pub fn finishing(claim: &ClaimedJob, result: JobResult) -> Self {
        Self::with_origin(Origin::Job(Fence {
            job_id: claim.id,
            worker: claim.worker.clone(),
            attempt: claim.attempt,
            result,
        }))
    }

    pub fn create_payment(mut self, payment: NewPayment) -> Self {
        self.payment = Some(payment);
        self
    }

    /// Creates the order and its payment together; the payment's merchant
    /// reference and order id become the new order's id.
    pub fn create_order(mut self, order: NewOrder, payment: NewPayment) -> Self {
        self.order = Some(order);
        self.payment = Some(payment);
        self
    }

    /// Changes a payment (checked by the state machine when `change` was
    /// built from it) and adds the follow-up jobs the change calls for.
    pub fn change_payment(mut self, change: PaymentChange, policies: &RetryPolicies) -> Self {
        self.jobs.extend(reactions::follow_ups(&change, policies));
        self.change = Some(change);
        self
    }

    /// Moves an order (one that already moved on stays as it is) and adds
    /// the follow-up jobs the move calls for (the merchant's notification).
    pub fn order_status(mut self, change: OrderChange, policies: &RetryPolicies) -> Self {
        self.jobs
            .extend(reactions::order_follow_ups(&change, policies));
        self.order_status = Some(change);
        self
    }

    /// Writes a gateway transaction: a new one (`expected_version: None`) or
    /// an update. One of each per changeset; a second of the same kind makes
    /// the commit fail rather than drop one.
    pub fn gateway_txn(mut self, txn: GatewayTxnWrite) -> Self {
        let slot = match txn.expected_version {
            None => &mut self.gateway_txn_new,
            Some(_) => &mut self.gateway_txn_update,
        };
        if slot.is_some() {
            self.overfull = true;
        }
        *slot = Some(txn);
        self
    }

    /// Inserts a refund (one per changeset).
    pub fn create_refund(mut self, refund: NewRefund) -> Self {
        self.refund_new = Some(refund);
        self
    }

    /// Moves a refund (built by its state machine, `Refund::change`).
    pub fn change_refund(mut self, change: RefundChange) -> Self {
        self.refund_change = Some(change);
        self
    }

    pub fn event(mut self, event: NewEvent) -> Self {
        self.events.push(event);
        self
    }

    pub fn events(mut self, events: impl IntoIterator<Item = NewEvent>) -> Self {
        self.events.extend(events);
        self
    }

    pub fn job(mut self, job: NewJob) -> Self {
        self.jobs.push(job);
        self
    }

    pub fn jobs(mut self, jobs: impl IntoIterator<Item = NewJob>) -> Self {
        self.jobs.extend(jobs);
        self
    }

    /// Inserts the job `claim.job_id` of this changeset's jobs already
    /// claimed by the finishing attempt's worker (attempt 1, leased until
    /// `claim.lease_until_ms`) instead of queued: the worker runs it next
    /// without a queue message or a claim of its own (PERFORMANCE.md,
    /// "Claiming the next job in the finish"). Only a job's finish can claim;
    /// on any other origin the job is inserted queued.
    pub fn claiming_next(mut self, claim: NextClaim) -> Self {
        self.claim_next = Some(claim);
        self
    }

    /// Inserts the job `claim.job_id` of an API write's jobs already claimed
    /// by `claimant` (attempt 1, leased until `claim.lease_until_ms`): the
    /// process that answers a waiting client runs it itself, without a queue
    /// message or a claim of its own (docs/priority.md, "The waited job runs
    /// where its client waits"). If that process dies, the lease expires and
    /// the sweeper dispatches the job like any whose worker went away. Only
    /// the API origin takes a claimant; on any other the job is queued.
    pub fn claimed_by(mut self, claimant: impl Into<String>, claim: NextClaim) -> Self {
        self.claimant = Some(claimant.into());
        self.claim_next = Some(claim);
        self
    }

    /// Inserts the job `job_id` of this changeset's jobs as already
    /// succeeded (attempt 1, finished now, no queue message): the finishing
    /// attempt ran that job's work too, and this one write records both
    /// (docs/priority.md, "The invoice runs inside the user fetch"). The
    /// job's row stays in the ledger like any other's, and its dedupe key
    /// still keeps a second one out. Only a job's finish can do this; on any
    /// other origin the job is inserted queued.
    pub fn ran_inside(mut self, job_id: uuid::Uuid) -> Self {
        self.ran_inside = Some(job_id);
        self
    }

    /// `job` is the one the finishing attempt ran inside itself.
    pub(crate) fn ran_inside_this(&self, job: &NewJob) -> bool {
        matches!(self.origin, Origin::Job(_)) && self.ran_inside == Some(job.id)
    }

    /// The claim `job` is inserted under, if it is the claimed job: the
    /// finishing worker's (or the API's claimant's) name and the lease's end.
    pub(crate) fn claim_of(&self, job: &NewJob) -> Option<(&str, i64)> {
        match (&self.origin, self.claim_next, &self.claimant) {
            (Origin::Job(fence), Some(c), _) if c.job_id == job.id => {
                Some((fence.worker.as_str(), c.lease_until_ms))
            }
            (Origin::Api, Some(c), Some(claimant)) if c.job_id == job.id => {
                Some((claimant.as_str(), c.lease_until_ms))
            }
            _ => None,
        }
    }

    /// The existing payment this write changes, if any (whose waiters to wake
    /// once it is committed: `crate::payment_watch`).
    pub fn changed_payment(&self) -> Option<crate::domain::PaymentId> {
        self.change.as_ref().map(|c| c.id)
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        Amount, Currency, Description, JobKind, PaymentId, PaymentStatus, Provider,
    };

    fn payment(order_id: Option<i64>, status: PaymentStatus) -> Payment {
        let now = chrono::Utc::now();
        Payment {
            id: PaymentId::new(),
            provider: Provider::Atmos,
            merchant_ref: "1".into(),
            amount: Amount::from_minor(5000).unwrap(),
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
            order_id,
            created_at: now,
            updated_at: now,
            completed_at: None,
            version: 4,
        }
    }

    #[test]
    fn settling_a_shop_payment_brings_its_order_update_along() {
        let p = payment(Some(7), PaymentStatus::Processing);
        let change = p.change().status(PaymentStatus::Completed, None).unwrap();
        let cs = Changeset::from_api().change_payment(change, &RetryPolicies::default());
        assert_eq!(cs.jobs.len(), 2);
        assert_eq!(cs.jobs[0].kind(), JobKind::UpdateOrder);
        assert_eq!(cs.jobs[1].kind(), JobKind::Notify);
        assert_eq!(
            cs.jobs[1].dedupe_key.as_deref(),
            Some(format!("notify:payment.completed:{}:5", p.id).as_str())
        );
        assert_eq!(cs.jobs[0].payment_id, Some(p.id));
        assert_eq!(
            cs.jobs[0].dedupe_key.as_deref(),
            Some(format!("update_order:{}", p.id).as_str())
        );
        assert_eq!(cs.change.as_ref().unwrap().expected_version, 4);
    }

    #[test]
    fn a_late_settlement_brings_its_own_order_update() {
        let p = payment(Some(7), PaymentStatus::Cancelled);
        let change = p.change().settle_late().unwrap();
        let cs = Changeset::from_api().change_payment(change, &RetryPolicies::default());
        // The order's update under its own key, and the merchant's notification.
        let kinds: Vec<JobKind> = cs.jobs.iter().map(|j| j.kind()).collect();
        assert_eq!(kinds, [JobKind::UpdateOrder, JobKind::Notify]);
        assert_eq!(
            cs.jobs[0].dedupe_key.as_deref(),
            Some(format!("update_order:{}:late", p.id).as_str())
        );
    }

    #[test]
    fn changes_that_settle_nothing_bring_no_follow_ups() {
        let p = payment(Some(7), PaymentStatus::Pending);
        let change = p.change().status(PaymentStatus::Processing, None).unwrap();
        let cs = Changeset::from_api().change_payment(change, &RetryPolicies::default());
        // Only the merchant's notification.
        assert_eq!(cs.jobs.len(), 1);
        assert_eq!(cs.jobs[0].kind(), JobKind::Notify);
        // A payment without an order has no order to update.
        let p = payment(None, PaymentStatus::Processing);
        let change = p.change().status(PaymentStatus::Failed, Some("x")).unwrap();
        let cs = Changeset::from_api().change_payment(change, &RetryPolicies::default());
        assert!(cs.jobs.iter().all(|j| j.kind() == JobKind::Notify));
        // A change that moves no status announces nothing.
        let p = payment(None, PaymentStatus::Processing);
        let change = p.change().tracking_code("t".into());
        let cs = Changeset::from_api().change_payment(change, &RetryPolicies::default());
        assert!(cs.jobs.is_empty());
    }

    #[test]
    fn an_order_move_brings_its_notification_along() {
        let change = OrderChange::from_pending(7, crate::domain::OrderStatus::Paid).unwrap();
        let cs = Changeset::from_api().order_status(change, &RetryPolicies::default());
        assert_eq!(cs.jobs.len(), 1);
        assert_eq!(cs.jobs[0].kind(), JobKind::Notify);
        assert_eq!(
            cs.jobs[0].dedupe_key.as_deref(),
            Some("notify:order.paid:7")
        );
    }
}
