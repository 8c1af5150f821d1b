//! Scaled mode's transport: Redis through apalis-redis 1.0.
//!
//! Producers (the API, and workers queueing follow-up jobs) hold a
//! [`RedisQueue`] and push [`JobMessage`]s as apalis tasks; worker processes
//! consume [`RedisQueue::worker_backend`] (an apalis-redis `RedisStorage`). The
//! ledger stays the truth: a push that fails or times out (bounded by
//! [`RedisQueueConfig::command_timeout`]) is logged by the caller and the
//! sweeper dispatches the job again; a message delivered twice is skipped by
//! the ledger claim.
//!
//! # Pushing
//!
//! A push writes one task in apalis-redis' own layout with a small script
//! (`PUSH_LUA`) instead of apalis' `TaskSink::push`, because in apalis-redis
//! 1.0 that always puts the task in the `Q:scheduled` zset (its `run_at` is
//! "now") and publishes nothing, and its `fetch_next.lua` then moves *all* due
//! scheduled ids with one `unpack()`: with about 8000 or more waiting (workers
//! down for a while) every fetch fails with "too many results to unpack" and
//! the queue is stuck. Our push appends to `Q:active` (what apalis does for a
//! task without a schedule) and publishes `tasks:Q:active:available`, so
//! workers wake at once and fetch in bounded batches. Task ids are fresh
//! UUIDs: two pushes of one job are two tasks (the ledger dedupes). A job a
//! client is waiting on goes to the list's head instead, where fetches start
//! (docs/priority.md).
//!
//! # What apalis-redis keeps per task, and what we keep
//!
//! For a queue `Q`, apalis-redis 1.0 keeps (see its `lua/` scripts):
//! - `Q:data` (hash, task id → JSON args) and `Q:meta:<task id>` (one hash per
//!   task: attempts, status, result, done_at…), never deleted by apalis;
//! - `Q:active` (list of waiting ids), `Q:inflight:<worker>` (set of ids a
//!   worker fetched), `Q:scheduled` (zset, apalis retries; unused by us: the
//!   handler always succeeds), `Q:signal` (a one-element list);
//! - on completion (only when `persist_results` is on) the id leaves the
//!   worker's inflight set and joins `Q:done` (or `Q:dead`) forever;
//! - `Q:workers` (zset name → last heartbeat) and `Q:workers:metadata:<name>`,
//!   plus one member of the global zset `core:apalis:queues:list`.
//!
//! Turning `persist_results` off does not bound anything: apalis then never
//! acknowledges a task, so its id stays in the worker's inflight set (which
//! grows without end and is re-enqueued wholesale whenever the worker is
//! declared dead) and its data and meta stay too. So we keep `persist_results`
//! on (the acknowledgement is what empties the inflight set) and **trim**:
//! [`RedisQueue::trim`] atomically pops finished ids from `Q:done` and `Q:dead`
//! and deletes their `Q:data` field and `Q:meta:<id>` hash. Workers run it
//! every heartbeat ([`RedisQueue::maintain`], started by the worker pool), so
//! Redis holds the waiting and in-flight tasks plus at most one heartbeat's
//! worth of finished ones, however many were ever processed (the test
//! `finished_tasks_do_not_accumulate_in_redis` checks the footprint is the same
//! after 40 and after 200 tasks). [`RedisQueue::maintain`] also deletes the
//! metadata hashes of workers that are gone (once per process), and
//! [`RedisQueue::retire_worker`] (called when a worker stops) unregisters the
//! worker at once and hands back any ids still in its inflight set. Task
//! locking (`lock_tasks`) is off: it only writes `locked_by` into the meta hash
//! (and costs an `LREM` over the waiting list per task); the ledger claim is
//! our lock.
//!
//! # Orphans (a SIGKILLed worker)
//!
//! Each worker process registers under its unique name and heartbeats every
//! [`RedisQueueConfig::heartbeat`] (5 s). A worker silent for
//! `heartbeat × missed_heartbeats` (15 s) is dead: the next heartbeat of any
//! live worker on the queue moves its inflight ids back to `Q:active`, so its
//! tasks run again within about 15–20 s. That is the second line: the job
//! ledger's lease (`PAYGATE_JOB_LEASE_MS`) expires too and the sweeper
//! re-dispatches the job, so a job may arrive twice. Both are harmless: the
//! first claim wins and the other message is skipped. For the same reason a
//! worker declared dead while it was only slow just causes duplicates.
//!
//! Heartbeat times come from the workers' own clocks (whole seconds), so keep
//! worker hosts NTP-synced: a clock ahead by more than the orphan window makes
//! that worker re-enqueue live workers' tasks (duplicates, nothing worse).
//!
//! Known edge: if a slow-but-alive worker's ids are re-enqueued and then
//! trimmed after it finishes them, a later fetch of such an id finds no data;
//! that fetch fails, the pool rebuilds its apalis worker, and the ledger's
//! sweeper covers whatever the failed fetch held.
//!
//! # Wake-ups
//!
//! Workers subscribe to `tasks:Q:active:available` (on a connection of their
//! own) and also poll every [`RedisQueueConfig::poll_interval`] (1 s), which
//! picks up re-enqueued orphans and covers a lost subscription.

