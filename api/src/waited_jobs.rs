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

use paygate_common::domain::Payment;
use paygate_common::store::ClaimedJob;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

type Run =
    dyn Fn(ClaimedJob) -> Pin<Box<dyn Future<Output = Option<Payment>> + Send>> + Send + Sync;

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
        }
    }

    /// A free slot, or `None` when every slot is busy: the create then queues
    /// the job for the workers as it would without this runner.
    pub fn slot(&self) -> Option<Slot> {
        let permit = self.slots.clone().try_acquire_owned().ok()?;
        Some(Slot {
            jobs: self.clone(),
            permit,
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

    /// Runs the claimed job in a task of its own (a client that hangs up does
    /// not cut it short); the slot frees when the job and the jobs its
    /// finishes hand on are done, and the returned [`Ran`] then has the
    /// payment.
    pub fn start(self, claim: ClaimedJob) -> Ran {
        let work = (self.jobs.run)(claim);
        let permit = self.permit;
        let (tell, ran) = oneshot::channel();
        tokio::spawn(async move {
            let left = work.await;
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
