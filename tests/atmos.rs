//! The Atmos shop flow end to end (`/api/orders/create`, the hosted checkout,
//! the signed `/atmos/webhook/`, verification and the reconciler), through
//! real HTTP against a real `paygate serve` process (embedded mode: SQLite,
//! in-process worker, built-in Atmos simulator, whose credentials are the
//! `ATMOS_*` defaults).

#[path = "support/atmos_checkout.rs"]
mod atmos_checkout;
mod support;

use atmos_checkout::{press, transaction_id};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{client, events_of, eventually, jobs_of, metric, Server};

/// The simulator's store and callback-signing key, which `paygate serve` uses
/// when no `ATMOS_*` variable is set.
const STORE_ID: &str = "8157";
const API_KEY: &str = "sandbox-atmos-api-key";
const WEBHOOK: &str = "/atmos/webhook/";

fn seed_order() -> Value {
    json!({"product_name": "Test Product", "amount": "50.00", "payment_type": "atmos"})
}

// ---------------------------------------------------------------------------
// md5, written out here so the tests do not sign with the code under test
// ---------------------------------------------------------------------------

fn md5_hex(input: &[u8]) -> String {
    const SHIFTS: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut msg = input.to_vec();
    let bits = (input.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_le_bytes());
    let mut state: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(SHIFTS[i]));
        }
        for (s, v) in state.iter_mut().zip([a, b, c, d]) {
            *s = s.wrapping_add(v);
        }
    }
    state
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// md5(store_id ‖ transaction_id ‖ invoice ‖ amount ‖ api_key), docs/gateways/atmos.md,
/// 'Signature rule'.
fn sign(store_id: &str, transaction_id: &str, invoice: &str, amount: &str) -> String {
    md5_hex(format!("{store_id}{transaction_id}{invoice}{amount}{API_KEY}").as_bytes())
}

/// A callback body as the simulator sends it (strings), correctly signed.
fn signed_callback(transaction_id: &str, invoice: &str, amount: &str) -> Value {
    json!({
        "store_id": STORE_ID,
        "transaction_id": transaction_id,
        "transaction_time": "1714550400000",
        "amount": amount,
        "invoice": invoice,
        "sign": sign(STORE_ID, transaction_id, invoice, amount),
    })
}

#[test]
fn md5_matches_known_vectors() {
    assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    assert_eq!(
        md5_hex(
            b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
        ),
        "57edf4a22be3c955ac49da2e2107b67a"
    );
    // The test vector of docs/gateways/atmos.md, 'Signature rule'.
    assert_eq!(
        md5_hex("81571234567891975000000TEST_API_KEY".as_bytes()),
        "f2561258ec213cc7ff8bc4ca50868cf7"
    );
}

// ---------------------------------------------------------------------------
// HTTP helpers
// ---------------------------------------------------------------------------

