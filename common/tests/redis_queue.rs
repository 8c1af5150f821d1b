//! The Redis transport against the machine's real Redis
//! (`PAYGATE_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`). Each test uses
//! a queue of its own and deletes its keys afterwards, also when it panics.
//! Redis is required: if it cannot be reached the tests fail, they never skip.

use apalis_core::error::BoxDynError;
use apalis_core::task::data::Data;
use apalis_core::worker::builder::WorkerBuilder;
use apalis_core::worker::context::WorkerContext;
use futures::FutureExt;
use paygate_common::domain::{JobKind, JobMessage};
use paygate_common::queue::redis::{RedisQueue, RedisQueueConfig};
use paygate_common::queue::JobQueue;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

fn redis_url() -> String {
    std::env::var("PAYGATE_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_string())
}

fn test_config() -> RedisQueueConfig {
    let mut cfg = RedisQueueConfig::new(redis_url());
    cfg.queue = format!("paygate-test:{}", Uuid::new_v4().simple());
    cfg
}

async fn connect(cfg: RedisQueueConfig) -> RedisQueue {
    RedisQueue::connect(cfg).await.unwrap_or_else(|e| {
        panic!("Redis is required (set PAYGATE_TEST_REDIS_URL, default {DEFAULT_REDIS_URL}): {e}")
    })
}

/// Runs `body` on a fresh queue, then deletes the queue's keys even if it panicked.
async fn with_queue<F, Fut>(cfg: RedisQueueConfig, body: F)
where
    F: FnOnce(RedisQueue) -> Fut,
    Fut: Future<Output = ()>,
{
    let queue = connect(cfg).await;
    let outcome = AssertUnwindSafe(body(queue.clone())).catch_unwind().await;
    let purged = queue.purge().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    purged.expect("delete the test queue's keys");
}

/// A plain connection for looking at what the queue left in Redis.
async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis is required for these tests")
}

fn message() -> JobMessage {
    JobMessage::new(Uuid::now_v7(), JobKind::FetchUser)
}

#[derive(Debug, PartialEq, Eq)]
struct Footprint {
    /// Keys whose name starts with the queue's prefix.
    keys: usize,
    data: u64,
    done: u64,
    waiting: u64,
}

