//! Events and jobs as rows of the PostgreSQL applier's JSON document
//! (`apply_pg.rs`), and the job messages its statement returns. Field names
//! are the SQL's names.

use super::rows::job_message;
use super::StoreResult;
use crate::domain::{JobMessage, JobStatus, NewEvent, NewJob};
use serde::Serialize;

/// `detail` is the JSON text stored in the column, as the one-row insert stores it.
#[derive(Debug, Serialize)]
pub(crate) struct EventRow<'a> {
    payment_id: String,
    kind: &'static str,
    message: &'a str,
    detail: String,
}

impl<'a> EventRow<'a> {
    pub(crate) fn of(e: &'a NewEvent) -> Self {
        EventRow {
            payment_id: e.payment_id.to_string(),
            kind: e.kind.as_str(),
            message: &e.message,
            detail: e.detail.to_string(),
        }
    }
}

/// A job due now is marked dispatched (its message is pushed right after
/// commit), as the SQLite applier does. The job the finishing attempt claims
/// for itself (`claim`: its worker and lease end) is inserted running under
/// that claim instead, with no message; the one whose work it ran itself
/// (`ran`) is inserted succeeded, with no message.
#[derive(Debug, Serialize)]
pub(crate) struct JobRow {
    id: String,
    kind: &'static str,
    payment_id: Option<String>,
    payload: String,
    dedupe_key: Option<String>,
    status: &'static str,
    attempts: i64,
    max_attempts: i64,
    run_at: i64,
    dispatched_at: Option<i64>,
    locked_by: Option<String>,
    lease_until: Option<i64>,
    finished_at: Option<i64>,
}

/// How a new job row starts: its status and attempts, the claim it is
/// inserted under (the finishing attempt's or the API claimant's), and
/// whether it is marked dispatched (due now and queued: its message is
/// pushed after the commit) or finished. Both appliers write these.
pub(crate) struct JobStart<'a> {
    pub status: JobStatus,
    pub attempts: i64,
    pub claim: Option<(&'a str, i64)>,
    pub dispatched: bool,
    pub finished: bool,
}

impl<'a> JobStart<'a> {
    /// `claim`: the claim the job is inserted under, if it is the claimed
    /// one; `ran`: the finishing attempt did its work itself (it wins over
    /// a claim: there is nothing left to run).
    pub(crate) fn of(j: &NewJob, now: i64, claim: Option<(&'a str, i64)>, ran: bool) -> Self {
        let (status, attempts) = match (ran, claim) {
            (true, _) => (JobStatus::Succeeded, 1),
            (false, Some(_)) => (JobStatus::Running, 1),
            (false, None) => (JobStatus::Queued, 0),
        };
        JobStart {
            status,
            attempts,
            claim: claim.filter(|_| !ran),
            dispatched: status == JobStatus::Queued && j.run_at_ms <= now,
            finished: ran,
        }
    }
}

impl JobRow {
    pub(crate) fn of(j: &NewJob, now: i64, claim: Option<(&str, i64)>, ran: bool) -> Self {
        let start = JobStart::of(j, now, claim, ran);
        JobRow {
            id: j.id.to_string(),
            kind: j.kind().as_str(),
            payment_id: j.payment_id.map(|p| p.to_string()),
            payload: j.payload.args_json().to_string(),
            dedupe_key: j.dedupe_key.clone(),
            status: start.status.as_str(),
            attempts: start.attempts,
            max_attempts: i64::from(j.max_attempts),
            run_at: j.run_at_ms,
            dispatched_at: start.dispatched.then_some(now),
            locked_by: start.claim.map(|(worker, _)| worker.to_string()),
            lease_until: start.claim.map(|(_, until)| until),
            finished_at: start.finished.then_some(now),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventKind, JobPayload, PaymentId, RetryPolicies, VerifyArgs};
    use serde_json::{json, Value};

    #[test]
    fn jobs_due_now_are_marked_dispatched_and_later_ones_are_not() {
        let pid = PaymentId::new();
        let policies = RetryPolicies::default();
        let later = NewJob::new(
            JobPayload::VerifyPayment(VerifyArgs::default()),
            Some(pid),
            &policies,
        )
        .dedupe("k")
        .run_at(2_000);
        let due = NewJob::new(JobPayload::FetchUser, Some(pid), &policies).run_at(1_000);
        let v: Value = serde_json::to_value([
            JobRow::of(&due, 1_000, None, false),
            JobRow::of(&later, 1_000, None, false),
        ])
        .unwrap();
        assert_eq!(v[0]["dispatched_at"], json!(1_000));
        assert_eq!(v[0]["dedupe_key"], Value::Null);
        assert_eq!(v[0]["payload"], json!("null"));
        assert_eq!(v[1]["dispatched_at"], Value::Null);
        assert_eq!(v[1]["dedupe_key"], json!("k"));
        assert_eq!(v[1]["payload"], json!("{}"));
        assert_eq!(v[1]["kind"], json!("verify_payment"));
        assert_eq!(v[0]["locked_by"], Value::Null);
        // The job a finishing attempt claims: running under the claim, no message.
        let v =
            serde_json::to_value(JobRow::of(&due, 1_000, Some(("w-1", 61_000)), false)).unwrap();
        assert_eq!(v["dispatched_at"], Value::Null);
        assert_eq!(v["locked_by"], json!("w-1"));
        assert_eq!(v["lease_until"], json!(61_000));
        assert_eq!(
            (&v["status"], &v["attempts"]),
            (&json!("running"), &json!(1))
        );
        // The job whose work the finishing attempt ran: succeeded, no message.
        let v = serde_json::to_value(JobRow::of(&due, 1_000, None, true)).unwrap();
        assert_eq!(v["dispatched_at"], Value::Null);
        assert_eq!(v["locked_by"], Value::Null);
        assert_eq!(
            (&v["status"], &v["attempts"]),
            (&json!("succeeded"), &json!(1))
        );
        assert_eq!(v["finished_at"], json!(1_000));
    }

    #[test]
    fn event_detail_is_carried_as_its_json_text() {
        let e = NewEvent::new(PaymentId::new(), EventKind::Callback, "m").detail(json!({"a": 1}));
        let v = serde_json::to_value(EventRow::of(&e)).unwrap();
        assert_eq!(v["detail"], json!("{\"a\":1}"));
        assert_eq!(v["kind"], json!("callback"));
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
