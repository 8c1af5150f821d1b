//! The notification tables (`store::webhooks`) against both databases:
//! endpoints, idempotent fan-out, fenced attempt records, redrive, the
//! configured endpoint. PostgreSQL comes from PAYGATE_TEST_POSTGRES_URL
//! (default postgres://postgres@127.0.0.1:5432/postgres), as in store_contract.rs.

use paygate_common::domain::EventType;
use paygate_common::store::{
    AttemptEffect, EndpointPatch, MessageStatus, Store, StoreOptions, WebhookAttempt,
};
use paygate_common::webhooks::{ConfigEndpoint, Secret, CONFIG_ENDPOINT_ID};
use sqlx::Connection;

async fn sqlite() -> (Store, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "paygate-webhooks-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("paygate.db").display());
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (store, dir)
}

/// A fresh PostgreSQL database; returns the store, the admin connection and its name.
async fn postgres() -> (Store, sqlx::PgConnection, String) {
    let base = std::env::var("PAYGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required: cannot connect to {base}: {e}"));
    let name = format!("paygate_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(&format!("/{name}"));
    let store = Store::connect(url.as_str(), &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (store, admin, name)
}

fn attempt(msg_id: &str, n: i64, outcome: &str, code: Option<i64>) -> WebhookAttempt {
    WebhookAttempt {
        message_id: msg_id.to_string(),
        attempt: n,
        outcome: outcome.to_string(),
        status_code: code,
        error: code.filter(|c| *c >= 300).map(|c| format!("HTTP {c}")),
        response: "ok".into(),
        latency_ms: 12,
        created_at_ms: chrono::Utc::now().timestamp_millis(),
    }
}

async fn contract(store: &Store) {
    // Endpoints: created with a secret, filtered, patched, rotated.
    let a = store
        .create_webhook_endpoint("https://a.example/h", "a", &[EventType::PaymentCompleted])
        .await
        .unwrap();
    assert!(a.enabled && a.secret.expose().starts_with("whsec_"));
    assert!(a.wants(EventType::PaymentCompleted) && !a.wants(EventType::OrderPaid));
    let b = store
        .create_webhook_endpoint("https://b.example/h", "", &[])
        .await
        .unwrap();
    assert!(b.wants(EventType::OrderPaid));
    assert_eq!(store.webhook_endpoints().await.unwrap().len(), 2);
    let patched = store
        .update_webhook_endpoint(
            &a.id,
            &EndpointPatch {
                description: Some("shop".into()),
                event_types: Some(vec![]),
                ..EndpointPatch::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (patched.description.as_str(), patched.url.as_str()),
        ("shop", "https://a.example/h")
    );
    assert!(patched.event_types.is_empty());
    assert!(store
        .update_webhook_endpoint("ep_none", &EndpointPatch::default())
        .await
        .unwrap()
        .is_none());
    let now = chrono::Utc::now().timestamp_millis();
    let rotated = store
        .rotate_webhook_secret(&a.id, now + 60_000)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(rotated.secret, a.secret);
    assert_eq!(rotated.previous_secret.as_ref(), Some(&a.secret));
    assert_eq!(rotated.signing_secrets(now).len(), 2);
    assert_eq!(rotated.signing_secrets(now + 60_001).len(), 1);

    // Fan-out is once per event and endpoint.
    let ids = vec![a.id.clone(), b.id.clone()];
    let first = store
        .fan_out_webhook_event("evt-1", EventType::PaymentCompleted, None, "{}", &ids)
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let again = store
        .fan_out_webhook_event(
            "evt-1",
            EventType::PaymentCompleted,
            None,
            "{\"x\":1}",
            &ids,
        )
        .await
        .unwrap();
    assert_eq!(first, again);
    let msg = store.webhook_message(&first[0]).await.unwrap().unwrap();
    assert_eq!(
        (msg.body.as_str(), msg.attempts, msg.status.clone()),
        ("{}", 0, MessageStatus::Pending)
    );

    // Attempts are fenced on the message's count; a delivery marks the endpoint.
    let retry_at = AttemptEffect::RetryAt(now + 5000);
    assert!(store
        .record_webhook_attempt(&msg, &attempt(&msg.id, 1, "failed", Some(503)), &retry_at)
        .await
        .unwrap());
    assert!(!store
        .record_webhook_attempt(&msg, &attempt(&msg.id, 1, "failed", Some(503)), &retry_at)
        .await
        .unwrap());
    let msg = store.webhook_message(&msg.id).await.unwrap().unwrap();
    assert_eq!((msg.attempts, msg.round_attempts), (1, 1));
    assert!(store
        .record_webhook_attempt(
            &msg,
            &attempt(&msg.id, 2, "exhausted", None),
            &AttemptEffect::Failed
        )
        .await
        .unwrap());
    let endpoint_id = msg.endpoint_id.clone();
    let listed = store.webhook_attempts(&endpoint_id, 10).await.unwrap();
    assert_eq!(
        listed.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert_eq!(listed[1].status_code, Some(503));

    // Redrive: only failed messages, a fresh round.
    assert!(store
        .redrive_webhook_messages(&endpoint_id, None, Some(now + 3_600_000))
        .await
        .unwrap()
        .is_empty());
    let redriven = store
        .redrive_webhook_messages(&endpoint_id, Some(&msg.id), None)
        .await
        .unwrap();
    assert_eq!(redriven, vec![(msg.id.clone(), 2)]);
    assert!(store
        .redrive_webhook_messages(&endpoint_id, Some(&msg.id), None)
        .await
        .unwrap()
        .is_empty());
    let msg = store.webhook_message(&msg.id).await.unwrap().unwrap();
    assert_eq!(
        (msg.status.clone(), msg.round_attempts),
        (MessageStatus::Pending, 0)
    );
    assert!(store
        .record_webhook_attempt(
            &msg,
            &attempt(&msg.id, 3, "delivered", Some(200)),
            &AttemptEffect::Delivered
        )
        .await
        .unwrap());
    let ep = store.webhook_endpoint(&endpoint_id).await.unwrap().unwrap();
    assert!(ep.last_success_at_ms.is_some());

    // Disable once; a pending message of a disabled endpoint can be failed.
    assert!(store.disable_webhook_endpoint(&b.id, "gone").await.unwrap());
    assert!(!store.disable_webhook_endpoint(&b.id, "gone").await.unwrap());
    let other = if first[0] == msg.id {
        &first[1]
    } else {
        &first[0]
    };
    store
        .fail_webhook_message(other, "the endpoint is disabled")
        .await
        .unwrap();
    assert_eq!(
        store.webhook_message(other).await.unwrap().unwrap().status,
        MessageStatus::Failed
    );

    // Delete takes messages and attempts along.
    assert!(store.delete_webhook_endpoint(&endpoint_id).await.unwrap());
    assert!(!store.delete_webhook_endpoint(&endpoint_id).await.unwrap());
    assert!(store.webhook_message(&msg.id).await.unwrap().is_none());
    assert!(store
        .webhook_attempts(&endpoint_id, 10)
        .await
        .unwrap()
        .is_empty());

    // The configured endpoint follows the environment.
    let secret = Secret::generate();
    let cfg = ConfigEndpoint {
        url: "https://c.example/h".into(),
        secret: secret.clone(),
    };
    store
        .sync_config_webhook_endpoint(Some(&cfg))
        .await
        .unwrap();
    store
        .sync_config_webhook_endpoint(Some(&cfg))
        .await
        .unwrap();
    let c = store
        .webhook_endpoint(CONFIG_ENDPOINT_ID)
        .await
        .unwrap()
        .unwrap();
    assert!(c.enabled && c.is_config() && c.secret == secret);
    store.sync_config_webhook_endpoint(None).await.unwrap();
    assert!(
        !store
            .webhook_endpoint(CONFIG_ENDPOINT_ID)
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
}

#[tokio::test]
async fn sqlite_webhook_tables() {
    let (store, dir) = sqlite().await;
    contract(&store).await;
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgres_webhook_tables() {
    let (store, mut admin, name) = postgres().await;
    contract(&store).await;
    store.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
}
