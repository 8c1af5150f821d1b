//! The merchant test run: points at any Payme merchant endpoint and runs the
//! scenario list of Payme's own sandbox test tool (docs/gateways/payme.md,
//! "Simulator checklist"), returning one [`ScenarioResult`] per scenario.
//!
//! What it needs: the endpoint URL, the cashbox key, the account field, and
//! orders to pay. One order is enough for the credential, account, amount,
//! create/perform/cancel, repeat, statement and "second transaction"
//! scenarios; the scenarios that need an order of their own (cancel before
//! perform, concurrent repeats, the 12-hour timeout) are skipped unless a
//! way to make fresh orders is given ([`orders_from_url`] or any closure).
//! Every order the run uses ends paid and refunded, or cancelled: give it
//! test orders only.
//!
//! The timeout scenario creates a transaction whose `time` is
//! `expiry_margin` short of 12 hours old, waits `expiry_margin` + 1 s and
//! expects PerformTransaction to refuse it (-31008) and CheckTransaction to
//! show state -1 with reason 4. The merchant's clock must agree with ours to
//! within about a second for this to be meaningful.
//!
//! The statement scenario gives its transactions `time` values two minutes
//! in the past, so a merchant that filters GetStatement on its own
//! `create_time` instead of Payme's `time` fails it.

use super::rpc::{self, Reply};
use serde_json::{json, Map, Value};
use std::future::Future;
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// 12 hours: a state-1 transaction older than this (by Payme's `time`) is dead.
const TIMEOUT_MS: i64 = 43_200_000;
const ACCOUNT_ERRORS: RangeInclusive<i64> = -31099..=-31050;

/// An order the run may pay (and then refund).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOrder {
    /// The account value (`ac.<field>`), e.g. `"17"`.
    pub order_id: String,
    pub amount_tiyin: i64,
}

pub type OrderFuture = Pin<Box<dyn Future<Output = Result<TestOrder, String>> + Send>>;
/// Makes a fresh order each time it is called.
pub type OrderFactory = Arc<dyn Fn() -> OrderFuture + Send + Sync>;

/// What to test.
#[derive(Clone)]
pub struct MerchantTest {
    /// The merchant's Payme endpoint, e.g. `http://127.0.0.1:8080/payme/`.
    pub url: String,
    /// The cashbox key (`Paycom:<key>`).
    pub key: String,
    /// The account field, e.g. `order_id`.
    pub account_field: String,
    /// An order the run may use; without it the first fresh order is used.
    pub order: Option<TestOrder>,
    pub new_order: Option<OrderFactory>,
    pub expiry_margin: Duration,
}

impl MerchantTest {
    pub fn new(url: &str, key: &str) -> Self {
        Self {
            url: url.to_owned(),
            key: key.to_owned(),
            account_field: "order_id".to_owned(),
            order: None,
            new_order: None,
            expiry_margin: Duration::from_secs(2),
        }
    }
}

/// Fresh orders from a shop's order-creation URL: `POST {"product_name",
/// "amount": "<so'm>", "payment_type": "payme"}` (paygate's
/// `POST /api/orders/create`), reading `order_id` (number or string) from a
/// 2xx JSON answer. Each order is for `amount_tiyin`.
pub fn orders_from_url(url: &str, amount_tiyin: i64) -> OrderFactory {
    let url = url.to_owned();
    let http = client();
    Arc::new(move || {
        let (url, http) = (url.clone(), http.clone());
        Box::pin(async move {
            let http = http?;
            let amount = format!("{}.{:02}", amount_tiyin / 100, amount_tiyin % 100);
            let body = json!({"product_name": "Payme merchant test", "amount": amount, "payment_type": "payme"});
            let response = http
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| format!("creating an order at {url} failed: {e}"))?;
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            if !status.is_success() {
                return Err(format!(
                    "creating an order answered HTTP {}: {text}",
                    status.as_u16()
                ));
            }
            let answer: Value = serde_json::from_str(&text)
                .map_err(|_| format!("the order answer is not JSON: {text}"))?;
            let order_id = match answer.get("order_id") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => return Err(format!("the order answer has no order_id: {text}")),
            };
            Ok(TestOrder {
                order_id,
                amount_tiyin,
            })
        })
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// Not run (it needs fresh orders, or a step before it failed).
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioResult {
    pub scenario: String,
    pub verdict: Verdict,
    pub detail: String,
}

impl ScenarioResult {
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }

    pub fn failed(&self) -> bool {
        self.verdict == Verdict::Fail
    }
}

