//! The Payme simulator against a recording merchant: what it sends, in what
//! order, with which credentials, and how its knobs change that.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use common::*;
use paygate_sandbox::{PaymeConfig, SandboxConfig};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

const P: &str = "/sandbox/payme";

/// One call as the merchant saw it: the Authorization header and the body.
type Seen = (Option<String>, Value);

#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<Seen>>>,
    /// Answer this method with an error.
    refuse: Option<&'static str>,
    /// Leave `id` out of every answer.
    no_id: bool,
}

async fn merchant(State(r): State<Recorder>, headers: HeaderMap, body: Bytes) -> Json<Value> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let call: Value = serde_json::from_slice(&body).unwrap();
    r.calls.lock().unwrap().push((auth, call.clone()));
    let method = call["method"].as_str().unwrap_or_default();
    let id = if r.no_id {
        Value::Null
    } else {
        call["id"].clone()
    };
    if r.refuse == Some(method) {
        return Json(json!({"id": id, "error": {"code": -31050,
            "message": {"ru": "Заказ не найден", "uz": "Buyurtma topilmadi", "en": "Order not found"},
            "data": "order_id"}}));
    }
    let result = match method {
        "CheckPerformTransaction" => json!({"allow": true}),
        "CreateTransaction" => {
            json!({"create_time": 1_700_000_000_000_i64, "transaction": "17", "state": 1})
        }
        "PerformTransaction" => {
            json!({"perform_time": 1_700_000_000_001_i64, "transaction": "17", "state": 2})
        }
        "CancelTransaction" => {
            json!({"cancel_time": 1_700_000_000_002_i64, "transaction": "17", "state": -1})
        }
        _ => json!({}),
    };
    Json(json!({"id": id, "result": result}))
}

struct Setup {
    router: Router,
    recorder: Recorder,
    sandbox: paygate_sandbox::Sandbox,
}

async fn setup(recorder: Recorder, tune: impl FnOnce(&mut PaymeConfig)) -> Setup {
    let app = Router::new()
        .route("/payme/", post(merchant))
        .with_state(recorder.clone());
    let addr = serve(app).await;
    let mut cfg = PaymeConfig {
        merchant_url: Some(format!("http://{addr}/payme/")),
        ..PaymeConfig::default()
    };
    tune(&mut cfg);
    let (sandbox, router) = sandbox(SandboxConfig {
        payme: cfg,
        ..SandboxConfig::default()
    });
    Setup {
        router,
        recorder,
        sandbox,
    }
}

