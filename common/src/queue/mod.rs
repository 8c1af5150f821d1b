//! The job queue: transport for pointers into the job ledger. Two
//! implementations sit behind [`JobQueue`]: [`embedded`] for the single-process
//! default and Redis (apalis-redis) for scaled mode. Workers consume the
//! matching apalis backend; nothing else knows which one runs.

pub mod embedded;
pub mod redis;

use crate::domain::JobMessage;
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("the queue is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Hands a message to the workers. A failure is not fatal: the job row is
    /// in the ledger and the sweeper will dispatch it again.
    async fn push(&self, msg: JobMessage) -> Result<(), QueueError>;
    /// Readiness: can messages be pushed right now?
    async fn ping(&self) -> Result<(), QueueError>;
    /// A short name for logs and metrics labels ("embedded", "redis").
    fn backend_name(&self) -> &'static str;
}

/// Pushes each message, logging (not failing on) the ones that could not be
/// sent; the ledger keeps them and the sweeper retries.
pub async fn dispatch_all(queue: &dyn JobQueue, messages: &[JobMessage]) {
    for m in messages {
        if let Err(e) = queue.push(*m).await {
            tracing::warn!(job_id = %m.job_id, kind = m.kind.as_str(), error = %e,
                "job dispatch failed; the sweeper will dispatch it again");
            metrics::counter!("paygate_job_dispatch_failures_total", "kind" => m.kind.as_str())
                .increment(1);
        }
    }
}
