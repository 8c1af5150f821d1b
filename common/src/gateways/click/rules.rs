//! What to answer Click and what to persist, decided from an authenticated
//! request and the facts the caller loaded. Pure: no I/O, no clock, so every
//! branch is a unit test (docs/gateways/click.md, "Required behaviour").
//!
//! **Prepare** (in this order): the order exists (-5), the amount matches
//! (-2), it is not paid (-4) or cancelled (-9), Click's own `error` is not
//! negative (-9); then a [`ClickPrepare`] is recorded and its id answered as
//! `merchant_prepare_id`. A repeat of a Prepare (same `click_trans_id`) is
//! answered from the stored prepare: 0 with the same id while it is prepared,
//! -4 once completed, -9 once cancelled.
//!
//! **Complete**: the prepare named by `merchant_prepare_id` must exist and
//! belong to the same `merchant_trans_id` and `click_trans_id` (-6). Then:
//! Click's `error < 0` cancels a prepared attempt (-9); a completed one
//! answers -4, a cancelled one -9; a different amount -2; an order already
//! paid through another attempt -4, a cancelled order -9 (and the attempt is
//! cancelled); otherwise the attempt completes: payment completed and order
//! paid in one write, answering `merchant_confirm_id` (= the prepare's id).
//!
//! Click's acceptance scenario 8 sends `error=-5017` for an attempt already
//! completed and expects -9. We answer -9 but do not un-pay it: the money
//! moved when Click sent `error=0`, and a later contradiction from Click is
//! for a person (and the Merchant API reversal) to settle, not for a silent
//! state change.
//!
//! Every [`Effect`] that changes state names the state it was decided from:
//! the caller applies it conditionally and, if it lost a race, loads the facts
//! again and decides again. That is how a concurrent duplicate gets the answer
//! the stored state implies (one effect, e.g. 0 then -4 for two Completes).
//!
//! An attempt cancelled by Click leaves the **order pending**, so the payer can
//! try again (Click starts a new attempt with a new `click_trans_id`); whether
//! the payment behind it also fails is the caller's choice.

use super::protocol::{Action, Answer, ErrorCode, Verified};
use serde::{Deserialize, Serialize};

/// Where one Click attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrepareState {
    /// Prepare answered 0; waiting for Complete.
    Prepared,
    /// Complete succeeded: the order is paid.
    Completed,
    /// Click reported a failure (or the order was cancelled meanwhile).
    Cancelled,
}

impl PrepareState {
    pub fn as_str(self) -> &'static str {
        match self {
            PrepareState::Prepared => "prepared",
            PrepareState::Completed => "completed",
            PrepareState::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [
            PrepareState::Prepared,
            PrepareState::Completed,
            PrepareState::Cancelled,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// One Click attempt as stored: the row behind `merchant_prepare_id`.
/// Unique by `id` and by `click_trans_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClickPrepare {
    /// Ours; answered as `merchant_prepare_id` and `merchant_confirm_id`.
    pub id: i64,
    pub click_trans_id: i64,
    /// Click's payment number: the Merchant API's `payment_id` (status, reversal).
    pub click_paydoc_id: i64,
    pub order_id: i64,
    /// The text Click sent; Complete must send the same.
    pub merchant_trans_id: String,
    pub amount_tiyin: i64,
    pub state: PrepareState,
    /// Click's negative `error` that cancelled the attempt (e.g. -5017).
    pub click_error: Option<i32>,
}

/// A prepare to insert; the store assigns `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewClickPrepare {
    pub click_trans_id: i64,
    pub click_paydoc_id: i64,
    pub order_id: i64,
    pub merchant_trans_id: String,
    pub amount_tiyin: i64,
}

impl NewClickPrepare {
    /// The stored record once the store gave it `id` (state `prepared`).
    pub fn with_id(self, id: i64) -> ClickPrepare {
        ClickPrepare {
            id,
            click_trans_id: self.click_trans_id,
            click_paydoc_id: self.click_paydoc_id,
            order_id: self.order_id,
            merchant_trans_id: self.merchant_trans_id,
            amount_tiyin: self.amount_tiyin,
            state: PrepareState::Prepared,
            click_error: None,
        }
    }
}

/// An order as the rules need it. Map paygate's `failed` and `cancelled`
/// orders to [`OrderState::Cancelled`]: neither can be paid any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderState {
    Pending,
    Paid,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderFacts {
    pub id: i64,
    pub amount_tiyin: i64,
    pub state: OrderState,
}

/// What the caller loads before deciding.
///
/// - Prepare: `order` = the order `merchant_trans_id` names
///   ([`super::protocol::Fields::order_id`]; `None` if it names none), and
///   `prepare` = the prepare already recorded for this `click_trans_id`.
/// - Complete: `prepare` = the prepare whose id is `merchant_prepare_id`, and
///   `order` = that prepare's order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    pub order: Option<OrderFacts>,
    pub prepare: Option<ClickPrepare>,
}

