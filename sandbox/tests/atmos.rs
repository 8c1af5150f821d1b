//! The Atmos simulator, driven over HTTP, with a real merchant endpoint for
//! the callback paths.

mod common;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method, Request, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use common::*;
use md5::{Digest, Md5};
use paygate_sandbox::{AtmosConfig, CallbackField, HashAlg, SandboxConfig};
use serde_json::{json, Value};
use sha2::Sha256;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const A: &str = "/sandbox/atmos";
const API_KEY: &str = "sandbox-atmos-api-key";

fn with(cfg: AtmosConfig) -> SandboxConfig {
    SandboxConfig {
        atmos: cfg,
        ..SandboxConfig::default()
    }
}

fn basic(key: &str, secret: &str) -> String {
    let raw = format!("{key}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn token_req(auth: &str, query: &str, body: &str) -> Request<Body> {
    Request::post(format!("{A}/token{query}"))
        .header(header::AUTHORIZATION, auth)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn token(r: &Router) -> String {
    let auth = basic("sandbox-consumer-key", "sandbox-consumer-secret");
    let reply = call(r, token_req(&auth, "", "grant_type=client_credentials")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.json()["access_token"].as_str().unwrap().to_owned()
}

fn api(path: &str, token: &str, body: &Value) -> Request<Body> {
    Request::post(format!("{A}/merchant/pay/{path}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn create(r: &Router, token: &str, account: &str, amount: u64) -> u64 {
    let reply = call(
        r,
        api(
            "create",
            token,
            &json!({"amount": amount, "account": account, "store_id": "8157", "lang": "ru"}),
        ),
    )
    .await;
    let v = reply.json();
    assert_eq!(v["result"]["code"], "OK", "{v}");
    v["transaction_id"].as_u64().unwrap()
}

async fn get_txn(r: &Router, token: &str, id: u64) -> Value {
    call(
        r,
        api(
            "get",
            token,
            &json!({"store_id": "8157", "transaction_id": id}),
        ),
    )
    .await
    .json()
}

fn checkout_form(action: &str, id: u64, redirect: &str) -> Request<Body> {
    form(
        &format!("{A}/invoice/{action}"),
        &[
            ("transactionId", &id.to_string()),
            ("storeId", "8157"),
            ("redirectLink", redirect),
        ],
    )
}

#[tokio::test]
async fn token_by_form_or_query_and_bad_credentials() {
    let (sb, r) = sandbox(SandboxConfig::default());
    let good = basic("sandbox-consumer-key", "sandbox-consumer-secret");
    let by_form = call(&r, token_req(&good, "", "grant_type=client_credentials"))
        .await
        .json();
    assert_eq!(by_form["token_type"], "Bearer");
    assert_eq!(by_form["scope"], "am_application_scope default");
    assert_eq!(by_form["expires_in"], 3600);
    assert!(by_form["access_token"].as_str().unwrap().len() >= 20);
    let by_query = call(&r, token_req(&good, "?grant_type=client_credentials", "")).await;
    assert_eq!(by_query.status, StatusCode::OK);
    assert_ne!(by_query.json()["access_token"], by_form["access_token"]);

    for bad in [
        basic("sandbox-consumer-key", "nope"),
        basic("x", "sandbox-consumer-secret"),
        "Basic !!!".into(),
        "Bearer x".into(),
    ] {
        let reply = call(&r, token_req(&bad, "", "grant_type=client_credentials")).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert!(reply.json()["error"].is_string());
    }
    let no_grant = call(&r, token_req(&good, "", "")).await;
    assert_eq!(no_grant.status, StatusCode::BAD_REQUEST);
    assert_eq!(sb.atmos_stats().tokens_issued, 2);
}

#[tokio::test]
async fn unknown_and_expired_tokens_get_401() {
    let (_, r) = sandbox(with(AtmosConfig {
        token_ttl_secs: 1,
        ..AtmosConfig::default()
    }));
    let body = json!({"store_id": "8157", "transaction_id": 1});
    let unknown = call(&r, api("get", "made-up", &body)).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.json()["fault"].is_object());
    let none = Request::post(format!("{A}/merchant/pay/get"))
        .body(Body::from(body.to_string()))
        .unwrap();
    assert_eq!(call(&r, none).await.status, StatusCode::UNAUTHORIZED);

    let t = token(&r).await;
    assert_eq!(call(&r, api("get", &t, &body)).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for path in ["create", "get", "reverse"] {
        assert_eq!(
            call(&r, api(path, &t, &body)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn create_validates_and_counts_per_account() {
    let (sb, r) = sandbox(SandboxConfig::default());
    let t = token(&r).await;
    let code = |v: Value| {
        let r = r.clone();
        let t = t.clone();
        async move { call(&r, api("create", &t, &v)).await.json()["result"]["code"].clone() }
    };
    assert_eq!(
        code(json!({"amount": 100, "account": "1", "store_id": "9999"})).await,
        "STPIMS-ERR-003"
    );
    assert_eq!(
        code(json!({"amount": 100, "account": "1"})).await,
        "STPIMS-ERR-003"
    );
    for amount in [json!(0), json!(-5), json!(1.5), json!("abc"), json!(null)] {
        assert_eq!(
            code(json!({"amount": amount, "account": "1", "store_id": "8157"})).await,
            "STPIMS-ERR-012"
        );
    }
    for account in [json!("12a"), json!(""), json!(-1), json!(null)] {
        assert_eq!(
            code(json!({"amount": 100, "account": account, "store_id": "8157"})).await,
            "STPIMS-ERR-014"
        );
    }
    let not_json = Request::post(format!("{A}/merchant/pay/create"))
        .header(header::AUTHORIZATION, format!("Bearer {t}"))
        .body(Body::from("{oops"))
        .unwrap();
    let reply = call(&r, not_json).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["result"]["code"], "STPIMS-ERR-001");

    let ok = call(
        &r,
        api(
            "create",
            &t,
            &json!({"amount": 5000000, "account": 197, "store_id": 8157, "terminal_id": "T1"}),
        ),
    )
    .await
    .json();
    assert_eq!(
        ok["result"],
        json!({"code": "OK", "description": "No errors"})
    );
    let id = ok["transaction_id"].as_u64().unwrap();
    assert_eq!(
        ok["store_transaction"],
        json!({"trans_id": id, "account": "197", "amount": 5000000, "terminal_id": "T1", "confirmed": false, "total": 5000000})
    );
    create(&r, &t, "197", 100).await;
    create(&r, &t, "198", 100).await;
    let stats = sb.atmos_stats();
    assert_eq!(stats.creates_total, 3);
    assert_eq!(stats.creates_by_account["197"], 2);
    assert_eq!(stats.creates_by_account["198"], 1);
}

#[tokio::test]
async fn get_and_reverse_lifecycle_without_callback() {
    let (sb, r) = sandbox(SandboxConfig::default());
    let t = token(&r).await;
    let id = create(&r, &t, "197", 5_000_000).await;

    let pending = get_txn(&r, &t, id).await;
    assert_eq!(pending["result"]["code"], "OK");
    assert_eq!(pending["store_transaction"]["status_code"], "1");
    assert_eq!(pending["store_transaction"]["status_message"], "Pending");
    assert_eq!(pending["store_transaction"]["confirmed"], false);
    assert_eq!(get_txn(&r, &t, 1).await["result"]["code"], "STPIMS-ERR-061");
    let reverse_pending = call(
        &r,
        api(
            "reverse",
            &t,
            &json!({"transaction_id": id, "store_id": "8157"}),
        ),
    )
    .await;
    assert_eq!(reverse_pending.json()["result"]["code"], "STPIMS-ERR-093");

    // No callback_url: paying simply confirms.
    let paid = call(
        &r,
        checkout_form("pay", id, "https://shop.example/done?o=197"),
    )
    .await;
    assert_eq!(paid.status, StatusCode::FOUND);
    assert_eq!(paid.location(), "https://shop.example/done?o=197");
    let confirmed = get_txn(&r, &t, id).await;
    let st = &confirmed["store_transaction"];
    assert_eq!(confirmed["result"]["code"], "OK");
    assert_eq!(
        (
            st["confirmed"].clone(),
            st["status_code"].clone(),
            st["status_message"].clone()
        ),
        (json!(true), json!("0"), json!("Success"))
    );
    let success_id = st["success_trans_id"].as_u64().unwrap();
    assert!(st["card_id"].as_str().unwrap().contains("******"));

    // Variant (a): transaction_id carries the success_trans_id.
    let rev = call(
        &r,
        api(
            "reverse",
            &t,
            &json!({"transaction_id": success_id, "reason": "refund"}),
        ),
    )
    .await
    .json();
    assert_eq!(rev["result"]["code"], "OK");
    assert_eq!(rev["store_transaction"]["status_code"], "-20");
    let closed = get_txn(&r, &t, id).await;
    assert_eq!(
        closed["result"],
        json!({"code": "STPIMS-ERR-092", "description": "Транзакция закрыта"})
    );
    assert_eq!(closed["store_transaction"]["status_message"], "Canceled");
    let again = call(
        &r,
        api(
            "reverse",
            &t,
            &json!({"store_id": "8157", "success_trans_id": success_id}),
        ),
    )
    .await;
    assert_eq!(again.json()["result"]["code"], "STPIMS-ERR-092");

    // Variant (b) and (c) on fresh payments.
    for body in [
        |_id: u64, s: u64| json!({"store_id": "8157", "success_trans_id": s}),
        |id: u64, _s: u64| json!({"store_id": 8157, "transaction_id": id}),
    ] {
        let id = create(&r, &t, "200", 1000).await;
        call(&r, checkout_form("pay", id, "")).await;
        let s = get_txn(&r, &t, id).await["store_transaction"]["success_trans_id"]
            .as_u64()
            .unwrap();
        let rev = call(&r, api("reverse", &t, &body(id, s))).await.json();
        assert_eq!(rev["result"]["code"], "OK", "{rev}");
        assert_eq!(
            get_txn(&r, &t, id).await["store_transaction"]["status_code"],
            "-20"
        );
    }
    let unknown = call(
        &r,
        api(
            "reverse",
            &t,
            &json!({"transaction_id": 42, "store_id": "8157"}),
        ),
    )
    .await;
    assert_eq!(unknown.json()["result"]["code"], "STPIMS-ERR-061");
    let wrong_store = call(
        &r,
        api(
            "reverse",
            &t,
            &json!({"transaction_id": id, "store_id": "1"}),
        ),
    )
    .await;
    assert_eq!(wrong_store.json()["result"]["code"], "STPIMS-ERR-003");
    let stats = sb.atmos_stats();
    assert_eq!(
        (
            stats.confirmed_total,
            stats.reversed_total,
            stats.gets_total
        ),
        (3, 3, 8)
    );
}

#[tokio::test]
async fn checkout_page_buttons_wrong_otp_and_decline() {
    let (sb, r) = sandbox(SandboxConfig::default());
    let t = token(&r).await;
    let id = create(&r, &t, "197", 5_000_000).await;
    let link = "https%3A%2F%2Fshop.example%2Fback%3Fo%3D197";
    for prefix in ["/invoice/get", "/checkout/invoice/get"] {
        let page = call(
            &r,
            get(&format!(
                "{A}{prefix}?storeId=8157&transactionId={id}&redirectLink={link}"
            )),
        )
        .await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("50,000.00"));
        for action in ["pay", "decline", "wrong-otp"] {
            assert!(
                page.body.contains(&format!("action=\"{action}\"")),
                "{action}"
            );
        }
        assert!(page
            .body
            .contains("value=\"https://shop.example/back?o=197\""));
    }
    let missing = call(
        &r,
        get(&format!("{A}/invoice/get?storeId=8157&transactionId=1")),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let bad = call(
        &r,
        get(&format!("{A}/invoice/get?storeId=8157&transactionId=abc")),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let other_store = call(
        &r,
        get(&format!("{A}/invoice/get?storeId=1&transactionId={id}")),
    )
    .await;
    assert_eq!(other_store.status, StatusCode::NOT_FOUND);

    let otp = call(
        &r,
        checkout_form("wrong-otp", id, "https://shop.example/back"),
    )
    .await;
    assert_eq!(otp.status, StatusCode::OK);
    assert!(otp.body.contains("Неверный код") && otp.body.contains("STPIMS-ERR-044"));
    assert!(otp.body.contains("action=\"pay\""), "still payable");
    assert_eq!(
        get_txn(&r, &t, id).await["store_transaction"]["status_code"],
        "1"
    );

    let declined = call(
        &r,
        checkout_form("decline", id, "https://shop.example/back"),
    )
    .await;
    assert_eq!(declined.status, StatusCode::FOUND);
    assert_eq!(declined.location(), "https://shop.example/back");
    let after = get_txn(&r, &t, id).await;
    assert_eq!(after["result"]["code"], "STPIMS-ERR-092");
    assert_eq!(after["store_transaction"]["status_message"], "Declined");
    assert_eq!(sb.atmos_stats().declined_total, 1);
    // A closed transaction cannot be paid any more.
    let late = call(&r, checkout_form("pay", id, "")).await;
    assert_eq!(late.status, StatusCode::OK);
    assert!(late.body.contains("closed"));
    assert_eq!(sb.atmos_stats().confirmed_total, 0);
}

/// A merchant callback endpoint that records bodies and answers as told.
#[derive(Clone)]
struct Merchant {
    seen: Arc<Mutex<Vec<Value>>>,
    answer: Arc<Mutex<(StatusCode, Value)>>,
    /// When set, the answer to every callback after the first.
    later: Arc<Mutex<Option<(StatusCode, Value)>>>,
}

async fn merchant(answer: (StatusCode, Value)) -> (String, Merchant) {
    let m = Merchant {
        seen: Arc::default(),
        answer: Arc::new(Mutex::new(answer)),
        later: Arc::default(),
    };
    let app = Router::new()
        .route(
            "/cb",
            post(
                |State(m): State<Merchant>, Json(body): Json<Value>| async move {
                    let n = {
                        let mut seen = m.seen.lock().unwrap();
                        seen.push(body);
                        seen.len()
                    };
                    let later = m.later.lock().unwrap().clone().filter(|_| n > 1);
                    let (status, reply) = later.unwrap_or_else(|| m.answer.lock().unwrap().clone());
                    (status, Json(reply))
                },
            ),
        )
        .with_state(m.clone());
    let addr = serve(app).await;
    (format!("http://{addr}/cb"), m)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The merchant-side check, written independently of the simulator.
fn sign_ok(body: &Value, field: &str, key: &str, alg: HashAlg) -> bool {
    let input = format!(
        "{}{}{}{}{key}",
        text(&body["store_id"]),
        text(&body["transaction_id"]),
        text(&body[field]),
        text(&body["amount"])
    );
    let expected = match alg {
        HashAlg::Md5 => hex::encode(Md5::digest(input.as_bytes())),
        HashAlg::Sha256 => hex::encode(Sha256::digest(input.as_bytes())),
        HashAlg::Sha1 => hex::encode(sha1::Sha1::digest(input.as_bytes())),
    };
    body["sign"] == expected
}

fn callback_cfg(url: &str) -> AtmosConfig {
    AtmosConfig {
        callback_url: Some(url.to_owned()),
        ..AtmosConfig::default()
    }
}

#[tokio::test]
async fn pay_confirmed_when_merchant_answers_1() {
    let (url, m) = merchant((StatusCode::OK, json!({"status": 1, "message": "Успешно"}))).await;
    let (sb, r) = sandbox(with(callback_cfg(&url)));
    let t = token(&r).await;
    let id = create(&r, &t, "197", 5_000_000).await;
    let reply = call(&r, checkout_form("pay", id, "https://shop.example/back")).await;
    assert_eq!(reply.status, StatusCode::FOUND);
    assert_eq!(reply.location(), "https://shop.example/back");

    let seen = m.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let cb = &seen[0];
    assert_eq!(cb["store_id"], "8157");
    assert_eq!(cb["transaction_id"], id.to_string());
    assert_eq!(cb["amount"], "5000000");
    assert_eq!(cb["invoice"], "197");
    let time: i64 = cb["transaction_time"].as_str().unwrap().parse().unwrap();
    assert!(time > 1_700_000_000_000);
    assert!(sign_ok(cb, "invoice", API_KEY, HashAlg::Md5), "{cb}");

    let st = get_txn(&r, &t, id).await["store_transaction"].clone();
    assert_eq!(
        (st["confirmed"].clone(), st["status_code"].clone()),
        (json!(true), json!("0"))
    );
    assert!(st["success_trans_id"].as_u64().is_some());
    let stats = sb.atmos_stats();
    assert_eq!(
        (
            stats.callbacks_sent,
            stats.callbacks_accepted,
            stats.confirmed_total
        ),
        (1, 1, 1)
    );

    // Paying again is a no-op that just sends the browser back.
    let again = call(&r, checkout_form("pay", id, "https://shop.example/back")).await;
    assert_eq!(again.status, StatusCode::FOUND);
    assert_eq!(m.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn pay_declined_when_merchant_answers_0_or_fails() {
    let (url, m) = merchant((
        StatusCode::OK,
        json!({"status": 0, "message": "Invoice not found"}),
    ))
    .await;
    let (sb, r) = sandbox(with(callback_cfg(&url)));
    let t = token(&r).await;
    let id = create(&r, &t, "197", 5_000_000).await;
    let reply = call(&r, checkout_form("pay", id, "https://shop.example/back")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("refused") && reply.body.contains("Invoice not found"));
    assert!(reply.body.contains("url=https://shop.example/back"));
    let after = get_txn(&r, &t, id).await;
    assert_eq!(after["result"]["code"], "STPIMS-ERR-092");
    assert_eq!(after["store_transaction"]["confirmed"], false);

    *m.answer.lock().unwrap() = (StatusCode::INTERNAL_SERVER_ERROR, json!({"status": 1}));
    let id = create(&r, &t, "198", 1000).await;
    let reply = call(&r, checkout_form("pay", id, "")).await;
    assert!(reply.body.contains("refused"));
    let stats = sb.atmos_stats();
    assert_eq!(
        (
            stats.callbacks_refused,
            stats.callback_errors,
            stats.declined_total,
            stats.confirmed_total
        ),
        (1, 1, 2, 0)
    );
}

#[tokio::test]
async fn callback_numbers_account_field_and_sha256() {
    let (url, m) = merchant((StatusCode::OK, json!({"status": 1}))).await;
    let (_, r) = sandbox(with(AtmosConfig {
        callback_numbers: true,
        callback_field: CallbackField::Account,
        hash: HashAlg::Sha256,
        ..callback_cfg(&url)
    }));
    let t = token(&r).await;
    let id = create(&r, &t, "197", 5_000_000).await;
    call(&r, checkout_form("pay", id, "")).await;
    let cb = m.seen.lock().unwrap()[0].clone();
    assert_eq!(cb["store_id"], 8157);
    assert_eq!(cb["transaction_id"], id);
    assert_eq!(cb["amount"], 5_000_000);
    assert_eq!(cb["account"], "197");
    assert!(cb.get("invoice").is_none());
    assert_eq!(cb["sign"].as_str().unwrap().len(), 64);
    assert!(sign_ok(&cb, "account", API_KEY, HashAlg::Sha256), "{cb}");
}

#[tokio::test]
async fn duplicate_callbacks_do_not_change_the_outcome() {
    let (url, m) = merchant((StatusCode::OK, json!({"status": 1}))).await;
    let (sb, r) = sandbox(with(AtmosConfig {
        duplicate_callbacks: 2,
        ..callback_cfg(&url)
    }));
    let t = token(&r).await;
    let id = create(&r, &t, "197", 5_000_000).await;
    // The merchant refuses the duplicates ("already paid"); still confirmed.
    *m.later.lock().unwrap() = Some((
        StatusCode::OK,
        json!({"status": 0, "message": "already paid"}),
    ));
    call(&r, checkout_form("pay", id, "")).await;
    let seen = m.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|cb| *cb == seen[0]), "identical copies");
    assert_eq!(
        get_txn(&r, &t, id).await["store_transaction"]["status_code"],
        "0"
    );
    let stats = sb.atmos_stats();
    assert_eq!(stats.callbacks_sent, 3);
    assert_eq!((stats.callbacks_accepted, stats.callbacks_refused), (1, 2));
    assert_eq!(stats.confirmed_total, 1);
}

#[tokio::test]
async fn wrong_amount_and_bad_signature_knobs() {
    let (url, m) = merchant((StatusCode::OK, json!({"status": 0}))).await;
    let (_, r) = sandbox(with(AtmosConfig {
        wrong_amount: true,
        bad_signature: true,
        ..callback_cfg(&url)
    }));
    let t = token(&r).await;
    let id = create(&r, &t, "197", 5_000_000).await;
    call(&r, checkout_form("pay", id, "")).await;
    let cb = m.seen.lock().unwrap()[0].clone();
    assert_eq!(cb["amount"], "5000100");
    assert!(!sign_ok(&cb, "invoice", API_KEY, HashAlg::Md5));
}

#[tokio::test]
async fn autopay_sends_the_callback_without_a_browser() {
    let (url, m) = merchant((StatusCode::OK, json!({"status": 1}))).await;
    let (sb, r) = sandbox(with(AtmosConfig {
        autopay: true,
        autopay_delay_ms: 10,
        ..callback_cfg(&url)
    }));
    let t = token(&r).await;
    let id = create(&r, &t, "197", 5_000_000).await;
    eventually(|| {
        let sb = sb.clone();
        async move { (sb.atmos_stats().confirmed_total == 1).then_some(()) }
    })
    .await;
    assert_eq!(m.seen.lock().unwrap()[0]["transaction_id"], id.to_string());
    assert_eq!(
        get_txn(&r, &t, id).await["store_transaction"]["confirmed"],
        true
    );
}

#[tokio::test]
async fn error_rate_one_gives_5xx_on_api_only() {
    let (sb, r) = sandbox(with(AtmosConfig {
        error_rate: 1.0,
        ..AtmosConfig::default()
    }));
    let auth = basic("sandbox-consumer-key", "sandbox-consumer-secret");
    let reply = call(&r, token_req(&auth, "", "grant_type=client_credentials")).await;
    assert!(reply.status.is_server_error());
    let reply = call(&r, api("create", "x", &json!({}))).await;
    assert!(reply.status.is_server_error());
    assert_eq!(
        call(&r, get(&format!("{A}/_stats"))).await.status,
        StatusCode::OK
    );
    assert_eq!(sb.atmos_stats().injected_errors_total, 2);
}

#[tokio::test]
async fn config_round_trip_and_reset() {
    let (sb, r) = sandbox(SandboxConfig::default());
    let cfg = call(&r, get(&format!("{A}/_config"))).await.json();
    assert_eq!(cfg, serde_json::to_value(AtmosConfig::default()).unwrap());
    assert_eq!(cfg["callback_url"], Value::Null);

    let mut changed = cfg.clone();
    changed["hash"] = json!("sha1");
    changed["callback_url"] = json!("http://127.0.0.1:1/cb");
    changed["duplicate_callbacks"] = json!(3);
    changed["callback_field"] = json!("account");
    let put = call(&r, json_req(Method::PUT, &format!("{A}/_config"), &changed)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.body);
    assert_eq!(call(&r, get(&format!("{A}/_config"))).await.json(), changed);

    for bad in [
        json!({"hash": "crc32"}),
        json!({"callback_field": "order"}),
        json!({"callback_url": "ftp://x"}),
        json!({"error_rate": -0.1}),
        json!({"store_id": " "}),
        json!({"duplicate_callbacks": -1}),
    ] {
        let reply = call(&r, json_req(Method::PUT, &format!("{A}/_config"), &bad)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    // An empty callback_url means none.
    let put = call(
        &r,
        json_req(
            Method::PUT,
            &format!("{A}/_config"),
            &json!({"callback_url": ""}),
        ),
    )
    .await;
    assert_eq!(put.json()["callback_url"], Value::Null);

    let t = token(&r).await;
    let id = create(&r, &t, "197", 100).await;
    assert_eq!(
        call(&r, get(&format!("{A}/_stats"))).await.json()["creates_total"],
        1
    );
    call(&r, form(&format!("{A}/_reset"), &[])).await;
    let stats = sb.atmos_stats();
    assert_eq!(stats.creates_total, 0);
    // Tokens survive a reset; transactions do not.
    assert_eq!(
        get_txn(&r, &t, id).await["result"]["code"],
        "STPIMS-ERR-061"
    );
}

// ---------------------------------------------------------------------------
// The merchant API third-party clients call besides create/get/reverse
// ---------------------------------------------------------------------------

#[tokio::test]
async fn card_flow_pre_apply_otp_apply_asks_the_merchant_and_confirms() {
    let (url, m) = merchant((StatusCode::OK, json!({"status": 1, "message": "Успешно"}))).await;
    let (sb, r) = sandbox(with(callback_cfg(&url)));
    let t = token(&r).await;
    let id = create(&r, &t, "197", 5_000_000).await;
    let code = |v: Value| v["result"]["code"].as_str().unwrap_or_default().to_owned();

    // apply before pre-apply, and malformed cards, are refused.
    let early = call(
        &r,
        api(
            "apply",
            &t,
            &json!({"store_id": "8157", "transaction_id": id, "otp": "111111"}),
        ),
    )
    .await;
    assert_eq!(code(early.json()), "STPIMS-ERR-041");
    for bad in [
        json!({"store_id": "8157", "transaction_id": id}),
        json!({"store_id": "8157", "transaction_id": id, "card_number": "8600", "expiry": "2802"}),
        json!({"store_id": "8157", "transaction_id": id, "card_number": "8600490000003347", "expiry": "28/02"}),
        json!({"store_id": "8157", "transaction_id": id, "card_number": "8600490000003347", "expiry": "2802", "card_token": "t"}),
    ] {
        let reply = call(&r, api("pre-apply", &t, &bad)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(code(reply.json()), "STPIMS-ERR-001", "{bad}");
    }
    let pre = call(&r, api("pre-apply", &t, &json!({"store_id": "8157", "transaction_id": id, "card_number": "8600490000003347", "expiry": "2802"}))).await.json();
    assert_eq!(code(pre.clone()), "OK");
    assert_eq!(pre["transaction_id"], id);

    let wrong = call(
        &r,
        api(
            "apply",
            &t,
            &json!({"store_id": "8157", "transaction_id": id, "otp": "000000"}),
        ),
    )
    .await;
    assert_eq!(code(wrong.json()), "STPIMS-ERR-044");
    assert!(
        m.seen.lock().unwrap().is_empty(),
        "no callback before the right code"
    );

    let applied = call(
        &r,
        api(
            "apply",
            &t,
            &json!({"store_id": "8157", "transaction_id": id, "otp": "111111"}),
        ),
    )
    .await
    .json();
    assert_eq!(code(applied.clone()), "OK", "{applied}");
    assert_eq!(applied["store_transaction"]["confirmed"], true);
    assert!(applied["store_transaction"]["success_trans_id"]
        .as_u64()
        .is_some());
    assert_eq!(m.seen.lock().unwrap().len(), 1);
    // info is another name for get.
    let info = call(
        &r,
        api(
            "info",
            &t,
            &json!({"store_id": "8157", "transaction_id": id}),
        ),
    )
    .await
    .json();
    assert_eq!(info["store_transaction"]["status_message"], "Success");
    assert_eq!(sb.atmos_stats().confirmed_total, 1);
    // A paid transaction cannot be cancelled or paid again.
    let cancel = call(
        &r,
        api(
            "cancel",
            &t,
            &json!({"store_id": "8157", "transaction_id": id}),
        ),
    )
    .await;
    assert_eq!(code(cancel.json()), "STPIMS-ERR-092");
}

#[tokio::test]
async fn card_flow_refused_by_the_merchant_and_cancel_of_an_unpaid_transaction() {
    let (url, _m) = merchant((StatusCode::OK, json!({"status": 0, "message": "no"}))).await;
    let (_, r) = sandbox(with(callback_cfg(&url)));
    let t = token(&r).await;
    let code = |v: Value| v["result"]["code"].as_str().unwrap_or_default().to_owned();
    let id = create(&r, &t, "198", 1000).await;
    call(
        &r,
        api(
            "pre-apply",
            &t,
            &json!({"store_id": "8157", "transaction_id": id, "card_token": "tok"}),
        ),
    )
    .await;
    let applied = call(
        &r,
        api(
            "apply",
            &t,
            &json!({"store_id": "8157", "transaction_id": id, "otp": "111111"}),
        ),
    )
    .await;
    assert_eq!(code(applied.json()), "STPIMS-ERR-050");

    let id = create(&r, &t, "199", 1000).await;
    for _ in 0..2 {
        let c = call(
            &r,
            api(
                "cancel",
                &t,
                &json!({"store_id": "8157", "transaction_id": id}),
            ),
        )
        .await
        .json();
        assert_eq!(code(c.clone()), "OK", "{c}");
        assert_eq!(c["store_transaction"]["status_message"], "Declined");
    }
    let missing = call(&r, api("cancel", &t, &json!({"transaction_id": 1}))).await;
    assert_eq!(code(missing.json()), "STPIMS-ERR-061");
    let no_token = call(&r, api("cancel", "nope", &json!({"transaction_id": id}))).await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_methods_answer_in_the_atmos_envelope() {
    let (_, r) = sandbox(SandboxConfig::default());
    let t = token(&r).await;
    for req in [
        api("get-status", &t, &json!({})),
        api("no-such-thing", &t, &json!({})),
        Request::get(format!("{A}/merchant/pay/create"))
            .body(Body::empty())
            .unwrap(),
        Request::post(format!("{A}/partner/bind-card/init"))
            .body(Body::empty())
            .unwrap(),
    ] {
        let reply = call(&r, req).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
        let v = reply.json();
        assert_eq!(v["result"]["code"], "STPIMS-ERR-000", "{v}");
        assert!(v["result"]["description"].is_string());
    }
}

#[tokio::test]
async fn return_links_are_only_http_and_only_allowed_origins() {
    let sb = paygate_sandbox::Sandbox::with_return_links(
        SandboxConfig::default(),
        paygate_sandbox::ReturnLinks::only("https://shop.example"),
    );
    let r = sb.router();
    let t = token(&r).await;
    for (link, followed) in [
        ("https://shop.example/back", true),
        ("https://evil.example/landing", false),
        ("javascript:alert(document.domain)", false),
    ] {
        let id = create(&r, &t, "200", 1000).await;
        let page = call(
            &r,
            Request::get(format!(
                "{A}/invoice/get?storeId=8157&transactionId={id}&redirectLink={}",
                link.replace(':', "%3A").replace('/', "%2F")
            ))
            .body(Body::empty())
            .unwrap(),
        )
        .await;
        assert_eq!(page.body.contains(link), followed, "{link}: {}", page.body);
        let reply = call(&r, checkout_form("decline", id, link)).await;
        if followed {
            assert_eq!(reply.status, StatusCode::FOUND);
            assert_eq!(reply.location(), link);
        } else {
            assert_eq!(reply.status, StatusCode::OK, "{link}");
            assert!(!reply.body.contains("evil") && !reply.body.contains("javascript:"));
        }
    }
}

#[tokio::test]
async fn guarded_control_endpoints_need_the_check() {
    let sb = paygate_sandbox::Sandbox::new(SandboxConfig::default());
    let check: paygate_sandbox::ControlCheck = Arc::new(|given: Option<String>| {
        Box::pin(async move { given.as_deref() == Some("right") })
    });
    let r = sb.guarded_router(check);
    for (auth, want) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("Bearer wrong"), StatusCode::UNAUTHORIZED),
        (Some("Bearer right"), StatusCode::OK),
    ] {
        for path in ["/sandbox/atmos/_config", "/sandbox/medogram/_stats"] {
            let mut req = Request::get(path);
            if let Some(a) = auth {
                req = req.header(header::AUTHORIZATION, a);
            }
            let reply = call(&r, req.body(Body::empty()).unwrap()).await;
            assert_eq!(reply.status, want, "{path} {auth:?}");
        }
    }
    // The payer-facing and API routes are not guarded.
    let t = token(&r).await;
    create(&r, &t, "201", 1000).await;
}
