//! Payments and their activity log.

use super::jobs::{insert_job, job_message, NewJob};
use super::rows::{self, payment_columns};
use super::{now_ms, Dialect, Lane, Store, StoreError, StoreResult};
use crate::domain::{
    Amount, Currency, Description, JobMessage, NewEvent, Payment, PaymentChange, PaymentEvent,
    PaymentId, PaymentStatus, Provider,
};
use sqlx::any::Any;
use sqlx::{Row, Transaction};

#[derive(Debug, Clone)]
pub struct NewPayment {
    pub id: PaymentId,
    pub provider: Provider,
    pub merchant_ref: String,
    pub amount: Amount,
    pub currency: Currency,
    pub description: Description,
    pub idempotency_key: Option<String>,
    pub order_id: Option<i64>,
}

#[derive(Debug)]
pub enum CreateOutcome {
    /// Persisted together with its first event and job; dispatch these messages.
    Created(Payment, Vec<JobMessage>),
    /// The idempotency key was used before: this is the payment it created.
    Existing(Payment),
}

#[derive(Debug, Clone, Default)]
pub struct PaymentFilter {
    pub provider: Option<Provider>,
    pub status: Option<PaymentStatus>,
    pub created_from_ms: Option<i64>,
    pub created_to_ms: Option<i64>,
    pub merchant_ref: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .map(|d| d.is_unique_violation())
        .unwrap_or(false)
}

impl Store {
    /// Writes the payment, its `request` event and its first job in one
    /// transaction: either all of it is durable, or none of it.
    pub async fn create_payment(
        &self,
        new: &NewPayment,
        event: NewEvent,
        first_job: NewJob,
    ) -> StoreResult<CreateOutcome> {
        if let Some(key) = &new.idempotency_key {
            if let Some(existing) = self.payment_by_idempotency_key(key).await? {
                return Ok(CreateOutcome::Existing(existing));
            }
        }
        let now = now_ms();
        let created = match self.dialect() {
            Dialect::Postgres => self.create_payment_pg(new, &event, &first_job, now).await,
            Dialect::Sqlite => self.create_payment_tx(new, &event, &first_job, now).await,
        };
        match created {
            Err(StoreError::Database(e)) if is_unique_violation(&e) => {
                // Lost a race with the same idempotency key.
                if let Some(key) = &new.idempotency_key {
                    if let Some(existing) = self.payment_by_idempotency_key(key).await? {
                        return Ok(CreateOutcome::Existing(existing));
                    }
                }
                Err(e.into())
            }
            other => other,
        }
    }

    /// SQLite: one transaction (the INSERT returns the row, so no re-read).
    async fn create_payment_tx(
        &self,
        new: &NewPayment,
        event: &NewEvent,
        first_job: &NewJob,
        now: i64,
    ) -> StoreResult<CreateOutcome> {
        let writer = self.writer(Lane::Ack).await;
        let mut tx = writer.begin().await?;
        let payment = insert_payment(&mut tx, new, now).await?;
        insert_event(&mut tx, event, now).await?;
        let messages = insert_job(&mut tx, first_job, now)
            .await?
            .into_iter()
            .collect();
        tx.commit().await?;
        Ok(CreateOutcome::Created(payment, messages))
    }

    /// PostgreSQL: payment, event and job in one statement (data-modifying
    /// CTEs), so one round trip instead of six (BEGIN, three INSERTs, COMMIT,
    /// re-read). A statement is atomic on its own: all three rows or none.
    /// The acknowledgement path is bounded by database round trips, so this is
    /// most of its cost (see PERFORMANCE.md).
    async fn create_payment_pg(
        &self,
        new: &NewPayment,
        event: &NewEvent,
        first_job: &NewJob,
        now: i64,
    ) -> StoreResult<CreateOutcome> {
        let due_now = first_job.run_at_ms <= now;
        let row = bind_new_payment(
            sqlx::query(concat!(
            "WITH p AS (INSERT INTO payments (id, provider, merchant_ref, amount_minor, currency, \
               description, status, idempotency_key, order_id, created_at, updated_at, version) \
               VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $9, 0) RETURNING ",
            payment_columns!(),
            "), e AS (INSERT INTO payment_events (payment_id, kind, message, detail, created_at) \
               SELECT $20, $10, $11, $12, $9 FROM p), \
             j AS (INSERT INTO jobs (id, kind, payment_id, payload, dedupe_key, status, attempts, \
               max_attempts, run_at, dispatched_at, created_at, updated_at) \
               SELECT $13, $14, p.id, $15, $16, 'queued', 0, $17, $18, $19, $9, $9 FROM p \
               ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, kind) \
             SELECT p.*, j.id AS job_id, j.kind AS job_kind FROM p LEFT JOIN j ON TRUE"
        )),
            new,
            now,
        )
        .bind(event.kind.as_str())
        .bind(&event.message)
        .bind(event.detail.to_string())
        .bind(first_job.id.to_string())
        .bind(first_job.kind.as_str())
        .bind(first_job.payload.to_string())
        .bind(first_job.dedupe_key.clone())
        .bind(i64::from(first_job.max_attempts))
        .bind(first_job.run_at_ms)
        .bind(due_now.then_some(now))
        .bind(event.payment_id.to_string())
        .fetch_one(&*self.writer(Lane::Ack).await)
        .await?;
        let payment = rows::payment(&row)?;
        let job_id: Option<String> = row.try_get("job_id")?;
        let job_kind: Option<String> = row.try_get("job_kind")?;
        let messages = match (job_id, job_kind) {
            (Some(id), Some(kind)) if due_now => vec![job_message(&id, &kind)?],
            _ => Vec::new(),
        };
        Ok(CreateOutcome::Created(payment, messages))
    }