/// What to persist, in one write, before answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing changes.
    None,
    /// Insert the prepare (unique `click_trans_id`), then answer
    /// `decision.answer.with_prepare_id(id)`.
    RecordPrepare(NewClickPrepare),
    /// Prepare → completed, payment completed, order paid; only while the
    /// prepare is still `prepared` and the order `pending`.
    Complete { prepare_id: i64, order_id: i64 },
    /// Prepare → cancelled with Click's error; only while still `prepared`.
    /// The order stays as it is.
    Cancel {
        prepare_id: i64,
        order_id: i64,
        click_error: i32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// For [`Effect::RecordPrepare`], without `merchant_prepare_id` until the
    /// insert gives one.
    pub answer: Answer,
    pub effect: Effect,
}

impl Decision {
    fn answer(answer: Answer) -> Self {
        Decision {
            answer,
            effect: Effect::None,
        }
    }
}

/// Decides the answer and effect of an authenticated Prepare or Complete.
pub fn decide(request: &Verified, facts: &Facts) -> Decision {
    match request.action {
        Action::Prepare => decide_prepare(request, facts),
        Action::Complete {
            merchant_prepare_id,
        } => decide_complete(request, merchant_prepare_id, facts),
    }
}

fn decide_prepare(request: &Verified, facts: &Facts) -> Decision {
    let f = &request.fields;
    let answer = |code| Answer::to(request, code);
    if let Some(existing) = &facts.prepare {
        // A repeat of this attempt's Prepare: answered from what is stored.
        let with_id = |code| Decision::answer(answer(code).with_prepare_id(existing.id));
        if existing.merchant_trans_id != f.merchant_trans_id {
            // Click never moves an attempt to another order.
            return Decision::answer(answer(ErrorCode::RequestError));
        }
        if existing.amount_tiyin != f.amount_tiyin {
            return Decision::answer(answer(ErrorCode::IncorrectAmount));
        }
        return match existing.state {
            PrepareState::Completed => with_id(ErrorCode::AlreadyPaid),
            PrepareState::Cancelled => with_id(ErrorCode::TransactionCancelled),
            PrepareState::Prepared => match facts.order.map(|o| o.state) {
                // Paid meanwhile through another attempt.
                Some(OrderState::Paid) => with_id(ErrorCode::AlreadyPaid),
                Some(OrderState::Cancelled) | None => with_id(ErrorCode::TransactionCancelled),
                Some(OrderState::Pending) if f.click_error < 0 => {
                    with_id(ErrorCode::TransactionCancelled)
                }
                Some(OrderState::Pending) => with_id(ErrorCode::Success),
            },
        };
    }
    let Some(order) = facts.order else {
        return Decision::answer(answer(ErrorCode::UserDoesNotExist));
    };
    let code = if order.amount_tiyin != f.amount_tiyin {
        ErrorCode::IncorrectAmount
    } else if order.state == OrderState::Paid {
        ErrorCode::AlreadyPaid
    } else if order.state == OrderState::Cancelled || f.click_error < 0 {
        ErrorCode::TransactionCancelled
    } else {
        return Decision {
            answer: answer(ErrorCode::Success),
            effect: Effect::RecordPrepare(NewClickPrepare {
                click_trans_id: f.click_trans_id,
                click_paydoc_id: f.click_paydoc_id,
                order_id: order.id,
                merchant_trans_id: f.merchant_trans_id.clone(),
                amount_tiyin: f.amount_tiyin,
            }),
        };
    };
    Decision::answer(answer(code))
}

