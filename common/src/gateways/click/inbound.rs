//! Click's Prepare and Complete (`POST /click/prepare/`, `/click/complete/`,
//! and `/click/`): the [`InboundAdapter`] that joins the pure pieces
//! ([`protocol`], [`rules`]) to the store (docs/gateways/click.md, "State
//! rules"; "What paygate decided").
//!
//! The three routes behave the same: the body's `action` says which call it
//! is, so a cabinet may register one URL twice or two URLs.
//!
//! Every call is stored verbatim under its own key (`call:<uuid v7>`: Click's
//! calls carry no id that tells a repeat from a retry worth answering), in
//! the same write as its effect and an event on the payment's activity log:
//! - a new Prepare inserts the attempt (a gateway transaction keyed by
//!   `click_trans_id`, its [`rules::ClickPrepare`] as `data`) and touches the
//!   payment (a change without a new status bumps its version, so concurrent
//!   calls for one order serialize; a payment still `pending` moves to
//!   `processing`). Its answer carries the new row's id as
//!   `merchant_prepare_id`, which exists only once committed:
//!   [`InboundAdapter::committed`] adds it;
//! - Complete moves the attempt to `completed`, the payment `processing →
//!   completed` and the order `pending → paid`, all in one write;
//! - Click's failure (`error < 0`) moves the attempt to `cancelled` and leaves
//!   the order pending and the payment processing, so the payer can try again
//!   (Click starts a new attempt).
//!
//! A write that loses a race (the payment or the attempt moved, or the
//! attempt was inserted meanwhile) is a conflict: the generic path decides
//! again from fresh state, so a concurrent repeat gets the answer the stored
//! state gives (the same `merchant_prepare_id`; -4 after a Complete). When
//! the store fails, Click gets -7 with HTTP 200, never a success.

use super::protocol::{self, Action, Answer, ErrorCode, Rejection, Verified};
use super::rules::{self, ClickPrepare, Effect, NewClickPrepare, OrderFacts, OrderState};
use crate::domain::{
    EventKind, NewEvent, Order, OrderChange, OrderStatus, Payment, PaymentId, PaymentStatus,
    Provider, RetryPolicies,
};
use crate::gateways::inbound::{
    refusal_key, Decision, InboundAdapter, InboundContext, InboundReply, InboundRequest,
    InboundRoute,
};
use crate::store::{
    Applied, Changeset, GatewayTxn, GatewayTxnWrite, NewInbound, Store, StoreError,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// What Prepare and Complete are judged with.
pub struct ClickShop {
    pub service_id: i64,
    /// `CLICK_SECRET_KEY`.
    pub secret_key: String,
}

/// The routes; all three branch on `action`.
pub const ROUTES: &[InboundRoute] = &[
    InboundRoute {
        path: "/click/prepare/",
        get: false,
        post: true,
    },
    InboundRoute {
        path: "/click/complete/",
        get: false,
        post: true,
    },
    InboundRoute {
        path: "/click/",
        get: false,
        post: true,
    },
];

/// An attempt's `data` column: the [`ClickPrepare`] without what the row
/// itself holds (`id`, `state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PrepareData {
    #[serde(flatten)]
    attempt: NewClickPrepare,
    #[serde(default)]
    click_error: Option<i32>,
}

/// The stored attempt as the rules see it.
pub fn prepare_of(txn: &GatewayTxn) -> Result<ClickPrepare, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("click attempt {}: {what}", txn.id));
    let state = rules::PrepareState::parse(&txn.state).ok_or_else(|| corrupt("state"))?;
    let data: PrepareData =
        serde_json::from_value(txn.data.clone()).map_err(|_| corrupt("data"))?;
    Ok(ClickPrepare {
        state,
        click_error: data.click_error,
        ..data.attempt.with_id(txn.id)
    })
}

fn data_of(p: &ClickPrepare) -> Value {
    let data = PrepareData {
        attempt: NewClickPrepare {
            click_trans_id: p.click_trans_id,
            click_paydoc_id: p.click_paydoc_id,
            order_id: p.order_id,
            merchant_trans_id: p.merchant_trans_id.clone(),
            amount_tiyin: p.amount_tiyin,
        },
        click_error: p.click_error,
    };
    serde_json::to_value(data).unwrap_or(Value::Null)
}

