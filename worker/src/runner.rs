//! Runs one job message: claim the ledger row, execute the handler for its
//! kind, and record the outcome (with the retry policy) in one transaction.

use crate::jobs::{self, Effects, Step};
use crate::Engine;
use paygate_common::domain::NewJob;
use paygate_common::domain::{JobMessage, Payment, PaymentChange, Priority};
use paygate_common::queue::dispatch_all;
use paygate_common::store::{
    serving_a_waiting_client, ClaimedJob, JobFinish, JobResult, NextClaim, StoreError,
};
use std::time::{Duration, Instant};
use tracing::Instrument;
use uuid::Uuid;

/// Handles one message from the queue. Never fails: every outcome is recorded
/// in the ledger, and anything that cannot be recorded is left for the sweeper
/// (the lease expires and the job is dispatched again).
pub async fn handle(engine: &Engine, msg: JobMessage) {
    in_its_lane(msg.priority, run(engine, msg)).await
}

/// Runs `work` in its priority's database lane: a client is waiting on a
/// `waited` job, so every statement of it goes ahead of the background
/// work's (docs/priority.md).
async fn in_its_lane<T>(priority: Priority, work: impl std::future::Future<Output = T>) -> T {
    match priority {
        Priority::Waited => serving_a_waiting_client(work).await,
        Priority::Background => work.await,
    }
}

async fn run(engine: &Engine, msg: JobMessage) {
    let lease_ms = engine.job_lease.as_millis() as i64;
    let claim = match engine
        .store
        .claim_job(msg.job_id, &engine.worker_id, lease_ms)
        .await
    {
        Ok(Some(claim)) => claim,
        Ok(None) => {
            // Finished, not yet due, or running elsewhere: a duplicate message.
            metrics::counter!("paygate_job_messages_skipped_total", "kind" => msg.kind.as_str())
                .increment(1);
            return;
        }
        Err(e) => {
            tracing::warn!(job_id = %msg.job_id, error = %e, "could not claim job; it will be dispatched again");
            return;
        }
    };
    run_chain(engine, claim, msg.priority).await;
}

/// Runs a job the caller claimed already — a waited payment's first job,
/// claimed by the create in the process its client waits on (docs/priority.md,
/// "The waited job runs where its client waits") — and the jobs its finishes
/// hand on, as a queue message's job would run. Never fails: what cannot be
/// recorded is left to the lease and the sweeper.
///
/// Returns the payment as the last finish left it, when that finish changed
/// it (its statement returns the row): the client waiting in this process
/// answers from it without reading the payment again (docs/priority.md, "The
/// finish hands on the payment"). `None`: read it.
pub async fn run_claimed_job(
    engine: &Engine,
    claim: ClaimedJob,
    priority: Priority,
) -> Option<Payment> {
    in_its_lane(priority, run_chain(engine, claim, priority)).await
}

/// A claimed job for this slot to run next, and its attempt's step when
/// that already ran inside the attempt before it ([`Inside`]) and could not
/// be recorded in that attempt's finish.
struct Next {
    claim: ClaimedJob,
    ran: Option<Step>,
}

async fn run_chain(engine: &Engine, claim: ClaimedJob, priority: Priority) -> Option<Payment> {
    // A job may hand its worker the next one, claimed in its finish
    // (`next_to_take`): run those here, in this slot, one after another.
    let mut next = Some(Next { claim, ran: None });
    let mut left = None;
    while let Some(Next { claim, ran }) = next.take() {
        let span = tracing::info_span!("job",
            job_id = %claim.id,
            kind = claim.kind.as_str(),
            payment_id = claim.payment_id.map(|p| p.to_string()).unwrap_or_default(),
            attempt = claim.attempt,
            worker = %engine.worker_id,
            priority = priority.as_str(),
        );
        (next, left) = run_claimed(engine, claim, ran, priority)
            .instrument(span)
            .await;
    }
    left
}

