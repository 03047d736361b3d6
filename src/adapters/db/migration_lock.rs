//! One migrator at a time, whatever the number of processes starting together on a
//! fresh database: without it, two `serve` (or `migrate`) processes both see no
//! migration applied, both create the tables, and one dies ("table users already
//! exists" on SQLite, a duplicate `pg_type` key on PostgreSQL).
//!
//! PostgreSQL: a session-level `pg_advisory_lock` held on a connection of its own while
//! the pool migrates. SQLite: an exclusive lock on a file beside the database (a lock on
//! the database itself would stop the migrations' own writes). Either way the lock goes
//! when its holder dies, so a crashed migrator never blocks the next start; the next
//! holder finds the migrations applied and has nothing to do.

use std::path::{Path, PathBuf};

use sea_orm::{ConnectionTrait, DatabaseConnection};

/// The advisory-lock key of our migrations on PostgreSQL: any fixed number no other
/// application on the same server uses ("wamemory" in ASCII).
const POSTGRES_MIGRATION_LOCK_KEY: i64 = 0x7761_6d65_6d6f_7279;

/// Held while migrations run; released when dropped (SQLite) or by [`release`](Self::release).
pub enum MigrationLock {
    /// The locked file beside the SQLite database.
    SqliteFile(std::fs::File),
    /// The connection holding the advisory lock.
    Postgres(DatabaseConnection),
}

/// The lock file of the SQLite database at `database`: its name with `.migrate-lock`.
pub fn sqlite_lock_path(database: &Path) -> PathBuf {
    let mut name = database.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".migrate-lock");
    database.with_file_name(name)
}

impl MigrationLock {
    /// Waits for the exclusive lock of the SQLite database at `database` (its folder must
    /// exist).
    ///
    /// # Errors
    /// When the lock file cannot be created or locked.
    pub async fn sqlite(database: &Path) -> anyhow::Result<Self> {
        let path = sqlite_lock_path(database);
        crate::telemetry::blocking::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| anyhow::anyhow!("cannot open the migration lock {}: {e}", path.display()))?;
            file.lock().map_err(|e| anyhow::anyhow!("cannot take the migration lock {}: {e}", path.display()))?;
            Ok(Self::SqliteFile(file))
        })
        .await?
    }

    /// Waits for the migration advisory lock on the PostgreSQL server behind `connection`,
    /// a connection used for nothing else (a session lock belongs to one connection).
    ///
    /// # Errors
    /// When the lock cannot be taken.
    pub async fn postgres(connection: DatabaseConnection) -> anyhow::Result<Self> {
        connection
            .execute_unprepared(&format!("SELECT pg_advisory_lock({POSTGRES_MIGRATION_LOCK_KEY})"))
            .await
            .map_err(|e| anyhow::anyhow!("cannot take the migration lock: {e}"))?;
        Ok(Self::Postgres(connection))
    }

    /// Lets the next migrator in.
    pub async fn release(self) {
        match self {
            Self::SqliteFile(file) => drop(file),
            Self::Postgres(connection) => {
                let unlock = format!("SELECT pg_advisory_unlock({POSTGRES_MIGRATION_LOCK_KEY})");
                if let Err(error) = connection.execute_unprepared(&unlock).await {
                    // Closing the connection below releases it all the same.
                    tracing::warn!(%error, "the migration lock was not released explicitly");
                }
                let _ = connection.close().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_file_sits_beside_the_database() {
        assert_eq!(sqlite_lock_path(Path::new("./data/app.db")), PathBuf::from("./data/app.db.migrate-lock"));
    }

    #[tokio::test]
    async fn a_second_sqlite_migrator_waits_for_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("app.db");
        let first = MigrationLock::sqlite(&database).await.unwrap();
        let second = tokio::spawn({
            let database = database.clone();
            async move { MigrationLock::sqlite(&database).await.map(|_| ()) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the second migrator must wait while the first holds the lock");
        first.release().await;
        tokio::time::timeout(std::time::Duration::from_secs(5), second).await.unwrap().unwrap().unwrap();
    }
}
