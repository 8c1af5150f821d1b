//! The job ledger: the durable truth about background work. The queue only
//! carries pointers to these rows, so a lost or repeated message is harmless:
//! claiming is a conditional update, and finishing checks the claim (a fencing
//! token) in the same transaction as the state change the job made.

use super::payments::{apply_change, insert_event, is_unique_violation};
use super::rows;
use super::{now_ms, Dialect, Lane, Store, StoreError, StoreResult};
use crate::domain::{
    JobKind, JobMessage, JobStatus, NewEvent, OrderStatus, Payment, PaymentChange, PaymentId,
};
use sqlx::any::{Any, AnyRow};
use sqlx::{Row, Transaction};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub kind: JobKind,
    pub payment_id: Option<PaymentId>,
    pub payload: serde_json::Value,
    /// Jobs with the same key are one job: the second insert is ignored.
    pub dedupe_key: Option<String>,
    pub max_attempts: u32,
    pub run_at_ms: i64,
}

impl NewJob {
    pub fn now(kind: JobKind, payment_id: PaymentId, max_attempts: u32) -> Self {
        NewJob {
            id: Uuid::now_v7(),
            kind,
            payment_id: Some(payment_id),
            payload: serde_json::Value::Null,
            dedupe_key: None,
            max_attempts,
            run_at_ms: now_ms(),
        }
    }
    pub fn payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = payload;
        self
    }
    pub fn dedupe(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }
}

/// A job this worker holds. `attempt` is the fencing token: finishing only
/// succeeds while the ledger still shows this attempt running under our name.
///
/// `locked_by` is set only while a job runs (claiming sets it, every way out of
/// `running` clears it), so `locked_by` + `attempts` identify the claim without
/// a `status = 'running'` term; that term would let the planner walk the
/// (status, run_at) index over every running job instead of the primary key.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: Uuid,
    pub kind: JobKind,
    pub payment_id: Option<PaymentId>,
    /// The payment as it was when the job was claimed; `None` when the job has
    /// no payment or the payment does not exist.
    pub payment: Option<Payment>,
    pub payload: serde_json::Value,
    pub attempt: u32,
    pub max_attempts: u32,
    pub worker: String,
    pub created_at_ms: i64,
}

