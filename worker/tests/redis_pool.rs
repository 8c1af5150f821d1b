//! The worker pool on Redis, against the machine's real Redis
//! (`PAYGATE_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`) and a SQLite
//! ledger in a temp file. Each test uses a queue of its own and deletes its
//! keys afterwards. Redis is required: unreachable, the tests fail.

use futures::FutureExt;
use paygate_common::crypto::Cipher;
use paygate_common::domain::{
    Amount, Description, EventKind, JobStatus, NewEvent, PaymentId, Provider, RetryPolicies,
};
use paygate_common::domain::{JobPayload, NewJob};
use paygate_common::gateways::GatewayRegistry;
use paygate_common::queue::embedded::EmbeddedQueue;
use paygate_common::queue::redis::{RedisQueue, RedisQueueConfig};
use paygate_common::queue::JobQueue;
use paygate_common::store::{CreateOutcome, NewPayment, Store, StoreOptions};
use paygate_common::userdir::{UserDirectory, UserDirectoryConfig};
use paygate_worker::engine::ReturnUrls;
use paygate_worker::pool::{run_embedded, run_redis};
use paygate_worker::Engine;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use uuid::Uuid;

const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

fn redis_config() -> RedisQueueConfig {
    let url =
        std::env::var("PAYGATE_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_string());
    let mut cfg = RedisQueueConfig::new(url);
    cfg.queue = format!("paygate-test:{}", Uuid::new_v4().simple());
    cfg
}

/// A temp directory removed on drop (also while unwinding).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("paygate-redis-pool-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create the temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn store(dir: &TempDir) -> Store {
    let url = format!("sqlite://{}", dir.0.join("paygate.db").display());
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .expect("open SQLite");
    store.migrate().await.expect("migrate");
    store
}

/// An engine as `cli/src/wiring.rs` builds one, with no gateways and a user
/// directory nobody answers on.
fn engine(store: Store, queue: Arc<dyn JobQueue>) -> Arc<Engine> {
    Arc::new(Engine {
        store,
        queue,
        cipher: Cipher::from_secrets("redis-pool-test-secret", &[]).expect("cipher"),
        gateways: GatewayRegistry::default(),
        users: UserDirectory::new(UserDirectoryConfig {
            base_url: "http://127.0.0.1:1".into(),
            path: "/api/users/{identifier}/".into(),
            auth_header: "Authorization".into(),
            auth_prefix: "Api-Key ".into(),
            api_key: "test-key".into(),
            timeout: Duration::from_secs(2),
        })
        .expect("HTTP client"),
        return_urls: ReturnUrls {
            medogram: "http://127.0.0.1:1/crazyminer/payment/callback/".into(),
            shop_template: "http://127.0.0.1:1/shop/orders/{order_id}".into(),
        },
        retry: RetryPolicies::default(),
        job_lease: Duration::from_secs(25),
        background_follow_up_inside: false,
        worker_id: format!("redis-pool-test-{}", Uuid::new_v4().simple()),
        webhooks: paygate_worker::webhook_lane::WebhookLane::new(Default::default())
            .expect("HTTP client"),
        announcer: Default::default(),
    })
}

/// Creates a payment the way the API does; returns its `fetch_user` job id.
async fn create_payment(engine: &Engine) -> Uuid {
    let id = PaymentId::new();
    let new = NewPayment {
        id,
        provider: Provider::Medogram,
        merchant_ref: "09123456789".into(),
        amount: Amount::from_minor(100_000).unwrap(),
        currency: Provider::Medogram.currency(),
        description: Description::parse("redis pool test").unwrap(),
        idempotency_key: None,
        order_id: None,
    };
    let event = NewEvent::new(id, EventKind::Request, "payment requested");
    let job = NewJob::once_per_payment(JobPayload::FetchUser, id, &RetryPolicies::default());
    let job_id = job.id;
    match engine.store.create_payment(&new, event, job).await.unwrap() {
        CreateOutcome::Created(_, messages) => {
            assert_eq!(messages.len(), 1);
            assert_eq!(messages[0].job_id, job_id);
            engine.queue.push(messages[0]).await.expect("push");
        }
        CreateOutcome::Existing(_) => panic!("a new payment"),
    }
    job_id
}