    pub async fn payment(&self, id: PaymentId) -> StoreResult<Option<Payment>> {
        let sql = concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments WHERE id = $1"
        );
        let row = sqlx::query(sql)
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(rows::payment).transpose()
    }

    pub async fn payment_by_idempotency_key(&self, key: &str) -> StoreResult<Option<Payment>> {
        let sql = concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments WHERE idempotency_key = $1"
        );
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(rows::payment).transpose()
    }

    /// Finds the payment a gateway callback talks about by the gateway's id.
    pub async fn payment_by_gateway_ref(
        &self,
        provider: Provider,
        gateway_ref: &str,
    ) -> StoreResult<Option<Payment>> {
        let sql = concat!(
            "SELECT ",
            payment_columns!(),
            " FROM payments WHERE provider = $1 AND gateway_ref = $2"
        );
        let row = sqlx::query(sql)
            .bind(provider.as_str())
            .bind(gateway_ref)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(rows::payment).transpose()
    }

    /// Newest first, with the total count for pagination.
    pub async fn list_payments(&self, f: &PaymentFilter) -> StoreResult<(i64, Vec<Payment>)> {
        // Placeholders are numbered in the order conditions are added.
        let mut conds: Vec<String> = Vec::new();
        let mut texts: Vec<String> = Vec::new();
        let mut ints: Vec<(usize, i64)> = Vec::new();
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if let Some(p) = f.provider {
            let i = next();
            conds.push(format!("provider = ${i}"));
            texts.push(p.as_str().to_string());
        }
        if let Some(s) = f.status {
            let i = next();
            conds.push(format!("status = ${i}"));
            texts.push(s.as_str().to_string());
        }
        if let Some(r) = &f.merchant_ref {
            let i = next();
            conds.push(format!("merchant_ref = ${i}"));
            texts.push(r.clone());
        }
        let text_count = texts.len();
        if let Some(from) = f.created_from_ms {
            let i = next();
            conds.push(format!("created_at >= ${i}"));
            ints.push((i, from));
        }
        if let Some(to) = f.created_to_ms {
            let i = next();
            conds.push(format!("created_at < ${i}"));
            ints.push((i, to));
        }
        let where_sql = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        debug_assert_eq!(text_count, texts.len());
        let count_sql = format!("SELECT COUNT(*) AS n FROM payments {where_sql}");
        // Built only from fixed fragments above; values are bound, never spliced.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(count_sql));
        for t in &texts {
            q = q.bind(t.clone());
        }
        for (_, v) in &ints {
            q = q.bind(*v);
        }
        let total: i64 = q.fetch_one(self.pool()).await?.try_get("n")?;

        let limit_i = ints.len() + texts.len() + 1;
        let list_sql = format!(
            "SELECT {} FROM payments {where_sql} \
             ORDER BY created_at DESC, id DESC LIMIT ${limit_i} OFFSET ${}",
            payment_columns!(),
            limit_i + 1
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(list_sql));
        for t in &texts {
            q = q.bind(t.clone());
        }
        for (_, v) in &ints {
            q = q.bind(*v);
        }
        let rows = q
            .bind(f.limit.clamp(1, 500))
            .bind(f.offset.max(0))
            .fetch_all(self.pool())
            .await?;
        let payments = rows.iter().map(rows::payment).collect::<Result<_, _>>()?;
        Ok((total, payments))
    }

    pub async fn events(&self, id: PaymentId) -> StoreResult<Vec<PaymentEvent>> {
        let rows = sqlx::query(
            "SELECT id, payment_id, kind, message, detail, created_at FROM payment_events \
             WHERE payment_id = $1 ORDER BY id",
        )
        .bind(id.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(rows::event).collect()
    }

    /// Appends events outside of any state change (e.g. a refused callback).
    pub async fn append_events(&self, events: &[NewEvent]) -> StoreResult<()> {
        let now = now_ms();
        let writer = self.writer(Lane::Ack).await;
        let mut tx = writer.begin().await?;
        for e in events {
            insert_event(&mut tx, e, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Binds $1…$9 of a payment INSERT: the new payment's columns, `now` for both
/// timestamps.
fn bind_new_payment<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    new: &'q NewPayment,
    now: i64,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    q.bind(new.id.to_string())
        .bind(new.provider.as_str())
        .bind(&new.merchant_ref)
        .bind(new.amount.minor())
        .bind(new.currency.code())
        .bind(new.description.as_str())
        .bind(new.idempotency_key.clone())
        .bind(new.order_id)
        .bind(now)
}

/// Inserts a new payment and returns it as stored.
pub(crate) async fn insert_payment(
    tx: &mut Transaction<'_, Any>,
    new: &NewPayment,
    now: i64,
) -> StoreResult<Payment> {
    let row = bind_new_payment(
        sqlx::query(concat!(
        "INSERT INTO payments (id, provider, merchant_ref, amount_minor, currency, description, \
         status, idempotency_key, order_id, created_at, updated_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $9, 0) RETURNING ",
        payment_columns!()
    )),
        new,
        now,
    )
    .fetch_one(&mut **tx)
    .await?;
    rows::payment(&row)
}

pub(crate) async fn insert_event(
    tx: &mut Transaction<'_, Any>,
    e: &NewEvent,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO payment_events (payment_id, kind, message, detail, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(e.payment_id.to_string())
    .bind(e.kind.as_str())
    .bind(&e.message)
    .bind(e.detail.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The `SET` list of a [`PaymentChange`]: $1–$8 its columns, $9 `now`, as
/// bound by [`bind_change`]. A macro so statements stay `&'static str`.
macro_rules! payment_change_set {
    () => {
        "status = $1, status_reason = COALESCE($2, status_reason), \
         payment_url = COALESCE($3, payment_url), gateway_ref = COALESCE($4, gateway_ref), \
         gateway_trans_id = COALESCE($5, gateway_trans_id), \
         tracking_code = COALESCE($6, tracking_code), \
         encrypted_user_data = COALESCE($7, encrypted_user_data), \
         completed_at = COALESCE($8, completed_at), updated_at = $9, version = version + 1"
    };
}
pub(crate) use payment_change_set;

/// Binds $1…$12 for a change: its columns and `now` ([`payment_change_set`]),
/// then the row it was built from ($10 id, $11 version, $12 status). With no
/// change, values that match no row.
pub(crate) fn bind_change<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    c: Option<&PaymentChange>,
    now: i64,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    let completed = c.is_some_and(|c| c.new_status == Some(PaymentStatus::Completed));
    q.bind(c.map(|c| c.new_status.unwrap_or(c.expected_status).as_str()))
        .bind(c.and_then(|c| c.status_reason.clone()))
        .bind(c.and_then(|c| c.payment_url.clone()))
        .bind(c.and_then(|c| c.gateway_ref.clone()))
        .bind(c.and_then(|c| c.gateway_trans_id.clone()))
        .bind(c.and_then(|c| c.tracking_code.clone()))
        .bind(c.and_then(|c| c.encrypted_user_data.clone()))
        .bind(completed.then_some(now))
        .bind(now)
        .bind(c.map(|c| c.id.to_string()).unwrap_or_default())
        .bind(c.map(|c| c.expected_version).unwrap_or(0))
        .bind(c.map(|c| c.expected_status.as_str()).unwrap_or(""))
}

/// Applies a checked change if, and only if, the row is still at the version
/// and status the change was built from. Anything else is a conflict.
///
/// Only the primary key may drive this update. The status test is written as
/// `COALESCE(status, '')` (status is NOT NULL, so it means the same) because a
/// bare `status = …` lets the planner pick the (status, created_at) index on a
/// table it has no statistics for yet and walk every payment in that status
/// per update: the benchmark caught O(backlog) work per job that way.
pub(crate) async fn apply_change(
    tx: &mut Transaction<'_, Any>,
    c: &PaymentChange,
    now: i64,
) -> StoreResult<()> {
    let result = bind_change(
        sqlx::query(concat!(
            "UPDATE payments SET ",
            payment_change_set!(),
            " WHERE id = $10 AND version = $11 AND COALESCE(status, '') = $12"
        )),
        Some(c),
        now,
    )
    .execute(&mut **tx)
    .await;
    match result {
        Ok(r) if r.rows_affected() == 1 => Ok(()),
        Ok(_) => Err(StoreError::Conflict),
        // Two payments claiming the same gateway id is a conflict, not a crash.
        Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict),
        Err(e) => Err(e.into()),
    }
}
