//! `Idempotency-Key` on every creating route, as Stripe defines it, through
//! real HTTP against a real `paygate serve`.

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use support::{client, Server};

struct Answer {
    status: StatusCode,
    location: Option<String>,
    replayed: bool,
    body: Value,
}

async fn post(
    s: &Server,
    path: &str,
    key: Option<&str>,
    auth: Option<&str>,
    body: &Value,
) -> Answer {
    let mut req = client().post(s.url(path)).json(body);
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    if let Some(a) = auth {
        req = req.header("authorization", format!("Bearer {a}"));
    }
    let r = req.send().await.unwrap();
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    Answer {
        status: r.status(),
        location: header("location"),
        replayed: header("idempotent-replayed").as_deref() == Some("true"),
        body: r.json().await.unwrap_or(Value::Null),
    }
}

fn payment() -> Value {
    json!({"amount": 150000, "user_identifier": "09123456780", "description": "idem"})
}

#[tokio::test]
async fn v1_payments_replay_the_first_answer_and_refuse_a_reused_key() {
    let s = Server::serve(&[]);
    let first = post(&s, "/v1/payments", Some("order-1"), None, &payment()).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    assert!(!first.replayed);

    // Same request: the first answer again (status, body, Location), even
    // with the JSON written differently.
    let again_body =
        json!({"description": "idem", "user_identifier": "09123456780", "amount": 150000});
    let again = post(&s, "/v1/payments", Some("order-1"), None, &again_body).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert!(again.replayed);
    assert_eq!(
        again.body, first.body,
        "the first answer, not the payment now"
    );
    assert_eq!(again.location, first.location);

    // Same key, another request.
    let mut other = payment();
    other["amount"] = json!(160000);
    let reused = post(&s, "/v1/payments", Some("order-1"), None, &other).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.body["error"]["code"], "idempotency_key_reused");

    // Another key: another payment.
    let second = post(&s, "/v1/payments", Some("order-2"), None, &payment()).await;
    assert_eq!(second.status, StatusCode::ACCEPTED);
    assert_ne!(second.body["id"], first.body["id"]);

    // Without a key every request creates.
    let a = post(&s, "/v1/payments", None, None, &payment()).await;
    let b = post(&s, "/v1/payments", None, None, &payment()).await;
    assert_ne!(a.body["id"], b.body["id"]);

    // Keys are 1 to 255 characters.
    let long = "k".repeat(255);
    let ok = post(&s, "/v1/payments", Some(&long), None, &payment()).await;
    assert_eq!(ok.status, StatusCode::ACCEPTED);
    for bad in ["k".repeat(256), " ".into()] {
        let r = post(&s, "/v1/payments", Some(&bad), None, &payment()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.body["error"]["code"], "invalid_idempotency_key");
    }

    // A refused request is an answer too: replayed, nothing created later.
    let bad = json!({"amount": "abc", "user_identifier": "09123456780"});
    let r1 = post(&s, "/v1/payments", Some("bad-1"), None, &bad).await;
    assert_eq!(r1.status, StatusCode::BAD_REQUEST);
    let r2 = post(&s, "/v1/payments", Some("bad-1"), None, &bad).await;
    assert_eq!(r2.status, StatusCode::BAD_REQUEST);
    assert!(r2.replayed);
    assert_eq!(r1.body, r2.body);
}

