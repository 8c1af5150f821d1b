//! Callbacks and webhooks, stored verbatim before anything acts on them, so a
//! gateway's message is never lost even if every worker is down.

use super::jobs::{insert_job, NewJob};
use super::payments::insert_event;
use super::{now_ms, Dialect, Lane, Store, StoreResult};
use crate::domain::{JobMessage, NewEvent, PaymentId, Provider};
use sqlx::any::{Any, AnyArguments};
use sqlx::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewInbound {
    pub provider: Provider,
    /// Unique per gateway event (e.g. `trans_id:id_get`); a repeat is a duplicate.
    pub dedupe_key: String,
    pub payment_id: Option<PaymentId>,
    pub method: String,
    pub query: String,
    /// JSON object of the headers worth keeping (never Authorization or cookies).
    pub headers: serde_json::Value,
    pub body: String,
    /// What we answered: accepted, unknown, refused:<reason>, ...
    pub outcome: String,
}

#[derive(Debug)]
pub enum InboundOutcome {
    /// Stored for the first time, with its follow-up work; dispatch these.
    Recorded(Vec<JobMessage>),
    /// The same event was stored before; nothing changed.
    Duplicate,
}

/// Inserts one message ($1…$10, bound by [`bind_inbound`]); a repeat of its
/// dedupe key inserts nothing.
macro_rules! insert_inbound_sql {
    () => {
        "INSERT INTO inbound_messages (id, provider, dedupe_key, payment_id, method, query, \
         headers, body, outcome, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (provider, dedupe_key) DO NOTHING"
    };
}

fn bind_inbound<'q>(
    q: sqlx::query::Query<'q, Any, AnyArguments>,
    msg: &'q NewInbound,
    now: i64,
) -> sqlx::query::Query<'q, Any, AnyArguments> {
    q.bind(Uuid::now_v7().to_string())
        .bind(msg.provider.as_str())
        .bind(&msg.dedupe_key)
        .bind(msg.payment_id.map(|p| p.to_string()))
        .bind(&msg.method)
        .bind(&msg.query)
        .bind(msg.headers.to_string())
        .bind(&msg.body)
        .bind(&msg.outcome)
        .bind(now)
}

impl Store {
    /// Stores the message and, with it, the events and jobs it leads to: all
    /// of it or none. A duplicate changes nothing.
    pub async fn record_inbound(
        &self,
        msg: &NewInbound,
        events: &[NewEvent],
        jobs: &[NewJob],
    ) -> StoreResult<InboundOutcome> {
        let now = now_ms();
        match self.dialect() {
            Dialect::Postgres => self.record_inbound_pg(msg, events, jobs, now).await,
            Dialect::Sqlite => self.record_inbound_tx(msg, events, jobs, now).await,
        }
    }

    /// SQLite: one transaction.
    async fn record_inbound_tx(
        &self,
        msg: &NewInbound,
        events: &[NewEvent],
        jobs: &[NewJob],
        now: i64,
    ) -> StoreResult<InboundOutcome> {
        let writer = self.writer(Lane::Ack).await;
        let mut tx = writer.begin().await?;
        let inserted = bind_inbound(sqlx::query(insert_inbound_sql!()), msg, now)
            .execute(&mut *tx)
            .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(InboundOutcome::Duplicate);
        }
        for e in events {
            insert_event(&mut tx, e, now).await?;
        }
        let mut messages = Vec::new();
        for j in jobs {
            if let Some(m) = insert_job(&mut tx, j, now).await? {
                messages.push(m);
            }
        }
        tx.commit().await?;
        Ok(InboundOutcome::Recorded(messages))
    }

    /// PostgreSQL: one statement; the events and jobs are inserted only if the
    /// message was (`RETURNING` of `m` is the only thing the other parts can
    /// see of it).
    async fn record_inbound_pg(
        &self,
        msg: &NewInbound,
        events: &[NewEvent],
        jobs: &[NewJob],
        now: i64,
    ) -> StoreResult<InboundOutcome> {
        use super::json_rows::{due_messages_of, insert_events_from_json, insert_jobs_from_json};
        let sql = concat!(
            "WITH m AS (",
            insert_inbound_sql!(),
            " RETURNING id), ev AS (",
            insert_events_from_json!("$11", "$10", "EXISTS (SELECT 1 FROM m)"),
            "), nj AS (",
            insert_jobs_from_json!("$12", "$10", "EXISTS (SELECT 1 FROM m)"),
            ") SELECT (SELECT COUNT(*) FROM m) AS recorded, ",
            due_messages_of!("nj"),
            " AS messages"
        );
        let row = bind_inbound(sqlx::query(sql), msg, now)
            .bind(super::json_rows::events(events))
            .bind(super::json_rows::jobs(jobs, now))
            .fetch_one(&*self.writer(Lane::Ack).await)
            .await?;
        if row.try_get::<i64, _>("recorded")? == 0 {
            return Ok(InboundOutcome::Duplicate);
        }
        Ok(InboundOutcome::Recorded(super::json_rows::messages(
            &row.try_get::<String, _>("messages")?,
        )?))
    }

    /// The recorded outcome of an earlier message with this dedupe key.
    pub async fn inbound_outcome(
        &self,
        provider: Provider,
        dedupe_key: &str,
    ) -> StoreResult<Option<String>> {
        let row = sqlx::query(
            "SELECT outcome FROM inbound_messages WHERE provider = $1 AND dedupe_key = $2",
        )
        .bind(provider.as_str())
        .bind(dedupe_key)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(|r| r.try_get("outcome")).transpose()?)
    }

    /// How many messages were stored for a provider (tests, operators).
    pub async fn inbound_count(
        &self,
        provider: Provider,
        outcome: Option<&str>,
    ) -> StoreResult<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM inbound_messages WHERE provider = $1 \
             AND ($2 IS NULL OR outcome = $2)",
        )
        .bind(provider.as_str())
        .bind(outcome.map(str::to_string))
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("n")?)
    }
}