/// How the rules see an order: its own status, or its payment's when that
/// settled first (the order follows its payment through a job).
pub fn order_state(order: OrderStatus, payment: PaymentStatus) -> OrderState {
    match (order, payment) {
        (OrderStatus::Paid, _) => OrderState::Paid,
        (OrderStatus::Failed | OrderStatus::Cancelled, _) => OrderState::Cancelled,
        (OrderStatus::Pending, PaymentStatus::Completed) => OrderState::Paid,
        (
            OrderStatus::Pending,
            PaymentStatus::Failed | PaymentStatus::Cancelled | PaymentStatus::Refunded,
        ) => OrderState::Cancelled,
        (OrderStatus::Pending, PaymentStatus::Pending | PaymentStatus::Processing) => {
            OrderState::Pending
        }
    }
}

/// What was read for one call.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The order (a Click order: one paid by a Click payment) and its payment.
    pub order: Option<(Order, Payment)>,
    /// The attempt's row and its reading.
    pub prepare: Option<(GatewayTxn, ClickPrepare)>,
}

impl Loaded {
    fn facts(&self) -> rules::Facts {
        rules::Facts {
            order: self.order.as_ref().map(|(o, p)| OrderFacts {
                id: o.id,
                amount_tiyin: o.amount.minor(),
                state: order_state(o.status, p.status),
            }),
            prepare: self.prepare.as_ref().map(|(_, p)| p.clone()),
        }
    }

    fn payment(&self) -> Option<&Payment> {
        self.order.as_ref().map(|(_, p)| p)
    }
}

/// The order `id` names, with its payment, if Click pays it.
async fn click_order(store: &Store, id: i64) -> Result<Option<(Order, Payment)>, StoreError> {
    let Some(order) = store.order(id).await? else {
        return Ok(None);
    };
    let Some(payment_id) = order.payment_id else {
        return Ok(None);
    };
    Ok(store
        .payment(payment_id)
        .await?
        .filter(|p| p.provider == Provider::Click)
        .map(|p| (order, p)))
}

/// The attempt Click names: by `click_trans_id` (Prepare) or by our
/// `merchant_prepare_id` (Complete).
async fn attempt(
    store: &Store,
    v: &Verified,
) -> Result<Option<(GatewayTxn, ClickPrepare)>, StoreError> {
    let txn = match v.action {
        Action::Prepare => {
            store
                .gateway_txn(Provider::Click, &v.fields.click_trans_id.to_string())
                .await?
        }
        Action::Complete {
            merchant_prepare_id,
        } => {
            store
                .gateway_txn_by_id(Provider::Click, merchant_prepare_id)
                .await?
        }
    };
    txn.map(|t| prepare_of(&t).map(|p| (t, p))).transpose()
}

/// Prepare: the order `merchant_trans_id` names, then the attempt by
/// `click_trans_id`. Complete: the attempt by `merchant_prepare_id`, its
/// order, then the attempt again.
///
/// The reads are separate statements, so the attempt is always (also) read
/// after the order: a Complete committed between the reads then shows in the
/// attempt whenever it shows in the payment, and a concurrent repeat is
/// answered as a repeat of this attempt (-4 with its `merchant_confirm_id`),
/// not as an order paid by another one.
async fn load(store: &Store, v: &Verified) -> Result<Loaded, StoreError> {
    let order_id = match v.action {
        Action::Prepare => v.fields.order_id(),
        Action::Complete { .. } => attempt(store, v).await?.map(|(_, p)| p.order_id),
    };
    let order = match order_id {
        Some(id) => click_order(store, id).await?,
        None => None,
    };
    let prepare = attempt(store, v).await?;
    Ok(Loaded { order, prepare })
}

fn reply(answer: &Answer) -> InboundReply {
    InboundReply::ok(serde_json::to_value(answer).unwrap_or(Value::Null))
}

fn message(
    req: &InboundRequest,
    payment: Option<PaymentId>,
    key: String,
    outcome: String,
) -> NewInbound {
    NewInbound {
        provider: Provider::Click,
        dedupe_key: key,
        payment_id: payment,
        method: req.method.clone(),
        query: req.query.clone(),
        headers: req.headers.clone(),
        body: req.body_text(),
        outcome,
    }
}

