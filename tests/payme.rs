//! Payme end to end, through real HTTP against a real `paygate serve`
//! (embedded mode, built-in Payme simulator, whose cashbox key is the
//! `PAYME_*` default): the order's checkout link, paying in the simulator,
//! every JSON-RPC method and error code (the merchant test run), refunds,
//! concurrent repeats, and our database being down.

mod support;

use serde_json::{json, Value};
use std::process::Command;
use support::{client, metrics_text, Server};

/// `Authorization: Basic base64("Paycom:sandbox-payme-key-0123456789abcdefgh")`,
/// the simulator's cashbox key, written out so the tests do not build it
/// with the code under test.
const AUTH: &str = "Basic UGF5Y29tOnNhbmRib3gtcGF5bWUta2V5LTAxMjM0NTY3ODlhYmNkZWZnaA==";
const KEY: &str = "sandbox-payme-key-0123456789abcdefgh";

async fn create_order(s: &Server, amount: &str) -> Value {
    let resp = client()
        .post(s.url("/api/orders/create"))
        .json(&json!({"product_name": "Kitob", "amount": amount, "payment_type": "payme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", s.logs());
    resp.json().await.unwrap()
}

async fn rpc(s: &Server, id: i64, method: &str, params: Value) -> Value {
    let resp = client()
        .post(s.url("/payme/"))
        .header("Authorization", AUTH)
        .json(&json!({"id": id, "method": method, "params": params}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "Payme calls are always answered 200");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["id"], json!(id), "the id is echoed: {body}");
    body
}

/// Reading an order needs an API key (or its token).
async fn order(s: &Server, id: i64) -> Value {
    client()
        .get(s.url(&format!("/api/orders/{id}")))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn an_order_gets_a_payme_link_at_once_and_the_simulator_pays_it() {
    let s = Server::serve(&[]);
    let created = create_order(&s, "75.00").await;
    let url = created["payment_url"].as_str().expect("the link, at once");
    assert!(url.starts_with(&s.url("/sandbox/payme/")), "{url}");
    // The link is Payme's GET form: base64 of m=…;ac.order_id=…;a=<tiyin>;c=…
    let order_id = created["order_id"].as_i64().unwrap();
    let page = client()
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("75.00"), "{page}");
    let link = url.rsplit('/').next().unwrap().to_string();
    let paid = client()
        .post(s.url("/sandbox/payme/pay"))
        .form(&[("link", link.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status(), 303);
    let back = paid.headers()["location"].to_str().unwrap();
    assert!(
        back.starts_with(&s.url(&format!("/api/orders/{order_id}/result/?token="))),
        "{back}"
    );
    let o = order(&s, order_id).await;
    assert_eq!(o["status"], "paid", "{o}");
    assert_eq!(o["payment"]["status"], "completed");
    // The calls are in the activity log and counted.
    let pid = o["payment"]["id"].as_str().unwrap();
    let events: Value = client()
        .get(s.url(&format!("/v1/payments/{pid}/events")))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("performed")),
        "{messages:?}"
    );
    let metrics = metrics_text(&s).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("paygate_webhooks_total{")
                && l.contains("provider=\"payme\"")
                && l.contains("outcome=\"accepted\"")
                && !l.ends_with(" 0")),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_merchant_test_run_passes_against_paygate() {
    let s = Server::serve(&[]);
    let out = Command::new(env!("CARGO_BIN_EXE_paygate"))
        .args(["sandbox", "payme-test", "--url"])
        .arg(s.url("/payme/"))
        .args(["--key", KEY, "--create-order-url"])
        .arg(s.url("/api/orders/create"))
        .output()
        .expect("run paygate sandbox payme-test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", s.logs());
    assert!(text.contains(" 0 failed, 0 skipped"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}

#[tokio::test]
async fn perform_then_a_cabinet_refund_moves_payment_and_order() {
    let s = Server::serve(&[]);
    let created = create_order(&s, "50.00").await;
    let order_id = created["order_id"].as_i64().unwrap();
    let account = json!({"order_id": order_id.to_string()});
    let id = "6570a1b2c3d4e5f6a7b8c9d0";
    let r = rpc(
        &s,
        1,
        "CheckPerformTransaction",
        json!({"amount": 5000, "account": account}),
    )
    .await;
    assert_eq!(r["result"]["allow"], true, "{r}");
    let r = rpc(
        &s,
        2,
        "CreateTransaction",
        json!({"id": id, "time": now_ms(), "amount": 5000, "account": account}),
    )
    .await;
    assert_eq!(r["result"]["state"], 1, "{r}");
    let r = rpc(&s, 3, "PerformTransaction", json!({"id": id})).await;
    assert_eq!(r["result"]["state"], 2, "{r}");
    assert_eq!(order(&s, order_id).await["status"], "paid");
    let r = rpc(&s, 4, "CancelTransaction", json!({"id": id, "reason": 5})).await;
    assert_eq!(r["result"]["state"], -2, "{r}");
    let o = order(&s, order_id).await;
    assert_eq!(o["status"], "cancelled", "{o}");
    assert_eq!(o["payment"]["status"], "refunded");
    // A wrong amount for another order is refused with Payme's code.
    let other = create_order(&s, "10.00").await;
    let r = rpc(
        &s,
        5,
        "CheckPerformTransaction",
        json!({"amount": 999, "account": {"order_id": other["order_id"].as_i64().unwrap().to_string()}}),
    )
    .await;
    assert_eq!(r["error"]["code"], -31001, "{r}");
    // A wrong key: -32504, answered 200 with the id.
    let resp = client()
        .post(s.url("/payme/"))
        .header("Authorization", "Basic UGF5Y29tOndyb25n")
        .json(&json!({"id": 9, "method": "CheckTransaction", "params": {"id": id}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32504, "{body}");
    assert_eq!(body["id"], 9);
}

#[tokio::test]
async fn concurrent_repeats_have_one_effect_and_one_answer() {
    let s = Server::serve(&[]);
    let created = create_order(&s, "20.00").await;
    let order_id = created["order_id"].as_i64().unwrap();
    let account = json!({"order_id": order_id.to_string()});
    let id = "6570a1b2c3d4e5f6a7b8c9d1";
    let time = now_ms();
    let creates = (0..8).map(|_| {
        rpc(
            &s,
            7,
            "CreateTransaction",
            json!({"id": id, "time": time, "amount": 2000, "account": account}),
        )
    });
    let answers = futures::future::join_all(creates).await;
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(answers[0]["result"]["state"], 1);
    let performs = (0..8).map(|_| rpc(&s, 8, "PerformTransaction", json!({"id": id})));
    let answers = futures::future::join_all(performs).await;
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(answers[0]["result"]["state"], 2);
    let o = order(&s, order_id).await;
    assert_eq!(o["status"], "paid");
    // One transaction in the statement, performed once.
    let r = rpc(
        &s,
        9,
        "GetStatement",
        json!({"from": time - 1, "to": time + 1}),
    )
    .await;
    let txns = r["result"]["transactions"].as_array().unwrap();
    assert_eq!(txns.len(), 1, "{r}");
    assert_eq!(txns[0]["state"], 2);
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql is required for this test");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn our_database_down_is_a_system_error_never_a_success() {
    let base = std::env::var("PAYGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("paygate_payme_down_{}", uuid::Uuid::new_v4().simple());
    psql(&base, &format!("CREATE DATABASE {name}"));
    let (root, _) = base.rsplit_once('/').unwrap();
    let db_url = format!("{root}/{name}?sslmode=disable");
    let s = Server::serve(&[("DATABASE_URL", db_url.as_str())]);
    let created = create_order(&s, "30.00").await;
    let account = json!({"order_id": created["order_id"].as_i64().unwrap().to_string()});
    psql(&base, &format!("DROP DATABASE {name} WITH (FORCE)"));
    let r = rpc(
        &s,
        42,
        "CheckPerformTransaction",
        json!({"amount": 3000, "account": account}),
    )
    .await;
    assert_eq!(r["error"]["code"], -32400, "{r}");
    assert!(r.get("result").is_none(), "{r}");
}
