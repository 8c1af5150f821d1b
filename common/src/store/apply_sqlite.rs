//! SQLite's applier: a whole [`Changeset`] in one transaction on the one
//! writer connection. The gates run first, in the same order of precedence as
//! PostgreSQL's statement (`apply_pg.rs`): the expected payment and gateway
//! transaction versions (`Conflict`), then the origin's own gate (`LeaseLost`
//! for a job whose claim is gone, `Duplicate` for a gateway call recorded
//! before); any failed gate rolls everything back.
//!
//! Each statement is small and binds its values right beside the column list
//! it fills, so no bind order depends on a comment.

use super::changeset::{Applied, Changeset, Committed, GatewayTxnWrite, Origin};
use super::jobs::Outcome;
use super::rows::{self, job_message, payment_columns};
use super::NewRefund;
use super::{commit_error, now_ms, Lane, Store, StoreError, StoreResult};
use crate::domain::{JobMessage, NewEvent, NewJob, Payment, PaymentChange, RefundChange};
use sqlx::any::Any;
use sqlx::{Row, Transaction};

type Tx<'c> = Transaction<'c, Any>;

impl Store {
    pub(super) async fn commit_sqlite(&self, cs: &Changeset, lane: Lane) -> StoreResult<Committed> {
        let now = now_ms();
        let writer = self.writer(lane).await;
        let mut tx = writer.begin().await?;
        match apply(&mut tx, cs, now).await {
            Ok(Some(applied)) => {
                tx.commit().await?;
                drop(writer);
                let order = match applied.1 {
                    Some(id) => Some(self.order(id).await?.ok_or(StoreError::NotFound)?),
                    None => None,
                };
                Ok(Committed::Applied(Box::new(Applied { order, ..applied.0 })))
            }
            Ok(None) => {
                tx.rollback().await?;
                Ok(Committed::Duplicate)
            }
            Err(e) => {
                tx.rollback().await?;
                Err(e)
            }
        }
    }
}

