//! Persistence. One `Store` serves both databases through sqlx's `Any` driver:
//! the schema keeps to types both share (TEXT, BIGINT), the SQL is written once,
//! and the few places where the dialects differ are named in [`Dialect`].
//! The same contract tests run against SQLite and PostgreSQL
//! (`common/tests/store_contract.rs`).

//!
//! Modules depend one way: `rows` and `constraint` (decoding) ← `json_rows`
//! ← the two appliers (`apply_sqlite`, `apply_pg`) ← `changeset` (what one
//! atomic write is) ← the table modules (`payments`, `orders`, `jobs`,
//! `inbound`, `gateway_txns`), whose writes are all changesets.

mod api_keys;
mod apply_pg;
mod apply_sqlite;
mod changeset;
mod constraint;
mod expiry;
mod gateway_txns;
mod idempotency;
mod inbound;
mod jobs;
mod json_rows;
mod orders;
mod payments;
mod refunds;
mod rows;
mod stats;
mod webhooks;
mod write_gate;
mod writer_thread;
mod written;

pub use api_keys::{ApiKey, NewApiKey};
pub use changeset::{Applied, Changeset, Committed, Fence, GatewayTxnWrite, NextClaim, Origin};
pub use constraint::UniqueKey;
pub use gateway_txns::GatewayTxn;
pub use idempotency::{Claim, IdempotencyScope, IdempotencyTimes, StoredAnswer};
pub use inbound::{InboundOutcome, NewInbound};
pub use jobs::{ClaimedJob, Finished, JobFinish, JobRecord, JobResult};
pub use orders::NewOrder;
pub use payments::{CreateOutcome, NewPayment, PaymentFilter};
pub use refunds::NewRefund;
pub use stats::QueueStats;
pub use webhooks::{
    AttemptEffect, EndpointPatch, MessageStatus, WebhookAttempt, WebhookEndpoint, WebhookMessage,
};

use sqlx::any::AnyPoolOptions;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedMappedMutexGuard;
pub(crate) use write_gate::Lane;
use write_gate::{Turn, WriteGate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row changed since it was read (another worker or message got there
    /// first). Callers reload and decide again.
    #[error("the record was changed concurrently")]
    Conflict,
    /// This worker no longer holds the job (its lease expired and another took it).
    #[error("the job lease was lost")]
    LeaseLost,
    #[error("not found")]
    NotFound,
    #[error("unsupported database URL (expected sqlite:// or postgres://)")]
    UnsupportedUrl,
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A unique value is taken (e.g. an idempotency key another request won).
    #[error("a unique value is already taken ({0:?})")]
    Taken(UniqueKey),
}

impl StoreError {
    /// True when the database itself is unavailable (as opposed to a logical outcome).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Database(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// PostgreSQL: connections kept apart for work a client is waiting on
    /// ([`serving_a_waiting_client`]); 0 turns the lane off. Opened on first
    /// use, so a process that never runs such work (the API) opens none.
    pub priority_connections: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
            priority_connections: 2,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Store {
    /// Reads (and, on PostgreSQL, everything).
    pool: AnyPool,
    /// Writes. On SQLite one connection: SQLite admits one writer at a time,
    /// and queueing writers here (a fair async wait) is far cheaper than
    /// letting several connections collide on the file lock, where each loser
    /// sleeps in SQLite's busy handler for 1, 2, 5, 10… ms (the embedded
    /// benchmark showed p50 ≈ 95 ms at 16 concurrent creates that way). On
    /// PostgreSQL the same pool as reads.
    writer: AnyPool,
    /// SQLite: the turns on the one writer connection, and the thread that
    /// sends the hot writes (see [`writer_thread`]). PostgreSQL has many
    /// writers and neither.
    sqlite: Option<SqliteWrites>,
    /// PostgreSQL: the waited-on work's own connections (see
    /// [`serving_a_waiting_client`]). Without them such work would queue for
    /// a connection behind every background job of the process: a worker
    /// runs hundreds of jobs on a handful of connections, and sqlx hands
    /// connections out first come, first served.
    priority: Option<AnyPool>,
    dialect: Dialect,
}

tokio::task_local! {
    static WAITED_ON: ();
}

/// Runs `work` as work a client is waiting on: its statements use the
/// priority connections on PostgreSQL and take SQLite's writer before
/// background work (the acknowledgements' lane). The worker wraps each
/// `Priority::Waited` job in it (domain::Priority, docs/priority.md). A
/// task-local rather than a parameter because it concerns every statement a
/// job makes, through every store method it calls.
pub async fn serving_a_waiting_client<F: std::future::Future>(work: F) -> F::Output {
    WAITED_ON.scope((), work).await
}

fn waited_on() -> bool {
    WAITED_ON.try_with(|_| ()).is_ok()
}

/// The connection for one turn (a statement or a transaction): SQLite's one
/// writer connection, or a PostgreSQL connection from the pool.
pub(crate) struct Writer {
    // Declared before the turn: fields drop in order, so the connection is
    // back in its slot before the next writer is let in.
    conn: WriterConnection,
    _turn: Option<Turn>,
}

enum WriterConnection {
    Pooled(PoolConnection<Any>),
    Held(OwnedMappedMutexGuard<Option<PoolConnection<Any>>, PoolConnection<Any>>),
}

impl std::ops::Deref for Writer {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        match &self.conn {
            WriterConnection::Pooled(c) => c,
            WriterConnection::Held(c) => c,
        }
    }
}

impl std::ops::DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.conn {
            WriterConnection::Pooled(c) => c,
            WriterConnection::Held(c) => c,
        }
    }
}