/// Runs one claimed attempt (unless `ran` is its step, already run) and
/// records it; returns the next job when the finish claimed one for this
/// worker, and the payment as the finish left it when the finish returned it.
async fn run_claimed(
    engine: &Engine,
    claim: ClaimedJob,
    ran: Option<Step>,
    priority: Priority,
) -> (Option<Next>, Option<Payment>) {
    let kind = claim.kind.as_str();
    if let Some(step) = ran {
        // Its work ran inside the attempt before it (counted there); only
        // its outcome is left to record.
        let payment = claim.payment.clone();
        return record(engine, &claim, payment.as_ref(), step, None, priority).await;
    }
    if claim.attempt == 1 {
        let waited = (chrono::Utc::now().timestamp_millis() - claim.created_at_ms).max(0);
        metrics::histogram!("paygate_job_queue_wait_seconds",
            "kind" => kind, "priority" => priority.as_str())
        .record(waited as f64 / 1000.0);
    }
    metrics::counter!("paygate_jobs_total", "kind" => kind, "outcome" => "started").increment(1);
    metrics::gauge!("paygate_jobs_in_flight").increment(1.0);
    let started = Instant::now();
    // Heartbeat: a handler may make several slow calls in a row; keep the lease
    // alive while it works so no other worker starts the same job meanwhile.
    let (payment, step, inside) = {
        let beat = engine.job_lease / 3;
        let heartbeat = async {
            loop {
                tokio::time::sleep(beat).await;
                let lease_ms = engine.job_lease.as_millis() as i64;
                match engine.store.renew_lease(&claim, lease_ms).await {
                    Ok(true) => {}
                    Ok(false) => tracing::warn!("job lease lost while running"),
                    Err(e) => tracing::warn!(error = %e, "could not renew the job lease"),
                }
            }
        };
        // Both run concurrently: the work keeps being polled while a renewal
        // waits. (Renewing in a select arm that stops polling the work would
        // deadlock on SQLite's one writer whenever the work held the writer's
        // turn at the beat: the renewal waits for the turn the paused work
        // holds — found by the schemathesis run, webhook deliveries.)
        tokio::select! {
            out = execute_with_inside(engine, &claim, priority) => out,
            () = heartbeat => unreachable!("the heartbeat loops until the work ends"),
        }
    };
    metrics::histogram!("paygate_job_duration_seconds", "kind" => kind)
        .record(started.elapsed().as_secs_f64());
    let recorded = record(engine, &claim, payment.as_ref(), step, inside, priority).await;
    metrics::gauge!("paygate_jobs_in_flight").decrement(1.0);
    recorded
}

/// A waited job's follow-up whose work ran inside the same attempt, right
/// after the job's own, on the payment as the job's change leaves it: the
/// invoice inside the user fetch (docs/priority.md, "The invoice runs inside
/// the user fetch"). When both are done, one finish records both
/// ([`merged_finish`]); otherwise the job's finish claims the follow-up for
/// this slot and its step is recorded against that claim, so a failed
/// invoice is retried and counted like any.
struct Inside {
    job: NewJob,
    step: Step,
}

/// Runs the claimed job and, when its follow-up may run inside the same
/// attempt ([`follow_up_inside`]), that one too.
async fn execute_with_inside(
    engine: &Engine,
    claim: &ClaimedJob,
    priority: Priority,
) -> (Option<Payment>, Step, Option<Inside>) {
    let (payment, step) = execute(engine, claim).await;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let follow = match (&step, payment.as_ref()) {
        (Step::Done(effects), Some(p)) => {
            let runs_inside = priority == Priority::Waited || engine.background_follow_up_inside;
            follow_up_inside(claim, p, effects, runs_inside, now_ms)
        }
        _ => None,
    };
    let Some((job, after)) = follow else {
        return (payment, step, None);
    };
    let kind = job.kind();
    metrics::counter!("paygate_jobs_total", "kind" => kind.as_str(), "outcome" => "started")
        .increment(1);
    let started = Instant::now();
    let step_inside = jobs::handler(kind)
        .run(engine, Some(&after), &job.payload)
        .await;
    metrics::histogram!("paygate_job_duration_seconds", "kind" => kind.as_str())
        .record(started.elapsed().as_secs_f64());
    let inside = Inside {
        job,
        step: step_inside,
    };
    (payment, step, Some(inside))
}

