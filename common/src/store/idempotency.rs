//! `Idempotency-Key` records, as Stripe defines them: the first request with
//! a key runs; a repeat with the same request replays the first answer; a
//! repeat with a different request, or while the first still runs, is
//! refused. One row per (caller scope, route template, key).
//!
//! This is a record of its own, written outside the request's changeset, on
//! purpose: the answer only exists after the changeset committed (and, on the
//! seed routes, after a wait), so it cannot be part of that write. The gap
//! between the two writes is safe because the creating write carries a
//! payment-level idempotency key derived from this row (scope, route, key
//! and `generation`), held unique by `payments_idempotency_key`: a request
//! that takes the row over after a crash (its lease ran out) runs again with
//! the same derived key, finds the payment the first attempt committed and
//! answers from it — never a second payment.

use super::{now_ms, Lane, Store, StoreResult};
use sqlx::Row;
use std::time::Duration;

/// Which key, for whom, on which route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyScope {
    /// The caller: `key:<api key id>`, or `anonymous` for unauthenticated routes.
    pub caller: String,
    /// The route template (`/v1/payments`), so one key may serve two routes.
    pub route: String,
    pub key: String,
}

/// The first answer, kept to be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    /// The headers worth replaying (name, value), e.g. `Location`, `Content-Type`.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// What a request carrying a key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Run it: the key is new (or expired), or the request that held it
    /// stopped without answering (its lease ran out). `generation` names the
    /// attempt family: a takeover keeps the first attempt's generation.
    Run { generation: i64 },
    /// The same request was answered before: answer this again.
    Replay(StoredAnswer),
    /// The same request is still being processed.
    InProgress,
    /// The key was used for a different request.
    Reused,
}

/// How long a key is remembered, and how long a running request holds it.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyTimes {
    pub ttl: Duration,
    pub lease: Duration,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Races on one key are settled by conditional writes; a writer that loses
/// reads again. Losing more than this many times in a row means the row
/// keeps changing under us, which only concurrent repeats of the same key do:
/// the caller is told the key is in use.
const CLAIM_ATTEMPTS: usize = 4;

