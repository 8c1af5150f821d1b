//! SQLite's applier: a whole [`Changeset`] as one transaction, sent to the
//! one writer connection as one multi-statement command
//! (`BEGIN IMMEDIATE; …; COMMIT`).
//!
//! Why one command: sqlx runs each SQLite connection on a thread of its own,
//! and every command is a hand-off to that thread and back. SQLite itself
//! needs tens of microseconds for a statement; the hand-offs cost more, and
//! since every write in embedded mode takes the one writer in turn, they
//! bound the embedded pipeline (PERFORMANCE.md, 'SQLite's hand-offs').
//!
//! The gates are statements in that command: after each conditional write,
//! an insert into the connection's temporary `paygate_gates` table runs only
//! when the write did not touch exactly one row (`changes()`), and that
//! table's CHECK constraints refuse any row, so a failed gate is an error
//! that stops the command before `COMMIT`; the transaction is then rolled
//! back. The gates come in the order PostgreSQL's statement judges them
//! (`apply_pg.rs`): the expected payment and gateway transaction versions and
//! the refund's status (`Conflict`), then the origin's own gate (`LeaseLost`
//! for a job whose claim is gone, `Duplicate` for a gateway call recorded
//! before), then unique values the inserts need.
//!
//! The command runs on SQLite's writer thread (`writer_thread.rs`), which
//! rolls it back if it fails, so a caller that gives up (a client that
//! disconnects) cannot leave the writer inside a transaction.
//! Values are bound, never spliced: each part numbers its own placeholders
//! beside the column list it fills ([`Batch::bind`]).

use super::changeset::{Applied, Changeset, Committed, GatewayTxnWrite, Origin};
use super::jobs::Outcome;
use super::json_rows::JobStart;
use super::rows::{self, job_message, payment_columns};
use super::NewRefund;
use super::{commit_error, now_ms, Lane, Store, StoreError, StoreResult};
use crate::domain::{NewEvent, NewJob, PaymentChange, RefundChange};
use sqlx::any::AnyArguments;
use sqlx::{Arguments, Row};

/// The table a failed gate writes to, and whose constraints refuse that
/// write; created on every SQLite connection (`store/mod.rs`). Temporary, so
/// it is the connection's own and never in the database file.
pub(super) const GATES_TABLE: &str = "CREATE TEMP TABLE IF NOT EXISTS paygate_gates (\
     moved_on INTEGER CONSTRAINT gate_moved_on CHECK (moved_on IS NULL), \
     claim_lost INTEGER CONSTRAINT gate_claim_lost CHECK (claim_lost IS NULL), \
     seen_before INTEGER CONSTRAINT gate_seen_before CHECK (seen_before IS NULL))";

impl Store {
    pub(super) async fn commit_sqlite(&self, cs: &Changeset, lane: Lane) -> StoreResult<Committed> {
        let now = now_ms();
        let batch = batch(cs, now);
        let ran = batch.run(self, lane).await;
        match ran {
            Ok(Some((applied, order_id))) => {
                let order = match order_id {
                    Some(id) => Some(self.order(id).await?.ok_or(StoreError::NotFound)?),
                    None => None,
                };
                Ok(Committed::Applied(Box::new(Applied { order, ..applied })))
            }
            Ok(None) => Ok(Committed::Duplicate),
            Err(e) => Err(e),
        }
    }
}

/// A condition the changeset was built on; failing one ends the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// The payment, gateway transaction or refund moved on: `Conflict`.
    MovedOn,
    /// The job's claim is gone: `LeaseLost`.
    ClaimLost,
    /// The gateway's call was recorded before: `Duplicate`.
    SeenBefore,
}

impl Gate {
    const ALL: [Gate; 3] = [Gate::MovedOn, Gate::ClaimLost, Gate::SeenBefore];