/// The follow-up of a finished attempt that runs inside it, and the
/// payment it starts from: the first next job due now for the same payment
/// ([`follow_up`]), when the attempt's own effects move no status, no order
/// and no refund (a write records one status move, and the follow-ups it
/// brings are that move's: `PaymentChange::then`).
///
/// `runs_inside` is true for waited work, and for background work only
/// with `PAYGATE_BACKGROUND_FOLLOW_UP_INSIDE`. Measured with it on for
/// background work, a burst of `/v1` creates finished twice as soon, but its
/// invoices, and so the payers' callbacks, then landed while the creates
/// were still coming in, and the API acknowledged a quarter to a half fewer
/// of them (PERFORMANCE.md, "The invoice runs inside the user fetch"); a
/// deployment whose payers pay minutes later may want it.
fn follow_up_inside(
    claim: &ClaimedJob,
    payment: &Payment,
    effects: &Effects,
    runs_inside: bool,
    now_ms: i64,
) -> Option<(NewJob, Payment)> {
    if !runs_inside {
        return None;
    }
    let moves = effects
        .change
        .as_ref()
        .is_some_and(|c| c.new_status.is_some());
    if moves || effects.order_status.is_some() || effects.refund.is_some() {
        return None;
    }
    let job = follow_up(claim, &effects.next, now_ms)?.clone();
    let after = match &effects.change {
        Some(change) => payment.after(change, chrono::Utc::now()),
        None => payment.clone(),
    };
    Some((job, after))
}

/// The two attempts' payment changes as one write (`PaymentChange::then`);
/// `None` when they cannot be one, and the attempts are then recorded one
/// after the other.
fn one_change(
    first: &Option<PaymentChange>,
    second: &Option<PaymentChange>,
) -> Option<Option<PaymentChange>> {
    match (first.clone(), second.clone()) {
        (Some(a), Some(b)) => a.then(b).map(Some),
        (a, b) => Some(b.or(a)),
    }
}

/// One finish for an attempt and the follow-up that ran inside it, both
/// done: `change` (the two as one: [`one_change`]), both attempts' events in
/// order, every next job with the follow-up's inserted already succeeded
/// (`JobFinish::ran_next`).
fn merged_finish(
    engine: &Engine,
    claim: &ClaimedJob,
    change: Option<PaymentChange>,
    first: Effects,
    inside: &NewJob,
    second: Effects,
    priority: Priority,
) -> JobFinish {
    let claim_next = next_to_take(
        claim,
        &second.next,
        priority,
        engine.job_lease,
        chrono::Utc::now().timestamp_millis(),
    );
    let mut events = first.events;
    events.extend(second.events);
    let mut next_jobs = first.next;
    next_jobs.extend(second.next);
    JobFinish {
        change,
        order_status: second.order_status,
        events,
        next_jobs,
        result: JobResult::Succeeded,
        refund: second.refund,
        claim_next,
        ran_next: Some(inside.id),
    }
}

async fn execute(engine: &Engine, claim: &ClaimedJob) -> (Option<Payment>, Step) {
    // Read with the claim (one round trip on PostgreSQL).
    let payment = claim.payment.clone();
    let step = match &claim.payload {
        Ok(payload) => {
            jobs::handler(claim.kind)
                .run(engine, payment.as_ref(), payload)
                .await
        }
        Err(e) => Step::Fail {
            reason: "job_invalid".into(),
            error: e.to_string(),
        },
    };
    (payment, step)
}

