//! PostgreSQL backend: for production and for several replicas sharing one database.
//!
//! Write transactions that append to the audit chain first take a transaction-scoped advisory
//! lock, so appends from different replicas are serialised and the chain never forks (the
//! primary key on `seq` would refuse a fork anyway, but the lock turns a failure into a wait).

use std::{str::FromStr, time::Duration};

use sqlx::{
    PgPool, Postgres, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use crate::{
    Backend, StoreError, StoreResult, redact_url, sql::impl_store,
    sql_campaigns::impl_campaign_store, sql_identity::impl_identity_store,
    sql_inventory::impl_inventory_store, sql_monitor::impl_monitor_store,
    sql_updates::impl_update_store,
};

/// Advisory lock key for audit-chain appends ("GARRISON" in ASCII, truncated to fit).
const AUDIT_LOCK_KEY: i64 = 0x4741_5252_4953_4f4e;

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to a `postgres://` URL.
    pub async fn connect(url: &str) -> StoreResult<PostgresStore> {
        let options = PgConnectOptions::from_str(url).map_err(|source| StoreError::Connect {
            url: redact_url(url),
            source,
        })?;
        Self::connect_with(options, url).await
    }

    /// Connects with explicit options (tests use this to pin a schema on `search_path`).
    pub async fn connect_with(options: PgConnectOptions, url: &str) -> StoreResult<PostgresStore> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect {
                url: redact_url(url),
                source,
            })?;
        Ok(PostgresStore { pool })
    }

    async fn begin_write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(AUDIT_LOCK_KEY)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Device-originated writes append nothing to the audit chain, so they skip its lock.
    async fn begin_device_write(&self) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    async fn schema_exists(&self) -> StoreResult<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'garrison_meta'",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    async fn run_migrations(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn analyze_stale(&self) -> StoreResult<Vec<String>> {
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT relname::text FROM pg_stat_user_tables \
             WHERE schemaname = current_schema() \
             AND n_mod_since_analyze > 50 + 0.1 * GREATEST(n_live_tup, 0) ORDER BY relname",
        )
        .fetch_all(&self.pool)
        .await?;
        for table in &stale {
            // The name comes from the catalogue, but quote it anyway: it is an identifier.
            let quoted = format!("\"{}\"", table.replace('"', "\"\""));
            sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {quoted}")))
                .execute(&self.pool)
                .await?;
        }
        Ok(stale)
    }

    async fn close_pool(&self) {
        self.pool.close().await;
    }

    /// The connection pool, for tests that must reach under the store (e.g. to tamper).
    #[doc(hidden)]
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl_store!(PostgresStore, Postgres, Backend::Postgres);
impl_identity_store!(PostgresStore, Postgres);
impl_inventory_store!(PostgresStore, Postgres);
impl_monitor_store!(PostgresStore, Postgres);
impl_update_store!(PostgresStore, Postgres);
impl_campaign_store!(PostgresStore, Postgres);
