//! Expiry and late settlements end to end, through real HTTP against a real
//! `paygate serve` (embedded mode, built-in simulators; the time to live is
//! made tiny through `PAYGATE_PAYMENT_TTL_<GATEWAY>`), docs/expiry.md:
//! - a made-up `trans_id` on medogram's callback never ends a payable payment,
//!   before or after the genuine callback;
//! - a payment that waits past its time to live is cancelled as `expired`
//!   (after one last verification where the gateway can answer one);
//! - a gateway confirmation after that settles it late (medogram's verify,
//!   Atmos' callback + verify), and the order follows to `paid`;
//! - Payme's Perform and Click's Complete on an expired order are refused
//!   with their protocol's codes (the money is then never taken).

#[path = "support/atmos_checkout.rs"]
mod atmos_checkout;
mod support;

use atmos_checkout::press;
use md5::{Digest, Md5};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use support::{admin_get, client, events_of, eventually, jobs_of, metric, Server};

// ---------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn payment(s: &Server, id: &str) -> Value {
    admin_get(s, &format!("/v1/payments/{id}")).await
}

async fn wait_payment(s: &Server, id: &str, want: &str) -> Value {
    eventually(
        &format!("payment {id} {want}"),
        Duration::from_secs(30),
        || async {
            let p = payment(s, id).await;
            (p["status"] == want).then_some(p)
        },
    )
    .await
}

fn has_event(events: &[Value], kind: &str, text: &str) -> bool {
    events
        .iter()
        .any(|e| e["kind"] == kind && e["message"].as_str().unwrap_or("").contains(text))
}

async fn order(s: &Server, id: i64) -> Value {
    admin_get(s, &format!("/api/orders/{id}")).await
}

async fn wait_order(s: &Server, id: i64, want: &str) -> Value {
    eventually(
        &format!("order {id} {want}"),
        Duration::from_secs(30),
        || async {
            let o = order(s, id).await;
            (o["status"] == want).then_some(o)
        },
    )
    .await
}

async fn create_order(s: &Server, payment_type: &str) -> (i64, String, String) {
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
    let id = body["order_id"].as_i64().expect("order_id");
    let url = body["payment_url"].as_str().unwrap_or_default().to_string();
    let payment_id = order(s, id).await["payment"]["id"]
        .as_str()
        .expect("payment id")
        .to_string();
    (id, url, payment_id)
}

// ---------------------------------------------------------------------------
// medogram
// ---------------------------------------------------------------------------