/// The attempt's effects as a ledger finish.
fn finish_with(effects: Effects, result: JobResult) -> JobFinish {
    JobFinish {
        change: effects.change,
        order_status: effects.order_status,
        events: effects.events,
        next_jobs: effects.next,
        result,
        refund: effects.refund,
        claim_next: None,
        ran_next: None,
    }
}

/// The follow-up this worker takes for itself in the finish: the first next
/// job that is due now and works on the same payment, when a client waits on
/// this work. It runs in the same slot right after, skipping a queue round
/// trip and a claim (PERFORMANCE.md, "Claiming the next job in the finish");
/// a user fetch's invoice is the case that matters. Jobs for something else,
/// or due later, go through the queue as before, so one slot never runs an
/// unbounded fan-out.
///
/// Background work is not chained: it gives its slot back after every job, so
/// waited work queued behind a backlog takes the next free slot
/// (docs/priority.md). Chaining it too held each background slot through two
/// jobs and doubled the seed route's p99 under a 10 000-payment backlog
/// (PERFORMANCE.md, same section).
fn next_to_take(
    claim: &ClaimedJob,
    next: &[NewJob],
    priority: Priority,
    lease: Duration,
    now_ms: i64,
) -> Option<NextClaim> {
    if priority != Priority::Waited {
        return None;
    }
    follow_up(claim, next, now_ms).map(|j| claimed_for(j, lease, now_ms))
}

/// The first of `next` that is due now and works on the claimed job's
/// payment: the one a slot may take on (chained, or run inside).
fn follow_up<'a>(claim: &ClaimedJob, next: &'a [NewJob], now_ms: i64) -> Option<&'a NewJob> {
    next.iter().find(|j| {
        j.run_at_ms <= now_ms && j.payment_id.is_some() && j.payment_id == claim.payment_id
    })
}

fn claimed_for(job: &NewJob, lease: Duration, now_ms: i64) -> NextClaim {
    NextClaim {
        job_id: job.id,
        lease_until_ms: now_ms + lease.as_millis() as i64,
    }
}

fn to_finish(
    engine: &Engine,
    claim: &ClaimedJob,
    payment: Option<&Payment>,
    step: Step,
    priority: Priority,
) -> JobFinish {
    let handler = jobs::handler(claim.kind);
    match step {
        Step::Done(effects) => JobFinish {
            claim_next: next_to_take(
                claim,
                &effects.next,
                priority,
                engine.job_lease,
                chrono::Utc::now().timestamp_millis(),
            ),
            ..finish_with(effects, JobResult::Succeeded)
        },
        Step::Retry {
            error,
            retry_after,
            exhausted_reason: reason,
        } => {
            // The row's budget, not the policy's: a redriven job has a larger one.
            if claim.attempt >= claim.max_attempts {
                let reason = reason.unwrap_or_else(|| handler.exhausted_reason());
                let effects = handler.give_up_job(payment, payload(claim), reason, &error);
                finish_with(effects, JobResult::Dead { error })
            } else {
                let policy = engine.retry.for_kind(claim.kind);
                let delay = policy.delay_after(claim.attempt, retry_after, rand::random::<f64>());
                JobFinish {
                    result: JobResult::Retry {
                        run_at_ms: chrono::Utc::now().timestamp_millis() + delay.as_millis() as i64,
                        error,
                    },
                    ..JobFinish::default()
                }
            }
        }
        Step::Fail { reason, error } => {
            let effects = handler.give_up_job(payment, payload(claim), &reason, &error);
            finish_with(effects, JobResult::Failed { error })
        }
    }
}

/// The claimed job's input, when it could be read.
fn payload(claim: &ClaimedJob) -> Option<&paygate_common::domain::JobPayload> {
    claim.payload.as_ref().ok()
}

fn outcome_label(result: &JobResult) -> &'static str {
    match result {
        JobResult::Succeeded => "succeeded",
        JobResult::Retry { .. } => "retried",
        JobResult::Failed { .. } => "failed",
        JobResult::Dead { .. } => "dead",
    }
}

