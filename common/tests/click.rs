//! Click end to end over real HTTP on 127.0.0.1, without a database:
//! - a reference merchant built on `gateways::click::{protocol, rules}` over an
//!   in-memory map passes the sandbox's merchant acceptance test in all three
//!   amount formats, and a merchant that breaks a rule fails it;
//! - the simulator's pay page drives that merchant through Prepare and Complete;
//! - the Merchant API client talks to the simulator's Merchant API.

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use paygate_common::gateways::click::merchant_api::{
    ClickMerchantApi, ClickPaymentStatus, MerchantApiConfig,
};
use paygate_common::gateways::click::protocol::{self, Answer, ErrorCode};
use paygate_common::gateways::click::rules::{
    self, ClickPrepare, Effect, Facts, OrderFacts, OrderState, PrepareState,
};
use paygate_common::gateways::click::settings::{
    SANDBOX_MERCHANT_USER_ID, SANDBOX_SECRET_KEY, SANDBOX_SERVICE_ID,
};
use paygate_common::gateways::GatewayError;
use paygate_sandbox::click::merchant_test::{
    orders_from_url, run_merchant_test, MerchantTest, ScenarioResult,
};
use paygate_sandbox::{AmountFormat, ClickConfig, Sandbox, SandboxConfig};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "merchant-test-secret";
const SERVICE_ID: i64 = 77001;

/// How the reference merchant misbehaves, if at all.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flaw {
    None,
    /// Answers 0 to a repeated Complete (the common open-source handlers' bug).
    RepeatIsSuccess,
    /// Ignores Click's negative error in Complete and pays anyway.
    IgnoresClickError,
}

#[derive(Default)]
struct Shop {
    orders: HashMap<i64, OrderFacts>,
    prepares: HashMap<i64, ClickPrepare>,
    next_order: i64,
    next_prepare: i64,
    calls: u64,
}

#[derive(Clone)]
struct Merchant {
    shop: Arc<Mutex<Shop>>,
    secret: &'static str,
    service_id: i64,
    flaw: Flaw,
}

impl Merchant {
    /// One Click call, the way paygate's inbound path does it (one lock here
    /// stands for one atomic, conditional write).
    fn handle(&self, body: &[u8]) -> Answer {
        let request = match protocol::parse_form(body) {
            Ok(r) => r,
            Err(rejection) => return rejection.answer(),
        };
        let mut verified = match protocol::authenticate(request, self.secret, self.service_id) {
            Ok(v) => v,
            Err(rejection) => return rejection.answer(),
        };
        let mut shop = self.shop.lock().unwrap();
        shop.calls += 1;
        if self.flaw == Flaw::IgnoresClickError && verified.fields.click_error < 0 {
            let mut request = verified.into_request();
            request.fields.click_error = 0;
            request.raw.sign_string = request.raw.sign_input().sign(self.secret);
            verified = protocol::authenticate(request, self.secret, self.service_id).unwrap();
        }
        let facts = match verified.action {
            protocol::Action::Prepare => Facts {
                order: verified
                    .fields
                    .order_id()
                    .and_then(|id| shop.orders.get(&id).copied()),
                prepare: shop
                    .prepares
                    .values()
                    .find(|p| p.click_trans_id == verified.fields.click_trans_id)
                    .cloned(),
            },
            protocol::Action::Complete {
                merchant_prepare_id,
            } => {
                let prepare = shop.prepares.get(&merchant_prepare_id).cloned();
                Facts {
                    order: prepare
                        .as_ref()
                        .and_then(|p| shop.orders.get(&p.order_id).copied()),
                    prepare,
                }
            }
        };
        let decision = rules::decide(&verified, &facts);
        let answer = match decision.effect {
            Effect::None => decision.answer,
            Effect::RecordPrepare(new) => {
                shop.next_prepare += 1;
                let id = shop.next_prepare;
                shop.prepares.insert(id, new.with_id(id));
                decision.answer.with_prepare_id(id)
            }
            Effect::Complete {
                prepare_id,
                order_id,
            } => {
                shop.prepares.get_mut(&prepare_id).unwrap().state = PrepareState::Completed;
                shop.orders.get_mut(&order_id).unwrap().state = OrderState::Paid;
                decision.answer
            }
            Effect::Cancel {
                prepare_id,
                click_error,
                ..
            } => {
                let p = shop.prepares.get_mut(&prepare_id).unwrap();
                p.state = PrepareState::Cancelled;
                p.click_error = Some(click_error);
                decision.answer
            }
        };
        if self.flaw == Flaw::RepeatIsSuccess && answer.code() == Some(ErrorCode::AlreadyPaid) {
            return Answer {
                error: 0,
                error_note: "Success".into(),
                ..answer
            };
        }
        answer
    }
}