    /// Its column in [`GATES_TABLE`]; the constraint is `gate_` and the column.
    fn column(self) -> &'static str {
        match self {
            Gate::MovedOn => "moved_on",
            Gate::ClaimLost => "claim_lost",
            Gate::SeenBefore => "seen_before",
        }
    }

    /// The gate a database error reports, if it is a gate's.
    fn of(e: &sqlx::Error) -> Option<Gate> {
        let message = e.as_database_error()?.message();
        Gate::ALL.into_iter().find(|g| {
            message.contains("CHECK constraint failed")
                && message.ends_with(&format!("gate_{}", g.column()))
        })
    }

    /// What the write answers when this gate failed (`Ok(None)`: a duplicate).
    fn failed<T>(self) -> StoreResult<Option<T>> {
        match self {
            Gate::MovedOn => Err(StoreError::Conflict),
            Gate::ClaimLost => Err(StoreError::LeaseLost),
            Gate::SeenBefore => Ok(None),
        }
    }
}

/// A bound value (the store's columns are TEXT or BIGINT).
enum Value {
    Text(Option<String>),
    Int(Option<i64>),
}

/// The statements of one changeset and their values, in placeholder order.
#[derive(Default)]
struct Batch {
    sql: String,
    values: Vec<Value>,
}

impl Batch {
    /// The placeholder for `v`, numbered across the whole command (sqlx binds
    /// SQLite's `$N` by number in every statement of a multi-statement query).
    fn bind(&mut self, v: Value) -> String {
        self.values.push(v);
        format!("${}", self.values.len())
    }

    fn text(&mut self, v: impl Into<Option<String>>) -> String {
        self.bind(Value::Text(v.into()))
    }

    fn int(&mut self, v: impl Into<Option<i64>>) -> String {
        self.bind(Value::Int(v.into()))
    }

    fn statement(&mut self, sql: &str) {
        self.sql.push_str(sql);
        self.sql.push_str(";\n");
    }

    /// Fails the command unless the statement just before touched exactly
    /// one row.
    fn gate(&mut self, gate: Gate) {
        self.statement(&format!(
            "INSERT INTO temp.paygate_gates ({}) SELECT 1 WHERE changes() <> 1",
            gate.column()
        ));
    }

    /// Runs the command on SQLite's writer thread and reads its rows. `None`
    /// when the origin was a duplicate. The second value is the new order's
    /// id, read after commit.
    async fn run(self, store: &Store, lane: Lane) -> StoreResult<Option<(Applied, Option<i64>)>> {
        let mut args = AnyArguments::default();
        for v in self.values {
            let added = match v {
                Value::Text(t) => args.add(t),
                Value::Int(i) => args.add(i),
            };
            added.map_err(|e| StoreError::Corrupt(format!("a value could not be bound: {e}")))?;
        }
        let sql = format!("BEGIN IMMEDIATE;\n{}COMMIT", self.sql);
        // The SQL is this module's own text; every value is bound. A failed
        // command is rolled back by the writer thread. sqlx's SQLite driver
        // runs every statement of a multi-statement query and binds `$N` by
        // number in each; sqlx has discussed dropping that (sqlx#3108, where
        // `fetch_many` is deprecated for it). sqlx is pinned in Cargo.lock;
        // should an upgrade drop it, every SQLite store test fails at once.
        let query = sqlx::query_with(sqlx::AssertSqlSafe(sql), args);
        let rows = match store.sqlite_write(lane, query, true).await {
            Ok(rows) => rows,
            Err(StoreError::Database(e)) => {
                return match Gate::of(&e) {
                    Some(gate) => gate.failed(),
                    None => Err(commit_error(e)),
                }
            }
            Err(e) => return Err(e),
        };
        let mut applied = Applied::default();
        let mut order_id = None;
        for row in rows {
            match row.try_get::<String, _>("part")?.as_str() {
                "gateway_txn" => applied.gateway_txn_id = Some(row.try_get("id")?),
                "order" => order_id = Some(row.try_get::<i64, _>("id")?),
                "payment" => applied.payment = Some(rows::payment(&row)?),
                "changed" => applied.changed = Some(rows::payment(&row)?),
                "job" if row.try_get::<Option<String>, _>("locked_by")?.is_some() => {
                    // Claimed by the finishing attempt: its worker runs it, no message.
                    applied.claimed_next = Some(rows::job_id(&row.try_get::<String, _>("id")?)?);
                }
                "job" => {
                    // Pushed only if marked dispatched: a job not due yet is
                    // sent by the sweeper when it is, and one the finishing
                    // attempt ran itself is done.
                    if row.try_get::<Option<i64>, _>("dispatched_at")?.is_some() {
                        applied.messages.push(job_message(
                            &row.try_get::<String, _>("id")?,
                            &row.try_get::<String, _>("kind")?,
                        )?);
                    }
                }
                other => return Err(StoreError::Corrupt(format!("unknown part {other:?}"))),
            }
        }
        Ok(Some((applied, order_id)))
    }
}

