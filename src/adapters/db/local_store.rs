//! `LocalStore`, the embedded [`MemoryFinder`]: full-text search in the same database as
//! everything else, so search works with no outside account. The database indexes a
//! memory in the transaction that saves it (SQLite triggers into FTS5, a generated
//! `tsvector` on PostgreSQL), so there is no separate indexing step to fail.

use async_trait::async_trait;
use std::collections::HashMap;

use rusqlite::Connection;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement};

use super::pool::map_db_err;
use super::row::Row;
use super::sqlite::SqliteReaders;
use super::sqlite_connection::map_sqlite_err;
use super::statements::memories::memory_from_row;
use super::statements::search::{sqlite_term_matches, MATCHES_PER_TERM, POSTGRES_SEARCH, SQLITE_MEMORIES_BY_IDS};
use crate::domain::model::{Memory, User, UserId};
use crate::domain::ports::{MemoryFinder, MemoryHit, MemoryStoreError, Recalled, RepositoryError};
use crate::domain::query::{rank_term_matches, search_terms, TermMatch};

/// Full-text search over the `memories` table.
pub enum LocalStore {
    /// FTS5, read through rusqlite.
    Sqlite(SqliteReaders),
    /// `tsvector`, read through the sea-orm pool.
    Postgres(DatabaseConnection),
}

/// An FTS5 query for one term inside one user's memories: the `owner` token scopes the
/// match inside the index itself. Terms are letters and digits only (see
/// `search_terms`), so quoting them is enough.
fn fts5_term_expression(user: UserId, term: &str) -> String {
    format!("owner:u{} AND text:\"{term}\"", user.0)
}

/// The FTS5 queries of a search: one per term, then (for several terms) one for the
/// memories holding all of them, so that those, the best answers, are never cut off
/// by the per-term limit.
fn fts5_expressions(user: UserId, terms: &[String]) -> Vec<String> {
    let mut expressions: Vec<String> = terms.iter().map(|t| fts5_term_expression(user, t)).collect();
    if terms.len() > 1 {
        let all = terms.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(" AND ");
        expressions.push(format!("owner:u{} AND text:({all})", user.0));
    }
    expressions
}

fn hit_from_row(row: &QueryResult) -> Result<MemoryHit, RepositoryError> {
    Ok(MemoryHit { recalled: Recalled::Memory(memory_from_row(row)?), score: row.value("score")? })
}

impl From<RepositoryError> for MemoryStoreError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::Unavailable(e) => MemoryStoreError::Unavailable(e),
            RepositoryError::Internal(e) => MemoryStoreError::Rejected(e),
            error @ (RepositoryError::LeaseLost(_) | RepositoryError::Conflict(_)) => {
                MemoryStoreError::Rejected(error.to_string())
            }
        }
    }
}

#[async_trait]
impl MemoryFinder for LocalStore {
    async fn search(&self, user: &User, query: &str, limit: u32) -> Result<Vec<MemoryHit>, MemoryStoreError> {
        let user = user.id;
        let terms = search_terms(query);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            LocalStore::Sqlite(readers) => {
                Ok(readers.read(move |connection| search_sqlite(connection, user, &terms, limit)).await?)
            }
            LocalStore::Postgres(pool) => {
                let statement = Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    POSTGRES_SEARCH.postgres(),
                    [user.0.into(), terms.join(" or ").into(), i64::from(limit).into()],
                );
                let rows = pool.query_all_raw(statement).await.map_err(|e| MemoryStoreError::from(map_db_err(e)))?;
                Ok(rows.iter().map(hit_from_row).collect::<Result<_, _>>()?)
            }
        }
    }
}

/// The newest matches of each expression from FTS5, ranked by [`rank_term_matches`],
/// then the top memories read by id.
fn search_sqlite(
    connection: &Connection,
    user: UserId,
    terms: &[String],
    limit: u32,
) -> Result<Vec<MemoryHit>, RepositoryError> {
    let expressions = fts5_expressions(user, terms);
    let mut statement = connection.prepare_cached(&sqlite_term_matches(expressions.len())).map_err(map_sqlite_err)?;
    let mut rows = statement.query(rusqlite::params_from_iter(expressions.iter())).map_err(map_sqlite_err)?;
    let mut matches = Vec::new();
    while let Some(row) = rows.next().map_err(map_sqlite_err)? {
        let memory_id: i64 = row.value("id")?;
        let expression = row.value::<i64>("term")? as usize;
        if expression < terms.len() {
            matches.push(TermMatch { memory_id, term: expression });
        } else {
            // A memory holding every term matches each of them.
            matches.extend((0..terms.len()).map(|term| TermMatch { memory_id, term }));
        }
    }
    let mut ranked = rank_term_matches(&matches, MATCHES_PER_TERM);
    ranked.truncate(limit as usize);
    if ranked.is_empty() {
        return Ok(Vec::new());
    }
    // By primary key alone (see the statement): the owner is checked here.
    let ids = serde_json::to_string(&ranked.iter().map(|(id, _)| *id).collect::<Vec<_>>()).unwrap_or_default();
    let mut statement = connection.prepare_cached(SQLITE_MEMORIES_BY_IDS.sqlite()).map_err(map_sqlite_err)?;
    let mut rows = statement.query([ids]).map_err(map_sqlite_err)?;
    let mut by_id: HashMap<i64, Memory> = HashMap::new();
    while let Some(row) = rows.next().map_err(map_sqlite_err)? {
        let memory = memory_from_row(row)?;
        if memory.user_id == user {
            by_id.insert(memory.id.0, memory);
        }
    }
    Ok(ranked
        .into_iter()
        .filter_map(|(id, score)| Some(MemoryHit { recalled: Recalled::Memory(by_id.remove(&id)?), score }))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_term_is_matched_inside_the_owners_memories() {
        assert_eq!(fts5_term_expression(UserId(42), "milk"), "owner:u42 AND text:\"milk\"");
    }

    #[test]
    fn several_terms_also_ask_for_the_memories_holding_all_of_them() {
        let terms = vec!["buy".to_string(), "milk".to_string()];
        assert_eq!(fts5_expressions(UserId(1), &terms).last().unwrap(), "owner:u1 AND text:(\"buy\" AND \"milk\")");
        assert_eq!(fts5_expressions(UserId(1), &terms[..1]).len(), 1);
    }
}