#[tokio::test]
async fn keys_belong_to_the_caller() {
    let s = Server::serve(&[]);
    let anonymous = post(&s, "/v1/payments", Some("shared"), None, &payment()).await;
    let keyed = post(
        &s,
        "/v1/payments",
        Some("shared"),
        Some(&s.admin_key),
        &payment(),
    )
    .await;
    assert_eq!(keyed.status, StatusCode::ACCEPTED);
    assert!(!keyed.replayed, "another caller's key is another key");
    assert_ne!(anonymous.body["id"], keyed.body["id"]);
    let keyed_again = post(
        &s,
        "/v1/payments",
        Some("shared"),
        Some(&s.admin_key),
        &payment(),
    )
    .await;
    assert!(keyed_again.replayed);
    assert_eq!(keyed_again.body["id"], keyed.body["id"]);

    // A key that does not authenticate cannot own an Idempotency-Key.
    let r = post(
        &s,
        "/v1/payments",
        Some("shared"),
        Some("pgk_wrong"),
        &payment(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.body["error"]["code"], "unauthorized");

    // The same key on another route is another key.
    let seed = post(
        &s,
        "/crazyminer/payment/create/",
        Some("shared"),
        None,
        &payment(),
    )
    .await;
    assert!(seed.status.is_success(), "{}", seed.body);
    assert!(!seed.replayed);
    assert_ne!(seed.body["transaction_id"], anonymous.body["id"]);
}

#[tokio::test]
async fn a_repeat_while_the_first_runs_is_409_then_replays() {
    // The seed route waits for the payment URL; the simulator is slow.
    let s = Server::serve(&[
        ("PAYGATE_SANDBOX_MEDOGRAM_LATENCY_MS", "1500"),
        ("PAYGATE_SEED_WAIT_MS", "5000"),
    ]);
    let path = "/crazyminer/payment/create/";
    let body = payment();
    let first = {
        let url = s.url(path);
        let body = body.clone();
        tokio::spawn(async move {
            let r = client()
                .post(url)
                .header("idempotency-key", "slow-1")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    let busy = post(&s, path, Some("slow-1"), None, &body).await;
    assert_eq!(busy.status, StatusCode::CONFLICT, "{}", busy.body);
    assert_eq!(busy.body["error"]["code"], "idempotency_key_in_use");

    let (status, first_body) = first.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{first_body}");
    let again = post(&s, path, Some("slow-1"), None, &body).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert!(again.replayed);
    assert_eq!(again.body, first_body);
    assert_eq!(
        again.location.as_deref(),
        Some(
            format!(
                "/crazyminer/payment/status/{}/",
                first_body["transaction_id"].as_str().unwrap()
            )
            .as_str()
        )
    );
}

#[tokio::test]
async fn orders_are_created_once_per_key() {
    let s = Server::serve(&[]);
    let order = json!({"product_name": "Kitob", "amount": "75.00", "payment_type": "payme"});
    for path in ["/api/orders/create", "/v1/orders"] {
        let first = post(&s, path, Some("cart-9"), None, &order).await;
        assert!(first.status.is_success(), "{path}: {}", first.body);
        let again = post(&s, path, Some("cart-9"), None, &order).await;
        assert_eq!(again.status, first.status);
        assert!(again.replayed, "{path}");
        assert_eq!(again.body, first.body);
        assert_eq!(again.location, first.location);
        let mut other = order.clone();
        other["amount"] = json!("76.00");
        let reused = post(&s, path, Some("cart-9"), None, &other).await;
        assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert_eq!(reused.body["error"]["code"], "idempotency_key_reused");
    }
}

#[tokio::test]
async fn a_retry_after_a_crash_finds_the_payment_instead_of_creating_another() {
    // The first request commits its payment, then waits for the (slow)
    // simulator; the process dies before the answer is stored.
    let mut s = Server::serve(&[
        ("PAYGATE_SANDBOX_MEDOGRAM_LATENCY_MS", "2500"),
        ("PAYGATE_SEED_WAIT_MS", "3000"),
        ("PAYGATE_MAX_WAIT_MS", "1000"),
    ]);
    let path = "/crazyminer/payment/create/";
    let body = payment();
    let first = {
        let url = s.url(path);
        let body = body.clone();
        tokio::spawn(async move {
            client()
                .post(url)
                .header("idempotency-key", "crash-1")
                .json(&body)
                .send()
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    s.kill();
    assert!(
        first.await.unwrap().is_err(),
        "the first request never got an answer"
    );
    s.start();

    // The key is still held until the dead request's lease (3 s wait + 10 s) runs out.
    let held = post(&s, path, Some("crash-1"), None, &body).await;
    assert_eq!(held.status, StatusCode::CONFLICT, "{}", held.body);

    let list = || async {
        client()
            .get(s.url("/crazyminer/payment/list/"))
            .header("authorization", format!("Bearer {}", s.admin_key))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let before = list().await;
    assert_eq!(
        before["count"], 1,
        "the first attempt committed its payment: {before}"
    );

    let retried = support::eventually(
        "the key to be taken over",
        Duration::from_secs(30),
        || async {
            let r = post(&s, path, Some("crash-1"), None, &body).await;
            (r.status != StatusCode::CONFLICT).then_some(r)
        },
    )
    .await;
    assert!(retried.status.is_success(), "{}", retried.body);
    assert_eq!(
        retried.body["transaction_id"], before["results"][0]["transaction_id"],
        "the retry answers with the payment the first attempt made"
    );
    assert_eq!(list().await["count"], 1, "no second payment");
    let again = post(&s, path, Some("crash-1"), None, &body).await;
    assert!(again.replayed);
    assert_eq!(again.body, retried.body);
}
