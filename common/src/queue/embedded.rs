//! The in-process queue of `paygate serve`: an unbounded channel feeding an
//! apalis `MemoryStorage`. Not durable by itself, and it does not need to be:
//! every message points at a ledger row in SQLite, and on restart the sweeper
//! re-dispatches whatever was queued or running.

use super::{JobQueue, QueueError};
use crate::domain::JobMessage;
use apalis_core::backend::memory::{MemorySink, MemoryStorage};
use apalis_core::task::Task;
use async_trait::async_trait;
use futures::channel::mpsc::{unbounded, UnboundedSender};
use futures::{SinkExt, StreamExt};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct EmbeddedQueue {
    sender: UnboundedSender<Task<JobMessage>>,
}

impl EmbeddedQueue {
    /// The queue handle (for producers) and the apalis backend (for the worker).
    pub fn new() -> (EmbeddedQueue, MemoryStorage<JobMessage>) {
        let (sender, receiver) = unbounded::<Task<JobMessage>>();
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
        (EmbeddedQueue { sender }, storage)
    }
}

#[async_trait]
impl JobQueue for EmbeddedQueue {
    async fn push(&self, msg: JobMessage) -> Result<(), QueueError> {
        self.sender
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
