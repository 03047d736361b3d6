//! Memories (`memories`): the statements of
//! [`MemoryTransaction`](crate::domain::ports::MemoryTransaction), the stored form of
//! labels, and the row of a memory. Each engine indexes the text for search by itself
//! (an FTS5 trigger on SQLite, a generated `tsvector` on PostgreSQL), so no statement
//! here has to.

use super::{Dialectal, Sql};
use crate::adapters::db::row::Row;
use crate::domain::model::{Memory, MemoryId, MemoryKind, UserId};
use crate::domain::ports::RepositoryError;

/// The stored form of a memory's labels: a JSON array, or NULL for none.
pub(crate) fn labels_json(labels: &[String]) -> Option<String> {
    (!labels.is_empty()).then(|| serde_json::Value::from(labels.to_vec()).to_string())
}

/// A memory in the columns [`memory_from_row`] reads (kind, text and when, with ids).
///
/// # Errors
/// When a column is missing or of the wrong type.
pub(crate) fn memory_from_row(row: &impl Row) -> Result<Memory, RepositoryError> {
    let kind: String = row.value("kind")?;
    Ok(Memory {
        id: MemoryId(row.value("id")?),
        user_id: UserId(row.value("user_id")?),
        kind: MemoryKind::parse(&kind).unwrap_or(MemoryKind::Text),
        text: row.value("text")?,
        created_at: row.timestamp("created_at")?,
    })
}

/// Saves a memory (`$1` user, `$2` interaction, `$3` kind, `$4` text, `$5` when, `$6`
/// media asset, `$7` labels as JSON text) and returns its id.
pub(crate) static MEMORY_INSERT: Sql = Sql::new(
    "INSERT INTO memories (user_id, interaction_id, media_asset_id, kind, text, created_at, labels) \
     VALUES ($1, $2, $6, $3, $4, $5, $7::jsonb) RETURNING id",
);

/// Deletes a memory (`$1`); its search entry and embedding go with it.
pub(crate) static MEMORY_DELETE: Sql = Sql::new("DELETE FROM memories WHERE id = $1");

/// Edits a memory (`$1`): the text (`$2`) if given, the labels (`$4`, JSON text or NULL
/// for none) if `$3`. COALESCE keeps what was not given; the search index follows the text.
pub(crate) static MEMORY_UPDATE: Sql = Sql::new(
    "UPDATE memories SET text = COALESCE($2, text), labels = CASE WHEN $3 THEN $4::jsonb ELSE labels END \
     WHERE id = $1",
);

/// Records the text read from a memory's media (`$2`) and replaces its text with `$4`
/// only if it is still the text saved with it (`$3`): an edit made meanwhile wins.
pub(crate) static EXTRACTED_TEXT_UPDATE: Sql =
    Sql::new("UPDATE memories SET extracted_text = $2, text = CASE WHEN text = $3 THEN $4 ELSE text END WHERE id = $1");

/// Deletes a user's (`$1`) newest memory and returns it, in [`memory_from_row`]'s columns.
/// PostgreSQL locks the row it picks, so two servers undoing at once take turns instead
/// of both picking the same memory; SQLite's one writer already runs them in turn.
pub(crate) static LAST_MEMORY_DELETE: Dialectal = Dialectal::new(
    "DELETE FROM memories WHERE id = \
     (SELECT id FROM memories WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1) \
     RETURNING id, user_id, kind, text, created_at",
    "DELETE FROM memories WHERE id = \
     (SELECT id FROM memories WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1 FOR UPDATE) \
     RETURNING id, user_id, kind, text, created_at",
);

/// A memory's (`$1`) text. PostgreSQL locks the row (a lock that does not block new rows
/// referring to it), so two transactions deciding about one memory take turns and the
/// second sees what the first recorded; SQLite's one writer already runs them in turn.
pub(crate) static MEMORY_TEXT: Dialectal = Dialectal::new(
    "SELECT text FROM memories WHERE id = $1",
    "SELECT text FROM memories WHERE id = $1 FOR NO KEY UPDATE",
);

/// Whether a memory (`$1`) still exists, as `present`.
pub(crate) static MEMORY_EXISTS: Sql = Sql::new("SELECT EXISTS (SELECT 1 FROM memories WHERE id = $1) AS present");

/// Memories (after id `$1`, at most `$2`) of an image or PDF whose text was never read,
/// with the file to read it from: `id`, `user_id`, `text`, `local_path`, `content_type`.
pub(crate) static MEMORIES_AWAITING_TEXT: Sql = Sql::new(
    "SELECT m.id, m.user_id, m.text, a.local_path, a.content_type FROM memories m \
     JOIN media_assets a ON a.id = m.media_asset_id WHERE m.id > $1 AND m.extracted_text IS NULL \
     AND (a.content_type LIKE 'image/%' OR a.content_type = 'application/pdf') ORDER BY m.id LIMIT $2",
);