fn decide_complete(request: &Verified, merchant_prepare_id: i64, facts: &Facts) -> Decision {
    let f = &request.fields;
    let answer = |code| Answer::to(request, code);
    let prepare = match &facts.prepare {
        Some(p)
            if p.id == merchant_prepare_id
                && p.merchant_trans_id == f.merchant_trans_id
                && p.click_trans_id == f.click_trans_id =>
        {
            p
        }
        _ => return Decision::answer(answer(ErrorCode::TransactionDoesNotExist)),
    };
    let cancel = |click_error| Decision {
        answer: answer(ErrorCode::TransactionCancelled),
        effect: Effect::Cancel {
            prepare_id: prepare.id,
            order_id: prepare.order_id,
            click_error,
        },
    };
    if f.click_error < 0 {
        return match prepare.state {
            PrepareState::Prepared => cancel(f.click_error),
            // Scenario 8 for a completed attempt: -9, and nothing is un-paid.
            PrepareState::Completed | PrepareState::Cancelled => {
                Decision::answer(answer(ErrorCode::TransactionCancelled))
            }
        };
    }
    match prepare.state {
        PrepareState::Completed => {
            return Decision::answer(answer(ErrorCode::AlreadyPaid).with_confirm_id(prepare.id))
        }
        PrepareState::Cancelled => {
            return Decision::answer(answer(ErrorCode::TransactionCancelled))
        }
        PrepareState::Prepared => {}
    }
    if f.amount_tiyin != prepare.amount_tiyin {
        return Decision::answer(answer(ErrorCode::IncorrectAmount));
    }
    match facts.order.map(|o| o.state) {
        Some(OrderState::Pending) => Decision {
            answer: answer(ErrorCode::Success).with_confirm_id(prepare.id),
            effect: Effect::Complete {
                prepare_id: prepare.id,
                order_id: prepare.order_id,
            },
        },
        // Another attempt paid the order first; this one must not pay it twice.
        Some(OrderState::Paid) => Decision::answer(answer(ErrorCode::AlreadyPaid)),
        // The order can no longer be paid (or is gone): the attempt ends here.
        Some(OrderState::Cancelled) | None => cancel(f.click_error),
    }
}

#[cfg(test)]
mod tests {
    use super::super::protocol::tests::verified;
    use super::*;
    use std::collections::HashMap;

    const ORDER: OrderFacts = OrderFacts {
        id: 197,
        amount_tiyin: 500_000,
        state: OrderState::Pending,
    };

    fn prepare(state: PrepareState) -> ClickPrepare {
        ClickPrepare {
            id: 55,
            click_trans_id: 2011976,
            click_paydoc_id: 3300112,
            order_id: 197,
            merchant_trans_id: "197".into(),
            amount_tiyin: 500_000,
            state,
            click_error: None,
        }
    }

    fn facts(order: Option<OrderFacts>, prepare: Option<ClickPrepare>) -> Facts {
        Facts { order, prepare }
    }

    fn order(state: OrderState) -> Option<OrderFacts> {
        Some(OrderFacts { state, ..ORDER })
    }

    /// Fields to override in a test request (`None` drops the field).
    type Overrides<'a> = &'a [(&'a str, Option<&'a str>)];

