//! Refunds end to end (`POST`/`GET /v1/payments/{id}/refunds`) against a real
//! `paygate serve` process (embedded mode, built-in simulators): an Atmos and
//! a Click payment paid on the simulators' pages and refunded through their
//! reversal calls; the refusals; Idempotency-Key with Stripe's rules (the
//! first answer replayed, another body refused); a gateway
//! that keeps failing ends the refund `failed` and leaves the payment alone.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use support::{admin_key, client, eventually, Server};

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get_json(s: &Server, path: &str) -> (StatusCode, Value) {
    json_of(client().get(s.url(path)).send().await.unwrap()).await
}

/// Creates a shop order paid through `payment_type`; its id and pay link.
async fn new_order(s: &Server, payment_type: &str) -> (i64, String) {
    let (code, body) = json_of(
        client()
            .post(s.url("/api/orders/create"))
            .json(&json!({"product_name": "Test Product", "amount": "50.00", "payment_type": payment_type}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    (
        body["order_id"].as_i64().expect("order_id"),
        body["payment_url"]
            .as_str()
            .expect("payment_url")
            .to_string(),
    )
}

async fn order(s: &Server, id: i64) -> Value {
    let (code, body) = json_of(
        client()
            .get(s.url(&format!("/api/orders/{id}")))
            .bearer_auth(admin_key(s).await)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body
}

async fn wait_order(s: &Server, id: i64, want: &str) -> Value {
    eventually(
        &format!("order {id} {want}"),
        Duration::from_secs(20),
        || async {
            let o = order(s, id).await;
            (o["status"] == want).then_some(o)
        },
    )
    .await
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    let end = tag[start..].find('"')? + start;
    Some(
        tag[start..end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// The payer on Atmos' checkout page presses "pay".
async fn pay_atmos(link: &str) {
    let html = client()
        .get(link)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = html
        .split("<form")
        .skip(1)
        .map(|f| f.split("</form>").next().unwrap_or_default())
        .find(|f| attr(f, "action").as_deref() == Some("pay"))
        .unwrap_or_else(|| panic!("no pay form: {html}"));
    let fields: Vec<(String, String)> = form
        .split("<input")
        .skip(1)
        .filter_map(|i| Some((attr(i, "name")?, attr(i, "value").unwrap_or_default())))
        .collect();
    let dir = link.split('?').next().unwrap().rsplit_once('/').unwrap().0;
    let r = client()
        .post(format!("{dir}/pay"))
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
}

/// The payer on Click's pay page presses "Pay".
async fn pay_click(s: &Server, link: &str) {
    let query: Vec<(String, String)> = reqwest::Url::parse(link)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let r = client()
        .post(s.url("/sandbox/click/services/pay/confirm"))
        .form(&query)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
}

/// A paid order of `payment_type`: its id and its payment's id.
async fn paid_order(s: &Server, payment_type: &str) -> (i64, String) {
    let (id, link) = new_order(s, payment_type).await;
    match payment_type {
        "atmos" => pay_atmos(&link).await,
        "click" => pay_click(s, &link).await,
        other => panic!("no payer for {other}"),
    }
    let o = wait_order(s, id, "paid").await;
    assert_eq!(o["payment"]["status"], "completed");
    (id, o["payment"]["id"].as_str().unwrap().to_string())
}

async fn refund(
    s: &Server,
    payment_id: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let (code, _, body) = refund_replayed(s, payment_id, body, key).await;
    (code, body)
}

/// As `refund`, with whether the answer is a replay (`Idempotent-Replayed`).
async fn refund_replayed(
    s: &Server,
    payment_id: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (StatusCode, bool, Value) {
    let mut req = client()
        .post(s.url(&format!("/v1/payments/{payment_id}/refunds")))
        .bearer_auth(admin_key(s).await);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let replayed = r
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let (code, body) = json_of(r).await;
    (code, replayed, body)
}

async fn refunds(s: &Server, payment_id: &str) -> Vec<Value> {
    let (code, body) = json_of(
        client()
            .get(s.url(&format!("/v1/payments/{payment_id}/refunds")))
            .bearer_auth(admin_key(s).await)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body["refunds"].as_array().unwrap().clone()
}

async fn wait_refund(s: &Server, payment_id: &str, want: &str) -> Value {
    eventually(
        &format!("a {want} refund"),
        Duration::from_secs(30),
        || async {
            let all = refunds(s, payment_id).await;
            all.into_iter().find(|r| r["status"] == want)
        },
    )
    .await
}

async fn payment(s: &Server, payment_id: &str) -> Value {
    let (code, body) = get_json(s, &format!("/v1/payments/{payment_id}")).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body
}

fn code_of(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn an_atmos_payment_is_refunded_through_the_simulator() {
    let s = Server::serve(&[]);
    let (order_id, pid) = paid_order(&s, "atmos").await;

    let (code, body) = refund(
        &s,
        &pid,
        Some(json!({"reason": "customer returned it"})),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "requested");
    assert_eq!(body["amount"], 5000);
    assert_eq!(body["currency"], "UZS");
    assert_eq!(body["reason"], "customer returned it");

    let done = wait_refund(&s, &pid, "succeeded").await;
    assert_eq!(done["id"], body["id"]);
    assert!(done["gateway_ref"].as_str().is_some_and(|g| !g.is_empty()));
    let p = payment(&s, &pid).await;
    assert_eq!(p["status"], "refunded", "{p}");
    let o = wait_order(&s, order_id, "cancelled").await;
    assert_eq!(o["payment"]["status"], "refunded");
    let (_, stats) = get_json(&s, "/sandbox/atmos/_stats").await;
    assert_eq!(stats["reversed_total"], 1, "{stats}");

    // Nothing is left to refund.
    let (code, again) = refund(&s, &pid, None, None).await;
    assert_eq!(code, StatusCode::CONFLICT, "{again}");
    assert_eq!(code_of(&again), "payment_not_refundable");
    assert_eq!(refunds(&s, &pid).await.len(), 1);
}

#[tokio::test]
async fn a_click_payment_is_refunded_through_the_merchant_api() {
    let s = Server::serve(&[]);
    let (order_id, pid) = paid_order(&s, "click").await;
    // No body at all asks for the whole payment.
    let (code, body) = refund(&s, &pid, None, None).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["amount"], 5000);
    let done = wait_refund(&s, &pid, "succeeded").await;
    let p = payment(&s, &pid).await;
    assert_eq!(p["status"], "refunded", "{p}");
    assert_eq!(
        done["gateway_ref"], p["tracking_code"],
        "Click's payment number"
    );
    wait_order(&s, order_id, "cancelled").await;
    let (_, stats) = get_json(&s, "/sandbox/click/_stats").await;
    assert_eq!(stats["reversals"], 1, "{stats}");
}

#[tokio::test]
async fn refunds_that_cannot_be_made_are_refused_and_write_nothing() {
    let s = Server::serve(&[]);
    // An Atmos payment not paid yet.
    let (id, _) = new_order(&s, "atmos").await;
    let pending = order(&s, id).await["payment"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = refund(&s, &pending, None, None).await;
    assert_eq!(
        (code, code_of(&body)),
        (StatusCode::CONFLICT, "payment_not_refundable"),
        "{body}"
    );

    // Payme refunds start in Payme's cabinet.
    let (id, _) = new_order(&s, "payme").await;
    let payme = order(&s, id).await["payment"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, body) = refund(&s, &payme, None, None).await;
    assert_eq!(
        (code, code_of(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "refund_in_gateway_cabinet"
        ),
        "{body}"
    );

    // medogram (bitpay) has no refund call.
    let (code, created) = json_of(
        client()
            .post(s.url("/v1/payments"))
            .json(&json!({"amount": 10000, "user_identifier": "09123456789"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(code.is_success(), "{created}");
    let medogram = created["id"].as_str().unwrap().to_string();
    let (code, body) = refund(&s, &medogram, None, None).await;
    assert_eq!(
        (code, code_of(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "refund_not_supported"),
        "{body}"
    );

    // Unknown payment, bad id, no key.
    let unknown = uuid::Uuid::new_v4().to_string();
    let (code, body) = refund(&s, &unknown, None, None).await;
    assert_eq!(
        (code, code_of(&body)),
        (StatusCode::NOT_FOUND, "not_found"),
        "{body}"
    );
    let (code, body) = refund(&s, "nope", None, None).await;
    assert_eq!(
        (code, code_of(&body)),
        (StatusCode::BAD_REQUEST, "invalid_id"),
        "{body}"
    );
    let r = client()
        .post(s.url(&format!("/v1/payments/{pending}/refunds")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A paid one: amounts beyond it, partial amounts, bad bodies.
    let (_, paid) = paid_order(&s, "atmos").await;
    for (body, status, code) in [
        (
            json!({"amount": 5001}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "amount_exceeds_remaining",
        ),
        (
            json!({"amount": 100}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "partial_refund_not_supported",
        ),
        (
            json!({"amount": 0}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"amount": "12.5"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"amount": 50.0}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"reason": 7}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"reason": "x".repeat(256)}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            json!({"amount": 5000, "currency": "USD"}),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (json!([1]), StatusCode::BAD_REQUEST, "invalid_json"),
    ] {
        let (got, answer) = refund(&s, &paid, Some(body.clone()), None).await;
        assert_eq!((got, code_of(&answer)), (status, code), "{body}: {answer}");
    }
    let (got, answer) = json_of(
        client()
            .post(s.url(&format!("/v1/payments/{paid}/refunds")))
            .bearer_auth(admin_key(&s).await)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (got, code_of(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_json")
    );
    let (got, answer) = refund(&s, &paid, None, Some(&"k".repeat(256))).await;
    assert_eq!(
        (got, code_of(&answer)),
        (StatusCode::BAD_REQUEST, "invalid_idempotency_key")
    );
    assert!(refunds(&s, &paid).await.is_empty(), "nothing was written");
    assert_eq!(payment(&s, &paid).await["status"], "completed");
}

#[tokio::test]
async fn a_repeat_with_the_same_idempotency_key_replays_the_first_answer() {
    let s = Server::serve(&[]);
    let (_, pid) = paid_order(&s, "atmos").await;
    let body = || Some(json!({"amount": 5000}));
    let (c1, r1, first) = refund_replayed(&s, &pid, body(), Some("refund-42")).await;
    let (c2, r2, second) = refund_replayed(&s, &pid, body(), Some("refund-42")).await;
    assert_eq!((c1, r1), (StatusCode::ACCEPTED, false), "{first}");
    assert_eq!((c2, r2), (StatusCode::ACCEPTED, true), "{second}");
    assert_eq!(first, second, "the first answer, replayed");
    wait_refund(&s, &pid, "succeeded").await;
    // Still the first answer (Stripe), not the refund as it is now.
    let (c3, r3, third) = refund_replayed(&s, &pid, body(), Some("refund-42")).await;
    assert_eq!((c3, r3), (StatusCode::ACCEPTED, true), "{third}");
    assert_eq!(third, first);
    assert_eq!(third["status"], "requested");
    // The same key with another request: refused, nothing written.
    let (c4, other) = refund(&s, &pid, None, Some("refund-42")).await;
    assert_eq!(
        (c4, code_of(&other)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
        "{other}"
    );
    assert_eq!(refunds(&s, &pid).await.len(), 1);
    let (_, stats) = get_json(&s, "/sandbox/atmos/_stats").await;
    assert_eq!(stats["reversed_total"], 1, "one reversal: {stats}");
    // A key belongs to the API key, not to one payment: the same key and body
    // for another payment is another request.
    let (_, other_pid) = paid_order(&s, "atmos").await;
    let (c5, other) = refund(&s, &other_pid, body(), Some("refund-42")).await;
    assert_eq!(
        (c5, code_of(&other)),
        (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
        "{other}"
    );
    assert!(refunds(&s, &other_pid).await.is_empty());

    // Concurrent repeats of one key: one refund; every answer names it, or
    // says the first is still running.
    let (_, pid) = paid_order(&s, "atmos").await;
    let answers =
        futures::future::join_all((0..6).map(|_| refund(&s, &pid, None, Some("same-key")))).await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .filter_map(|(code, body)| match *code {
            StatusCode::ACCEPTED => Some(body["id"].as_str().unwrap().to_string()),
            StatusCode::CONFLICT => {
                assert_eq!(code_of(body), "idempotency_key_in_use", "{body}");
                None
            }
            other => panic!("{other}: {body}"),
        })
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    let (code, again) = refund(&s, &pid, None, Some("same-key")).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{again}");
    assert!(ids.contains(again["id"].as_str().unwrap()));
    assert_eq!(refunds(&s, &pid).await.len(), 1);

    // Concurrent requests with different keys: one refund, the rest refused.
    let (_, pid) = paid_order(&s, "atmos").await;
    let answers = futures::future::join_all((0..6).map(|i| {
        let s = &s;
        let pid = &pid;
        async move { refund(s, pid, None, Some(&format!("key-{i}"))).await }
    }))
    .await;
    let won = answers
        .iter()
        .filter(|(code, _)| *code == StatusCode::ACCEPTED)
        .count();
    assert_eq!(won, 1, "{answers:?}");
    assert!(answers
        .iter()
        .all(|(code, body)| *code == StatusCode::ACCEPTED
            || (*code == StatusCode::UNPROCESSABLE_ENTITY
                && code_of(body) == "amount_exceeds_remaining")));
    assert_eq!(refunds(&s, &pid).await.len(), 1);
}

#[tokio::test]
async fn a_gateway_that_keeps_failing_ends_the_refund_failed_and_leaves_the_payment() {
    let s = Server::serve(&[("PAYGATE_RETRY_ATTEMPTS", "3")]);
    let (order_id, pid) = paid_order(&s, "atmos").await;
    let (code, mut cfg) = get_json(&s, "/sandbox/atmos/_config").await;
    assert_eq!(code, StatusCode::OK);
    cfg["error_rate"] = json!(1.0);
    let r = client()
        .put(s.url("/sandbox/atmos/_config"))
        .json(&cfg)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let (code, body) = refund(&s, &pid, None, None).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let failed = wait_refund(&s, &pid, "failed").await;
    assert_eq!(failed["failure_reason"], "gateway_unavailable", "{failed}");
    let (_, stats) = get_json(&s, "/sandbox/atmos/_stats").await;
    assert!(
        stats["injected_errors_total"].as_u64().unwrap_or(0) >= 3,
        "retried: {stats}"
    );
    let p = payment(&s, &pid).await;
    assert_eq!(p["status"], "completed", "{p}");
    assert_eq!(order(&s, order_id).await["status"], "paid");

    // A failed refund frees the amount: once Atmos is back, a new one succeeds.
    cfg["error_rate"] = json!(0.0);
    client()
        .put(s.url("/sandbox/atmos/_config"))
        .json(&cfg)
        .send()
        .await
        .unwrap();
    let (code, body) = refund(&s, &pid, None, None).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    wait_refund(&s, &pid, "succeeded").await;
    assert_eq!(payment(&s, &pid).await["status"], "refunded");
}
