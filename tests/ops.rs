//! What an operator sees: `/metrics` after a real flow moves exactly as the
//! flow did, labels stay low-cardinality, and every metric the dashboards and
//! alerts use exists in a live scrape (checked by scripts/check-deploy.sh,
//! with promtool where the machine has it).

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::{client, eventually, metrics_text, Server};

fn metric(scrape: &str, series: &str) -> f64 {
    scrape
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{series} not in the scrape"))
}

#[tokio::test]
async fn metrics_count_a_real_flow_exactly() {
    let s = Server::serve(&[
        ("PAYGATE_SANDBOX_MEDOGRAM_AUTOPAY", "true"),
        ("PAYGATE_SANDBOX_ATMOS_AUTOPAY", "true"),
        ("PAYGATE_SAMPLE_INTERVAL_MS", "100"),
    ]);
    let mut ids = Vec::new();
    for i in 0..3 {
        let r: Value = client()
            .post(s.url("/crazyminer/payment/create/"))
            .json(&json!({"amount": 100000, "user_identifier": format!("0912345678{i}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(r["transaction_id"].as_str().unwrap().to_string());
    }
    let mut orders = Vec::new();
    for _ in 0..2 {
        let r: Value = client()
            .post(s.url("/api/orders/create"))
            .json(&json!({"product_name": "Test", "amount": "50.00", "payment_type": "atmos"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        orders.push(r["order_id"].as_i64().unwrap());
    }
    for id in &ids {
        eventually("medogram completed", Duration::from_secs(20), || async {
            let v: Value = client()
                .get(s.url(&format!("/v1/payments/{id}")))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["status"] == "completed").then_some(())
        })
        .await;
    }
    for id in &orders {
        eventually("order paid", Duration::from_secs(20), || async {
            let v: Value = client()
                .get(s.url(&format!("/api/orders/{id}")))
                .bearer_auth(&s.admin_key)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (v["status"] == "paid").then_some(())
        })
        .await;
    }
    // One forged callback: the simulator signs it wrong.
    let r = client().put(s.url("/sandbox/atmos/_config")).json(&json!({"autopay": true, "bad_signature": true, "callback_url": s.url("/atmos/webhook/")})).send().await.unwrap();
    assert!(r.status().is_success());
    let r: Value = client()
        .post(s.url("/api/orders/create"))
        .json(&json!({"product_name": "Test", "amount": "50.00", "payment_type": "atmos"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let forged_order = r["order_id"].as_i64().unwrap();
    eventually("the forged callback", Duration::from_secs(20), || async {
        let m = metrics_text(&s).await;
        (metric(
            &m,
            r#"paygate_webhooks_total{provider="atmos",outcome="bad_signature"}"#,
        ) == 1.0)
            .then_some(())
    })
    .await;
    // Jobs settle a moment after payments do.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let m = metrics_text(&s).await;
    assert_eq!(
        metric(&m, r#"paygate_payments_created_total{provider="medogram"}"#),
        3.0
    );
    assert_eq!(
        metric(&m, r#"paygate_payments_created_total{provider="atmos"}"#),
        3.0
    );
    assert_eq!(
        metric(
            &m,
            r#"paygate_payments_total{provider="medogram",status="completed"}"#
        ),
        3.0
    );
    assert_eq!(
        metric(
            &m,
            r#"paygate_payments_total{provider="atmos",status="completed"}"#
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            r#"paygate_payments_total{provider="medogram",status="failed"}"#
        ),
        0.0
    );
    assert_eq!(
        metric(
            &m,
            r#"paygate_callbacks_total{provider="medogram",outcome="accepted"}"#
        ),
        3.0
    );
    assert_eq!(
        metric(
            &m,
            r#"paygate_webhooks_total{provider="atmos",outcome="accepted"}"#
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            r#"paygate_webhooks_total{provider="atmos",outcome="bad_signature"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            r#"paygate_jobs_total{kind="fetch_user",outcome="succeeded"}"#
        ),
        3.0
    );
    assert_eq!(
        metric(
            &m,
            r#"paygate_jobs_total{kind="create_invoice",outcome="succeeded"}"#
        ),
        6.0
    );
    assert_eq!(
        metric(
            &m,
            r#"paygate_jobs_total{kind="verify_payment",outcome="succeeded"}"#
        ),
        5.0
    );
    assert_eq!(
        metric(
            &m,
            r#"paygate_jobs_total{kind="update_order",outcome="succeeded"}"#
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            r#"paygate_jobs_total{kind="verify_payment",outcome="dead"}"#
        ),
        0.0
    );
    assert_eq!(
        metric(
            &m,
            r#"paygate_http_requests_total{route="/crazyminer/payment/create/",method="POST",status="201"}"#
        ),
        3.0
    );
    assert!(
        metric(
            &m,
            r#"paygate_gateway_calls_total{provider="medogram",operation="create_invoice",outcome="ok"}"#
        ) >= 3.0
    );
    assert!(
        metric(
            &m,
            r#"paygate_gateway_token_refreshes_total{provider="atmos"}"#
        ) >= 1.0
    );
    assert_eq!(metric(&m, "paygate_dead_letters"), 0.0);
    // Labels are templates and kinds: no ids, amounts or personal data.
    for id in &ids {
        assert!(!m.contains(id.as_str()));
    }
    assert!(!m.contains("0912345678"));
    assert!(!m.contains(&format!("/api/orders/{forged_order}")));
    let order: Value = client()
        .get(s.url(&format!("/api/orders/{forged_order}")))
        .bearer_auth(&s.admin_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        order["status"], "pending",
        "a forged callback changes nothing"
    );

    // The deployment files agree with the live scrape.
    let file = s.dir.join("scrape.txt");
    std::fs::write(&file, &m).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/check-deploy.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(&file)
        .env("CHECK_DEPLOY_NO_INSTALL", "1")
        .output()
        .expect("run check-deploy.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "check-deploy.sh failed:\n{text}");
}

#[tokio::test]
async fn request_ids_are_honoured_and_echoed() {
    let s = Server::serve(&[]);
    let r = client()
        .get(s.url("/healthz"))
        .header("x-request-id", "trace-abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-abc-123");
    let r = client().get(s.url("/healthz")).send().await.unwrap();
    assert!(!r.headers()["x-request-id"].is_empty());
    let r = client().get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