/// SQLite's writer connection, kept out of its pool between turns. A pool
/// pings a connection when it comes back (sqlx's `return_to_pool`, from a
/// spawned task) and the next turn waits for that: two more hand-offs to
/// SQLite's thread per write, which bound the embedded pipeline
/// (PERFORMANCE.md, 'SQLite's hand-offs'). The write gate already makes
/// turns exclusive, so the lock here is never contended.
type HeldWriter = Arc<tokio::sync::Mutex<Option<PoolConnection<Any>>>>;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// A pooled PostgreSQL connection idle longer than this is pinged before use
/// (a restarted server or a dropped TCP connection shows here, not as a failed
/// statement).
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

impl Store {
    pub fn dialect_of(url: &str) -> StoreResult<Dialect> {
        if url.starts_with("sqlite:") {
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Dialect::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }

    /// Opens a pool. SQLite files are created if missing and put in WAL mode so
    /// readers never block the writer.
    pub async fn connect(url: &str, opts: &StoreOptions) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let dialect = Self::dialect_of(url)?;
        let options = || AnyPoolOptions::new().acquire_timeout(opts.acquire_timeout);
        match dialect {
            Dialect::Sqlite => {
                let url = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                let sqlite = |max: u32| {
                    // No ping before each use (sqlx's default): the
                    // connection is a file in this process, and the ping is
                    // one more hand-off to its thread per statement, which is
                    // what bounds the embedded pipeline (PERFORMANCE.md,
                    // 'SQLite's hand-offs').
                    options()
                        .max_connections(max)
                        .test_before_acquire(false)
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                // busy_timeout still matters: other processes
                                // (`paygate apikey create`, `migrate`) may write too.
                                for pragma in [
                                    "PRAGMA journal_mode = WAL",
                                    "PRAGMA synchronous = NORMAL",
                                    "PRAGMA busy_timeout = 15000",
                                    "PRAGMA foreign_keys = ON",
                                    apply_sqlite::GATES_TABLE,
                                ] {
                                    sqlx::query(pragma).execute(&mut *conn).await?;
                                }
                                Ok(())
                            })
                        })
                };
                let writer = sqlite(1).connect(&url).await?;
                // An in-memory database exists once per connection: one pool.
                let (pool, held) = if url.contains(":memory:") || url.contains("mode=memory") {
                    (writer.clone(), None)
                } else {
                    let pool = sqlite(opts.max_connections.clamp(1, 4))
                        .connect(&url)
                        .await?;
                    (pool, Some(HeldWriter::default()))
                };
                let source = WriterSource {
                    gate: Arc::new(WriteGate::default()),
                    held,
                    pool: writer.clone(),
                };
                let thread = writer_thread::WriterThread::start(source.clone()).map_err(|e| {
                    StoreError::Corrupt(format!("the SQLite writer thread did not start: {e}"))
                })?;
                Ok(Store {
                    pool,
                    writer,
                    sqlite: Some(SqliteWrites { source, thread }),
                    priority: None,
                    dialect,
                })
            }
            Dialect::Postgres => {
                let postgres = |max: u32| {
                    options()
                        .max_connections(max)
                        // sqlx pings every connection it hands out by default:
                        // one more round trip per statement, which cost the
                        // pipeline a quarter of its throughput (PERFORMANCE.md,
                        // 'The seed contract and the pipeline'). Only a
                        // connection idle for a while is checked (the pattern
                        // sqlx documents for `before_acquire`); a busy one was
                        // just used successfully.
                        .test_before_acquire(false)
                        .before_acquire(|conn, meta| {
                            Box::pin(async move {
                                if meta.idle_for > PING_WHEN_IDLE_FOR {
                                    sqlx::Connection::ping(conn).await?;
                                }
                                Ok(true)
                            })
                        })
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                // Every statement here is a fixed text with a fixed
                                // shape (point reads and writes by key, and the one
                                // changeset statement); planning the changeset
                                // statement anew on each execution cost more than
                                // running it (see PERFORMANCE.md), so plans are reused.
                                sqlx::query("SET plan_cache_mode = force_generic_plan")
                                    .execute(&mut *conn)
                                    .await?;
                                Ok(())
                            })
                        })
                };
                let pool = postgres(opts.max_connections.max(1)).connect(url).await?;
                let priority = match opts.priority_connections {
                    0 => None,
                    n => Some(postgres(n).connect_lazy(url)?),
                };
                Ok(Store {
                    writer: pool.clone(),
                    pool,
                    sqlite: None,
                    priority,
                    dialect,
                })
            }
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        let migrator = match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&mut *self.writer(Lane::Ack).await?).await?;
        Ok(())
    }

    /// True when every migration this build knows has been applied (scaled
    /// processes wait for `paygate migrate` instead of racing it).
    pub async fn schema_ready(&self) -> StoreResult<bool> {
        use sqlx::Row;
        let migrator = match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        };
        let rows = match sqlx::query("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(&self.pool)
            .await
        {
            Ok(rows) => rows,
            // No migrations table yet: nothing applied.
            Err(sqlx::Error::Database(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let applied: std::collections::HashSet<i64> = rows
            .iter()
            .filter_map(|r| r.try_get::<i64, _>("version").ok())
            .collect();
        Ok(migrator.iter().all(|m| applied.contains(&m.version)))
    }

    /// Readiness probe: a round trip to the database.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        // The pool's close waits for every connection to come back.
        if let Some(held) = self.sqlite.as_ref().and_then(|s| s.source.held.as_ref()) {
            if let Some(conn) = held.lock().await.take() {
                let _ = conn.close().await;
            }
        }
        self.pool.close().await;
        self.writer.close().await;
        if let Some(p) = &self.priority {
            p.close().await;
        }
    }

    /// For reads.
    pub(crate) fn pool(&self) -> &AnyPool {
        self.lane(&self.pool)
    }

    /// `shared`, or the priority connections for work a client waits on when
    /// `shared` has no idle connection at the moment. Waited-on work takes
    /// an idle shared connection first because without a backlog it is all the
    /// work there is, and two or four connections of its own would then be
    /// its ceiling; with a backlog the shared ones are busy and it has its own.
    fn lane<'a>(&'a self, shared: &'a AnyPool) -> &'a AnyPool {
        match &self.priority {
            Some(priority) if waited_on() && shared.num_idle() == 0 => priority,
            _ => shared,
        }
    }

    /// For every statement that writes, and transactions that read then write:
    /// keep the returned value alive until the write is done (a transaction:
    /// until it commits), it is the turn on SQLite's one writer.
    #[track_caller]
    pub(crate) fn writer(
        &self,
        lane: Lane,
    ) -> impl std::future::Future<Output = StoreResult<Writer>> + '_ {
        // The caller's place is kept so a turn held too long can be named
        // (write_gate.rs, SLOW_WAIT).
        let at = std::panic::Location::caller();
        async move {
            let lane = if waited_on() { Lane::Ack } else { lane };
            match &self.sqlite {
                Some(sqlite) => sqlite.source.take(lane, at).await,
                None => Ok(Writer {
                    conn: WriterConnection::Pooled(self.lane(&self.writer).acquire().await?),
                    _turn: None,
                }),
            }
        }
    }

    /// Runs one hot write on SQLite's writer thread ([`writer_thread`]) and
    /// returns its rows. `transaction`: the query begins one, so a failure
    /// rolls it back.
    pub(crate) async fn sqlite_write(
        &self,
        lane: Lane,
        query: writer_thread::Query,
        transaction: bool,
    ) -> StoreResult<Vec<sqlx::any::AnyRow>> {
        let lane = if waited_on() { Lane::Ack } else { lane };
        match &self.sqlite {
            Some(sqlite) => sqlite.thread.run(lane, query, transaction).await,
            None => Err(StoreError::Corrupt(
                "a SQLite write was sent to a PostgreSQL store".into(),
            )),
        }
    }
}