/// A CrazyMiner payment: its id, payment URL and the `id_get` in that URL.
async fn medogram_payment(s: &Server) -> (String, String, String) {
    let (code, body) = json_of(
        client()
            .post(s.url("/crazyminer/payment/create/"))
            .json(&json!({"amount": 100000, "user_identifier": "09123456789"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let id = body["transaction_id"].as_str().unwrap().to_string();
    let url = body["payment_url"].as_str().unwrap().to_string();
    let id_get = url
        .rsplit("gateway-")
        .next()
        .unwrap()
        .trim_end_matches("-get")
        .to_string();
    (id, url, id_get)
}

/// What a new user tries: a made-up `trans_id` with the real `id_get`.
async fn fake_callback(s: &Server, id_get: &str) {
    let r = client()
        .get(s.url(&format!(
            "/crazyminer/payment/callback/?trans_id=12345678&id_get={id_get}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the payer's browser is sent on"
    );
}

/// The payer pays on the simulator's page and the browser comes back to our callback.
async fn medogram_pay(s: &Server, id_get: &str) {
    let back = client()
        .post(s.url(&format!("/sandbox/medogram/payment/gateway-{id_get}/pay")))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), StatusCode::FOUND);
    let location = back.headers()["location"].to_str().unwrap().to_string();
    assert!(location.contains("trans_id=") && location.contains(&format!("id_get={id_get}")));
    let r = client().get(location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

/// Waits until every verification of the payment has finished.
async fn verifications_done(s: &Server, id: &str, count: usize) {
    eventually(
        &format!("{count} verifications finished"),
        Duration::from_secs(30),
        || async {
            let jobs = jobs_of(s, id).await;
            let verifies: Vec<&Value> = jobs
                .iter()
                .filter(|j| j["kind"] == "verify_payment")
                .collect();
            (verifies.len() == count && verifies.iter().all(|j| j["status"] == "succeeded"))
                .then_some(())
        },
    )
    .await
}

#[tokio::test]
async fn a_made_up_trans_id_first_does_not_end_the_payment_and_the_payer_still_pays() {
    let s = Server::serve(&[]);
    let (id, _url, id_get) = medogram_payment(&s).await;
    fake_callback(&s, &id_get).await;
    verifications_done(&s, &id, 1).await;
    let p = payment(&s, &id).await;
    assert_eq!(p["status"], "processing", "still payable: {p}");
    let events = events_of(&s, &id).await;
    assert!(
        has_event(&events, "verification", "did not confirm"),
        "{events:?}"
    );

    // The payer really pays afterwards: the genuine callback completes it.
    medogram_pay(&s, &id_get).await;
    let done = wait_payment(&s, &id, "completed").await;
    assert!(done["status_reason"].is_null(), "{done}");
    assert!(!has_event(&events_of(&s, &id).await, "late_settlement", ""));
}

#[tokio::test]
async fn a_made_up_trans_id_after_the_genuine_callback_changes_nothing() {
    let s = Server::serve(&[]);
    let (id, _url, id_get) = medogram_payment(&s).await;
    medogram_pay(&s, &id_get).await;
    let done = wait_payment(&s, &id, "completed").await;
    fake_callback(&s, &id_get).await;
    verifications_done(&s, &id, 2).await;
    let after = payment(&s, &id).await;
    assert_eq!(after, done, "a completed payment is not touched");
}

#[tokio::test]
async fn an_expired_medogram_payment_is_settled_late_by_a_genuine_payment() {
    let s = Server::serve(&[("PAYGATE_PAYMENT_TTL_MEDOGRAM", "1s")]);
    let (id, _url, id_get) = medogram_payment(&s).await;
    let expired = wait_payment(&s, &id, "cancelled").await;
    assert_eq!(expired["status_reason"], "expired", "{expired}");
    let events = events_of(&s, &id).await;
    assert!(
        has_event(&events, "status_change", "→ cancelled (expired)"),
        "{events:?}"
    );
    let jobs = jobs_of(&s, &id).await;
    assert_eq!(
        jobs.iter()
            .filter(|j| j["kind"] == "expire_payment")
            .count(),
        1,
        "one expiry per payment: {jobs:?}"
    );
    assert!(metric(
        &s,
        "paygate_expiry_checks_total",
        &[("provider", "medogram")]
    )
    .await
    .is_some_and(|n| n >= 1.0));

    // A made-up trans_id after expiry changes nothing …
    fake_callback(&s, &id_get).await;
    verifications_done(&s, &id, 1).await;
    assert_eq!(payment(&s, &id).await["status"], "cancelled");

    // … the payer's genuine payment settles it late.
    medogram_pay(&s, &id_get).await;
    let done = wait_payment(&s, &id, "completed").await;
    assert_eq!(done["status_reason"], "late_settlement", "{done}");
    assert!(done["completed_at"].is_string(), "{done}");
    let events = events_of(&s, &id).await;
    assert!(
        has_event(
            &events,
            "late_settlement",
            "after the payment was cancelled (expired)"
        ),
        "{events:?}"
    );
    assert_eq!(
        metric(
            &s,
            "paygate_late_settlements_total",
            &[("provider", "medogram")]
        )
        .await,
        Some(1.0)
    );
    // The seed's status route shows it completed.
    let (_, seed) = json_of(
        client()
            .get(s.url(&format!("/crazyminer/payment/status/{id}/")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(seed["status"], "completed", "{seed}");
}

// ---------------------------------------------------------------------------
// Atmos
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_expired_atmos_order_is_asked_once_then_paid_late_through_callback_and_verify() {
    let s = Server::serve(&[("PAYGATE_PAYMENT_TTL_ATMOS", "1s")]);
    let (order_id, url, pid) = create_order(&s, "atmos").await;
    let cancelled = wait_order(&s, order_id, "cancelled").await;
    assert_eq!(cancelled["payment"]["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["payment"]["status_reason"], "expired");
    // The last verification asked Atmos (it answered "not confirmed yet").
    let events = events_of(&s, &pid).await;
    assert!(
        has_event(
            &events,
            "verification",
            "last verification before expiry: the gateway answered pending"
        ),
        "{events:?}"
    );
    let (_, stats) = json_of(
        client()
            .get(s.url("/sandbox/atmos/_stats"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(stats["gets_total"].as_u64().unwrap() >= 1, "{stats}");

    // The payer pays on the still-open checkout: the signed callback is
    // allowed, /merchant/pay/get confirms, and the payment settles late.
    let back = press(&url, "pay").await;
    assert_eq!(back.status(), StatusCode::FOUND);
    let paid = wait_order(&s, order_id, "paid").await;
    assert_eq!(paid["payment"]["status"], "completed", "{paid}");
    assert_eq!(paid["payment"]["status_reason"], "late_settlement");
    let events = events_of(&s, &pid).await;
    assert!(
        has_event(&events, "webhook", "settles it late"),
        "{events:?}"
    );
    assert!(has_event(&events, "late_settlement", ""), "{events:?}");
    assert!(
        has_event(&events, "status_change", "cancelled → paid"),
        "{events:?}"
    );
    assert_eq!(
        metric(
            &s,
            "paygate_late_settlements_total",
            &[("provider", "atmos")]
        )
        .await,
        Some(1.0)
    );
}

// ---------------------------------------------------------------------------
// Payme and Click: the protocol lets us refuse, and the money is not taken
// ---------------------------------------------------------------------------

/// `Authorization: Basic base64("Paycom:<the simulator's cashbox key>")`.
const PAYME_AUTH: &str = "Basic UGF5Y29tOnNhbmRib3gtcGF5bWUta2V5LTAxMjM0NTY3ODlhYmNkZWZnaA==";

async fn payme(s: &Server, id: i64, method: &str, params: Value) -> Value {
    let (code, body) = json_of(
        client()
            .post(s.url("/payme/"))
            .header("Authorization", PAYME_AUTH)
            .json(&json!({"id": id, "method": method, "params": params}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn payme_perform_on_an_expired_order_is_refused() {
    let s = Server::serve(&[("PAYGATE_PAYMENT_TTL_PAYME", "3s")]);
    let (order_id, _url, pid) = create_order(&s, "payme").await;
    let account = json!({"order_id": order_id.to_string()});
    let now = chrono_ms();
    let r = payme(
        &s,
        1,
        "CreateTransaction",
        json!({"id": "6570a1b2c3d4e5f6a7b8c9d1", "time": now, "amount": 5000, "account": account}),
    )
    .await;
    assert_eq!(r["result"]["state"], 1, "{r}");
    let cancelled = wait_order(&s, order_id, "cancelled").await;
    assert_eq!(
        cancelled["payment"]["status_reason"], "expired",
        "{cancelled}"
    );
    let r = payme(
        &s,
        2,
        "PerformTransaction",
        json!({"id": "6570a1b2c3d4e5f6a7b8c9d1"}),
    )
    .await;
    assert_eq!(r["error"]["code"], -31008, "{r}");
    assert_eq!(order(&s, order_id).await["status"], "cancelled");
    assert_eq!(payment(&s, &pid).await["status"], "cancelled");
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The simulator's Click credentials (the `CLICK_*` defaults of `serve`).
const CLICK_SERVICE_ID: &str = "41001";
const CLICK_SECRET: &str = "sandbox-click-secret-key";

/// A Prepare (no prepare id) or Complete, signed as Click signs it.
fn click_form(trans: &str, order_id: i64, prepare_id: Option<&str>) -> Vec<(&'static str, String)> {
    let action = if prepare_id.is_some() { "1" } else { "0" };
    let sign_time = "2026-12-02 12:00:00";
    let order = order_id.to_string();
    let text = [
        trans,
        CLICK_SERVICE_ID,
        CLICK_SECRET,
        &order,
        prepare_id.unwrap_or_default(),
        "50",
        action,
        sign_time,
    ]
    .concat();
    let mut form = vec![
        ("click_trans_id", trans.to_string()),
        ("service_id", CLICK_SERVICE_ID.to_string()),
        ("click_paydoc_id", format!("9{trans}")),
        ("merchant_trans_id", order),
        ("amount", "50".to_string()),
        ("action", action.to_string()),
        ("error", "0".to_string()),
        ("error_note", "Success".to_string()),
        ("sign_time", sign_time.to_string()),
        ("sign_string", hex::encode(Md5::digest(text.as_bytes()))),
    ];
    if let Some(id) = prepare_id {
        form.push(("merchant_prepare_id", id.to_string()));
    }
    form
}

async fn click(s: &Server, form: &[(&str, String)]) -> Value {
    let (code, v) = json_of(
        client()
            .post(s.url("/click/"))
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    v
}

#[tokio::test]
async fn click_complete_on_an_expired_order_is_refused() {
    let s = Server::serve(&[("PAYGATE_PAYMENT_TTL_CLICK", "3s")]);
    let (order_id, _url, pid) = create_order(&s, "click").await;
    let prepared = click(&s, &click_form("7700001", order_id, None)).await;
    assert_eq!(prepared["error"], 0, "{prepared}");
    let prepare_id = prepared["merchant_prepare_id"].to_string();
    let cancelled = wait_order(&s, order_id, "cancelled").await;
    assert_eq!(
        cancelled["payment"]["status_reason"], "expired",
        "{cancelled}"
    );
    let done = click(&s, &click_form("7700001", order_id, Some(&prepare_id))).await;
    assert_eq!(done["error"], -9, "Transaction cancelled: {done}");
    assert_eq!(order(&s, order_id).await["status"], "cancelled");
    assert_eq!(payment(&s, &pid).await["status"], "cancelled");
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_bad_time_to_live_stops_the_start_with_its_variable_named() {
    let dir = support::TempDir::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_paygate"))
        .arg("serve")
        .current_dir(&dir.0)
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env_remove("SECRET_KEY")
        .env("PAYGATE_PAYMENT_TTL", "soon")
        .env(
            "PAYGATE_LISTEN",
            format!("127.0.0.1:{}", support::free_port()),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("PAYGATE_PAYMENT_TTL"), "{text}");
}

// ---------------------------------------------------------------------------
// Scaled mode: PostgreSQL, Redis, two workers sharing the sweep's lease
// ---------------------------------------------------------------------------

fn psql(url: &str, sql: &str) -> String {
    let out = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-tAc", sql])
        .output()
        .expect("psql is required for the scaled test");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A database of its own, dropped afterwards.
struct Database {
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    fn create() -> Database {
        let admin_url = std::env::var("PAYGATE_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let name = format!("paygate_expiry_{}", uuid::Uuid::new_v4().simple());
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
        Database {
            admin_url,
            name,
            url,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                &self.admin_url,
                "-tAc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

#[tokio::test]
async fn scaled_workers_expire_each_payment_once_and_settle_late() {
    use support::{free_port, Proc, TempDir};
    let db = Database::create();
    let dir = TempDir::new();
    let sandbox_port = free_port();
    let api_port = free_port();
    let api = format!("http://127.0.0.1:{api_port}");
    let redis =
        std::env::var("PAYGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    // Before the processes: dropped after them.
    let queue = support::RedisNamespace::new(&redis);
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", db.url.clone()),
        ("REDIS_URL", redis),
        ("PAYGATE_REDIS_QUEUE", queue.name.clone()),
        ("SECRET_KEY", "expiry-test-secret".into()),
        (
            "PAYMENT_GATEWAY_URL",
            format!("http://127.0.0.1:{sandbox_port}/sandbox/medogram"),
        ),
        ("PAYMENT_API_KEY", "sandbox-medogram-api-key".into()),
        ("PAYGATE_PUBLIC_URL", api.clone()),
        ("PAYGATE_PAYMENT_TTL_MEDOGRAM", "2s".into()),
        ("PAYGATE_RETRY_BASE_MS", "50".into()),
        ("PAYGATE_RETRY_MAX_MS", "500".into()),
        ("PAYGATE_SWEEP_INTERVAL_MS", "200".into()),
        ("PAYGATE_JOB_LEASE_MS", "5000".into()),
        ("PAYGATE_GATEWAY_TIMEOUT_MS", "2000".into()),
        ("PAYGATE_SANDBOX_OPEN_CONTROL", "true".into()),
        ("RUST_LOG", "warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let with = |extra: &[(&str, String)]| {
        let mut e = env.clone();
        e.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        e
    };
    let _sandbox = Proc::spawn(
        "sandbox",
        &["sandbox"],
        &with(&[("PAYGATE_LISTEN", format!("127.0.0.1:{sandbox_port}"))]),
        &dir.0,
        "listening on",
    );
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_paygate"))
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    run(&["migrate"]);
    let key = run(&["apikey", "create", "--name", "expiry-test", "--admin"]);
    let _api = Proc::spawn(
        "api",
        &["api"],
        &with(&[("PAYGATE_LISTEN", format!("127.0.0.1:{api_port}"))]),
        &dir.0,
        "listening on",
    );
    let _workers: Vec<Proc> = (0..2)
        .map(|i| {
            Proc::spawn(
                &format!("worker{i}"),
                &["worker"],
                &with(&[(
                    "PAYGATE_METRICS_LISTEN",
                    format!("127.0.0.1:{}", free_port()),
                )]),
                &dir.0,
                "started",
            )
        })
        .collect();

    let get = |path: String| {
        let key = key.clone();
        async move {
            json_of(client().get(path).bearer_auth(key).send().await.unwrap())
                .await
                .1
        }
    };
    let mut payments = Vec::new();
    for _ in 0..4 {
        let (code, body) = json_of(
            client()
                .post(format!("{api}/v1/payments"))
                .bearer_auth(&key)
                .header("Prefer", "wait=10")
                .json(&json!({"provider": "medogram", "amount": 100000, "user_identifier": "09123456789"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        payments.push((
            body["id"].as_str().unwrap().to_string(),
            body["payment_url"].as_str().unwrap().to_string(),
        ));
    }
    for (id, _) in &payments {
        let p = eventually("expired", Duration::from_secs(30), || async {
            let p = get(format!("{api}/v1/payments/{id}")).await;
            (p["status"] == "cancelled").then_some(p)
        })
        .await;
        assert_eq!(p["status_reason"], "expired", "{p}");
        let jobs = get(format!("{api}/v1/admin/jobs?payment_id={id}")).await;
        let expiries = jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|j| j["kind"] == "expire_payment")
            .count();
        assert_eq!(expiries, 1, "one expiry however many workers: {jobs}");
    }
    // One lease row, held by one of the workers.
    assert_eq!(
        psql(
            &db.url,
            "SELECT count(*) FROM leases WHERE name = 'payment-expiry'"
        ),
        "1"
    );

    // The payer pays one of them after all: settled late in scaled mode too.
    let (id, url) = &payments[0];
    let id_get = url
        .rsplit("gateway-")
        .next()
        .unwrap()
        .trim_end_matches("-get");
    let back = client()
        .post(format!(
            "http://127.0.0.1:{sandbox_port}/sandbox/medogram/payment/gateway-{id_get}/pay"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), StatusCode::FOUND);
    let location = back.headers()["location"].to_str().unwrap().to_string();
    client().get(location).send().await.unwrap();
    let done = eventually("late settlement", Duration::from_secs(30), || async {
        let p = get(format!("{api}/v1/payments/{id}")).await;
        (p["status"] == "completed").then_some(p)
    })
    .await;
    assert_eq!(done["status_reason"], "late_settlement", "{done}");
}
