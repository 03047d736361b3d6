//! The local full-text index of memories: SQLite FTS5 (porter stemming, case- and
//! diacritic-insensitive) or a PostgreSQL `tsvector` with a GIN index.
//! The database keeps it in step with `memories` itself, whichever code writes a memory.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000002_create_memory_search"
    }
}

/// A contentless FTS5 table: the text lives once, in `memories`. `owner` holds a token
/// (`u<user id>`) so that a query is scoped to one user inside the index itself, which
/// keeps a search fast however many other users' memories match.
const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE memories_fts USING fts5(owner, text, content='', contentless_delete=1, \
     tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER memories_fts_insert AFTER INSERT ON memories BEGIN \
     INSERT INTO memories_fts(rowid, owner, text) VALUES (new.id, 'u' || new.user_id, new.text); END",
    "CREATE TRIGGER memories_fts_delete AFTER DELETE ON memories BEGIN \
     DELETE FROM memories_fts WHERE rowid = old.id; END",
    "CREATE TRIGGER memories_fts_update AFTER UPDATE OF text, user_id ON memories BEGIN \
     DELETE FROM memories_fts WHERE rowid = old.id; \
     INSERT INTO memories_fts(rowid, owner, text) VALUES (new.id, 'u' || new.user_id, new.text); END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS memories_fts_update",
    "DROP TRIGGER IF EXISTS memories_fts_delete",
    "DROP TRIGGER IF EXISTS memories_fts_insert",
    "DROP TABLE IF EXISTS memories_fts",
];

/// `memory_search` is English stemming after `unaccent`, so "buying" finds "buy" and
/// "café" finds "cafe". A configuration named explicitly keeps the generated column
/// immutable, as PostgreSQL requires.
const POSTGRES_UP: &[&str] = &[
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    "DO $$ BEGIN \
       IF NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'memory_search') THEN \
         CREATE TEXT SEARCH CONFIGURATION memory_search (COPY = english); \
         ALTER TEXT SEARCH CONFIGURATION memory_search \
           ALTER MAPPING FOR hword, hword_part, word WITH unaccent, english_stem; \
       END IF; \
     END $$",
    "ALTER TABLE memories ADD COLUMN search_vector tsvector \
     GENERATED ALWAYS AS (to_tsvector('memory_search'::regconfig, text)) STORED",
    "CREATE INDEX idx_memories_search_vector ON memories USING GIN (search_vector)",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP INDEX IF EXISTS idx_memories_search_vector",
    "ALTER TABLE memories DROP COLUMN IF EXISTS search_vector",
    "DROP TEXT SEARCH CONFIGURATION IF EXISTS memory_search",
];

async fn run_all(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for sql in statements {
        db.execute_unprepared(sql).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Sqlite => run_all(manager, SQLITE_UP).await,
            DbBackend::Postgres => run_all(manager, POSTGRES_UP).await,
            other => Err(DbErr::Migration(format!("unsupported database backend {other:?}"))),
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Sqlite => run_all(manager, SQLITE_DOWN).await,
            DbBackend::Postgres => run_all(manager, POSTGRES_DOWN).await,
            other => Err(DbErr::Migration(format!("unsupported database backend {other:?}"))),
        }
    }
}
