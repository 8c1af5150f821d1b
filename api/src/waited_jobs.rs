//! A waited payment's first jobs, run in the process its client waits on.
//!
//! When a request is going to wait for the payment URL (the seed route,
//! `Prefer: wait` on `/v1`), the create inserts the payment's first job
//! already claimed by this process, and this process runs it and the jobs its
//! finishes hand on (the invoice), through the same runner and ledger the
//! workers use. That takes the queue round trip, the worker's claim and the
//! cross-process wake-up out of the path the client waits on
//! (docs/priority.md, "The waited job runs where its client waits";
//! PERFORMANCE.md, "The seed route's floor").
//!
//! Nothing here changes what a job does or how it is recorded: retries go to
//! the queue as always, and if this process dies mid-job the claim's lease
//! expires and a worker's sweeper dispatches the job again.
//!
//! The run hands the waiting request the payment as its last finish left it
//! ([`Ran`]), so the request answers without reading it again.

use paygate_common::domain::{NewJob, Payment};
use paygate_common::store::{ClaimedJob, NewPayment};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

type Run =
    dyn Fn(ClaimedJob) -> Pin<Box<dyn Future<Output = Option<Payment>> + Send>> + Send + Sync;

/// What a job's run can start before its create commits; the guard it
/// returns lives until the run ends (or the create claims nothing) and
/// cancels what was not used when dropped.
type HeadStart = dyn Fn(&NewPayment, &NewJob) -> Option<Box<dyn Send>> + Send + Sync;

/// The end of a run started here: the payment as the last finish left it
/// (`None` when that finish did not return it, or the run ended without
/// recording — the request reads the payment then).
pub type Ran = oneshot::Receiver<Option<Payment>>;

/// The runner of waited jobs in this process, and its slots.
#[derive(Clone)]
pub struct WaitedJobs {
    claimant: Arc<str>,
    lease: Duration,
    slots: Arc<Semaphore>,
    capacity: u32,
    run: Arc<Run>,
    head_start: Option<Arc<HeadStart>>,
}

impl std::fmt::Debug for WaitedJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitedJobs")
            .field("claimant", &self.claimant)
            .field("lease", &self.lease)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// One free slot, taken before the create so that a claimed job always has
/// somewhere to run.
pub struct Slot {
    jobs: WaitedJobs,
    permit: OwnedSemaphorePermit,
    /// What [`Slot::head_start`] got going, kept until the run ends.
    started_ahead: Option<Box<dyn Send>>,
}

impl WaitedJobs {
    /// `claimant` is the ledger's `locked_by` for the jobs claimed here (this
    /// process's worker id), `lease` how long a claim holds before the
    /// sweeper may hand the job to a worker, `slots` how many run at once.
    pub fn new<F, Fut>(claimant: &str, lease: Duration, slots: usize, run: F) -> Self
    where
        F: Fn(ClaimedJob) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<Payment>> + Send + 'static,
    {
        let capacity = u32::try_from(slots.max(1)).unwrap_or(u32::MAX);
        WaitedJobs {
            claimant: claimant.into(),
            lease,
            slots: Arc::new(Semaphore::new(capacity as usize)),
            capacity,
            run: Arc::new(move |claim| Box::pin(run(claim))),
            head_start: None,
        }
    }

    /// Lets a run start work before its create commits ([`Slot::head_start`]):
    /// `f` gets the payment about to be created and its first job.
    pub fn with_head_start<F>(mut self, f: F) -> Self
    where
        F: Fn(&NewPayment, &NewJob) -> Option<Box<dyn Send>> + Send + Sync + 'static,
    {
        self.head_start = Some(Arc::new(f));
        self
    }

    /// A free slot, or `None` when every slot is busy: the create then queues
    /// the job for the workers as it would without this runner.
    pub fn slot(&self) -> Option<Slot> {
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        Some(Slot {
            jobs: self.clone(),
            permit,
            started_ahead: None,
        })
    }

    /// Waits up to `grace` for the jobs running here to end (shutdown). A job
    /// still running after it is left to its lease and the sweeper.
    pub async fn drain(&self, grace: Duration) {
        let started = Instant::now();
        match tokio::time::timeout(grace, self.slots.acquire_many(self.capacity)).await {
            Ok(_) => tracing::debug!(
                waited_ms = started.elapsed().as_millis() as u64,
                "waited jobs drained"
            ),
            Err(_) => tracing::warn!(
                running = self.capacity as usize - self.slots.available_permits(),
                "waited jobs still running at shutdown; their leases expire and workers finish them"
            ),
        }
    }
}

impl Slot {
    /// The name the create claims the job under.
    pub fn claimant(&self) -> &str {
        &self.jobs.claimant
    }