/// Every part of the changeset, in the order of its gates' precedence.
fn batch(cs: &Changeset, now: i64) -> Batch {
    let mut b = Batch::default();
    if let Some(change) = &cs.change {
        change_payment(&mut b, change, now);
    }
    // An update's expected version is a gate (before the origin's); an
    // insert comes after it, as on PostgreSQL.
    if let Some(t) = &cs.gateway_txn_update {
        write_gateway_txn(&mut b, t, now);
    }
    // A refund's expected status is a gate too.
    if let Some(r) = &cs.refund_change {
        change_refund(&mut b, r, now);
    }
    match &cs.origin {
        Origin::Api => {}
        Origin::Job(f) => {
            let o = Outcome::of(&f.result, now);
            let sql = format!(
                "UPDATE jobs SET status = {}, run_at = COALESCE({}, run_at), \
                 last_error = COALESCE({}, last_error), finished_at = {}, lease_until = NULL, \
                 locked_by = NULL, dispatched_at = NULL, updated_at = {} \
                 WHERE id = {} AND locked_by = {} AND attempts = {}",
                b.text(o.status.as_str().to_string()),
                b.int(o.run_at),
                b.text(o.error),
                b.int(o.finished_at),
                b.int(now),
                b.text(f.job_id.to_string()),
                b.text(f.worker.clone()),
                b.int(i64::from(f.attempt)),
            );
            b.statement(&sql);
            b.gate(Gate::ClaimLost);
        }
        Origin::Inbound(m) => {
            let sql = format!(
                "INSERT INTO inbound_messages (id, provider, dedupe_key, payment_id, method, \
                 query, headers, body, outcome, received_at) \
                 VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}) \
                 ON CONFLICT (provider, dedupe_key) DO NOTHING",
                b.text(uuid::Uuid::now_v7().to_string()),
                b.text(m.provider.as_str().to_string()),
                b.text(m.dedupe_key.clone()),
                b.text(m.payment_id.map(|p| p.to_string())),
                b.text(m.method.clone()),
                b.text(m.query.clone()),
                b.text(m.headers.to_string()),
                b.text(m.body.clone()),
                b.text(m.outcome.clone()),
                b.int(now),
            );
            b.statement(&sql);
            b.gate(Gate::SeenBefore);
        }
    }
    if let Some(t) = &cs.gateway_txn_new {
        write_gateway_txn(&mut b, t, now);
    }
    let new_order = cs.order.is_some();
    if let Some(o) = &cs.order {
        let sql = format!(
            "INSERT INTO orders (product_name, amount_minor, payment_type, status, payment_id, \
             created_at, updated_at, access_token) \
             VALUES ({}, {}, {}, 'pending', {}, {}, {}, {}) RETURNING 'order' AS part, id",
            b.text(o.product_name.as_str().to_string()),
            b.int(o.amount.minor()),
            b.text(o.payment_type.as_str().to_string()),
            b.text(cs.payment.as_ref().map(|p| p.id.to_string())),
            b.int(now),
            b.int(now),
            b.text(super::orders::new_access_token()),
        );
        b.statement(&sql);
    }
    if let Some(new) = &cs.payment {
        insert_payment(&mut b, new, new_order, now);
    }
    if let Some(c) = cs.order_status {
        let sql = format!(
            "UPDATE orders SET status = {}, updated_at = {} WHERE id = {} AND status = {}",
            b.text(c.to.as_str().to_string()),
            b.int(now),
            b.int(c.id),
            b.text(c.from.as_str().to_string()),
        );
        b.statement(&sql);
    }
    if let Some(r) = &cs.refund_new {
        insert_refund(&mut b, r, now);
    }
    for e in &cs.events {
        insert_event(&mut b, e, now);
    }
    for job in &cs.jobs {
        insert_job(&mut b, job, cs.claim_of(job), cs.ran_inside_this(job), now);
    }
    b
}

