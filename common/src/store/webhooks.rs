//! The notification tables: endpoints, messages (one event for one endpoint)
//! and delivery attempts. Their writes are their own: a message is fanned out
//! by the `notify` job after the status change committed with that job (the
//! outbox), and every step here is idempotent so a repeated job repeats nothing.

use super::{now_ms, Lane, Store, StoreError, StoreResult};
use crate::domain::{EventType, PaymentId};
use crate::webhooks::{ConfigEndpoint, Secret, CONFIG_ENDPOINT_ID};
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    /// Empty: every event.
    pub event_types: Vec<EventType>,
    pub secret: Secret,
    /// A rotated-out secret that still signs until `previous_secret_until`.
    pub previous_secret: Option<Secret>,
    pub previous_secret_until_ms: Option<i64>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub last_success_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl WebhookEndpoint {
    pub fn wants(&self, event: EventType) -> bool {
        self.event_types.is_empty() || self.event_types.contains(&event)
    }
    /// The secrets that sign a delivery at `now_ms`: the current one first.
    pub fn signing_secrets(&self, now_ms: i64) -> Vec<&Secret> {
        let mut out = vec![&self.secret];
        if let (Some(old), Some(until)) = (&self.previous_secret, self.previous_secret_until_ms) {
            if now_ms < until {
                out.push(old);
            }
        }
        out
    }
    pub fn is_config(&self) -> bool {
        self.id == CONFIG_ENDPOINT_ID
    }
}

/// What an admin may change on an endpoint; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<EventType>>,
    /// `Some(true)` re-enables a disabled endpoint; `Some(false)` pauses it.
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Pending,
    Delivered,
    Failed,
}

