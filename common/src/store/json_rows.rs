//! Several rows passed to PostgreSQL as one JSON parameter, so a statement can
//! insert a variable number of events and jobs without a round trip per row
//! (sqlx's `Any` driver has no array binds). The SQL side reads them with
//! `json_array_elements($n::json) WITH ORDINALITY` and inserts in array order.

use super::jobs::{job_message, NewJob};
use super::StoreResult;
use crate::domain::{JobMessage, NewEvent};
use serde_json::{json, Value};

/// `[{payment_id, kind, message, detail}]`; `detail` is the JSON text stored in
/// the column, as the one-row insert stores it.
pub(crate) fn events(events: &[NewEvent]) -> String {
    Value::Array(
        events
            .iter()
            .map(|e| {
                json!({
                    "payment_id": e.payment_id.to_string(),
                    "kind": e.kind.as_str(),
                    "message": e.message,
                    "detail": e.detail.to_string(),
                })
            })
            .collect(),
    )
    .to_string()
}

/// `[{id, kind, payment_id, payload, dedupe_key, max_attempts, run_at,
/// dispatched_at}]`; a job due now is marked dispatched (its message is pushed
/// right after commit), as [`super::jobs::insert_job`] does.
pub(crate) fn jobs(jobs: &[NewJob], now: i64) -> String {
    Value::Array(
        jobs.iter()
            .map(|j| {
                json!({
                    "id": j.id.to_string(),
                    "kind": j.kind.as_str(),
                    "payment_id": j.payment_id.map(|p| p.to_string()),
                    "payload": j.payload.to_string(),
                    "dedupe_key": j.dedupe_key,
                    "max_attempts": i64::from(j.max_attempts),
                    "run_at": j.run_at_ms,
                    "dispatched_at": (j.run_at_ms <= now).then_some(now),
                })
            })
            .collect(),
    )
    .to_string()
}

/// The messages of the inserted jobs that are due now, from the statement's
/// `json_agg(json_build_array(id, kind))` (or `[]`).
pub(crate) fn messages(text: &str) -> StoreResult<Vec<JobMessage>> {
    let pairs: Vec<(String, String)> = serde_json::from_str(text)
        .map_err(|e| super::StoreError::Corrupt(format!("job messages {text:?}: {e}")))?;
    pairs
        .iter()
        .map(|(id, kind)| job_message(id, kind))
        .collect()
}

/// Inserts the events of `$ev` (a JSON parameter from [`events`]) at `$now`,
/// in order, when `$guard` (an SQL condition) holds. A macro so the statement
/// stays a `&'static str`.
macro_rules! insert_events_from_json {
    ($ev:literal, $now:literal, $guard:literal) => {
        concat!(
            "INSERT INTO payment_events (payment_id, kind, message, detail, created_at) \
             SELECT x->>'payment_id', x->>'kind', x->>'message', x->>'detail', ",
            $now,
            " FROM json_array_elements(",
            $ev,
            "::json) WITH ORDINALITY AS t(x, n) WHERE ",
            $guard,
            " ORDER BY n"
        )
    };
}
pub(crate) use insert_events_from_json;

/// Inserts the jobs of `$jobs` (from [`jobs`]) at `$now` when `$guard` holds;
/// returns `id, kind, dispatched_at` of those inserted (a dedupe key already
/// taken inserts nothing).
macro_rules! insert_jobs_from_json {
    ($jobs:literal, $now:literal, $guard:literal) => {
        concat!(
            "INSERT INTO jobs (id, kind, payment_id, payload, dedupe_key, status, attempts, \
             max_attempts, run_at, dispatched_at, created_at, updated_at) \
             SELECT x->>'id', x->>'kind', x->>'payment_id', x->>'payload', x->>'dedupe_key', \
             'queued', 0, (x->>'max_attempts')::bigint, (x->>'run_at')::bigint, \
             (x->>'dispatched_at')::bigint, ",
            $now,
            ", ",
            $now,
            " FROM json_array_elements(",
            $jobs,
            "::json) WITH ORDINALITY AS t(x, n) WHERE ",
            $guard,
            " ORDER BY n ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, kind, dispatched_at"
        )
    };
}
pub(crate) use insert_jobs_from_json;

/// The due messages of a `RETURNING id, kind, dispatched_at` CTE named `$cte`,
/// as one JSON text column for [`messages`].
macro_rules! due_messages_of {
    ($cte:literal) => {
        concat!(
            "COALESCE((SELECT json_agg(json_build_array(id, kind)) FROM ",
            $cte,
            " WHERE dispatched_at IS NOT NULL), '[]')::text"
        )
    };
}
pub(crate) use due_messages_of;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventKind, JobKind, PaymentId};

    #[test]
    fn jobs_due_now_are_marked_dispatched_and_later_ones_are_not() {
        let pid = PaymentId::new();
        let mut later = NewJob::now(JobKind::VerifyPayment, pid, 3).dedupe("k");
        later.run_at_ms = 2_000;
        let mut due = NewJob::now(JobKind::FetchUser, pid, 3);
        due.run_at_ms = 1_000;
        let v: Value = serde_json::from_str(&jobs(&[due, later], 1_000)).unwrap();
        assert_eq!(v[0]["dispatched_at"], json!(1_000));
        assert_eq!(v[0]["dedupe_key"], Value::Null);
        assert_eq!(v[1]["dispatched_at"], Value::Null);
        assert_eq!(v[1]["dedupe_key"], json!("k"));
        assert_eq!(v[1]["payload"], json!("null"));
    }

    #[test]
    fn event_detail_is_carried_as_its_json_text() {
        let e = NewEvent::new(PaymentId::new(), EventKind::Callback, "m").detail(json!({"a": 1}));
        let v: Value = serde_json::from_str(&events(&[e])).unwrap();
        assert_eq!(v[0]["detail"], json!("{\"a\":1}"));
        assert_eq!(v[0]["kind"], json!("callback"));
    }

    #[test]
    fn messages_parse_and_refuse_garbage() {
        let id = uuid::Uuid::now_v7();
        let m = messages(&format!("[[\"{id}\", \"fetch_user\"]]")).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].job_id, id);
        assert!(messages("[]").unwrap().is_empty());
        assert!(messages("nope").is_err());
        assert!(messages("[[\"x\", \"fetch_user\"]]").is_err());
    }
}
