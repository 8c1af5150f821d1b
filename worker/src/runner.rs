//! Runs one job message: claim the ledger row, execute the handler for its
//! kind, and record the outcome (with the retry policy) in one transaction.

use crate::jobs::{self, Effects, Step};
use crate::Engine;
use paygate_common::domain::NewJob;
use paygate_common::domain::{JobMessage, Payment, Priority};
use paygate_common::queue::dispatch_all;
use paygate_common::store::{
    serving_a_waiting_client, ClaimedJob, JobFinish, JobResult, NextClaim, StoreError,
};
use std::time::{Duration, Instant};
use tracing::Instrument;

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

async fn run_chain(engine: &Engine, claim: ClaimedJob, priority: Priority) -> Option<Payment> {
    // A job may hand its worker the next one, claimed in its finish
    // (`next_to_take`): run those here, in this slot, one after another.
    let mut next = Some(claim);
    let mut left = None;
    while let Some(claim) = next.take() {
        let span = tracing::info_span!("job",
            job_id = %claim.id,
            kind = claim.kind.as_str(),
            payment_id = claim.payment_id.map(|p| p.to_string()).unwrap_or_default(),
            attempt = claim.attempt,
            worker = %engine.worker_id,
            priority = priority.as_str(),
        );
        (next, left) = run_claimed(engine, claim, priority).instrument(span).await;
    }
    left
}

/// Runs one claimed attempt and records it; returns the next job when the
/// finish claimed one for this worker, and the payment as the finish left it
/// when the finish returned it.
async fn run_claimed(
    engine: &Engine,
    claim: ClaimedJob,
    priority: Priority,
) -> (Option<ClaimedJob>, Option<Payment>) {
    let kind = claim.kind.as_str();
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
    let (payment, step) = {
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
            out = execute(engine, &claim) => out,
            () = heartbeat => unreachable!("the heartbeat loops until the work ends"),
        }
    };
    metrics::histogram!("paygate_job_duration_seconds", "kind" => kind)
        .record(started.elapsed().as_secs_f64());
    let recorded = record(engine, &claim, payment.as_ref(), step, priority).await;
    metrics::gauge!("paygate_jobs_in_flight").decrement(1.0);
    recorded
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
    next.iter()
        .find(|j| {
            j.run_at_ms <= now_ms && j.payment_id.is_some() && j.payment_id == claim.payment_id
        })
        .map(|j| NextClaim {
            job_id: j.id,
            lease_until_ms: now_ms + lease.as_millis() as i64,
        })
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

async fn record(
    engine: &Engine,
    claim: &ClaimedJob,
    payment: Option<&Payment>,
    step: Step,
    priority: Priority,
) -> (Option<ClaimedJob>, Option<Payment>) {
    let finish = to_finish(engine, claim, payment, step, priority);
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
            if let Some(next) = &finished.next {
                metrics::counter!("paygate_jobs_chained_total", "kind" => next.kind.as_str())
                    .increment(1);
            }
            (finished.next, finished.payment)
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
    use paygate_common::domain::{JobKind, JobPayload, PaymentId, RetryPolicies};

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