use super::{JobQueue, QueueError};
use crate::domain::{JobMessage, Priority};
use apalis_core::backend::ext::poll_strategy::{PollWith, StreamStrategy};
use apalis_core::backend::ext::BackendExt;
use apalis_core::worker::context::WorkerContext;
use apalis_redis::{Client, ConnectionManager, RedisStorage};
use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use redis::aio::ConnectionManagerConfig;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The queue name when none is configured.
pub const DEFAULT_QUEUE: &str = "paygate:jobs";

/// How a [`RedisQueue`] connects and how its workers stay visible.
#[derive(Clone)]
pub struct RedisQueueConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://…`. Never logged.
    pub url: String,
    /// The apalis queue name; every key of the queue starts with `"{queue}:"`.
    pub queue: String,
    /// How often a worker heartbeats (and trims finished tasks). At least 1 s.
    pub heartbeat: Duration,
    /// Heartbeats a worker may miss before its in-flight tasks are re-enqueued.
    pub missed_heartbeats: usize,
    /// Bound on establishing a connection (construction, reconnects, the
    /// workers' subscription).
    pub connect_timeout: Duration,
    /// Bound on every command, a push included.
    pub command_timeout: Duration,
    /// How often an idle worker looks for work without a push notification.
    pub poll_interval: Duration,
}

impl RedisQueueConfig {
    /// The defaults: queue `paygate:jobs`, heartbeat 5 s, 3 missed heartbeats
    /// (orphans recovered after 15 s), connect 3 s, commands 2 s, poll 1 s.
    pub fn new(url: impl Into<String>) -> Self {
        RedisQueueConfig {
            url: url.into(),
            queue: DEFAULT_QUEUE.to_string(),
            heartbeat: Duration::from_secs(5),
            missed_heartbeats: 3,
            connect_timeout: Duration::from_secs(3),
            command_timeout: Duration::from_secs(2),
            poll_interval: Duration::from_secs(1),
        }
    }

    /// After this much silence a worker is dead and its tasks are re-enqueued.
    pub fn orphaned_after(&self) -> Duration {
        self.heartbeat * self.missed_heartbeats as u32
    }

    fn validate(&self) -> Result<(), QueueError> {
        let invalid = |what: &str| {
            Err(QueueError::Unavailable(format!(
                "invalid Redis queue configuration: {what}"
            )))
        };
        if self.queue.trim().is_empty() {
            return invalid("the queue name is empty");
        }
        // apalis-redis keeps heartbeats in whole seconds.
        if self.heartbeat < Duration::from_secs(1) {
            return invalid("the heartbeat must be at least 1 s");
        }
        if self.missed_heartbeats < 2 {
            return invalid("missed_heartbeats must be at least 2");
        }
        if self.connect_timeout.is_zero()
            || self.command_timeout.is_zero()
            || self.poll_interval.is_zero()
        {
            return invalid("timeouts and the poll interval must be positive");
        }
        Ok(())
    }

    /// The apalis-redis settings this module relies on (see the module doc).
    fn apalis(&self, batch_size: usize) -> apalis_redis::Config {
        apalis_redis::Config::default()
            .queue(&self.queue)
            .heartbeat_interval(self.heartbeat)
            .missed_heartbeats(self.missed_heartbeats)
            .batch_size(batch_size.max(1))
            .lock_tasks(false)
            .persist_results(true)
            .emit_events(true)
    }
}

