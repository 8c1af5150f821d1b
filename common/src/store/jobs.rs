//! The job ledger: the durable truth about background work. The queue only
//! carries pointers to these rows, so a lost or repeated message is harmless:
//! claiming is a conditional update, and finishing checks the claim (a fencing
//! token) in the same transaction as the state change the job made.

use super::changeset::{Changeset, Committed, NextClaim};
use super::rows::{self, job_message, payment_columns};
use super::{now_ms, Dialect, Lane, Store, StoreError, StoreResult};
use crate::domain::{
    JobKind, JobMessage, JobPayload, JobStatus, NewEvent, NewJob, OrderChange, PayloadError,
    Payment, PaymentChange, PaymentId, RetryPolicies,
};
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

/// A PostgreSQL condition that is always true and commits the statement's own
/// implicit transaction without waiting for its WAL to reach the disk
/// (`synchronous_commit = off` for that transaction only, set from inside the
/// statement so it costs no extra round trip). Only for bookkeeping whose loss
/// in a database crash is the ordinary case of a worker that went away: a
/// claim or a lease renewal lost that way leaves the job as it was before
/// (queued, or running under an expired lease), and the sweeper dispatches it
/// again; a lost claim also leaves its attempt uncounted, so a crash can grant
/// one attempt more. Nothing outside the database acts on a claim alone, and
/// the attempt's finish commits synchronously, which flushes the WAL up to
/// it, the claim included: no finish is ever durable without its claim.
/// Everything a client, a gateway or a merchant is told about stays
/// synchronous (PERFORMANCE.md, "Claims without waiting for the disk").
macro_rules! no_flush_on_postgres {
    () => {
        " AND set_config('synchronous_commit', 'off', true) IS NOT NULL"
    };
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
    /// The job's input; an error when the stored payload does not fit its
    /// kind (the job then fails as invalid instead of running on defaults).
    pub payload: Result<JobPayload, PayloadError>,
    pub attempt: u32,
    pub max_attempts: u32,
    pub worker: String,
    pub created_at_ms: i64,
}

/// How a claimed job ends this attempt, with the changes it made.
#[derive(Debug, Default)]
pub struct JobFinish {
    pub change: Option<PaymentChange>,
    /// A shop order that moves with this attempt.
    pub order_status: Option<OrderChange>,
    pub events: Vec<NewEvent>,
    pub next_jobs: Vec<NewJob>,
    pub result: JobResult,
    /// A refund that moves with this attempt.
    pub refund: Option<crate::domain::RefundChange>,
    /// One of `next_jobs` that this attempt's worker claims as the finish
    /// inserts it ([`Store::finish_job_and_take_next`]).
    pub claim_next: Option<NextClaim>,
    /// One of `next_jobs` whose work this attempt did itself: inserted
    /// already succeeded ([`Changeset::ran_inside`]).
    pub ran_next: Option<uuid::Uuid>,
}

/// What a finished attempt leaves behind.
#[derive(Debug)]
pub struct Finished {
    /// Jobs due now: push these to the queue.
    pub messages: Vec<JobMessage>,
    /// The next job, claimed for this worker by the finish: run it now.
    pub next: Option<ClaimedJob>,
    /// The payment as the finish left it, when the finish changed it and its
    /// statement returned the row (`Applied::changed`); `None`: read it.
    pub payment: Option<Payment>,
}

