//! SQLite's file and connections: the URL's path, WAL, the settings every connection
//! needs, the one text form of a timestamp, and which rusqlite errors are worth a retry.
//! A leaf: every other SQLite module uses it, it uses none of them.
//! All timestamps are written by [`sqlite_timestamp`], so text order is time order.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, ErrorCode};

use crate::domain::ports::RepositoryError;

/// How long a connection waits for another's lock before giving up.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The path inside an `sqlite:` URL (`sqlite://./data/x.db?mode=rwc`, `sqlite:x.db`).
///
/// # Errors
/// For an in-memory database, which the writer and the pool could not share.
pub fn file_path(url: &str) -> anyhow::Result<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path.contains(":memory:") || url.contains("mode=memory") {
        anyhow::bail!(
            "DATABASE_URL: an in-memory SQLite database is not supported; name a file (sqlite://./data/app.db)"
        );
    }
    Ok(PathBuf::from(path))
}

/// Creates the file if needed and switches it to WAL, which lets readers work while the
/// writer commits.
///
/// # Errors
/// When the file cannot be opened or written.
pub fn prepare_file(path: &Path) -> anyhow::Result<()> {
    let connection = open_connection(path)?;
    connection
        .pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| anyhow::anyhow!("cannot switch {} to WAL: {e}", path.display()))?;
    Ok(())
}

/// A connection with the settings every connection needs.
pub(super) fn open_connection(path: &Path) -> anyhow::Result<Connection> {
    let connection =
        Connection::open(path).map_err(|e| anyhow::anyhow!("cannot open SQLite database {}: {e}", path.display()))?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // NORMAL is durable against application crashes in WAL mode; FULL would add an fsync
    // per commit for power-loss durability of the very last transaction.
    // No memory map (SQLite's default): a 256 MiB map made the file's pages count in the
    // server's resident memory as the file grew (the soak in `make bench`: +190 MB in four
    // minutes, all of it mapped file) and bought nothing measurable: text webhook
    // 6,657 vs 6,659 requests/s, near-duplicate lookup at 100,000 images p99 0.27 ms both
    // ways (`BENCH_ONLY=webhook`, examples/near_duplicate, alternating runs). The kernel's
    // page cache keeps the hot pages either way.
    connection.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;")?;
    Ok(connection)
}

/// The one text form of a timestamp in SQLite: RFC 3339, UTC, microseconds.
pub fn sqlite_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// A timestamp [`sqlite_timestamp`] wrote, read back.
pub(super) fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
}

/// Busy, locked, full or failing disks may pass; anything else is a bug.
pub(super) fn map_sqlite_err(error: rusqlite::Error) -> RepositoryError {
    let retryable = matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::DiskFull | ErrorCode::SystemIoFailure)
    );
    if retryable {
        RepositoryError::Unavailable(error.to_string())
    } else {
        RepositoryError::Internal(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_file_and_refuse_memory_databases() {
        assert_eq!(file_path("sqlite://./data/a.db?mode=rwc").unwrap(), PathBuf::from("./data/a.db"));
        assert_eq!(file_path("sqlite:///tmp/a.db").unwrap(), PathBuf::from("/tmp/a.db"));
        assert_eq!(file_path("sqlite:a.db").unwrap(), PathBuf::from("a.db"));
        assert!(file_path("sqlite::memory:").is_err());
    }

    #[test]
    fn timestamps_sort_as_text_in_time_order() {
        use chrono::TimeZone;
        let a = sqlite_timestamp(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
        let b =
            sqlite_timestamp(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap() + chrono::Duration::microseconds(1));
        assert_eq!(a, "2026-01-02T03:04:05.000000+00:00");
        assert!(a < b);
        assert_eq!(
            parse_timestamp(&b).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap() + chrono::Duration::microseconds(1)
        );
    }
}
