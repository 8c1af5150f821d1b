//! Ledger statistics for the queue gauges, and named leases so that one
//! process (not every pod on every scrape) samples them.

use super::{now_ms, Lane, Store, StoreResult};
use crate::domain::JobKind;
use sqlx::Row;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueStats {
    /// Jobs queued and due, by kind.
    pub ready_by_kind: Vec<(JobKind, i64)>,
    /// Age of the oldest due queued job, in seconds (0 when none).
    pub oldest_ready_age_seconds: f64,
    pub dead: i64,
    /// Queued, due jobs whose message went out longer ago than the redispatch
    /// window without being claimed.
    pub dispatch_overdue: i64,
}

impl Store {
    pub async fn queue_stats(&self, redispatch_after_ms: i64) -> StoreResult<QueueStats> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT kind, COUNT(*) AS n, MIN(run_at) AS oldest FROM jobs \
             WHERE status = 'queued' AND run_at <= $1 GROUP BY kind",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        let mut stats = QueueStats::default();
        let mut oldest = now;
        for r in &rows {
            let kind: String = r.try_get("kind")?;
            if let Some(k) = JobKind::parse(&kind) {
                stats.ready_by_kind.push((k, r.try_get("n")?));
            }
            oldest = oldest.min(r.try_get::<i64, _>("oldest")?);
        }
        stats.oldest_ready_age_seconds = (now - oldest).max(0) as f64 / 1000.0;
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM jobs WHERE status = 'dead') AS dead, \
               (SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND run_at <= $1 \
                  AND dispatched_at IS NOT NULL AND dispatched_at < $2) AS overdue",
        )
        .bind(now)
        .bind(now - redispatch_after_ms)
        .fetch_one(self.pool())
        .await?;
        stats.dead = row.try_get("dead")?;
        stats.dispatch_overdue = row.try_get("overdue")?;
        Ok(stats)
    }

    /// Takes or renews the lease `name` for `holder`; true if `holder` has it now.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> StoreResult<bool> {
        let now = now_ms();
        let result = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = $2, expires_at = $3 \
             WHERE leases.expires_at < $4 OR leases.holder = $2",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&mut *self.writer(Lane::Background).await?)
        .await?;
        Ok(result.rows_affected() == 1)
    }
}