/// The run's HTTP client: bounded waits, redirects not followed (a Payme
/// endpoint answers 200 or it is wrong).
fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// Runs every scenario against `test.url`.
pub async fn run(test: &MerchantTest) -> Vec<ScenarioResult> {
    let http = match client() {
        Ok(http) => http,
        Err(why) => {
            return vec![ScenarioResult {
                scenario: "setup".to_owned(),
                verdict: Verdict::Fail,
                detail: why,
            }]
        }
    };
    let mut r = Runner {
        test,
        http,
        next_id: 1000,
        results: Vec::new(),
        envelope: Vec::new(),
        calls: 0,
    };
    r.run_all().await;
    r.results
}

type Check = Result<String, String>;

struct Runner<'a> {
    test: &'a MerchantTest,
    http: reqwest::Client,
    next_id: u64,
    results: Vec<ScenarioResult>,
    /// Envelope faults seen on any call (reported by the last scenario).
    envelope: Vec<String>,
    calls: u64,
}

/// A created transaction: what we sent and what the merchant answered.
#[derive(Clone)]
struct Created {
    id: String,
    time: i64,
    order: TestOrder,
    answer: Map<String, Value>,
}

impl Runner<'_> {
    fn record(&mut self, scenario: &str, outcome: Check) {
        let (verdict, detail) = match outcome {
            Ok(detail) => (Verdict::Pass, detail),
            Err(detail) => (Verdict::Fail, detail),
        };
        self.results.push(ScenarioResult {
            scenario: scenario.to_owned(),
            verdict,
            detail,
        });
    }

    fn skip(&mut self, scenario: &str, why: &str) {
        self.results.push(ScenarioResult {
            scenario: scenario.to_owned(),
            verdict: Verdict::Skip,
            detail: why.to_owned(),
        });
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn account(&self, order_id: &str) -> Value {
        let mut account = Map::new();
        account.insert(
            self.test.account_field.clone(),
            Value::String(order_id.to_owned()),
        );
        Value::Object(account)
    }

    async fn send(
        &mut self,
        auth: Option<String>,
        body: Vec<u8>,
        id: Value,
    ) -> Result<Reply, String> {
        let exchange = rpc::send(&self.http, &self.test.url, auth.as_deref(), body, &id).await;
        self.calls += 1;
        self.envelope.extend(exchange.problems);
        if let Err(why) = &exchange.reply {
            self.envelope.push(why.clone());
        }
        exchange.reply
    }

    async fn call(&mut self, method: &str, params: Value) -> Result<Reply, String> {
        let id = self.id();
        let body = rpc::request_body(id, method, params);
        self.send(Some(rpc::basic_auth(&self.test.key)), body, json!(id))
            .await
    }

    async fn fresh_order(&self) -> Option<Result<TestOrder, String>> {
        let factory = self.test.new_order.as_ref()?;
        Some(factory().await)
    }

    async fn run_all(&mut self) {
        let first = match (&self.test.order, self.fresh_order().await) {
            (Some(order), _) => Ok(order.clone()),
            (None, Some(made)) => made,
            (None, None) => {
                Err("no order to test with: give an order or a way to create orders".into())
            }
        };
        let o1 = match first {
            Ok(o) => o,
            Err(why) => {
                self.record("orders", Err(why));
                return;
            }
        };
        self.credentials(&o1).await;
        self.malformed().await;
        self.account_and_amount(&o1).await;
        let base = now_ms() - 120_000;
        let t1 = self.create_and_repeat(&o1, base).await;
        self.second_transaction(&o1, base + 500).await;
        self.perform_and_repeat(t1.as_ref()).await;
        self.unknown_transaction().await;
        self.refund(t1.as_ref()).await;
        let o2 = self.order_for("cancel before perform").await;
        let t3 = match &o2 {
            Some(o) => self.cancel_before_perform(o, base + 1000).await,
            None => None,
        };
        self.statement(t1.as_ref(), t3.as_ref(), base).await;
        if let Some(o) = self.order_for("concurrent repeats").await {
            self.concurrent(&o).await;
        }
        match self.order_for("12-hour timeout").await {
            Some(o) => self.timeout(&o).await,
            None => self.skip("create with an expired time", "needs a fresh order"),
        }
        let envelope = if self.envelope.is_empty() {
            Ok(format!(
                "{} calls: all HTTP 200 with the id echoed",
                self.calls
            ))
        } else {
            Err(self.envelope.join("; "))
        };
        self.record(
            "every answer: HTTP 200, id echoed, result or error",
            envelope,
        );
    }

    /// A fresh order for `scenario`, or a recorded skip/failure.
    async fn order_for(&mut self, scenario: &str) -> Option<TestOrder> {
        match self.fresh_order().await {
            Some(Ok(o)) => Some(o),
            Some(Err(why)) => {
                self.record(scenario, Err(why));
                None
            }
            None => {
                self.skip(scenario, "needs a way to create fresh orders");
                None
            }
        }
    }

    async fn credentials(&mut self, o: &TestOrder) {
        let params = json!({"amount": o.amount_tiyin, "account": self.account(&o.order_id)});
        let mut outcome = Ok("a wrong key and a missing header both get -32504".to_owned());
        for auth in [
            Some(rpc::basic_auth(&format!("{}-wrong", self.test.key))),
            None,
        ] {
            let id = self.id();
            let body = rpc::request_body(id, "CheckPerformTransaction", params.clone());
            let reply = self.send(auth.clone(), body, json!(id)).await;
            if let Err(why) = expect_error(&reply, -32504..=-32504) {
                let which = if auth.is_some() {
                    "wrong key"
                } else {
                    "no Authorization"
                };
                outcome = Err(format!("{which}: {why}"));
            }
        }
        self.record("bad credentials", outcome);
    }

    async fn malformed(&mut self) {
        let reply = self
            .send(
                Some(rpc::basic_auth(&self.test.key)),
                br#"{"id": 1, "method": "CheckTransaction", "params": {"#.to_vec(),
                Value::Null,
            )
            .await;
        let outcome = expect_error(&reply, -32700..=-32700).map(|_| "-32700".to_owned());
        self.record("unparsable JSON", outcome);
        let reply = self.call("NoSuchMethod", json!({})).await;
        let outcome = expect_error(&reply, -32601..=-32601).and_then(|(_, _, data)| {
            if data == json!("NoSuchMethod") {
                Ok("-32601 with data = the method".to_owned())
            } else {
                Err(format!("-32601 but data is {data}, not the method"))
            }
        });
        self.record("unknown method", outcome);
    }

    async fn account_and_amount(&mut self, o: &TestOrder) {
        let missing = format!("no-such-order-{}", &rpc::new_payme_id()[..12]);
        let reply = self
            .call(
                "CheckPerformTransaction",
                json!({"amount": o.amount_tiyin, "account": self.account(&missing)}),
            )
            .await;
        let field = self.test.account_field.clone();
        let outcome = expect_error(&reply, ACCOUNT_ERRORS).and_then(|(code, message, data)| {
            localized(&message)?;
            if data != json!(field) {
                return Err(format!("{code} but data is {data}, not {field:?}"));
            }
            Ok(format!("{code}, localized, data = {field:?}"))
        });
        self.record("unknown account", outcome);

        let reply = self
            .call(
                "CheckPerformTransaction",
                json!({"amount": o.amount_tiyin + 100, "account": self.account(&o.order_id)}),
            )
            .await;
        let outcome = expect_error(&reply, -31001..=-31001).map(|_| "-31001".to_owned());
        self.record("wrong amount", outcome);

        let reply = self
            .call(
                "CheckPerformTransaction",
                json!({"amount": o.amount_tiyin, "account": self.account(&o.order_id)}),
            )
            .await;
        let outcome = expect_result(&reply).and_then(|r| match r.get("allow") {
            Some(Value::Bool(true)) => Ok("allow: true".to_owned()),
            other => Err(format!("allow is {other:?}")),
        });
        self.record("check perform", outcome);
    }

    async fn create(&mut self, o: &TestOrder, id: &str, time: i64) -> Result<Reply, String> {
        self.call(
            "CreateTransaction",
            json!({"id": id, "time": time, "amount": o.amount_tiyin, "account": self.account(&o.order_id)}),
        )
        .await
    }

    async fn create_and_repeat(&mut self, o: &TestOrder, time: i64) -> Option<Created> {
        let id = rpc::new_payme_id();
        let reply = self.create(o, &id, time).await;
        let created = expect_result(&reply).and_then(|r| {
            expect_state(&r, 1)?;
            transaction_of(&r)?;
            time_of(&r, "create_time", false)?;
            Ok(r)
        });
        let created = match created {
            Ok(answer) => {
                self.record("create", Ok("state 1 with our transaction id".into()));
                Created {
                    id: id.clone(),
                    time,
                    order: o.clone(),
                    answer,
                }
            }
            Err(why) => {
                self.record("create", Err(why));
                self.skip("repeat create", "create failed");
                return None;
            }
        };
        let again = self.create(o, &id, time).await;
        let outcome = expect_result(&again).and_then(|r| same(&created.answer, &r));
        self.record("repeat create", outcome);
        let reply = self.call("CheckTransaction", json!({"id": id})).await;
        let outcome = expect_result(&reply).and_then(|r| {
            expect_state(&r, 1)?;
            expect_eq(&r, "create_time", &created.answer["create_time"])?;
            expect_eq(&r, "transaction", &created.answer["transaction"])?;
            expect_eq(&r, "perform_time", &json!(0))?;
            expect_eq(&r, "cancel_time", &json!(0))?;
            expect_eq(&r, "reason", &Value::Null)?;
            Ok("state 1, unset times 0, reason null".into())
        });
        self.record("check after create", outcome);
        Some(created)
    }

    async fn second_transaction(&mut self, o: &TestOrder, time: i64) {
        let id = rpc::new_payme_id();
        let reply = self.create(o, &id, time).await;
        let outcome = match expect_error(&reply, ACCOUNT_ERRORS) {
            Ok((code, _, _)) => Ok(format!("refused with {code}")),
            Err(why) => match expect_error(&reply, -31008..=-31008) {
                Ok(_) => Ok("refused with -31008 (the docs prefer -31050…-31099)".into()),
                Err(_) => Err(why),
            },
        };
        self.record("second transaction for the same order", outcome);
        let reply = self.call("CheckTransaction", json!({"id": id})).await;
        let outcome = expect_error(&reply, -31003..=-31003)
            .map(|_| "the refused transaction was not stored".to_owned());
        self.record("a refused create stores nothing", outcome);
    }

    async fn perform_and_repeat(&mut self, t: Option<&Created>) {
        let Some(t) = t else {
            self.skip("perform", "create failed");
            self.skip("repeat perform", "create failed");
            return;
        };
        let reply = self.call("PerformTransaction", json!({"id": t.id})).await;
        let first = expect_result(&reply).and_then(|r| {
            expect_state(&r, 2)?;
            expect_eq(&r, "transaction", &t.answer["transaction"])?;
            time_of(&r, "perform_time", false)?;
            Ok(r)
        });
        match first {
            Ok(first) => {
                self.record("perform", Ok("state 2 with perform_time".into()));
                let reply = self.call("PerformTransaction", json!({"id": t.id})).await;
                let outcome = expect_result(&reply).and_then(|r| same(&first, &r));
                self.record("repeat perform", outcome);
            }
            Err(why) => {
                self.record("perform", Err(why));
                self.skip("repeat perform", "perform failed");
            }
        }
    }

    async fn unknown_transaction(&mut self) {
        let id = rpc::new_payme_id();
        let mut outcome =
            Ok("-31003 from CheckTransaction, PerformTransaction and CancelTransaction".to_owned());
        for (method, params) in [
            ("CheckTransaction", json!({"id": id})),
            ("PerformTransaction", json!({"id": id})),
            ("CancelTransaction", json!({"id": id, "reason": 1})),
        ] {
            let reply = self.call(method, params).await;
            if let Err(why) = expect_error(&reply, -31003..=-31003) {
                outcome = Err(format!("{method}: {why}"));
            }
        }
        self.record("unknown transaction", outcome);
    }

    async fn refund(&mut self, t: Option<&Created>) {
        let names = [
            "cancel after perform",
            "repeat cancel",
            "check after cancel",
            "perform after cancel",
        ];
        let Some(t) = t else {
            for n in names {
                self.skip(n, "create failed");
            }
            return;
        };
        let reply = self
            .call("CancelTransaction", json!({"id": t.id, "reason": 5}))
            .await;
        let first = expect_result(&reply).and_then(|r| {
            expect_state(&r, -2)?;
            expect_eq(&r, "transaction", &t.answer["transaction"])?;
            time_of(&r, "cancel_time", false)?;
            Ok(r)
        });
        let first = match first {
            Ok(r) => {
                self.record(names[0], Ok("state -2 (refunded)".into()));
                r
            }
            Err(why) => {
                self.record(names[0], Err(why));
                for n in &names[1..] {
                    self.skip(n, "cancel failed");
                }
                return;
            }
        };
        let reply = self
            .call("CancelTransaction", json!({"id": t.id, "reason": 5}))
            .await;
        let outcome = expect_result(&reply).and_then(|r| same(&first, &r));
        self.record(names[1], outcome);
        let reply = self.call("CheckTransaction", json!({"id": t.id})).await;
        let outcome = expect_result(&reply).and_then(|r| {
            expect_state(&r, -2)?;
            expect_eq(&r, "reason", &json!(5))?;
            expect_eq(&r, "cancel_time", &first["cancel_time"])?;
            time_of(&r, "perform_time", false)?;
            Ok("state -2, reason 5, perform_time kept".into())
        });
        self.record(names[2], outcome);
        let reply = self.call("PerformTransaction", json!({"id": t.id})).await;
        let outcome = expect_error(&reply, -31008..=-31008).map(|_| "-31008".to_owned());
        self.record(names[3], outcome);
    }

    async fn cancel_before_perform(&mut self, o: &TestOrder, time: i64) -> Option<Created> {
        let id = rpc::new_payme_id();
        let reply = self.create(o, &id, time).await;
        let answer = match expect_result(&reply).and_then(|r| expect_state(&r, 1).map(|_| r)) {
            Ok(r) => r,
            Err(why) => {
                self.record("cancel before perform", Err(format!("create: {why}")));
                self.skip("perform a cancelled transaction", "create failed");
                return None;
            }
        };
        let reply = self
            .call("CancelTransaction", json!({"id": id, "reason": 3}))
            .await;
        let outcome = expect_result(&reply).and_then(|r| {
            expect_state(&r, -1)?;
            time_of(&r, "cancel_time", false)?;
            Ok("state -1".to_owned())
        });
        self.record("cancel before perform", outcome);
        let reply = self.call("PerformTransaction", json!({"id": id})).await;
        let performed = expect_error(&reply, -31008..=-31008).map(|_| ());
        let reply = self.call("CheckTransaction", json!({"id": id})).await;
        let outcome = performed.and_then(|()| {
            let r = expect_result(&reply)?;
            expect_state(&r, -1)?;
            expect_eq(&r, "reason", &json!(3))?;
            expect_eq(&r, "perform_time", &json!(0))?;
            Ok("-31008, and the transaction stays -1".to_owned())
        });
        self.record("perform a cancelled transaction", outcome);
        Some(Created {
            id,
            time,
            order: o.clone(),
            answer,
        })
    }

    async fn statement(&mut self, t1: Option<&Created>, t3: Option<&Created>, base: i64) {
        let Some(t1) = t1 else {
            self.skip("statement window", "create failed");
            return;
        };
        let ours: Vec<&Created> = [Some(t1), t3].into_iter().flatten().collect();
        let last = ours.iter().map(|t| t.time).max().unwrap_or(base);
        let outcome = async {
            let reply = self
                .call("GetStatement", json!({"from": base, "to": last}))
                .await;
            let rows = statement_rows(&reply)?;
            ascending(&rows)?;
            let ids: Vec<&str> = rows.iter().filter_map(|r| r.get("id")?.as_str()).collect();
            let positions: Vec<usize> = ours
                .iter()
                .map(|t| {
                    ids.iter().position(|id| *id == t.id).ok_or_else(|| {
                        format!(
                            "transaction with time {} missing from [{base}, {last}]",
                            t.time
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            if !positions.windows(2).all(|w| w[0] < w[1]) {
                return Err("transactions are not in ascending order of time".to_owned());
            }
            for (t, &at) in ours.iter().zip(&positions) {
                let row = &rows[at];
                expect_eq(row, "time", &json!(t.time))?;
                expect_eq(row, "amount", &json!(t.order.amount_tiyin))?;
                expect_eq(row, "transaction", &t.answer["transaction"])?;
                let account = row
                    .get("account")
                    .and_then(|a| a.get(&self.test.account_field));
                if account.and_then(Value::as_str) != Some(t.order.order_id.as_str())
                    && account.map(Value::to_string) != Some(t.order.order_id.clone())
                {
                    return Err(format!("account of {} is {account:?}", t.id));
                }
                for name in [
                    "create_time",
                    "perform_time",
                    "cancel_time",
                    "state",
                    "reason",
                ] {
                    if !row.contains_key(name) {
                        return Err(format!("a statement row has no {name}"));
                    }
                }
            }
            // Just inside the bounds on both sides: neither is included.
            let reply = self
                .call("GetStatement", json!({"from": base + 1, "to": last - 1}))
                .await;
            let inner = statement_rows(&reply)?;
            if inner.iter().any(|r| {
                r.get("id") == Some(&json!(t1.id))
                    || t3.is_some_and(|t| r.get("id") == Some(&json!(t.id)))
            }) {
                return Err(
                    "the window is not bounded by Payme's time (inclusive bounds)".to_owned(),
                );
            }
            Ok(format!(
                "{} transaction(s) found by Payme time, inclusive bounds, ascending",
                ours.len()
            ))
        }
        .await;
        self.record("statement window", outcome);
    }

    async fn concurrent(&mut self, o: &TestOrder) {
        let id = rpc::new_payme_id();
        let time = now_ms() - 1000;
        let key = rpc::basic_auth(&self.test.key);
        let params = json!({"id": id, "time": time, "amount": o.amount_tiyin, "account": self.account(&o.order_id)});
        let outcome = async {
            let (a, b) = self.pair("CreateTransaction", params, &key).await;
            let (a, b) = (expect_result(&a)?, expect_result(&b)?);
            expect_state(&a, 1)?;
            same(&a, &b).map_err(|e| format!("CreateTransaction: {e}"))?;
            let (a, b) = self
                .pair("PerformTransaction", json!({"id": id}), &key)
                .await;
            let (a, b) = (expect_result(&a)?, expect_result(&b)?);
            expect_state(&a, 2)?;
            same(&a, &b).map_err(|e| format!("PerformTransaction: {e}"))?;
            Ok("two simultaneous Create and Perform calls got identical answers".to_owned())
        }
        .await;
        self.record("concurrent repeats", outcome);
    }

    /// The same request twice, at the same time, with the same id.
    async fn pair(
        &mut self,
        method: &str,
        params: Value,
        auth: &str,
    ) -> (Result<Reply, String>, Result<Reply, String>) {
        let id = self.id();
        let body = rpc::request_body(id, method, params);
        let echo = json!(id);
        let send = || rpc::send(&self.http, &self.test.url, Some(auth), body.clone(), &echo);
        let (a, b) = tokio::join!(send(), send());
        self.calls += 2;
        for e in [&a, &b] {
            self.envelope.extend(e.problems.iter().cloned());
        }
        (a.reply, b.reply)
    }

    async fn timeout(&mut self, o: &TestOrder) {
        let margin = i64::try_from(self.test.expiry_margin.as_millis()).unwrap_or(2000);
        let id = rpc::new_payme_id();
        let reply = self.create(o, &id, now_ms() - TIMEOUT_MS + margin).await;
        let outcome = async {
            expect_state(&expect_result(&reply)?, 1)
                .map_err(|e| format!("create {margin} ms short of 12 hours: {e}"))?;
            tokio::time::sleep(self.test.expiry_margin + Duration::from_secs(1)).await;
            let reply = self.call("PerformTransaction", json!({"id": id})).await;
            expect_error(&reply, -31008..=-31008)
                .map_err(|e| format!("perform after 12 hours: {e}"))?;
            let reply = self.call("CheckTransaction", json!({"id": id})).await;
            let r = expect_result(&reply)?;
            expect_state(&r, -1)?;
            expect_eq(&r, "reason", &json!(4))?;
            time_of(&r, "cancel_time", false)?;
            Ok("-31008, then state -1 with reason 4".to_owned())
        }
        .await;
        self.record("12-hour timeout", outcome);
        let id = rpc::new_payme_id();
        let reply = self.create(o, &id, now_ms() - TIMEOUT_MS - 60_000).await;
        let outcome = match expect_error(&reply, -31008..=-31008) {
            Ok(_) => Ok("-31008".to_owned()),
            Err(why) => expect_error(&reply, ACCOUNT_ERRORS)
                .map(|(code, _, _)| format!("{code}"))
                .map_err(|_| why),
        };
        self.record("create with an expired time", outcome);
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn describe(reply: &Result<Reply, String>) -> String {
    match reply {
        Ok(Reply::Result(r)) => format!("result {}", Value::Object(r.clone())),
        Ok(Reply::Error { code, data, .. }) => format!("error {code} (data {data})"),
        Err(why) => why.clone(),
    }
}

fn expect_error(
    reply: &Result<Reply, String>,
    codes: RangeInclusive<i64>,
) -> Result<(i64, Value, Value), String> {
    match reply {
        Ok(Reply::Error {
            code,
            message,
            data,
        }) if codes.contains(code) => Ok((*code, message.clone(), data.clone())),
        other => Err(format!(
            "expected error {}, got {}",
            if codes.start() == codes.end() {
                codes.start().to_string()
            } else {
                format!("{}…{}", codes.end(), codes.start())
            },
            describe(other)
        )),
    }
}

fn expect_result(reply: &Result<Reply, String>) -> Result<Map<String, Value>, String> {
    match reply {
        Ok(Reply::Result(r)) => Ok(r.clone()),
        other => Err(format!("expected a result, got {}", describe(other))),
    }
}

fn expect_eq(r: &Map<String, Value>, name: &str, want: &Value) -> Result<(), String> {
    match r.get(name) {
        Some(v) if v == want => Ok(()),
        other => Err(format!(
            "{name} is {}, expected {want}",
            other.map_or("missing".into(), Value::to_string)
        )),
    }
}

fn expect_state(r: &Map<String, Value>, state: i64) -> Result<(), String> {
    expect_eq(r, "state", &json!(state))
}

fn transaction_of(r: &Map<String, Value>) -> Result<String, String> {
    match r.get("transaction") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        other => Err(format!(
            "transaction must be a non-empty string, got {other:?}"
        )),
    }
}

/// A time field: a 13-digit integer of milliseconds (or 0 if `zero_ok`).
fn time_of(r: &Map<String, Value>, name: &str, zero_ok: bool) -> Result<i64, String> {
    match r.get(name).and_then(Value::as_i64) {
        Some(0) if zero_ok => Ok(0),
        Some(t) if (1_000_000_000_000..=9_999_999_999_999).contains(&t) => Ok(t),
        _ => Err(format!(
            "{name} must be a 13-digit millisecond time, got {:?}",
            r.get(name)
        )),
    }
}

fn same(first: &Map<String, Value>, again: &Map<String, Value>) -> Check {
    if first == again {
        Ok("identical answer".to_owned())
    } else {
        Err(format!(
            "answers differ: {} then {}",
            Value::Object(first.clone()),
            Value::Object(again.clone())
        ))
    }
}

fn localized(message: &Value) -> Result<(), String> {
    for lang in ["ru", "uz", "en"] {
        if message
            .get(lang)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(format!("message has no {lang:?} text: {message}"));
        }
    }
    Ok(())
}

fn statement_rows(reply: &Result<Reply, String>) -> Result<Vec<Map<String, Value>>, String> {
    let r = expect_result(reply)?;
    match r.get("transactions") {
        Some(Value::Array(rows)) => rows
            .iter()
            .map(|row| {
                row.as_object()
                    .cloned()
                    .ok_or("a statement row is not an object".to_owned())
            })
            .collect(),
        other => Err(format!("transactions must be an array, got {other:?}")),
    }
}

fn ascending(rows: &[Map<String, Value>]) -> Result<(), String> {
    let times: Vec<i64> = rows
        .iter()
        .map(|r| {
            r.get("time")
                .and_then(Value::as_i64)
                .ok_or("a statement row has no time".to_owned())
        })
        .collect::<Result<_, _>>()?;
    if times.windows(2).all(|w| w[0] <= w[1]) {
        Ok(())
    } else {
        Err("statement rows are not in ascending order of time".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_13_digits() {
        let r =
            json!({"a": 1_700_000_000_000_i64, "b": 0, "c": 1_700_000_000, "d": "1700000000000"});
        let r = r.as_object().unwrap();
        assert!(time_of(r, "a", false).is_ok());
        assert!(time_of(r, "b", true).is_ok());
        assert!(time_of(r, "b", false).is_err());
        assert!(time_of(r, "c", false).is_err());
        assert!(time_of(r, "d", false).is_err(), "a string is not a time");
    }

    #[test]
    fn error_expectations() {
        let e = Ok(Reply::Error {
            code: -31050,
            message: json!({"ru": "a", "uz": "b", "en": "c"}),
            data: json!("order_id"),
        });
        assert!(expect_error(&e, ACCOUNT_ERRORS).is_ok());
        assert!(expect_error(&e, -31008..=-31008).is_err());
        assert!(expect_result(&e).is_err());
        assert!(localized(&json!({"ru": "a", "uz": "", "en": "c"})).is_err());
        assert!(localized(&json!("text")).is_err());
    }

    #[test]
    fn statement_order() {
        let rows: Vec<Map<String, Value>> = [1, 2, 2, 3]
            .iter()
            .map(|t| json!({"time": t}).as_object().unwrap().clone())
            .collect();
        assert!(ascending(&rows).is_ok());
        let mut reversed = rows.clone();
        reversed.reverse();
        assert!(ascending(&reversed).is_err());
    }
}
