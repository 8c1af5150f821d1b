//! Payment wake-ups across processes (scaled mode) over Redis pub/sub.
//!
//! Redis pub/sub rather than PostgreSQL `LISTEN/NOTIFY`: PostgreSQL's CPU is
//! what limits throughput here, and `NOTIFY` inside a transaction takes a
//! global lock at commit that serialises all committing transactions that
//! notify; Redis is already there (the job queue) and a `PUBLISH` costs it
//! next to nothing.
//!
//! Workers (and API processes, for their own commits) [`RedisPublisher::publish`]
//! the payment id on the channel `{queue}:payment-changed` after their commit;
//! each API process keeps ONE subscriber connection ([`subscribe`]) that fans
//! the ids out to its [`PaymentWatch`]. Nothing here is durable: an id
//! published while a subscriber is reconnecting (Redis restarted), or never
//! published (a crash after the commit), is covered by the waiters' safety
//! re-read; on every (re)subscription all local waiters are woken to re-read
//! at once.

use super::PaymentWatch;
use crate::domain::PaymentId;
use crate::queue::redis::RedisQueue;
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Announcements waiting to be published; beyond this they are dropped (the
/// safety re-read covers them) rather than slowing down a commit.
const BACKLOG: usize = 4096;
/// Ids published in one pipeline.
const BATCH: usize = 256;
/// How often the subscriber checks that its connection still answers (a
/// half-open connection would otherwise go unnoticed).
const PING_EVERY: Duration = Duration::from_secs(15);
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The channel of one deployment: named after its queue, so deployments (and
/// tests) sharing a Redis do not wake each other.
pub fn channel(queue: &RedisQueue) -> String {
    format!("{}:payment-changed", queue.config().queue)
}

/// Publishes payment ids from a background task; cheap to clone.
#[derive(Clone, Debug)]
pub struct RedisPublisher {
    tx: mpsc::Sender<PaymentId>,
}

impl RedisPublisher {
    /// Starts the publishing task (on the current tokio runtime). It ends
    /// when every clone of the publisher is dropped.
    pub fn start(queue: RedisQueue) -> RedisPublisher {
        let (tx, rx) = mpsc::channel(BACKLOG);
        tokio::spawn(publish_loop(queue, rx));
        RedisPublisher { tx }
    }

    /// Queues the announcement; never waits.
    pub fn publish(&self, id: PaymentId) {
        if self.tx.try_send(id).is_err() {
            metrics::counter!("paygate_payment_announcements_total", "outcome" => "dropped")
                .increment(1);
        }
    }
}

async fn publish_loop(queue: RedisQueue, mut rx: mpsc::Receiver<PaymentId>) {
    let channel = channel(&queue);
    let timeout = queue.config().command_timeout;
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut pipe = redis::pipe();
        for id in &batch {
            pipe.cmd("PUBLISH")
                .arg(&channel)
                .arg(id.to_string())
                .ignore();
        }
        let mut conn = queue.connection();
        let sent = tokio::time::timeout(timeout, pipe.query_async::<()>(&mut conn)).await;
        let outcome = match sent {
            Ok(Ok(())) => "published",
            Ok(Err(e)) => {
                tracing::debug!(problem = %queue.redact(&e.to_string()), "payment announcements not published; waiters will re-read");
                "failed"
            }
            Err(_) => "failed",
        };
        metrics::counter!("paygate_payment_announcements_total", "outcome" => outcome)
            .increment(batch.len() as u64);
        batch.clear();
    }
}

/// Starts this process's one subscriber: it fans announced ids out to `hub`
/// and reconnects with back-off whenever the connection is lost, for as long
/// as the process runs (abort the handle to stop it).
pub fn subscribe(queue: RedisQueue, hub: PaymentWatch) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = BACKOFF_FIRST;
        loop {
            match listen(&queue, &hub).await {
                Listened::Subscribed => {
                    tracing::warn!("payment wake-up subscription lost; reconnecting");
                    backoff = BACKOFF_FIRST;
                }
                Listened::Failed(problem) => {
                    tracing::warn!(problem = %problem, retry_ms = backoff.as_millis() as u64, "could not subscribe to payment wake-ups; waiters re-read on their own meanwhile");
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    })
}

enum Listened {
    /// Was subscribed, then the connection ended.
    Subscribed,
    /// Could not subscribe (the reason, redacted).
    Failed(String),
}

async fn listen(queue: &RedisQueue, hub: &PaymentWatch) -> Listened {
    let cfg = queue.config();
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        Listened::Failed(format!("{what}: {}", queue.redact(&e.to_string())))
    };
    let mut pubsub =
        match tokio::time::timeout(cfg.connect_timeout, queue.client().get_async_pubsub()).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return failed("connecting", &e),
            Err(_) => return Listened::Failed("connecting timed out".into()),
        };
    match tokio::time::timeout(cfg.command_timeout, pubsub.subscribe(channel(queue))).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return failed("subscribing", &e),
        Err(_) => return Listened::Failed("subscribing timed out".into()),
    }
    tracing::info!("subscribed to payment wake-ups");
    // Anything announced while we were not subscribed was missed: re-read now.
    hub.wake_all();
    let (mut sink, mut messages) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            msg = messages.next() => {
                let Some(msg) = msg else { return Listened::Subscribed };
                // Anything not an id is someone else's message: ignored.
                if let Some(id) = msg.get_payload::<String>().ok().and_then(|t| PaymentId::parse(&t)) {
                    hub.wake(id);
                }
            }
            _ = ping.tick() => {
                if !still_answers(&mut sink, cfg.command_timeout).await {
                    return Listened::Subscribed;
                }
            }
        }
    }
}