    fn code(d: &Decision) -> i32 {
        d.answer.error
    }

    // ---- Prepare ----

    #[test]
    fn prepare_records_a_new_attempt() {
        let d = decide(
            &verified("0", &[]),
            &facts(order(OrderState::Pending), None),
        );
        assert_eq!(code(&d), 0);
        assert_eq!(
            d.answer.merchant_prepare_id, None,
            "the insert gives the id"
        );
        assert_eq!(d.answer.click_trans_id, Some(2011976));
        assert_eq!(d.answer.merchant_trans_id.as_deref(), Some("197"));
        let Effect::RecordPrepare(new) = d.effect else {
            panic!("{:?}", d.effect)
        };
        assert_eq!(new.clone().with_id(55), prepare(PrepareState::Prepared));
        assert_eq!(new.order_id, 197);
    }

    #[test]
    fn prepare_checks_in_documented_order() {
        let cases: &[(Option<OrderFacts>, Overrides, i32)] = &[
            (None, &[], -5),
            (
                order(OrderState::Pending),
                &[("amount", Some("4999.99"))],
                -2,
            ),
            (order(OrderState::Pending), &[("amount", Some("0"))], -2),
            // Amount is checked before the order's state.
            (order(OrderState::Paid), &[("amount", Some("1"))], -2),
            (order(OrderState::Paid), &[], -4),
            (order(OrderState::Cancelled), &[], -9),
            // Paid wins over Click's own error.
            (order(OrderState::Paid), &[("error", Some("-5017"))], -4),
            (order(OrderState::Pending), &[("error", Some("-1"))], -9),
            (
                order(OrderState::Pending),
                &[("amount", Some("5000.00"))],
                0,
            ),
        ];
        for (order, overrides, expected) in cases {
            let d = decide(&verified("0", overrides), &facts(*order, None));
            assert_eq!(code(&d), *expected, "{order:?} {overrides:?}");
            if *expected != 0 {
                assert_eq!(d.effect, Effect::None);
                assert_eq!(d.answer.merchant_prepare_id, None);
            }
        }
    }

    #[test]
    fn repeated_prepare_answers_from_the_stored_attempt() {
        let pending = order(OrderState::Pending);
        let cases = [
            (PrepareState::Prepared, pending, 0),
            (PrepareState::Prepared, order(OrderState::Paid), -4),
            (PrepareState::Prepared, order(OrderState::Cancelled), -9),
            (PrepareState::Prepared, None, -9),
            (PrepareState::Completed, order(OrderState::Paid), -4),
            (PrepareState::Cancelled, pending, -9),
        ];
        for (state, order, expected) in cases {
            let d = decide(&verified("0", &[]), &facts(order, Some(prepare(state))));
            assert_eq!(code(&d), expected, "{state:?} {order:?}");
            assert_eq!(d.answer.merchant_prepare_id, Some(55));
            assert_eq!(d.effect, Effect::None, "a repeat never writes");
        }
        // Same attempt, Click now reports its failure: -9, nothing written.
        let d = decide(
            &verified("0", &[("error", Some("-5017"))]),
            &facts(pending, Some(prepare(PrepareState::Prepared))),
        );
        assert_eq!((code(&d), &d.effect), (-9, &Effect::None));
    }

    #[test]
    fn repeated_prepare_must_match_the_attempt() {
        let stored = Some(prepare(PrepareState::Prepared));
        let d = decide(
            &verified("0", &[("merchant_trans_id", Some("198"))]),
            &facts(order(OrderState::Pending), stored.clone()),
        );
        assert_eq!(code(&d), -8);
        let d = decide(
            &verified("0", &[("amount", Some("6000"))]),
            &facts(order(OrderState::Pending), stored),
        );
        assert_eq!(code(&d), -2);
    }

    // ---- Complete ----

