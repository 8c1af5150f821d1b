//! Finding payments that waited for their payer past their time to live.
//! The expiry sweep (worker/src/expiry.rs) queues one `expire_payment` job
//! for each; the job decides.

use super::{Store, StoreError, StoreResult};
use crate::domain::{PaymentId, Provider};
use sqlx::Row;

impl Store {
    /// `provider` payments still `pending` or `processing` that were created
    /// before `created_before_ms` and have no expiry job yet, oldest first.
    pub async fn expiry_candidates(
        &self,
        provider: Provider,
        created_before_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<PaymentId>> {
        let rows = sqlx::query(
            "SELECT p.id FROM payments p WHERE p.status IN ('pending', 'processing') \
             AND p.created_at < $1 AND p.provider = $2 AND NOT EXISTS (SELECT 1 FROM jobs j \
               WHERE j.payment_id = p.id AND j.kind = 'expire_payment') \
             ORDER BY p.created_at LIMIT $3",
        )
        .bind(created_before_ms)
        .bind(provider.as_str())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get("id")?;
                PaymentId::parse(&id)
                    .ok_or_else(|| StoreError::Corrupt(format!("payment id {id:?}")))
            })
            .collect()
    }
}
