//! The CrazyMiner (medogram) flow end to end, through real HTTP against a
//! real `paygate serve` process (embedded mode: SQLite, in-process worker,
//! built-in simulator).

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use support::{admin_get, client, events_of, eventually, jobs_of, metrics_text, Server};

const CREATE: &str = "/crazyminer/payment/create/";

async fn create(s: &Server, body: Value) -> (StatusCode, Value) {
    let r = client()
        .post(s.url(CREATE))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn status_of(s: &Server, id: &str) -> Value {
    client()
        .get(s.url(&format!("/crazyminer/payment/status/{id}/")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_status(s: &Server, id: &str, want: &str) -> Value {
    eventually(
        &format!("status {want}"),
        Duration::from_secs(20),
        || async {
            let v = status_of(s, id).await;
            (v["status"] == want).then_some(v)
        },
    )
    .await
}

async fn sandbox_stats(s: &Server) -> Value {
    client()
        .get(s.url("/sandbox/medogram/_stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn set_sandbox(s: &Server, config: Value) {
    let r = client()
        .put(s.url("/sandbox/medogram/_config"))
        .json(&config)
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "sandbox config: {}",
        r.text().await.unwrap()
    );
}

/// Follows the payer's browser from the payment URL: pay (or cancel) on the
/// checkout page, then the 302 back to our callback. Returns the callback's answer.
async fn pay(s: &Server, payment_url: &str, action: &str) -> reqwest::Response {
    let page = client().get(payment_url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<form"),
        "checkout page is a real form: {html}"
    );
    let id_get = payment_url
        .rsplit("gateway-")
        .next()
        .unwrap()
        .trim_end_matches("-get");
    let back = client()
        .post(s.url(&format!(
            "/sandbox/medogram/payment/gateway-{id_get}/{action}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(
        back.status(),
        StatusCode::FOUND,
        "gateway sends the browser back"
    );
    let location = back.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.contains("/crazyminer/payment/callback/"),
        "{location}"
    );
    assert!(location.contains("trans_id=") && location.contains(&format!("id_get={id_get}")));
    client().get(location).send().await.unwrap()
}

#[tokio::test]
async fn a_payer_pays_and_the_payment_completes() {
    let s = Server::serve(&[]);
    let (code, body) = create(
        &s,
        json!({"amount": 100000, "description": "خرید اشتراک", "user_identifier": "09123456789"}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "processing");
    assert_eq!(body["status_display"], "در حال پردازش");
    assert_eq!(body["amount"], 100000);
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 5, "exactly the seed's fields: {body}");
    let id = body["transaction_id"].as_str().unwrap().to_string();
    let url = body["payment_url"].as_str().unwrap().to_string();
    assert!(url.ends_with("-get"), "{url}");

    let back = pay(&s, &url, "pay").await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    let to = back.headers()["location"].to_str().unwrap();
    assert_eq!(to, format!("/crazyminer/payment/result/{id}/"));
    let page = client()
        .get(s.url(to))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&id));

    let done = wait_status(&s, &id, "completed").await;
    assert_eq!(done["status_display"], "تکمیل شده");
    assert!(done["gateway_tracking_code"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    assert!(done["completed_at"].is_string());

    // The activity log, with personal data kept out of it.
    let events: Value = client()
        .get(s.url(&format!("/v1/payments/{id}/events")))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in [
        "request",
        "user_fetch",
        "invoice",
        "callback",
        "verification",
        "status_change",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    let text = events.to_string();
    assert!(
        !text.contains("09123456789") && !text.contains("@example.com"),
        "no personal data: {text}"
    );

    // One invoice and one successful verification at the gateway.
    let stats = sandbox_stats(&s).await;
    assert_eq!(stats["invoices_by_factor"][&id], 1);
    assert_eq!(
        stats["verifies_total"].as_u64().unwrap()
            - stats["already_verified_total"].as_u64().unwrap_or(0),
        1
    );

    // The list needs a key; DRF's `Token` scheme works too.
    let r = client()
        .get(s.url("/crazyminer/payment/list/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client()
        .get(s.url("/crazyminer/payment/list/"))
        .header("authorization", "Token wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let list: Value = client()
        .get(s.url("/crazyminer/payment/list/?status=completed"))
        .header("authorization", format!("Token {}", s.admin_key))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["transaction_id"], id.as_str());
    let none: Value = client()
        .get(s.url("/crazyminer/payment/list/?status=failed"))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["count"], 0);
}

/// A conditional GET of `path`: the validator the client has and its
/// `Prefer` header; returns the answer's status, `ETag`, `Preference-Applied`
/// and body (`Null` for a `304`).
async fn conditional_get(
    s: &Server,
    path: &str,
    tag: Option<&str>,
    prefer: Option<&str>,
) -> (StatusCode, String, Option<String>, Value) {
    let mut req = client().get(s.url(path));
    if let Some(tag) = tag {
        req = req.header("if-none-match", tag);
    }
    if let Some(prefer) = prefer {
        req = req.header("prefer", prefer);
    }
    let r = req.send().await.unwrap();
    let code = r.status();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let tag = header("etag").expect("every read carries an ETag");
    let applied = header("preference-applied");
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let text = r.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (code, tag, applied, body)
}

#[tokio::test]
async fn the_status_route_answers_when_the_payment_changes() {
    let s = Server::serve(&[]);
    let (code, body) = create(
        &s,
        json!({"amount": 120000, "description": "long poll", "user_identifier": "09123456789"}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let id = body["transaction_id"].as_str().unwrap().to_string();
    let url = body["payment_url"].as_str().unwrap().to_string();
    let path = format!("/crazyminer/payment/status/{id}/");

    // A plain read carries a validator; the same one while nothing changes.
    let (code, tag, _, first) = conditional_get(&s, &path, None, None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(first["status"], "processing");
    assert!(tag.starts_with("W/\""), "{tag}");
    let (code, again, _, _) = conditional_get(&s, &path, None, None).await;
    assert_eq!((code, again.as_str()), (StatusCode::OK, tag.as_str()));

    // The client's validator still holds: 304 without a body, at once, after
    // a short wait with no change, or with a wait it cannot read.
    let (code, same, _, body) = conditional_get(&s, &path, Some(&tag), None).await;
    assert_eq!(
        (code, same.as_str(), body),
        (StatusCode::NOT_MODIFIED, tag.as_str(), Value::Null)
    );
    for prefer in ["wait=1", "wait=soon"] {
        let (code, ..) = conditional_get(&s, &path, Some(&tag), Some(prefer)).await;
        assert_eq!(code, StatusCode::NOT_MODIFIED, "{prefer}");
    }
    // A validator we never sent gets the payment.
    let (code, _, _, body) = conditional_get(&s, &path, Some("\"nope\""), Some("wait=1")).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (StatusCode::OK, Some("processing"))
    );

    // A long poll in flight is answered with the change when the payer pays
    // (not before: it is still waiting 300 ms in).
    let started = std::time::Instant::now();
    let ((code, _, applied, changed), answered_after) = tokio::join!(
        async {
            let answer = conditional_get(&s, &path, Some(&tag), Some("wait=20")).await;
            (answer, started.elapsed())
        },
        async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let back = pay(&s, &url, "pay").await;
            assert_eq!(back.status(), StatusCode::SEE_OTHER);
        }
    )
    .0;
    assert!(
        answered_after >= Duration::from_millis(300),
        "answered after {answered_after:?}, before the payer moved"
    );
    assert_eq!(
        (code, applied.as_deref()),
        (StatusCode::OK, Some("wait=20"))
    );
    assert_ne!(changed, first, "the answer is the changed payment");

    // What the result page's script does: poll with the last validator until
    // the payment ends.
    let mut tag = tag;
    let mut last = changed;
    for _ in 0..10 {
        if last["status"] == "completed" {
            break;
        }
        let (code, t, _, body) = conditional_get(&s, &path, Some(&tag), Some("wait=20")).await;
        if code == StatusCode::OK {
            last = body;
        }
        tag = t;
    }
    assert_eq!(last["status"], "completed", "{last}");
    let script = client()
        .get(s.url("/static/paygate-status.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(script.contains("If-None-Match") && script.contains("wait="));

    // /v1 reads work the same way.
    let v1 = format!("/v1/payments/{id}");
    let (code, v1_tag, _, _) = conditional_get(&s, &v1, None, None).await;
    assert_eq!(code, StatusCode::OK);
    let (code, ..) = conditional_get(&s, &v1, Some(&v1_tag), None).await;
    assert_eq!(code, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn repeated_and_unknown_callbacks_change_nothing() {
    let s = Server::serve(&[]);
    let (_, body) = create(
        &s,
        json!({"amount": 5000, "user_identifier": "09120000001"}),
    )
    .await;
    let id = body["transaction_id"].as_str().unwrap().to_string();
    let url = body["payment_url"].as_str().unwrap().to_string();
    let back = pay(&s, &url, "pay").await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);
    wait_status(&s, &id, "completed").await;
    let id_get = url
        .rsplit("gateway-")
        .next()
        .unwrap()
        .trim_end_matches("-get")
        .to_string();
    let trans_id = {
        let stats = sandbox_stats(&s).await;
        stats["verifies_by_trans"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone()
    };
    // The same callback again, as GET, POST form and POST JSON, concurrently.
    let mut calls = Vec::new();
    for i in 0..9 {
        let url = s.url("/crazyminer/payment/callback/");
        let (t, g) = (trans_id.clone(), id_get.clone());
        calls.push(tokio::spawn(async move {
            let c = client();
            match i % 3 {
                0 => c
                    .get(format!("{url}?trans_id={t}&id_get={g}"))
                    .send()
                    .await
                    .unwrap()
                    .status(),
                1 => c
                    .post(&url)
                    .form(&[("trans_id", t.as_str()), ("id_get", g.as_str())])
                    .send()
                    .await
                    .unwrap()
                    .status(),
                _ => c
                    .post(&url)
                    .json(&json!({"trans_id": t, "id_get": g}))
                    .send()
                    .await
                    .unwrap()
                    .status(),
            }
        }));
    }
    for c in calls {
        let code = c.await.unwrap();
        assert!(
            code == StatusCode::SEE_OTHER || code == StatusCode::OK,
            "{code}"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = sandbox_stats(&s).await;
    assert_eq!(
        stats["verifies_by_trans"][&trans_id], 1,
        "verified once: {stats}"
    );
    assert_eq!(status_of(&s, &id).await["status"], "completed");

    // A callback for an id_get we never issued is recorded and refused.
    let r = client()
        .get(s.url("/crazyminer/payment/callback/?trans_id=1&id_get=424242"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "unknown_payment");
    // Malformed callbacks are 400s.
    for q in [
        "",
        "?trans_id=abc&id_get=1",
        "?id_get=1",
        "?trans_id=1&id_get=%00",
    ] {
        let r = client()
            .get(s.url(&format!("/crazyminer/payment/callback/{q}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
    }
}

#[tokio::test]
async fn cancelled_payment_expires_and_unknown_user_is_refused() {
    // medogram answers a payer's cancel with the same -4 as a made-up
    // trans_id, so the payment stays payable until it expires (docs/expiry.md).
    let s = Server::serve(&[("PAYGATE_PAYMENT_TTL_MEDOGRAM", "2s")]);
    let (_, body) = create(
        &s,
        json!({"amount": 20000, "user_identifier": "09120000002"}),
    )
    .await;
    let id = body["transaction_id"].as_str().unwrap().to_string();
    pay(&s, body["payment_url"].as_str().unwrap(), "cancel").await;
    let expired = wait_status(&s, &id, "cancelled").await;
    assert_eq!(expired["status_display"], "لغو شده");
    let v1: Value = client()
        .get(s.url(&format!("/v1/payments/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v1["status_reason"], "expired");

    // A well-formed number the main server does not know.
    let r = client()
        .put(s.url("/sandbox/medogram/api/users/09120000404/"))
        .json(&json!({"_missing": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (code, body) = create(
        &s,
        json!({"amount": 20000, "user_identifier": "09120000404"}),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["reason"], "user_not_found");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let s = Server::serve(&[]);
    let post = |body: String, ct: &'static str| {
        let url = s.url(CREATE);
        async move {
            client()
                .post(url)
                .header("content-type", ct)
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let json = "application/json";
    let cases: Vec<(String, &str, u16, &str)> = vec![
        ("{".into(), json, 400, "invalid_json"),
        ("[1,2]".into(), json, 400, "invalid_json"),
        (
            r#"{"amount":100000,"user_identifier":"09123456789"}"#.into(),
            "text/plain",
            415,
            "unsupported_media_type",
        ),
        (
            r#"{"user_identifier":"09123456789"}"#.into(),
            json,
            400,
            "invalid_field",
        ),
        (
            r#"{"amount":"lots","user_identifier":"09123456789"}"#.into(),
            json,
            400,
            "invalid_field",
        ),
        (
            r#"{"amount":1000.5,"user_identifier":"09123456789"}"#.into(),
            json,
            400,
            "invalid_field",
        ),
        (
            r#"{"amount":true,"user_identifier":"09123456789"}"#.into(),
            json,
            400,
            "invalid_field",
        ),
        (
            r#"{"amount":0,"user_identifier":"09123456789"}"#.into(),
            json,
            400,
            "invalid_field",
        ),
        (
            r#"{"amount":-5000,"user_identifier":"09123456789"}"#.into(),
            json,
            400,
            "invalid_field",
        ),
        (
            r#"{"amount":999,"user_identifier":"09123456789"}"#.into(),
            json,
            400,
            "amount_too_small",
        ),
        (
            r#"{"amount":100000000000000000000,"user_identifier":"09123456789"}"#.into(),
            json,
            400,
            "invalid_field",
        ),
        (
            r#"{"amount":9000000000000000000,"user_identifier":"09123456789"}"#.into(),
            json,
            400,
            "invalid_field",
        ),
        (r#"{"amount":100000}"#.into(), json, 400, "invalid_field"),
        (
            r#"{"amount":100000,"user_identifier":42}"#.into(),
            json,
            400,
            "invalid_field",
        ),
        (
            r#"{"amount":100000,"user_identifier":"../../etc/passwd"}"#.into(),
            json,
            400,
            "invalid_field",
        ),
        (
            format!(
                r#"{{"amount":100000,"user_identifier":"09123456789","description":"{}"}}"#,
                "x".repeat(256)
            ),
            json,
            400,
            "invalid_field",
        ),
        (
            format!(
                r#"{{"amount":100000,"user_identifier":"09123456789","description":"{}"}}"#,
                "x".repeat(100_000)
            ),
            json,
            413,
            "payload_too_large",
        ),
    ];
    for (body, ct, want, code) in cases {
        let r = post(body.clone(), ct).await;
        let got = r.status().as_u16();
        let e: Value = r.json().await.unwrap_or(Value::Null);
        assert_eq!(got, want, "{} -> {e}", &body[..body.len().min(80)]);
        assert_eq!(e["error"]["code"], code, "{}", &body[..body.len().min(80)]);
        assert!(e["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let r = client()
        .get(s.url("/crazyminer/payment/status/not-a-uuid/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = client()
        .get(s.url(&format!(
            "/crazyminer/payment/status/{}/",
            uuid::Uuid::new_v4()
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    let r = client().get(s.url("/no/such/route")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "not_found"
    );
    let r = client().delete(s.url(CREATE)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "method_not_allowed"
    );
    let r = client()
        .get(s.url("/crazyminer/payment/list/?page=0"))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Nothing was written by any of that.
    let list: Value = client()
        .get(s.url("/crazyminer/payment/list/"))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["count"], 0, "{list}");
}

#[tokio::test]
async fn v1_answers_at_once_or_waits_when_asked_and_is_idempotent() {
    let s = Server::serve(&[("PAYGATE_SANDBOX_MEDOGRAM_LATENCY_MS", "300")]);
    let body = json!({"amount": 150000, "user_identifier": "09123456780", "description": "v1"});
    let r = client()
        .post(s.url("/v1/payments"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "pending");
    assert!(v["payment_url"].is_null());
    assert_eq!(loc, format!("/v1/payments/{}", v["id"].as_str().unwrap()));

    let r = client()
        .post(s.url("/v1/payments"))
        .header("prefer", "wait=10")
        .header("accept-language", "ru")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["preference-applied"], "wait=10");
    let v: Value = r.json().await.unwrap();
    assert!(v["payment_url"].is_string(), "{v}");
    assert_eq!(v["status_display"], "В обработке");

    let first: Value = client()
        .post(s.url("/v1/payments"))
        .header("idempotency-key", "order-77")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = client()
        .post(s.url("/v1/payments"))
        .header("idempotency-key", "order-77")
        .json(&body)
        .send()
        .await
        .unwrap();
    // Stripe's rule: a repeat replays the first answer (202), marked as a replay.
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let again: Value = r.json().await.unwrap();
    assert_eq!(first, again);

    // Seed route with a short wait answers 202 with the seed's body and a Location.
    drop(s);
    let s = Server::serve(&[
        ("PAYGATE_SANDBOX_MEDOGRAM_LATENCY_MS", "1500"),
        ("PAYGATE_SEED_WAIT_MS", "100"),
    ]);
    let (code, v) = create(&s, body.clone()).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    assert!(v["payment_url"].is_null());
    assert_eq!(v["status"], "pending");
}

#[tokio::test]
async fn gateway_outages_are_retried_and_exhaustion_fails_with_a_reason() {
    let s = Server::serve(&[
        ("PAYGATE_SEED_WAIT_MS", "100"),
        ("PAYGATE_RETRY_ATTEMPTS", "100"),
    ]);
    set_sandbox(
        &s,
        json!({"api_key": "sandbox-medogram-api-key", "error_rate": 1.0}),
    )
    .await;
    let (code, v) = create(
        &s,
        json!({"amount": 100000, "user_identifier": "09123456789"}),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{v}");
    let id = v["transaction_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_of(&s, &id).await["status"], "pending");
    set_sandbox(
        &s,
        json!({"api_key": "sandbox-medogram-api-key", "error_rate": 0.0}),
    )
    .await;
    wait_status(&s, &id, "processing").await;
    drop(s);

    let s = Server::serve(&[("PAYGATE_RETRY_ATTEMPTS", "3")]);
    set_sandbox(
        &s,
        json!({"api_key": "sandbox-medogram-api-key", "error_rate": 1.0}),
    )
    .await;
    // Three quick attempts fail within the seed route's wait: it says why.
    let (code, v) = create(
        &s,
        json!({"amount": 100000, "user_identifier": "09123456789"}),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["reason"], "user_server_unavailable");
    let id = v["error"]["transaction_id"].as_str().unwrap().to_string();
    wait_status(&s, &id, "failed").await;
    let v1: Value = client()
        .get(s.url(&format!("/v1/payments/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v1["status_reason"], "user_server_unavailable");
    let dead: Value = client()
        .get(s.url("/v1/admin/jobs?status=dead"))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jobs = dead["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{dead}");
    assert_eq!(jobs[0]["attempts"], 3);
    assert!(jobs[0]["last_error"].as_str().unwrap().contains("503"));

    // An operator redrives the dead letter once the gateway is back: it runs
    // again with a fresh budget; the payment already failed, so it changes nothing.
    set_sandbox(
        &s,
        json!({"api_key": "sandbox-medogram-api-key", "error_rate": 0.0}),
    )
    .await;
    let job_id = jobs[0]["id"].as_str().unwrap().to_string();
    let r = client()
        .post(s.url(&format!("/v1/admin/jobs/{job_id}/redrive")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client()
        .post(s.url(&format!("/v1/admin/jobs/{job_id}/redrive")))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    eventually(
        "the redriven job to finish",
        Duration::from_secs(10),
        || async {
            let v: Value = client()
                .get(s.url(&format!("/v1/admin/jobs?payment_id={id}")))
                .bearer_auth(&s.admin_key)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            // The payment's other jobs (its notifications) are listed too.
            let redriven = v["jobs"]
                .as_array()?
                .iter()
                .find(|j| j["id"] == job_id.as_str())?
                .clone();
            (redriven["status"] == "succeeded").then_some(())
        },
    )
    .await;
    assert_eq!(status_of(&s, &id).await["status"], "failed");
    let r = client()
        .post(s.url(&format!("/v1/admin/jobs/{job_id}/redrive")))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "job_not_redrivable"
    );
    let r = client()
        .post(s.url(&format!("/v1/admin/jobs/{}/redrive", uuid::Uuid::new_v4())))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_crash_leaves_work_that_is_finished_after_restart() {
    // The gateway is slow, so the invoice job is in flight when we kill -9.
    let mut s = Server::serve(&[
        ("PAYGATE_SANDBOX_MEDOGRAM_LATENCY_MS", "1500"),
        ("PAYGATE_SEED_WAIT_MS", "0"),
    ]);
    let (code, v) = create(
        &s,
        json!({"amount": 100000, "user_identifier": "09123456789"}),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let id = v["transaction_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(400)).await;
    s.kill();
    s.start();
    let done = wait_status(&s, &id, "processing").await;
    assert_eq!(done["transaction_id"], id.as_str());
    // And SIGTERM is a clean exit.
    let status = s.terminate();
    assert!(status.success(), "{status:?}: {}", s.logs());
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let s = Server::serve(&[]);
    let h: Value = client()
        .get(s.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    let r: Value = client()
        .get(s.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["checks"]["database"], "ok");
    assert_eq!(r["checks"]["queue"], "ok");
    let (_, v) = create(
        &s,
        json!({"amount": 100000, "user_identifier": "09123456789"}),
    )
    .await;
    assert!(v["payment_url"].is_string());
    let m = metrics_text(&s).await;
    assert!(
        m.contains(r#"paygate_payments_created_total{provider="medogram"} 1"#),
        "{m}"
    );
    assert!(m.contains(r#"paygate_http_requests_total{route="/crazyminer/payment/create/",method="POST",status="201"} 1"#), "{m}");
    assert!(m.contains("paygate_jobs_total"));
    // The invoice ran inside the user fetch's attempt: one finish for both.
    assert!(
        m.contains(r#"paygate_jobs_run_inside_total{kind="create_invoice"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"paygate_jobs_total{kind="create_invoice",outcome="succeeded"} 1"#),
        "{m}"
    );
    assert!(!m.contains("09123456789"));
}

async fn event_kinds(s: &Server, id: &str) -> Vec<String> {
    events_of(s, id)
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

fn job_of<'a>(jobs: &'a [Value], kind: &str) -> &'a Value {
    let of_kind: Vec<&Value> = jobs.iter().filter(|j| j["kind"] == kind).collect();
    assert_eq!(of_kind.len(), 1, "one {kind} job: {jobs:?}");
    of_kind[0]
}

/// A `/v1` create nobody waits on; its id.
async fn create_v1(s: &Server) -> String {
    let r = client()
        .post(s.url("/v1/payments"))
        .json(&json!({"amount": 150000, "user_identifier": "09123456780"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let v: Value = r.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

/// The user fetch and the invoice each in the ledger, succeeded at their
/// first attempt.
async fn assert_fetch_and_invoice_succeeded_once(s: &Server, id: &str) {
    let jobs = jobs_of(s, id).await;
    for kind in ["fetch_user", "create_invoice"] {
        let job = job_of(&jobs, kind);
        assert_eq!(
            (&job["status"], &job["attempts"]),
            (&json!("succeeded"), &json!(1)),
            "{jobs:?}"
        );
    }
}

/// The seed route's invoice runs inside its user fetch's attempt and both
/// are recorded by one write: each job in the ledger, succeeded at its first
/// attempt, and the activity log in the order the work happened.
#[tokio::test]
async fn the_invoice_runs_inside_the_user_fetch_and_both_are_recorded() {
    let s = Server::serve(&[]);
    let (code, body) = create(
        &s,
        json!({"amount": 100000, "user_identifier": "09123456789"}),
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let id = body["transaction_id"].as_str().unwrap();
    assert_fetch_and_invoice_succeeded_once(&s, id).await;
    assert_eq!(
        event_kinds(&s, id).await,
        ["request", "user_fetch", "invoice", "status_change"]
    );
    assert_eq!(sandbox_stats(&s).await["invoices_by_factor"][id], 1);

    // Background work does not by default (runner::follow_up_inside says
    // why): a /v1 create nobody waits on gets its invoice as a job of its own.
    let id = create_v1(&s).await;
    wait_status(&s, &id, "processing").await;
    assert_fetch_and_invoice_succeeded_once(&s, &id).await;
    let m = metrics_text(&s).await;
    assert!(
        m.contains(r#"paygate_jobs_run_inside_total{kind="create_invoice"} 1"#),
        "{m}"
    );
}

/// With `PAYGATE_BACKGROUND_FOLLOW_UP_INSIDE` a payment nobody waits on runs
/// its invoice inside its user fetch too: both jobs recorded by one write,
/// each succeeded at its first attempt, the activity log in the order the
/// work happened, and the payer can pay and the payment completes.
#[tokio::test]
async fn background_work_runs_its_invoice_inside_the_user_fetch_when_set() {
    let s = Server::serve(&[("PAYGATE_BACKGROUND_FOLLOW_UP_INSIDE", "true")]);
    let id = create_v1(&s).await;
    wait_status(&s, &id, "processing").await;
    assert_fetch_and_invoice_succeeded_once(&s, &id).await;
    assert_eq!(
        event_kinds(&s, &id).await,
        ["request", "user_fetch", "invoice", "status_change"]
    );
    assert_eq!(sandbox_stats(&s).await["invoices_by_factor"][&id], 1);
    let m = metrics_text(&s).await;
    assert!(
        m.contains(r#"paygate_jobs_run_inside_total{kind="create_invoice"} 1"#),
        "{m}"
    );
    let v1 = admin_get(&s, &format!("/v1/payments/{id}")).await;
    let url = v1["payment_url"].as_str().expect("payment_url");
    assert_eq!(pay(&s, url, "pay").await.status(), StatusCode::SEE_OTHER);
    wait_status(&s, &id, "completed").await;
}

/// A server whose payer comes from another server's simulator and whose
/// gateway is unreachable, its first retry far away so the ledger shows the
/// first attempt; and that other server, to keep alive beside it.
fn unreachable_gateway(extra: &[(&str, &str)]) -> (Server, Server) {
    let users = Server::serve(&[]);
    let user_url = format!("{}/sandbox/medogram", users.base);
    let mut env = vec![
        ("PAYGATE_USER_URL", user_url.as_str()),
        ("PAYMENT_GATEWAY_URL", "http://127.0.0.1:9/gw"),
        ("PAYGATE_RETRY_BASE_MS", "60000"),
        ("PAYGATE_RETRY_MAX_MS", "120000"),
    ];
    env.extend_from_slice(extra);
    (Server::serve(&env), users)
}

/// Waits for the invoice's retry after a first attempt that failed inside
/// the user fetch, and checks what the ledger and the activity log show:
/// the user fetch succeeded once, the invoice keeps its first attempt's
/// error, the payment is still pending.
async fn assert_invoice_waits_for_its_retry(s: &Server, id: &str) {
    let jobs = eventually("the invoice's retry", Duration::from_secs(10), || async {
        let jobs = jobs_of(s, id).await;
        let invoice = jobs.iter().find(|j| j["kind"] == "create_invoice")?;
        (invoice["status"] == "queued").then_some(jobs)
    })
    .await;
    let fetch = job_of(&jobs, "fetch_user");
    assert_eq!(
        (&fetch["status"], &fetch["attempts"]),
        (&json!("succeeded"), &json!(1))
    );
    let invoice = job_of(&jobs, "create_invoice");
    assert_eq!(invoice["attempts"], 1, "{jobs:?}");
    assert!(
        invoice["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{jobs:?}"
    );
    assert_eq!(status_of(s, id).await["status"], "pending");
    assert_eq!(event_kinds(s, id).await, ["request", "user_fetch"]);
    let m = metrics_text(s).await;
    assert!(
        !m.contains(r#"paygate_jobs_run_inside_total{kind="create_invoice"}"#),
        "a failed invoice is not counted as run inside: {m}"
    );
    // Its step was recorded against the claim the user fetch's finish took
    // for it: the invoice did not run twice.
    assert!(
        m.contains(r#"paygate_jobs_chained_total{kind="create_invoice"} 1"#),
        "{m}"
    );
}

/// With the setting on, a background invoice that fails inside its user fetch
/// is retried as its own job, as a waited one is.
#[tokio::test]
async fn a_background_invoice_that_fails_inside_is_retried_as_its_own_job() {
    let (s, _users) = unreachable_gateway(&[("PAYGATE_BACKGROUND_FOLLOW_UP_INSIDE", "true")]);
    let id = create_v1(&s).await;
    assert_invoice_waits_for_its_retry(&s, &id).await;
}

/// The seed route's payer is fetched beside its create (docs/priority.md,
/// "The payer's fetch starts beside the create"): the user fetch job takes up
/// that fetch, so the main server is asked once per payment, and the job is
/// recorded as before.
#[tokio::test]
async fn the_payers_fetch_starts_beside_the_create_and_is_made_once() {
    let s = Server::serve(&[]);
    for phone in ["09123456781", "09123456782"] {
        let (code, body) = create(&s, json!({"amount": 100000, "user_identifier": phone})).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        let id = body["transaction_id"].as_str().unwrap();
        let job = job_of(&jobs_of(&s, id).await, "fetch_user").clone();
        assert_eq!(
            (&job["status"], &job["attempts"]),
            (&json!("succeeded"), &json!(1)),
            "{job}"
        );
    }
    assert_eq!(sandbox_stats(&s).await["user_fetches_total"], 2);
    let m = metrics_text(&s).await;
    assert!(
        m.contains(r#"paygate_user_fetch_ahead_total{outcome="taken"} 2"#),
        "{m}"
    );
    assert!(
        !m.contains(r#"paygate_user_fetch_ahead_total{outcome="cancelled"}"#),
        "{m}"
    );
}

/// When the invoice that ran inside the user fetch fails, the user fetch is
/// recorded as done and the invoice as a job of its own with its first
/// attempt spent and a retry scheduled by its policy, as if it had run on
/// its own.
#[tokio::test]
async fn an_invoice_that_fails_inside_the_user_fetch_is_retried_as_its_own_job() {
    let (s, _users) = unreachable_gateway(&[("PAYGATE_SEED_WAIT_MS", "300")]);
    let (code, body) = create(
        &s,
        json!({"amount": 100000, "user_identifier": "09123456789"}),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_invoice_waits_for_its_retry(&s, body["transaction_id"].as_str().unwrap()).await;
}