/// SQLite's writes: the turns on the one writer and the thread for hot writes.
#[derive(Debug, Clone)]
struct SqliteWrites {
    source: WriterSource,
    thread: writer_thread::WriterThread,
}

/// Where SQLite's writer comes from: a turn at the gate, then the held
/// connection (or, in memory, the one pooled connection).
#[derive(Debug, Clone)]
pub(crate) struct WriterSource {
    gate: Arc<WriteGate>,
    held: Option<HeldWriter>,
    pool: AnyPool,
}

impl WriterSource {
    async fn take(
        &self,
        lane: Lane,
        at: &'static std::panic::Location<'static>,
    ) -> StoreResult<Writer> {
        let turn = self.gate.turn(lane, at).await;
        let conn = match &self.held {
            Some(held) => {
                let mut slot = held.clone().lock_owned().await;
                if slot.is_none() {
                    *slot = Some(self.pool.acquire().await?);
                }
                match tokio::sync::OwnedMutexGuard::try_map(slot, Option::as_mut) {
                    Ok(conn) => WriterConnection::Held(conn),
                    // Filled just above; an error rather than a panic all the same.
                    Err(_) => {
                        return Err(StoreError::Corrupt(
                            "SQLite's writer connection went missing".into(),
                        ))
                    }
                }
            }
            None => WriterConnection::Pooled(self.pool.acquire().await?),
        };
        Ok(Writer {
            conn,
            _turn: Some(turn),
        })
    }
}

