//! Click's merchant acceptance test, runnable against any merchant: the
//! official 15-scenario matrix (gateways.md §4.6) plus the retry case (§4.9),
//! each with fresh orders from a caller-supplied source.
//!
//! Every attempt gets a fresh `click_trans_id`, as real Click gives each
//! attempt its own, so a merchant that keys attempts by it (as it should) is
//! not confused by the generator's reuse of one id. A scenario passes when
//! the merchant answers HTTP 200 with JSON whose `error` is the expected one,
//! echoes our `click_trans_id` / `merchant_trans_id` correctly when it echoes
//! them, and (for a successful Prepare) carries `merchant_prepare_id`.

use super::wire::{self, parse_som, AmountFormat, Call, Reply};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The merchant under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantTest {
    pub prepare_url: String,
    /// `None`: Complete goes to `prepare_url` too (one URL branching on `action`).
    pub complete_url: Option<String>,
    pub secret_key: String,
    pub service_id: String,
    pub amount_format: AmountFormat,
    /// A `merchant_trans_id` naming no order (scenario 2).
    pub unknown_order: String,
    /// Per call.
    pub timeout: Duration,
}

impl MerchantTest {
    pub fn new(
        url: impl Into<String>,
        secret_key: impl Into<String>,
        service_id: impl Into<String>,
    ) -> Self {
        MerchantTest {
            prepare_url: url.into(),
            complete_url: None,
            secret_key: secret_key.into(),
            service_id: service_id.into(),
            amount_format: AmountFormat::default(),
            unknown_order: "987654321987".into(),
            timeout: Duration::from_secs(10),
        }
    }
}

/// A fresh, unpaid order of the merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestOrder {
    pub merchant_trans_id: String,
    pub amount_tiyin: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioResult {
    /// e.g. ` 7. Complete repeated → -4`.
    pub scenario: String,
    pub passed: bool,
    pub detail: String,
}

pub type OrderFuture = Pin<Box<dyn Future<Output = Result<TestOrder, String>> + Send>>;

/// Orders from paygate's seed route: `POST {url}` with
/// `{"product_name", "amount": "50.00", "payment_type": "click"}`, reading
/// `order_id` and `amount` from the answer.
pub fn orders_from_url(url: impl Into<String>) -> impl Fn() -> OrderFuture + Send + Sync {
    let url = url.into();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build();
    move || {
        let url = url.clone();
        let http = http.as_ref().map(Clone::clone).map_err(|e| e.to_string());
        Box::pin(async move {
            let http = http.map_err(|e| format!("HTTP client: {e}"))?;
            let resp = http
                .post(&url)
                .json(&serde_json::json!({
                    "product_name": "Click acceptance test",
                    "amount": "50.00",
                    "payment_type": "click",
                }))
                .send()
                .await
                .map_err(|e| format!("creating an order at {url}: {e}"))?;
            let status = resp.status();
            let body: serde_json::Value = resp
                .json()
                .await
                .map_err(|_| format!("{url} answered HTTP {status} without JSON"))?;
            if !status.is_success() {
                return Err(format!("{url} answered HTTP {status}: {body}"));
            }
            let id = wire::int_text(body.get("order_id"))
                .ok_or_else(|| format!("{url}: no order_id in {body}"))?;
            let amount = match body.get("amount") {
                Some(serde_json::Value::String(s)) => parse_som(s),
                _ => None,
            }
            .ok_or_else(|| format!("{url}: no amount such as \"50.00\" in {body}"))?;
            Ok(TestOrder {
                merchant_trans_id: id,
                amount_tiyin: amount,
            })
        })
    }
}

/// What a scenario sends differently from the plain call.
#[derive(Default)]
struct Twist {
    bad_sign: bool,
    amount: Option<String>,
    error: Option<(&'static str, &'static str)>,
}

struct Runner<'a> {
    test: &'a MerchantTest,
    http: reqwest::Client,
    next_id: u64,
    results: Vec<ScenarioResult>,
}

const LACK_OF_MONEY: (&str, &str) = ("-5017", "Insufficient funds");

impl<'a> Runner<'a> {
    fn new(test: &'a MerchantTest, http: reqwest::Client) -> Self {
        let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or_default();
        Runner {
            test,
            http,
            // A different range from the simulator's pay page (which starts
            // at now_ms × 1000), still below 2^53.
            next_id: now_ms.saturating_mul(1000) + 500,
            results: Vec::new(),
        }
    }