/// How a claimed job ends this attempt, with the changes it made.
#[derive(Debug, Default)]
pub struct JobFinish {
    pub change: Option<PaymentChange>,
    /// A shop order that moves with this attempt: (order id, new status).
    pub order_status: Option<(i64, OrderStatus)>,
    pub events: Vec<NewEvent>,
    pub next_jobs: Vec<NewJob>,
    pub result: JobResult,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum JobResult {
    #[default]
    Succeeded,
    Retry {
        run_at_ms: i64,
        error: String,
    },
    Failed {
        error: String,
    },
    Dead {
        error: String,
    },
}

/// The ledger columns a [`JobResult`] sets.
struct Outcome {
    status: JobStatus,
    run_at: Option<i64>,
    error: Option<String>,
    finished_at: Option<i64>,
}

impl Outcome {
    fn of(result: &JobResult, now: i64) -> Outcome {
        let (status, run_at, error, finished_at) = match result {
            JobResult::Succeeded => (JobStatus::Succeeded, None, None, Some(now)),
            JobResult::Retry { run_at_ms, error } => (
                JobStatus::Queued,
                Some(*run_at_ms),
                Some(error.clone()),
                None,
            ),
            JobResult::Failed { error } => {
                (JobStatus::Failed, None, Some(error.clone()), Some(now))
            }
            JobResult::Dead { error } => (JobStatus::Dead, None, Some(error.clone()), Some(now)),
        };
        Outcome {
            status,
            run_at,
            error,
            finished_at,
        }
    }
}

/// Binds the fence's seven values in order: the outcome's status, run_at,
/// error and finished_at, then the claim's job id, worker and attempt.
fn bind_fence<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    claim: &'q ClaimedJob,
    outcome: &Outcome,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    q.bind(outcome.status.as_str())
        .bind(outcome.run_at)
        .bind(outcome.error.clone())
        .bind(outcome.finished_at)
        .bind(claim.id.to_string())
        .bind(&claim.worker)
        .bind(i64::from(claim.attempt))
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct JobRecord {
    pub id: Uuid,
    pub kind: JobKind,
    pub payment_id: Option<String>,
    pub status: JobStatus,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at_ms: i64,
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

macro_rules! job_columns {
    () => {
        "id, kind, payment_id, status, attempts, max_attempts, run_at, last_error, created_at, \
         updated_at"
    };
}

fn job_record(row: &AnyRow) -> StoreResult<JobRecord> {
    let id: String = row.try_get("id")?;
    Ok(JobRecord {
        id: Uuid::parse_str(&id).map_err(|_| StoreError::Corrupt(format!("job id {id:?}")))?,
        kind: rows::job_kind(&row.try_get::<String, _>("kind")?)?,
        payment_id: row.try_get("payment_id")?,
        status: rows::job_status(&row.try_get::<String, _>("status")?)?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        run_at_ms: row.try_get("run_at")?,
        last_error: row.try_get("last_error")?,
        created_at_ms: row.try_get("created_at")?,
        updated_at_ms: row.try_get("updated_at")?,
    })
}

fn message(row: &AnyRow) -> StoreResult<JobMessage> {
    job_message(
        &row.try_get::<String, _>("id")?,
        &row.try_get::<String, _>("kind")?,
    )
}

/// The queue message of a job row, from its id and kind columns.
pub(crate) fn job_message(id: &str, kind: &str) -> StoreResult<JobMessage> {
    Ok(JobMessage {
        job_id: Uuid::parse_str(id).map_err(|_| StoreError::Corrupt(format!("job id {id:?}")))?,
        kind: rows::job_kind(kind)?,
    })
}

/// Inserts a job inside the caller's transaction. Returns the message to
/// dispatch, or `None` when a job with the same dedupe key already exists.
/// The row is marked dispatched because the caller pushes it right after
/// commit; if that push is lost, the sweeper notices the stale mark.
pub(crate) async fn insert_job(
    tx: &mut Transaction<'_, Any>,
    job: &NewJob,
    now: i64,
) -> StoreResult<Option<JobMessage>> {
    let due_now = job.run_at_ms <= now;
    let row = sqlx::query(
        "INSERT INTO jobs (id, kind, payment_id, payload, dedupe_key, status, attempts, \
         max_attempts, run_at, dispatched_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $8, $9, $9) \
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, kind",
    )
    .bind(job.id.to_string())
    .bind(job.kind.as_str())
    .bind(job.payment_id.map(|p| p.to_string()))
    .bind(job.payload.to_string())
    .bind(job.dedupe_key.clone())
    .bind(i64::from(job.max_attempts))
    .bind(job.run_at_ms)
    .bind(due_now.then_some(now))
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        Some(row) if due_now => Ok(Some(message(&row)?)),
        _ => Ok(None),
    }
}

impl Store {
    /// Takes a job for one attempt if it is due and nobody holds a live lease.
    /// `None` means there is nothing to do: already finished, not yet due, or
    /// running elsewhere (a duplicate delivery). The claim carries the job's
    /// payment as it was at the claim, read in the same round trip on
    /// PostgreSQL.
    pub async fn claim_job(
        &self,
        job_id: Uuid,
        worker: &str,
        lease_ms: i64,
    ) -> StoreResult<Option<ClaimedJob>> {
        let now = now_ms();
        macro_rules! claim_sql {
            () => {
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = $1, \
                 locked_by = $2, updated_at = $3, dispatched_at = NULL \
                 WHERE id = $4 AND ((status = 'queued' AND run_at <= $3) \
                    OR (status = 'running' AND lease_until < $3)) \
                 RETURNING id AS job_id, kind AS job_kind, payment_id AS job_payment_id, \
                 payload AS job_payload, attempts AS job_attempts, \
                 max_attempts AS job_max_attempts, created_at AS job_created_at"
            };
        }
        let sql = match self.dialect() {
            Dialect::Postgres => concat!(
                "WITH c AS (",
                claim_sql!(),
                ") SELECT c.*, p.* FROM c LEFT JOIN payments p ON p.id = c.job_payment_id"
            ),
            Dialect::Sqlite => claim_sql!(),
        };
        let row = sqlx::query(sql)
            .bind(now + lease_ms)
            .bind(worker)
            .bind(now)
            .bind(job_id.to_string())
            .fetch_optional(&*self.writer(Lane::Background).await)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let payment_id: Option<String> = row.try_get::<Option<String>, _>("job_payment_id")?;
        let payment_id = payment_id
            .map(|p: String| {
                PaymentId::parse(&p)
                    .ok_or_else(|| StoreError::Corrupt(format!("job payment id {p:?}")))
            })
            .transpose()?;
        let payment = match (self.dialect(), payment_id) {
            (_, None) => None,
            (Dialect::Postgres, Some(_)) => match row.try_get::<Option<String>, _>("id")? {
                Some(_) => Some(rows::payment(&row)?),
                None => None,
            },
            (Dialect::Sqlite, Some(id)) => self.payment(id).await?,
        };
        let payload: String = row.try_get("job_payload")?;
        Ok(Some(ClaimedJob {
            id: job_id,
            kind: rows::job_kind(&row.try_get::<String, _>("job_kind")?)?,
            payment_id,
            payment,
            payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
            attempt: row.try_get::<i64, _>("job_attempts")?.max(0) as u32,
            max_attempts: row.try_get::<i64, _>("job_max_attempts")?.max(0) as u32,
            worker: worker.to_string(),
            created_at_ms: row.try_get("job_created_at")?,
        }))
    }

