//! The apalis worker that feeds queue messages to the runner, with bounded
//! concurrency and a graceful stop. One worker definition ([`job_worker!`] and
//! [`drive`]) serves both transports: the in-process `MemoryStorage` and Redis.

use crate::{runner, Engine};
use apalis::prelude::WorkerBuilderExt;
use apalis_core::backend::memory::MemoryStorage;
use apalis_core::error::{BoxDynError, WorkerError};
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::context::WorkerContext;
use apalis_core::worker::event::Event;
use apalis_core::worker::ext::event_listener::EventListenerExt;
use futures::{Stream, StreamExt};
use paygate_common::domain::JobMessage;
use paygate_common::queue::redis::RedisQueue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

async fn handle(msg: JobMessage, engine: Data<Arc<Engine>>) -> Result<(), BoxDynError> {
    // Outcomes (including failures) live in the ledger; apalis only sees success,
    // so its own retry and dead-letter machinery never fights ours.
    runner::handle(&engine, msg).await;
    Ok(())
}

/// Redis delivers raw JSON: a message this release cannot read (say, a job
/// kind a newer release added) is dropped here rather than failing the
/// backend over and over; its ledger row stays and the sweeper re-dispatches it.
async fn handle_json(raw: serde_json::Value, engine: Data<Arc<Engine>>) -> Result<(), BoxDynError> {
    match serde_json::from_value::<JobMessage>(raw) {
        Ok(msg) => handle(msg, engine).await,
        Err(e) => {
            tracing::warn!(error = %e, "dropping a queue message this worker cannot read");
            metrics::counter!("paygate_job_messages_unreadable_total").increment(1);
            Ok(())
        }
    }
}

/// The worker both transports run: `handler` over `backend`, at most
/// `concurrency` jobs at once, the engine as shared data. (A macro because the
/// apalis builder's bounds are not worth spelling out for two call sites.)
macro_rules! job_worker {
    ($ctx:expr, $backend:expr, $engine:expr, $concurrency:expr, $handler:expr, $on_event:expr) => {
        WorkerBuilder::new($ctx)
            .backend($backend)
            .concurrency($concurrency)
            .data($engine)
            .on_event($on_event)
            .build($handler)
    };
}

/// Resolves when `stop` turns true or its sender is gone.
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
}

/// Runs a worker's event stream to its end. When `stop` turns true, or the
/// backend fails, the worker takes no more tasks and its in-flight ones finish
/// (a second backend error while closing ends it at once). Returns the first
/// backend error, if any.
async fn drive<S>(
    ctx: &WorkerContext,
    events: S,
    mut stop: watch::Receiver<bool>,
) -> Result<(), WorkerError>
where
    S: Stream<Item = Result<Event, WorkerError>>,
{
    let mut events = std::pin::pin!(events);
    let mut failure = None;
    let mut stopping = false;
    loop {
        tokio::select! {
            // Events first: the first poll starts the worker, so `stop()` below
            // always finds it running.
            biased;
            event = events.next() => match event {
                None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    if failure.is_some() {
                        break;
                    }
                    failure = Some(e);
                    let _ = ctx.stop();
                }
            },
            _ = stop_requested(&mut stop), if !stopping => {
                stopping = true;
                let _ = ctx.stop();
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Runs the in-process worker until `stop` turns true; in-flight jobs finish.
pub async fn run_embedded(
    engine: Arc<Engine>,
    storage: MemoryStorage<JobMessage>,
    concurrency: usize,
    stop: watch::Receiver<bool>,
) -> Result<(), BoxDynError> {
    let ctx = WorkerContext::new(&engine.worker_id);
    let events = job_worker!(&ctx, storage, engine, concurrency, handle, |_, _| {}).stream();
    drive(&ctx, events, stop).await?;
    Ok(())
}

const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Runs this process's Redis worker (apalis name = `engine.worker_id`, which
/// must be unique per process) until `stop` turns true; in-flight jobs finish.
/// Also runs the queue's housekeeping ([`RedisQueue::maintain`]).
///
/// Never gives up on Redis: when the backend fails (Redis went away, the
/// worker was declared dead), the in-flight jobs finish, the worker is retired
/// and built again with back-off (0.5 s doubling to 10 s); one warning per
/// outage, one info line when it is back. Meanwhile `/readyz` reports the queue
/// and the sweeper re-dispatches from the ledger once Redis is back.
pub async fn run_redis(
    engine: Arc<Engine>,
    queue: &RedisQueue,
    concurrency: usize,
    stop: watch::Receiver<bool>,
) -> Result<(), BoxDynError> {
    tokio::join!(
        queue.maintain(stop.clone()),
        consume_redis(&engine, queue, concurrency, stop)
    );
    Ok(())
}

async fn consume_redis(
    engine: &Arc<Engine>,
    queue: &RedisQueue,
    concurrency: usize,
    mut stop: watch::Receiver<bool>,
) {
    // True from a failure until a worker heartbeats again.
    let outage = Arc::new(AtomicBool::new(false));
    let mut backoff = RETRY_MIN;
    loop {
        if *stop.borrow() {
            return;
        }
        // What a failed run left under our name (after a Redis blip its
        // retire may have failed) would block registering again for up to
        // `orphaned_after`; hand it back first. Twice: the first command after
        // an outage may only wake the connection manager's reconnect.
        if queue.retire_worker(&engine.worker_id).await.is_err() {
            if let Err(e) = queue.retire_worker(&engine.worker_id).await {
                tracing::debug!(error = %e, "could not retire the previous queue worker");
            }
        }
        let healthy = Arc::new(AtomicBool::new(false));
        let ended = match queue.worker_backend(concurrency).await {
            Err(e) => Err(e.to_string()),
            Ok(backend) => {
                let ctx = WorkerContext::new(&engine.worker_id);
                let on_event = {
                    let (outage, healthy) = (outage.clone(), healthy.clone());
                    move |_: &WorkerContext, event: &Event| {
                        // Registered (or heartbeated): Redis answers again.
                        if matches!(event, Event::HeartBeat) {
                            healthy.store(true, Ordering::Relaxed);
                            if outage.swap(false, Ordering::Relaxed) {
                                tracing::info!("the Redis queue is reachable again; taking jobs");
                            }
                        }
                    }
                };
                let events = job_worker!(
                    &ctx,
                    backend,
                    engine.clone(),
                    concurrency,
                    handle_json,
                    on_event
                )
                .stream();
                let ended = drive(&ctx, events, stop.clone()).await;
                if let Err(e) = queue.retire_worker(&engine.worker_id).await {
                    tracing::debug!(error = %e, "could not retire the queue worker");
                }
                ended.map_err(|e| e.to_string())
            }
        };
        if *stop.borrow() {
            return;
        }
        if healthy.load(Ordering::Relaxed) {
            backoff = RETRY_MIN;
        }
        let error = queue.redact(&match ended {
            Ok(()) => "the worker stopped on its own".to_string(),
            Err(e) => e,
        });
        metrics::counter!("paygate_queue_worker_failures_total").increment(1);
        if outage.swap(true, Ordering::Relaxed) {
            tracing::debug!(error = %error, "the Redis queue is still unavailable");
        } else {
            tracing::warn!(error = %error,
                "the Redis queue is unavailable; the worker keeps retrying, the ledger keeps the jobs");
        }
        let pause = backoff.mul_f64(0.8 + 0.4 * rand::random::<f64>());
        backoff = (backoff * 2).min(RETRY_MAX);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop_requested(&mut stop) => return,
        }
    }
}