/// The attempt's finish, with the follow-up that ran inside it: one finish
/// for both when both are done, else the attempt's own finish (which claims
/// the follow-up for this slot) and the follow-up's step, to be recorded
/// against that claim (its job id and step).
fn finish_of(
    engine: &Engine,
    claim: &ClaimedJob,
    payment: Option<&Payment>,
    step: Step,
    inside: Option<Inside>,
    priority: Priority,
) -> (JobFinish, Option<(Uuid, Step)>) {
    let Some(inside) = inside else {
        return (to_finish(engine, claim, payment, step, priority), None);
    };
    let Inside { job, step: second } = inside;
    match (step, second) {
        (Step::Done(first), Step::Done(second)) => {
            match one_change(&first.change, &second.change) {
                Some(change) => (
                    merged_finish(engine, claim, change, first, &job, second, priority),
                    None,
                ),
                None => (
                    taking(engine, claim, payment, Step::Done(first), &job, priority),
                    Some((job.id, Step::Done(second))),
                ),
            }
        }
        (step, second) => (
            taking(engine, claim, payment, step, &job, priority),
            Some((job.id, second)),
        ),
    }
}

/// The attempt's own finish (always a success: a follow-up runs inside only
/// after one), claiming `inside`, the follow-up whose work already ran, for
/// this slot: its step is recorded against that claim next, without running
/// it again.
fn taking(
    engine: &Engine,
    claim: &ClaimedJob,
    payment: Option<&Payment>,
    step: Step,
    inside: &NewJob,
    priority: Priority,
) -> JobFinish {
    let finish = to_finish(engine, claim, payment, step, priority);
    let now_ms = chrono::Utc::now().timestamp_millis();
    JobFinish {
        claim_next: Some(claimed_for(inside, engine.job_lease, now_ms)),
        ..finish
    }
}

