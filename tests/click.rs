//! The Click shop flow end to end through real HTTP against a real
//! `paygate serve` process (embedded mode, built-in Click simulator whose
//! credentials are the `CLICK_*` defaults): the order's pay link, the
//! simulator's pay page calling our Prepare and Complete, Click's acceptance
//! matrix in every amount format, concurrent repeats, refusals, and the
//! answer when our database is gone.

mod support;

use md5::{Digest, Md5};
use paygate_sandbox::click::merchant_test::{orders_from_url, run_merchant_test, MerchantTest};
use paygate_sandbox::AmountFormat;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::Command;
use support::{admin_key, client, events_of, jobs_of, metric, Server};

/// The simulator's credentials, which `paygate serve` uses when no `CLICK_*`
/// variable is set.
const SERVICE_ID: &str = "41001";
const MERCHANT_ID: &str = "17001";
const SECRET: &str = "sandbox-click-secret-key";

fn seed_order() -> Value {
    json!({"product_name": "Test Product", "amount": "50.00", "payment_type": "click"})
}

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get_json(s: &Server, path: &str) -> (StatusCode, Value) {
    json_of(client().get(s.url(path)).send().await.unwrap()).await
}

/// Creates the seed's order; its id and pay link.
async fn new_order(s: &Server) -> (i64, String) {
    let (code, body) = json_of(
        client()
            .post(s.url("/api/orders/create"))
            .json(&seed_order())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let id = body["order_id"].as_i64().expect("order_id");
    let url = body["payment_url"].as_str().expect("payment_url");
    (id, url.to_string())
}

/// Reading an order needs an API key (or its token).
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

async fn click_calls(s: &Server, outcome: &str) -> f64 {
    metric(
        s,
        "paygate_webhooks_total",
        &[("provider", "click"), ("outcome", outcome)],
    )
    .await
    .unwrap_or(0.0)
}

fn query_of(url: &str) -> Vec<(String, String)> {
    let query = url.split_once('?').expect("a query").1;
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// The payer on the simulator's pay page: opens the link, then presses
/// `button` ("confirm" = Pay, "insufficient" = Insufficient funds).
async fn press(s: &Server, link: &str, button: &str) -> reqwest::Response {
    let page = client().get(link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "{link}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("50.00 so'm"),
        "the page shows the amount: {html}"
    );
    client()
        .post(s.url(&format!("/sandbox/click/services/pay/{button}")))
        .form(&query_of(link))
        .send()
        .await
        .unwrap()
}

/// Merges `patch` into the simulator's config (PUT replaces all of it).
async fn set_click(s: &Server, patch: Value) {
    let (code, mut cfg) = get_json(s, "/sandbox/click/_config").await;
    assert_eq!(code, StatusCode::OK, "{cfg}");
    for (k, v) in patch.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let r = client()
        .put(s.url("/sandbox/click/_config"))
        .json(&cfg)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

// ---------------------------------------------------------------------------
// Calls signed by the test itself (md5 from the `md-5` crate, not paygate's code)
// ---------------------------------------------------------------------------

/// md5 over the texts in formula order (the prepare id empty for Prepare).
fn sign(texts: [&str; 8]) -> String {
    hex::encode(Md5::digest(texts.concat().as_bytes()))
}

/// One Prepare or Complete as Click sends it.
#[derive(Clone)]
struct Call {
    click_trans_id: String,
    merchant_trans_id: String,
    merchant_prepare_id: Option<String>,
    amount: String,
    error: String,
}

impl Call {
    fn prepare(click_trans_id: u64, order: i64) -> Call {
        Call {
            click_trans_id: click_trans_id.to_string(),
            merchant_trans_id: order.to_string(),
            merchant_prepare_id: None,
            amount: "50".into(),
            error: "0".into(),
        }
    }

    fn complete(&self, prepare_id: &Value) -> Call {
        Call {
            merchant_prepare_id: Some(prepare_id.to_string().trim_matches('"').to_string()),
            ..self.clone()
        }
    }

    /// The form, signed with `secret` (docs/gateways/click.md, 'Signature rule').
    fn form(&self, secret: &str) -> Vec<(&'static str, String)> {
        let action = if self.merchant_prepare_id.is_some() {
            "1"
        } else {
            "0"
        };
        let sign_time = "2026-12-02 12:00:00";
        let sign_string = sign([
            &self.click_trans_id,
            SERVICE_ID,
            secret,
            &self.merchant_trans_id,
            self.merchant_prepare_id.as_deref().unwrap_or_default(),
            &self.amount,
            action,
            sign_time,
        ]);
        let mut form = vec![
            ("click_trans_id", self.click_trans_id.clone()),
            ("service_id", SERVICE_ID.to_string()),
            ("click_paydoc_id", format!("9{}", self.click_trans_id)),
            ("merchant_trans_id", self.merchant_trans_id.clone()),
            ("amount", self.amount.clone()),
            ("action", action.to_string()),
            ("error", self.error.clone()),
            ("error_note", "Success".to_string()),
            ("sign_time", sign_time.to_string()),
            ("sign_string", sign_string),
        ];
        if let Some(id) = &self.merchant_prepare_id {
            form.push(("merchant_prepare_id", id.clone()));
        }
        form
    }
}

async fn send_form(s: &Server, path: &str, form: &[(&str, String)]) -> (StatusCode, Value) {
    json_of(client().post(s.url(path)).form(form).send().await.unwrap()).await
}

async fn send(s: &Server, call: &Call) -> Value {
    let (code, v) = send_form(s, "/click/", &call.form(SECRET)).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    v
}

#[test]
fn the_test_signs_like_the_documented_vectors() {
    // docs/gateways/click.md, 'Signature rule'.
    let prepare = [
        "2011976",
        "12345",
        "SECRET",
        "197",
        "",
        "5000",
        "0",
        "2024-05-01 12:00:00",
    ];
    assert_eq!(sign(prepare), "949a79a260a3c2c0f9c766e9f52f1100");
    let complete = [
        "2011976",
        "12345",
        "SECRET",
        "197",
        "55",
        "5000",
        "1",
        "2024-05-01 12:00:05",
    ];
    assert_eq!(sign(complete), "3be2bd63e3f89cc0d8476b24c0bf633e");
}

// ---------------------------------------------------------------------------
// The payer's flow
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_order_paid_on_the_pay_page_becomes_paid() {
    let s = Server::serve(&[]);
    let (code, body) = json_of(
        client()
            .post(s.url("/api/orders/create"))
            .json(&seed_order())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["payment_type"], "click");
    assert_eq!(body["amount"], "50.00");
    assert_eq!(body["status"], "pending");
    let id = body["order_id"].as_i64().unwrap();
    let link = body["payment_url"].as_str().unwrap().to_string();
    assert!(
        link.starts_with(&s.url(&format!(
            "/sandbox/click/services/pay?service_id={SERVICE_ID}&merchant_id={MERCHANT_ID}\
&amount=50.00&transaction_param={id}&return_url="
        ))),
        "{link}"
    );
    let return_url = query_of(&link)
        .into_iter()
        .find(|(k, _)| k == "return_url")
        .unwrap()
        .1;
    assert!(
        return_url.contains(&format!("/api/orders/{id}/result/?token=")),
        "{return_url}"
    );
    let o = order(&s, id).await;
    assert_eq!(o["payment"]["status"], "processing");
    let pid = o["payment"]["id"].as_str().unwrap().to_string();

    // Click repeats every call once more; the repeats must be answered from
    // stored state (the simulator counts wrong answers).
    set_click(&s, json!({"duplicate_calls": 1})).await;
    let back = press(&s, &link, "confirm").await;
    assert_eq!(back.status(), StatusCode::FOUND);
    assert_eq!(back.headers()["location"].to_str().unwrap(), return_url);

    // Paid in the same write as Complete: no waiting.
    let paid = order(&s, id).await;
    assert_eq!(paid["status"], "paid", "{paid}");
    assert_eq!(paid["payment"]["status"], "completed");
    assert!(paid["payment"]["completed_at"].is_string());
    let tracking = paid["payment"]["tracking_code"].as_str().unwrap_or("");
    assert!(!tracking.is_empty(), "Click's payment number: {paid}");

    let (_, stats) = get_json(&s, "/sandbox/click/_stats").await;
    assert_eq!(stats["payments_successful"], 1, "{stats}");
    assert_eq!(stats["duplicates_sent"], 2, "{stats}");
    assert_eq!(stats["duplicate_answers_wrong"], 0, "{stats}");
    // Prepare, its repeat, Complete answered 0; Complete's repeat -4.
    assert_eq!(click_calls(&s, "accepted").await, 3.0);
    assert_eq!(click_calls(&s, "refused").await, 1.0);

    let events = events_of(&s, &pid).await;
    let webhooks: Vec<&Value> = events.iter().filter(|e| e["kind"] == "webhook").collect();
    assert_eq!(webhooks.len(), 4, "one per call: {events:?}");
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains("sign_string"),
        "no signature in the activity log"
    );
    assert!(events
        .iter()
        .any(|e| e["kind"] == "status_change" && e["message"] == "processing → completed"));
    // The order update the completion queues finds the order paid already.
    let jobs = jobs_of(&s, &pid).await;
    assert_eq!(
        jobs.iter().filter(|j| j["kind"] == "update_order").count(),
        1,
        "{jobs:?}"
    );
}

#[tokio::test]
async fn insufficient_funds_leave_the_order_pending_and_a_retry_pays_it() {
    let s = Server::serve(&[]);
    let (id, link) = new_order(&s).await;
    let back = press(&s, &link, "insufficient").await;
    assert_eq!(back.status(), StatusCode::FOUND);
    let o = order(&s, id).await;
    assert_eq!(o["status"], "pending", "{o}");
    assert_eq!(o["payment"]["status"], "processing");
    assert_eq!(
        click_calls(&s, "refused").await,
        1.0,
        "Complete answered -9"
    );

    // A new attempt (a new click_trans_id) pays it.
    let back = press(&s, &link, "confirm").await;
    assert_eq!(back.status(), StatusCode::FOUND);
    let o = order(&s, id).await;
    assert_eq!(o["status"], "paid", "{o}");
    let (_, stats) = get_json(&s, "/sandbox/click/_stats").await;
    assert_eq!(
        (&stats["payments_declined"], &stats["payments_successful"]),
        (&json!(1), &json!(1))
    );

    // A third attempt on the paid order is refused at Prepare: no money taken.
    let r = press(&s, &link, "confirm").await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains("error -4"), "{html}");
}

// ---------------------------------------------------------------------------
// Click's acceptance test against paygate's own endpoints
// ---------------------------------------------------------------------------

#[tokio::test]
async fn clicks_acceptance_matrix_passes_in_every_amount_format() {
    let s = Server::serve(&[]);
    let orders = orders_from_url(s.url("/api/orders/create"));
    for format in AmountFormat::ALL {
        for (prepare, complete) in [
            ("/click/", None),
            ("/click/prepare/", Some("/click/complete/")),
        ] {
            let test = MerchantTest {
                complete_url: complete.map(|c| s.url(c)),
                amount_format: format,
                ..MerchantTest::new(s.url(prepare), SECRET, SERVICE_ID)
            };
            let results = run_merchant_test(&test, &orders).await;
            assert_eq!(results.len(), 19, "{results:?}");
            let failed: Vec<_> = results.iter().filter(|r| !r.passed).collect();
            assert!(failed.is_empty(), "{format:?} {prepare}: {failed:#?}");
        }
    }
}

// ---------------------------------------------------------------------------
// Concurrent repeats
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_repeats_have_one_effect_and_one_answer() {
    concurrent_repeats(&Server::serve(&[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_repeats_have_one_effect_and_one_answer_on_postgresql() {
    let db = Database::create();
    concurrent_repeats(&Server::serve(&[("DATABASE_URL", &db.url())])).await;
}

/// Eight identical Prepares at once, then eight identical Completes.
async fn concurrent_repeats(s: &Server) {
    let (id, _) = new_order(s).await;
    let prepare = Call::prepare(7_000_001, id);
    let storm = |call: Call| async move {
        let sends = (0..8).map(|_| {
            let call = call.clone();
            async move { send(s, &call).await }
        });
        futures::future::join_all(sends).await
    };
    let answers = storm(prepare.clone()).await;
    assert_eq!(answers[0]["error"], 0, "{answers:?}");
    assert!(answers[0]["merchant_prepare_id"].is_i64(), "{answers:?}");
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "identical answers, ids included: {answers:?}"
    );
    let prepare_id = answers[0]["merchant_prepare_id"].clone();

    let answers = storm(prepare.complete(&prepare_id)).await;
    let codes: Vec<i64> = answers
        .iter()
        .map(|a| a["error"].as_i64().unwrap())
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{answers:?}");
    assert_eq!(codes.iter().filter(|c| **c == -4).count(), 7, "{answers:?}");
    for a in &answers {
        assert_eq!(a["merchant_confirm_id"], prepare_id, "{a}");
        assert_eq!(a["click_trans_id"], 7_000_001);
        assert_eq!(a["merchant_trans_id"], id.to_string());
    }
    let o = order(s, id).await;
    assert_eq!(o["status"], "paid");
    let pid = o["payment"]["id"].as_str().unwrap().to_string();
    let events = events_of(s, &pid).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["message"] == "processing → completed")
            .count(),
        1,
        "one effect: {events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| e["kind"] == "webhook").count(),
        16,
        "every call stored"
    );

    // A later repeat of the Prepare is answered from the stored attempt.
    let again = send(s, &prepare).await;
    assert_eq!(
        (again["error"].as_i64(), &again["merchant_prepare_id"]),
        (Some(-4), &prepare_id)
    );
}

// ---------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------

#[tokio::test]
async fn calls_not_signed_by_click_or_malformed_change_nothing() {
    let s = Server::serve(&[]);
    let (id, _) = new_order(&s).await;
    let prepare = Call::prepare(7_100_001, id);

    let (code, v) = send_form(&s, "/click/prepare/", &prepare.form("not-the-secret")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["error"], -1, "{v}");
    assert_eq!(v["error_note"], "SIGN CHECK FAILED!");
    assert_eq!(v["click_trans_id"], 7_100_001);
    assert!(v.get("merchant_prepare_id").is_none());
    assert_eq!(click_calls(&s, "bad_signature").await, 1.0);

    let mut form = prepare.form(SECRET);
    form.retain(|(k, _)| *k != "amount");
    let (_, v) = send_form(&s, "/click/", &form).await;
    assert_eq!(v["error"], -8, "{v}");
    let mut form = prepare.form(SECRET);
    for (k, v) in form.iter_mut() {
        if *k == "action" {
            *v = "2".into();
        }
    }
    let (_, v) = send_form(&s, "/click/", &form).await;
    assert_eq!(v["error"], -3, "{v}");
    assert_eq!(click_calls(&s, "invalid").await, 2.0);

    // A wrong amount and an unknown order are refused by the rules.
    let wrong = Call {
        amount: "49.99".into(),
        ..prepare.clone()
    };
    assert_eq!(send(&s, &wrong).await["error"], -2);
    let unknown = Call::prepare(7_100_002, 987_654_321);
    assert_eq!(send(&s, &unknown).await["error"], -5);

    let o = order(&s, id).await;
    assert_eq!(o["status"], "pending");
    assert_eq!(o["payment"]["status"], "processing");
    // The honest call still works after all that.
    let v = send(&s, &prepare).await;
    assert_eq!(v["error"], 0, "{v}");
}

// ---------------------------------------------------------------------------
// Our database gone
// ---------------------------------------------------------------------------

fn pg_base() -> String {
    std::env::var("PAYGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-tAc", sql])
        .output()
        .expect("psql is required for this test");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A PostgreSQL database of its own, dropped (forcibly) when done.
struct Database {
    admin_url: String,
    name: String,
}

impl Database {
    fn create() -> Database {
        let name = format!("paygate_click_{}", uuid::Uuid::new_v4().simple());
        let admin_url = pg_base();
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        Database { admin_url, name }
    }

    fn url(&self) -> String {
        let (base, _) = self.admin_url.rsplit_once('/').expect("a database URL");
        format!("{base}/{}", self.name)
    }

    fn drop_now(&self) {
        psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.admin_url,
                "-tAc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

#[tokio::test]
async fn with_our_database_gone_click_gets_minus_seven_never_a_success() {
    let db = Database::create();
    let s = Server::serve(&[("DATABASE_URL", &db.url())]);
    let (id, _) = new_order(&s).await;
    let prepare = Call::prepare(7_200_001, id);
    let v = send(&s, &prepare).await;
    assert_eq!(v["error"], 0, "{v}");
    let complete = prepare.complete(&v["merchant_prepare_id"]);

    db.drop_now();
    for call in [&complete, &Call::prepare(7_200_002, id)] {
        let (code, v) = send_form(&s, "/click/", &call.form(SECRET)).await;
        assert_eq!(code, StatusCode::OK, "Click reads the JSON: {v}");
        assert_eq!(v["error"], -7, "{v}");
        assert_eq!(v["error_note"], "Failed to update user");
        assert_eq!(
            v["click_trans_id"],
            call.click_trans_id.parse::<i64>().unwrap()
        );
        assert_eq!(v["merchant_trans_id"], id.to_string());
    }
    assert!(click_calls(&s, "error").await >= 2.0);
}