impl Store {
    /// Decides what a request with `scope` and request `fingerprint` may do,
    /// taking the key when it may run.
    pub async fn claim_idempotency_key(
        &self,
        scope: &IdempotencyScope,
        fingerprint: &str,
        times: IdempotencyTimes,
    ) -> StoreResult<Claim> {
        for _ in 0..CLAIM_ATTEMPTS {
            let now = now_ms();
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys \
                 (scope, route, idem_key, fingerprint, state, generation, locked_until, expires_at) \
                 VALUES ($1, $2, $3, $4, 'processing', $5, $6, $7) \
                 ON CONFLICT (scope, route, idem_key) DO NOTHING",
            )
            .bind(&scope.caller)
            .bind(&scope.route)
            .bind(&scope.key)
            .bind(fingerprint)
            .bind(now)
            .bind(now.saturating_add(ms(times.lease)))
            .bind(now.saturating_add(ms(times.ttl)))
            .execute(&mut *self.writer(Lane::Ack).await?)
            .await?;
            if inserted.rows_affected() == 1 {
                return Ok(Claim::Run { generation: now });
            }
            let Some(row) = sqlx::query(
                "SELECT fingerprint, state, generation, locked_until, expires_at, \
                 response_status, response_headers, response_body FROM idempotency_keys \
                 WHERE scope = $1 AND route = $2 AND idem_key = $3",
            )
            .bind(&scope.caller)
            .bind(&scope.route)
            .bind(&scope.key)
            .fetch_optional(&mut *self.writer(Lane::Ack).await?)
            .await?
            else {
                continue; // deleted in between: insert again
            };
            let expires_at: i64 = row.try_get("expires_at")?;
            let generation: i64 = row.try_get("generation")?;
            if expires_at <= now {
                // Forgotten: the key starts afresh, with a new generation.
                let restarted = sqlx::query(
                    "UPDATE idempotency_keys SET fingerprint = $4, state = 'processing', \
                     generation = $5, locked_until = $6, expires_at = $7, response_status = NULL, \
                     response_headers = NULL, response_body = NULL \
                     WHERE scope = $1 AND route = $2 AND idem_key = $3 AND generation = $8 \
                     AND expires_at = $9",
                )
                .bind(&scope.caller)
                .bind(&scope.route)
                .bind(&scope.key)
                .bind(fingerprint)
                .bind(now)
                .bind(now.saturating_add(ms(times.lease)))
                .bind(now.saturating_add(ms(times.ttl)))
                .bind(generation)
                .bind(expires_at)
                .execute(&mut *self.writer(Lane::Ack).await?)
                .await?;
                if restarted.rows_affected() == 1 {
                    return Ok(Claim::Run { generation: now });
                }
                continue;
            }
            let stored: String = row.try_get("fingerprint")?;
            if stored != fingerprint {
                return Ok(Claim::Reused);
            }
            let state: String = row.try_get("state")?;
            if state == "done" {
                let status: Option<i64> = row.try_get("response_status")?;
                let headers: Option<String> = row.try_get("response_headers")?;
                let body: Option<String> = row.try_get("response_body")?;
                let corrupt = || {
                    super::StoreError::Corrupt(
                        "an idempotency record is done without its answer".into(),
                    )
                };
                let status = status
                    .and_then(|s| u16::try_from(s).ok())
                    .ok_or_else(corrupt)?;
                let headers: Vec<(String, String)> =
                    serde_json::from_str(&headers.ok_or_else(corrupt)?).map_err(|_| corrupt())?;
                return Ok(Claim::Replay(StoredAnswer {
                    status,
                    headers,
                    body: body.ok_or_else(corrupt)?,
                }));
            }
            let locked_until: i64 = row.try_get("locked_until")?;
            if locked_until > now {
                return Ok(Claim::InProgress);
            }
            // The request holding the key stopped without answering: take it
            // over, keeping its generation so the work it may have committed
            // is found again.
            let taken = sqlx::query(
                "UPDATE idempotency_keys SET locked_until = $4 \
                 WHERE scope = $1 AND route = $2 AND idem_key = $3 AND state = 'processing' \
                 AND generation = $5 AND locked_until = $6",
            )
            .bind(&scope.caller)
            .bind(&scope.route)
            .bind(&scope.key)
            .bind(now.saturating_add(ms(times.lease)))
            .bind(generation)
            .bind(locked_until)
            .execute(&mut *self.writer(Lane::Ack).await?)
            .await?;
            if taken.rows_affected() == 1 {
                return Ok(Claim::Run { generation });
            }
        }
        Ok(Claim::InProgress)
    }

    /// Stores the answer of the request that holds the key (`generation`), to
    /// be replayed until the key expires.
    pub async fn finish_idempotency_key(
        &self,
        scope: &IdempotencyScope,
        generation: i64,
        answer: &StoredAnswer,
    ) -> StoreResult<()> {
        let headers = serde_json::to_string(&answer.headers)
            .map_err(|e| super::StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "UPDATE idempotency_keys SET state = 'done', response_status = $5, \
             response_headers = $6, response_body = $7 \
             WHERE scope = $1 AND route = $2 AND idem_key = $3 AND generation = $4 \
             AND state = 'processing'",
        )
        .bind(&scope.caller)
        .bind(&scope.route)
        .bind(&scope.key)
        .bind(generation)
        .bind(i64::from(answer.status))
        .bind(headers)
        .bind(&answer.body)
        .execute(&mut *self.writer(Lane::Ack).await?)
        .await?;
        Ok(())
    }

    /// Lets the next repeat run again at once (the answer was not one to keep,
    /// e.g. the database was unavailable). The row and its generation stay:
    /// whatever this attempt committed is found again by the next one.
    pub async fn release_idempotency_key(
        &self,
        scope: &IdempotencyScope,
        generation: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET locked_until = 0 \
             WHERE scope = $1 AND route = $2 AND idem_key = $3 AND generation = $4 \
             AND state = 'processing'",
        )
        .bind(&scope.caller)
        .bind(&scope.route)
        .bind(&scope.key)
        .bind(generation)
        .execute(&mut *self.writer(Lane::Ack).await?)
        .await?;
        Ok(())
    }

    /// Deletes records whose keys are forgotten; returns how many.
    pub async fn purge_expired_idempotency_keys(&self) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
            .bind(now_ms())
            .execute(&mut *self.writer(Lane::Background).await?)
            .await?;
        Ok(done.rows_affected())
    }
}