async fn record(
    engine: &Engine,
    claim: &ClaimedJob,
    payment: Option<&Payment>,
    step: Step,
    inside: Option<Inside>,
    priority: Priority,
) -> (Option<Next>, Option<Payment>) {
    let inside_kind = inside.as_ref().map(|i| i.job.kind().as_str());
    let (finish, left_to_record) = finish_of(engine, claim, payment, step, inside, priority);
    let merged = finish.ran_next.is_some();
    let kind = claim.kind.as_str();
    let result = finish.result.clone();
    let change = finish.change.clone();
    let order_moved = finish.order_status.is_some();
    match engine
        .store
        .finish_job_and_take_next(claim, &engine.retry, finish)
        .await
    {
        Ok(finished) => {
            let outcome = outcome_label(&result);
            metrics::counter!("paygate_jobs_total", "kind" => kind, "outcome" => outcome)
                .increment(1);
            match &result {
                JobResult::Succeeded => tracing::debug!("job succeeded"),
                JobResult::Retry { error, .. } => {
                    tracing::info!(error = %error, "job will be retried")
                }
                JobResult::Failed { error } | JobResult::Dead { error } => {
                    tracing::warn!(error = %error, outcome, "job stopped")
                }
            }
            if let (Some(p), Some(change)) = (payment, &change) {
                if let Some(status) = change.new_status {
                    metrics::counter!("paygate_payments_total",
                        "provider" => p.provider.as_str(), "status" => status.as_str())
                    .increment(1);
                    tracing::info!(
                        status = status.as_str(),
                        reason = change.status_reason.as_deref().unwrap_or(""),
                        "payment status changed"
                    );
                    if change.late_settlement {
                        metrics::counter!("paygate_late_settlements_total",
                            "provider" => p.provider.as_str())
                        .increment(1);
                        tracing::warn!(
                            provider = p.provider.as_str(),
                            from = p.status.as_str(),
                            "late settlement: the gateway confirmed a payment that had ended"
                        );
                    }
                }
            }
            // Waiters re-read what they follow: a payment change, or its
            // order's move (an order page's long poll follows the payment id).
            if let Some(change) = &change {
                engine.announcer.changed(change.id);
            } else if let (true, Some(id)) = (order_moved, claim.payment_id) {
                engine.announcer.changed(id);
            }
            let messages: Vec<JobMessage> = finished
                .messages
                .into_iter()
                .map(|m| m.follow_up_of(priority))
                .collect();
            dispatch_all(engine.queue.as_ref(), &messages).await;
            if let (true, Some(inside)) = (merged, inside_kind) {
                metrics::counter!("paygate_jobs_total", "kind" => inside, "outcome" => "succeeded")
                    .increment(1);
                metrics::counter!("paygate_jobs_run_inside_total", "kind" => inside).increment(1);
            }
            if let Some(next) = &finished.next {
                metrics::counter!("paygate_jobs_chained_total", "kind" => next.kind.as_str())
                    .increment(1);
            }
            let next = match (finished.next, left_to_record) {
                (Some(claim), Some((id, step))) if claim.id == id => Some(Next {
                    claim,
                    ran: Some(step),
                }),
                (next, Some(_)) => {
                    // Not taken (a job with its dedupe key exists): that job
                    // owns the work and does it again, as after a crash.
                    tracing::info!(
                        "the follow-up that ran inside this attempt was not taken; its existing job will run"
                    );
                    next.map(|claim| Next { claim, ran: None })
                }
                (next, None) => next.map(|claim| Next { claim, ran: None }),
            };
            (next, finished.payment)
        }
        Err(StoreError::Conflict) => {
            // Someone changed the payment since we read it (a racing callback or
            // a duplicate job), or the reference the gateway gave is already
            // another payment's (the store reports both as a conflict; seen
            // with a restarted simulator, PERFORMANCE.md "The embedded seed
            // route's `202`s"). Decide again from fresh state, shortly.
            tracing::info!(
                "payment changed concurrently, or its gateway reference is another payment's; retrying the job"
            );
            let retry = JobFinish {
                result: JobResult::Retry {
                    run_at_ms: chrono::Utc::now().timestamp_millis()
                        + 50
                        + (rand::random::<u64>() % 200) as i64,
                    error: "payment changed concurrently".into(),
                },
                ..JobFinish::default()
            };
            if let Err(e) = engine.store.finish_job(claim, &engine.retry, retry).await {
                tracing::warn!(error = %e, "could not release the job; its lease will expire");
            }
            metrics::counter!("paygate_jobs_total", "kind" => kind, "outcome" => "retried")
                .increment(1);
            (None, None)
        }
        Err(StoreError::LeaseLost) => {
            tracing::warn!("job lease lost before finishing; another worker owns it now");
            (None, None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not record the job outcome; it will run again after its lease");
            (None, None)
        }
    }
}

/// The pause between sweeps when the database is unreachable.
pub const DB_BACKOFF: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use paygate_common::domain::{JobKind, JobPayload, PaymentId, PaymentStatus, RetryPolicies};

    const WAITED: Priority = Priority::Waited;

    fn claim_for(payment_id: Option<PaymentId>) -> ClaimedJob {
        ClaimedJob {
            id: uuid::Uuid::now_v7(),
            kind: JobKind::FetchUser,
            payment_id,
            payment: None,
            payload: Ok(JobPayload::FetchUser),
            attempt: 1,
            max_attempts: 5,
            worker: "w-1".into(),
            created_at_ms: 0,
        }
    }

    fn job(payment_id: Option<PaymentId>, run_at_ms: i64) -> NewJob {
        NewJob::new(
            JobPayload::CreateInvoice,
            payment_id,
            &RetryPolicies::default(),
        )
        .run_at(run_at_ms)
    }

    #[test]
    fn the_first_due_job_of_the_same_payment_is_taken() {
        let (p, other) = (PaymentId::new(), PaymentId::new());
        let lease = Duration::from_secs(25);
        let next = [
            job(Some(other), 1_000),
            job(Some(p), 2_000),
            job(None, 1_000),
            job(Some(p), 1_000),
            job(Some(p), 500),
        ];
        let taken = next_to_take(&claim_for(Some(p)), &next, WAITED, lease, 1_000).unwrap();
        assert_eq!(
            taken.job_id, next[3].id,
            "not another payment's, not a later one"
        );
        assert_eq!(taken.lease_until_ms, 26_000);
    }

    fn pending(id: PaymentId) -> Payment {
        let now = chrono::Utc::now();
        Payment {
            id,
            provider: paygate_common::domain::Provider::Medogram,
            merchant_ref: "09123456789".into(),
            amount: paygate_common::domain::Amount::from_minor(100_000).unwrap(),
            currency: paygate_common::domain::Currency::Irr,
            description: Default::default(),
            status: PaymentStatus::Pending,
            status_reason: None,
            payment_url: None,
            gateway_ref: None,
            gateway_trans_id: None,
            tracking_code: None,
            encrypted_user_data: None,
            idempotency_key: None,
            order_id: None,
            created_at: now,
            updated_at: now,
            completed_at: None,
            version: 0,
        }
    }

    #[test]
    fn the_next_job_runs_inside_only_after_work_that_moves_no_status() {
        // Waited work, or background work with the setting on.
        const INSIDE: bool = true;
        let p = PaymentId::new();
        let payment = pending(p);
        let claim = claim_for(Some(p));
        let invoice = job(Some(p), 1_000);
        let sealed = Effects {
            change: Some(payment.change().encrypted_user_data("token".into())),
            next: vec![invoice.clone()],
            ..Effects::default()
        };
        let (inside, after) =
            follow_up_inside(&claim, &payment, &sealed, INSIDE, 1_000).expect("inside");
        assert_eq!(inside.id, invoice.id);
        assert_eq!(after.encrypted_user_data.as_deref(), Some("token"));
        assert_eq!(after.version, 1, "the payment as the change leaves it");
        // Background work without the setting, a job not due yet, or another
        // payment's: not inside.
        assert!(follow_up_inside(&claim, &payment, &sealed, false, 1_000).is_none());
        assert!(follow_up_inside(&claim, &payment, &sealed, INSIDE, 999).is_none());
        assert!(follow_up_inside(&claim_for(None), &payment, &sealed, INSIDE, 1_000).is_none());
        // A status move keeps its own write.
        let moves = Effects {
            change: Some(
                payment
                    .change()
                    .status(PaymentStatus::Failed, Some("x"))
                    .unwrap(),
            ),
            next: vec![invoice.clone()],
            ..Effects::default()
        };
        assert!(follow_up_inside(&claim, &payment, &moves, INSIDE, 1_000).is_none());
        // No change: the next job starts from the payment as it is.
        let unchanged = Effects {
            next: vec![invoice],
            ..Effects::default()
        };
        let (_, after) = follow_up_inside(&claim, &payment, &unchanged, INSIDE, 1_000).unwrap();
        assert_eq!(after, payment);
    }

    #[test]
    fn nothing_is_taken_without_a_due_job_of_the_same_payment() {
        let p = PaymentId::new();
        let lease = Duration::from_secs(25);
        let claim = claim_for(Some(p));
        assert!(next_to_take(&claim, &[job(Some(p), 1_001)], WAITED, lease, 1_000).is_none());
        assert!(next_to_take(&claim_for(None), &[job(None, 0)], WAITED, lease, 1_000).is_none());
        assert!(next_to_take(&claim, &[], WAITED, lease, 1_000).is_none());
        // Background work gives its slot back after every job.
        let due = [job(Some(p), 1_000)];
        assert!(next_to_take(&claim, &due, Priority::Background, lease, 1_000).is_none());
        assert!(next_to_take(&claim, &due, WAITED, lease, 1_000).is_some());
    }
}
