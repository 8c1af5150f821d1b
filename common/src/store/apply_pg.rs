//! PostgreSQL's applier: a whole [`Changeset`] in one statement, one round
//! trip (a payment's life is mostly per-statement cost on the database, see
//! PERFORMANCE.md).
//!
//! The changeset travels as ONE JSON parameter whose fields the SQL reads by
//! name (`(SELECT j FROM c) #>> '{change,id}'`, `c` being the parameter
//! parsed once). That is the tool chosen instead of
//! positional binds: a statement this size with two dozen `$n` would depend
//! on a bind order nothing but a comment keeps, and sqlx's `Any` driver has
//! neither array binds nor a query builder that names its placeholders. The
//! JSON side is the [`Doc`] struct below (serde names its fields), so the
//! Rust side of every name is checked by the compiler and both sides are
//! exercised by the store contract suite.
//!
//! All parts of one statement see one snapshot and none sees another's
//! writes, so the gates are chained through `RETURNING` output:
//! - `held` locks the payment row at the expected version and status (the
//!   lock re-checks the newest row, so a change that committed first makes
//!   it empty); `NO KEY` is the strength the update takes anyway, so event
//!   inserts for the payment (their foreign key check takes a key-share lock)
//!   are not blocked. `txn_held` does the same for a gateway transaction;
//! - `checks` is true when every expected row was held;
//! - the origin's own gate: `fence` ends a job attempt only if the claim is
//!   ours, `m` stores a gateway's call only if its dedupe key is new; either
//!   only when `checks` holds;
//! - `go` = all of that; every other part writes only when `go` holds.
//!
//! So either all of it lands or none of it. A new gateway transaction whose id
//! is taken, or a payment whose idempotency key is, fails the whole statement
//! with a unique violation, which the caller tells apart by constraint name.

use super::changeset::{Applied, Changeset, Committed, GatewayTxnWrite, Origin};
use super::jobs::Outcome;
use super::rows::{self, payment_columns};
use super::{json_rows, now_ms, Lane, Store, StoreError, StoreResult};
use serde::Serialize;
use sqlx::Row;

/// One field of the parameter document, as SQL text.
macro_rules! doc {
    ($part:literal, $field:literal) => {
        concat!("((SELECT j FROM c) #>> '{", $part, ",", $field, "}')")
    };
    ($field:literal) => {
        concat!("((SELECT j FROM c) #>> '{", $field, "}')")
    };
}

/// True when the document has the part.
macro_rules! has {
    ($part:literal) => {
        concat!("(((SELECT j FROM c) -> '", $part, "') IS NOT NULL)")
    };
}

/// The changeset's time, ms.
macro_rules! now {
    () => {
        "((SELECT j FROM c) #>> '{now}')::bigint"
    };
}

/// A job row is written unless it is a `notify` job and no endpoint is
/// enabled: with nobody to tell, the notification would fan out to nothing
/// (docs/notifications.md, 'No endpoint, no job'). `$kind` is the row's kind.
macro_rules! notify_has_a_listener {
    ($kind:literal) => {
        concat!(
            "(",
            $kind,
            " <> 'notify' OR EXISTS (SELECT 1 FROM webhook_endpoints WHERE status = 'enabled'))"
        )
    };
}