async fn click_call(State(m): State<Merchant>, body: Bytes) -> Json<Answer> {
    Json(m.handle(&body))
}

async fn create_order(
    State(m): State<Merchant>,
    Json(body): Json<serde_json::Value>,
) -> Json<serde_json::Value> {
    let amount = body["amount"].as_str().unwrap_or("50.00").to_owned();
    let tiyin = protocol::parse_amount(&amount).unwrap();
    let mut shop = m.shop.lock().unwrap();
    shop.next_order += 1;
    let id = shop.next_order;
    shop.orders.insert(
        id,
        OrderFacts {
            id,
            amount_tiyin: tiyin,
            state: OrderState::Pending,
        },
    );
    Json(serde_json::json!({"order_id": id, "amount": amount, "status": "pending"}))
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

/// A merchant on its own port: `/click/` (one URL), `/click/prepare/`,
/// `/click/complete/` and `/api/orders/create`.
async fn start_merchant(secret: &'static str, service_id: i64, flaw: Flaw) -> (Merchant, String) {
    let m = Merchant {
        shop: Arc::default(),
        secret,
        service_id,
        flaw,
    };
    let app = Router::new()
        .route("/click/", post(click_call))
        .route("/click/prepare/", post(click_call))
        .route("/click/complete/", post(click_call))
        .route("/api/orders/create", post(create_order))
        .with_state(m.clone());
    (m, serve(app).await)
}

async fn acceptance(base: &str, format: AmountFormat, split: bool) -> Vec<ScenarioResult> {
    let mut test = MerchantTest::new(format!("{base}/click/"), SECRET, SERVICE_ID.to_string());
    if split {
        test.prepare_url = format!("{base}/click/prepare/");
        test.complete_url = Some(format!("{base}/click/complete/"));
    }
    test.amount_format = format;
    run_merchant_test(&test, &orders_from_url(format!("{base}/api/orders/create"))).await
}

fn report(results: &[ScenarioResult]) -> String {
    results
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                if r.passed { "ok  " } else { "FAIL" },
                r.scenario,
                r.detail
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn the_reference_merchant_passes_in_every_amount_format() {
    let (merchant, base) = start_merchant(SECRET, SERVICE_ID, Flaw::None).await;
    for format in AmountFormat::ALL {
        let results = acceptance(&base, format, false).await;
        assert_eq!(results.len(), 19, "{}", report(&results));
        assert!(
            results.iter().all(|r| r.passed),
            "{format}:\n{}",
            report(&results)
        );
        assert!(results[0]
            .scenario
            .starts_with("1. Prepare with a bad sign"));
    }
    let results = acceptance(&base, AmountFormat::TwoDecimals, true).await;
    assert!(
        results.iter().all(|r| r.passed),
        "split URLs:\n{}",
        report(&results)
    );
    // Scenario 8 left its order paid; 13–15 left theirs pending.
    let shop = merchant.shop.lock().unwrap();
    let paid = shop
        .orders
        .values()
        .filter(|o| o.state == OrderState::Paid)
        .count();
    assert_eq!(paid, 4 * 3, "orders of 6, 11 and R3 in each of four runs");
}

#[tokio::test]
async fn a_merchant_that_breaks_a_rule_fails() {
    let (_, base) = start_merchant(SECRET, SERVICE_ID, Flaw::RepeatIsSuccess).await;
    let results = acceptance(&base, AmountFormat::Integer, false).await;
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.scenario.as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "7. Complete repeated → -4",
            "R4. Retry: Complete sent again → -4"
        ],
        "{}",
        report(&results)
    );
    let seven = results
        .iter()
        .find(|r| r.scenario.starts_with("7."))
        .unwrap();
    assert!(
        seven.detail.contains("expected error -4, got error 0"),
        "{}",
        seven.detail
    );

    let (_, base) = start_merchant(SECRET, SERVICE_ID, Flaw::IgnoresClickError).await;
    let results = acceptance(&base, AmountFormat::Integer, false).await;
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| &r.scenario[..3])
        .collect();
    assert_eq!(failed, ["8. ", "13.", "14.", "15."], "{}", report(&results));
}