    #[test]
    fn complete_pays_a_prepared_attempt() {
        for amount in ["5000", "5000.0", "5000.00"] {
            let d = decide(
                &verified("1", &[("amount", Some(amount))]),
                &facts(
                    order(OrderState::Pending),
                    Some(prepare(PrepareState::Prepared)),
                ),
            );
            assert_eq!(code(&d), 0);
            assert_eq!(d.answer.merchant_confirm_id, Some(55));
            assert_eq!(
                d.effect,
                Effect::Complete {
                    prepare_id: 55,
                    order_id: 197
                }
            );
        }
    }

    #[test]
    fn complete_needs_the_attempts_own_prepare() {
        let pending = order(OrderState::Pending);
        let cases: Vec<(Overrides, Option<ClickPrepare>)> = vec![
            (&[], None),
            (
                &[("merchant_prepare_id", Some("56"))],
                Some(prepare(PrepareState::Prepared)),
            ),
            (
                &[("merchant_trans_id", Some("198"))],
                Some(prepare(PrepareState::Prepared)),
            ),
            (
                &[("click_trans_id", Some("2011977"))],
                Some(prepare(PrepareState::Prepared)),
            ),
            // Even Click's error cannot cancel a prepare that is not this attempt's.
            (
                &[("error", Some("-5017")), ("merchant_trans_id", Some("198"))],
                Some(prepare(PrepareState::Prepared)),
            ),
        ];
        for (overrides, stored) in cases {
            let d = decide(&verified("1", overrides), &facts(pending, stored));
            assert_eq!(code(&d), -6, "{overrides:?}");
            assert_eq!(d.effect, Effect::None);
            assert_eq!(d.answer.merchant_confirm_id, None);
        }
    }

    #[test]
    fn complete_with_clicks_error_cancels() {
        let failed = [
            ("error", Some("-5017")),
            ("error_note", Some("Insufficient funds")),
        ];
        let d = decide(
            &verified("1", &failed),
            &facts(
                order(OrderState::Pending),
                Some(prepare(PrepareState::Prepared)),
            ),
        );
        assert_eq!(code(&d), -9);
        assert_eq!(
            d.effect,
            Effect::Cancel {
                prepare_id: 55,
                order_id: 197,
                click_error: -5017
            }
        );
        // Already settled attempts: -9, and nothing changes (a paid one stays paid).
        for (state, order) in [
            (PrepareState::Cancelled, order(OrderState::Pending)),
            (PrepareState::Completed, order(OrderState::Paid)),
        ] {
            let d = decide(&verified("1", &failed), &facts(order, Some(prepare(state))));
            assert_eq!((code(&d), &d.effect), (-9, &Effect::None), "{state:?}");
        }
        // Click's error wins over a wrong amount.
        let d = decide(
            &verified("1", &[("error", Some("-1")), ("amount", Some("300"))]),
            &facts(
                order(OrderState::Pending),
                Some(prepare(PrepareState::Prepared)),
            ),
        );
        assert_eq!(code(&d), -9);
    }

    #[test]
    fn complete_of_settled_attempts() {
        let d = decide(
            &verified("1", &[]),
            &facts(
                order(OrderState::Paid),
                Some(prepare(PrepareState::Completed)),
            ),
        );
        assert_eq!((code(&d), d.answer.merchant_confirm_id), (-4, Some(55)));
        assert_eq!(d.effect, Effect::None);
        let d = decide(
            &verified("1", &[]),
            &facts(
                order(OrderState::Pending),
                Some(prepare(PrepareState::Cancelled)),
            ),
        );
        assert_eq!((code(&d), &d.effect), (-9, &Effect::None));
        // -4 comes before the amount check: a repeat is a repeat.
        let d = decide(
            &verified("1", &[("amount", Some("300"))]),
            &facts(
                order(OrderState::Paid),
                Some(prepare(PrepareState::Completed)),
            ),
        );
        assert_eq!(code(&d), -4);
    }