/// The `ev` and `nj` parts: the document's events and jobs, inserted in
/// order when `$guard` (an SQL condition) holds; `nj` returns what it inserted.
macro_rules! events_and_jobs {
    ($guard:literal) => {
        concat!(
            "ev AS (INSERT INTO payment_events (payment_id, kind, message, detail, created_at) \
               SELECT x->>'payment_id', x->>'kind', x->>'message', x->>'detail', ",
            now!(),
            " FROM jsonb_array_elements((SELECT j -> 'events' FROM c)) WITH ORDINALITY AS t(x, n) \
               WHERE ",
            $guard,
            " ORDER BY n), \
             nj AS (INSERT INTO jobs (id, kind, payment_id, payload, dedupe_key, status, attempts, \
               max_attempts, run_at, dispatched_at, locked_by, lease_until, finished_at, \
               created_at, updated_at) \
               SELECT x->>'id', x->>'kind', x->>'payment_id', x->>'payload', x->>'dedupe_key', \
               x->>'status', (x->>'attempts')::bigint, \
               (x->>'max_attempts')::bigint, (x->>'run_at')::bigint, \
               (x->>'dispatched_at')::bigint, x->>'locked_by', (x->>'lease_until')::bigint, \
               (x->>'finished_at')::bigint, ",
            now!(),
            ", ",
            now!(),
            " FROM jsonb_array_elements((SELECT j -> 'jobs' FROM c)) WITH ORDINALITY AS t(x, n) \
               WHERE ",
            $guard,
            " AND ",
            notify_has_a_listener!("x->>'kind'"),
            " ORDER BY n \
               ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, kind, dispatched_at, locked_by)"
        )
    };
}

/// The messages of the jobs `nj` inserted that are due now, and the job it
/// inserted claimed by the finishing attempt (`claimed_next`).
macro_rules! due_messages {
    () => {
        "COALESCE((SELECT json_agg(json_build_array(id, kind)) FROM nj \
           WHERE dispatched_at IS NOT NULL), '[]')::text AS messages, \
         (SELECT id FROM nj WHERE locked_by IS NOT NULL) AS claimed_next"
    };
}

/// The hottest shape, a new payment with its events and jobs (the create
/// path), as a statement of its own: the same document and the same result
/// columns as [`SQL`], without the parts a create never has. Running every
/// part's CTE doubled PostgreSQL's CPU per create (PERFORMANCE.md, "The
/// one-changeset statement"); a statement per shape is the way forward.
const CREATE_SQL: &str = concat!(
    "WITH c AS MATERIALIZED (SELECT $1::jsonb AS j), \
     p AS (INSERT INTO payments (id, provider, merchant_ref, amount_minor, currency, description, \
       status, idempotency_key, order_id, created_at, updated_at, version) \
       SELECT x->>'id', x->>'provider', x->>'merchant_ref', (x->>'amount_minor')::bigint, \
       x->>'currency', x->>'description', 'pending', x->>'idempotency_key', \
       (x->>'order_id')::bigint, n, n, 0 \
       FROM (SELECT (SELECT j FROM c) -> 'payment' AS x, ",
    now!(),
    " AS n) s RETURNING ",
    payment_columns!(),
    "), ",
    events_and_jobs!("EXISTS (SELECT 1 FROM p)"),
    " SELECT true AS checked, true AS went, 0::bigint AS fenced, 0::bigint AS recorded, \
       NULL::bigint AS new_order_id, NULL::bigint AS txn_id, ",
    due_messages!(),
    ", p.* FROM (SELECT 1) AS one LEFT JOIN p ON TRUE"
);

/// `held`: the changed payment's row, locked at the expected version and
/// status (empty when the changeset changes no payment).
macro_rules! held_cte {
    () => {
        concat!(
            "held AS (SELECT id FROM payments WHERE ",
            has!("change"),
            " AND id = ",
            doc!("change", "id"),
            " AND version = ",
            doc!("change", "expected_version"),
            "::bigint AND COALESCE(status, '') = ",
            doc!("change", "expected_status"),
            " FOR NO KEY UPDATE)"
        )
    };
}

/// `held` found the payment, when there is one to change.
macro_rules! payment_held {
    () => {
        concat!("(NOT ", has!("change"), " OR EXISTS (SELECT 1 FROM held))")
    };
}

/// `fence`: ends the job attempt, only if the claim is still ours and
/// `checks` holds.
macro_rules! fence_cte {
    () => {
        concat!(
            "fence AS (UPDATE jobs SET status = ",
            doc!("fence", "status"),
            ", run_at = COALESCE(",
            doc!("fence", "run_at"),
            "::bigint, run_at), last_error = COALESCE(",
            doc!("fence", "error"),
            ", last_error), finished_at = ",
            doc!("fence", "finished_at"),
            "::bigint, lease_until = NULL, locked_by = NULL, dispatched_at = NULL, updated_at = ",
            now!(),
            " WHERE ",
            has!("fence"),
            " AND id = ",
            doc!("fence", "job_id"),
            " AND locked_by = ",
            doc!("fence", "worker"),
            " AND attempts = ",
            doc!("fence", "attempt"),
            "::bigint AND (SELECT ok FROM checks) RETURNING id)"
        )
    };
}