#[tokio::test]
async fn wrong_secret_or_unreachable_merchant_fails_every_scenario() {
    let (_, base) = start_merchant("another-secret", SERVICE_ID, Flaw::None).await;
    let results = acceptance(&base, AmountFormat::Integer, false).await;
    // Only the bad-sign scenarios can pass against a merchant with another secret.
    let passed: Vec<&str> = results
        .iter()
        .filter(|r| r.passed)
        .map(|r| &r.scenario[..2])
        .collect();
    assert_eq!(passed, ["1."], "{}", report(&results));
    assert!(results.iter().any(|r| r.detail.starts_with("not run")));

    let test = MerchantTest::new("http://127.0.0.1:9/click/", SECRET, "1");
    let results = run_merchant_test(
        &test,
        &orders_from_url("http://127.0.0.1:9/api/orders/create"),
    )
    .await;
    assert!(!results.is_empty() && results.iter().all(|r| !r.passed));
    assert!(results[0].detail.contains("could not create an order"));
}

// ---- The simulator's pay page against the reference merchant ----

struct Sim {
    sandbox: Sandbox,
    base: String,
    http: reqwest::Client,
}

async fn start_sim(cfg: ClickConfig) -> Sim {
    let sandbox = Sandbox::new(SandboxConfig {
        click: cfg,
        ..SandboxConfig::default()
    });
    let base = format!("{}/sandbox/click", serve(sandbox.router()).await);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Sim {
        sandbox,
        base,
        http,
    }
}

fn sim_config(merchant: &str, format: AmountFormat) -> ClickConfig {
    ClickConfig {
        service_id: SANDBOX_SERVICE_ID.to_string(),
        prepare_url: Some(format!("{merchant}/click/")),
        amount_format: format,
        ..ClickConfig::default()
    }
}

impl Sim {
    fn pay_query(&self, order: i64) -> Vec<(&'static str, String)> {
        let cfg = ClickConfig::default();
        vec![
            ("service_id", cfg.service_id),
            ("merchant_id", cfg.merchant_id),
            ("amount", "50.00".into()),
            ("transaction_param", order.to_string()),
            ("return_url", "https://shop.example/orders/1?done=1".into()),
        ]
    }

    /// Presses a button ("confirm" or "insufficient") of the pay page.
    async fn press(&self, button: &str, order: i64) -> reqwest::Response {
        self.http
            .post(format!("{}/services/pay/{button}", self.base))
            .form(&self.pay_query(order))
            .send()
            .await
            .unwrap()
    }
}

fn add_order(m: &Merchant) -> i64 {
    let mut shop = m.shop.lock().unwrap();
    shop.next_order += 1;
    let id = shop.next_order;
    shop.orders.insert(
        id,
        OrderFacts {
            id,
            amount_tiyin: 5000,
            state: OrderState::Pending,
        },
    );
    id
}

#[tokio::test]
async fn the_pay_page_pays_through_prepare_and_complete() {
    let (merchant, mbase) =
        start_merchant(SANDBOX_SECRET_KEY, SANDBOX_SERVICE_ID, Flaw::None).await;
    for format in AmountFormat::ALL {
        let sim = start_sim(ClickConfig {
            duplicate_calls: 1,
            ..sim_config(&mbase, format)
        })
        .await;
        let order = add_order(&merchant);

        let page = sim
            .http
            .get(format!("{}/services/pay", sim.base))
            .query(&sim.pay_query(order))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(
            html.contains("50.00 so&#39;m") || html.contains("50.00 so'm"),
            "{html}"
        );
        assert!(html.contains("pay/confirm") && html.contains("pay/insufficient"));
        assert!(!html.contains("<script"), "no inline script");

        let resp = sim.press("confirm", order).await;
        assert_eq!(resp.status(), 302);
        assert_eq!(
            resp.headers()["location"],
            "https://shop.example/orders/1?done=1"
        );
        let shop = merchant.shop.lock().unwrap();
        assert_eq!(shop.orders[&order].state, OrderState::Paid, "{format}");
        let stats = sim.sandbox.click_stats();
        assert_eq!((stats.prepares_sent, stats.completes_sent), (1, 1));
        assert_eq!(stats.duplicates_sent, 2);
        assert_eq!(
            stats.duplicate_answers_wrong, 0,
            "repeats answered from state"
        );
        assert_eq!(stats.payments_successful, 1);
    }
}

#[tokio::test]
async fn insufficient_funds_cancels_the_attempt_and_the_payer_may_retry() {
    let (merchant, mbase) =
        start_merchant(SANDBOX_SECRET_KEY, SANDBOX_SERVICE_ID, Flaw::None).await;
    let sim = start_sim(sim_config(&mbase, AmountFormat::Integer)).await;
    let order = add_order(&merchant);
    let resp = sim.press("insufficient", order).await;
    assert_eq!(resp.status(), 302);
    {
        let shop = merchant.shop.lock().unwrap();
        assert_eq!(shop.orders[&order].state, OrderState::Pending);
        let attempt = shop
            .prepares
            .values()
            .find(|p| p.order_id == order)
            .unwrap();
        assert_eq!(
            (attempt.state, attempt.click_error),
            (PrepareState::Cancelled, Some(-5017))
        );
    }
    assert_eq!(sim.press("confirm", order).await.status(), 302);
    assert_eq!(
        merchant.shop.lock().unwrap().orders[&order].state,
        OrderState::Paid
    );
    // A third attempt on the paid order is refused at Prepare.
    let resp = sim.press("confirm", order).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("error -4"), "{text}");
}

