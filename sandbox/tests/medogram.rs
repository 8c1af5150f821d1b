//! The medogram (BitPay.ir) simulator, driven over HTTP.

mod common;

use axum::body::Body;
use axum::extract::{Form, Query};
use axum::http::{header, Method, Request, StatusCode};
use axum::routing::get as route_get;
use axum::Router;
use common::*;
use paygate_sandbox::{MedogramConfig, ReturnMethod, SandboxConfig};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

const KEY: &str = "sandbox-medogram-api-key";
const SEND: &str = "/sandbox/medogram/payment/gateway-send";
const VERIFY: &str = "/sandbox/medogram/payment/gateway-result-second";
const REDIRECT: &str = "https://merchant.example/bitpay/return?src=sb";

fn with(cfg: MedogramConfig) -> SandboxConfig {
    SandboxConfig {
        medogram: cfg,
        ..SandboxConfig::default()
    }
}

async fn send(router: &Router, pairs: &[(&str, &str)]) -> String {
    let reply = call(router, form(SEND, pairs)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    reply.body
}

async fn new_invoice(router: &Router, factor: &str, amount: &str) -> String {
    let id = send(
        router,
        &[
            ("api", KEY),
            ("amount", amount),
            ("redirect", REDIRECT),
            ("factorId", factor),
            ("name", "Ali"),
            ("email", "ali@example.com"),
            ("description", "Order <b>1001</b>"),
        ],
    )
    .await;
    assert!(id.parse::<u64>().unwrap() > 0, "{id}");
    id
}

/// Pays invoice `id` through the checkout and returns the redirect's query.
async fn pay(router: &Router, id: &str) -> HashMap<String, String> {
    let reply = call(
        router,
        form(&format!("/sandbox/medogram/payment/gateway-{id}/pay"), &[]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FOUND);
    query_of(reply.location())
}

async fn verify(router: &Router, trans_id: &str, id_get: &str, json: bool) -> String {
    let mut pairs = vec![("api", KEY), ("trans_id", trans_id), ("id_get", id_get)];
    if json {
        pairs.push(("json", "1"));
    }
    call(router, form(VERIFY, &pairs)).await.body
}

#[tokio::test]
async fn send_error_codes_in_checklist_order() {
    let (_, r) = sandbox(SandboxConfig::default());
    let ok = [("api", KEY), ("amount", "1000"), ("redirect", REDIRECT)];
    assert_eq!(
        send(&r, &[("amount", "1000"), ("redirect", REDIRECT)]).await,
        "-1"
    );
    assert_eq!(
        send(&r, &[("api", "wrong"), ("amount", "x"), ("redirect", "")]).await,
        "-1"
    );
    assert_eq!(
        send(&r, &[("api", KEY), ("amount", "abc"), ("redirect", "")]).await,
        "-2"
    );
    assert_eq!(
        send(
            &r,
            &[("api", KEY), ("amount", "999"), ("redirect", REDIRECT)]
        )
        .await,
        "-2"
    );
    assert_eq!(
        send(
            &r,
            &[("api", KEY), ("amount", "1000.5"), ("redirect", REDIRECT)]
        )
        .await,
        "-2"
    );
    assert_eq!(
        send(
            &r,
            &[("api", KEY), ("amount", "-5000"), ("redirect", REDIRECT)]
        )
        .await,
        "-2"
    );
    assert_eq!(send(&r, &[("api", KEY), ("amount", "1000")]).await, "-3");
    assert_eq!(
        send(&r, &[("api", KEY), ("amount", "1000"), ("redirect", "  ")]).await,
        "-3"
    );
    assert!(send(&r, &ok).await.parse::<u64>().unwrap() > 0);
    // Garbage bodies get a protocol answer, not a framework error.
    let garbage = Request::post(SEND)
        .header(header::CONTENT_TYPE, "multipart/form-data")
        .body(Body::from("\u{0}\u{1}not multipart"))
        .unwrap();
    assert_eq!(call(&r, garbage).await.body, "-1");
}

#[tokio::test]
async fn send_accepts_multipart_and_test_prefix() {
    let (_, r) = sandbox(SandboxConfig::default());
    let boundary = "XyZ";
    let mut body = String::new();
    for (k, v) in [
        ("api", KEY),
        ("amount", "25000"),
        ("redirect", REDIRECT),
        ("factorId", "mp-1"),
    ] {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    let req = Request::post("/sandbox/medogram/payment-test/gateway-send")
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(Body::from(body))
        .unwrap();
    let id = call(&r, req).await.body;
    assert!(id.parse::<u64>().unwrap() > 0, "{id}");
    let page = call(
        &r,
        get(&format!("/sandbox/medogram/payment-test/gateway-{id}-get")),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("25,000"));
}

#[tokio::test]
async fn checkout_page_is_real_escaped_html() {
    let (_, r) = sandbox(SandboxConfig::default());
    let id = new_invoice(&r, "1001", "1500000").await;
    for path in [format!("gateway-{id}-get"), format!("gateway-{id}")] {
        let page = call(&r, get(&format!("/sandbox/medogram/payment/{path}"))).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(page.body.contains("1,500,000"));
        assert!(page.body.contains("Order &lt;b&gt;1001&lt;/b&gt;"));
        assert!(!page.body.contains("<b>1001"));
        assert!(page.body.contains(&format!("action=\"gateway-{id}/pay\"")));
        assert!(page
            .body
            .contains(&format!("action=\"gateway-{id}/cancel\"")));
        assert!(!page.body.contains("<script"), "must work without JS");
    }
    for missing in ["gateway-1-get", "gateway-abc", "nothing"] {
        let page = call(&r, get(&format!("/sandbox/medogram/payment/{missing}"))).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert!(page.body.contains("<html>"));
    }
    let unknown_pay = call(&r, form("/sandbox/medogram/payment/gateway-1/pay", &[])).await;
    assert_eq!(unknown_pay.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn pay_returns_by_get_keeping_the_query() {
    let (sb, r) = sandbox(SandboxConfig::default());
    let id = new_invoice(&r, "1001", "150000").await;
    let q = pay(&r, &id).await;
    assert_eq!(q["src"], "sb");
    assert_eq!(q["id_get"], id);
    assert_eq!(q["factorId"], "1001");
    let trans_id = &q["trans_id"];
    assert!((8..=10).contains(&trans_id.len()) && trans_id.parse::<u64>().is_ok());
    // Paying again sends the browser back with the same trans_id.
    assert_eq!(pay(&r, &id).await["trans_id"], *trans_id);
    assert_eq!(sb.medogram_stats().paid_total, 1);
}

#[tokio::test]
async fn verify_answers_1_then_11_and_every_error() {
    let (sb, r) = sandbox(SandboxConfig::default());
    let id = new_invoice(&r, "1001", "150000").await;
    let trans_id = pay(&r, &id).await["trans_id"].clone();

    let wrong_api = call(
        &r,
        form(
            VERIFY,
            &[("api", "x"), ("trans_id", &trans_id), ("id_get", &id)],
        ),
    )
    .await;
    assert_eq!(wrong_api.body, "-1");
    assert_eq!(verify(&r, "12ab", &id, false).await, "-2");
    assert_eq!(verify(&r, "", &id, false).await, "-2");
    assert_eq!(verify(&r, &trans_id, "x", false).await, "-3");
    assert_eq!(verify(&r, "1", &id, false).await, "-4");
    assert_eq!(verify(&r, &trans_id, "1", true).await, r#"{"status":-4}"#);

    let first: Value = serde_json::from_str(&verify(&r, &trans_id, &id, true).await).unwrap();
    assert_eq!(
        first,
        json!({"status": 1, "amount": 150000, "cardNum": first["cardNum"], "factorId": "1001"})
    );
    let card = first["cardNum"].as_str().unwrap();
    assert!(
        card.starts_with("603799******") && card.len() == 16,
        "{card}"
    );
    let again: Value = serde_json::from_str(&verify(&r, &trans_id, &id, true).await).unwrap();
    assert_eq!(again["status"], 11);
    assert_eq!(again["amount"], 150000);
    assert_eq!(verify(&r, &trans_id, &id, false).await, "11");

    let stats = sb.medogram_stats();
    assert_eq!(stats.verifies_by_trans[&trans_id], 1);
    assert_eq!(stats.already_verified_total, 2);
    assert_eq!(stats.verifies_total, 9);
}

#[tokio::test]
async fn cancelled_payment_verifies_as_minus_4() {
    let (sb, r) = sandbox(SandboxConfig::default());
    let id = new_invoice(&r, "1002", "150000").await;
    let reply = call(
        &r,
        form(
            &format!("/sandbox/medogram/payment/gateway-{id}/cancel"),
            &[],
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FOUND);
    let q = query_of(reply.location());
    assert_eq!(verify(&r, &q["trans_id"], &id, false).await, "-4");
    // Pay after cancel keeps the cancellation.
    assert_eq!(pay(&r, &id).await["trans_id"], q["trans_id"]);
    assert_eq!(verify(&r, &q["trans_id"], &id, false).await, "-4");
    assert_eq!(sb.medogram_stats().cancelled_total, 1);
    assert_eq!(sb.medogram_stats().paid_total, 0);
}

#[tokio::test]
async fn post_return_is_an_auto_submitting_form() {
    let (_, r) = sandbox(with(MedogramConfig {
        return_method: ReturnMethod::Post,
        ..MedogramConfig::default()
    }));
    let id = new_invoice(&r, "f&\"1", "5000").await;
    let reply = call(
        &r,
        form(&format!("/sandbox/medogram/payment/gateway-{id}/pay"), &[]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let b = &reply.body;
    assert!(b.contains("method=\"post\""));
    assert!(b.contains("action=\"https://merchant.example/bitpay/return?src=sb\""));
    assert!(b.contains("name=\"trans_id\""));
    assert!(b.contains(&format!("name=\"id_get\" value=\"{id}\"")));
    assert!(b.contains("name=\"factorId\" value=\"f&amp;&quot;1\""));
    assert!(b.contains("<button type=\"submit\""));
    assert!(b.contains(".submit()"));
}

#[tokio::test]
async fn double_encoded_redirect_is_decoded_twice() {
    let (_, r) = sandbox(SandboxConfig::default());
    // What the Laravel sample sends: urlencode(redirect), then form-encoded.
    let once: String =
        url::form_urlencoded::byte_serialize(b"https://shop.example/ret?a=1").collect();
    let id = send(
        &r,
        &[
            ("api", KEY),
            ("amount", "1000"),
            ("redirect", &once),
            ("factorId", "7"),
        ],
    )
    .await;
    let reply = call(
        &r,
        form(&format!("/sandbox/medogram/payment/gateway-{id}/pay"), &[]),
    )
    .await;
    let location = reply.location();
    assert!(
        location.starts_with("https://shop.example/ret?a=1&trans_id="),
        "{location}"
    );
}

#[tokio::test]
async fn repeated_send_is_deduplicated_by_factor_unless_disabled() {
    let (sb, r) = sandbox(SandboxConfig::default());
    let a = new_invoice(&r, "p-1", "10000").await;
    assert_eq!(new_invoice(&r, "p-1", "10000").await, a);
    assert_ne!(new_invoice(&r, "p-1", "20000").await, a);
    let stats = sb.medogram_stats();
    assert_eq!(stats.sends_total, 3);
    assert_eq!(stats.sends_by_factor["p-1"], 3);
    assert_eq!(stats.invoices_by_factor["p-1"], 2);
    assert_eq!(stats.invoices_created, 2);

    let (sb, r) = sandbox(with(MedogramConfig {
        send_dedupe_by_factor: false,
        ..MedogramConfig::default()
    }));
    assert_ne!(
        new_invoice(&r, "p-1", "10000").await,
        new_invoice(&r, "p-1", "10000").await
    );
    assert_eq!(sb.medogram_stats().invoices_by_factor["p-1"], 2);
}

type Seen = Arc<Mutex<Vec<HashMap<String, String>>>>;

/// A merchant whose return endpoint records what the "browser" brought.
async fn merchant() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let (g, p) = (seen.clone(), seen.clone());
    let app = Router::new().route(
        "/return",
        route_get(move |Query(q): Query<HashMap<String, String>>| async move {
            g.lock().unwrap().push(q);
            (StatusCode::FOUND, [(header::LOCATION, "/done")])
        })
        .post(move |Form(f): Form<HashMap<String, String>>| async move {
            p.lock().unwrap().push(f);
            "ok"
        }),
    );
    let addr = serve(app).await;
    (format!("http://{addr}/return"), seen)
}

async fn autopay_roundtrip(method: ReturnMethod) {
    let (url, seen) = merchant().await;
    let (sb, r) = sandbox(with(MedogramConfig {
        autopay: true,
        autopay_delay_ms: 10,
        return_method: method,
        ..MedogramConfig::default()
    }));
    let id = send(
        &r,
        &[
            ("api", KEY),
            ("amount", "30000"),
            ("redirect", &url),
            ("factorId", "auto-1"),
        ],
    )
    .await;
    let got = eventually(|| {
        let seen = seen.clone();
        async move { seen.lock().unwrap().first().cloned() }
    })
    .await;
    assert_eq!(got["id_get"], id);
    assert_eq!(got["factorId"], "auto-1");
    assert_eq!(verify(&r, &got["trans_id"], &id, false).await, "1");
    assert_eq!(sb.medogram_stats().paid_total, 1);
}

#[tokio::test]
async fn autopay_plays_a_get_return() {
    autopay_roundtrip(ReturnMethod::Get).await;
}

#[tokio::test]
async fn autopay_plays_a_post_return() {
    autopay_roundtrip(ReturnMethod::Post).await;
}

#[tokio::test]
async fn autopay_survives_an_unreachable_merchant() {
    let (sb, r) = sandbox(with(MedogramConfig {
        autopay: true,
        autopay_delay_ms: 0,
        ..MedogramConfig::default()
    }));
    send(
        &r,
        &[
            ("api", KEY),
            ("amount", "30000"),
            ("redirect", "http://127.0.0.1:9/none"),
        ],
    )
    .await;
    eventually(|| {
        let sb = sb.clone();
        async move { (sb.medogram_stats().paid_total == 1).then_some(()) }
    })
    .await;
    // The sandbox still answers after the failed return.
    assert_eq!(send(&r, &[("api", "x")]).await, "-1");
}

fn user_get(identifier: &str, auth: Option<&str>) -> Request<Body> {
    let mut req = Request::get(format!("/sandbox/medogram/api/users/{identifier}/"));
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    req.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn user_api_200_404_401() {
    let (sb, r) = sandbox(SandboxConfig::default());
    let auth = format!("Api-Key {KEY}");
    let ok = call(&r, user_get("09123456789", Some(&auth))).await;
    assert_eq!(ok.status, StatusCode::OK);
    let user = ok.json();
    assert_eq!(user["id"], 9123456789u64);
    assert_eq!(user["phone"], "09123456789");
    assert_eq!(user["username"], "user6789");
    assert_eq!(user["email"], "user6789@example.com");
    assert!(!user["first_name"].as_str().unwrap().is_empty());
    assert!(!user["last_name"].as_str().unwrap().is_empty());
    assert_eq!(
        call(&r, user_get("09123456789", Some(&auth))).await.json(),
        user
    );

    for bad in ["0912345678", "9123456789", "alice"] {
        let nf = call(&r, user_get(bad, Some(&auth))).await;
        assert_eq!(nf.status, StatusCode::NOT_FOUND);
        assert_eq!(nf.json(), json!({"detail": "Not found."}));
    }
    for wrong in [
        None,
        Some("Api-Key nope"),
        Some("Bearer sandbox-medogram-api-key"),
    ] {
        let denied = call(&r, user_get("09123456789", wrong)).await;
        assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
        assert!(denied.json()["detail"].is_string());
    }
    // Without the trailing slash too.
    let no_slash = Request::get("/sandbox/medogram/api/users/09123456789")
        .header(header::AUTHORIZATION, &auth)
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&r, no_slash).await.status, StatusCode::OK);
    assert_eq!(sb.medogram_stats().user_fetches_total, 9);
}

#[tokio::test]
async fn user_api_overrides_and_missing() {
    let (_, r) = sandbox(SandboxConfig::default());
    let auth = format!("Api-Key {KEY}");
    let put = |id: &str, v: Value| {
        json_req(
            Method::PUT,
            &format!("/sandbox/medogram/api/users/{id}/"),
            &v,
        )
    };
    assert_eq!(
        call(
            &r,
            put(
                "09120000001",
                json!({"first_name": "Test", "email": "t@x.io"})
            )
        )
        .await
        .status,
        StatusCode::OK
    );
    let user = call(&r, user_get("09120000001", Some(&auth))).await.json();
    assert_eq!(user["first_name"], "Test");
    assert_eq!(user["email"], "t@x.io");
    assert_eq!(user["username"], "user0001");

    call(&r, put("09120000002", json!({"_missing": true}))).await;
    assert_eq!(
        call(&r, user_get("09120000002", Some(&auth))).await.status,
        StatusCode::NOT_FOUND
    );

    call(&r, put("alice", json!({"first_name": "Alice"}))).await;
    let alice = call(&r, user_get("alice", Some(&auth))).await.json();
    assert_eq!(alice["first_name"], "Alice");
    assert!(alice["id"].as_u64().unwrap() > 0);

    let bad = call(&r, put("x", json!([1, 2]))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn error_rate_one_answers_503_everywhere_it_applies() {
    let (sb, r) = sandbox(with(MedogramConfig {
        error_rate: 1.0,
        ..MedogramConfig::default()
    }));
    assert_eq!(
        call(&r, form(SEND, &[("api", KEY)])).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        call(&r, form(VERIFY, &[("api", KEY)])).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let auth = format!("Api-Key {KEY}");
    assert_eq!(
        call(&r, user_get("09123456789", Some(&auth))).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        call(&r, get("/sandbox/medogram/_config")).await.status,
        StatusCode::OK
    );
    let stats = sb.medogram_stats();
    assert_eq!(stats.injected_errors_total, 3);
    assert_eq!(stats.sends_total, 0);
}

#[tokio::test]
async fn latency_is_added() {
    let (_, r) = sandbox(with(MedogramConfig {
        latency_ms: 150,
        ..MedogramConfig::default()
    }));
    let start = std::time::Instant::now();
    call(&r, form(SEND, &[])).await;
    // The simulator asks tokio's timer for 1.5 ms less than set, because the
    // timer usually wakes that much late (`faults::latency`: right on
    // average). A timer that happens to wake on time answers after 148.5 ms.
    assert!(start.elapsed() >= std::time::Duration::from_micros(148_500));
}

#[tokio::test]
async fn config_round_trip_stats_and_reset() {
    let (sb, r) = sandbox(SandboxConfig::default());
    let cfg = call(&r, get("/sandbox/medogram/_config")).await.json();
    assert_eq!(
        cfg,
        serde_json::to_value(MedogramConfig::default()).unwrap()
    );

    let mut changed = cfg.clone();
    changed["api_key"] = json!("other");
    changed["return_method"] = json!("post");
    changed["error_rate"] = json!(0.5);
    let put = call(
        &r,
        json_req(Method::PUT, "/sandbox/medogram/_config", &changed),
    )
    .await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(
        call(&r, get("/sandbox/medogram/_config")).await.json(),
        changed
    );

    // Missing fields take their defaults.
    call(
        &r,
        json_req(Method::PUT, "/sandbox/medogram/_config", &json!({})),
    )
    .await;
    assert_eq!(call(&r, get("/sandbox/medogram/_config")).await.json(), cfg);

    for bad in [
        json!({"error_rate": 2}),
        json!({"return_method": "put"}),
        json!({"api_key": ""}),
        json!("x"),
    ] {
        let reply = call(&r, json_req(Method::PUT, "/sandbox/medogram/_config", &bad)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(reply.json()["error"].is_string());
    }
    assert_eq!(call(&r, get("/sandbox/medogram/_config")).await.json(), cfg);

    let id = new_invoice(&r, "s-1", "1000").await;
    let stats = call(&r, get("/sandbox/medogram/_stats")).await.json();
    assert_eq!(stats["sends_total"], 1);
    assert_eq!(stats["invoices_by_factor"]["s-1"], 1);
    assert_eq!(serde_json::to_value(sb.medogram_stats()).unwrap(), stats);

    assert_eq!(
        call(&r, form("/sandbox/medogram/_reset", &[])).await.status,
        StatusCode::OK
    );
    assert_eq!(sb.medogram_stats(), Default::default());
    let page = call(
        &r,
        get(&format!("/sandbox/medogram/payment/gateway-{id}-get")),
    )
    .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn send_refuses_return_links_a_payer_must_not_follow() {
    let (_, r) = sandbox(SandboxConfig::default());
    for bad in [
        "javascript:alert(document.domain)",
        "data:text/html,x",
        "/relative",
    ] {
        assert_eq!(
            send(&r, &[("api", KEY), ("amount", "1000"), ("redirect", bad)]).await,
            "-3",
            "{bad}"
        );
    }
    let sb = paygate_sandbox::Sandbox::with_return_links(
        SandboxConfig::default(),
        paygate_sandbox::ReturnLinks::only("https://merchant.example"),
    );
    let r = sb.router();
    assert_eq!(
        send(
            &r,
            &[
                ("api", KEY),
                ("amount", "1000"),
                ("redirect", "https://evil.example/x")
            ]
        )
        .await,
        "-3"
    );
    assert!(send(
        &r,
        &[("api", KEY), ("amount", "1000"), ("redirect", REDIRECT)]
    )
    .await
    .parse::<i64>()
    .is_ok_and(|id| id > 0));
}