/// `m`: the gateway's call, stored only if its dedupe key is new and
/// `checks` holds.
macro_rules! inbound_cte {
    () => {
        concat!(
            "m AS (INSERT INTO inbound_messages (id, provider, dedupe_key, payment_id, method, \
               query, headers, body, outcome, received_at) \
               SELECT x->>'id', x->>'provider', x->>'dedupe_key', x->>'payment_id', x->>'method', \
               x->>'query', x->>'headers', x->>'body', x->>'outcome', ",
            now!(),
            " FROM (SELECT (SELECT j FROM c) -> 'inbound' AS x) s \
               WHERE x IS NOT NULL AND (SELECT ok FROM checks) \
               ON CONFLICT (provider, dedupe_key) DO NOTHING RETURNING id)"
        )
    };
}

/// `pay`: the payment change, on the row `held` locked, when `go` holds.
macro_rules! pay_cte {
    () => {
        concat!(
            "pay AS (UPDATE payments SET status = ",
            doc!("change", "status"),
            ", status_reason = COALESCE(",
            doc!("change", "status_reason"),
            ", status_reason), payment_url = COALESCE(",
            doc!("change", "payment_url"),
            ", payment_url), gateway_ref = COALESCE(",
            doc!("change", "gateway_ref"),
            ", gateway_ref), gateway_trans_id = COALESCE(",
            doc!("change", "gateway_trans_id"),
            ", gateway_trans_id), tracking_code = COALESCE(",
            doc!("change", "tracking_code"),
            ", tracking_code), encrypted_user_data = COALESCE(",
            doc!("change", "encrypted_user_data"),
            ", encrypted_user_data), completed_at = COALESCE(",
            doc!("change", "completed_at"),
            "::bigint, completed_at), updated_at = ",
            now!(),
            ", version = version + 1 WHERE id IN (SELECT id FROM held) AND (SELECT ok FROM go) \
               RETURNING ",
            payment_columns!(),
            ")"
        )
    };
}

/// `ord`: the order's move, only from the status the change expects, when
/// `go` holds.
macro_rules! ord_cte {
    () => {
        concat!(
            "ord AS (UPDATE orders SET status = ",
            doc!("order_status", "status"),
            ", updated_at = ",
            now!(),
            " WHERE ",
            has!("order_status"),
            " AND id = ",
            doc!("order_status", "id"),
            "::bigint AND status = ",
            doc!("order_status", "from"),
            " AND (SELECT ok FROM go) RETURNING id)"
        )
    };
}

/// The result columns a shape without a new payment, order or gateway
/// transaction answers after `checked, went, fenced, recorded`: the changed
/// payment's row in the payment's columns (`Applied::changed`).
macro_rules! no_new_rows {
    () => {
        concat!(
            "NULL::bigint AS new_order_id, NULL::bigint AS txn_id, ",
            due_messages!(),
            ", pay.* FROM (SELECT 1) AS one LEFT JOIN pay ON TRUE"
        )
    };
}

/// A job attempt's finish (the pipeline's hottest write after the create):
/// the fence, an optional payment change and order move, events and next
/// jobs. The same document and result columns as [`SQL`]; tables a finish
/// never writes are not named, so the statement neither locks nor plans them.
const JOB_SQL: &str = concat!(
    "WITH c AS MATERIALIZED (SELECT $1::jsonb AS j), ",
    held_cte!(),
    ", checks AS (SELECT ",
    payment_held!(),
    " AS ok), ",
    fence_cte!(),
    ", go AS (SELECT (SELECT ok FROM checks) AND EXISTS (SELECT 1 FROM fence) AS ok), ",
    pay_cte!(),
    ", ",
    ord_cte!(),
    ", ",
    events_and_jobs!("(SELECT ok FROM go)"),
    " SELECT (SELECT ok FROM checks) AS checked, (SELECT ok FROM go) AS went, \
       (SELECT COUNT(*) FROM fence) AS fenced, 0::bigint AS recorded, ",
    no_new_rows!()
);