    /// A Prepare for a new attempt on `order`.
    fn prepare(&mut self, order: &TestOrder) -> Call {
        self.next_id += 2;
        Call {
            click_trans_id: (self.next_id - 1).to_string(),
            service_id: self.test.service_id.clone(),
            click_paydoc_id: self.next_id.to_string(),
            merchant_trans_id: order.merchant_trans_id.clone(),
            merchant_prepare_id: None,
            amount: self.test.amount_format.text(order.amount_tiyin),
            action: "0".into(),
            error: "0".into(),
            error_note: "Success".into(),
            sign_time: String::new(),
        }
    }

    async fn send(&self, call: &Call, twist: &Twist) -> Result<Reply, String> {
        let mut call = call.clone();
        call.sign_time = wire::sign_time_now();
        if let Some(amount) = &twist.amount {
            call.amount = amount.clone();
        }
        if let Some((error, note)) = twist.error {
            call.error = error.into();
            call.error_note = note.into();
        }
        let secret = if twist.bad_sign {
            format!("{}-not-the-secret", self.test.secret_key)
        } else {
            self.test.secret_key.clone()
        };
        let url = match (&call.merchant_prepare_id, &self.test.complete_url) {
            (Some(_), Some(complete)) => complete.as_str(),
            _ => self.test.prepare_url.as_str(),
        };
        wire::send(
            &self.http,
            url,
            &call.form(&call.sign(&secret)),
            self.test.timeout,
        )
        .await
    }

    fn record(&mut self, scenario: String, passed: bool, detail: String) {
        self.results.push(ScenarioResult {
            scenario,
            passed,
            detail,
        });
    }

    /// Sends and judges one scenario; the reply when it passed.
    async fn play(
        &mut self,
        name: &str,
        expected: i64,
        call: &Call,
        twist: Twist,
    ) -> Option<Reply> {
        let scenario = format!("{name} → {expected}");
        let reply = self.send(call, &twist).await;
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                self.record(scenario, false, e);
                return None;
            }
        };
        let got = format!("error {} ({:?})", reply.error, reply.error_note);
        let problem = if reply.error != expected {
            Some(format!("expected error {expected}, got {got}"))
        } else if reply
            .click_trans_id
            .as_deref()
            .is_some_and(|t| t != call.click_trans_id)
        {
            Some(format!(
                "echoed click_trans_id {:?}, sent {}",
                reply.click_trans_id.as_deref().unwrap_or_default(),
                call.click_trans_id
            ))
        } else if reply
            .merchant_trans_id
            .as_deref()
            .is_some_and(|m| m != call.merchant_trans_id)
        {
            Some(format!(
                "echoed merchant_trans_id {:?}, sent {:?}",
                reply.merchant_trans_id.as_deref().unwrap_or_default(),
                call.merchant_trans_id
            ))
        } else if expected == 0 && call.action == "0" && reply.merchant_prepare_id.is_none() {
            Some("a successful Prepare must carry merchant_prepare_id".into())
        } else {
            None
        };
        match problem {
            Some(p) => {
                self.record(scenario, false, p);
                None
            }
            None => {
                self.record(scenario, true, got);
                Some(reply)
            }
        }
    }

    fn skip(&mut self, name: &str, expected: i64, why: &str) {
        self.record(
            format!("{name} → {expected}"),
            false,
            format!("not run: {why}"),
        );
    }

    /// The Complete that follows `prepare`, naming `prepare_id`.
    fn complete(prepare: &Call, prepare_id: &str) -> Call {
        Call {
            merchant_prepare_id: Some(prepare_id.to_owned()),
            action: "1".into(),
            ..prepare.clone()
        }
    }

    /// Creates an order and prepares it (scenario `name`); the Prepare call and
    /// the merchant's prepare id, or why there is none.
    async fn prepared(
        &mut self,
        name: &str,
        create_order: &(dyn Fn() -> OrderFuture + Send + Sync),
    ) -> Result<(Call, String), String> {
        let order = match create_order().await {
            Ok(o) => o,
            Err(e) => {
                let why = format!("could not create an order: {e}");
                self.skip(name, 0, &why);
                return Err(why);
            }
        };
        let call = self.prepare(&order);
        match self.play(name, 0, &call, Twist::default()).await {
            Some(r) => Ok((call, r.merchant_prepare_id.unwrap_or_default())),
            None => Err(format!("{} failed", name.trim())),
        }
    }
}