/// Applies every part; `None` when the origin was a duplicate. The second
/// value is the new order's id, read back after commit.
async fn apply(
    tx: &mut Tx<'_>,
    cs: &Changeset,
    now: i64,
) -> StoreResult<Option<(Applied, Option<i64>)>> {
    if let Some(change) = &cs.change {
        apply_change(tx, change, now).await?;
    }
    let mut gateway_txn_id = None;
    // An update's expected version is a gate (before the origin's); an
    // insert comes after it, as on PostgreSQL.
    if let Some(t) = &cs.gateway_txn_update {
        gateway_txn_id = Some(write_gateway_txn(tx, t, now).await?);
    }
    // A refund's expected status is a gate too.
    if let Some(r) = &cs.refund_change {
        change_refund(tx, r, now).await?;
    }
    match &cs.origin {
        Origin::Api => {}
        Origin::Job(f) => {
            let o = Outcome::of(&f.result, now);
            let fenced = sqlx::query(
                "UPDATE jobs SET status = $1, run_at = COALESCE($2, run_at), \
                 last_error = COALESCE($3, last_error), finished_at = $4, lease_until = NULL, \
                 locked_by = NULL, dispatched_at = NULL, updated_at = $5 \
                 WHERE id = $6 AND locked_by = $7 AND attempts = $8",
            )
            .bind(o.status.as_str())
            .bind(o.run_at)
            .bind(o.error)
            .bind(o.finished_at)
            .bind(now)
            .bind(f.job_id.to_string())
            .bind(&f.worker)
            .bind(i64::from(f.attempt))
            .execute(&mut **tx)
            .await?;
            if fenced.rows_affected() != 1 {
                return Err(StoreError::LeaseLost);
            }
        }
        Origin::Inbound(m) => {
            let inserted = sqlx::query(
                "INSERT INTO inbound_messages (id, provider, dedupe_key, payment_id, method, \
                 query, headers, body, outcome, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (provider, dedupe_key) DO NOTHING",
            )
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(m.provider.as_str())
            .bind(&m.dedupe_key)
            .bind(m.payment_id.map(|p| p.to_string()))
            .bind(&m.method)
            .bind(&m.query)
            .bind(m.headers.to_string())
            .bind(&m.body)
            .bind(&m.outcome)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            if inserted.rows_affected() == 0 {
                return Ok(None);
            }
        }
    }
    if let Some(t) = &cs.gateway_txn_new {
        gateway_txn_id = Some(write_gateway_txn(tx, t, now).await?);
    }
    let mut order_id = None;
    if let Some(o) = &cs.order {
        let payment_id = cs.payment.as_ref().map(|p| p.id.to_string());
        let row = sqlx::query(
            "INSERT INTO orders (product_name, amount_minor, payment_type, status, payment_id, \
             created_at, updated_at, access_token) \
             VALUES ($1, $2, $3, 'pending', $4, $5, $5, $6) RETURNING id",
        )
        .bind(o.product_name.as_str())
        .bind(o.amount.minor())
        .bind(o.payment_type.as_str())
        .bind(payment_id)
        .bind(now)
        .bind(super::orders::new_access_token())
        .fetch_one(&mut **tx)
        .await?;
        order_id = Some(row.try_get::<i64, _>("id")?);
    }
    let mut payment = None;
    if let Some(new) = &cs.payment {
        payment = Some(insert_payment(tx, new, order_id, now).await?);
    }
    if let Some(c) = cs.order_status {
        sqlx::query("UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
            .bind(c.to.as_str())
            .bind(now)
            .bind(c.id)
            .bind(c.from.as_str())
            .execute(&mut **tx)
            .await?;
    }
    if let Some(r) = &cs.refund_new {
        insert_refund(tx, r, now).await?;
    }
    for e in &cs.events {
        insert_event(tx, e, now).await?;
    }
    let mut messages = Vec::new();
    for job in &cs.jobs {
        if let Some(m) = insert_job(tx, job, now).await? {
            messages.push(m);
        }
    }
    Ok(Some((
        Applied {
            payment,
            order: None,
            gateway_txn_id,
            messages,
        },
        order_id,
    )))
}

async fn insert_payment(
    tx: &mut Tx<'_>,
    new: &crate::store::NewPayment,
    order_id: Option<i64>,
    now: i64,
) -> StoreResult<Payment> {
    // A new order's payment is referenced by the order's id.
    let merchant_ref = order_id.map_or_else(|| new.merchant_ref.clone(), |id| id.to_string());
    let row = sqlx::query(concat!(
        "INSERT INTO payments (id, provider, merchant_ref, amount_minor, currency, description, \
         status, idempotency_key, order_id, created_at, updated_at, version) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $9, 0) RETURNING ",
        payment_columns!()
    ))
    .bind(new.id.to_string())
    .bind(new.provider.as_str())
    .bind(merchant_ref)
    .bind(new.amount.minor())
    .bind(new.currency.code())
    .bind(new.description.as_str())
    .bind(new.idempotency_key.clone())
    .bind(order_id.or(new.order_id))
    .bind(now)
    .fetch_one(&mut **tx)
    .await
    .map_err(commit_error)?;
    rows::payment(&row)
}

/// Applies a checked change if, and only if, the row is still at the version
/// and status the change was built from. Anything else is a conflict.
///
/// Only the primary key may drive this update. The status test is written as
/// `COALESCE(status, '')` (status is NOT NULL, so it means the same) because a
/// bare `status = …` lets the planner pick the (status, created_at) index on a
/// table it has no statistics for yet and walk every payment in that status
/// per update: the benchmark caught O(backlog) work per job that way.
async fn apply_change(tx: &mut Tx<'_>, c: &PaymentChange, now: i64) -> StoreResult<()> {
    let r = sqlx::query(
        "UPDATE payments SET status = $1, status_reason = COALESCE($2, status_reason), \
         payment_url = COALESCE($3, payment_url), gateway_ref = COALESCE($4, gateway_ref), \
         gateway_trans_id = COALESCE($5, gateway_trans_id), \
         tracking_code = COALESCE($6, tracking_code), \
         encrypted_user_data = COALESCE($7, encrypted_user_data), \
         completed_at = COALESCE($8, completed_at), updated_at = $9, version = version + 1 \
         WHERE id = $10 AND version = $11 AND COALESCE(status, '') = $12",
    )
    .bind(c.new_status.unwrap_or(c.expected_status).as_str())
    .bind(c.status_reason.clone())
    .bind(c.payment_url.clone())
    .bind(c.gateway_ref.clone())
    .bind(c.gateway_trans_id.clone())
    .bind(c.tracking_code.clone())
    .bind(c.encrypted_user_data.clone())
    .bind(c.completes().then_some(now))
    .bind(now)
    .bind(c.id.to_string())
    .bind(c.expected_version)
    .bind(c.expected_status.as_str())
    .execute(&mut **tx)
    .await
    .map_err(commit_error)?;
    if r.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

/// Inserts a new gateway transaction (its gateway id must be new) or updates
/// one still at its expected version; returns its id.
async fn write_gateway_txn(tx: &mut Tx<'_>, t: &GatewayTxnWrite, now: i64) -> StoreResult<i64> {
    let row = match t.expected_version {
        None => sqlx::query(
            "INSERT INTO gateway_transactions (provider, external_id, payment_id, state, \
             amount_minor, external_time, data, created_at, updated_at, version) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, 0) RETURNING id",
        )
        .bind(t.provider.as_str())
        .bind(&t.external_id)
        .bind(t.payment_id.to_string())
        .bind(&t.state)
        .bind(t.amount_minor)
        .bind(t.external_time_ms)
        .bind(t.data.to_string())
        .bind(now)
        .fetch_optional(&mut **tx)
        .await
        .map_err(commit_error)?,
        Some(version) => {
            sqlx::query(
                "UPDATE gateway_transactions SET state = $1, \
             external_time = COALESCE($2, external_time), data = $3, updated_at = $4, \
             version = version + 1 \
             WHERE provider = $5 AND external_id = $6 AND version = $7 RETURNING id",
            )
            .bind(&t.state)
            .bind(t.external_time_ms)
            .bind(t.data.to_string())
            .bind(now)
            .bind(t.provider.as_str())
            .bind(&t.external_id)
            .bind(version)
            .fetch_optional(&mut **tx)
            .await?
        }
    };
    match row {
        Some(row) => Ok(row.try_get("id")?),
        None => Err(StoreError::Conflict),
    }
}

async fn insert_refund(tx: &mut Tx<'_>, r: &NewRefund, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refunds (id, payment_id, amount_minor, reason, status, caller, \
         idempotency_key, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'requested', $5, $6, $7, $7)",
    )
    .bind(r.id.to_string())
    .bind(r.payment_id.to_string())
    .bind(r.amount_minor)
    .bind(r.reason.clone())
    .bind(&r.caller)
    .bind(r.idempotency_key.clone())
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(commit_error)?;
    Ok(())
}

/// Moves a refund only while it is still in the status the change was built from.
async fn change_refund(tx: &mut Tx<'_>, r: &RefundChange, now: i64) -> StoreResult<()> {
    let done = sqlx::query(
        "UPDATE refunds SET status = $1, failure_reason = COALESCE($2, failure_reason), \
         gateway_ref = COALESCE($3, gateway_ref), updated_at = $4 WHERE id = $5 AND status = $6",
    )
    .bind(r.to.as_str())
    .bind(r.failure_reason.clone())
    .bind(r.gateway_ref.clone())
    .bind(now)
    .bind(r.id.to_string())
    .bind(r.from.as_str())
    .execute(&mut **tx)
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

async fn insert_event(tx: &mut Tx<'_>, e: &NewEvent, now: i64) -> StoreResult<()> {
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

/// Inserts a job; returns the message to dispatch, or `None` when a job with
/// the same dedupe key exists or the job is not due yet. A due job is marked
/// dispatched because the caller pushes it right after commit; if that push
/// is lost, the sweeper notices the stale mark.
///
/// A `notify` job is written only while an endpoint is enabled, as on
/// PostgreSQL (apply_pg.rs, `notify_has_a_listener`).
async fn insert_job(tx: &mut Tx<'_>, job: &NewJob, now: i64) -> StoreResult<Option<JobMessage>> {
    let due_now = job.run_at_ms <= now;
    let row = sqlx::query(
        "INSERT INTO jobs (id, kind, payment_id, payload, dedupe_key, status, attempts, \
         max_attempts, run_at, dispatched_at, created_at, updated_at) \
         SELECT $1, $2, $3, $4, $5, 'queued', 0, $6, $7, $8, $9, $9 \
         WHERE $2 <> 'notify' OR EXISTS (SELECT 1 FROM webhook_endpoints WHERE status = 'enabled') \
         ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, kind",
    )
    .bind(job.id.to_string())
    .bind(job.kind().as_str())
    .bind(job.payment_id.map(|p| p.to_string()))
    .bind(job.payload.args_json().to_string())
    .bind(job.dedupe_key.clone())
    .bind(i64::from(job.max_attempts))
    .bind(job.run_at_ms)
    .bind(due_now.then_some(now))
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        Some(row) if due_now => Ok(Some(job_message(
            &row.try_get::<String, _>("id")?,
            &row.try_get::<String, _>("kind")?,
        )?)),
        _ => Ok(None),
    }
}
