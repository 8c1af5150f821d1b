//! Callbacks and webhooks, stored verbatim before anything acts on them, so a
//! gateway's message is never lost even if every worker is down.

use super::changeset::{Changeset, Committed};
use super::{Lane, Store, StoreResult};
use crate::domain::{JobMessage, NewEvent, NewJob, PaymentId, Provider};
use sqlx::Row;

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

impl Store {
    /// Stores the message and, with it, the events and jobs it leads to: all
    /// of it or none. A duplicate changes nothing.
    pub async fn record_inbound(
        &self,
        msg: &NewInbound,
        events: &[NewEvent],
        jobs: &[NewJob],
    ) -> StoreResult<InboundOutcome> {
        let cs = Changeset::from_inbound(msg.clone())
            .events(events.iter().cloned())
            .jobs(jobs.iter().cloned());
        Ok(match self.commit_in(&cs, Lane::Ack).await? {
            Committed::Applied(applied) => InboundOutcome::Recorded(applied.messages),
            Committed::Duplicate => InboundOutcome::Duplicate,
        })
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