impl Store {
    /// Commits a changeset all-or-nothing (see [`Changeset`] for its gates).
    /// Acknowledgements (the API's and gateways' writes) take SQLite's one
    /// writer before background work.
    pub async fn commit(&self, cs: &Changeset) -> StoreResult<Committed> {
        let lane = match cs.origin() {
            Origin::Api | Origin::Inbound(_) => Lane::Ack,
            Origin::Job(_) => Lane::Background,
        };
        self.commit_in(cs, lane).await
    }

    pub(crate) async fn commit_in(&self, cs: &Changeset, lane: Lane) -> StoreResult<Committed> {
        if cs.overfull {
            return Err(StoreError::Corrupt(
                "a changeset writes at most one new and one updated gateway transaction".into(),
            ));
        }
        match self.dialect {
            Dialect::Postgres => self.commit_pg(cs, lane).await,
            Dialect::Sqlite => self.commit_sqlite(cs, lane).await,
        }
    }
}

/// A write's error, with the unique violations callers act on told apart by
/// name: a gateway id another payment or transaction holds is a conflict (the
/// caller decides again from fresh state); an idempotency key is `Taken`.
pub(crate) fn commit_error(e: sqlx::Error) -> StoreError {
    match constraint::violated(&e) {
        Some(UniqueKey::PaymentGatewayRef | UniqueKey::GatewayTransaction) => StoreError::Conflict,
        Some(
            key @ (UniqueKey::PaymentIdempotencyKey
            | UniqueKey::RefundIdempotencyKey
            | UniqueKey::RefundLive),
        ) => StoreError::Taken(key),
        None => StoreError::Database(e),
    }
}

/// Current time in epoch milliseconds, the unit of every time column.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
