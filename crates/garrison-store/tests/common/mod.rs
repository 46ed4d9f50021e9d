//! The store test harness shared by the suites: a store on each backend (SQLite in a temporary
//! directory, PostgreSQL in a fresh schema) and `both!`, which runs a test on each.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

use std::{str::FromStr, sync::Arc};

use garrison_core::{
    TenantId,
    audit::{Actor, AuditRecord},
};
use garrison_store::{PostgresStore, SqliteStore, Store};

pub fn tenant() -> TenantId {
    TenantId::default()
}

pub fn rec(action: &str, target: &str) -> AuditRecord {
    AuditRecord::new(&tenant(), Actor::system("test"), action, target)
}

pub enum Tamper {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Tamper {
    pub async fn exec(&self, sql: &'static str) {
        match self {
            Tamper::Sqlite(s) => {
                sqlx::query(sql).execute(s.pool()).await.unwrap();
            }
            Tamper::Postgres(s) => {
                sqlx::query(sql).execute(s.pool()).await.unwrap();
            }
        }
    }

    /// Waits until PostgreSQL's cumulative statistics count every row now in `table` as
    /// inserted. Each pooled connection publishes its counts on its own schedule (up to ten
    /// seconds after going idle), so a test that reasons about staleness must wait for all of
    /// them. SQLite keeps no such statistics; there it returns at once.
    pub async fn await_insert_statistics(&self, table: &str) {
        let Tamper::Postgres(s) = self else { return };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM \"{table}\""
            )))
            .fetch_one(s.pool())
            .await
            .unwrap();
            let counted: Option<i64> = sqlx::query_scalar(
                "SELECT n_tup_ins FROM pg_stat_user_tables \
                 WHERE schemaname = current_schema() AND relname = $1",
            )
            .bind(table)
            .fetch_optional(s.pool())
            .await
            .unwrap();
            if counted.unwrap_or(0) >= rows {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "statistics for {table} still count {counted:?} of {rows} rows"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

pub async fn sqlite() -> (Arc<dyn Store>, Tamper, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let store = SqliteStore::open(&url).await.unwrap();
    store.migrate_for_tests().await;
    (Arc::new(store.clone()), Tamper::Sqlite(store), dir)
}

pub trait MigrateForTests {
    async fn migrate_for_tests(&self);
}

impl<T: Store> MigrateForTests for T {
    async fn migrate_for_tests(&self) {
        assert!(!self.is_initialized().await.unwrap());
        self.migrate().await.unwrap();
        assert!(self.is_initialized().await.unwrap());
        self.migrate().await.unwrap();
    }
}

pub async fn postgres() -> Option<(Arc<dyn Store>, Tamper)> {
    let url = std::env::var("GARRISON_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let required = std::env::var("GARRISON_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let admin = match PostgresStore::connect(&url).await {
        Ok(s) => s,
        Err(e) if !required => {
            eprintln!(
                "SKIPPED: PostgreSQL store tests: cannot connect to {url}: {e} (set GARRISON_TEST_REQUIRE_POSTGRES=1 to make this a failure)"
            );
            return None;
        }
        Err(e) => panic!(
            "PostgreSQL is required (GARRISON_TEST_REQUIRE_POSTGRES=1) but {url} is unreachable: {e}"
        ),
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(admin.pool())
        .await
        .unwrap();
    let options = sqlx::postgres::PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let store = PostgresStore::connect_with(options, &url).await.unwrap();
    store.migrate_for_tests().await;
    Some((Arc::new(store.clone()), Tamper::Postgres(store)))
}

#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (store, tamper, _dir) = super::sqlite().await;
                super::$name(store, tamper).await;
            }
            #[tokio::test]
            async fn postgres() {
                if let Some((store, tamper)) = super::postgres().await {
                    super::$name(store, tamper).await;
                }
            }
        }
    };
}