async fn json_of(r: reqwest::Response) -> (StatusCode, Value) {
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn create_seed(s: &Server, body: Value) -> (StatusCode, Value) {
    json_of(
        client()
            .post(s.url("/api/orders/create"))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Creates the seed's order; returns its id and payment URL.
async fn new_order(s: &Server) -> (i64, String) {
    let (code, body) = create_seed(s, seed_order()).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let id = body["order_id"].as_i64().expect("order_id");
    let url = body["payment_url"]
        .as_str()
        .expect("payment_url")
        .to_string();
    (id, url)
}

async fn get_json(s: &Server, path: &str) -> (StatusCode, Value) {
    json_of(client().get(s.url(path)).send().await.unwrap()).await
}

/// Reading an order needs its token or an API key; the tests use the admin key.
async fn get_order_json(s: &Server, path: &str) -> (StatusCode, Value) {
    json_of(
        client()
            .get(s.url(path))
            .bearer_auth(&s.admin_key)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn order(s: &Server, id: i64) -> Value {
    let (code, body) = get_order_json(s, &format!("/api/orders/{id}")).await;
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

async fn webhook(s: &Server, body: &Value) -> (StatusCode, Value) {
    json_of(
        client()
            .post(s.url(WEBHOOK))
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn atmos_stats(s: &Server) -> Value {
    get_json(s, "/sandbox/atmos/_stats").await.1
}

/// `PUT _config` replaces the whole config (missing fields take defaults,
/// which would drop the callback URL `serve` set), so this merges `patch`
/// into the current one.
async fn set_atmos(s: &Server, patch: Value) {
    let (code, mut cfg) = get_json(s, "/sandbox/atmos/_config").await;
    assert_eq!(code, StatusCode::OK, "{cfg}");
    for (k, v) in patch.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    let r = client()
        .put(s.url("/sandbox/atmos/_config"))
        .json(&cfg)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "sandbox config: {}",
        r.text().await.unwrap()
    );
}

fn count_kind(jobs: &[Value], kind: &str) -> usize {
    jobs.iter().filter(|j| j["kind"] == kind).count()
}

fn webhook_metric(outcome: &str) -> [(&str, &str); 2] {
    [("provider", "atmos"), ("outcome", outcome)]
}

fn location(r: &reqwest::Response) -> String {
    r.headers()["location"].to_str().unwrap().to_string()
}

fn payment_id(order: &Value) -> String {
    order["payment"]["id"]
        .as_str()
        .expect("payment id")
        .to_string()
}

// ---------------------------------------------------------------------------
// 1. The happy path
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_order_paid_on_the_checkout_becomes_paid() {
    let s = Server::serve(&[]);
    let (code, body) = create_seed(&s, seed_order()).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "amount",
            "order_id",
            "order_token",
            "payment_type",
            "payment_url",
            "status"
        ],
        "exactly the seed's fields: {body}"
    );
    assert_eq!(body["payment_type"], "atmos");
    assert_eq!(body["amount"], "50.00");
    assert_eq!(body["status"], "pending");
    let id = body["order_id"].as_i64().unwrap();
    let url = body["payment_url"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&s.url("/sandbox/atmos/invoice/get?storeId=8157&transactionId=")),
        "{url}"
    );
    let txn = transaction_id(&url);

    // Stored exactly.
    let o = order(&s, id).await;
    assert_eq!(o["amount"], "50.00");
    assert_eq!(o["amount_tiyin"], 5000);
    assert_eq!(o["product_name"], "Test Product");
    assert_eq!(o["status"], "pending");
    assert_eq!(o["payment"]["amount"], 5000);
    assert_eq!(o["payment"]["status"], "processing");
    let pid = payment_id(&o);

    // The order page's long poll (with the order's token, as the page does):
    // `304` while nothing changes, the changed order as soon as it moves.
    let token = body["order_token"].as_str().unwrap().to_string();
    let read = s.url(&format!("/api/orders/{id}?token={token}"));
    let r = client().get(&read).send().await.unwrap();
    let tag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = client()
        .get(&read)
        .header("if-none-match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let waiting = tokio::spawn(async move {
        let r = client()
            .get(&read)
            .header("if-none-match", &tag)
            .header("prefer", "wait=20")
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    });

    // The payer pays; the simulator asks our webhook, which allows it, and
    // the browser goes back to the merchant.
    let back = press(&url, "pay").await;
    assert_eq!(back.status(), StatusCode::FOUND);
    let (code, moved) = waiting.await.unwrap();
    assert_eq!(code, StatusCode::OK);
    assert_ne!(moved, o, "the answer is the order as it changed");
    let to = location(&back);
    assert!(
        to.contains(&format!("/api/orders/{id}/result/?token=")),
        "{to}"
    );
    let page = client().get(&to).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);

    let paid = wait_order(&s, id, "paid").await;
    assert_eq!(paid["payment"]["status"], "completed");
    assert!(paid["payment"]["completed_at"].is_string());
    assert!(paid["payment"]["tracking_code"]
        .as_str()
        .is_some_and(|t| !t.is_empty() && t != txn));

    let stats = atmos_stats(&s).await;
    assert_eq!(stats["creates_total"], 1);
    assert_eq!(stats["creates_by_account"][id.to_string()], 1);
    assert_eq!(stats["callbacks_sent"], 1);
    assert_eq!(stats["callbacks_accepted"], 1);
    assert_eq!(stats["confirmed_total"], 1);
    assert_eq!(
        metric(&s, "paygate_webhooks_total", &webhook_metric("accepted")).await,
        Some(1.0)
    );
    let events = events_of(&s, &pid).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for k in [
        "request",
        "invoice",
        "webhook",
        "verification",
        "status_change",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    assert_eq!(count_kind(&jobs_of(&s, &pid).await, "verify_payment"), 1);

    // /v1/orders: 202 at once, 201 when asked to wait.
    let r = client()
        .post(s.url("/v1/orders"))
        .json(&seed_order())
        .send()
        .await
        .unwrap();
    let loc = location(&r);
    let (code, v) = json_of(r).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    let id2 = v["order_id"].as_i64().unwrap();
    let token = v["order_token"].as_str().expect("order_token");
    assert_eq!(token.len(), 64);
    assert_eq!(loc, format!("/v1/orders/{id2}?token={token}"));
    assert_eq!(v["amount_tiyin"], 5000);
    assert_eq!(v["status"], "pending");
    let later = eventually("the v1 order's link", Duration::from_secs(10), || async {
        let (_, o) = get_json(&s, &loc).await;
        o["payment_url"].is_string().then_some(o)
    })
    .await;
    assert_eq!(later["payment"]["status"], "processing");

    let (code, v) = json_of(
        client()
            .post(s.url("/v1/orders"))
            .header("prefer", "wait=5")
            .json(&seed_order())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    assert!(v["payment_url"]
        .as_str()
        .is_some_and(|u| u.contains("transactionId=")));
    assert_eq!(v["amount"], "50.00");
    assert_eq!(v["amount_tiyin"], 5000);
}

// ---------------------------------------------------------------------------
// 2. Decline: no webhook; the reconciler settles it
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_declined_payment_fails_the_order_through_the_reconciler() {
    let s = Server::serve(&[
        ("PAYGATE_ATMOS_RECONCILE_AFTER_MS", "500"),
        ("PAYGATE_RETRY_ATTEMPTS", "100"),
    ]);
    let (id, url) = new_order(&s).await;
    let back = press(&url, "decline").await;
    assert_eq!(back.status(), StatusCode::FOUND);
    assert!(location(&back).contains(&format!("/api/orders/{id}/result/?token=")));

    let failed = wait_order(&s, id, "failed").await;
    assert_eq!(failed["payment"]["status"], "failed");
    assert_eq!(failed["payment"]["status_reason"], "declined");
    let stats = atmos_stats(&s).await;
    assert_eq!(
        stats["callbacks_sent"], 0,
        "Atmos sends no webhook on decline"
    );
    assert_eq!(stats["declined_total"], 1);
    assert!(stats["gets_total"].as_u64().unwrap() >= 1);
    assert!(metric(
        &s,
        "paygate_reconciler_checks_total",
        &[("provider", "atmos")]
    )
    .await
    .is_some_and(|n| n >= 1.0));
}

// ---------------------------------------------------------------------------
// 3. / 4. Refused callbacks
// ---------------------------------------------------------------------------

/// Pays with a simulator fault set; the merchant must refuse and nothing settle.
async fn refused_payment(s: &Server, reason: &str) -> (i64, String) {
    let (id, url) = new_order(s).await;
    let r = press(&url, "pay").await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Payment refused by the merchant") && html.contains(reason),
        "{html}"
    );
    let stats = atmos_stats(s).await;
    assert_eq!(stats["callbacks_sent"], 1);
    assert_eq!(stats["callbacks_refused"], 1, "answered status 0: {stats}");
    assert_eq!(stats["callbacks_accepted"], 0);
    assert_eq!(stats["confirmed_total"], 0);
    assert_eq!(stats["declined_total"], 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let o = order(s, id).await;
    assert_eq!(o["status"], "pending");
    assert_eq!(o["payment"]["status"], "processing");
    let pid = payment_id(&o);
    assert_eq!(count_kind(&jobs_of(s, &pid).await, "verify_payment"), 0);
    (id, pid)
}

#[tokio::test]
async fn a_badly_signed_callback_is_refused() {
    let s = Server::serve(&[]);
    set_atmos(&s, json!({"bad_signature": true})).await;
    refused_payment(&s, "invalid sign").await;
    assert_eq!(
        metric(
            &s,
            "paygate_webhooks_total",
            &webhook_metric("bad_signature")
        )
        .await,
        Some(1.0)
    );
    assert_eq!(
        metric(&s, "paygate_webhooks_total", &webhook_metric("accepted")).await,
        Some(0.0)
    );
}

#[tokio::test]
async fn a_callback_with_the_wrong_amount_is_refused() {
    let s = Server::serve(&[]);
    set_atmos(&s, json!({"wrong_amount": true})).await;
    let (_, pid) = refused_payment(&s, "amount mismatch").await;
    assert_eq!(
        metric(&s, "paygate_webhooks_total", &webhook_metric("refused")).await,
        Some(1.0)
    );
    let events = events_of(&s, &pid).await;
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "webhook" && e["message"].as_str().unwrap_or("").contains("5100")),
        "{events:?}"
    );
}

// ---------------------------------------------------------------------------
// 5. Unknown invoice
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_signed_callback_for_an_unknown_invoice_is_refused() {
    let s = Server::serve(&[]);
    let (code, v) = webhook(&s, &signed_callback("12345678", "999999", "5000")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["status"], 0, "{v}");
    assert_eq!(v["message"], "invoice not found");

    // A real order, but a transaction that is not the one we recorded for it.
    let (id, url) = new_order(&s).await;
    let other = (transaction_id(&url).parse::<u64>().unwrap() + 1000).to_string();
    let (_, v) = webhook(&s, &signed_callback(&other, &id.to_string(), "5000")).await;
    assert_eq!(v["status"], 0, "{v}");
    // Signed for another store.
    let mut body = signed_callback(&transaction_id(&url), &id.to_string(), "5000");
    body["store_id"] = json!("1234");
    body["sign"] = json!(sign("1234", &transaction_id(&url), &id.to_string(), "5000"));
    let (_, v) = webhook(&s, &body).await;
    assert_eq!(v["status"], 0, "{v}");
    assert_eq!(order(&s, id).await["status"], "pending");
    assert_eq!(
        metric(&s, "paygate_webhooks_total", &webhook_metric("unknown")).await,
        Some(2.0)
    );
}

// ---------------------------------------------------------------------------
// 6. Replays
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_replayed_callback_is_allowed_again_and_changes_nothing() {
    let s = Server::serve(&[]);
    let (id, url) = new_order(&s).await;
    let txn = transaction_id(&url);
    assert_eq!(press(&url, "pay").await.status(), StatusCode::FOUND);
    let paid = wait_order(&s, id, "paid").await;
    let pid = payment_id(&paid);

    // The body the simulator sent (the same signed texts).
    let body = signed_callback(&txn, &id.to_string(), "5000");
    for _ in 0..4 {
        let (code, v) = webhook(&s, &body).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(v, json!({"status": 1, "message": "Успешно"}));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = order(&s, id).await;
    assert_eq!(after["status"], "paid");
    assert_eq!(after["updated_at"], paid["updated_at"]);
    let jobs = jobs_of(&s, &pid).await;
    assert_eq!(count_kind(&jobs, "verify_payment"), 1, "{jobs:?}");
    assert_eq!(count_kind(&jobs, "update_order"), 1, "{jobs:?}");
    let events = events_of(&s, &pid).await;
    let completed = events
        .iter()
        .filter(|e| e["message"] == "processing → completed")
        .count();
    assert_eq!(completed, 1, "{events:?}");
    assert_eq!(
        metric(&s, "paygate_webhooks_total", &webhook_metric("duplicate")).await,
        Some(4.0)
    );
}

#[tokio::test]
async fn duplicate_callbacks_from_atmos_are_all_allowed() {
    let s = Server::serve(&[]);
    set_atmos(&s, json!({"duplicate_callbacks": 3})).await;
    let (id, url) = new_order(&s).await;
    assert_eq!(press(&url, "pay").await.status(), StatusCode::FOUND);
    let paid = wait_order(&s, id, "paid").await;
    let stats = atmos_stats(&s).await;
    assert_eq!(stats["callbacks_sent"], 4, "{stats}");
    assert_eq!(stats["callbacks_accepted"], 4, "{stats}");
    assert_eq!(stats["confirmed_total"], 1);
    let jobs = jobs_of(&s, &payment_id(&paid)).await;
    assert_eq!(count_kind(&jobs, "verify_payment"), 1, "{jobs:?}");
}

// ---------------------------------------------------------------------------
// 7. A webhook before the invoice job finished
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_webhook_before_the_invoice_is_recorded_is_allowed() {
    // Slow enough retries that the failing invoice job stays alive.
    let s = Server::serve(&[("PAYGATE_RETRY_ATTEMPTS", "100")]);
    set_atmos(&s, json!({"error_rate": 1.0})).await;
    let (code, v) = json_of(
        client()
            .post(s.url("/v1/orders"))
            .json(&seed_order())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    let id = v["order_id"].as_i64().unwrap();
    let pid = v["payment"]["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let o = order(&s, id).await;
    assert_eq!(o["payment"]["status"], "pending");
    assert!(o["payment_url"].is_null());

    // Atmos's transaction id is not known to us yet: the order decides.
    let early = "99999999";
    let (code, v) = webhook(&s, &signed_callback(early, &id.to_string(), "5000")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["status"], 1, "{v}");
    assert_eq!(count_kind(&jobs_of(&s, &pid).await, "verify_payment"), 1);

    // The gateway recovers; the invoice is created and the payer pays it.
    set_atmos(&s, json!({"error_rate": 0.0})).await;
    let o = eventually("the payment link", Duration::from_secs(10), || async {
        let o = order(&s, id).await;
        o["payment_url"].is_string().then_some(o)
    })
    .await;
    assert_eq!(o["payment"]["status"], "processing");
    let url = o["payment_url"].as_str().unwrap().to_string();
    assert_ne!(transaction_id(&url), early);
    assert_eq!(o["status"], "pending");
    assert_eq!(press(&url, "pay").await.status(), StatusCode::FOUND);
    let paid = wait_order(&s, id, "paid").await;
    assert_eq!(paid["payment"]["status"], "completed");
    let stats = atmos_stats(&s).await;
    assert_eq!(stats["creates_total"], 1, "{stats}");
    assert_eq!(stats["confirmed_total"], 1);
    // The early webhook's verification and the real one's. Observed: the
    // early one asks Atmos about the transaction the invoice job recorded
    // (not the one the webhook named), so it too settles on the real payment.
    assert_eq!(count_kind(&jobs_of(&s, &pid).await, "verify_payment"), 2);
}

// ---------------------------------------------------------------------------
// 8. Token expiry
// ---------------------------------------------------------------------------

#[tokio::test]
async fn an_expired_token_is_replaced() {
    let s = Server::serve(&[]);
    set_atmos(&s, json!({"token_ttl_secs": 1})).await;
    let (_, url1) = new_order(&s).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, url2) = new_order(&s).await;
    assert_ne!(transaction_id(&url1), transaction_id(&url2));
    let stats = atmos_stats(&s).await;
    assert_eq!(stats["creates_total"], 2);
    assert_eq!(stats["tokens_issued"], 2, "{stats}");
}

/// A token the client still thinks fresh but the gateway has let expire
/// (it expired while the request waited) is answered 401; the client
/// fetches a new one and repeats the call once.
#[tokio::test]
async fn a_401_refreshes_the_token_and_repeats_the_call() {
    let s = Server::serve(&[
        ("RUST_LOG", "warn,paygate_common::gateways::atmos=debug"),
        // The job makes three slow calls; keep it within its lease.
        ("PAYGATE_JOB_LEASE_MS", "20000"),
        ("PAYGATE_GATEWAY_TIMEOUT_MS", "5000"),
    ]);
    // ttl 2 s: the client uses a token for 1 s, the gateway accepts it for 2 s.
    set_atmos(&s, json!({"token_ttl_secs": 2})).await;
    new_order(&s).await;
    // Every gateway call now takes 1.5 s before the token is checked, so a
    // token used between 0.5 s and 1 s after it was issued has expired by then.
    set_atmos(&s, json!({"token_ttl_secs": 2, "latency_ms": 1500})).await;
    tokio::time::sleep(Duration::from_millis(650)).await;
    let started = Instant::now();
    let (code, v) = json_of(
        client()
            .post(s.url("/v1/orders"))
            .header("prefer", "wait=15")
            .json(&seed_order())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    assert!(v["payment_url"].is_string(), "{v}");
    assert_eq!(v["payment"]["status"], "processing");
    let stats = atmos_stats(&s).await;
    assert_eq!(stats["creates_total"], 2);
    assert_eq!(stats["tokens_issued"], 2, "{stats}");
    assert!(
        s.logs().contains("answered 401; refreshing the token"),
        "took {:?}: {}",
        started.elapsed(),
        s.logs()
    );
}

/// One order, one Atmos transaction, even when the gateway is slow. The
/// configuration is valid (each call's timeout, 2 s, is shorter than the job
/// lease, 3 s), but `create_invoice` makes two calls (token, then create).
#[tokio::test]
async fn a_slow_gateway_gets_one_invoice_per_order() {
    let s = Server::serve(&[]);
    set_atmos(&s, json!({"latency_ms": 1600})).await;
    let (code, v) = json_of(
        client()
            .post(s.url("/v1/orders"))
            .header("prefer", "wait=15")
            .json(&seed_order())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let id = v["order_id"].as_i64().unwrap();
    // Long enough for a second run of the job to finish, if there is one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = atmos_stats(&s).await;
    assert_eq!(stats["creates_by_account"][id.to_string()], 1, "{stats}");
    let jobs = jobs_of(&s, v["payment"]["id"].as_str().unwrap()).await;
    let invoice: Vec<&Value> = jobs
        .iter()
        .filter(|j| j["kind"] == "create_invoice")
        .collect();
    assert_eq!(invoice[0]["attempts"], 1, "{jobs:?}");
}

// ---------------------------------------------------------------------------
// 9. A lost webhook
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_lost_webhook_is_recovered_by_the_reconciler() {
    let s = Server::serve(&[
        ("PAYGATE_ATMOS_RECONCILE_AFTER_MS", "500"),
        ("PAYGATE_RETRY_ATTEMPTS", "100"),
    ]);
    // No callback: the simulator confirms without asking us.
    set_atmos(&s, json!({"callback_url": null})).await;
    let (id, url) = new_order(&s).await;
    let back = press(&url, "pay").await;
    assert_eq!(back.status(), StatusCode::FOUND);
    let paid = wait_order(&s, id, "paid").await;
    assert_eq!(paid["payment"]["status"], "completed");
    let stats = atmos_stats(&s).await;
    assert_eq!(stats["callbacks_sent"], 0);
    assert_eq!(stats["confirmed_total"], 1);
    assert_eq!(
        metric(&s, "paygate_webhooks_total", &webhook_metric("accepted")).await,
        Some(0.0)
    );
    assert!(metric(
        &s,
        "paygate_reconciler_checks_total",
        &[("provider", "atmos")]
    )
    .await
    .is_some_and(|n| n >= 1.0));
    assert_eq!(
        count_kind(&jobs_of(&s, &payment_id(&paid)).await, "verify_payment"),
        1
    );
}

// ---------------------------------------------------------------------------
// 10. The seed's manual test, as the README will show it
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_seeds_manual_curls() {
    let s = Server::serve(&[("PAYGATE_RETRY_ATTEMPTS", "100")]);
    let (code, body) = create_seed(
        &s,
        json!({"product_name": "Test", "amount": "50.00", "payment_type": "atmos"}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let id = body["order_id"].as_i64().unwrap();
    let url = body["payment_url"].as_str().unwrap().to_string();

    let (code, v) = webhook(
        &s,
        &json!({"store_id": "1234", "transaction_id": 123456, "amount": 5000, "invoice": "1", "sign": "test"}),
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["status"], 0, "{v}");
    assert!(v["message"].is_string());

    // The same shape (numbers as in the seed) for the real transaction, signed.
    let txn = transaction_id(&url);
    let body = format!(
        r#"{{"store_id": "8157", "transaction_id": {txn}, "amount": 5000, "invoice": "{id}", "sign": "{}"}}"#,
        sign(STORE_ID, &txn, &id.to_string(), "5000")
    );
    let r = client()
        .post(s.url(WEBHOOK))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let (code, v) = json_of(r).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v, json!({"status": 1, "message": "Успешно"}));
    // Allowed is not paid: the order waits for Atmos to confirm.
    assert_eq!(order(&s, id).await["status"], "pending");
    // The payer pays; Atmos's own callback is a repeat and is allowed too.
    assert_eq!(press(&url, "pay").await.status(), StatusCode::FOUND);
    let paid = wait_order(&s, id, "paid").await;
    assert_eq!(atmos_stats(&s).await["callbacks_accepted"], 1);
    assert_eq!(
        count_kind(&jobs_of(&s, &payment_id(&paid)).await, "verify_payment"),
        1
    );
}

// ---------------------------------------------------------------------------
// 11. Bad input
// ---------------------------------------------------------------------------

fn error_of(v: &Value) -> (&str, &str) {
    (
        v["error"]["code"].as_str().unwrap_or_default(),
        v["error"]["field"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn bad_orders_are_refused_and_write_nothing() {
    let s = Server::serve(&[]);
    let with = |k: &str, v: Value| {
        let mut b = seed_order();
        b[k] = v;
        b
    };
    let mut missing_name = seed_order();
    missing_name.as_object_mut().unwrap().remove("product_name");
    let cases = [
        (with("amount", json!("50.001")), "invalid_field", "amount"),
        (with("amount", json!("-1")), "invalid_field", "amount"),
        (with("amount", json!("0")), "invalid_field", "amount"),
        (with("amount", json!("abc")), "invalid_field", "amount"),
        (missing_name, "invalid_field", "product_name"),
        (
            with("payment_type", json!("paypal")),
            "invalid_field",
            "payment_type",
        ),
    ];
    for (body, want_code, want_field) in cases {
        let (code, v) = create_seed(&s, body.clone()).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body} → {v}");
        assert_eq!(error_of(&v), (want_code, want_field), "{body} → {v}");
    }
    let (code, v) = get_json(&s, "/api/orders/abc").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(error_of(&v).0, "invalid_id");
    let (code, v) = get_order_json(&s, "/api/orders/999999").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(error_of(&v).0, "not_found");

    // Nothing was written: the first good order is order 1, the only invoice.
    let (code, v) = create_seed(&s, with("amount", json!(50.5))).await;
    assert_eq!(code, StatusCode::CREATED, "{v}");
    assert_eq!(v["amount"], "50.50");
    assert_eq!(v["order_id"], 1);
    assert_eq!(order(&s, 1).await["amount_tiyin"], 5050);
    assert_eq!(
        get_order_json(&s, "/api/orders/2").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(atmos_stats(&s).await["creates_total"], 1);

    // Without the simulators, a shop gateway with no settings takes no orders.
    let bare = Server::serve(&[
        ("PAYGATE_SANDBOX", "false"),
        ("PAYMENT_GATEWAY_URL", "http://127.0.0.1:9"),
        ("PAYMENT_API_KEY", "k"),
    ]);
    for payment_type in ["atmos", "payme", "click"] {
        let body = with("payment_type", json!(payment_type));
        let (code, v) = create_seed(&bare, body.clone()).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body} → {v}");
        assert_eq!(
            error_of(&v),
            ("payment_type_not_configured", "payment_type"),
            "{body} → {v}"
        );
    }
}
