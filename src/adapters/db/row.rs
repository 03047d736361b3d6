//! A result row of either engine, read by column name, so that each domain type is
//! mapped from a row once (in `statements`) for both. What differs is how a timestamp
//! comes back: SQLite stores the RFC 3339 text of `sqlite_timestamp`, PostgreSQL a
//! `timestamptz`. A leaf: it uses only the engines' error mappings.

use chrono::{DateTime, Utc};
use sea_orm::{QueryResult, TryGetable};

use super::pool::map_db_err;
use super::sqlite_connection::{map_sqlite_err, parse_timestamp};
use crate::domain::ports::RepositoryError;

/// A value both drivers read the same way (integers, text, booleans, floats, bytes, and
/// their `Option`s).
pub(crate) trait Stored: rusqlite::types::FromSql + TryGetable {}

impl<T: rusqlite::types::FromSql + TryGetable> Stored for T {}

/// A row as the shared row mappings read it.
pub(crate) trait Row {
    /// The value of `column`.
    ///
    /// # Errors
    /// When the row has no such column or its value is not a `T`.
    fn value<T: Stored>(&self, column: &str) -> Result<T, RepositoryError>;

    /// The timestamp in `column`.
    ///
    /// # Errors
    /// When the row has no such column or it holds no valid timestamp.
    fn timestamp(&self, column: &str) -> Result<DateTime<Utc>, RepositoryError>;

    /// The timestamp in `column`, which may be NULL.
    ///
    /// # Errors
    /// As [`Row::timestamp`], for a value that is not NULL.
    fn optional_timestamp(&self, column: &str) -> Result<Option<DateTime<Utc>>, RepositoryError>;
}

/// SQLite's text form of a timestamp read back; a value that is not one is corrupt.
fn parse_sqlite_timestamp(column: &str, text: &str) -> Result<DateTime<Utc>, RepositoryError> {
    parse_timestamp(text)
        .map_err(|e| RepositoryError::Internal(format!("{column} holds {text:?}, not a timestamp: {e}")))
}

impl Row for rusqlite::Row<'_> {
    fn value<T: Stored>(&self, column: &str) -> Result<T, RepositoryError> {
        self.get(column).map_err(map_sqlite_err)
    }

    fn timestamp(&self, column: &str) -> Result<DateTime<Utc>, RepositoryError> {
        let text: String = self.value(column)?;
        parse_sqlite_timestamp(column, &text)
    }

    fn optional_timestamp(&self, column: &str) -> Result<Option<DateTime<Utc>>, RepositoryError> {
        let text: Option<String> = self.value(column)?;
        text.map(|text| parse_sqlite_timestamp(column, &text)).transpose()
    }
}

/// Rows of PostgreSQL's transactions, whose timestamps come back as `timestamptz`.
impl Row for QueryResult {
    fn value<T: Stored>(&self, column: &str) -> Result<T, RepositoryError> {
        self.try_get("", column).map_err(map_db_err)
    }

    fn timestamp(&self, column: &str) -> Result<DateTime<Utc>, RepositoryError> {
        self.try_get("", column).map_err(map_db_err)
    }

    fn optional_timestamp(&self, column: &str) -> Result<Option<DateTime<Utc>>, RepositoryError> {
        self.try_get("", column).map_err(map_db_err)
    }
}
