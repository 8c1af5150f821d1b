//! Merchant notifications end to end (docs/notifications.md): a real
//! `paygate serve` delivers signed Standard Webhooks to a local receiver;
//! every delivery is checked with the PyPI `standardwebhooks` library.

#[path = "support/atmos_checkout.rs"]
mod atmos_checkout;
mod support;
#[path = "support/webhooks.rs"]
mod webhooks;

use atmos_checkout::press;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;
use support::{client, eventually, metrics_text, Server};
use webhooks::{verify_all, Receiver};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn admin(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = client()
        .request(method, s.url(path))
        .bearer_auth(&s.admin_key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    json_of(req.send().await.unwrap()).await
}

/// A medogram payment paid on the simulator's checkout; returns its id.
async fn paid_medogram_payment(s: &Server) -> String {
    let (code, body) = json_of(
        client()
            .post(s.url("/crazyminer/payment/create/"))
            .json(&json!({"amount": 100000, "description": "x", "user_identifier": "09123456789"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let id = body["transaction_id"].as_str().unwrap().to_string();
    let url = body["payment_url"].as_str().unwrap();
    let id_get = url
        .rsplit("gateway-")
        .next()
        .unwrap()
        .trim_end_matches("-get");
    let back = client()
        .post(s.url(&format!("/sandbox/medogram/payment/gateway-{id_get}/pay")))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), StatusCode::FOUND);
    let callback = back.headers()["location"].to_str().unwrap().to_string();
    client().get(callback).send().await.unwrap();
    eventually("the payment completes", Duration::from_secs(20), || async {
        let v: Value = client()
            .get(s.url(&format!("/crazyminer/payment/status/{id}/")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (v["status"] == "completed").then_some(())
    })
    .await;
    id
}

/// An Atmos shop order paid on the simulator's checkout; returns the order
/// id and its payment's id.
async fn paid_atmos_order(s: &Server) -> (i64, String) {
    let (code, body) = json_of(
        client()
            .post(s.url("/api/orders/create"))
            .json(&json!({"product_name": "Test Product", "amount": "50.00", "payment_type": "atmos"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let id = body["order_id"].as_i64().unwrap();
    let url = body["payment_url"].as_str().unwrap().to_string();
    let back = press(&url, "pay").await;
    assert_eq!(back.status(), StatusCode::FOUND);
    let order = eventually("the order is paid", Duration::from_secs(20), || async {
        let (_, o) = admin(s, reqwest::Method::GET, &format!("/api/orders/{id}"), None).await;
        (o["status"] == "paid").then_some(o)
    })
    .await;
    (id, order["payment"]["id"].as_str().unwrap().to_string())
}

/// The events the receiver accepted, one per webhook-id (a retry of a
/// delivered message would repeat its id).
fn delivered_events(r: &Receiver) -> BTreeMap<String, Value> {
    r.accepted()
        .iter()
        .map(|d| (d.header("webhook-id").unwrap().to_string(), d.json()))
        .collect()
}

#[tokio::test]
async fn a_merchant_down_for_a_while_gets_every_event_once_it_is_back() {
    let merchant = Receiver::start(503).await;
    let s = Server::serve(&[
        ("PAYGATE_WEBHOOK_URL", merchant.url.as_str()),
        ("PAYGATE_WEBHOOK_SECRET", SECRET),
        (
            "PAYGATE_WEBHOOK_RETRY_SCHEDULE",
            "200ms,400ms,800ms,1s,2s,2s,3s,5s,5s,5s",
        ),
    ]);
    // Payments go on while the merchant is down: a dead endpoint delays nothing.
    let payment = paid_medogram_payment(&s).await;
    let (order_id, order_payment) = paid_atmos_order(&s).await;

    // Down: attempts fail and are recorded with the merchant's answer.
    let attempts = eventually("failed attempts", Duration::from_secs(20), || async {
        let (code, body) = admin(
            &s,
            reqwest::Method::GET,
            "/v1/webhook-endpoints/ep_config/attempts",
            None,
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let list = body["attempts"].as_array().unwrap().clone();
        (list.iter().filter(|a| a["outcome"] == "failed").count() >= 6).then_some(list)
    })
    .await;
    let failed = attempts.iter().find(|a| a["outcome"] == "failed").unwrap();
    assert_eq!(failed["status_code"], 503);
    assert_eq!(failed["response"], "answered 503");
    assert!(failed["latency_ms"].is_i64());
    assert!(merchant.accepted().is_empty());

    // Back up: every event arrives.
    merchant.answer(200);
    let want: HashSet<(String, String)> = [
        ("payment.processing", payment.as_str()),
        ("payment.completed", payment.as_str()),
        ("payment.processing", order_payment.as_str()),
        ("payment.completed", order_payment.as_str()),
    ]
    .into_iter()
    .map(|(t, p)| (t.to_string(), p.to_string()))
    .collect();
    let events = eventually("every event delivered", Duration::from_secs(30), || async {
        let events = delivered_events(&merchant);
        let got: HashSet<(String, String)> = events
            .values()
            .filter(|e| e["type"].as_str().unwrap().starts_with("payment."))
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_string(),
                    e["data"]["payment_id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let order_paid = events
            .values()
            .any(|e| e["type"] == "order.paid" && e["data"]["order_id"] == order_id);
        (got == want && order_paid).then_some(events)
    })
    .await;
    // Nothing else was announced: 2 payments × 2 events + the order.
    assert_eq!(events.len(), 5, "{events:?}");

    // Each payment event carries the payment's version: a receiver orders them.
    for p in [&payment, &order_payment] {
        let version = |t: &str| {
            events
                .values()
                .find(|e| e["type"] == t && e["data"]["payment_id"] == p.as_str())
                .unwrap()["data"]["version"]
                .as_i64()
                .unwrap()
        };
        assert!(version("payment.processing") < version("payment.completed"));
    }
    let completed = events
        .values()
        .find(|e| e["type"] == "payment.completed")
        .unwrap();
    assert!(completed["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(completed["data"]["status"], "completed");

    // Every attempt, failed or not, is signed as Standard Webhooks says: the
    // reference library accepts all of them.
    let all: Vec<(String, webhooks::Delivery)> = merchant
        .all()
        .into_iter()
        .map(|d| (SECRET.to_string(), d))
        .collect();
    assert!(all.len() > events.len());
    verify_all(&all);
    // A retry resends the same message: same id, same body.
    let mut bodies: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    for (_, d) in &all {
        bodies
            .entry(d.header("webhook-id").unwrap().to_string())
            .or_default()
            .insert(d.body.clone());
    }
    assert!(bodies.values().all(|b| b.len() == 1));
    assert_eq!(bodies.len(), 5);

    let metrics = metrics_text(&s).await;
    assert!(
        metrics.contains("paygate_webhook_deliveries_total{outcome=\"delivered\"} 5"),
        "{metrics}"
    );
    assert!(metrics.contains("paygate_webhook_delivery_seconds"));
    assert!(!metrics.contains(&SECRET[6..]));
}

#[tokio::test]
async fn endpoints_are_managed_filtered_rotated_disabled_and_redriven() {
    let shop = Receiver::start(200).await;
    let dead = Receiver::start(500).await;
    let gone = Receiver::start(410).await;
    let s = Server::serve(&[("PAYGATE_WEBHOOK_RETRY_SCHEDULE", "100ms,100ms")]);
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    // Admin keys only, and bad input is a clear error.
    let r = client()
        .get(s.url("/v1/webhook-endpoints"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (code, body) = admin(
        &s,
        post.clone(),
        "/v1/webhook-endpoints",
        Some(json!({"url": "ftp://x"})),
    )
    .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_field"))
    );
    let (code, body) = admin(
        &s,
        post.clone(),
        "/v1/webhook-endpoints",
        Some(json!({"url": shop.url, "event_types": ["payment.paid"]})),
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "event_types");
    let (code, _) = admin(&s, get.clone(), "/v1/webhook-endpoints/ep_nope", None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // The shop hears only about completed payments.
    let (code, created) = admin(
        &s,
        post.clone(),
        "/v1/webhook-endpoints",
        Some(json!({"url": shop.url, "description": "shop", "event_types": ["payment.completed"]})),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let shop_id = created["id"].as_str().unwrap().to_string();
    let shop_secret = created["secret"].as_str().unwrap().to_string();
    assert!(shop_secret.starts_with("whsec_"));
    let (_, dead_ep) = admin(
        &s,
        post.clone(),
        "/v1/webhook-endpoints",
        Some(json!({"url": dead.url})),
    )
    .await;
    let dead_id = dead_ep["id"].as_str().unwrap().to_string();
    let (_, gone_ep) = admin(
        &s,
        post.clone(),
        "/v1/webhook-endpoints",
        Some(json!({"url": gone.url})),
    )
    .await;
    let gone_id = gone_ep["id"].as_str().unwrap().to_string();
    // Listings never show a secret.
    let (_, list) = admin(&s, get.clone(), "/v1/webhook-endpoints", None).await;
    assert_eq!(list["endpoints"].as_array().unwrap().len(), 3);
    assert!(!list.to_string().contains("whsec_"));

    let first = paid_medogram_payment(&s).await;
    let delivered = eventually(
        "the shop gets payment.completed",
        Duration::from_secs(20),
        || async {
            let a = shop.accepted();
            (!a.is_empty()).then_some(a)
        },
    )
    .await;
    assert_eq!(delivered[0].json()["type"], "payment.completed");
    assert_eq!(delivered[0].json()["data"]["payment_id"], first.as_str());

    // 410 disables at once; failing for the whole schedule (3 attempts) disables too.
    for (id, reason) in [(&gone_id, "410"), (&dead_id, "whole retry schedule")] {
        let ep = eventually(
            "the endpoint is disabled",
            Duration::from_secs(20),
            || async {
                let (_, e) = admin(
                    &s,
                    get.clone(),
                    &format!("/v1/webhook-endpoints/{id}"),
                    None,
                )
                .await;
                (e["status"] == "disabled").then_some(e)
            },
        )
        .await;
        assert!(
            ep["disabled_reason"].as_str().unwrap().contains(reason),
            "{ep}"
        );
    }
    let (_, attempts) = admin(
        &s,
        get.clone(),
        &format!("/v1/webhook-endpoints/{dead_id}/attempts"),
        None,
    )
    .await;
    let outcomes: Vec<&str> = attempts["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.contains(&"exhausted") && outcomes.contains(&"failed"),
        "{attempts}"
    );
    let metrics = metrics_text(&s).await;
    assert!(
        metrics.contains("paygate_webhook_endpoints_disabled_total{reason=\"failing\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("paygate_webhook_endpoints_disabled_total{reason=\"gone\"} 1"),
        "{metrics}"
    );

    // The dead endpoint recovers: re-enable it and redrive what failed.
    dead.answer(204);
    let (code, e) = admin(
        &s,
        reqwest::Method::PATCH,
        &format!("/v1/webhook-endpoints/{dead_id}"),
        Some(json!({"enabled": true})),
    )
    .await;
    assert_eq!(
        (code, e["status"].as_str()),
        (StatusCode::OK, Some("enabled")),
        "{e}"
    );
    let (code, r) = admin(
        &s,
        post.clone(),
        &format!("/v1/webhook-endpoints/{dead_id}/redrive"),
        Some(json!({"since": "2000-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{r}");
    assert!(r["redriven"].as_i64().unwrap() >= 1, "{r}");
    let one = r["message_ids"][0].as_str().unwrap().to_string();
    let redriven: HashSet<String> = r["message_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect();
    // By id, not by count: a message whose last retry was still due when the
    // endpoint came back is delivered by that retry, not by the redrive.
    let accepted = eventually(
        "redriven messages delivered",
        Duration::from_secs(20),
        || async {
            let ids: Vec<String> = dead
                .accepted()
                .iter()
                .map(|d| d.header("webhook-id").unwrap().to_string())
                .collect();
            redriven.iter().all(|id| ids.contains(id)).then_some(ids)
        },
    )
    .await;
    let distinct: HashSet<&String> = accepted.iter().collect();
    assert_eq!(
        distinct.len(),
        accepted.len(),
        "a message delivered twice: {accepted:?}"
    );
    // Delivered now: not redrivable again.
    let (code, body) = admin(
        &s,
        post.clone(),
        &format!("/v1/webhook-endpoints/{dead_id}/messages/{one}/redrive"),
        None,
    )
    .await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("message_not_redrivable"))
    );

    // Rotation: the new secret is shown once; both sign during the grace period.
    let (code, rotated) = admin(
        &s,
        post.clone(),
        &format!("/v1/webhook-endpoints/{shop_id}/rotate-secret"),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, shop_secret);
    assert!(rotated["previous_secret_expires_at"].is_string());
    paid_medogram_payment(&s).await;
    let after = eventually(
        "a delivery signed after rotation",
        Duration::from_secs(20),
        || async {
            let a = shop.accepted();
            (a.len() >= 2).then(|| a[1].clone())
        },
    )
    .await;
    assert_eq!(
        after
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        2
    );
    let mut checks: Vec<(String, webhooks::Delivery)> = shop
        .all()
        .into_iter()
        .map(|d| (shop_secret.clone(), d))
        .collect();
    checks.push((new_secret.clone(), after.clone()));
    checks.extend(
        dead.accepted()
            .into_iter()
            .map(|d| (dead_ep["secret"].as_str().unwrap().to_string(), d)),
    );
    verify_all(&checks);
    // Only payment.completed reached the filtered endpoint.
    assert!(shop
        .all()
        .iter()
        .all(|d| d.json()["type"] == "payment.completed"));

    // Delete; the configured endpoint (none here) and unknown ids are refused clearly.
    let (code, _) = admin(
        &s,
        reqwest::Method::DELETE,
        &format!("/v1/webhook-endpoints/{gone_id}"),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = admin(
        &s,
        get.clone(),
        &format!("/v1/webhook-endpoints/{gone_id}"),
        None,
    )
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_configured_endpoint_is_managed_by_the_environment() {
    let merchant = Receiver::start(200).await;
    let s = Server::serve(&[
        ("PAYGATE_WEBHOOK_URL", merchant.url.as_str()),
        ("PAYGATE_WEBHOOK_SECRET", SECRET),
    ]);
    let (code, e) = admin(
        &s,
        reqwest::Method::GET,
        "/v1/webhook-endpoints/ep_config",
        None,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{e}");
    assert_eq!(e["managed_by_config"], true);
    assert!(e.get("secret").is_none());
    for (method, path) in [
        (reqwest::Method::DELETE, "/v1/webhook-endpoints/ep_config"),
        (
            reqwest::Method::POST,
            "/v1/webhook-endpoints/ep_config/rotate-secret",
        ),
    ] {
        let (code, body) = admin(&s, method, path, None).await;
        assert_eq!(
            body["error"]["code"], "endpoint_managed_by_config",
            "{body}"
        );
        assert_eq!(code, StatusCode::CONFLICT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_merchant_does_not_hold_the_slots_payments_need() {
    // Two worker slots, one for deliveries; the merchant sits on every
    // delivery far longer than the payments below take.
    let merchant = Receiver::start(200).await;
    merchant.delay(60_000);
    let s = Server::serve(&[
        ("PAYGATE_WEBHOOK_URL", merchant.url.as_str()),
        ("PAYGATE_WEBHOOK_SECRET", SECRET),
        ("PAYGATE_WEBHOOK_TIMEOUT", "60s"),
        ("PAYGATE_JOB_LEASE_MS", "90000"),
        ("PAYGATE_GATEWAY_TIMEOUT_MS", "10000"),
        ("PAYGATE_WORKER_CONCURRENCY", "2"),
        ("PAYGATE_WEBHOOK_CONCURRENCY", "1"),
    ]);
    // Each payment writes two notifications while the first is still hanging;
    // payments still complete (paid_medogram_payment waits at most 20 s).
    for _ in 0..3 {
        paid_medogram_payment(&s).await;
    }
    // Exactly one delivery is with the merchant; the others wait their turn.
    assert_eq!(merchant.all().len(), 1);
    let metrics = metrics_text(&s).await;
    let deferred = metrics
        .lines()
        .find(|l| l.starts_with("paygate_webhook_deliveries_total{outcome=\"deferred\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap();
    assert!(deferred > 0.0, "{metrics}");
}