/// A gateway's call that carries no gateway-transaction row (medogram's
/// callback, Atmos' webhook): the call, an optional payment change and order
/// move, events and jobs.
const INBOUND_SQL: &str = concat!(
    "WITH c AS MATERIALIZED (SELECT $1::jsonb AS j), ",
    held_cte!(),
    ", checks AS (SELECT ",
    payment_held!(),
    " AS ok), ",
    inbound_cte!(),
    ", go AS (SELECT (SELECT ok FROM checks) AND EXISTS (SELECT 1 FROM m) AS ok), ",
    pay_cte!(),
    ", ",
    ord_cte!(),
    ", ",
    events_and_jobs!("(SELECT ok FROM go)"),
    " SELECT (SELECT ok FROM checks) AS checked, (SELECT ok FROM go) AS went, \
       0::bigint AS fenced, (SELECT COUNT(*) FROM m) AS recorded, ",
    no_new_rows!()
);

/// Every part a changeset can have, each gated on its presence.
const SQL: &str = concat!(
    // The document is parsed once: every part reads the materialized `c`
    // (a `$1::jsonb` per reference would parse the text again each time,
    // which the benchmark showed costing more than the writes).
    "WITH c AS MATERIALIZED (SELECT $1::jsonb AS j), ",
    held_cte!(),
    ", txn_held AS (SELECT id FROM gateway_transactions WHERE ",
    doc!("txn_upd", "expected_version"),
    " IS NOT NULL AND provider = ",
    doc!("txn_upd", "provider"),
    " AND external_id = ",
    doc!("txn_upd", "external_id"),
    " AND version = ",
    doc!("txn_upd", "expected_version"),
    "::bigint FOR NO KEY UPDATE), \
     refund_held AS (SELECT id FROM refunds WHERE ",
    has!("refund_upd"),
    " AND id = ",
    doc!("refund_upd", "id"),
    " AND status = ",
    doc!("refund_upd", "from"),
    " FOR NO KEY UPDATE), \
     checks AS (SELECT ",
    payment_held!(),
    " AND (",
    doc!("txn_upd", "expected_version"),
    " IS NULL OR EXISTS (SELECT 1 FROM txn_held)) AND (NOT ",
    has!("refund_upd"),
    " OR EXISTS (SELECT 1 FROM refund_held)) AS ok), ",
    fence_cte!(),
    ", ",
    inbound_cte!(),
    ", go AS (SELECT (SELECT ok FROM checks) AND (NOT ",
    has!("fence"),
    " OR EXISTS (SELECT 1 FROM fence)) AND (NOT ",
    has!("inbound"),
    " OR EXISTS (SELECT 1 FROM m)) AS ok), \
     o AS (INSERT INTO orders (product_name, amount_minor, payment_type, status, payment_id, \
       created_at, updated_at, access_token) \
       SELECT x->>'product_name', (x->>'amount_minor')::bigint, x->>'payment_type', 'pending', \
       x->>'payment_id', n, n, x->>'access_token' \
       FROM (SELECT (SELECT j FROM c) -> 'order' AS x, ",
    now!(),
    " AS n) s WHERE x IS NOT NULL AND (SELECT ok FROM go) RETURNING id), \
     p AS (INSERT INTO payments (id, provider, merchant_ref, amount_minor, currency, description, \
       status, idempotency_key, order_id, created_at, updated_at, version) \
       SELECT x->>'id', x->>'provider', COALESCE((SELECT id::text FROM o), x->>'merchant_ref'), \
       (x->>'amount_minor')::bigint, x->>'currency', x->>'description', 'pending', \
       x->>'idempotency_key', COALESCE((SELECT id FROM o), (x->>'order_id')::bigint), n, n, 0 \
       FROM (SELECT (SELECT j FROM c) -> 'payment' AS x, ",
    now!(),
    " AS n) s WHERE x IS NOT NULL AND (SELECT ok FROM go) RETURNING ",
    payment_columns!(),
    "), ",
    pay_cte!(),
    ", ",
    ord_cte!(),
    ", \
     txn_new AS (INSERT INTO gateway_transactions (provider, external_id, payment_id, state, \
       amount_minor, external_time, data, created_at, updated_at, version) \
       SELECT x->>'provider', x->>'external_id', x->>'payment_id', x->>'state', \
       (x->>'amount_minor')::bigint, (x->>'external_time')::bigint, x->>'data', n, n, 0 \
       FROM (SELECT (SELECT j FROM c) -> 'txn_new' AS x, ",
    now!(),
    " AS n) s WHERE x IS NOT NULL AND (SELECT ok FROM go) \
       RETURNING id), \
     txn_upd AS (UPDATE gateway_transactions SET state = ",
    doc!("txn_upd", "state"),
    ", external_time = COALESCE(",
    doc!("txn_upd", "external_time"),
    "::bigint, external_time), data = ",
    doc!("txn_upd", "data"),
    ", updated_at = ",
    now!(),
    ", version = version + 1 WHERE id IN (SELECT id FROM txn_held) AND (SELECT ok FROM go) \
       RETURNING id), \
     refund_new AS (INSERT INTO refunds (id, payment_id, amount_minor, reason, status, caller, \
       idempotency_key, created_at, updated_at) \
       SELECT x->>'id', x->>'payment_id', (x->>'amount_minor')::bigint, x->>'reason', \
       'requested', x->>'caller', x->>'idempotency_key', n, n \
       FROM (SELECT (SELECT j FROM c) -> 'refund_new' AS x, ",
    now!(),
    " AS n) s WHERE x IS NOT NULL AND (SELECT ok FROM go) RETURNING id), \
     refund_upd AS (UPDATE refunds SET status = ",
    doc!("refund_upd", "to"),
    ", failure_reason = COALESCE(",
    doc!("refund_upd", "failure_reason"),
    ", failure_reason), gateway_ref = COALESCE(",
    doc!("refund_upd", "gateway_ref"),
    ", gateway_ref), updated_at = ",
    now!(),
    " WHERE id IN (SELECT id FROM refund_held) AND (SELECT ok FROM go) RETURNING id), \
     ",
    events_and_jobs!("(SELECT ok FROM go)"),
    " SELECT (SELECT ok FROM checks) AS checked, (SELECT ok FROM go) AS went, \
       (SELECT COUNT(*) FROM fence) AS fenced, (SELECT COUNT(*) FROM m) AS recorded, \
       (SELECT id FROM o) AS new_order_id, \
       COALESCE((SELECT id FROM txn_new), (SELECT id FROM txn_upd)) AS txn_id, \
       ",
    due_messages!(),
    ", p.* FROM (SELECT 1) AS one LEFT JOIN p ON TRUE"
);

