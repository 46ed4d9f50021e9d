//! SQLite backend: the embedded default, one WAL-mode file.
//!
//! Writers are serialised by SQLite itself: every write transaction starts with
//! `BEGIN IMMEDIATE`, which takes the database's write lock up front, so the audit chain's
//! read-head-then-append cannot interleave (a deferred transaction would fail with
//! `SQLITE_BUSY` at its first write instead). `synchronous = FULL` because an acknowledged
//! audit entry must survive power loss, not just a process crash.
//!
//! Within the process, write transactions queue for one dedicated connection (a pool of one)
//! rather than racing for the lock on several: a connection that finds the lock taken waits
//! in SQLite's busy handler, which sleeps in growing steps (up to 100 ms), so a write queued
//! behind a 15 ms one could wait 50 ms more than it had to. The pool's queue wakes the next
//! writer when the previous one commits, in arrival order. The busy timeout still covers
//! other processes (a CLI command on the same file). Reads use the other pool.

use std::{str::FromStr, time::Duration};

use sqlx::{
    Sqlite, SqlitePool, Transaction,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::{
    Backend, StoreError, StoreResult, sql::impl_store, sql_campaigns::impl_campaign_store,
    sql_identity::impl_identity_store, sql_inventory::impl_inventory_store,
    sql_monitor::impl_monitor_store, sql_updates::impl_update_store,
};

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The one connection write transactions run on (see the module docs).
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at a `sqlite://PATH` URL.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|source| StoreError::Connect {
                url: url.to_owned(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let connect = |connections: u32| {
            SqlitePoolOptions::new()
                .max_connections(connections)
                .min_connections(1)
                // A write may queue behind a long one (a large inventory batch, a migration).
                .acquire_timeout(Duration::from_secs(60))
                .connect_with(options.clone())
        };
        let connect_error = |source| StoreError::Connect {
            url: url.to_owned(),
            source,
        };
        let pool = connect(8).await.map_err(connect_error)?;
        let writer = connect(1).await.map_err(connect_error)?;
        Ok(SqliteStore { pool, writer })
    }

    async fn begin_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Device-originated writes: SQLite has one writer either way.
    async fn begin_device_write(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        self.begin_write().await
    }

    async fn schema_exists(&self) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'garrison_meta'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    async fn run_migrations(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn analyze_stale(&self) -> StoreResult<Vec<String>> {
        // `PRAGMA optimize` decides for itself what needs analysing and reports nothing back.
        sqlx::query("PRAGMA optimize").execute(&self.pool).await?;
        Ok(Vec::new())
    }

    async fn close_pool(&self) {
        // Fold the WAL back into the main file so a copied data directory is self-contained.
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            tracing::warn!(error = %e, "SQLite WAL checkpoint at shutdown failed");
        }
        self.writer.close().await;
        self.pool.close().await;
    }

    /// The connection pool, for tests that must reach under the store (e.g. to tamper).
    #[doc(hidden)]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl_store!(SqliteStore, Sqlite, Backend::Sqlite);
impl_identity_store!(SqliteStore, Sqlite);
impl_inventory_store!(SqliteStore, Sqlite);
impl_monitor_store!(SqliteStore, Sqlite);
impl_update_store!(SqliteStore, Sqlite);
impl_campaign_store!(SqliteStore, Sqlite);
