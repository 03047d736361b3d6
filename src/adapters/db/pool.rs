//! The sea-orm pool: connecting, migrating, and sorting its errors into "try again
//! later" and "a bug". Both engines use it for migrations, readiness and reads.

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, DatabaseConnection, DbErr};

use crate::domain::ports::RepositoryError;

/// A pool of at most `max_connections` to `url`.
///
/// # Errors
/// When the database does not answer; the message names it without its password.
pub(super) async fn connect_pool(url: &str, max_connections: u32) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_string());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(std::time::Duration::from_secs(5))
        .acquire_timeout(std::time::Duration::from_secs(5))
        .sqlx_logging(false);
    sea_orm::Database::connect(options)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the database ({}): {e}", redact_url(url)))
}

/// Applies every pending migration.
///
/// # Errors
/// When a migration fails; the database is left at the last one that succeeded.
pub async fn run_migrations(pool: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(pool, None).await.map_err(|e| anyhow::anyhow!("migration failed: {e}"))
}

/// Whether the database answers and has no pending migration.
pub(super) async fn is_migrated(pool: &DatabaseConnection) -> Result<bool, RepositoryError> {
    let pending = Migrator::get_pending_migrations(pool).await.map_err(map_db_err)?;
    Ok(pending.is_empty())
}

/// Sorts sea-orm's errors into "try again later" and "a bug".
pub(super) fn map_db_err(error: DbErr) -> RepositoryError {
    match error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => RepositoryError::Unavailable(error.to_string()),
        other => {
            let text = other.to_string();
            // Lost connections and server restarts surface as query errors in sqlx. A
            // deadlock between two servers' group transactions aborts one message's
            // statement (its savepoint alone rolls back): that message may be sent again.
            if text.contains("connection")
                || text.contains("database is locked")
                || text.contains("timed out")
                || text.contains("deadlock detected")
            {
                RepositoryError::Unavailable(text)
            } else {
                RepositoryError::Internal(text)
            }
        }
    }
}

/// The URL without its password, for error messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}