/// The parameter document. Field names are the SQL's names.
#[derive(Serialize)]
struct Doc<'a> {
    now: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    inbound: Option<InboundDoc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fence: Option<FenceDoc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<OrderDoc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment: Option<PaymentDoc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    change: Option<ChangeDoc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    order_status: Option<OrderStatusDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    txn_new: Option<TxnDoc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    txn_upd: Option<TxnDoc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refund_new: Option<RefundNewDoc<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refund_upd: Option<RefundUpdDoc<'a>>,
    events: Vec<json_rows::EventRow<'a>>,
    jobs: Vec<json_rows::JobRow>,
}

#[derive(Serialize)]
struct InboundDoc<'a> {
    id: String,
    provider: &'static str,
    dedupe_key: &'a str,
    payment_id: Option<String>,
    method: &'a str,
    query: &'a str,
    headers: String,
    body: &'a str,
    outcome: &'a str,
}

#[derive(Serialize)]
struct FenceDoc<'a> {
    job_id: String,
    worker: &'a str,
    attempt: i64,
    status: &'static str,
    run_at: Option<i64>,
    error: Option<String>,
    finished_at: Option<i64>,
}

#[derive(Serialize)]
struct OrderDoc<'a> {
    product_name: &'a str,
    amount_minor: i64,
    payment_type: &'static str,
    payment_id: String,
    access_token: String,
}