    #[test]
    fn complete_checks_amount_and_the_order() {
        let stored = Some(prepare(PrepareState::Prepared));
        let d = decide(
            &verified("1", &[("amount", Some("300"))]),
            &facts(order(OrderState::Pending), stored.clone()),
        );
        assert_eq!((code(&d), &d.effect), (-2, &Effect::None));
        let d = decide(
            &verified("1", &[]),
            &facts(order(OrderState::Paid), stored.clone()),
        );
        assert_eq!((code(&d), &d.effect), (-4, &Effect::None));
        for gone in [order(OrderState::Cancelled), None] {
            let d = decide(&verified("1", &[]), &facts(gone, stored.clone()));
            assert_eq!(code(&d), -9);
            assert!(matches!(d.effect, Effect::Cancel { click_error: 0, .. }));
        }
    }

    // ---- Click's acceptance matrix, played against an in-memory store ----

    #[derive(Default)]
    struct Memory {
        orders: HashMap<i64, OrderFacts>,
        prepares: HashMap<i64, ClickPrepare>,
        next_id: i64,
    }

    impl Memory {
        /// Loads facts, decides, applies the effect as a store would.
        fn call(&mut self, action: &str, overrides: &[(&str, Option<&str>)]) -> Answer {
            let body = super::super::protocol::tests::body(action, overrides);
            let req = match super::super::protocol::parse_form(body.as_bytes()) {
                Ok(r) => r,
                Err(rejection) => return rejection.answer(),
            };
            let v = match super::super::protocol::authenticate(req, "SECRET", 12345) {
                Ok(v) => v,
                Err(rejection) => return rejection.answer(),
            };
            let facts = match v.action {
                Action::Prepare => Facts {
                    order: v
                        .fields
                        .order_id()
                        .and_then(|id| self.orders.get(&id).copied()),
                    prepare: self
                        .prepares
                        .values()
                        .find(|p| p.click_trans_id == v.fields.click_trans_id)
                        .cloned(),
                },
                Action::Complete {
                    merchant_prepare_id,
                } => {
                    let prepare = self.prepares.get(&merchant_prepare_id).cloned();
                    Facts {
                        order: prepare
                            .as_ref()
                            .and_then(|p| self.orders.get(&p.order_id).copied()),
                        prepare,
                    }
                }
            };
            let d = decide(&v, &facts);
            match d.effect {
                Effect::None => d.answer,
                Effect::RecordPrepare(new) => {
                    self.next_id += 1;
                    let id = self.next_id;
                    self.prepares.insert(id, new.with_id(id));
                    d.answer.with_prepare_id(id)
                }
                Effect::Complete {
                    prepare_id,
                    order_id,
                } => {
                    self.prepares.get_mut(&prepare_id).unwrap().state = PrepareState::Completed;
                    self.orders.get_mut(&order_id).unwrap().state = OrderState::Paid;
                    d.answer
                }
                Effect::Cancel {
                    prepare_id,
                    click_error,
                    ..
                } => {
                    let p = self.prepares.get_mut(&prepare_id).unwrap();
                    p.state = PrepareState::Cancelled;
                    p.click_error = Some(click_error);
                    d.answer
                }
            }
        }

        fn add_order(&mut self, id: i64) {
            self.orders.insert(id, OrderFacts { id, ..ORDER });
        }
    }

    /// One call of the matrix: order, attempt, our prepare id (Complete), extra fields.
    fn play(
        m: &mut Memory,
        action: &str,
        (order, trans): (&str, &str),
        prepare_id: Option<i64>,
        amount: &str,
        extra: &[(&str, &str)],
    ) -> Answer {
        let id = prepare_id.map(|i| i.to_string());
        let mut o: Vec<(&str, Option<&str>)> = vec![
            ("merchant_trans_id", Some(order)),
            ("click_trans_id", Some(trans)),
            ("amount", Some(amount)),
        ];
        if let Some(id) = &id {
            o.push(("merchant_prepare_id", Some(id)));
        }
        o.extend(extra.iter().map(|(k, v)| (*k, Some(*v))));
        m.call(action, &o)
    }

