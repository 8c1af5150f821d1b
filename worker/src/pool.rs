//! The apalis worker that feeds queue messages to the runner, with bounded
//! concurrency and a graceful stop.

use crate::{runner, Engine};
use apalis::prelude::WorkerBuilderExt;
use apalis_core::backend::memory::MemoryStorage;
use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use paygate_common::domain::JobMessage;
use std::sync::Arc;
use tokio::sync::watch;

async fn handle(msg: JobMessage, engine: Data<Arc<Engine>>) -> Result<(), BoxDynError> {
    // Outcomes (including failures) live in the ledger; apalis only sees success,
    // so its own retry and dead-letter machinery never fights ours.
    runner::handle(&engine, msg).await;
    Ok(())
}

async fn stopped(mut stop: watch::Receiver<bool>) -> Result<(), std::io::Error> {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Runs the in-process worker until `stop` turns true; in-flight jobs finish.
pub async fn run_embedded(
    engine: Arc<Engine>,
    storage: MemoryStorage<JobMessage>,
    concurrency: usize,
    stop: watch::Receiver<bool>,
) -> Result<(), BoxDynError> {
    let worker = WorkerBuilder::new(engine.worker_id.clone())
        .backend(storage)
        .concurrency(concurrency)
        .data(engine)
        .build(handle);
    worker.run_until(stopped(stop)).await?;
    Ok(())
}
