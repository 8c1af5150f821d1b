//! Refunds: reading them, and asking for one (the row, its event and its job
//! in one changeset). Moving a refund happens in its job's changeset
//! ([`Changeset::change_refund`]), with the payment and order it moves.

use super::changeset::{Changeset, Committed};
use super::rows::time;
use super::{Lane, Store, StoreError, StoreResult};
use crate::domain::{JobMessage, NewEvent, NewJob, PaymentId, Refund, RefundStatus};
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

/// A refund to insert (status `requested`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRefund {
    pub id: Uuid,
    pub payment_id: PaymentId,
    pub amount_minor: i64,
    pub reason: Option<String>,
    pub caller: String,
    pub idempotency_key: Option<String>,
}

macro_rules! refund_columns {
    () => {
        "id, payment_id, amount_minor, reason, status, failure_reason, gateway_ref, caller, \
         idempotency_key, created_at, updated_at"
    };
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Corrupt(format!("{what}: {value:?}"))
}

fn refund(row: &AnyRow) -> StoreResult<Refund> {
    let id: String = row.try_get("id")?;
    let payment_id: String = row.try_get("payment_id")?;
    let status: String = row.try_get("status")?;
    Ok(Refund {
        id: Uuid::parse_str(&id).map_err(|_| corrupt("refund id", &id))?,
        payment_id: PaymentId::parse(&payment_id)
            .ok_or_else(|| corrupt("payment id", &payment_id))?,
        amount_minor: row.try_get("amount_minor")?,
        reason: row.try_get("reason")?,
        status: RefundStatus::parse(&status).ok_or_else(|| corrupt("refund status", &status))?,
        failure_reason: row.try_get("failure_reason")?,
        gateway_ref: row.try_get("gateway_ref")?,
        caller: row.try_get("caller")?,
        idempotency_key: row.try_get("idempotency_key")?,
        created_at: time(row.try_get("created_at")?)?,
        updated_at: time(row.try_get("updated_at")?)?,
    })
}

impl Store {
    pub async fn refund(&self, id: Uuid) -> StoreResult<Option<Refund>> {
        let sql = concat!("SELECT ", refund_columns!(), " FROM refunds WHERE id = $1");
        let row = sqlx::query(sql)
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(refund).transpose()
    }

    /// A payment's refunds, oldest first.
    pub async fn refunds_of(&self, payment_id: PaymentId) -> StoreResult<Vec<Refund>> {
        let sql = concat!(
            "SELECT ",
            refund_columns!(),
            " FROM refunds WHERE payment_id = $1 ORDER BY created_at, id"
        );
        let rows = sqlx::query(sql)
            .bind(payment_id.to_string())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(refund).collect()
    }

    /// The refund `caller` asked for on `payment_id` with idempotency key `key`.
    pub async fn refund_by_key(
        &self,
        payment_id: PaymentId,
        caller: &str,
        key: &str,
    ) -> StoreResult<Option<Refund>> {
        let sql = concat!(
            "SELECT ",
            refund_columns!(),
            " FROM refunds WHERE payment_id = $1 AND caller = $2 AND idempotency_key = $3"
        );
        let row = sqlx::query(sql)
            .bind(payment_id.to_string())
            .bind(caller)
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(refund).transpose()
    }

    /// Writes the refund, its event and its job in one changeset and returns
    /// the job messages to dispatch. A taken idempotency key or a second live
    /// refund of the payment is [`StoreError::Taken`].
    pub async fn request_refund(
        &self,
        new: NewRefund,
        event: NewEvent,
        job: NewJob,
    ) -> StoreResult<Vec<JobMessage>> {
        let cs = Changeset::from_api()
            .create_refund(new)
            .event(event)
            .job(job);
        match self.commit_in(&cs, Lane::Ack).await? {
            Committed::Applied(applied) => Ok(applied.messages),
            Committed::Duplicate => Err(StoreError::Corrupt(
                "an API changeset cannot be a duplicate".into(),
            )),
        }
    }
}
