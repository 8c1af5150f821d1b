//! The row a write returns, read only once the server has finished the
//! statement.
//!
//! sqlx's `Any` driver answers `fetch_one`/`fetch_optional` with the first
//! row it receives and stops reading (its PostgreSQL backend's
//! `fetch_optional` returns at the first `DataRow`; sqlx's own PostgreSQL
//! driver reads to `ReadyForQuery` since sqlx#2913, the `Any` one does not).
//! For an autocommit write that row is not proof of a commit:
//! - a server stopped mid-commit (`pg_ctl -m immediate`, a crash, a failover)
//!   flushes the rows it had buffered before it closes the connection, so the
//!   row arrives although the transaction never committed: the API then
//!   told a gateway "received" for a callback that was never stored (found by
//!   `tests/scaled.rs::postgres_restart_gives_honest_errors_and_then_recovers`);
//! - an error raised at commit (a deferred constraint) comes after the row and
//!   is never read.
//!
//! `fetch_all` reads every message up to `ReadyForQuery`, which the server
//! sends only after the commit, so a row it returns was committed and an error
//! at commit is an error here. Every write that returns rows goes through
//! [`written_rows`]; `fetch_one`/`fetch_optional` stay for reads.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, AnyConnection};

/// Runs a write and returns its rows once the statement (and, outside a
/// transaction, its commit) has finished.
pub(crate) async fn written_rows(
    query: sqlx::query::Query<'_, Any, AnyArguments>,
    conn: &mut AnyConnection,
) -> Result<Vec<AnyRow>, sqlx::Error> {
    query.fetch_all(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::any::AnyPoolOptions;
    use sqlx::{AnyPool, Row};

    /// One connection, so the temporary table is there for every statement.
    async fn one_connection() -> AnyPool {
        sqlx::any::install_default_drivers();
        let url = std::env::var("PAYGATE_TEST_POSTGRES_URL").expect(
            "PAYGATE_TEST_POSTGRES_URL must point at a PostgreSQL server (scripts/test.sh sets it)",
        );
        AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .expect("the test PostgreSQL server answers")
    }

    /// A write that returns its row and then fails at commit: a deferred
    /// unique constraint is checked only when the transaction commits.
    async fn failing_at_commit(pool: &AnyPool) -> sqlx::query::Query<'static, Any, AnyArguments> {
        sqlx::query(
            "CREATE TEMP TABLE IF NOT EXISTS commit_probe \
             (k integer, UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)",
        )
        .execute(pool)
        .await
        .unwrap();
        sqlx::query("TRUNCATE commit_probe")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO commit_probe VALUES (1)")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO commit_probe VALUES (1) RETURNING k")
    }

    #[tokio::test]
    async fn a_write_that_fails_at_commit_is_an_error() {
        let pool = one_connection().await;
        let query = failing_at_commit(&pool).await;
        let failed = written_rows(query, &mut pool.acquire().await.unwrap()).await;
        assert!(
            matches!(&failed, Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505")),
            "the commit's error must be seen: {:?}",
            failed.map(|rows| rows.len())
        );
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM commit_probe")
            .fetch_one(&pool)
            .await
            .unwrap()
            .try_get("n")
            .unwrap();
        assert_eq!(n, 1, "the failed write left nothing");
    }

    /// Why `written_rows` exists. When this starts failing, sqlx's `Any`
    /// driver reads to the end of a statement before answering, and the
    /// module's reason is gone (keep `written_rows` anyway: it costs nothing).
    #[tokio::test]
    async fn the_any_driver_answers_before_the_commit() {
        let pool = one_connection().await;
        let row = failing_at_commit(&pool).await.fetch_optional(&pool).await;
        assert!(
            matches!(row, Ok(Some(_))),
            "sqlx's Any driver now reports the commit's error ({:?}): update written.rs",
            row.map(|r| r.is_some())
        );
    }
}