/// A call refused before any decision (malformed, or not signed by Click):
/// stored under its own key, answered with Click's error.
fn rejected(req: &InboundRequest, rejection: &Rejection, outcome: &'static str) -> Decision {
    let write =
        Changeset::from_inbound(message(req, None, refusal_key(outcome), outcome.to_owned()));
    Decision::refuse(Some(write), outcome, reply(&rejection.answer()), None)
}

/// The event on the payment's log: what Click said and what we answered
/// (never the signature).
fn call_event(payment: PaymentId, v: &Verified, answer: &Answer) -> NewEvent {
    let (name, prepare_id) = match v.action {
        Action::Prepare => ("Prepare", None),
        Action::Complete {
            merchant_prepare_id,
        } => ("Complete", Some(merchant_prepare_id)),
    };
    NewEvent::new(
        payment,
        EventKind::Webhook,
        format!(
            "Click {name}: answered {} ({})",
            answer.error, answer.error_note
        ),
    )
    .detail(json!({
        "action": v.raw.action,
        "click_trans_id": v.fields.click_trans_id,
        "click_paydoc_id": v.fields.click_paydoc_id,
        "merchant_trans_id": v.fields.merchant_trans_id,
        "merchant_prepare_id": prepare_id,
        "amount": v.raw.amount,
        "click_error": v.fields.click_error,
        "click_error_note": v.fields.error_note,
        "answer": answer.error,
    }))
}

fn attempt_update(txn: &GatewayTxn, p: &ClickPrepare) -> GatewayTxnWrite {
    GatewayTxnWrite {
        provider: Provider::Click,
        external_id: txn.external_id.clone(),
        payment_id: txn.payment_id,
        state: p.state.as_str().to_owned(),
        amount_minor: p.amount_tiyin,
        external_time_ms: None,
        data: data_of(p),
        expected_version: Some(txn.version),
    }
}

/// Turns the rules' decision into one write and the answer. Pure.
pub fn plan(
    req: &InboundRequest,
    v: &Verified,
    loaded: &Loaded,
    decision: rules::Decision,
    retry: &RetryPolicies,
) -> Decision {
    let rules::Decision { answer, effect } = decision;
    // The payment the call is about: the order's, or (for an attempt whose
    // order is gone) the attempt's.
    let payment_id = loaded
        .payment()
        .map(|p| p.id)
        .or_else(|| loaded.prepare.as_ref().map(|(t, _)| t.payment_id));
    let mut write = Changeset::from_inbound(message(
        req,
        payment_id,
        format!("call:{}", uuid::Uuid::now_v7()),
        outcome_text(&answer),
    ));
    match effect {
        Effect::None => {}
        Effect::RecordPrepare(new) => {
            let Some(payment) = loaded.payment() else {
                // The rules record an attempt only for an order we loaded.
                return failed(req, v, payment_id);
            };
            let touch = if payment.status == PaymentStatus::Pending {
                payment.change().status(PaymentStatus::Processing, None)
            } else {
                Ok(payment.change())
            };
            let Ok(touch) = touch else {
                return failed(req, v, payment_id);
            };
            if touch.new_status.is_some() {
                write = write.event(NewEvent::new(
                    payment.id,
                    EventKind::StatusChange,
                    "pending → processing",
                ));
            }
            let prepared = new.with_id(0);
            write = write
                .change_payment(touch, retry)
                .gateway_txn(GatewayTxnWrite {
                    provider: Provider::Click,
                    external_id: prepared.click_trans_id.to_string(),
                    payment_id: payment.id,
                    state: prepared.state.as_str().to_owned(),
                    amount_minor: prepared.amount_tiyin,
                    external_time_ms: None,
                    data: data_of(&prepared),
                    expected_version: None,
                });
        }
        Effect::Complete { order_id, .. } => {
            let (Some((txn, prepare)), Some(payment)) = (&loaded.prepare, loaded.payment()) else {
                return failed(req, v, payment_id);
            };
            let paid = payment
                .change()
                .status(PaymentStatus::Completed, None)
                .map(|c| {
                    c.gateway_trans_id(prepare.click_trans_id.to_string())
                        .tracking_code(prepare.click_paydoc_id.to_string())
                });
            let Ok(paid) = paid else {
                return failed(req, v, payment_id);
            };
            let completed = ClickPrepare {
                state: rules::PrepareState::Completed,
                ..prepare.clone()
            };
            write = write
                .change_payment(paid, retry)
                .gateway_txn(attempt_update(txn, &completed))
                .event(NewEvent::new(
                    payment.id,
                    EventKind::StatusChange,
                    format!("{} → completed", payment.status),
                ));
            if let Some(change) = OrderChange::from_pending(order_id, OrderStatus::Paid) {
                write = write.order_status(change, retry);
            }
        }
        Effect::Cancel { click_error, .. } => {
            let Some((txn, prepare)) = &loaded.prepare else {
                return failed(req, v, payment_id);
            };
            let cancelled = ClickPrepare {
                state: rules::PrepareState::Cancelled,
                click_error: Some(click_error),
                ..prepare.clone()
            };
            write = write.gateway_txn(attempt_update(txn, &cancelled));
        }
    }
    if let Some(p) = payment_id {
        write = write.event(call_event(p, v, &answer));
    }
    // A new attempt's `merchant_prepare_id` comes with the commit (`committed`).
    let outcome = if answer.error == 0 {
        "accepted"
    } else {
        "refused"
    };
    let reply = reply(&answer);
    Decision {
        write: Some(write),
        on_duplicate: reply.clone(),
        reply,
        outcome,
        payment_id,
    }
}

