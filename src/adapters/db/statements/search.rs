//! Full-text search of the memories: the one place where the two engines share no SQL,
//! because each has its own index (FTS5 beside the table on SQLite, a generated
//! `tsvector` with a GIN index on PostgreSQL) and its own query language for it.

use super::Sql;

/// SQLite: how many of the newest matches of each term (and of all terms together) are
/// ranked. FTS5 walks a posting list newest first and stops there, so a search costs the
/// same at 100,000 memories as at 1,000. bm25 instead passes over every match of every
/// term, and of the owner token, on each query: 9-19 ms per search at 100,000 memories
/// (`make bench`), against 2-4 ms this way.
pub(crate) const MATCHES_PER_TERM: usize = 1000;

/// SQLite: one query returning `id` (a memory) and `term` (the expression's index) for
/// the newest [`MATCHES_PER_TERM`] matches of each of `expression_count` FTS5
/// expressions, bound in order. Written in SQLite's dialect: no other engine runs it.
pub(crate) fn sqlite_term_matches(expression_count: usize) -> String {
    (0..expression_count)
        .map(|i| {
            format!(
                "SELECT rowid AS id, {i} AS term FROM (SELECT rowid FROM memories_fts WHERE memories_fts MATCH ? \
                 ORDER BY rowid DESC LIMIT {MATCHES_PER_TERM})"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ")
}

/// SQLite: the memories whose ids are in the JSON array `$1`, in
/// `memories::memory_from_row`'s columns. By primary key alone: with `user_id` in the
/// WHERE clause SQLite may pick the user index and scan all of the user's memories, so
/// the caller checks the owner instead.
pub(crate) static SQLITE_MEMORIES_BY_IDS: Sql = Sql::new(
    "SELECT m.id, m.user_id, m.kind, m.text, m.created_at FROM memories AS m \
     WHERE m.id IN (SELECT value FROM json_each($1))",
);

/// PostgreSQL: a user's (`$1`) best matches of a web-search query (`$2`), at most `$3`,
/// in `memories::memory_from_row`'s columns plus `score`: `ts_rank_cd` over the
/// GIN-indexed `tsvector`, filtered to one user.
pub(crate) static POSTGRES_SEARCH: Sql = Sql::new(
    "SELECT id, user_id, kind, text, created_at, ts_rank_cd(search_vector, q)::float8 AS score \
     FROM memories, websearch_to_tsquery('memory_search', $2) AS q \
     WHERE user_id = $1 AND search_vector @@ q ORDER BY score DESC, id DESC LIMIT $3",
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_expression_has_its_own_match() {
        assert_eq!(sqlite_term_matches(2).matches("MATCH ?").count(), 2);
    }
}