    /// The claim's lease, ms.
    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.jobs.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Starts what the job can do before `payment` and `job` are stored (the
    /// payer's fetch: docs/priority.md, "The payer's fetch starts beside the
    /// create"), so that its wait overlaps the create's. Call it before the
    /// create; if the create claims nothing, dropping the slot cancels it.
    pub fn head_start(&mut self, payment: &NewPayment, job: &NewJob) {
        if let Some(f) = &self.jobs.head_start {
            self.started_ahead = f(payment, job);
        }
    }

    /// Runs the claimed job in a task of its own (a client that hangs up does
    /// not cut it short); the slot frees when the job and the jobs its
    /// finishes hand on are done, and the returned [`Ran`] then has the
    /// payment.
    pub fn start(self, claim: ClaimedJob) -> Ran {
        let work = (self.jobs.run)(claim);
        let (permit, started_ahead) = (self.permit, self.started_ahead);
        let (tell, ran) = oneshot::channel();
        tokio::spawn(async move {
            let left = work.await;
            // Whatever the run did not take up ends with it.
            drop(started_ahead);
            drop(permit);
            // The request may have gone (its client hung up): nobody to tell.
            let _ = tell.send(left);
        });
        ran
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_are_bounded_and_freed_when_the_job_ends() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
        let jobs = WaitedJobs::new("api-1", Duration::from_secs(5), 1, move |_claim| {
            let rx = rx.clone();
            async move {
                if let Some(rx) = rx.lock().await.take() {
                    let _ = rx.await;
                }
                None
            }
        });
        let slot = jobs.slot().expect("one slot");
        assert_eq!(slot.claimant(), "api-1");
        assert_eq!(slot.lease_ms(), 5000);
        assert!(jobs.slot().is_none(), "the only slot is taken");
        let ran = slot.start(claim());
        assert!(jobs.slot().is_none(), "taken while the job runs");
        tx.send(()).unwrap();
        assert_eq!(ran.await.ok(), Some(None), "the run's end is told");
        jobs.drain(Duration::from_secs(5)).await;
        assert!(jobs.slot().is_some(), "free once the job ended");
    }

    /// Flags its own drop: stands for a fetch made ahead.
    struct Started(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Started {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_head_start_lives_until_its_run_ends_or_with_an_unused_slot() {
        use paygate_common::domain::{
            Amount, Description, JobPayload, PaymentId, Provider, RetryPolicies,
        };
        use std::sync::atomic::{AtomicBool, Ordering};
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
        let ended = Arc::new(AtomicBool::new(false));
        let flag = ended.clone();
        let jobs = WaitedJobs::new("api-1", Duration::from_secs(5), 2, move |_claim| {
            let rx = rx.clone();
            async move {
                if let Some(rx) = rx.lock().await.take() {
                    let _ = rx.await;
                }
                None
            }
        })
        .with_head_start(move |_payment, job| {
            matches!(job.payload, JobPayload::FetchUser)
                .then(|| Box::new(Started(flag.clone())) as Box<dyn Send>)
        });
        let id = PaymentId::new();
        let payment = NewPayment {
            id,
            provider: Provider::Medogram,
            merchant_ref: "09123456789".into(),
            amount: Amount::from_minor(100_000).unwrap(),
            currency: Provider::Medogram.currency(),
            description: Description::default(),
            idempotency_key: None,
            order_id: None,
        };
        let job = NewJob::once_per_payment(JobPayload::FetchUser, id, &RetryPolicies::default());

        // Kept while the run goes on, dropped when it ends.
        let mut slot = jobs.slot().expect("a slot");
        slot.head_start(&payment, &job);
        let ran = slot.start(claim());
        tokio::task::yield_now().await;
        assert!(!ended.load(Ordering::SeqCst), "kept while the job runs");
        tx.send(()).unwrap();
        ran.await.unwrap();
        assert!(ended.load(Ordering::SeqCst), "dropped when the run ended");

        // A create that claimed nothing drops its slot, and what it started.
        ended.store(false, Ordering::SeqCst);
        let mut slot = jobs.slot().expect("a slot");
        slot.head_start(&payment, &job);
        drop(slot);
        assert!(ended.load(Ordering::SeqCst), "dropped with the unused slot");
    }

    fn claim() -> ClaimedJob {
        use paygate_common::domain::{JobKind, JobPayload};
        ClaimedJob {
            id: uuid::Uuid::now_v7(),
            kind: JobKind::FetchUser,
            payment_id: None,
            payment: None,
            payload: Ok(JobPayload::FetchUser),
            attempt: 1,
            max_attempts: 3,
            worker: "api-1".into(),
            created_at_ms: 0,
        }
    }
}