fn outcome_text(answer: &Answer) -> String {
    if answer.error == 0 {
        "accepted".to_owned()
    } else {
        format!("refused:{}", answer.error)
    }
}

/// A state the rules' decision cannot be written from (e.g. a payment that
/// moved where the state machine allows no step): -7, the call stored.
fn failed(req: &InboundRequest, v: &Verified, payment_id: Option<PaymentId>) -> Decision {
    let answer = Answer::failed_to_update(v);
    let write = Changeset::from_inbound(message(
        req,
        payment_id,
        refusal_key("refused"),
        outcome_text(&answer),
    ));
    Decision::refuse(Some(write), "refused", reply(&answer), payment_id)
}

/// A successful Prepare answer still waiting for its `merchant_prepare_id`.
fn awaits_prepare_id(body: &Value) -> bool {
    body.get("error").and_then(Value::as_i64) == Some(0)
        && body.get("merchant_prepare_id").is_none()
        && body.get("merchant_confirm_id").is_none()
}

#[async_trait]
impl InboundAdapter for ClickShop {
    fn provider(&self) -> Provider {
        Provider::Click
    }

    fn routes(&self) -> &'static [InboundRoute] {
        ROUTES
    }

    async fn decide(
        &self,
        ctx: &InboundContext<'_>,
        req: &InboundRequest,
    ) -> Result<Decision, StoreError> {
        let request = match protocol::parse_form(&req.body) {
            Ok(r) => r,
            Err(rejection) => return Ok(rejected(req, &rejection, "invalid")),
        };
        let verified = match protocol::authenticate(request, &self.secret_key, self.service_id) {
            Ok(v) => v,
            Err(rejection) => return Ok(rejected(req, &rejection, "bad_signature")),
        };
        let loaded = load(ctx.store, &verified).await?;
        let decision = rules::decide(&verified, &loaded.facts());
        Ok(plan(req, &verified, &loaded, decision, ctx.retry))
    }

    /// A new attempt's `merchant_prepare_id` is the id of the row the commit
    /// inserted; every other answer was complete before the commit.
    fn committed(&self, reply: InboundReply, applied: &Applied) -> InboundReply {
        match (reply, applied.gateway_txn_id) {
            (InboundReply::Json { status, mut body }, Some(id)) if awaits_prepare_id(&body) => {
                body["merchant_prepare_id"] = json!(id);
                InboundReply::Json { status, body }
            }
            (reply, _) => reply,
        }
    }

    /// -7 with HTTP 200 (Click reads only the JSON), echoing what is readable.
    fn unavailable(&self, req: &InboundRequest) -> InboundReply {
        let answer = match protocol::parse_form(&req.body) {
            Ok(r) => Answer::failed_to_update(&r),
            Err(rejection) => Rejection {
                code: ErrorCode::FailedToUpdate,
                ..rejection
            }
            .answer(),
        };
        reply(&answer)
    }
}

