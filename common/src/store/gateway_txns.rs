//! Reading gateways' own transactions (Payme, Click). They are written only
//! as part of a [`super::Changeset`], with the payment change they cause.

use super::rows::time;
use super::{Store, StoreError, StoreResult};
use crate::domain::{PaymentId, Provider};
use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;

/// A gateway transaction as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayTxn {
    /// Our id (what we answer the gateway with).
    pub id: i64,
    pub provider: Provider,
    pub external_id: String,
    pub payment_id: PaymentId,
    pub state: String,
    pub amount_minor: i64,
    pub external_time_ms: Option<i64>,
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic lock: an update names the version it read.
    pub version: i64,
}

macro_rules! txn_columns {
    () => {
        "id, provider, external_id, payment_id, state, amount_minor, external_time, data, \
         created_at, updated_at, version"
    };
}

fn txn(row: &AnyRow) -> StoreResult<GatewayTxn> {
    let corrupt = |what: &str, v: &str| StoreError::Corrupt(format!("gateway txn {what}: {v:?}"));
    let provider: String = row.try_get("provider")?;
    let payment_id: String = row.try_get("payment_id")?;
    let data: String = row.try_get("data")?;
    Ok(GatewayTxn {
        id: row.try_get("id")?,
        provider: Provider::parse(&provider).ok_or_else(|| corrupt("provider", &provider))?,
        external_id: row.try_get("external_id")?,
        payment_id: PaymentId::parse(&payment_id)
            .ok_or_else(|| corrupt("payment id", &payment_id))?,
        state: row.try_get("state")?,
        amount_minor: row.try_get("amount_minor")?,
        external_time_ms: row.try_get("external_time")?,
        data: serde_json::from_str(&data).map_err(|_| corrupt("data", &data))?,
        created_at: time(row.try_get("created_at")?)?,
        updated_at: time(row.try_get("updated_at")?)?,
        version: row.try_get("version")?,
    })
}

impl Store {
    /// The transaction the gateway knows by `external_id`.
    pub async fn gateway_txn(
        &self,
        provider: Provider,
        external_id: &str,
    ) -> StoreResult<Option<GatewayTxn>> {
        let sql = concat!(
            "SELECT ",
            txn_columns!(),
            " FROM gateway_transactions WHERE provider = $1 AND external_id = $2"
        );
        let row = sqlx::query(sql)
            .bind(provider.as_str())
            .bind(external_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(txn).transpose()
    }

    /// The transaction with our id `id`.
    pub async fn gateway_txn_by_id(
        &self,
        provider: Provider,
        id: i64,
    ) -> StoreResult<Option<GatewayTxn>> {
        let sql = concat!(
            "SELECT ",
            txn_columns!(),
            " FROM gateway_transactions WHERE provider = $1 AND id = $2"
        );
        let row = sqlx::query(sql)
            .bind(provider.as_str())
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(txn).transpose()
    }

    /// Every transaction of a payment, oldest first.
    pub async fn gateway_txns_of_payment(
        &self,
        payment_id: PaymentId,
    ) -> StoreResult<Vec<GatewayTxn>> {
        let sql = concat!(
            "SELECT ",
            txn_columns!(),
            " FROM gateway_transactions WHERE payment_id = $1 ORDER BY id"
        );
        let rows = sqlx::query(sql)
            .bind(payment_id.to_string())
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(txn).collect()
    }

    /// A provider's transactions whose gateway time is in `[from, to]`
    /// (both inclusive), ascending by that time (Payme's statements).
    pub async fn gateway_txns_between(
        &self,
        provider: Provider,
        from_ms: i64,
        to_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<GatewayTxn>> {
        let sql = concat!(
            "SELECT ",
            txn_columns!(),
            " FROM gateway_transactions WHERE provider = $1 AND external_time >= $2 \
             AND external_time <= $3 ORDER BY external_time, id LIMIT $4"
        );
        let rows = sqlx::query(sql)
            .bind(provider.as_str())
            .bind(from_ms)
            .bind(to_ms)
            .bind(limit)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(txn).collect()
    }
}