fn insert_payment(b: &mut Batch, new: &crate::store::NewPayment, new_order: bool, now: i64) {
    // A new order's payment is referenced by the order's id, which the
    // statement just before made (`last_insert_rowid()`).
    let (merchant_ref, order_id) = if new_order {
        (
            "CAST(last_insert_rowid() AS TEXT)".to_string(),
            "last_insert_rowid()".to_string(),
        )
    } else {
        (b.text(new.merchant_ref.clone()), b.int(new.order_id))
    };
    let sql = format!(
        concat!(
            "INSERT INTO payments (id, provider, merchant_ref, amount_minor, currency, \
             description, status, idempotency_key, order_id, created_at, updated_at, version) \
             VALUES ({}, {}, {}, {}, {}, {}, 'pending', {}, {}, {}, {}, 0) \
             RETURNING 'payment' AS part, ",
            payment_columns!()
        ),
        b.text(new.id.to_string()),
        b.text(new.provider.as_str().to_string()),
        merchant_ref,
        b.int(new.amount.minor()),
        b.text(new.currency.code().to_string()),
        b.text(new.description.as_str().to_string()),
        b.text(new.idempotency_key.clone()),
        order_id,
        b.int(now),
        b.int(now),
    );
    b.statement(&sql);
}

/// Applies a checked change if, and only if, the row is still at the version
/// and status the change was built from. Anything else is a conflict.
///
/// Only the primary key may drive this update. The status test is written as
/// `COALESCE(status, '')` (status is NOT NULL, so it means the same) because a
/// bare `status = …` lets the planner pick the (status, created_at) index on a
/// table it has no statistics for yet and walk every payment in that status
/// per update: the benchmark caught O(backlog) work per job that way.
fn change_payment(b: &mut Batch, c: &PaymentChange, now: i64) {
    let sql = format!(
        "UPDATE payments SET status = {}, status_reason = COALESCE({}, status_reason), \
         payment_url = COALESCE({}, payment_url), gateway_ref = COALESCE({}, gateway_ref), \
         gateway_trans_id = COALESCE({}, gateway_trans_id), \
         tracking_code = COALESCE({}, tracking_code), \
         encrypted_user_data = COALESCE({}, encrypted_user_data), \
         completed_at = COALESCE({}, completed_at), updated_at = {}, version = version + 1 \
         WHERE id = {} AND version = {} AND COALESCE(status, '') = {} \
         RETURNING 'changed' AS part, {}",
        b.text(
            c.new_status
                .unwrap_or(c.expected_status)
                .as_str()
                .to_string()
        ),
        b.text(c.status_reason.clone()),
        b.text(c.payment_url.clone()),
        b.text(c.gateway_ref.clone()),
        b.text(c.gateway_trans_id.clone()),
        b.text(c.tracking_code.clone()),
        b.text(c.encrypted_user_data.clone()),
        b.int(c.completes().then_some(now)),
        b.int(now),
        b.text(c.id.to_string()),
        b.int(c.expected_version),
        b.text(c.expected_status.as_str().to_string()),
        payment_columns!(),
    );
    b.statement(&sql);
    b.gate(Gate::MovedOn);
}

/// Inserts a new gateway transaction (its gateway id must be new: a taken
/// one fails the insert, a conflict) or updates one still at its expected
/// version (a gate).
fn write_gateway_txn(b: &mut Batch, t: &GatewayTxnWrite, now: i64) {
    match t.expected_version {
        None => {
            let sql = format!(
                "INSERT INTO gateway_transactions (provider, external_id, payment_id, state, \
                 amount_minor, external_time, data, created_at, updated_at, version) \
                 VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, 0) \
                 RETURNING 'gateway_txn' AS part, id",
                b.text(t.provider.as_str().to_string()),
                b.text(t.external_id.clone()),
                b.text(t.payment_id.to_string()),
                b.text(t.state.clone()),
                b.int(t.amount_minor),
                b.int(t.external_time_ms),
                b.text(t.data.to_string()),
                b.int(now),
                b.int(now),
            );
            b.statement(&sql);
        }
        Some(version) => {
            let sql = format!(
                "UPDATE gateway_transactions SET state = {}, \
                 external_time = COALESCE({}, external_time), data = {}, updated_at = {}, \
                 version = version + 1 \
                 WHERE provider = {} AND external_id = {} AND version = {} \
                 RETURNING 'gateway_txn' AS part, id",
                b.text(t.state.clone()),
                b.int(t.external_time_ms),
                b.text(t.data.to_string()),
                b.int(now),
                b.text(t.provider.as_str().to_string()),
                b.text(t.external_id.clone()),
                b.int(version),
            );
            b.statement(&sql);
            b.gate(Gate::MovedOn);
        }
    }
}