async fn footprint(queue: &str) -> Footprint {
    let mut conn = raw().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{queue}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let data: u64 = redis::cmd("HLEN")
        .arg(format!("{queue}:data"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let done: u64 = redis::cmd("SCARD")
        .arg(format!("{queue}:done"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let waiting: u64 = redis::cmd("LLEN")
        .arg(format!("{queue}:active"))
        .query_async(&mut conn)
        .await
        .unwrap();
    Footprint {
        keys: keys.len(),
        data,
        done,
        waiting,
    }
}

async fn count(
    _msg: serde_json::Value,
    seen: Data<Arc<AtomicUsize>>,
    target: Data<usize>,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    if seen.fetch_add(1, Ordering::SeqCst) + 1 >= *target {
        worker.stop()?;
    }
    Ok(())
}

/// Consumes exactly `n` tasks with a plain apalis worker on our backend.
async fn consume(queue: &RedisQueue, worker_name: &str, n: usize) -> usize {
    let seen = Arc::new(AtomicUsize::new(0));
    let worker = WorkerBuilder::new(worker_name)
        .backend(queue.worker_backend(64).await.expect("worker backend"))
        .data(seen.clone())
        .data(n)
        .build(count);
    tokio::time::timeout(Duration::from_secs(60), worker.run())
        .await
        .expect("the worker consumed every task in time")
        .expect("the worker ran without errors");
    seen.load(Ordering::SeqCst)
}

#[tokio::test]
async fn push_ping_and_depth() {
    let cfg = test_config();
    let name = cfg.queue.clone();
    with_queue(cfg, |queue| async move {
        assert_eq!(queue.backend_name(), "redis");
        queue.ping().await.expect("ping");
        assert_eq!(queue.depth().await.unwrap(), 0);
        let sent: Vec<JobMessage> = (0..3).map(|_| message()).collect();
        for m in &sent {
            queue.push(*m).await.expect("push");
        }
        assert_eq!(queue.depth().await.unwrap(), 3);
        // Each task's data is the message as JSON, as a worker will decode it.
        let mut conn = raw().await;
        let stored: Vec<Vec<u8>> = redis::cmd("HVALS")
            .arg(format!("{name}:data"))
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut got: Vec<JobMessage> = stored
            .iter()
            .map(|b| serde_json::from_slice(b).expect("a JobMessage"))
            .collect();
        got.sort_by_key(|m| m.job_id);
        assert_eq!(got, sent);
        // Straight onto the waiting list, never through apalis' schedule.
        let scheduled: u64 = redis::cmd("ZCARD")
            .arg(format!("{name}:scheduled"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(scheduled, 0);
    })
    .await;
}

#[tokio::test]
async fn a_push_wakes_an_idle_worker_at_once() {
    let mut cfg = test_config();
    // Only the push notification can wake the worker this soon.
    cfg.poll_interval = Duration::from_secs(30);
    with_queue(cfg, |queue| async move {
        let worker = tokio::spawn({
            let queue = queue.clone();
            async move { consume(&queue, "wake", 1).await }
        });
        tokio::time::sleep(Duration::from_millis(700)).await;
        let pushed = Instant::now();
        queue.push(message()).await.unwrap();
        assert_eq!(worker.await.unwrap(), 1);
        assert!(
            pushed.elapsed() < Duration::from_secs(2),
            "{:?}",
            pushed.elapsed()
        );
        queue.retire_worker("wake").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_backlog_beyond_luas_unpack_limit_is_consumed() {
    // apalis' own push would put these in its schedule, whose promotion fails
    // beyond ~8000 due tasks; ours queues them where fetches take batches.
    let n = 10_000;
    with_queue(test_config(), |queue| async move {
        let pushes = (0..n).map(|_| queue.push(message()));
        for result in futures::future::join_all(pushes).await {
            result.expect("push");
        }
        assert_eq!(queue.depth().await.unwrap(), n as u64);
        assert_eq!(consume(&queue, "backlog", n).await, n);
        assert_eq!(queue.depth().await.unwrap(), 0);
        assert_eq!(queue.trim().await.unwrap(), n as u64);
        queue.retire_worker("backlog").await.unwrap();
    })
    .await;
}

async fn note_order(
    msg: serde_json::Value,
    order: Data<Arc<std::sync::Mutex<Vec<JobMessage>>>>,
    target: Data<usize>,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    let mut order = order.lock().unwrap();
    order.push(serde_json::from_value(msg)?);
    if order.len() >= *target {
        worker.stop()?;
    }
    Ok(())
}

#[tokio::test]
async fn a_waited_on_job_is_fetched_before_the_backlog() {
    let n = 200;
    with_queue(test_config(), |queue| async move {
        for _ in 0..n {
            queue.push(message()).await.expect("push");
        }
        let waited = message().waited_on();
        queue.push(waited).await.expect("push");
        let order = Arc::new(std::sync::Mutex::new(Vec::<JobMessage>::new()));
        // Batches of one on this single-threaded test runtime: handlers start
        // in the order their tasks were fetched.
        let worker = WorkerBuilder::new("priority")
            .backend(queue.worker_backend(1).await.expect("worker backend"))
            .data(order.clone())
            .data(n + 1)
            .build(note_order);
        tokio::time::timeout(Duration::from_secs(60), worker.run())
            .await
            .expect("the worker consumed every task in time")
            .expect("the worker ran without errors");
        let order = order.lock().unwrap().clone();
        assert_eq!(order.len(), n + 1);
        assert_eq!(order[0], waited, "the waited-on job ran first");
        queue.retire_worker("priority").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn unreachable_redis_fails_fast_and_never_leaks_the_url() {
    let secret = "s3cret-Pa55word";
    let mut cfg = test_config();
    cfg.url = format!("redis://:{secret}@127.0.0.1:1/0");

    let started = Instant::now();
    let err = RedisQueue::connect(cfg.clone())
        .await
        .expect_err("nothing listens on port 1");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(
        !text.contains(secret) && !text.contains("redis://"),
        "{text}"
    );

    // A lazily connected queue starts, and its pushes fail within the bound.
    let queue = RedisQueue::connect_lazy(cfg).expect("lazy queue");
    let started = Instant::now();
    let err = queue.push(message()).await.expect_err("push must fail");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(
        !text.contains(secret) && !text.contains("redis://"),
        "{text}"
    );
    assert!(queue.ping().await.is_err());
    assert!(queue.worker_backend(4).await.is_err());
}

#[tokio::test]
async fn a_redis_that_stops_answering_cannot_hang_a_push() {
    // Accepts connections and never answers, like a wedged server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut cfg = test_config();
    cfg.url = format!("redis://{addr}");
    cfg.connect_timeout = Duration::from_secs(1);

    let started = Instant::now();
    assert!(RedisQueue::connect(cfg.clone()).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    let queue = RedisQueue::connect_lazy(cfg).unwrap();
    let started = Instant::now();
    assert!(queue.push(message()).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    silent.abort();
}

#[tokio::test]
async fn finished_tasks_do_not_accumulate_in_redis() {
    let cfg = test_config();
    let name = cfg.queue.clone();
    with_queue(cfg, |queue| async move {
        let mut after = Vec::new();
        for (round, n) in [(1, 40usize), (2, 200)] {
            for _ in 0..n {
                queue.push(message()).await.expect("push");
            }
            let worker = format!("retention-{round}");
            assert_eq!(consume(&queue, &worker, n).await, n);

            // apalis itself keeps every finished task: data, meta hash, done set.
            let before = footprint(&name).await;
            assert_eq!(before.waiting, 0);
            assert_eq!(before.done as usize, n, "{before:?}");
            assert!(before.keys >= n, "{before:?}");

            assert_eq!(queue.trim().await.unwrap() as usize, n);
            queue.retire_worker(&worker).await.unwrap();
            let trimmed = footprint(&name).await;
            assert_eq!((trimmed.data, trimmed.done, trimmed.waiting), (0, 0, 0));
            after.push(trimmed);
        }
        // The same small footprint after 40 and after 200 tasks.
        assert_eq!(after[0], after[1]);
        assert!(after[1].keys <= 3, "{:?}", after[1]);
    })
    .await;
}

#[tokio::test]
async fn tasks_of_a_dead_worker_are_recovered() {
    let mut cfg = test_config();
    // The defaults recover after 15 s; the mechanism is the same at 2 s.
    cfg.heartbeat = Duration::from_secs(1);
    cfg.missed_heartbeats = 2;
    let name = cfg.queue.clone();
    with_queue(cfg, |queue| async move {
        // A worker that fetched two tasks and was SIGKILLed long ago.
        queue.push(message()).await.unwrap();
        queue.push(message()).await.unwrap();
        let mut conn = raw().await;
        let ids: Vec<String> = redis::cmd("LRANGE")
            .arg(format!("{name}:active"))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        redis::pipe()
            .cmd("DEL")
            .arg(format!("{name}:active"))
            .cmd("ZADD")
            .arg(format!("{name}:workers"))
            .arg(now - 60)
            .arg("ghost")
            .cmd("SADD")
            .arg(format!("{name}:inflight:ghost"))
            .arg(&ids)
            .exec_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(queue.depth().await.unwrap(), 0);

        // A live worker's heartbeat hands them back, and it runs them.
        assert_eq!(consume(&queue, "survivor", 2).await, 2);
        queue.retire_worker("survivor").await.unwrap();
        let workers: Vec<String> = redis::cmd("ZRANGE")
            .arg(format!("{name}:workers"))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(workers.is_empty(), "{workers:?}");
    })
    .await;
}

#[tokio::test]
async fn maintenance_forgets_dead_workers_and_stops() {
    let cfg = test_config();
    let name = cfg.queue.clone();
    with_queue(cfg, |queue| async move {
        let mut conn = raw().await;
        redis::cmd("HSET")
            .arg(format!("{name}:workers:metadata:ghost"))
            .arg("backend_name")
            .arg("RedisStorage")
            .exec_async(&mut conn)
            .await
            .unwrap();
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let maintain = tokio::spawn({
            let queue = queue.clone();
            async move { queue.maintain(stop).await }
        });
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let exists: bool = redis::cmd("EXISTS")
                .arg(format!("{name}:workers:metadata:ghost"))
                .query_async(&mut conn)
                .await
                .unwrap();
            if !exists {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the dead worker was not forgotten"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(2), maintain)
            .await
            .expect("maintenance stops promptly")
            .unwrap();
    })
    .await;
}
