//! The rules of a Payme transaction (docs/gateways/payme.md, "Timeout rule
//! and state machine"), as pure functions: facts in, a [`Decision`] out (the
//! answer for Payme and the effects to persist). Nothing here reads a clock,
//! a database or the network, so every rule is tested below.
//!
//! States: 1 created → 2 performed; 1 → -1 cancelled before perform; 2 → -2
//! cancelled after perform. A state-1 transaction whose Payme `time` is more
//! than 12 hours ([`TIMEOUT_MS`]) before `now` is expired: the call that
//! finds it (CreateTransaction repeat or PerformTransaction) cancels it with
//! reason 4 and answers -31008.
//!
//! Repeats are answered from the stored transaction, never from a cache:
//! CreateTransaction on state 1 gives the same `create_time`/`transaction`;
//! PerformTransaction on state 2 the same `perform_time`; CancelTransaction
//! on -1/-2 the same `cancel_time` (the first reason stays). A repeat that
//! finds a cancelled transaction answers -31008, with the "expired" message
//! when it was the timeout, so the text is identical every time too. A
//! repeat is recognised by the Payme id alone: Payme never sends other
//! amounts or accounts under an id it has used.
//!
//! One active transaction per order: a CreateTransaction with a new Payme id
//! for an order that already has a state-1 (not expired) or state-2
//! transaction is refused with -31052. An expired state-1 transaction does
//! not block its order: the same decision cancels it (reason 4) and creates
//! the new one.
//!
//! What a settled transaction means for paygate ([`Outcome`]):
//! - performed: the payment is completed and the order paid;
//! - cancelled before perform (payer gave up, debit failed, timeout): that
//!   attempt's payment is cancelled and the order stays pending, so the
//!   payer can try again with a new Payme transaction;
//! - cancelled after perform (Payme refunded the payer): the payment is
//!   refunded and the order cancelled. This is the one place where a paid
//!   order moves again. A fulfilled order (goods delivered) refuses the
//!   refund with -31007.
//!
//! Applying a decision: all effects of one decision are written atomically,
//! each on a condition ([`Effect::Create`]: no row with that Payme id and no
//! active transaction for the order; [`Effect::Update`]: the stored state is
//! still `from`). If a condition fails, a concurrent call got there first:
//! read the facts again and decide again. The second decision is a repeat,
//! so it answers exactly what the winner answered.

use super::protocol::{
    Answer, Command, FiscalKind, PaymeId, RpcError, RpcResult, State, StatementEntry,
};
use crate::domain::OrderStatus;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// 12 hours after Payme's `time`, a transaction still in state 1 is dead.
pub const TIMEOUT_MS: i64 = 43_200_000;

/// Cancel reasons (docs/gateways/payme.md, "States and reasons").
pub mod reason {
    pub const RECEIVERS_NOT_FOUND: i32 = 1;
    pub const DEBIT_ERROR: i32 = 2;
    pub const EXECUTION_ERROR: i32 = 3;
    pub const TIMEOUT: i32 = 4;
    pub const REFUND: i32 = 5;
    pub const UNKNOWN: i32 = 10;
}

/// One Payme transaction as we store it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymeTransaction {
    pub payme_id: PaymeId,
    /// Payme's `time` from CreateTransaction: the timeout and statements run on it.
    pub payme_time_ms: i64,
    pub amount_tiyin: i64,
    pub order_id: String,
    pub state: State,
    /// Set once, by the first cancellation.
    pub reason: Option<i32>,
    pub create_time_ms: i64,
    pub perform_time_ms: Option<i64>,
    pub cancel_time_ms: Option<i64>,
    /// Our id for it, answered as `transaction`.
    pub transaction: String,
}

impl PaymeTransaction {
    /// State 1 or 2: it holds its order.
    pub fn is_active(&self) -> bool {
        matches!(self.state, State::Created | State::Performed)
    }

    /// State 1 and more than [`TIMEOUT_MS`] after Payme's `time`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.state == State::Created && now_ms.saturating_sub(self.payme_time_ms) > TIMEOUT_MS
    }

    pub fn created_result(&self) -> RpcResult {
        RpcResult::Created {
            create_time: self.create_time_ms,
            transaction: self.transaction.clone(),
            state: self.state,
        }
    }

    pub fn performed_result(&self) -> RpcResult {
        RpcResult::Performed {
            transaction: self.transaction.clone(),
            perform_time: self.perform_time_ms.unwrap_or(0),
            state: self.state,
        }
    }

    pub fn cancelled_result(&self) -> RpcResult {
        RpcResult::Cancelled {
            transaction: self.transaction.clone(),
            cancel_time: self.cancel_time_ms.unwrap_or(0),
            state: self.state,
        }
    }

    pub fn status_result(&self) -> RpcResult {
        RpcResult::Status {
            create_time: self.create_time_ms,
            perform_time: self.perform_time_ms.unwrap_or(0),
            cancel_time: self.cancel_time_ms.unwrap_or(0),
            transaction: self.transaction.clone(),
            state: self.state,
            reason: self.reason,
        }
    }

    pub fn statement_entry(&self, account_field: &str) -> StatementEntry {
        let mut account = Map::new();
        account.insert(
            account_field.to_owned(),
            Value::String(self.order_id.clone()),
        );
        StatementEntry {
            id: self.payme_id.clone(),
            time: self.payme_time_ms,
            amount: self.amount_tiyin,
            account,
            create_time: self.create_time_ms,
            perform_time: self.perform_time_ms.unwrap_or(0),
            cancel_time: self.cancel_time_ms.unwrap_or(0),
            transaction: self.transaction.clone(),
            state: self.state,
            reason: self.reason,
            receivers: None,
        }
    }

    /// -31008 for a transaction that is no longer in state 1, worded by why.
    fn not_performable(&self) -> RpcError {
        if self.reason == Some(reason::TIMEOUT) {
            RpcError::expired()
        } else {
            RpcError::cannot_perform()
        }
    }

    fn cancelled(&self, state: State, why: i32, now_ms: i64) -> Self {
        Self {
            state,
            reason: Some(why),
            cancel_time_ms: Some(now_ms),
            ..self.clone()
        }
    }
}