impl JobFinish {
    /// The attempt's changeset; a payment change brings its follow-ups.
    pub fn into_changeset(self, claim: &ClaimedJob, policies: &RetryPolicies) -> Changeset {
        let mut cs = Changeset::finishing(claim, self.result);
        if let Some(change) = self.change {
            cs = cs.change_payment(change, policies);
        }
        if let Some(change) = self.order_status {
            cs = cs.order_status(change, policies);
        }
        if let Some(change) = self.refund {
            cs = cs.change_refund(change);
        }
        if let Some(claim) = self.claim_next {
            cs = cs.claiming_next(claim);
        }
        if let Some(job_id) = self.ran_next {
            cs = cs.ran_inside(job_id);
        }
        cs.events(self.events).jobs(self.next_jobs)
    }
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
pub(crate) struct Outcome {
    pub(crate) status: JobStatus,
    pub(crate) run_at: Option<i64>,
    pub(crate) error: Option<String>,
    pub(crate) finished_at: Option<i64>,
}

impl Outcome {
    pub(crate) fn of(result: &JobResult, now: i64) -> Outcome {
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
            ($($also:tt)*) => {
                concat!(
                    "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = $1, \
                     locked_by = $2, updated_at = $3, dispatched_at = NULL \
                     WHERE id = $4 AND ((status = 'queued' AND run_at <= $3) \
                        OR (status = 'running' AND lease_until < $3))",
                    $($also)*,
                    " RETURNING id AS job_id, kind AS job_kind, payment_id AS job_payment_id, \
                     payload AS job_payload, attempts AS job_attempts, \
                     max_attempts AS job_max_attempts, created_at AS job_created_at"
                )
            };
        }
        let sql = match self.dialect() {
            Dialect::Postgres => concat!(
                "WITH c AS (",
                claim_sql!(no_flush_on_postgres!()),
                ") SELECT c.*, p.* FROM c LEFT JOIN payments p ON p.id = c.job_payment_id"
            ),
            // The job's payment in the same command: one hand-off to
            // SQLite's thread instead of two (apply_sqlite.rs says why that
            // counts). `changes()` is the claim's: no claim, no payment row.
            Dialect::Sqlite => concat!(
                claim_sql!(""),
                "; SELECT ",
                payment_columns!(),
                " FROM payments WHERE changes() = 1 \
                 AND id = (SELECT payment_id FROM jobs WHERE id = $4)"
            ),
        };
        let query = sqlx::query(sql)
            .bind(now + lease_ms)
            .bind(worker)
            .bind(now)
            .bind(job_id.to_string());
        let returned = match self.dialect() {
            Dialect::Sqlite => self.sqlite_write(Lane::Background, query, false).await?,
            Dialect::Postgres => {
                super::written::written_rows(query, &mut *self.writer(Lane::Background).await?)
                    .await?
            }
        };
        let mut returned = returned.into_iter();
        let Some(row) = returned.next() else {
            return Ok(None);
        };
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
            (Dialect::Sqlite, Some(_)) => {
                returned.next().as_ref().map(rows::payment).transpose()?
            }
        };
        let kind = rows::job_kind(&row.try_get::<String, _>("job_kind")?)?;
        let payload_text: String = row.try_get("job_payload")?;
        let payload = serde_json::from_str(&payload_text)
            .map_err(|e| PayloadError {
                kind: kind.as_str(),
                reason: e.to_string(),
            })
            .and_then(|args| JobPayload::from_stored(kind, &args));
        Ok(Some(ClaimedJob {
            id: job_id,
            kind,
            payment_id,
            payment,
            payload,
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
        macro_rules! renew_sql {
            () => {
                "UPDATE jobs SET lease_until = $1 WHERE id = $2 \
                 AND locked_by = $3 AND attempts = $4"
            };
        }
        let sql = match self.dialect() {
            Dialect::Postgres => concat!(renew_sql!(), no_flush_on_postgres!()),
            Dialect::Sqlite => renew_sql!(),
        };
        let r = sqlx::query(sql)
            .bind(now + lease_ms)
            .bind(claim.id.to_string())
            .bind(&claim.worker)
            .bind(i64::from(claim.attempt))
            .execute(&mut *self.writer(Lane::Background).await?)
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
        policies: &RetryPolicies,
        finish: JobFinish,
    ) -> StoreResult<Vec<JobMessage>> {
        Ok(self
            .finish_job_and_take_next(claim, policies, finish)
            .await?
            .messages)
    }

    /// [`Store::finish_job`], and the job named by `finish.claim_next`
    /// inserted already claimed by this worker (attempt 1, leased until the
    /// claim's end, no queue message): the caller runs it next, with the
    /// payment as committed. That saves the successor a queue round trip and
    /// a claim of its own (PERFORMANCE.md, "Claiming the next job in the
    /// finish"). `next` is `None` when the job was not inserted (one with its
    /// dedupe key exists) or its payment could not be read after the commit;
    /// then its lease expires and the sweeper dispatches it like any job
    /// whose worker went away.
    pub async fn finish_job_and_take_next(
        &self,
        claim: &ClaimedJob,
        policies: &RetryPolicies,
        finish: JobFinish,
    ) -> StoreResult<Finished> {
        let asked = finish
            .claim_next
            .and_then(|c| finish.next_jobs.iter().find(|j| j.id == c.job_id).cloned());
        let created_at_ms = now_ms();
        let cs = finish.into_changeset(claim, policies);
        let applied = match self.commit_in(&cs, Lane::Background).await? {
            Committed::Applied(applied) => applied,
            Committed::Duplicate => {
                return Err(StoreError::Corrupt(
                    "a job attempt cannot be a duplicate".into(),
                ))
            }
        };
        let changed = applied.changed;
        let next = match (applied.claimed_next, asked) {
            (Some(id), Some(job)) if id == job.id => {
                // Committed already: a failed read must not fail the finish.
                match self.claimed_payment(&job, changed.as_ref()).await {
                    Ok(payment) => Some(ClaimedJob {
                        id,
                        kind: job.kind(),
                        payment_id: job.payment_id,
                        payment,
                        payload: Ok(job.payload),
                        attempt: 1,
                        max_attempts: job.max_attempts,
                        worker: claim.worker.clone(),
                        created_at_ms,
                    }),
                    Err(e) => {
                        tracing::warn!(job_id = %id, error = %e,
                            "could not read the claimed next job's payment; it runs after its lease");
                        None
                    }
                }
            }
            (None, _) => None,
            (Some(id), _) => {
                tracing::warn!(job_id = %id,
                    "the finish claimed a job it was not asked to; it runs after its lease");
                None
            }
        };
        Ok(Finished {
            messages: applied.messages,
            next,
            payment: changed,
        })
    }

    /// The payment a claimed next job works on, as committed: the one the
    /// finish returned when it is that payment, read otherwise.
    async fn claimed_payment(
        &self,
        job: &NewJob,
        changed: Option<&Payment>,
    ) -> StoreResult<Option<Payment>> {
        match (job.payment_id, changed) {
            (Some(id), Some(p)) if p.id == id => Ok(Some(p.clone())),
            (Some(id), _) => self.payment(id).await,
            (None, _) => Ok(None),
        }
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
        let query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(now - redispatch_after_ms)
            .bind(limit);
        let rows =
            super::written::written_rows(query, &mut *self.writer(Lane::Background).await?).await?;
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
        let cs = Changeset::from_api().jobs(jobs.iter().cloned());
        match self.commit_in(&cs, Lane::Background).await? {
            Committed::Applied(applied) => Ok(applied.messages),
            Committed::Duplicate => Ok(Vec::new()),
        }
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
        let query = sqlx::query(
            "UPDATE jobs SET status = 'queued', max_attempts = attempts + max_attempts, \
             run_at = $1, dispatched_at = $1, finished_at = NULL, updated_at = $1 \
             WHERE id = $2 AND status IN ('dead', 'failed') RETURNING id, kind",
        )
        .bind(now)
        .bind(id.to_string());
        let rows = super::written::written_rows(query, &mut *self.writer(Lane::Ack).await?).await?;
        rows.first().map(message).transpose()
    }
}
