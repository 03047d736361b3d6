//! `LocalStore`, the embedded `MemoryStore`: full-text search in the same database as
//! everything else, so search works with no outside account. The database indexes a
//! memory in the transaction that saves it (SQLite triggers into FTS5, a generated
//! `tsvector` on PostgreSQL), so there is no separate indexing step to fail.

use async_trait::async_trait;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement};

use super::map_db_err;
use crate::domain::model::{Memory, MemoryId, MemoryKind, UserId};
use crate::domain::ports::{MemoryHit, MemoryStore, MemoryStoreError, RepositoryError};
use crate::domain::query::search_terms;

/// Full-text search over the `memories` table.
pub struct LocalStore {
    pool: DatabaseConnection,
}

impl LocalStore {
    /// Searches through `pool`.
    pub fn new(pool: DatabaseConnection) -> Self {
        Self { pool }
    }
}

/// SQLite: bm25 over FTS5, the owner column weighing nothing. The `owner` token inside
/// the index scopes the match to one user before anything is ranked.
const SQLITE_SEARCH: &str =
    "SELECT m.id, m.user_id, m.kind, m.text, m.created_at, -bm25(memories_fts, 0.0, 1.0) AS score \
     FROM memories_fts JOIN memories AS m ON m.id = memories_fts.rowid \
     WHERE memories_fts MATCH ? ORDER BY score DESC, m.id DESC LIMIT ?";

/// PostgreSQL: `ts_rank_cd` over the GIN-indexed `tsvector`, filtered to one user.
const POSTGRES_SEARCH: &str =
    "SELECT id, user_id, kind, text, created_at, ts_rank_cd(search_vector, q)::float8 AS score \
     FROM memories, websearch_to_tsquery('memory_search', $2) AS q \
     WHERE user_id = $1 AND search_vector @@ q ORDER BY score DESC, id DESC LIMIT $3";

/// An FTS5 query that matches any of the terms, inside one user's memories only.
/// Terms are letters and digits only (see `search_terms`), so quoting them is enough.
fn fts5_match_expression(user: UserId, terms: &[String]) -> String {
    let any_term = terms.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(" OR ");
    format!("owner:u{} AND text:({any_term})", user.0)
}

fn hit_from_row(row: &QueryResult) -> Result<MemoryHit, sea_orm::DbErr> {
    let kind: String = row.try_get("", "kind")?;
    Ok(MemoryHit {
        memory: Memory {
            id: MemoryId(row.try_get("", "id")?),
            user_id: UserId(row.try_get("", "user_id")?),
            kind: MemoryKind::parse(&kind).unwrap_or(MemoryKind::Text),
            text: row.try_get("", "text")?,
            created_at: row.try_get("", "created_at")?,
        },
        score: row.try_get("", "score")?,
    })
}

impl From<RepositoryError> for MemoryStoreError {
    fn from(error: RepositoryError) -> Self {
        match error {
            RepositoryError::Unavailable(e) => MemoryStoreError::Unavailable(e),
            RepositoryError::Internal(e) => MemoryStoreError::Rejected(e),
        }
    }
}

#[async_trait]
impl MemoryStore for LocalStore {
    async fn search(&self, user: UserId, query: &str, limit: u32) -> Result<Vec<MemoryHit>, MemoryStoreError> {
        let terms = search_terms(query);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.pool.get_database_backend();
        let statement = match backend {
            DbBackend::Sqlite => Statement::from_sql_and_values(
                backend,
                SQLITE_SEARCH,
                [fts5_match_expression(user, &terms).into(), i64::from(limit).into()],
            ),
            _ => Statement::from_sql_and_values(
                backend,
                POSTGRES_SEARCH,
                [user.0.into(), terms.join(" or ").into(), i64::from(limit).into()],
            ),
        };
        let rows = self.pool.query_all_raw(statement).await.map_err(|e| MemoryStoreError::from(map_db_err(e)))?;
        rows.iter().map(hit_from_row).collect::<Result<_, _>>().map_err(|e| MemoryStoreError::from(map_db_err(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fts_query_is_scoped_to_the_owner_and_matches_any_term() {
        let terms = vec!["buy".to_string(), "milk".to_string()];
        assert_eq!(fts5_match_expression(UserId(42), &terms), "owner:u42 AND text:(\"buy\" OR \"milk\")");
    }
}