/// What a decision needs to know about an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderFacts {
    pub amount_tiyin: i64,
    pub status: OrderStatus,
    /// Goods delivered: a performed transaction can no longer be cancelled
    /// (-31007). paygate's shop does not track delivery yet, so `false`.
    pub fulfilled: bool,
}

/// What a settled transaction means for the payment and the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Payment completed, order paid.
    Paid,
    /// Cancelled before perform: this attempt's payment is cancelled, the
    /// order stays pending.
    Cancelled { reason: i32 },
    /// Cancelled after perform: payment refunded, order cancelled.
    Refunded { reason: i32 },
}

/// A change to persist; see the module docs for the conditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Effect {
    /// Insert a new transaction (state 1). The order does not change.
    Create(PaymeTransaction),
    /// Replace the stored transaction, if its state is still `from`.
    Update {
        from: State,
        to: PaymeTransaction,
        outcome: Outcome,
    },
    /// Keep the receipt data Payme sends after a perform or cancel (the
    /// latest per Payme id and kind wins).
    StoreFiscalData {
        payme_id: PaymeId,
        kind: FiscalKind,
        fiscal_data: Map<String, Value>,
    },
}

/// The answer for Payme and the effects that must be persisted (all of
/// them, atomically) before the answer is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub answer: Answer,
    pub effects: Vec<Effect>,
}

impl Decision {
    fn answer(answer: Answer) -> Self {
        Self {
            answer,
            effects: Vec::new(),
        }
    }

    fn refuse(error: RpcError) -> Self {
        Self::answer(Err(error))
    }
}

/// Refusals shared by CheckPerformTransaction and a new CreateTransaction:
/// the order must exist, match the amount and wait for payment.
fn order_refusal(
    amount_tiyin: i64,
    order: Option<&OrderFacts>,
    account_field: &str,
) -> Option<RpcError> {
    let Some(order) = order else {
        return Some(RpcError::order_not_found(account_field));
    };
    if order.amount_tiyin != amount_tiyin {
        return Some(RpcError::wrong_amount());
    }
    if order.status != OrderStatus::Pending {
        return Some(RpcError::order_not_payable(account_field));
    }
    None
}

/// The order's active transaction, unless it has expired (then it no
/// longer holds the order).
fn live(active: Option<&PaymeTransaction>, now_ms: i64) -> Option<&PaymeTransaction> {
    active.filter(|t| t.is_active() && !t.is_expired(now_ms))
}

/// The effect that cancels an expired transaction.
fn expire(t: &PaymeTransaction, now_ms: i64) -> Effect {
    Effect::Update {
        from: State::Created,
        to: t.cancelled(State::CancelledBeforePerform, reason::TIMEOUT, now_ms),
        outcome: Outcome::Cancelled {
            reason: reason::TIMEOUT,
        },
    }
}

/// CheckPerformTransaction: may this order be paid with this amount?
/// `active` is the order's active transaction, if any.
pub fn check_perform_transaction(
    amount_tiyin: i64,
    order: Option<&OrderFacts>,
    active: Option<&PaymeTransaction>,
    account_field: &str,
    now_ms: i64,
) -> Decision {
    if let Some(error) = order_refusal(amount_tiyin, order, account_field) {
        return Decision::refuse(error);
    }
    if live(active, now_ms).is_some() {
        return Decision::refuse(RpcError::order_busy(account_field));
    }
    Decision::answer(Ok(RpcResult::Allow { allow: true }))
}

/// CreateTransaction's request fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    pub payme_id: PaymeId,
    pub time_ms: i64,
    pub amount_tiyin: i64,
    pub order_id: String,
}

/// CreateTransaction. `existing`: the stored transaction with this Payme id;
/// `order` and `active`: the request's order and its active transaction;
/// `new_transaction_id`: our id for the transaction if one is created.
pub fn create_transaction(
    request: &CreateRequest,
    existing: Option<&PaymeTransaction>,
    order: Option<&OrderFacts>,
    active: Option<&PaymeTransaction>,
    new_transaction_id: &str,
    account_field: &str,
    now_ms: i64,
) -> Decision {
    if let Some(t) = existing {
        return match t.state {
            State::Created if t.is_expired(now_ms) => Decision {
                answer: Err(RpcError::expired()),
                effects: vec![expire(t, now_ms)],
            },
            State::Created => Decision::answer(Ok(t.created_result())),
            _ => Decision::refuse(t.not_performable()),
        };
    }
    if let Some(error) = order_refusal(request.amount_tiyin, order, account_field) {
        return Decision::refuse(error);
    }
    if now_ms.saturating_sub(request.time_ms) > TIMEOUT_MS {
        return Decision::refuse(RpcError::expired());
    }
    let mut effects = Vec::new();
    if let Some(other) = active {
        if live(Some(other), now_ms).is_some() {
            return Decision::refuse(RpcError::order_busy(account_field));
        }
        if other.is_expired(now_ms) {
            effects.push(expire(other, now_ms));
        }
    }
    let created = PaymeTransaction {
        payme_id: request.payme_id.clone(),
        payme_time_ms: request.time_ms,
        amount_tiyin: request.amount_tiyin,
        order_id: request.order_id.clone(),
        state: State::Created,
        reason: None,
        create_time_ms: now_ms,
        perform_time_ms: None,
        cancel_time_ms: None,
        transaction: new_transaction_id.to_owned(),
    };
    let answer = Ok(created.created_result());
    effects.push(Effect::Create(created));
    Decision { answer, effects }
}