#[tokio::test]
async fn the_pay_page_refuses_foreign_links_and_needs_a_merchant() {
    let sim = start_sim(ClickConfig::default()).await;
    let mut query = sim.pay_query(1);
    query[0].1 = "1".into();
    let resp = sim
        .http
        .get(format!("{}/services/pay", sim.base))
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let mut query = sim.pay_query(1);
    query[2].1 = "fifty".into();
    let resp = sim
        .http
        .get(format!("{}/services/pay", sim.base))
        .query(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        sim.press("confirm", 1).await.status(),
        503,
        "no prepare_url"
    );
}

// ---- The Merchant API client against the simulator ----

fn api(sim: &Sim, secret: &str) -> ClickMerchantApi {
    ClickMerchantApi::new(MerchantApiConfig {
        base_url: format!("{}/v2/merchant", sim.base),
        service_id: SANDBOX_SERVICE_ID,
        merchant_user_id: SANDBOX_MERCHANT_USER_ID.into(),
        secret_key: secret.into(),
        timeout: Duration::from_secs(5),
    })
    .expect("client")
}

#[tokio::test]
async fn merchant_api_status_and_reversal() {
    let (merchant, mbase) =
        start_merchant(SANDBOX_SECRET_KEY, SANDBOX_SERVICE_ID, Flaw::None).await;
    let sim = start_sim(sim_config(&mbase, AmountFormat::Integer)).await;
    let paid = add_order(&merchant);
    sim.press("confirm", paid).await;
    let declined = add_order(&merchant);
    sim.press("insufficient", declined).await;
    let paydoc = |order: i64| {
        merchant
            .shop
            .lock()
            .unwrap()
            .prepares
            .values()
            .find(|p| p.order_id == order)
            .unwrap()
            .click_paydoc_id
    };
    let client = api(&sim, SANDBOX_SECRET_KEY);

    assert_eq!(
        client.payment_status(paydoc(paid)).await,
        Ok(ClickPaymentStatus::Successful)
    );
    assert_eq!(
        client.payment_status(paydoc(declined)).await,
        Ok(ClickPaymentStatus::Failed { code: -5017 })
    );
    // Only a successful payment can be reversed.
    let err = client.reverse_payment(paydoc(declined)).await.unwrap_err();
    assert!(
        matches!(&err, GatewayError::Permanent { reason, .. } if reason == "click_error_5002"),
        "{err:?}"
    );
    client.reverse_payment(paydoc(paid)).await.unwrap();
    client.reverse_payment(paydoc(paid)).await.unwrap();
    assert_eq!(
        sim.sandbox.click_stats().reversals,
        1,
        "a repeat reverses nothing twice"
    );
    assert!(matches!(
        client.payment_status(paydoc(paid)).await,
        Ok(ClickPaymentStatus::Failed { code: -99 })
    ));
    let err = client.payment_status(42).await.unwrap_err();
    assert!(
        matches!(&err, GatewayError::Permanent { reason, .. } if reason == "click_error_5001"),
        "{err:?}"
    );
}

#[tokio::test]
async fn merchant_api_errors_are_typed() {
    let sim = start_sim(ClickConfig::default()).await;
    let err = api(&sim, "wrong-secret")
        .payment_status(1)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, GatewayError::Permanent { reason, .. } if reason == "click_unauthorized"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("wrong-secret"));
    assert_eq!(sim.sandbox.click_stats().auth_failures, 1);

    let resp = sim
        .http
        .put(format!("{}/_config", sim.base))
        .json(&ClickConfig {
            error_rate: 1.0,
            ..ClickConfig::default()
        })
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let err = api(&sim, SANDBOX_SECRET_KEY)
        .reverse_payment(1)
        .await
        .unwrap_err();
    assert!(matches!(err, GatewayError::Retryable { .. }), "{err:?}");

    let nobody = ClickMerchantApi::new(MerchantApiConfig {
        base_url: "http://127.0.0.1:9/v2/merchant".into(),
        service_id: 1,
        merchant_user_id: "1".into(),
        secret_key: "s".into(),
        timeout: Duration::from_secs(2),
    })
    .expect("client");
    assert!(matches!(
        nobody.payment_status(1).await,
        Err(GatewayError::Retryable { .. })
    ));
}