    /// Extends this worker's lease on a running job (a heartbeat while a slow
    /// handler works). False when the claim is no longer ours.
    pub async fn renew_lease(&self, claim: &ClaimedJob, lease_ms: i64) -> StoreResult<bool> {
        let now = now_ms();
        let r = sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 \
             AND locked_by = $3 AND attempts = $4",
        )
        .bind(now + lease_ms)
        .bind(claim.id.to_string())
        .bind(&claim.worker)
        .bind(i64::from(claim.attempt))
        .execute(&*self.writer(Lane::Background).await)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Ends an attempt: applies the payment change, appends events, inserts the
    /// follow-up jobs and records the job's result, all at once, and only if
    /// this worker still holds the claim and the payment is still at the
    /// version the change was built from. Otherwise nothing changes:
    /// [`StoreError::LeaseLost`] or [`StoreError::Conflict`].
    pub async fn finish_job(
        &self,
        claim: &ClaimedJob,
        finish: &JobFinish,
    ) -> StoreResult<Vec<JobMessage>> {
        let now = now_ms();
        let outcome = Outcome::of(&finish.result, now);
        match self.dialect() {
            Dialect::Postgres => self.finish_job_pg(claim, finish, &outcome, now).await,
            Dialect::Sqlite => self.finish_job_tx(claim, finish, &outcome, now).await,
        }
    }