impl fmt::Debug for RedisQueueConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueueConfig")
            .field("url", &"<redacted>")
            .field("queue", &self.queue)
            .field("heartbeat", &self.heartbeat)
            .field("missed_heartbeats", &self.missed_heartbeats)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("poll_interval", &self.poll_interval)
            .finish()
    }
}

/// What a worker consumes: the apalis-redis storage, woken by push
/// notifications and a poll interval. Its arguments are raw JSON so that one
/// undecodable message (say, a job kind a newer release added) is dropped by
/// the handler instead of failing the backend; the ledger keeps the job.
pub type RedisWorkerBackend =
    PollWith<RedisStorage<serde_json::Value>, StreamStrategy<BoxStream<'static, ()>>>;

/// Producer handle on the Redis queue (cheap to clone) and the factory of
/// worker backends.
#[derive(Clone)]
pub struct RedisQueue {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    conn: ConnectionManager,
    cfg: RedisQueueConfig,
    /// For pushes and key names; workers get their own batch size.
    apalis: apalis_redis::Config,
    /// Texts that must never appear in an error message (the URL, the password).
    secrets: Vec<String>,
}

impl fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueue")
            .field("queue", &self.inner.cfg.queue)
            .finish_non_exhaustive()
    }
}

/// Enqueues one task in apalis-redis 1.0's layout (what its `batch_push.lua`
/// writes for a task without a schedule), straight onto the waiting list.
/// KEYS: data hash, active list, signal list, the task's meta hash.
/// ARGV: task id, JSON args, `head` or `tail`.
///
/// Workers fetch from the head of the list (`LRANGE 0 n-1` in apalis'
/// `fetch_next.lua`), so a waited-on job (`Priority::Waited`) is pushed
/// there: it runs next, ahead of any backlog, with no second list to consume.
const PUSH_LUA: &str = r#"
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('HSET', KEYS[4], 'attempts', 0, 'max_attempts', 25, 'status', 'Pending',
  'idempotency_key', '')
if ARGV[3] == 'head' then
  redis.call('LPUSH', KEYS[2], ARGV[1])
else
  redis.call('RPUSH', KEYS[2], ARGV[1])
end
redis.call('DEL', KEYS[3])
redis.call('LPUSH', KEYS[3], 1)
redis.call('PUBLISH', 'tasks:' .. KEYS[2] .. ':available', ARGV[1])
return 1
"#;

const TRIM_BATCH: usize = 1000;

/// Pops finished ids and deletes what apalis keeps for them.
/// KEYS: done set, dead set, data hash. ARGV: meta key prefix, batch.
const TRIM_LUA: &str = r#"
local removed = 0
for s = 1, 2 do
  local ids = redis.call('SPOP', KEYS[s], tonumber(ARGV[2]))
  for _, id in ipairs(ids) do
    redis.call('HDEL', KEYS[3], id)
    redis.call('DEL', ARGV[1] .. ':' .. id)
    removed = removed + 1
  end
end
return removed
"#;