impl MessageStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Delivered => "delivered",
            MessageStatus::Failed => "failed",
        }
    }
    fn parse(s: &str) -> StoreResult<Self> {
        match s {
            "pending" => Ok(MessageStatus::Pending),
            "delivered" => Ok(MessageStatus::Delivered),
            "failed" => Ok(MessageStatus::Failed),
            o => Err(StoreError::Corrupt(format!("webhook message status {o:?}"))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct WebhookMessage {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub payment_id: Option<String>,
    pub body: String,
    pub status: MessageStatus,
    pub attempts: i64,
    pub round_attempts: i64,
    pub created_at_ms: i64,
}

/// One delivery attempt, as recorded and as the attempts API lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WebhookAttempt {
    pub message_id: String,
    pub attempt: i64,
    /// delivered, failed, exhausted, gone, error.
    pub outcome: String,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub response: String,
    pub latency_ms: i64,
    pub created_at_ms: i64,
}

/// How an attempt leaves its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptEffect {
    Delivered,
    /// Retry at this time (the next step of the schedule).
    RetryAt(i64),
    /// The schedule is spent, or the endpoint is gone or disabled.
    Failed,
}

fn secret(text: &str) -> StoreResult<Secret> {
    Secret::parse(text).map_err(|e| StoreError::Corrupt(format!("webhook secret: {e}")))
}

fn event_types_json(types: &[EventType]) -> String {
    serde_json::to_string(&types.iter().map(|t| t.as_str()).collect::<Vec<_>>())
        .unwrap_or_else(|_| "[]".into())
}

fn endpoint(row: &AnyRow) -> StoreResult<WebhookEndpoint> {
    let types: String = row.try_get("event_types")?;
    let names: Vec<String> = serde_json::from_str(&types)
        .map_err(|e| StoreError::Corrupt(format!("webhook event types: {e}")))?;
    let event_types = names
        .iter()
        .map(|n| {
            EventType::parse(n)
                .ok_or_else(|| StoreError::Corrupt(format!("webhook event type {n:?}")))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(WebhookEndpoint {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        description: row.try_get("description")?,
        event_types,
        secret: secret(&row.try_get::<String, _>("secret")?)?,
        previous_secret: row
            .try_get::<Option<String>, _>("previous_secret")?
            .as_deref()
            .map(secret)
            .transpose()?,
        previous_secret_until_ms: row.try_get("previous_secret_until")?,
        enabled: row.try_get::<String, _>("status")? == "enabled",
        disabled_reason: row.try_get("disabled_reason")?,
        last_success_at_ms: row.try_get("last_success_at")?,
        created_at_ms: row.try_get("created_at")?,
        updated_at_ms: row.try_get("updated_at")?,
    })
}

fn message(row: &AnyRow) -> StoreResult<WebhookMessage> {
    Ok(WebhookMessage {
        id: row.try_get("id")?,
        endpoint_id: row.try_get("endpoint_id")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        payment_id: row.try_get("payment_id")?,
        body: row.try_get("body")?,
        status: MessageStatus::parse(&row.try_get::<String, _>("status")?)?,
        attempts: row.try_get("attempts")?,
        round_attempts: row.try_get("round_attempts")?,
        created_at_ms: row.try_get("created_at")?,
    })
}

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, secret, previous_secret, \
    previous_secret_until, status, disabled_reason, last_success_at, created_at, updated_at";
const MESSAGE_COLUMNS: &str = "id, endpoint_id, event_id, event_type, payment_id, body, status, \
    attempts, round_attempts, created_at";

impl Store {
    pub async fn create_webhook_endpoint(
        &self,
        url: &str,
        description: &str,
        event_types: &[EventType],
    ) -> StoreResult<WebhookEndpoint> {
        let id = format!("ep_{}", Uuid::now_v7().simple());
        let now = now_ms();
        sqlx::query(
            "INSERT INTO webhook_endpoints (id, url, description, event_types, secret, status, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'enabled', $6, $6)",
        )
        .bind(&id)
        .bind(url)
        .bind(description)
        .bind(event_types_json(event_types))
        .bind(Secret::generate().expose())
        .bind(now)
        .execute(&mut *self.writer(Lane::Ack).await?)
        .await?;
        self.webhook_endpoint(&id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Makes the `PAYGATE_WEBHOOK_URL` endpoint match the environment: created
    /// or updated (and enabled) when set, disabled when unset.
    pub async fn sync_config_webhook_endpoint(
        &self,
        config: Option<&ConfigEndpoint>,
    ) -> StoreResult<()> {
        let now = now_ms();
        let mut writer = self.writer(Lane::Background).await?;
        match config {
            Some(c) => {
                sqlx::query(
                    "INSERT INTO webhook_endpoints (id, url, description, event_types, secret, \
                     status, created_at, updated_at) \
                     VALUES ($1, $2, 'PAYGATE_WEBHOOK_URL', '[]', $3, 'enabled', $4, $4) \
                     ON CONFLICT (id) DO UPDATE SET url = $2, secret = $3, status = 'enabled', \
                     disabled_reason = NULL, updated_at = $4",
                )
                .bind(CONFIG_ENDPOINT_ID)
                .bind(&c.url)
                .bind(c.secret.expose())
                .bind(now)
                .execute(&mut *writer)
                .await?;
            }
            None => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET status = 'disabled', \
                     disabled_reason = 'PAYGATE_WEBHOOK_URL is unset', updated_at = $2 \
                     WHERE id = $1 AND status = 'enabled'",
                )
                .bind(CONFIG_ENDPOINT_ID)
                .bind(now)
                .execute(&mut *writer)
                .await?;
            }
        }
        Ok(())
    }

    pub async fn webhook_endpoint(&self, id: &str) -> StoreResult<Option<WebhookEndpoint>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(endpoint).transpose()
    }

    pub async fn webhook_endpoints(&self) -> StoreResult<Vec<WebhookEndpoint>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints ORDER BY created_at, id"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(endpoint).collect()
    }

    /// Applies `patch`; `None` when the endpoint does not exist.
    pub async fn update_webhook_endpoint(
        &self,
        id: &str,
        patch: &EndpointPatch,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        let status = patch
            .enabled
            .map(|e| if e { "enabled" } else { "disabled" });
        let r = sqlx::query(
            "UPDATE webhook_endpoints SET url = COALESCE($2, url), \
             description = COALESCE($3, description), event_types = COALESCE($4, event_types), \
             status = COALESCE($5, status), \
             disabled_reason = CASE WHEN $5 IS NULL THEN disabled_reason \
                WHEN $5 = 'enabled' THEN NULL ELSE 'disabled by an operator' END, \
             updated_at = $6 WHERE id = $1",
        )
        .bind(id)
        .bind(patch.url.clone())
        .bind(patch.description.clone())
        .bind(patch.event_types.as_deref().map(event_types_json))
        .bind(status.map(str::to_string))
        .bind(now_ms())
        .execute(&mut *self.writer(Lane::Ack).await?)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        self.webhook_endpoint(id).await
    }

    /// Deletes an endpoint with its messages and attempts; false if absent.
    pub async fn delete_webhook_endpoint(&self, id: &str) -> StoreResult<bool> {
        let mut writer = self.writer(Lane::Ack).await?;
        let mut tx = sqlx::Connection::begin(&mut *writer).await?;
        // Children first: SQLite enforces foreign keys but the cascade is
        // spelled out so both databases do the same whatever their settings.
        sqlx::query("DELETE FROM webhook_attempts WHERE endpoint_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM webhook_messages WHERE endpoint_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// A new secret; the old one keeps signing until `grace_until_ms`.
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
        grace_until_ms: i64,
    ) -> StoreResult<Option<WebhookEndpoint>> {
        let r = sqlx::query(
            "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = $2, \
             secret = $3, updated_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(grace_until_ms)
        .bind(Secret::generate().expose())
        .bind(now_ms())
        .execute(&mut *self.writer(Lane::Ack).await?)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(None);
        }
        self.webhook_endpoint(id).await
    }

    /// Stops deliveries to an endpoint; true when this call disabled it.
    pub async fn disable_webhook_endpoint(&self, id: &str, reason: &str) -> StoreResult<bool> {
        let r = sqlx::query(
            "UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = $2, \
             updated_at = $3 WHERE id = $1 AND status = 'enabled'",
        )
        .bind(id)
        .bind(reason)
        .bind(now_ms())
        .execute(&mut *self.writer(Lane::Background).await?)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Writes one message per endpoint for an event (a repeat writes none)
    /// and returns the ids of every pending message of the event.
    pub async fn fan_out_webhook_event(
        &self,
        event_id: &str,
        event_type: EventType,
        payment_id: Option<PaymentId>,
        body: &str,
        endpoint_ids: &[String],
    ) -> StoreResult<Vec<String>> {
        let now = now_ms();
        {
            let mut writer = self.writer(Lane::Background).await?;
            let mut tx = sqlx::Connection::begin(&mut *writer).await?;
            for endpoint_id in endpoint_ids {
                sqlx::query(
                    "INSERT INTO webhook_messages (id, endpoint_id, event_id, event_type, \
                     payment_id, body, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7) \
                     ON CONFLICT (event_id, endpoint_id) DO NOTHING",
                )
                .bind(format!("msg_{}", Uuid::now_v7().simple()))
                .bind(endpoint_id)
                .bind(event_id)
                .bind(event_type.as_str())
                .bind(payment_id.map(|p| p.to_string()))
                .bind(body)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
        let rows = sqlx::query(
            "SELECT id FROM webhook_messages WHERE event_id = $1 AND status = 'pending' \
             ORDER BY id",
        )
        .bind(event_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("id").map_err(StoreError::from))
            .collect()
    }

    pub async fn webhook_message(&self, id: &str) -> StoreResult<Option<WebhookMessage>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM webhook_messages WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(message).transpose()
    }

    /// Records an attempt and moves its message, only if the message is still
    /// at `msg.attempts` (a second runner of the same delivery records
    /// nothing: false). A delivery also marks the endpoint's last success.
    pub async fn record_webhook_attempt(
        &self,
        msg: &WebhookMessage,
        attempt: &WebhookAttempt,
        effect: &AttemptEffect,
    ) -> StoreResult<bool> {
        let now = now_ms();
        let (status, next_at, delivered_at) = match effect {
            AttemptEffect::Delivered => ("delivered", None, Some(now)),
            AttemptEffect::RetryAt(at) => ("pending", Some(*at), None),
            AttemptEffect::Failed => ("failed", None, None),
        };
        let mut writer = self.writer(Lane::Background).await?;
        let mut tx = sqlx::Connection::begin(&mut *writer).await?;
        let moved = sqlx::query(
            "UPDATE webhook_messages SET status = $2, attempts = attempts + 1, \
             round_attempts = round_attempts + 1, next_attempt_at = $3, last_error = $4, \
             delivered_at = COALESCE($5, delivered_at), updated_at = $6 \
             WHERE id = $1 AND attempts = $7 AND status = 'pending'",
        )
        .bind(&msg.id)
        .bind(status)
        .bind(next_at)
        .bind(attempt.error.clone())
        .bind(delivered_at)
        .bind(now)
        .bind(msg.attempts)
        .execute(&mut *tx)
        .await?;
        if moved.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (message_id, endpoint_id, attempt, outcome, \
             status_code, error, response, latency_ms, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&msg.id)
        .bind(&msg.endpoint_id)
        .bind(attempt.attempt)
        .bind(&attempt.outcome)
        .bind(attempt.status_code)
        .bind(attempt.error.clone())
        .bind(&attempt.response)
        .bind(attempt.latency_ms)
        .bind(attempt.created_at_ms)
        .execute(&mut *tx)
        .await?;
        if *effect == AttemptEffect::Delivered {
            sqlx::query("UPDATE webhook_endpoints SET last_success_at = $2 WHERE id = $1")
                .bind(&msg.endpoint_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Ends a pending message without an attempt (its endpoint was disabled).
    pub async fn fail_webhook_message(&self, id: &str, reason: &str) -> StoreResult<()> {
        sqlx::query(
            "UPDATE webhook_messages SET status = 'failed', last_error = $2, updated_at = $3 \
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(reason)
        .bind(now_ms())
        .execute(&mut *self.writer(Lane::Background).await?)
        .await?;
        Ok(())
    }

    /// The most recent attempts of an endpoint, newest first.
    pub async fn webhook_attempts(
        &self,
        endpoint_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<WebhookAttempt>> {
        let rows = sqlx::query(
            "SELECT message_id, attempt, outcome, status_code, error, response, latency_ms, \
             created_at FROM webhook_attempts WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(endpoint_id)
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WebhookAttempt {
                    message_id: r.try_get("message_id")?,
                    attempt: r.try_get("attempt")?,
                    outcome: r.try_get("outcome")?,
                    status_code: r.try_get("status_code")?,
                    error: r.try_get("error")?,
                    response: r.try_get("response")?,
                    latency_ms: r.try_get("latency_ms")?,
                    created_at_ms: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Puts failed messages of an endpoint back to pending with a fresh round
    /// of the schedule: one (`message_id`), or every one created since
    /// `since_ms`. Returns the messages put back with their attempt counts
    /// (the caller enqueues one delivery job for each).
    pub async fn redrive_webhook_messages(
        &self,
        endpoint_id: &str,
        message_id: Option<&str>,
        since_ms: Option<i64>,
    ) -> StoreResult<Vec<(String, i64)>> {
        let query = sqlx::query(
            "UPDATE webhook_messages SET status = 'pending', round_attempts = 0, \
             next_attempt_at = NULL, updated_at = $4 \
             WHERE endpoint_id = $1 AND status = 'failed' \
             AND ($2 IS NULL OR id = $2) AND ($3 IS NULL OR created_at >= $3) \
             RETURNING id, attempts",
        )
        .bind(endpoint_id)
        .bind(message_id.map(str::to_string))
        .bind(since_ms)
        .bind(now_ms());
        let rows = super::written::written_rows(query, &mut *self.writer(Lane::Ack).await?).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("attempts")?)))
            .collect()
    }
}