    /// SQLite: one transaction. The fencing check goes first: it is a write,
    /// so SQLite takes its write lock at once, and a lost lease costs nothing
    /// further.
    async fn finish_job_tx(
        &self,
        claim: &ClaimedJob,
        finish: &JobFinish,
        outcome: &Outcome,
        now: i64,
    ) -> StoreResult<Vec<JobMessage>> {
        let writer = self.writer(Lane::Background).await;
        let mut tx = writer.begin().await?;
        let fenced = bind_fence(
            sqlx::query(
                "UPDATE jobs SET status = $1, run_at = COALESCE($2, run_at), \
                 last_error = COALESCE($3, last_error), finished_at = $4, lease_until = NULL, \
                 locked_by = NULL, dispatched_at = NULL, updated_at = $8 \
                 WHERE id = $5 AND locked_by = $6 AND attempts = $7",
            ),
            claim,
            outcome,
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if fenced.rows_affected() != 1 {
            tx.rollback().await?;
            return Err(StoreError::LeaseLost);
        }
        if let Some(change) = &finish.change {
            apply_change(&mut tx, change, now).await?;
        }
        if let Some((order_id, status)) = finish.order_status {
            super::orders::apply_order_status(&mut tx, order_id, status, now).await?;
        }
        for e in &finish.events {
            insert_event(&mut tx, e, now).await?;
        }
        let mut messages = Vec::new();
        for job in &finish.next_jobs {
            if let Some(m) = insert_job(&mut tx, job, now).await? {
                messages.push(m);
            }
        }
        tx.commit().await?;
        Ok(messages)
    }

    /// PostgreSQL: the same in one statement (one round trip instead of a
    /// `BEGIN`, a `COMMIT` and one per row; the worker's share of the database
    /// is mostly per-statement cost, see PERFORMANCE.md).
    ///
    /// All parts of one statement see one snapshot and cannot see each other's
    /// writes, so the conditions are chained through `RETURNING` output:
    /// `held` locks the payment row at the expected version (a concurrent
    /// change that committed first makes it empty: the lock re-checks the
    /// newest row; `NO KEY` is the strength the update takes anyway, so event
    /// inserts for the payment, whose foreign key check takes a key-share
    /// lock, are not blocked by it); `fence` ends the attempt only if the claim is ours and,
    /// when there is a change, `held` found the row; everything else happens
    /// only if `fence` did. So either all of it lands or none of it, as with
    /// the transaction.
    async fn finish_job_pg(
        &self,
        claim: &ClaimedJob,
        finish: &JobFinish,
        outcome: &Outcome,
        now: i64,
    ) -> StoreResult<Vec<JobMessage>> {
        use super::json_rows::{due_messages_of, insert_events_from_json, insert_jobs_from_json};
        use super::payments::{bind_change, payment_change_set};
        // $1–$12 the change and `now` (bind_change), $13 whether there is
        // one, $14–$20 the fence (bind_fence), $21–$22 the order, $23 events,
        // $24 next jobs.
        let sql = concat!(
            "WITH held AS (SELECT id FROM payments WHERE $13 AND id = $10 AND version = $11 \
               AND COALESCE(status, '') = $12 FOR NO KEY UPDATE), \
             fence AS (UPDATE jobs SET status = $14, run_at = COALESCE($15, run_at), \
               last_error = COALESCE($16, last_error), finished_at = $17, lease_until = NULL, \
               locked_by = NULL, dispatched_at = NULL, updated_at = $9 \
               WHERE id = $18 AND locked_by = $19 AND attempts = $20 \
               AND (NOT $13 OR EXISTS (SELECT 1 FROM held)) RETURNING id), \
             pay AS (UPDATE payments SET ",
            payment_change_set!(),
            " WHERE id IN (SELECT id FROM held) AND EXISTS (SELECT 1 FROM fence) RETURNING id), \
             ord AS (UPDATE orders SET status = $22, updated_at = $9 \
               WHERE id = $21 AND status = 'pending' AND EXISTS (SELECT 1 FROM fence) RETURNING id), \
             ev AS (",
            insert_events_from_json!("$23", "$9", "EXISTS (SELECT 1 FROM fence)"),
            "), nj AS (",
            insert_jobs_from_json!("$24", "$9", "EXISTS (SELECT 1 FROM fence)"),
            ") SELECT (SELECT COUNT(*) FROM fence) AS fenced, \
               (SELECT COUNT(*) FROM held) AS held, \
               (SELECT COUNT(*) FROM pay) AS changed, ",
            due_messages_of!("nj"),
            " AS messages"
        );
        let change = finish.change.as_ref();
        let (order_id, order_status) = match finish.order_status {
            Some((id, status)) => (Some(id), Some(status.as_str())),
            None => (None, None),
        };
        let row = bind_fence(
            bind_change(sqlx::query(sql), change, now).bind(change.is_some()),
            claim,
            outcome,
        )
        .bind(order_id)
        .bind(order_status)
        .bind(super::json_rows::events(&finish.events))
        .bind(super::json_rows::jobs(&finish.next_jobs, now))
        .fetch_one(&*self.writer(Lane::Background).await)
        .await;
        let row = match row {
            Ok(row) => row,
            // Two payments claiming the same gateway id is a conflict, not a crash.
            Err(e) if is_unique_violation(&e) => return Err(StoreError::Conflict),
            Err(e) => return Err(e.into()),
        };
        let fenced: i64 = row.try_get("fenced")?;
        let held: i64 = row.try_get("held")?;
        if fenced != 1 {
            return Err(if change.is_some() && held == 0 {
                StoreError::Conflict
            } else {
                StoreError::LeaseLost
            });
        }
        debug_assert_eq!(
            row.try_get::<i64, _>("changed")?,
            i64::from(change.is_some())
        );
        super::json_rows::messages(&row.try_get::<String, _>("messages")?)
    }

    /// Marks due jobs as dispatched and returns their messages: queued jobs
    /// whose message was never sent or was sent `redispatch_after_ms` ago
    /// without being claimed (lost in transit, Redis restarted empty), and
    /// running jobs whose lease expired (their worker died).
    pub async fn take_due_for_dispatch(
        &self,
        redispatch_after_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<JobMessage>> {
        let now = now_ms();
        let lock = match self.dialect() {
            // Several sweepers may run at once; each row goes to one of them.
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET dispatched_at = $1 WHERE id IN (\
               SELECT id FROM jobs WHERE \
                 ((status = 'queued' AND run_at <= $1) OR (status = 'running' AND lease_until < $1)) \
                 AND (dispatched_at IS NULL OR dispatched_at < $2) \
               ORDER BY run_at LIMIT $3 {lock}) \
             RETURNING id, kind"
        );
        // Only the fixed lock clause above is spliced in; values are bound.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(now - redispatch_after_ms)
            .bind(limit)
            .fetch_all(&*self.writer(Lane::Background).await)
            .await?;
        rows.iter().map(message).collect()
    }

    pub async fn job(&self, id: Uuid) -> StoreResult<Option<JobRecord>> {
        let sql = concat!("SELECT ", job_columns!(), " FROM jobs WHERE id = $1");
        let row = sqlx::query(sql)
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(job_record).transpose()
    }

    pub async fn list_jobs(
        &self,
        status: Option<JobStatus>,
        payment_id: Option<PaymentId>,
        limit: i64,
    ) -> StoreResult<Vec<JobRecord>> {
        let sql = concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE ($1 IS NULL OR status = $1) \
             AND ($2 IS NULL OR payment_id = $2) ORDER BY created_at DESC LIMIT $3"
        );
        let rows = sqlx::query(sql)
            .bind(status.map(|s| s.as_str().to_string()))
            .bind(payment_id.map(|p| p.to_string()))
            .bind(limit.clamp(1, 1000))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(job_record).collect()
    }

    /// Counts jobs by status, for tests and the queue-depth gauges.
    pub async fn job_counts(&self) -> StoreResult<Vec<(JobKind, JobStatus, i64)>> {
        let rows =
            sqlx::query("SELECT kind, status, COUNT(*) AS n FROM jobs GROUP BY kind, status")
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    rows::job_kind(&r.try_get::<String, _>("kind")?)?,
                    rows::job_status(&r.try_get::<String, _>("status")?)?,
                    r.try_get("n")?,
                ))
            })
            .collect()
    }

    /// Inserts jobs outside of any other change (the reconciler's checks).
    pub async fn enqueue_jobs(&self, jobs: &[NewJob]) -> StoreResult<Vec<JobMessage>> {
        let now = now_ms();
        let writer = self.writer(Lane::Background).await;
        let mut tx = writer.begin().await?;
        let mut messages = Vec::new();
        for job in jobs {
            if let Some(m) = insert_job(&mut tx, job, now).await? {
                messages.push(m);
            }
        }
        tx.commit().await?;
        Ok(messages)
    }

    /// Payments of `provider` still processing since before `stale_before_ms`
    /// with no verification queued or running: their callback may be lost.
    pub async fn reconcile_candidates(
        &self,
        provider: crate::domain::Provider,
        stale_before_ms: i64,
        limit: i64,
    ) -> StoreResult<Vec<PaymentId>> {
        let rows = sqlx::query(
            "SELECT p.id FROM payments p WHERE p.provider = $1 AND p.status = 'processing' \
             AND p.updated_at < $2 AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.payment_id = p.id \
               AND j.kind = 'verify_payment' AND j.status IN ('queued', 'running')) \
             ORDER BY p.updated_at LIMIT $3",
        )
        .bind(provider.as_str())
        .bind(stale_before_ms)
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

    /// Puts a dead or failed job back in the queue with a fresh budget of
    /// attempts. `attempts` keeps counting up (it is the fencing token: a claim
    /// from before the redrive must never pass again); the budget grows instead.
    pub async fn redrive_job(&self, id: Uuid) -> StoreResult<Option<JobMessage>> {
        let now = now_ms();
        let row = sqlx::query(
            "UPDATE jobs SET status = 'queued', max_attempts = attempts + max_attempts, \
             run_at = $1, dispatched_at = $1, finished_at = NULL, updated_at = $1 \
             WHERE id = $2 AND status IN ('dead', 'failed') RETURNING id, kind",
        )
        .bind(now)
        .bind(id.to_string())
        .fetch_optional(&*self.writer(Lane::Ack).await)
        .await?;
        row.as_ref().map(message).transpose()
    }
}