/// Unregisters a worker, handing ids it still holds back to the waiting list.
/// KEYS: workers zset, its inflight set, active list, signal list, its
/// metadata hash. ARGV: worker name.
const RETIRE_LUA: &str = r#"
local ids = redis.call('SMEMBERS', KEYS[2])
if #ids > 0 then
  for i = 1, #ids, 1000 do
    redis.call('RPUSH', KEYS[3], unpack(ids, i, math.min(i + 999, #ids)))
  end
  redis.call('DEL', KEYS[2])
  redis.call('DEL', KEYS[4])
  redis.call('LPUSH', KEYS[4], 1)
  redis.call('PUBLISH', 'tasks:' .. KEYS[3] .. ':available', 'requeued')
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[5])
return #ids
"#;

impl RedisQueue {
    /// Connects now, within `connect_timeout`: an unreachable Redis is an
    /// error, never a hang.
    pub async fn connect(cfg: RedisQueueConfig) -> Result<RedisQueue, QueueError> {
        let (client, manager, secrets) = prepare(&cfg)?;
        let connecting = client.get_connection_manager_with_config(manager);
        let conn = match tokio::time::timeout(cfg.connect_timeout, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(unavailable(&secrets, "connecting to Redis failed", &e)),
            Err(_) => {
                return Err(QueueError::Unavailable(format!(
                    "connecting to Redis timed out after {} ms",
                    cfg.connect_timeout.as_millis()
                )))
            }
        };
        Ok(RedisQueue::from_parts(client, conn, cfg, secrets))
    }

    /// Connects on first use instead, so a process can start while Redis is
    /// down (pushes fail within `command_timeout` until it is back).
    pub fn connect_lazy(cfg: RedisQueueConfig) -> Result<RedisQueue, QueueError> {
        let (client, manager, secrets) = prepare(&cfg)?;
        let conn = client
            .get_connection_manager_lazy(manager)
            .map_err(|e| unavailable(&secrets, "configuring the Redis connection failed", &e))?;
        Ok(RedisQueue::from_parts(client, conn, cfg, secrets))
    }

    fn from_parts(
        client: Client,
        conn: ConnectionManager,
        cfg: RedisQueueConfig,
        secrets: Vec<String>,
    ) -> RedisQueue {
        let apalis = cfg.apalis(10);
        RedisQueue {
            inner: Arc::new(Inner {
                client,
                conn,
                cfg,
                apalis,
                secrets,
            }),
        }
    }

    pub fn config(&self) -> &RedisQueueConfig {
        &self.inner.cfg
    }

    /// The client, for connections of their own (the payment wake-ups'
    /// subscriber, `crate::payment_watch::redis`).
    pub(crate) fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The shared reconnecting connection (cheap to clone).
    pub(crate) fn connection(&self) -> ConnectionManager {
        self.inner.conn.clone()
    }

    /// Removes the URL and the password from a text (an error message) before
    /// it is logged.
    pub fn redact(&self, text: &str) -> String {
        redact(&self.inner.secrets, text)
    }

    /// The backend one worker consumes. `concurrency` is the worker's limit;
    /// the fetch batch is kept well below it so tasks never wait long in the
    /// worker's buffer (apalis does not heartbeat while it holds a buffer).
    /// The worker's apalis name (`WorkerBuilder::new`) must be unique per
    /// process: it owns an inflight set and is recovered under that name.
    pub async fn worker_backend(
        &self,
        concurrency: usize,
    ) -> Result<RedisWorkerBackend, QueueError> {
        let cfg = &self.inner.cfg;
        let batch = (concurrency / 4).clamp(1, 16);
        let apalis = cfg.apalis(batch);
        let channel = format!("tasks:{}:available", apalis.active_jobs_list());
        let mut pubsub =
            match tokio::time::timeout(cfg.connect_timeout, self.inner.client.get_async_pubsub())
                .await
            {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    return Err(self.error("subscribing to push notifications failed", &e))
                }
                Err(_) => return Err(self.timed_out("subscribing to push notifications")),
            };
        self.bounded(
            "subscribing to push notifications",
            pubsub.subscribe(&channel),
        )
        .await?;
        let (sink, messages) = pubsub.split();
        // A burst of pushes is one wake-up; the sink keeps the subscription open.
        let pushes = messages.ready_chunks(256).map(move |_| {
            let _subscription = &sink;
        });
        let ticks = futures::stream::unfold(cfg.poll_interval, |every| async move {
            tokio::time::sleep(every).await;
            Some(((), every))
        });
        let wake = futures::stream::select(pushes, ticks).boxed();
        Ok(RedisStorage::new(self.inner.conn.clone())
            .with_config(apalis)
            .poll_with_stream(wake))
    }

    /// Tasks waiting in Redis (not yet fetched by a worker): `LLEN Q:active`.
    pub async fn depth(&self) -> Result<u64, QueueError> {
        let mut conn = self.inner.conn.clone();
        let key = self.inner.apalis.active_jobs_list();
        self.bounded("reading the queue depth", async move {
            redis::cmd("LLEN")
                .arg(key)
                .query_async::<u64>(&mut conn)
                .await
        })
        .await
    }

    /// Deletes what Redis keeps of finished tasks (see the module doc);
    /// returns how many tasks were removed.
    pub async fn trim(&self) -> Result<u64, QueueError> {
        let apalis = &self.inner.apalis;
        let script = redis::Script::new(TRIM_LUA);
        let mut total = 0u64;
        loop {
            let mut conn = self.inner.conn.clone();
            let mut invocation = script.prepare_invoke();
            invocation
                .key(apalis.done_jobs_set())
                .key(apalis.dead_jobs_set())
                .key(apalis.job_data_hash())
                .arg(apalis.job_meta_hash())
                .arg(TRIM_BATCH);
            let removed = self
                .bounded("trimming finished tasks", async move {
                    invocation.invoke_async::<u64>(&mut conn).await
                })
                .await?;
            total += removed;
            if removed < TRIM_BATCH as u64 {
                return Ok(total);
            }
        }
    }

    /// Unregisters the worker `name` now (instead of after its heartbeats
    /// lapse) and re-enqueues whatever it still held; returns that count.
    pub async fn retire_worker(&self, name: &str) -> Result<u64, QueueError> {
        let apalis = &self.inner.apalis;
        let worker = WorkerContext::new(name);
        let mut conn = self.inner.conn.clone();
        let script = redis::Script::new(RETIRE_LUA);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(apalis.workers_set())
            .key(apalis.inflight_set_for(&worker))
            .key(apalis.active_jobs_list())
            .key(apalis.signal_list())
            .key(apalis.worker_metadata_key(&worker))
            .arg(name);
        self.bounded("retiring the worker", async move {
            invocation.invoke_async::<u64>(&mut conn).await
        })
        .await
    }

    /// Deletes the metadata hashes of workers no longer registered (killed
    /// processes); returns how many.
    pub async fn forget_dead_workers(&self) -> Result<u64, QueueError> {
        let apalis = &self.inner.apalis;
        let prefix = apalis.worker_metadata_key(&WorkerContext::new(""));
        let keys = self.scan(&format!("{}*", glob_escape(&prefix))).await?;
        let workers = apalis.workers_set();
        let mut removed = 0;
        for key in keys {
            let name = key[prefix.len()..].to_string();
            let mut conn = self.inner.conn.clone();
            let workers = workers.clone();
            let registered = self
                .bounded("reading the workers", async move {
                    redis::cmd("ZSCORE")
                        .arg(workers)
                        .arg(name)
                        .query_async::<Option<f64>>(&mut conn)
                        .await
                })
                .await?;
            if registered.is_none() {
                removed += self.del(vec![key]).await?;
            }
        }
        Ok(removed)
    }

    /// Deletes every key of this queue (all keys starting with `"{queue}:"`)
    /// and its entry in apalis' queue list. For tests and operators resetting
    /// a queue; never called by the service.
    pub async fn purge(&self) -> Result<u64, QueueError> {
        let prefix = format!("{}:", self.inner.cfg.queue);
        let keys = self.scan(&format!("{}*", glob_escape(&prefix))).await?;
        let mut removed = 0;
        for chunk in keys.chunks(500) {
            removed += self.del(chunk.to_vec()).await?;
        }
        let mut conn = self.inner.conn.clone();
        let member = self.inner.apalis.workers_set();
        self.bounded("purging the queue", async move {
            redis::cmd("ZREM")
                .arg("core:apalis:queues:list")
                .arg(member)
                .query_async::<u64>(&mut conn)
                .await
        })
        .await?;
        Ok(removed)
    }

    /// Housekeeping for as long as workers run: forgets dead workers once,
    /// then trims finished tasks every heartbeat until `stop` turns true.
    /// Failures are logged once per outage and retried.
    pub async fn maintain(&self, mut stop: watch::Receiver<bool>) {
        let mut forgot = false;
        let mut failing = false;
        loop {
            let pass = async {
                if !forgot {
                    let n = self.forget_dead_workers().await?;
                    if n > 0 {
                        tracing::debug!(count = n, "forgot dead queue workers");
                    }
                    forgot = true;
                }
                self.trim().await
            };
            match pass.await {
                Ok(n) => {
                    if failing {
                        tracing::info!("Redis queue housekeeping works again");
                    }
                    failing = false;
                    if n > 0 {
                        tracing::debug!(count = n, "trimmed finished queue tasks");
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "Redis queue housekeeping failed; retrying");
                    }
                    failing = true;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.inner.cfg.heartbeat) => {}
                _ = stop_requested(&mut stop) => return,
            }
        }
    }

    async fn scan(&self, pattern: &str) -> Result<Vec<String>, QueueError> {
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let mut conn = self.inner.conn.clone();
            let pattern = pattern.to_string();
            let (next, batch) = self
                .bounded("scanning queue keys", async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async::<(u64, Vec<String>)>(&mut conn)
                        .await
                })
                .await?;
            keys.extend(batch);
            if next == 0 {
                keys.sort();
                keys.dedup();
                return Ok(keys);
            }
            cursor = next;
        }
    }

    async fn del(&self, keys: Vec<String>) -> Result<u64, QueueError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut conn = self.inner.conn.clone();
        self.bounded("deleting queue keys", async move {
            redis::cmd("DEL")
                .arg(keys)
                .query_async::<u64>(&mut conn)
                .await
        })
        .await
    }

    /// Runs one Redis operation within `command_timeout`.
    async fn bounded<T, E: fmt::Display>(
        &self,
        what: &str,
        op: impl Future<Output = Result<T, E>>,
    ) -> Result<T, QueueError> {
        match tokio::time::timeout(self.inner.cfg.command_timeout, op).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.error(&format!("{what} failed"), &e)),
            Err(_) => Err(self.timed_out(what)),
        }
    }

    fn error(&self, what: &str, e: &dyn fmt::Display) -> QueueError {
        unavailable(&self.inner.secrets, what, e)
    }

    fn timed_out(&self, what: &str) -> QueueError {
        QueueError::Unavailable(format!(
            "{what} timed out after {} ms",
            self.inner.cfg.command_timeout.as_millis()
        ))
    }
}