/// Plays the matrix and the retry case; one result per scenario, in order.
pub async fn run_merchant_test(
    test: &MerchantTest,
    create_order: &(dyn Fn() -> OrderFuture + Send + Sync),
) -> Vec<ScenarioResult> {
    let http = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            return vec![ScenarioResult {
                scenario: "setup".into(),
                passed: false,
                detail: format!("could not build an HTTP client: {e}"),
            }]
        }
    };
    let mut r = Runner::new(test, http);
    let bad_sign = || Twist {
        bad_sign: true,
        ..Twist::default()
    };
    let lack = || Twist {
        error: Some(LACK_OF_MONEY),
        ..Twist::default()
    };

    // 1–8: one order, one attempt.
    match create_order().await {
        Ok(order) => {
            let prepare = r.prepare(&order);
            r.play("1. Prepare with a bad sign", -1, &prepare, bad_sign())
                .await;
            let unknown = TestOrder {
                merchant_trans_id: test.unknown_order.clone(),
                amount_tiyin: order.amount_tiyin,
            };
            let call = r.prepare(&unknown);
            r.play(
                "2. Prepare for an unknown order",
                -5,
                &call,
                Twist::default(),
            )
            .await;
            let prepared = r.play("3. Prepare", 0, &prepare, Twist::default()).await;
            let steps: [(&str, i64, Twist); 5] = [
                ("4. Complete with a bad sign", -1, bad_sign()),
                (
                    "5. Complete with amount 300",
                    -2,
                    Twist {
                        amount: Some(test.amount_format.text(30_000)),
                        ..Twist::default()
                    },
                ),
                ("6. Complete", 0, Twist::default()),
                ("7. Complete repeated", -4, Twist::default()),
                ("8. Complete with error -5017 after payment", -9, lack()),
            ];
            match prepared.and_then(|p| p.merchant_prepare_id) {
                Some(id) => {
                    let complete = Runner::complete(&prepare, &id);
                    for (name, expected, twist) in steps {
                        r.play(name, expected, &complete, twist).await;
                    }
                }
                None => {
                    for (name, expected, _) in steps {
                        r.skip(name, expected, "scenario 3 failed");
                    }
                }
            }
        }
        Err(e) => {
            let why = format!("could not create an order: {e}");
            for (name, expected) in [
                ("1. Prepare with a bad sign", -1),
                ("2. Prepare for an unknown order", -5),
                ("3. Prepare", 0),
                ("4. Complete with a bad sign", -1),
                ("5. Complete with amount 300", -2),
                ("6. Complete", 0),
                ("7. Complete repeated", -4),
                ("8. Complete with error -5017 after payment", -9),
            ] {
                r.skip(name, expected, &why);
            }
        }
    }

    // 9–11: a missing prepare id, then the right one.
    let steps = [
        ("10. Complete with merchant_prepare_id 999999999", -6),
        ("11. Complete", 0),
    ];
    match r.prepared("9. Prepare a second order", create_order).await {
        Ok((prepare, id)) => {
            let missing = Runner::complete(&prepare, "999999999");
            r.play(steps[0].0, steps[0].1, &missing, Twist::default())
                .await;
            let complete = Runner::complete(&prepare, &id);
            r.play(steps[1].0, steps[1].1, &complete, Twist::default())
                .await;
        }
        Err(why) => steps.iter().for_each(|(n, e)| r.skip(n, *e, &why)),
    }

    // 12–15: Click cancels; nothing revives the attempt.
    let steps: [(&str, i64, Twist); 3] = [
        ("13. Complete with error -5017", -9, lack()),
        ("14. Complete with error -5017 repeated", -9, lack()),
        (
            "15. Complete with error 0 after cancellation",
            -9,
            Twist::default(),
        ),
    ];
    match r.prepared("12. Prepare a third order", create_order).await {
        Ok((prepare, id)) => {
            let complete = Runner::complete(&prepare, &id);
            for (name, expected, twist) in steps {
                r.play(name, expected, &complete, twist).await;
            }
        }
        Err(why) => steps.iter().for_each(|(n, e, _)| r.skip(n, *e, &why)),
    }

    // The retry case: a repeated Prepare, and a Complete whose answer was lost.
    let steps = [
        ("R3. Retry: Complete (its answer treated as lost)", 0),
        ("R4. Retry: Complete sent again", -4),
    ];
    match r
        .prepared("R1. Retry: Prepare a fourth order", create_order)
        .await
    {
        Ok((prepare, id)) => {
            let name = "R2. Retry: Prepare repeated, same merchant_prepare_id";
            if let Some(again) = r.play(name, 0, &prepare, Twist::default()).await {
                if again.merchant_prepare_id.as_deref() != Some(id.as_str()) {
                    if let Some(last) = r.results.last_mut() {
                        last.passed = false;
                        last.detail = format!(
                            "the first answer gave merchant_prepare_id {id}, the repeat {:?}",
                            again.merchant_prepare_id
                        );
                    }
                }
            }
            let complete = Runner::complete(&prepare, &id);
            for (name, expected) in steps {
                r.play(name, expected, &complete, Twist::default()).await;
            }
        }
        Err(why) => steps.iter().for_each(|(n, e)| r.skip(n, *e, &why)),
    }
    r.results
}