fn encode(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn link(text: &str) -> String {
    encode(&format!("m={};{text}", PaymeConfig::default().merchant_id))
}

const ORDER: &str = "ac.order_id=7;a=500000;c=https://shop.example/r?o=7;l=en";

impl Setup {
    fn calls(&self) -> Vec<Seen> {
        self.recorder.calls.lock().unwrap().clone()
    }

    async fn pay(&self, encoded: &str) -> Reply {
        call(
            &self.router,
            form(&format!("{P}/pay"), &[("link", encoded)]),
        )
        .await
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn the_page_shows_the_order_with_pay_and_cancel() {
    let s = setup(Recorder::default(), |_| {}).await;
    let reply = call(&s.router, get(&format!("{P}/{}", link(ORDER)))).await;
    assert_eq!(reply.status, StatusCode::OK);
    for text in [
        "5,000.00",
        "order_id",
        ">7<",
        "Pay",
        "Cancel",
        "https://shop.example/r?o=7",
    ] {
        assert!(reply.body.contains(text), "{text}: {}", reply.body);
    }
    assert!(!reply.body.contains("<script"));
    assert!(s.calls().is_empty(), "opening the page calls nobody");
}

#[tokio::test]
async fn pay_calls_check_create_perform_as_payme_does() {
    let s = setup(Recorder::default(), |_| {}).await;
    let before = now_ms();
    let reply = s.pay(&link(ORDER)).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "https://shop.example/r?o=7");
    let calls = s.calls();
    let methods: Vec<&str> = calls
        .iter()
        .map(|(_, c)| c["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        [
            "CheckPerformTransaction",
            "CreateTransaction",
            "PerformTransaction"
        ]
    );
    let expected_auth = format!(
        "Basic {}",
        encode(&format!("Paycom:{}", PaymeConfig::default().key))
    );
    for (auth, c) in &calls {
        assert_eq!(auth.as_deref(), Some(expected_auth.as_str()));
        assert!(c["id"].is_u64());
    }
    assert_eq!(
        calls[0].1["params"],
        json!({"amount": 500000, "account": {"order_id": "7"}})
    );
    let create = &calls[1].1["params"];
    let id = create["id"].as_str().unwrap();
    assert_eq!(id.len(), 24);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    let time = create["time"].as_i64().unwrap();
    assert!(time >= before && time <= now_ms(), "time is now in ms");
    assert_eq!(create["amount"], 500000);
    assert_eq!(create["account"], json!({"order_id": "7"}));
    assert_eq!(calls[2].1["params"], json!({"id": id}));
    assert_ne!(calls[0].1["id"], calls[1].1["id"]);
    assert_eq!(s.sandbox.payme_stats().payments_performed, 1);
}

#[tokio::test]
async fn a_refusal_stops_the_payment_and_is_shown() {
    let recorder = Recorder {
        refuse: Some("CheckPerformTransaction"),
        ..Recorder::default()
    };
    let s = setup(recorder, |_| {}).await;
    let reply = s.pay(&link(ORDER)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.body.contains("-31050") && reply.body.contains("Order not found (order_id)"),
        "{}",
        reply.body
    );
    assert_eq!(s.calls().len(), 1);
    assert_eq!(s.sandbox.payme_stats().errors_answered, 1);
}

#[tokio::test]
async fn duplicates_send_each_call_twice_with_the_same_id() {
    let s = setup(Recorder::default(), |c| c.duplicate_calls = true).await;
    assert_eq!(s.pay(&link(ORDER)).await.status, StatusCode::SEE_OTHER);
    let calls = s.calls();
    assert_eq!(calls.len(), 6);
    for method in [
        "CheckPerformTransaction",
        "CreateTransaction",
        "PerformTransaction",
    ] {
        let same: Vec<&Value> = calls
            .iter()
            .map(|(_, c)| c)
            .filter(|c| c["method"] == method)
            .collect();
        assert_eq!(same.len(), 2);
        assert_eq!(same[0], same[1]);
    }
    assert_eq!(s.sandbox.payme_stats().duplicate_mismatches, 0);
}

#[tokio::test]
async fn the_clock_offset_moves_time() {
    let s = setup(Recorder::default(), |c| c.clock_offset_ms = -43_200_000).await;
    s.pay(&link(ORDER)).await;
    let time = s.calls()[1].1["params"]["time"].as_i64().unwrap();
    let age = now_ms() - time;
    assert!((43_200_000..43_260_000).contains(&age), "{age}");
}

#[tokio::test]
async fn a_failed_debit_sends_cancel_with_reason_2() {
    let s = setup(Recorder::default(), |c| c.error_rate = 1.0).await;
    let reply = s.pay(&link(ORDER)).await;
    assert!(reply.body.contains("Card debit failed"));
    let calls = s.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[2].1["method"], "CancelTransaction");
    assert_eq!(calls[2].1["params"]["reason"], 2);
    assert_eq!(calls[2].1["params"]["id"], calls[1].1["params"]["id"]);
}

#[tokio::test]
async fn cancel_returns_without_calling_the_merchant() {
    let s = setup(Recorder::default(), |_| {}).await;
    let reply = call(
        &s.router,
        form(&format!("{P}/cancel"), &[("link", &link(ORDER))]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "https://shop.example/r?o=7");
    assert!(s.calls().is_empty());
}

#[tokio::test]
async fn bad_links_and_unknown_cashboxes_are_pages_not_calls() {
    let s = setup(Recorder::default(), |_| {}).await;
    let reply = call(
        &s.router,
        get(&format!("{P}/{}", encode("a=5;ac.order_id=1"))),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.body.contains("-31610"));
    let other = encode(&format!("m=000000000000000000000000;{ORDER}"));
    let reply = call(&s.router, get(&format!("{P}/{other}"))).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.body.contains("-31601"));
    let reply = s.pay("%%%").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // A return link that is not http(s) would run script in the simulator's
    // origin or send the payer anywhere: refused before any call.
    let js = link(&format!("{ORDER};c=javascript:alert(document.domain)"));
    let reply = call(&s.router, get(&format!("{P}/{js}"))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(!reply.body.contains("javascript:"), "{}", reply.body);
    let reply = s.pay(&js).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(s.calls().is_empty());
}

#[tokio::test]
async fn no_merchant_url_is_a_clear_503() {
    let s = setup(Recorder::default(), |c| c.merchant_url = None).await;
    let reply = s.pay(&link(ORDER)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.body.contains("PAYGATE_SANDBOX_PAYME_MERCHANT_URL"));
}

#[tokio::test]
async fn answers_without_the_id_are_counted() {
    let recorder = Recorder {
        no_id: true,
        ..Recorder::default()
    };
    let s = setup(recorder, |_| {}).await;
    assert_eq!(s.pay(&link(ORDER)).await.status, StatusCode::SEE_OTHER);
    let stats = s.sandbox.payme_stats();
    assert_eq!(stats.envelope_problems, 3);
    assert!(stats.last_problem.unwrap().contains("not echoed"));
}

#[tokio::test]
async fn config_can_be_changed_at_runtime_and_is_validated() {
    let s = setup(Recorder::default(), |_| {}).await;
    let mut cfg: Value = call(&s.router, get(&format!("{P}/_config"))).await.json();
    cfg["autopay"] = json!(true);
    let put = call(
        &s.router,
        json_req(Method::PUT, &format!("{P}/_config"), &cfg),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK);
    let reply = call(&s.router, get(&format!("{P}/{}", link(ORDER)))).await;
    assert_eq!(
        reply.status,
        StatusCode::SEE_OTHER,
        "autopay pays on opening"
    );
    assert_eq!(s.calls().len(), 3);
    cfg["clock_offset_ms"] = json!(i64::MAX);
    let put = call(
        &s.router,
        json_req(Method::PUT, &format!("{P}/_config"), &cfg),
    )
    .await;
    assert_eq!(put.status, StatusCode::BAD_REQUEST);
    let reset = call(
        &s.router,
        json_req(Method::POST, &format!("{P}/_reset"), &json!({})),
    )
    .await;
    assert_eq!(reset.status, StatusCode::OK);
    assert_eq!(s.sandbox.payme_stats().calls_sent, 0);
}

#[tokio::test]
async fn the_cabinet_cancel_forwards_to_the_merchant() {
    let s = setup(Recorder::default(), |_| {}).await;
    let id = "5305e3bab097f420a62ced0b";
    let reply = call(
        &s.router,
        json_req(
            Method::POST,
            &format!("{P}/_cancel"),
            &json!({"id": id, "reason": 1}),
        ),
    )
    .await;
    assert_eq!(reply.json()["result"]["state"], -1);
    assert_eq!(s.calls()[0].1["params"], json!({"id": id, "reason": 1}));
    let reply = call(
        &s.router,
        json_req(Method::POST, &format!("{P}/_cancel"), &json!({"reason": 1})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
}