/// The user server is unreachable: the job is claimed, fails retryably, and
/// goes back to `queued` with its attempt and error recorded.
async fn assert_ran_once_and_will_retry(engine: &Engine, job_id: Uuid) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let job = loop {
        let job = engine
            .store
            .job(job_id)
            .await
            .unwrap()
            .expect("the job row");
        if job.attempts >= 1 && job.status != JobStatus::Running {
            break job;
        }
        assert!(Instant::now() < deadline, "the job was not run: {job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(job.status, JobStatus::Queued, "{job:?}");
    assert!(job.last_error.is_some(), "{job:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_redis_claims_and_finishes_jobs_and_stops_promptly() {
    let dir = TempDir::new();
    let queue = RedisQueue::connect(redis_config())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Redis is required (set PAYGATE_TEST_REDIS_URL, default {DEFAULT_REDIS_URL}): {e}"
            )
        });
    let outcome = AssertUnwindSafe(async {
        let engine = engine(store(&dir).await, Arc::new(queue.clone()));
        let job_id = create_payment(&engine).await;

        let (stop_tx, stop) = watch::channel(false);
        let pool = tokio::spawn({
            let (engine, queue) = (engine.clone(), queue.clone());
            async move { run_redis(engine, &queue, 4, stop).await }
        });

        assert_ran_once_and_will_retry(&engine, job_id).await;
        assert_eq!(queue.depth().await.unwrap(), 0);

        stop_tx.send(true).unwrap();
        let stopped = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), pool)
            .await
            .expect("run_redis returns promptly after stop")
            .expect("run_redis did not panic")
            .expect("run_redis returns Ok");
        assert!(stopped.elapsed() < Duration::from_secs(5));
        // The worker retired itself: registering the same name again works.
        assert_eq!(queue.retire_worker(&engine.worker_id).await.unwrap(), 0);
        engine.store.close().await;
    })
    .catch_unwind()
    .await;
    let purged = queue.purge().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    purged.expect("delete the test queue's keys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_redis_keeps_retrying_while_redis_is_away_and_still_stops() {
    let dir = TempDir::new();
    let mut cfg = redis_config();
    cfg.url = "redis://127.0.0.1:1".into();
    cfg.connect_timeout = Duration::from_millis(500);
    let queue = RedisQueue::connect_lazy(cfg).expect("a lazy queue");
    let engine = engine(store(&dir).await, Arc::new(queue.clone()));

    let (stop_tx, stop) = watch::channel(false);
    let pool = tokio::spawn({
        let (engine, queue) = (engine.clone(), queue.clone());
        async move { run_redis(engine, &queue, 4, stop).await }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !pool.is_finished(),
        "run_redis gave up while Redis was away"
    );

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(3), pool)
        .await
        .expect("run_redis returns promptly after stop")
        .expect("run_redis did not panic")
        .expect("run_redis returns Ok");
    engine.store.close().await;
}

/// `run_embedded` shares the worker definition and the stop logic with
/// `run_redis`; this keeps it honest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_embedded_runs_jobs_and_stops_promptly() {
    let dir = TempDir::new();
    let (queue, storage) = EmbeddedQueue::new();
    let engine = engine(store(&dir).await, Arc::new(queue));
    let job_id = create_payment(&engine).await;

    let (stop_tx, stop) = watch::channel(false);
    let pool = tokio::spawn(run_embedded(engine.clone(), storage, 4, stop));
    assert_ran_once_and_will_retry(&engine, job_id).await;

    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), pool)
        .await
        .expect("run_embedded returns promptly after stop")
        .expect("run_embedded did not panic")
        .expect("run_embedded returns Ok");
    engine.store.close().await;
}

/// A TCP proxy to the real Redis that the test can cut and restore, so Redis
/// "goes away" for this test only.
struct Proxy {
    port: u16,
    target: String,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Proxy {
            port,
            target,
            tasks: Default::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (target, tasks) = (self.target.clone(), self.tasks.clone());
        let accept = tokio::spawn({
            let tasks = tasks.clone();
            async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let target = target.clone();
                    let pipe = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    tasks.lock().unwrap().push(pipe.abort_handle());
                }
            }
        });
        tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// Closes every connection and stops listening.
    fn cut(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    async fn restore(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("listen again on the proxy port");
        self.serve(listener);
    }
}

/// `host:port` of a `redis://` URL, and the URL with that part replaced.
fn split_redis_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("redis://").expect("a redis:// URL");
    let (auth, rest) = match rest.rfind('@') {
        Some(at) => (&rest[..=at], &rest[at + 1..]),
        None => ("", rest),
    };
    let (host, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    };
    let host = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:6379")
    };
    (host, format!("redis://{auth}PROXY{path}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_redis_recovers_when_redis_comes_back() {
    let dir = TempDir::new();
    let direct_cfg = redis_config();
    let direct = RedisQueue::connect(direct_cfg.clone())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Redis is required (set PAYGATE_TEST_REDIS_URL, default {DEFAULT_REDIS_URL}): {e}"
            )
        });
    let outcome = AssertUnwindSafe(async {
        let (target, template) = split_redis_url(&direct_cfg.url);
        let proxy = Proxy::start(target).await;
        let mut cfg = direct_cfg.clone();
        cfg.url = template.replace("PROXY", &format!("127.0.0.1:{}", proxy.port));
        let proxied = RedisQueue::connect(cfg)
            .await
            .expect("connect through the proxy");
        // Jobs are pushed straight to Redis; the worker reaches it through the proxy.
        let engine = engine(store(&dir).await, Arc::new(direct.clone()));
        let (stop_tx, stop) = watch::channel(false);
        let pool = tokio::spawn({
            let (engine, proxied) = (engine.clone(), proxied.clone());
            async move { run_redis(engine, &proxied, 4, stop).await }
        });

        let first = create_payment(&engine).await;
        assert_ran_once_and_will_retry(&engine, first).await;

        proxy.cut();
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !pool.is_finished(),
            "run_redis gave up while Redis was away"
        );
        let second = create_payment(&engine).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let waiting = engine.store.job(second).await.unwrap().unwrap();
        assert_eq!(waiting.attempts, 0, "no worker can reach Redis yet");

        proxy.restore().await;
        assert_ran_once_and_will_retry(&engine, second).await;

        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), pool)
            .await
            .expect("run_redis returns promptly after stop")
            .expect("run_redis did not panic")
            .expect("run_redis returns Ok");
        proxy.cut();
        engine.store.close().await;
    })
    .catch_unwind()
    .await;
    let purged = direct.purge().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    purged.expect("delete the test queue's keys");
}