#[derive(Serialize)]
struct PaymentDoc<'a> {
    id: String,
    provider: &'static str,
    merchant_ref: &'a str,
    amount_minor: i64,
    currency: &'static str,
    description: &'a str,
    idempotency_key: Option<&'a str>,
    order_id: Option<i64>,
}

#[derive(Serialize)]
struct ChangeDoc<'a> {
    id: String,
    expected_version: i64,
    expected_status: &'static str,
    status: &'static str,
    status_reason: Option<&'a str>,
    payment_url: Option<&'a str>,
    gateway_ref: Option<&'a str>,
    gateway_trans_id: Option<&'a str>,
    tracking_code: Option<&'a str>,
    encrypted_user_data: Option<&'a str>,
    completed_at: Option<i64>,
}

#[derive(Serialize)]
struct OrderStatusDoc {
    id: i64,
    from: &'static str,
    status: &'static str,
}

#[derive(Serialize)]
struct TxnDoc<'a> {
    provider: &'static str,
    external_id: &'a str,
    payment_id: String,
    state: &'a str,
    amount_minor: i64,
    external_time: Option<i64>,
    data: String,
    expected_version: Option<i64>,
}

#[derive(Serialize)]
struct RefundNewDoc<'a> {
    id: String,
    payment_id: String,
    amount_minor: i64,
    reason: Option<&'a str>,
    caller: &'a str,
    idempotency_key: Option<&'a str>,
}

#[derive(Serialize)]
struct RefundUpdDoc<'a> {
    id: String,
    from: &'static str,
    to: &'static str,
    failure_reason: Option<&'a str>,
    gateway_ref: Option<&'a str>,
}

impl<'a> TxnDoc<'a> {
    fn of(t: &'a GatewayTxnWrite) -> Self {
        TxnDoc {
            provider: t.provider.as_str(),
            external_id: &t.external_id,
            payment_id: t.payment_id.to_string(),
            state: &t.state,
            amount_minor: t.amount_minor,
            external_time: t.external_time_ms,
            data: t.data.to_string(),
            expected_version: t.expected_version,
        }
    }
}