#[cfg(test)]
mod tests {
    use super::super::protocol::tests::{body, verified, SECRET, SERVICE_ID};
    use super::*;
    use crate::domain::{Amount, Currency, Description, PaymentType, ProductName};
    use crate::store::Origin;
    use chrono::Utc;

    fn adapter() -> ClickShop {
        ClickShop {
            service_id: SERVICE_ID,
            secret_key: SECRET.into(),
        }
    }

    fn payment(status: PaymentStatus) -> Payment {
        let now = Utc::now();
        Payment {
            id: PaymentId::new(),
            provider: Provider::Click,
            merchant_ref: "197".into(),
            amount: Amount::from_minor(500_000).unwrap(),
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
            order_id: Some(197),
            created_at: now,
            updated_at: now,
            completed_at: None,
            version: 3,
        }
    }

    fn order(status: OrderStatus, payment: &Payment) -> Order {
        Order {
            id: 197,
            product_name: ProductName::parse("Test Product").unwrap(),
            amount: payment.amount,
            payment_type: PaymentType::Click,
            status,
            payment_id: Some(payment.id),
            access_token: None,
            created_at: payment.created_at,
            updated_at: payment.created_at,
        }
    }

    fn attempt(payment: &Payment, state: rules::PrepareState) -> (GatewayTxn, ClickPrepare) {
        let p = ClickPrepare {
            id: 55,
            click_trans_id: 2011976,
            click_paydoc_id: 3300112,
            order_id: 197,
            merchant_trans_id: "197".into(),
            amount_tiyin: 500_000,
            state,
            click_error: None,
        };
        let txn = GatewayTxn {
            id: 55,
            provider: Provider::Click,
            external_id: "2011976".into(),
            payment_id: payment.id,
            state: state.as_str().into(),
            amount_minor: 500_000,
            external_time_ms: None,
            data: data_of(&p),
            created_at: payment.created_at,
            updated_at: payment.created_at,
            version: 2,
        };
        (txn, p)
    }

    fn call(action: &str) -> InboundRequest {
        InboundRequest {
            method: "POST".into(),
            content_type: "application/x-www-form-urlencoded".into(),
            body: body(action, &[]).into_bytes(),
            ..InboundRequest::default()
        }
    }

    fn decided(action: &str, loaded: &Loaded) -> Decision {
        let v = verified(action, &[]);
        let d = rules::decide(&v, &loaded.facts());
        plan(&call(action), &v, loaded, d, &RetryPolicies::default())
    }

    fn body_of(reply: &InboundReply) -> &Value {
        match reply {
            InboundReply::Json { status: 200, body } => body,
            other => panic!("{other:?}"),
        }
    }