#[async_trait]
impl JobQueue for RedisQueue {
    async fn push(&self, msg: JobMessage) -> Result<(), QueueError> {
        let data = serde_json::to_vec(&msg)
            .map_err(|e| QueueError::Unavailable(format!("encoding the message failed: {e}")))?;
        let task_id = uuid::Uuid::now_v7().to_string();
        let apalis = &self.inner.apalis;
        let script = redis::Script::new(PUSH_LUA);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(apalis.job_data_hash())
            .key(apalis.active_jobs_list())
            .key(apalis.signal_list())
            .key(format!("{}:{task_id}", apalis.job_meta_hash()))
            .arg(&task_id)
            .arg(data)
            .arg(match msg.priority {
                Priority::Waited => "head",
                Priority::Background => "tail",
            });
        let mut conn = self.inner.conn.clone();
        self.bounded("pushing a job", async move {
            invocation.invoke_async::<u64>(&mut conn).await
        })
        .await
        .map(|_| ())
    }

    async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.inner.conn.clone();
        self.bounded("PING", async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await
        .map(|_| ())
    }

    fn backend_name(&self) -> &'static str {
        "redis"
    }
}

fn prepare(
    cfg: &RedisQueueConfig,
) -> Result<(Client, ConnectionManagerConfig, Vec<String>), QueueError> {
    cfg.validate()?;
    let secrets = secrets_of(&cfg.url);
    let client = Client::open(cfg.url.as_str())
        .map_err(|e| unavailable(&secrets, "the Redis URL is invalid", &e))?;
    let manager = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(cfg.connect_timeout))
        .set_response_timeout(Some(cfg.command_timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1));
    Ok((client, manager, secrets))
}