fn doc(cs: &Changeset, now: i64) -> Doc<'_> {
    let (inbound, fence) = match &cs.origin {
        Origin::Api => (None, None),
        Origin::Inbound(m) => (
            Some(InboundDoc {
                id: uuid::Uuid::now_v7().to_string(),
                provider: m.provider.as_str(),
                dedupe_key: &m.dedupe_key,
                payment_id: m.payment_id.map(|p| p.to_string()),
                method: &m.method,
                query: &m.query,
                headers: m.headers.to_string(),
                body: &m.body,
                outcome: &m.outcome,
            }),
            None,
        ),
        Origin::Job(f) => {
            let o = Outcome::of(&f.result, now);
            (
                None,
                Some(FenceDoc {
                    job_id: f.job_id.to_string(),
                    worker: &f.worker,
                    attempt: i64::from(f.attempt),
                    status: o.status.as_str(),
                    run_at: o.run_at,
                    error: o.error,
                    finished_at: o.finished_at,
                }),
            )
        }
    };
    Doc {
        now,
        inbound,
        fence,
        order: cs.order.as_ref().map(|o| OrderDoc {
            product_name: o.product_name.as_str(),
            amount_minor: o.amount.minor(),
            payment_type: o.payment_type.as_str(),
            payment_id: cs
                .payment
                .as_ref()
                .map(|p| p.id.to_string())
                .unwrap_or_default(),
            access_token: super::orders::new_access_token(),
        }),
        payment: cs.payment.as_ref().map(|p| PaymentDoc {
            id: p.id.to_string(),
            provider: p.provider.as_str(),
            merchant_ref: &p.merchant_ref,
            amount_minor: p.amount.minor(),
            currency: p.currency.code(),
            description: p.description.as_str(),
            idempotency_key: p.idempotency_key.as_deref(),
            order_id: p.order_id,
        }),
        change: cs.change.as_ref().map(|c| ChangeDoc {
            id: c.id.to_string(),
            expected_version: c.expected_version,
            expected_status: c.expected_status.as_str(),
            status: c.new_status.unwrap_or(c.expected_status).as_str(),
            status_reason: c.status_reason.as_deref(),
            payment_url: c.payment_url.as_deref(),
            gateway_ref: c.gateway_ref.as_deref(),
            gateway_trans_id: c.gateway_trans_id.as_deref(),
            tracking_code: c.tracking_code.as_deref(),
            encrypted_user_data: c.encrypted_user_data.as_deref(),
            completed_at: c.completes().then_some(now),
        }),
        order_status: cs.order_status.map(|c| OrderStatusDoc {
            id: c.id,
            from: c.from.as_str(),
            status: c.to.as_str(),
        }),
        txn_new: cs.gateway_txn_new.as_ref().map(TxnDoc::of),
        txn_upd: cs.gateway_txn_update.as_ref().map(TxnDoc::of),
        refund_new: cs.refund_new.as_ref().map(|r| RefundNewDoc {
            id: r.id.to_string(),
            payment_id: r.payment_id.to_string(),
            amount_minor: r.amount_minor,
            reason: r.reason.as_deref(),
            caller: &r.caller,
            idempotency_key: r.idempotency_key.as_deref(),
        }),
        refund_upd: cs.refund_change.as_ref().map(|r| RefundUpdDoc {
            id: r.id.to_string(),
            from: r.from.as_str(),
            to: r.to.as_str(),
            failure_reason: r.failure_reason.as_deref(),
            gateway_ref: r.gateway_ref.as_deref(),
        }),
        events: cs.events.iter().map(json_rows::EventRow::of).collect(),
        jobs: cs
            .jobs
            .iter()
            .map(|j| json_rows::JobRow::of(j, now, cs.claim_of(j), cs.ran_inside_this(j)))
            .collect(),
    }
}

/// The statement for a changeset's shape: the narrowest one that carries
/// every part it has (PERFORMANCE.md, "The one-changeset statement").
fn statement(cs: &Changeset) -> &'static str {
    let no_txn = cs.gateway_txn_new.is_none()
        && cs.gateway_txn_update.is_none()
        && cs.refund_new.is_none()
        && cs.refund_change.is_none();
    let no_new_rows = cs.order.is_none() && cs.payment.is_none() && no_txn;
    match cs.origin {
        // A new payment with its events and jobs, and nothing else.
        Origin::Api
            if cs.payment.is_some()
                && cs.order.is_none()
                && cs.change.is_none()
                && cs.order_status.is_none()
                && no_txn =>
        {
            CREATE_SQL
        }
        Origin::Job(_) if no_new_rows => JOB_SQL,
        Origin::Inbound(_) if no_new_rows => INBOUND_SQL,
        _ => SQL,
    }
}