    fn stored(cs: &Changeset) -> &NewInbound {
        match cs.origin() {
            Origin::Inbound(m) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_order_follows_a_payment_that_settled_first() {
        use OrderStatus as O;
        use PaymentStatus as P;
        let cases = [
            (O::Pending, P::Processing, OrderState::Pending),
            (O::Pending, P::Pending, OrderState::Pending),
            (O::Pending, P::Completed, OrderState::Paid),
            (O::Pending, P::Failed, OrderState::Cancelled),
            (O::Pending, P::Cancelled, OrderState::Cancelled),
            (O::Paid, P::Completed, OrderState::Paid),
            (O::Paid, P::Processing, OrderState::Paid),
            (O::Failed, P::Failed, OrderState::Cancelled),
            (O::Cancelled, P::Refunded, OrderState::Cancelled),
        ];
        for (o, p, want) in cases {
            assert_eq!(order_state(o, p), want, "{o:?} {p:?}");
        }
    }

    #[test]
    fn attempts_round_trip_through_their_row() {
        let p = payment(PaymentStatus::Processing);
        let (mut txn, mut prepare) = attempt(&p, rules::PrepareState::Cancelled);
        prepare.click_error = Some(-5017);
        txn.data = data_of(&prepare);
        assert_eq!(prepare_of(&txn).unwrap(), prepare);
        assert!(txn.data.get("id").is_none(), "the row holds the id");
        txn.state = "paid".into();
        assert!(matches!(prepare_of(&txn), Err(StoreError::Corrupt(_))));
        txn.state = "prepared".into();
        txn.data = json!({"click_trans_id": "x"});
        assert!(matches!(prepare_of(&txn), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_new_prepare_inserts_the_attempt_and_touches_the_payment() {
        for status in [PaymentStatus::Processing, PaymentStatus::Pending] {
            let p = payment(status);
            let loaded = Loaded {
                order: Some((order(OrderStatus::Pending, &p), p.clone())),
                prepare: None,
            };
            let d = decided("0", &loaded);
            assert_eq!((d.outcome, d.payment_id), ("accepted", Some(p.id)));
            let cs = d.write.as_ref().unwrap();
            assert!(cs.gateway_txn_update.is_none());
            let txn = cs.gateway_txn_new.as_ref().unwrap();
            assert_eq!(txn.expected_version, None, "an insert");
            assert_eq!(
                (txn.external_id.as_str(), txn.state.as_str()),
                ("2011976", "prepared")
            );
            assert_eq!(txn.amount_minor, 500_000);
            assert_eq!(txn.data["click_paydoc_id"], 3300112);
            let change = cs.change.as_ref().unwrap();
            assert_eq!(change.expected_version, 3);
            assert_eq!(
                change.new_status,
                (status == PaymentStatus::Pending).then_some(PaymentStatus::Processing)
            );
            assert!(cs.order_status.is_none());
            let m = stored(cs);
            assert!(m.dedupe_key.starts_with("call:"), "{}", m.dedupe_key);
            assert_eq!(m.outcome, "accepted");
            assert!(m.body.contains("sign_string"), "stored verbatim");
            // The id comes with the commit.
            let body = body_of(&d.reply);
            assert_eq!(body["error"], 0);
            assert!(body.get("merchant_prepare_id").is_none());
            let applied = Applied {
                gateway_txn_id: Some(77),
                ..Applied::default()
            };
            let done = adapter().committed(d.reply.clone(), &applied);
            assert_eq!(body_of(&done)["merchant_prepare_id"], 77);
            assert_eq!(body_of(&done)["click_trans_id"], 2011976);
        }
    }

    #[test]
    fn a_complete_pays_the_payment_and_the_order_in_one_write() {
        let p = payment(PaymentStatus::Processing);
        let loaded = Loaded {
            order: Some((order(OrderStatus::Pending, &p), p.clone())),
            prepare: Some(attempt(&p, rules::PrepareState::Prepared)),
        };
        let d = decided("1", &loaded);
        assert_eq!(body_of(&d.reply)["merchant_confirm_id"], 55);
        let cs = d.write.as_ref().unwrap();
        let change = cs.change.as_ref().unwrap();
        assert_eq!(change.new_status, Some(PaymentStatus::Completed));
        assert_eq!(change.gateway_trans_id.as_deref(), Some("2011976"));
        assert_eq!(change.tracking_code.as_deref(), Some("3300112"));
        assert!(cs.gateway_txn_new.is_none());
        let txn = cs.gateway_txn_update.as_ref().unwrap();
        assert_eq!(
            (txn.state.as_str(), txn.expected_version),
            ("completed", Some(2))
        );
        assert_eq!(
            cs.order_status,
            OrderChange::from_pending(197, OrderStatus::Paid)
        );
        // The commit changes nothing in an answer that was complete.
        let applied = Applied {
            gateway_txn_id: Some(55),
            ..Applied::default()
        };
        assert_eq!(adapter().committed(d.reply.clone(), &applied), d.reply);
    }

    #[test]
    fn clicks_failure_cancels_the_attempt_only() {
        let p = payment(PaymentStatus::Processing);
        let loaded = Loaded {
            order: Some((order(OrderStatus::Pending, &p), p.clone())),
            prepare: Some(attempt(&p, rules::PrepareState::Prepared)),
        };
        let v = verified("1", &[("error", Some("-5017"))]);
        let d = rules::decide(&v, &loaded.facts());
        let d = plan(&call("1"), &v, &loaded, d, &RetryPolicies::default());
        assert_eq!(
            (d.outcome, body_of(&d.reply)["error"].as_i64()),
            ("refused", Some(-9))
        );
        let cs = d.write.as_ref().unwrap();
        assert!(
            cs.change.is_none() && cs.order_status.is_none(),
            "the order stays pending"
        );
        let txn = cs.gateway_txn_update.as_ref().unwrap();
        assert_eq!(txn.state, "cancelled");
        assert_eq!(txn.data["click_error"], -5017);
        assert_eq!(stored(cs).outcome, "refused:-9");
    }

    #[test]
    fn repeats_write_only_the_call_and_its_event_without_the_sign() {
        let p = payment(PaymentStatus::Completed);
        let loaded = Loaded {
            order: Some((order(OrderStatus::Paid, &p), p.clone())),
            prepare: Some(attempt(&p, rules::PrepareState::Completed)),
        };
        let d = decided("1", &loaded);
        assert_eq!(body_of(&d.reply)["error"], -4);
        let cs = d.write.as_ref().unwrap();
        assert!(cs.change.is_none() && cs.order_status.is_none());
        assert!(cs.gateway_txn_new.is_none() && cs.gateway_txn_update.is_none());
        assert_eq!(cs.events.len(), 1);
        let e = &cs.events[0];
        assert_eq!(e.kind, EventKind::Webhook);
        assert_eq!(e.payment_id, p.id);
        assert!(e.message.contains("-4"), "{}", e.message);
        assert_eq!(e.detail["merchant_prepare_id"], 55);
        assert_eq!(e.detail["amount"], "5000");
        assert!(!e.detail.to_string().contains("sign"), "{}", e.detail);
    }

    #[test]
    fn an_unknown_order_is_stored_without_a_payment() {
        let d = decided("0", &Loaded::default());
        assert_eq!(body_of(&d.reply)["error"], -5);
        let cs = d.write.as_ref().unwrap();
        assert!(cs.events.is_empty());
        assert_eq!(stored(cs).payment_id, None);
    }

    #[test]
    fn refusals_before_the_rules() {
        let cases = [
            (
                body("0", &[("sign_string", Some("0".repeat(32).as_str()))]),
                -1,
                "bad_signature",
            ),
            (
                body("0", &[("service_id", Some("999"))]),
                -1,
                "bad_signature",
            ),
            (body("0", &[("amount", Some("50,00"))]), -8, "invalid"),
            (body("2", &[]), -3, "invalid"),
        ];
        for (form, code, outcome) in cases {
            let req = InboundRequest {
                body: form.into_bytes(),
                ..call("0")
            };
            let request = protocol::parse_form(&req.body);
            let d = match request {
                Err(r) => rejected(&req, &r, "invalid"),
                Ok(r) => match protocol::authenticate(r, SECRET, SERVICE_ID) {
                    Err(r) => rejected(&req, &r, "bad_signature"),
                    Ok(_) => panic!("accepted"),
                },
            };
            assert_eq!(
                (d.outcome, body_of(&d.reply)["error"].as_i64()),
                (outcome, Some(code))
            );
            let m = stored(d.write.as_ref().unwrap());
            assert!(m.dedupe_key.starts_with(&format!("{outcome}:")));
            assert_eq!(m.outcome, outcome);
            assert_eq!(body_of(&d.reply)["click_trans_id"], 2011976);
        }
    }

    #[test]
    fn unavailable_is_minus_seven_with_http_200() {
        let a = adapter();
        let r = a.unavailable(&call("1"));
        let body = body_of(&r);
        assert_eq!(body["error"], -7);
        assert_eq!(body["error_note"], "Failed to update user");
        assert_eq!(body["click_trans_id"], 2011976);
        assert_eq!(body["merchant_trans_id"], "197");
        let garbage = InboundRequest {
            body: b"\xff\x00".to_vec(),
            ..call("0")
        };
        assert_eq!(body_of(&a.unavailable(&garbage))["error"], -7);
    }

    #[test]
    fn the_three_routes_take_posts() {
        let paths: Vec<&str> = adapter().routes().iter().map(|r| r.path).collect();
        assert_eq!(paths, ["/click/prepare/", "/click/complete/", "/click/"]);
        assert!(ROUTES.iter().all(|r| r.post && !r.get));
    }
}
