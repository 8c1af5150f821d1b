//! paygate's Payme checkout link, opened in the Payme simulator
//! (paygate-sandbox), paying the reference merchant over real HTTP.

mod payme_reference;

use paygate_common::domain::OrderStatus;
use paygate_common::gateways::payme::checkout::{checkout_url, Lang};
use paygate_common::gateways::payme::protocol::State;
use paygate_common::gateways::payme::settings::{
    PaymeSettings, SIMULATOR_KEY, SIMULATOR_MERCHANT_ID,
};
use paygate_sandbox::{PaymeConfig, Sandbox, SandboxConfig};
use payme_reference::{Fault, Reference};
use serde_json::{json, Value};

const AMOUNT: i64 = 500_000;
const RETURN: &str = "https://shop.example/orders/1?x=1";

struct Setup {
    sandbox: Sandbox,
    public: String,
    merchant: Reference,
    settings: PaymeSettings,
    http: reqwest::Client,
}

async fn setup(tune: impl FnOnce(&mut PaymeConfig)) -> Setup {
    let merchant = Reference::start(SIMULATOR_KEY, "order_id", Fault::None).await;
    let mut payme = PaymeConfig {
        merchant_url: Some(merchant.url.clone()),
        ..PaymeConfig::default()
    };
    tune(&mut payme);
    let sandbox = Sandbox::new(SandboxConfig {
        payme,
        ..SandboxConfig::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let public = format!("http://{}", listener.local_addr().unwrap());
    let app = sandbox.router();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let settings = PaymeSettings::from_lookup(&|_| None, true, &public)
        .unwrap()
        .unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Setup {
        sandbox,
        public,
        merchant,
        settings,
        http,
    }
}

impl Setup {
    fn link(&self, order_id: &str) -> String {
        checkout_url(&self.settings, order_id, AMOUNT, Some(RETURN), Lang::En).unwrap()
    }

    /// Presses Pay on the page of `link`, as the browser's form post does.
    async fn pay(&self, link: &str) -> reqwest::Response {
        let encoded = link.rsplit_once("/sandbox/payme/").unwrap().1;
        self.http
            .post(format!("{}/sandbox/payme/pay", self.public))
            .form(&[("link", encoded)])
            .send()
            .await
            .unwrap()
    }
}

fn location(r: &reqwest::Response) -> &str {
    r.headers()["location"].to_str().unwrap()
}

#[test]
fn the_simulator_and_paygate_agree_on_its_credentials() {
    let sim = PaymeConfig::default();
    assert_eq!(sim.key, SIMULATOR_KEY);
    assert_eq!(sim.merchant_id, SIMULATOR_MERCHANT_ID);
}

#[tokio::test]
async fn paying_in_the_simulator_pays_the_order() {
    let s = setup(|_| {}).await;
    let order = s.merchant.add_order(AMOUNT);
    let link = s.link(&order);
    assert!(link.starts_with(&format!("{}/sandbox/payme/", s.public)));

    let page = s.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("5,000.00") && html.contains("Pay") && html.contains("Cancel"));
    assert!(!html.to_lowercase().contains("<script"), "no inline script");
    assert!(html.contains("action=\"/sandbox/payme/pay\""));

    let paid = s.pay(&link).await;
    assert_eq!(paid.status(), 303);
    assert_eq!(location(&paid), RETURN);
    assert_eq!(s.merchant.order(&order).unwrap().status, OrderStatus::Paid);
    let txns = s.merchant.transactions_of(&order);
    assert_eq!(txns.len(), 1);
    assert_eq!(txns[0].state, State::Performed);
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        (now - txns[0].payme_time_ms).abs() < 10_000,
        "time is now, in ms"
    );
    let stats = s.sandbox.payme_stats();
    assert_eq!((stats.calls_sent, stats.payments_performed), (3, 1));
    assert_eq!(
        stats.last_payme_id.as_deref(),
        Some(txns[0].payme_id.as_str())
    );
}

#[tokio::test]
async fn paying_twice_is_refused_by_the_merchant() {
    let s = setup(|_| {}).await;
    let order = s.merchant.add_order(AMOUNT);
    let link = s.link(&order);
    assert_eq!(s.pay(&link).await.status(), 303);
    let again = s.pay(&link).await;
    assert_eq!(again.status(), 200);
    let html = again.text().await.unwrap();
    assert!(
        html.contains("refused") && html.contains("-31051"),
        "{html}"
    );
    assert!(html.contains(RETURN), "offers the way back");
    assert_eq!(s.merchant.transactions_of(&order).len(), 1);
}

#[tokio::test]
async fn duplicate_calls_still_pay_once() {
    let s = setup(|c| c.duplicate_calls = true).await;
    let order = s.merchant.add_order(AMOUNT);
    assert_eq!(s.pay(&s.link(&order)).await.status(), 303);
    assert_eq!(s.merchant.transactions_of(&order).len(), 1);
    let stats = s.sandbox.payme_stats();
    assert_eq!(stats.calls_sent, 6);
    assert_eq!(stats.duplicate_mismatches, 0, "{:?}", stats.last_problem);
    assert_eq!(s.merchant.order(&order).unwrap().status, OrderStatus::Paid);
}

#[tokio::test]
async fn a_clock_12_hours_behind_is_refused_and_changes_nothing() {
    let s = setup(|c| c.clock_offset_ms = -43_200_000 - 60_000).await;
    let order = s.merchant.add_order(AMOUNT);
    let page = s.pay(&s.link(&order)).await;
    let html = page.text().await.unwrap();
    assert!(html.contains("CreateTransaction: -31008"), "{html}");
    assert!(s.merchant.transactions_of(&order).is_empty());
    assert_eq!(
        s.merchant.order(&order).unwrap().status,
        OrderStatus::Pending
    );
}

#[tokio::test]
async fn a_failed_debit_cancels_with_reason_2() {
    let s = setup(|c| c.error_rate = 1.0).await;
    let order = s.merchant.add_order(AMOUNT);
    let html = s.pay(&s.link(&order)).await.text().await.unwrap();
    assert!(html.contains("Card debit failed"), "{html}");
    let txns = s.merchant.transactions_of(&order);
    assert_eq!(txns.len(), 1);
    assert_eq!(
        (txns[0].state, txns[0].reason),
        (State::CancelledBeforePerform, Some(2))
    );
    assert_eq!(
        s.merchant.order(&order).unwrap().status,
        OrderStatus::Pending
    );
}

#[tokio::test]
async fn autopay_pays_on_opening_the_link_and_the_cabinet_can_refund() {
    let s = setup(|c| c.autopay = true).await;
    let order = s.merchant.add_order(AMOUNT);
    let opened = s.http.get(s.link(&order)).send().await.unwrap();
    assert_eq!(opened.status(), 303);
    assert_eq!(s.merchant.order(&order).unwrap().status, OrderStatus::Paid);

    let payme_id = s.sandbox.payme_stats().last_payme_id.unwrap();
    let refund: Value = s
        .http
        .post(format!("{}/sandbox/payme/_cancel", s.public))
        .json(&json!({"id": payme_id}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refund["result"]["state"], -2, "{refund}");
    assert_eq!(
        s.merchant.order(&order).unwrap().status,
        OrderStatus::Cancelled
    );
    let txns = s.merchant.transactions_of(&order);
    assert_eq!(txns[0].reason, Some(5));
}