/// PerformTransaction. `order`: the order of `existing`.
pub fn perform_transaction(
    existing: Option<&PaymeTransaction>,
    order: Option<&OrderFacts>,
    now_ms: i64,
) -> Decision {
    let Some(t) = existing else {
        return Decision::refuse(RpcError::transaction_not_found());
    };
    match t.state {
        State::Performed => Decision::answer(Ok(t.performed_result())),
        State::CancelledBeforePerform | State::CancelledAfterPerform => {
            Decision::refuse(t.not_performable())
        }
        State::Created if t.is_expired(now_ms) => Decision {
            answer: Err(RpcError::expired()),
            effects: vec![expire(t, now_ms)],
        },
        State::Created => {
            if order.is_none_or(|o| o.status != OrderStatus::Pending) {
                return Decision::refuse(RpcError::order_cannot_be_paid());
            }
            let performed = PaymeTransaction {
                state: State::Performed,
                perform_time_ms: Some(now_ms),
                ..t.clone()
            };
            Decision {
                answer: Ok(performed.performed_result()),
                effects: vec![Effect::Update {
                    from: State::Created,
                    to: performed,
                    outcome: Outcome::Paid,
                }],
            }
        }
    }
}

/// CancelTransaction. `order`: the order of `existing`.
pub fn cancel_transaction(
    existing: Option<&PaymeTransaction>,
    order: Option<&OrderFacts>,
    why: i32,
    now_ms: i64,
) -> Decision {
    let Some(t) = existing else {
        return Decision::refuse(RpcError::transaction_not_found());
    };
    let (to, outcome) = match t.state {
        State::CancelledBeforePerform | State::CancelledAfterPerform => {
            return Decision::answer(Ok(t.cancelled_result()));
        }
        State::Created => (
            t.cancelled(State::CancelledBeforePerform, why, now_ms),
            Outcome::Cancelled { reason: why },
        ),
        State::Performed => {
            if order.is_some_and(|o| o.fulfilled) {
                return Decision::refuse(RpcError::cannot_cancel());
            }
            (
                t.cancelled(State::CancelledAfterPerform, why, now_ms),
                Outcome::Refunded { reason: why },
            )
        }
    };
    Decision {
        answer: Ok(to.cancelled_result()),
        effects: vec![Effect::Update {
            from: t.state,
            to,
            outcome,
        }],
    }
}

/// CheckTransaction: the stored transaction as it is.
pub fn check_transaction(existing: Option<&PaymeTransaction>) -> Decision {
    match existing {
        Some(t) => Decision::answer(Ok(t.status_result())),
        None => Decision::refuse(RpcError::transaction_not_found()),
    }
}

/// GetStatement: the transactions whose Payme `time` lies in `from..=to`,
/// ascending by that time (then by Payme id, so equal times keep one order).
/// `transactions` may hold more than the window; a window with `from > to`
/// is empty.
pub fn get_statement(
    from_ms: i64,
    to_ms: i64,
    transactions: &[PaymeTransaction],
    account_field: &str,
) -> Decision {
    let mut rows: Vec<&PaymeTransaction> = transactions
        .iter()
        .filter(|t| (from_ms..=to_ms).contains(&t.payme_time_ms))
        .collect();
    rows.sort_by(|a, b| (a.payme_time_ms, &a.payme_id).cmp(&(b.payme_time_ms, &b.payme_id)));
    Decision::answer(Ok(RpcResult::Statement {
        transactions: rows
            .into_iter()
            .map(|t| t.statement_entry(account_field))
            .collect(),
    }))
}

/// SetFiscalData: stored for a known transaction.
pub fn set_fiscal_data(
    existing: Option<&PaymeTransaction>,
    kind: FiscalKind,
    fiscal_data: &Map<String, Value>,
) -> Decision {
    let Some(t) = existing else {
        return Decision::refuse(RpcError::transaction_not_found());
    };
    Decision {
        answer: Ok(RpcResult::Success { success: true }),
        effects: vec![Effect::StoreFiscalData {
            payme_id: t.payme_id.clone(),
            kind,
            fiscal_data: fiscal_data.clone(),
        }],
    }
}

/// Everything [`decide`] may need; load what [`Command`] asks for:
/// - `transaction`: the stored row with `command.payme_id()`;
/// - `order`: the order named by `command.order_id()`, or for the methods
///   that name a transaction, the order of `transaction`;
/// - `active`: that order's active transaction (state 1 or 2), if any;
/// - `statement`: for GetStatement, the rows with Payme `time` in the window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Facts {
    pub now_ms: i64,
    pub transaction: Option<PaymeTransaction>,
    pub order: Option<OrderFacts>,
    pub active: Option<PaymeTransaction>,
    pub statement: Vec<PaymeTransaction>,
    /// Our id for a transaction CreateTransaction may create.
    pub new_transaction_id: String,
}