/// Whether a subscribed connection still answers a `PING`. A subscribed
/// RESP2 connection answers `["pong", ""]`, not `PONG`, so the reply is taken
/// as any value: asking for a string failed every ping and dropped a healthy
/// subscription every `PING_EVERY` (waking every waiter for nothing).
async fn still_answers(sink: &mut redis::aio::PubSubSink, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::redis::RedisQueueConfig;

    /// A private queue name on the test Redis (`scripts/test.sh` sets
    /// `PAYGATE_TEST_REDIS_URL`; without it these tests fail, never skip).
    async fn test_queue() -> RedisQueue {
        let url = std::env::var("PAYGATE_TEST_REDIS_URL")
            .expect("PAYGATE_TEST_REDIS_URL must point at a Redis (scripts/test.sh sets it)");
        let mut cfg = RedisQueueConfig::new(url);
        cfg.queue = format!("paygate-test-wake-{}", uuid::Uuid::new_v4());
        RedisQueue::connect(cfg).await.unwrap()
    }

    #[tokio::test]
    async fn a_subscribed_connection_answers_the_keepalive_ping() {
        let queue = test_queue().await;
        let pubsub = queue.client().get_async_pubsub().await.unwrap();
        let (mut sink, _messages) = pubsub.split();
        sink.subscribe(channel(&queue)).await.unwrap();
        assert!(still_answers(&mut sink, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn a_published_id_wakes_a_subscribed_hub() {
        let queue = test_queue().await;
        let hub = PaymentWatch::new();
        let subscriber = subscribe(queue.clone(), hub.clone());
        let publisher = RedisPublisher::start(queue.clone());
        // The subscription is asynchronous: publish until it is heard. A
        // round counts only if the published payment woke and another did
        // not (a (re)subscription wakes everyone).
        let heard = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let (id, other) = (PaymentId::new(), PaymentId::new());
                let mut waiter = hub.watch(id);
                let mut bystander = hub.watch(other);
                publisher.publish(id);
                let woke = tokio::time::timeout(Duration::from_millis(200), waiter.changed())
                    .await
                    .is_ok();
                let also = tokio::time::timeout(Duration::from_millis(1), bystander.changed())
                    .await
                    .is_ok();
                if woke && !also {
                    break;
                }
            }
        })
        .await;
        subscriber.abort();
        assert!(heard.is_ok(), "the published id never woke the waiter");
    }
}
