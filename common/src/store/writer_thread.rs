//! SQLite's hot writes (changesets and job claims), sent to the writer
//! connection by a thread of their own.
//!
//! Every SQLite command is a hand-off to sqlx's connection thread and back.
//! When the task holding the writer's turn runs on the main runtime, each
//! hand-back also waits until that task is scheduled among hundreds of
//! others (HTTP handlers, job handlers), and so does every turn handed on:
//! the one writer then sat idle more than half of the time while the
//! embedded pipeline stalled on it (PERFORMANCE.md, 'SQLite's hand-offs').
//! This thread has nothing else to run: it takes a turn from the write gate
//! like any writer, sends the queued commands one after another (several per
//! turn), and hands each result back to its caller without waiting for it.
//!
//! Callers wait for their reply, not for the work: one that gives up (a
//! client that disconnects) does not stop a command half way, and a command
//! that opens a transaction is rolled back here if it fails.

use super::write_gate::{Lane, Lanes};
use super::{StoreError, StoreResult, WriterSource};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::Any;
use std::panic::Location;
use tokio::sync::{mpsc, oneshot};

/// At most this many commands per turn, so other writers (the ones that do
/// not come through here) wait for a few commands at most.
const COMMANDS_PER_TURN: usize = 32;

pub(super) type Query = sqlx::query::Query<'static, Any, AnyArguments>;

struct Command {
    query: Query,
    /// The command begins a transaction: roll it back if the command fails.
    transaction: bool,
    reply: oneshot::Sender<StoreResult<Vec<AnyRow>>>,
}

/// The way to the writer thread; cloned into every clone of the store. The
/// thread ends when the last clone is dropped.
#[derive(Debug, Clone)]
pub(super) struct WriterThread {
    ack: mpsc::UnboundedSender<Command>,
    background: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("transaction", &self.transaction)
            .finish_non_exhaustive()
    }
}

impl WriterThread {
    pub(super) fn start(source: WriterSource) -> std::io::Result<WriterThread> {
        let (ack, ack_rx) = mpsc::unbounded_channel();
        let (background, background_rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("paygate-sqlite-writes".into())
            .spawn(move || runtime.block_on(serve(source, ack_rx, background_rx)))?;
        Ok(WriterThread { ack, background })
    }

    /// Runs `query` on the writer and returns every row it produced (read to
    /// the end, see `written.rs`).
    pub(super) async fn run(
        &self,
        lane: Lane,
        query: Query,
        transaction: bool,
    ) -> StoreResult<Vec<AnyRow>> {
        let (reply, answer) = oneshot::channel();
        let queue = match lane {
            Lane::Ack => &self.ack,
            Lane::Background => &self.background,
        };
        let gone = || StoreError::Corrupt("SQLite's writer thread has stopped".into());
        queue
            .send(Command {
                query,
                transaction,
                reply,
            })
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// Commands waiting, by lane, taken by the write gate's rule (`Lanes`).
type Waiting = Lanes<Command>;

fn take_arrived(
    waiting: &mut Waiting,
    ack: &mut mpsc::UnboundedReceiver<Command>,
    background: &mut mpsc::UnboundedReceiver<Command>,
) {
    while let Ok(c) = ack.try_recv() {
        waiting.push(Lane::Ack, c);
    }
    while let Ok(c) = background.try_recv() {
        waiting.push(Lane::Background, c);
    }
}

async fn serve(
    source: WriterSource,
    mut ack: mpsc::UnboundedReceiver<Command>,
    mut background: mpsc::UnboundedReceiver<Command>,
) {
    let mut waiting = Waiting::default();
    loop {
        if waiting.is_empty() {
            tokio::select! {
                biased;
                Some(c) = ack.recv() => waiting.push(Lane::Ack, c),
                Some(c) = background.recv() => waiting.push(Lane::Background, c),
                // Every store clone is gone.
                else => return,
            }
        }
        take_arrived(&mut waiting, &mut ack, &mut background);
        let mut writer = match source.take(waiting.urgent_lane(), Location::caller()).await {
            Ok(w) => w,
            Err(e) => {
                // No connection (the pool is closed or the file is gone):
                // this command hears why; the next ones try again.
                if let Some(c) = waiting.next() {
                    let _ = c.reply.send(Err(e));
                }
                continue;
            }
        };
        for _ in 0..COMMANDS_PER_TURN {
            let Some(c) = waiting.next() else { break };
            let result = c.query.fetch_all(&mut *writer).await;
            if result.is_err() && c.transaction {
                // Should the rollback fail too, the next transaction's BEGIN
                // fails and its own rollback clears the connection.
                if let Err(e) = sqlx::query("ROLLBACK").execute(&mut *writer).await {
                    tracing::warn!(error = %e, "rolling back a failed SQLite write failed");
                }
            }
            // A caller that gave up has dropped its end; the write stands.
            let _ = c.reply.send(result.map_err(StoreError::from));
            take_arrived(&mut waiting, &mut ack, &mut background);
        }
    }
}
