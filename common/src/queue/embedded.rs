//! The in-process queue of `paygate serve`: an unbounded channel feeding an
//! apalis `MemoryStorage`. Not durable by itself, and it does not need to be:
//! every message points at a ledger row in SQLite, and on restart the sweeper
//! re-dispatches whatever was queued or running.
//!
//! Two channels feed it: waited-on messages (`Priority::Waited`) and the
//! rest. The worker's stream always takes a waited-on message first when one
//! is ready, so work a client is waiting for runs ahead of any backlog.

use super::{JobQueue, QueueError};
use crate::domain::{JobMessage, Priority};
use apalis_core::backend::memory::{MemorySink, MemoryStorage};
use apalis_core::task::Task;
use async_trait::async_trait;
use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::stream::{select_with_strategy, PollNext};
use futures::{SinkExt, StreamExt};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct EmbeddedQueue {
    sender: UnboundedSender<Task<JobMessage>>,
    waited: UnboundedSender<Task<JobMessage>>,
}

impl EmbeddedQueue {
    /// The queue handle (for producers) and the apalis backend (for the worker).
    pub fn new() -> (EmbeddedQueue, MemoryStorage<JobMessage>) {
        let (sender, receiver) = unbounded::<Task<JobMessage>>();
        let (waited, waited_receiver) = unbounded::<Task<JobMessage>>();
        // Left first, always: a waited-on message is taken whenever one is
        // ready; the backlog gets every turn the waiting clients leave.
        let receiver = select_with_strategy(waited_receiver, receiver, |_: &mut ()| PollNext::Left);
        // MemoryStorage wants a sink of its own; it is never used to push
        // because producers hold `sender`, which needs no lock.
        let sink_sender = sender.clone();
        let sink = MemorySink::new(Arc::new(futures::lock::Mutex::new(Box::new(
            sink_sender.sink_map_err(|e| e.into()),
        )
            as Box<
                dyn futures::Sink<
                        Task<JobMessage>,
                        Error = apalis_core::backend::memory::MemoryStorageError,
                    > + Send
                    + Sync
                    + Unpin,
            >)));
        let storage = MemoryStorage::new_with(sink, receiver.boxed());
        (EmbeddedQueue { sender, waited }, storage)
    }
}

#[async_trait]
impl JobQueue for EmbeddedQueue {
    async fn push(&self, msg: JobMessage) -> Result<(), QueueError> {
        let channel = match msg.priority {
            Priority::Waited => &self.waited,
            Priority::Background => &self.sender,
        };
        channel
            .unbounded_send(Task::new(msg))
            .map_err(|_| QueueError::Unavailable("the worker pool has stopped".into()))
    }

    async fn ping(&self) -> Result<(), QueueError> {
        if self.sender.is_closed() {
            Err(QueueError::Unavailable(
                "the worker pool has stopped".into(),
            ))
        } else {
            Ok(())
        }
    }

    fn backend_name(&self) -> &'static str {
        "embedded"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::JobKind;
    use uuid::Uuid;

    #[tokio::test]
    async fn a_waited_on_message_overtakes_the_backlog() {
        let (queue, mut storage) = EmbeddedQueue::new();
        let backlog: Vec<JobMessage> = (0..3)
            .map(|_| JobMessage::new(Uuid::now_v7(), JobKind::FetchUser))
            .collect();
        for m in &backlog {
            queue.push(*m).await.unwrap();
        }
        let waited = JobMessage::new(Uuid::now_v7(), JobKind::FetchUser).waited_on();
        queue.push(waited).await.unwrap();

        let mut order = Vec::new();
        for _ in 0..4 {
            order.push(storage.next().await.unwrap().args);
        }
        assert_eq!(order[0], waited);
        // The backlog keeps its own order behind it.
        assert_eq!(order[1..], backlog[..]);
    }
}