/// Runs the rule of `command`'s method.
pub fn decide(command: &Command, facts: &Facts, account_field: &str) -> Decision {
    let existing = facts.transaction.as_ref();
    let order = facts.order.as_ref();
    let now = facts.now_ms;
    match command {
        Command::CheckPerformTransaction { amount_tiyin, .. } => check_perform_transaction(
            *amount_tiyin,
            order,
            facts.active.as_ref(),
            account_field,
            now,
        ),
        Command::CreateTransaction {
            id,
            time_ms,
            amount_tiyin,
            order_id,
        } => create_transaction(
            &CreateRequest {
                payme_id: id.clone(),
                time_ms: *time_ms,
                amount_tiyin: *amount_tiyin,
                order_id: order_id.clone(),
            },
            existing,
            order,
            facts.active.as_ref(),
            &facts.new_transaction_id,
            account_field,
            now,
        ),
        Command::PerformTransaction { .. } => perform_transaction(existing, order, now),
        Command::CancelTransaction { reason, .. } => {
            cancel_transaction(existing, order, *reason, now)
        }
        Command::CheckTransaction { .. } => check_transaction(existing),
        Command::GetStatement { from_ms, to_ms } => {
            get_statement(*from_ms, *to_ms, &facts.statement, account_field)
        }
        Command::SetFiscalData {
            kind, fiscal_data, ..
        } => set_fiscal_data(existing, *kind, fiscal_data),
    }
}

#[cfg(test)]
mod tests {
    use super::super::protocol::code;
    use super::*;
    use serde_json::json;

    const FIELD: &str = "order_id";
    const T0: i64 = 1_700_000_000_000;
    const AMOUNT: i64 = 500_000;

    fn pid(n: u8) -> PaymeId {
        PaymeId::parse(&format!("5305e3bab097f420a62ced{n:02}")).unwrap()
    }

    fn order(status: OrderStatus) -> OrderFacts {
        OrderFacts {
            amount_tiyin: AMOUNT,
            status,
            fulfilled: false,
        }
    }

    fn pending() -> OrderFacts {
        order(OrderStatus::Pending)
    }

    fn request(n: u8, time_ms: i64) -> CreateRequest {
        CreateRequest {
            payme_id: pid(n),
            time_ms,
            amount_tiyin: AMOUNT,
            order_id: "197".into(),
        }
    }

    /// A fresh transaction as CreateTransaction stores it.
    fn created(n: u8, time_ms: i64, now_ms: i64) -> PaymeTransaction {
        let d = create_transaction(
            &request(n, time_ms),
            None,
            Some(&pending()),
            None,
            &format!("our-{n}"),
            FIELD,
            now_ms,
        );
        match d.effects.as_slice() {
            [Effect::Create(t)] => t.clone(),
            other => panic!("expected one Create, got {other:?}"),
        }
    }

    /// Applies an Update decision's new row (asserting its precondition).
    fn applied(before: &PaymeTransaction, d: &Decision) -> PaymeTransaction {
        match d.effects.as_slice() {
            [Effect::Update { from, to, .. }] => {
                assert_eq!(*from, before.state);
                to.clone()
            }
            other => panic!("expected one Update, got {other:?}"),
        }
    }

    fn code_of(d: &Decision) -> i32 {
        d.answer.as_ref().expect_err("refusal").code
    }

    fn performed(t: &PaymeTransaction, now_ms: i64) -> PaymeTransaction {
        applied(t, &perform_transaction(Some(t), Some(&pending()), now_ms))
    }

    // --- CheckPerformTransaction ---

    #[test]
    fn check_perform_allows_a_pending_order_with_its_amount() {
        let d = check_perform_transaction(AMOUNT, Some(&pending()), None, FIELD, T0);
        assert_eq!(d.answer, Ok(RpcResult::Allow { allow: true }));
        assert!(d.effects.is_empty());
    }

    #[test]
    fn check_perform_refusals() {
        let d = check_perform_transaction(AMOUNT, None, None, FIELD, T0);
        assert_eq!(code_of(&d), code::ORDER_NOT_FOUND);
        assert_eq!(d.answer.unwrap_err().data.as_deref(), Some(FIELD));
        let d = check_perform_transaction(AMOUNT + 1, Some(&pending()), None, FIELD, T0);
        assert_eq!(code_of(&d), code::WRONG_AMOUNT);
        for status in [
            OrderStatus::Paid,
            OrderStatus::Cancelled,
            OrderStatus::Failed,
        ] {
            let d = check_perform_transaction(AMOUNT, Some(&order(status)), None, "invoice", T0);
            assert_eq!(code_of(&d), code::ORDER_NOT_PAYABLE);
            assert_eq!(d.answer.unwrap_err().data.as_deref(), Some("invoice"));
        }
        let active = created(1, T0, T0);
        let d = check_perform_transaction(AMOUNT, Some(&pending()), Some(&active), FIELD, T0);
        assert_eq!(code_of(&d), code::ORDER_BUSY);
        assert!(d.effects.is_empty());
    }

    #[test]
    fn check_perform_ignores_an_expired_active_transaction() {
        let stale = created(1, T0, T0);
        let now = T0 + TIMEOUT_MS + 1;
        let d = check_perform_transaction(AMOUNT, Some(&pending()), Some(&stale), FIELD, now);
        assert_eq!(d.answer, Ok(RpcResult::Allow { allow: true }));
        assert!(d.effects.is_empty(), "a check never writes");
    }