/// The URL and its password (as written and percent-decoded).
fn secrets_of(url: &str) -> Vec<String> {
    let mut secrets = vec![url.to_string()];
    if let Ok(parsed) = url::Url::parse(url) {
        if let Some(password) = parsed.password() {
            secrets.push(password.to_string());
            secrets.push(percent_decode(password));
        }
    }
    secrets.retain(|s| !s.is_empty());
    // Longest first, so the URL is replaced whole before its password.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn redact(secrets: &[String], text: &str) -> String {
    let mut out = text.to_string();
    for s in secrets {
        out = out.replace(s.as_str(), "<redacted>");
    }
    out
}

fn unavailable(secrets: &[String], what: &str, e: &dyn fmt::Display) -> QueueError {
    QueueError::Unavailable(redact(secrets, &format!("{what}: {e}")))
}

/// Escapes Redis glob characters so a queue name matches only itself.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Resolves when `stop` turns true or its sender is gone.
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let secrets = secrets_of("redis://user:p%40ss@localhost:6379/0");
        let msg = "failed for redis://user:p%40ss@localhost:6379/0 with p%40ss and p@ss";
        let out = redact(&secrets, msg);
        assert!(!out.contains("p%40ss") && !out.contains("p@ss"), "{out}");
        assert!(!out.contains("redis://"), "{out}");
    }

    #[test]
    fn debug_never_shows_the_url() {
        let cfg = RedisQueueConfig::new("redis://:hunter2@localhost");
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[test]
    fn invalid_settings_are_refused() {
        let mut cfg = RedisQueueConfig::new("redis://localhost");
        assert!(cfg.validate().is_ok());
        cfg.heartbeat = Duration::from_millis(500);
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