impl Store {
    pub(super) async fn commit_pg(&self, cs: &Changeset, lane: Lane) -> StoreResult<Committed> {
        let now = now_ms();
        let doc = serde_json::to_string(&doc(cs, now))
            .map_err(|e| StoreError::Corrupt(format!("changeset document: {e}")))?;
        let sql = statement(cs);
        let row = super::written::written_rows(
            sqlx::query(sql).bind(doc),
            &mut *self.writer(lane).await?,
        )
        .await
        .map_err(super::commit_error)?
        .into_iter()
        .next()
        .ok_or(StoreError::Corrupt(
            "a changeset's statement returned no row".into(),
        ))?;
        let checked: bool = row.try_get("checked")?;
        let went: bool = row.try_get("went")?;
        if !checked {
            return Err(StoreError::Conflict);
        }
        if !went {
            return match cs.origin {
                Origin::Job(_) if row.try_get::<i64, _>("fenced")? == 0 => {
                    Err(StoreError::LeaseLost)
                }
                Origin::Inbound(_) if row.try_get::<i64, _>("recorded")? == 0 => {
                    Ok(Committed::Duplicate)
                }
                _ => Err(StoreError::Corrupt(
                    "a changeset's gate failed without a reason".into(),
                )),
            };
        }
        // The payment columns hold the created payment (the create and the
        // every-part shapes) or the changed one (a finish's and a gateway
        // call's shapes, `no_new_rows!`).
        let returned = match row.try_get::<Option<String>, _>("id")? {
            Some(_) => Some(rows::payment(&row)?),
            None => None,
        };
        let (payment, changed) = if cs.payment.is_some() {
            (returned, None)
        } else {
            (None, returned.filter(|_| cs.change.is_some()))
        };
        let order = match row.try_get::<Option<i64>, _>("new_order_id")? {
            Some(id) => Some(self.order(id).await?.ok_or(StoreError::NotFound)?),
            None => None,
        };
        Ok(Committed::Applied(Box::new(Applied {
            payment,
            changed,
            order,
            gateway_txn_id: row.try_get("txn_id")?,
            messages: json_rows::messages(&row.try_get::<String, _>("messages")?)?,
            claimed_next: row
                .try_get::<Option<String>, _>("claimed_next")?
                .map(|id| rows::job_id(&id))
                .transpose()?,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_reads_only_fields_the_document_has() {
        // Every `{part,field}` the SQL names must be a field of the document's
        // structs (a typo would read NULL silently, so check it here).
        let known: &[(&str, &[&str])] = &[
            (
                "change",
                &[
                    "id",
                    "expected_version",
                    "expected_status",
                    "status",
                    "status_reason",
                    "payment_url",
                    "gateway_ref",
                    "gateway_trans_id",
                    "tracking_code",
                    "encrypted_user_data",
                    "completed_at",
                ],
            ),
            (
                "txn_upd",
                &[
                    "provider",
                    "external_id",
                    "payment_id",
                    "state",
                    "amount_minor",
                    "external_time",
                    "data",
                    "expected_version",
                ],
            ),
            (
                "fence",
                &[
                    "job_id",
                    "worker",
                    "attempt",
                    "status",
                    "run_at",
                    "error",
                    "finished_at",
                ],
            ),
            ("order_status", &["id", "from", "status"]),
            (
                "refund_upd",
                &["id", "from", "to", "failure_reason", "gateway_ref"],
            ),
        ];
        let mut seen = 0;
        for sql in [SQL, JOB_SQL, INBOUND_SQL, CREATE_SQL] {
            let mut rest = sql;
            while let Some(i) = rest.find("#>> '{") {
                rest = &rest[i + 6..];
                let end = rest.find('}').unwrap();
                let path = &rest[..end];
                if let Some((part, field)) = path.split_once(',') {
                    let fields = known
                        .iter()
                        .find(|(p, _)| *p == part)
                        .unwrap_or_else(|| panic!("unknown part {part}"))
                        .1;
                    assert!(
                        fields.contains(&field),
                        "{part}.{field} is not in the document"
                    );
                    seen += 1;
                } else {
                    assert_eq!(path, "now");
                }
            }
        }
        assert!(seen > 60, "only {seen} fields read");
        // And those structs really serialize those names.
        let c = serde_json::to_value(ChangeDoc {
            id: String::new(),
            expected_version: 0,
            expected_status: "",
            status: "",
            status_reason: None,
            payment_url: None,
            gateway_ref: None,
            gateway_trans_id: None,
            tracking_code: None,
            encrypted_user_data: None,
            completed_at: None,
        })
        .unwrap();
        for f in known[0].1 {
            assert!(c.get(*f).is_some(), "ChangeDoc lacks {f}");
        }
    }
}