    // --- CreateTransaction ---

    #[test]
    fn create_makes_a_state_1_transaction_with_our_id() {
        let d = create_transaction(
            &request(1, T0 - 5),
            None,
            Some(&pending()),
            None,
            "our-1",
            FIELD,
            T0,
        );
        assert_eq!(
            d.answer,
            Ok(RpcResult::Created {
                create_time: T0,
                transaction: "our-1".into(),
                state: State::Created
            })
        );
        assert_eq!(
            d.effects,
            vec![Effect::Create(PaymeTransaction {
                payme_id: pid(1),
                payme_time_ms: T0 - 5,
                amount_tiyin: AMOUNT,
                order_id: "197".into(),
                state: State::Created,
                reason: None,
                create_time_ms: T0,
                perform_time_ms: None,
                cancel_time_ms: None,
                transaction: "our-1".into(),
            })]
        );
    }

    #[test]
    fn create_repeat_answers_from_the_stored_transaction() {
        let t = created(1, T0, T0);
        let first = create_transaction(
            &request(1, T0),
            None,
            Some(&pending()),
            None,
            "our-1",
            FIELD,
            T0,
        );
        // Later, with a different would-be id and the order now held by t itself.
        let again = create_transaction(
            &request(1, T0),
            Some(&t),
            Some(&pending()),
            Some(&t),
            "our-other",
            FIELD,
            T0 + 60_000,
        );
        assert_eq!(again.answer, first.answer);
        assert!(again.effects.is_empty());
    }

    #[test]
    fn create_repeat_on_a_settled_transaction_is_31008() {
        let t = created(1, T0, T0);
        let p = performed(&t, T0 + 1);
        let d = create_transaction(
            &request(1, T0),
            Some(&p),
            Some(&pending()),
            Some(&p),
            "x",
            FIELD,
            T0 + 2,
        );
        assert_eq!(d.answer, Err(RpcError::cannot_perform()));
        assert!(d.effects.is_empty());
        let c = applied(
            &t,
            &cancel_transaction(Some(&t), Some(&pending()), reason::DEBIT_ERROR, T0 + 1),
        );
        let d = create_transaction(
            &request(1, T0),
            Some(&c),
            Some(&pending()),
            None,
            "x",
            FIELD,
            T0 + 2,
        );
        assert_eq!(d.answer, Err(RpcError::cannot_perform()));
    }

    #[test]
    fn create_repeat_after_the_timeout_expires_it_then_repeats_identically() {
        let t = created(1, T0, T0);
        let late = T0 + TIMEOUT_MS + 1;
        let d = create_transaction(
            &request(1, T0),
            Some(&t),
            Some(&pending()),
            Some(&t),
            "x",
            FIELD,
            late,
        );
        assert_eq!(d.answer, Err(RpcError::expired()));
        let expired = applied(&t, &d);
        assert_eq!(expired.state, State::CancelledBeforePerform);
        assert_eq!(expired.reason, Some(reason::TIMEOUT));
        assert_eq!(expired.cancel_time_ms, Some(late));
        assert!(matches!(
            d.effects[0],
            Effect::Update {
                outcome: Outcome::Cancelled { reason: 4 },
                ..
            }
        ));
        let again = create_transaction(
            &request(1, T0),
            Some(&expired),
            Some(&pending()),
            None,
            "x",
            FIELD,
            late + 5,
        );
        assert_eq!(again.answer, d.answer, "identical answer on repeat");
        assert!(again.effects.is_empty());
    }

    #[test]
    fn the_timeout_is_strictly_more_than_12_hours() {
        let t = created(1, T0, T0);
        let at_limit = T0 + TIMEOUT_MS;
        assert!(!t.is_expired(at_limit));
        assert!(t.is_expired(at_limit + 1));
        let d = create_transaction(
            &request(1, T0),
            Some(&t),
            Some(&pending()),
            Some(&t),
            "x",
            FIELD,
            at_limit,
        );
        assert!(d.answer.is_ok());
    }

    #[test]
    fn create_with_a_time_older_than_the_timeout_is_refused_and_stores_nothing() {
        let now = T0 + TIMEOUT_MS + 1;
        let d = create_transaction(
            &request(1, T0),
            None,
            Some(&pending()),
            None,
            "x",
            FIELD,
            now,
        );
        assert_eq!(d.answer, Err(RpcError::expired()));
        assert!(d.effects.is_empty());
        // Exactly 12 hours old still counts as live.
        let d = create_transaction(
            &request(1, T0),
            None,
            Some(&pending()),
            None,
            "x",
            FIELD,
            now - 1,
        );
        assert!(d.answer.is_ok());
    }

    #[test]
    fn create_checks_the_order_first() {
        let d = create_transaction(&request(1, T0), None, None, None, "x", FIELD, T0);
        assert_eq!(code_of(&d), code::ORDER_NOT_FOUND);
        let mut r = request(1, T0);
        r.amount_tiyin += 100;
        let d = create_transaction(&r, None, Some(&pending()), None, "x", FIELD, T0);
        assert_eq!(code_of(&d), code::WRONG_AMOUNT);
        let d = create_transaction(
            &request(1, T0),
            None,
            Some(&order(OrderStatus::Paid)),
            None,
            "x",
            FIELD,
            T0,
        );
        assert_eq!(code_of(&d), code::ORDER_NOT_PAYABLE);
        assert!(d.effects.is_empty());
    }