fn insert_refund(b: &mut Batch, r: &NewRefund, now: i64) {
    let sql = format!(
        "INSERT INTO refunds (id, payment_id, amount_minor, reason, status, caller, \
         idempotency_key, created_at, updated_at) \
         VALUES ({}, {}, {}, {}, 'requested', {}, {}, {}, {})",
        b.text(r.id.to_string()),
        b.text(r.payment_id.to_string()),
        b.int(r.amount_minor),
        b.text(r.reason.clone()),
        b.text(r.caller.clone()),
        b.text(r.idempotency_key.clone()),
        b.int(now),
        b.int(now),
    );
    b.statement(&sql);
}

/// Moves a refund only while it is still in the status the change was built from.
fn change_refund(b: &mut Batch, r: &RefundChange, now: i64) {
    let sql = format!(
        "UPDATE refunds SET status = {}, failure_reason = COALESCE({}, failure_reason), \
         gateway_ref = COALESCE({}, gateway_ref), updated_at = {} WHERE id = {} AND status = {}",
        b.text(r.to.as_str().to_string()),
        b.text(r.failure_reason.clone()),
        b.text(r.gateway_ref.clone()),
        b.int(now),
        b.text(r.id.to_string()),
        b.text(r.from.as_str().to_string()),
    );
    b.statement(&sql);
    b.gate(Gate::MovedOn);
}

fn insert_event(b: &mut Batch, e: &NewEvent, now: i64) {
    let sql = format!(
        "INSERT INTO payment_events (payment_id, kind, message, detail, created_at) \
         VALUES ({}, {}, {}, {}, {})",
        b.text(e.payment_id.to_string()),
        b.text(e.kind.as_str().to_string()),
        b.text(e.message.clone()),
        b.text(e.detail.to_string()),
        b.int(now),
    );
    b.statement(&sql);
}

/// Inserts a job unless one with the same dedupe key exists. A due job is
/// marked dispatched because the caller pushes it right after commit (its
/// row comes back, see [`Batch::run`]); if that push is lost, the sweeper
/// notices the stale mark. The job the finishing attempt claims (`claim`: its
/// worker and lease end) is inserted running under that claim, with no mark;
/// the one whose work it ran itself (`ran`), succeeded, with no mark.
///
/// A `notify` job is written only while an endpoint is enabled, as on
/// PostgreSQL (apply_pg.rs, `notify_has_a_listener`).
fn insert_job(b: &mut Batch, job: &NewJob, claim: Option<(&str, i64)>, ran: bool, now: i64) {
    let start = JobStart::of(job, now, claim, ran);
    let (status, attempts) = (start.status.as_str(), start.attempts);
    let kind = b.text(job.kind().as_str().to_string());
    let sql = format!(
        "INSERT INTO jobs (id, kind, payment_id, payload, dedupe_key, status, attempts, \
         max_attempts, run_at, dispatched_at, locked_by, lease_until, finished_at, created_at, \
         updated_at) \
         SELECT {}, {kind}, {}, {}, {}, '{status}', {attempts}, {}, {}, {}, {}, {}, {}, {}, {} \
         WHERE {kind} <> 'notify' OR EXISTS (SELECT 1 FROM webhook_endpoints WHERE status = 'enabled') \
         ON CONFLICT (dedupe_key) DO NOTHING \
         RETURNING 'job' AS part, id, kind, dispatched_at, locked_by",
        b.text(job.id.to_string()),
        b.text(job.payment_id.map(|p| p.to_string())),
        b.text(job.payload.args_json().to_string()),
        b.text(job.dedupe_key.clone()),
        b.int(i64::from(job.max_attempts)),
        b.int(job.run_at_ms),
        b.int(start.dispatched.then_some(now)),
        b.text(start.claim.map(|(worker, _)| worker.to_string())),
        b.int(start.claim.map(|(_, until)| until)),
        b.int(start.finished.then_some(now)),
        b.int(now),
        b.int(now),
    );
    b.statement(&sql);
}