    #[test]
    fn the_fifteen_scenarios_and_the_retry() {
        let bad_sign = [("sign_string", "00000000000000000000000000000000")];
        let failed = [("error", "-5017"), ("error_note", "Insufficient funds")];
        for amount in ["5000", "5000.0", "5000.00"] {
            let mut m = Memory::default();
            for id in [197, 198, 199, 200] {
                m.add_order(id);
            }
            let mut p = |action, attempt, id, extra: &[(&str, &str)]| {
                play(&mut m, action, attempt, id, amount, extra).error
            };
            let a1 = ("197", "1");
            assert_eq!(p("0", a1, None, &bad_sign), -1, "1");
            assert_eq!(p("0", ("9999", "2"), None, &[]), -5, "2");
            assert_eq!(p("0", a1, None, &[]), 0, "3");
            let id1 = Some(1);
            assert_eq!(p("1", a1, id1, &bad_sign), -1, "4");
            assert_eq!(p("1", a1, id1, &[("amount", "300")]), -2, "5");
            assert_eq!(p("1", a1, id1, &[]), 0, "6");
            assert_eq!(p("1", a1, id1, &[]), -4, "7");
            assert_eq!(p("1", a1, id1, &failed), -9, "8");
            let a2 = ("198", "3");
            assert_eq!(p("0", a2, None, &[]), 0, "9");
            assert_eq!(p("1", a2, Some(999_999_999), &[]), -6, "10");
            assert_eq!(p("1", a2, Some(2), &[]), 0, "11");
            let a3 = ("199", "4");
            assert_eq!(p("0", a3, None, &[]), 0, "12");
            assert_eq!(p("1", a3, Some(3), &failed), -9, "13");
            assert_eq!(p("1", a3, Some(3), &failed), -9, "14");
            assert_eq!(p("1", a3, Some(3), &[]), -9, "15");
            // The retry case: Complete's answer is lost and Click sends it again.
            let a4 = ("200", "5");
            assert_eq!(p("0", a4, None, &[]), 0);
            assert_eq!(p("1", a4, Some(4), &[]), 0);
            assert_eq!(p("1", a4, Some(4), &[]), -4);

            assert_eq!(m.orders[&197].state, OrderState::Paid, "8 does not un-pay");
            assert_eq!(
                m.orders[&199].state,
                OrderState::Pending,
                "the payer may retry"
            );
            assert_eq!(m.prepares[&3].click_error, Some(-5017));
            // A repeated Prepare gets the identical answer, ids included.
            let first = play(&mut m, "0", ("200", "5"), None, amount, &[]);
            let again = play(&mut m, "0", ("200", "5"), None, amount, &[]);
            assert_eq!((first.error, first.merchant_prepare_id), (-4, Some(4)));
            assert_eq!(first, again);
            m.add_order(201);
            let first = play(&mut m, "0", ("201", "6"), None, amount, &[]);
            let again = play(&mut m, "0", ("201", "6"), None, amount, &[]);
            assert_eq!((first.error, first.merchant_prepare_id), (0, Some(5)));
            assert_eq!(first, again);
            assert_eq!(m.prepares.len(), 5, "one record per attempt");
        }
    }

    #[test]
    fn records_serialize_for_storage() {
        let p = ClickPrepare {
            click_error: Some(-5017),
            ..prepare(PrepareState::Cancelled)
        };
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["state"], "cancelled");
        assert_eq!(serde_json::from_value::<ClickPrepare>(json).unwrap(), p);
        for s in [
            PrepareState::Prepared,
            PrepareState::Completed,
            PrepareState::Cancelled,
        ] {
            assert_eq!(PrepareState::parse(s.as_str()), Some(s));
        }
        assert_eq!(PrepareState::parse("paid"), None);
    }
}