    #[test]
    fn a_second_payme_id_for_the_same_order_is_refused() {
        let first = created(1, T0, T0);
        let d = create_transaction(
            &request(2, T0 + 10),
            None,
            Some(&pending()),
            Some(&first),
            "x",
            FIELD,
            T0 + 10,
        );
        assert_eq!(d.answer, Err(RpcError::order_busy(FIELD)));
        assert!(d.effects.is_empty());
        let p = performed(&first, T0 + 5);
        let d = create_transaction(
            &request(2, T0 + 10),
            None,
            Some(&pending()),
            Some(&p),
            "x",
            FIELD,
            T0 + 10,
        );
        assert_eq!(code_of(&d), code::ORDER_BUSY);
    }

    #[test]
    fn an_expired_active_transaction_is_cancelled_and_replaced() {
        let stale = created(1, T0, T0);
        let now = T0 + TIMEOUT_MS + 10;
        let d = create_transaction(
            &request(2, now),
            None,
            Some(&pending()),
            Some(&stale),
            "our-2",
            FIELD,
            now,
        );
        assert!(d.answer.is_ok());
        match d.effects.as_slice() {
            [Effect::Update { from, to, outcome }, Effect::Create(new)] => {
                assert_eq!(*from, State::Created);
                assert_eq!(to.payme_id, pid(1));
                assert_eq!(
                    (to.state, to.reason),
                    (State::CancelledBeforePerform, Some(4))
                );
                assert_eq!(*outcome, Outcome::Cancelled { reason: 4 });
                assert_eq!(new.payme_id, pid(2));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cancelled_transaction_frees_its_order() {
        let first = created(1, T0, T0);
        let c = applied(
            &first,
            &cancel_transaction(Some(&first), Some(&pending()), 3, T0 + 1),
        );
        assert!(!c.is_active());
        // The store's "active transaction of the order" no longer returns it,
        // and even if handed in it does not block.
        let d = create_transaction(
            &request(2, T0 + 2),
            None,
            Some(&pending()),
            Some(&c),
            "our-2",
            FIELD,
            T0 + 2,
        );
        assert!(d.answer.is_ok());
        assert_eq!(d.effects.len(), 1);
    }

    // --- PerformTransaction ---

    #[test]
    fn perform_from_state_1_pays_the_order() {
        let t = created(1, T0, T0);
        let d = perform_transaction(Some(&t), Some(&pending()), T0 + 7);
        assert_eq!(
            d.answer,
            Ok(RpcResult::Performed {
                transaction: "our-1".into(),
                perform_time: T0 + 7,
                state: State::Performed
            })
        );
        match d.effects.as_slice() {
            [Effect::Update { from, to, outcome }] => {
                assert_eq!(*from, State::Created);
                assert_eq!(to.state, State::Performed);
                assert_eq!(to.perform_time_ms, Some(T0 + 7));
                assert_eq!(to.create_time_ms, t.create_time_ms);
                assert_eq!(*outcome, Outcome::Paid);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn perform_repeat_is_identical_and_writes_nothing() {
        let t = created(1, T0, T0);
        let first = perform_transaction(Some(&t), Some(&pending()), T0 + 7);
        let p = applied(&t, &first);
        // The order is paid now; the repeat must not care.
        let again = perform_transaction(Some(&p), Some(&order(OrderStatus::Paid)), T0 + 99_999);
        assert_eq!(again.answer, first.answer);
        assert!(again.effects.is_empty());
    }

    #[test]
    fn perform_of_a_cancelled_transaction_is_31008() {
        let t = created(1, T0, T0);
        let c = applied(
            &t,
            &cancel_transaction(Some(&t), Some(&pending()), 3, T0 + 1),
        );
        let d = perform_transaction(Some(&c), Some(&pending()), T0 + 2);
        assert_eq!(d.answer, Err(RpcError::cannot_perform()));
        assert!(d.effects.is_empty());
        let p = performed(&t, T0 + 1);
        let r = applied(
            &p,
            &cancel_transaction(Some(&p), Some(&order(OrderStatus::Paid)), 5, T0 + 2),
        );
        let d = perform_transaction(Some(&r), Some(&order(OrderStatus::Cancelled)), T0 + 3);
        assert_eq!(code_of(&d), code::CANNOT_PERFORM);
        assert!(d.effects.is_empty());
    }

    #[test]
    fn perform_after_the_timeout_cancels_with_reason_4() {
        let t = created(1, T0, T0);
        let late = T0 + TIMEOUT_MS + 1;
        let d = perform_transaction(Some(&t), Some(&pending()), late);
        assert_eq!(d.answer, Err(RpcError::expired()));
        let e = applied(&t, &d);
        assert_eq!(
            (e.state, e.reason, e.cancel_time_ms),
            (State::CancelledBeforePerform, Some(4), Some(late))
        );
        let again = perform_transaction(Some(&e), Some(&pending()), late + 1);
        assert_eq!(again.answer, d.answer);
        assert!(again.effects.is_empty());
        // And CheckTransaction then shows -1 with reason 4.
        assert_eq!(
            check_transaction(Some(&e)).answer,
            Ok(RpcResult::Status {
                create_time: T0,
                perform_time: 0,
                cancel_time: late,
                transaction: "our-1".into(),
                state: State::CancelledBeforePerform,
                reason: Some(4)
            })
        );
    }

    #[test]
    fn perform_needs_an_order_that_still_waits() {
        let t = created(1, T0, T0);
        for order in [
            None,
            Some(order(OrderStatus::Cancelled)),
            Some(order(OrderStatus::Paid)),
        ] {
            let d = perform_transaction(Some(&t), order.as_ref(), T0 + 1);
            assert_eq!(d.answer, Err(RpcError::order_cannot_be_paid()));
            assert!(d.effects.is_empty());
        }
    }

    #[test]
    fn perform_of_an_unknown_transaction_is_31003() {
        let d = perform_transaction(None, Some(&pending()), T0);
        assert_eq!(code_of(&d), code::TRANSACTION_NOT_FOUND);
        assert!(d.effects.is_empty());
    }

    // --- CancelTransaction ---

    #[test]
    fn cancel_before_perform_goes_to_minus_1() {
        let t = created(1, T0, T0);
        let d = cancel_transaction(Some(&t), Some(&pending()), reason::DEBIT_ERROR, T0 + 3);
        assert_eq!(
            d.answer,
            Ok(RpcResult::Cancelled {
                transaction: "our-1".into(),
                cancel_time: T0 + 3,
                state: State::CancelledBeforePerform
            })
        );
        match d.effects.as_slice() {
            [Effect::Update { from, to, outcome }] => {
                assert_eq!(*from, State::Created);
                assert_eq!(to.reason, Some(2));
                assert_eq!(to.perform_time_ms, None);
                assert_eq!(*outcome, Outcome::Cancelled { reason: 2 });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn cancel_after_perform_refunds() {
        let p = performed(&created(1, T0, T0), T0 + 1);
        let d = cancel_transaction(
            Some(&p),
            Some(&order(OrderStatus::Paid)),
            reason::REFUND,
            T0 + 9,
        );
        assert_eq!(
            d.answer,
            Ok(RpcResult::Cancelled {
                transaction: "our-1".into(),
                cancel_time: T0 + 9,
                state: State::CancelledAfterPerform
            })
        );
        match d.effects.as_slice() {
            [Effect::Update { from, to, outcome }] => {
                assert_eq!(*from, State::Performed);
                assert_eq!(to.state, State::CancelledAfterPerform);
                assert_eq!(to.perform_time_ms, Some(T0 + 1), "perform time is kept");
                assert_eq!(*outcome, Outcome::Refunded { reason: 5 });
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_fulfilled_order_refuses_the_refund_with_31007() {
        let p = performed(&created(1, T0, T0), T0 + 1);
        let fulfilled = OrderFacts {
            fulfilled: true,
            ..order(OrderStatus::Paid)
        };
        let d = cancel_transaction(Some(&p), Some(&fulfilled), reason::REFUND, T0 + 2);
        assert_eq!(d.answer, Err(RpcError::cannot_cancel()));
        assert!(d.effects.is_empty());
        // Before perform, fulfilment does not matter.
        let t = created(2, T0, T0);
        assert!(cancel_transaction(Some(&t), Some(&fulfilled), 1, T0)
            .answer
            .is_ok());
    }

    #[test]
    fn cancel_repeats_are_identical_and_keep_the_first_reason() {
        for start in [created(1, T0, T0), performed(&created(1, T0, T0), T0 + 1)] {
            let first = cancel_transaction(Some(&start), Some(&pending()), 3, T0 + 2);
            let c = applied(&start, &first);
            let again = cancel_transaction(Some(&c), Some(&pending()), 5, T0 + 50);
            assert_eq!(again.answer, first.answer);
            assert!(again.effects.is_empty());
            let status = check_transaction(Some(&c)).answer.unwrap();
            assert!(matches!(
                status,
                RpcResult::Status {
                    reason: Some(3),
                    ..
                }
            ));
        }
    }

    #[test]
    fn cancel_of_an_unknown_transaction_is_31003() {
        let d = cancel_transaction(None, None, 1, T0);
        assert_eq!(code_of(&d), code::TRANSACTION_NOT_FOUND);
    }

    // --- CheckTransaction ---

    #[test]
    fn check_shows_every_time_with_zero_where_not_applicable() {
        let t = created(1, T0 - 100, T0);
        assert_eq!(
            serde_json::to_value(check_transaction(Some(&t)).answer.unwrap()).unwrap(),
            json!({"create_time": T0, "perform_time": 0, "cancel_time": 0,
                   "transaction": "our-1", "state": 1, "reason": null})
        );
        let p = performed(&t, T0 + 1);
        let r = applied(&p, &cancel_transaction(Some(&p), None, 5, T0 + 2));
        assert_eq!(
            serde_json::to_value(check_transaction(Some(&r)).answer.unwrap()).unwrap(),
            json!({"create_time": T0, "perform_time": T0 + 1, "cancel_time": T0 + 2,
                   "transaction": "our-1", "state": -2, "reason": 5})
        );
        assert_eq!(
            code_of(&check_transaction(None)),
            code::TRANSACTION_NOT_FOUND
        );
    }

    #[test]
    fn check_does_not_expire_anything() {
        let t = created(1, T0, T0);
        let d = check_transaction(Some(&t));
        assert!(d.effects.is_empty());
        assert!(matches!(
            d.answer,
            Ok(RpcResult::Status {
                state: State::Created,
                ..
            })
        ));
    }

    // --- GetStatement ---

    fn statement_ids(d: &Decision) -> Vec<String> {
        match d.answer.as_ref().unwrap() {
            RpcResult::Statement { transactions } => {
                transactions.iter().map(|e| e.id.to_string()).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn statement_is_inclusive_on_payme_time_and_ascending() {
        // Created (by our clock) in the opposite order of Payme's times.
        let a = created(1, T0 + 300, T0 + 1);
        let b = created(2, T0 + 100, T0 + 2);
        let c = created(3, T0 + 200, T0 + 3);
        let d = created(4, T0 + 400, T0 + 4);
        let all = [a.clone(), b.clone(), c.clone(), d.clone()];
        let window = get_statement(T0 + 100, T0 + 300, &all, FIELD);
        assert_eq!(
            statement_ids(&window),
            [
                b.payme_id.to_string(),
                c.payme_id.to_string(),
                a.payme_id.to_string()
            ]
        );
        assert!(
            statement_ids(&get_statement(T0 + 101, T0 + 299, &all, FIELD))
                == [c.payme_id.to_string()]
        );
        assert!(statement_ids(&get_statement(T0 + 500, T0 + 600, &all, FIELD)).is_empty());
        assert!(statement_ids(&get_statement(T0 + 300, T0 + 100, &all, FIELD)).is_empty());
        // create_time (T0+1..T0+4) is not what the window filters on.
        assert!(statement_ids(&get_statement(T0, T0 + 50, &all, FIELD)).is_empty());
    }

    #[test]
    fn statement_entries_have_the_documented_fields() {
        let t = created(1, T0 - 10, T0);
        let p = performed(&t, T0 + 1);
        let d = get_statement(0, T0, &[p], "invoice");
        assert_eq!(
            serde_json::to_value(d.answer.unwrap()).unwrap(),
            json!({"transactions": [{
                "id": t.payme_id.as_str(), "time": T0 - 10, "amount": AMOUNT,
                "account": {"invoice": "197"}, "create_time": T0, "perform_time": T0 + 1,
                "cancel_time": 0, "transaction": "our-1", "state": 2, "reason": null,
                "receivers": null}]})
        );
        assert!(d.effects.is_empty());
    }

    #[test]
    fn equal_payme_times_keep_a_stable_order() {
        let a = created(2, T0, T0);
        let b = created(1, T0, T0);
        let ids = statement_ids(&get_statement(T0, T0, &[a, b], FIELD));
        assert_eq!(ids, [pid(1).to_string(), pid(2).to_string()]);
    }

    // --- SetFiscalData ---

    #[test]
    fn fiscal_data_is_stored_for_a_known_transaction() {
        let t = created(1, T0, T0);
        let data = json!({"receipt_id": 7}).as_object().unwrap().clone();
        let d = set_fiscal_data(Some(&t), FiscalKind::Perform, &data);
        assert_eq!(d.answer, Ok(RpcResult::Success { success: true }));
        assert_eq!(
            d.effects,
            vec![Effect::StoreFiscalData {
                payme_id: pid(1),
                kind: FiscalKind::Perform,
                fiscal_data: data.clone()
            }]
        );
        assert_eq!(
            code_of(&set_fiscal_data(None, FiscalKind::Cancel, &data)),
            code::TRANSACTION_NOT_FOUND
        );
    }

    // --- decide and serde ---

    #[test]
    fn decide_dispatches_each_command_to_its_rule() {
        let t = created(1, T0, T0);
        let facts = Facts {
            now_ms: T0 + 1,
            transaction: Some(t.clone()),
            order: Some(pending()),
            active: Some(t.clone()),
            statement: vec![t.clone()],
            new_transaction_id: "our-9".into(),
        };
        let id = pid(1);
        let cases = [
            (
                Command::CheckPerformTransaction {
                    amount_tiyin: AMOUNT,
                    order_id: "197".into(),
                },
                check_perform_transaction(AMOUNT, Some(&pending()), Some(&t), FIELD, T0 + 1),
            ),
            (
                Command::CreateTransaction {
                    id: id.clone(),
                    time_ms: T0,
                    amount_tiyin: AMOUNT,
                    order_id: "197".into(),
                },
                create_transaction(
                    &request(1, T0),
                    Some(&t),
                    Some(&pending()),
                    Some(&t),
                    "our-9",
                    FIELD,
                    T0 + 1,
                ),
            ),
            (
                Command::PerformTransaction { id: id.clone() },
                perform_transaction(Some(&t), Some(&pending()), T0 + 1),
            ),
            (
                Command::CancelTransaction {
                    id: id.clone(),
                    reason: 1,
                },
                cancel_transaction(Some(&t), Some(&pending()), 1, T0 + 1),
            ),
            (
                Command::CheckTransaction { id: id.clone() },
                check_transaction(Some(&t)),
            ),
            (
                Command::GetStatement {
                    from_ms: 0,
                    to_ms: T0,
                },
                get_statement(0, T0, std::slice::from_ref(&t), FIELD),
            ),
            (
                Command::SetFiscalData {
                    id,
                    kind: FiscalKind::Cancel,
                    fiscal_data: Map::new(),
                },
                set_fiscal_data(Some(&t), FiscalKind::Cancel, &Map::new()),
            ),
        ];
        for (command, expected) in cases {
            assert_eq!(
                decide(&command, &facts, FIELD),
                expected,
                "{}",
                command.method()
            );
        }
    }

    #[test]
    fn transactions_and_effects_round_trip_through_serde() {
        let t = created(1, T0, T0);
        let d = perform_transaction(Some(&t), Some(&pending()), T0 + 1);
        for effect in d.effects {
            let text = serde_json::to_string(&effect).unwrap();
            assert_eq!(serde_json::from_str::<Effect>(&text).unwrap(), effect);
        }
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<PaymeTransaction>(&text).unwrap(), t);
    }
}
