//! The indexes kept beside the memories: Mem0's bookkeeping (`mem0_index`, `mem0_links`)
//! and the embeddings (`embed_queue`, `memory_embeddings`), the statements of
//! [`IndexTransaction`](crate::domain::ports::IndexTransaction).

use super::{placeholder_list, Sql};

/// The Mem0 ids of a memory's (`$1`) copies, as `mem0_id`.
pub(crate) static MEM0_LINK_IDS: Sql = Sql::new("SELECT mem0_id FROM mem0_links WHERE memory_id = $1 ORDER BY mem0_id");

/// The Mem0 event a memory (`$1`) is waiting on, if any, as `event_id`.
pub(crate) static MEM0_EVENT_ID: Sql = Sql::new("SELECT event_id FROM mem0_index WHERE memory_id = $1");

/// A memory (`$1`, of user `$2`) is to be indexed in Mem0 (again), as of `$3`.
pub(crate) static MEM0_PENDING_UPSERT: Sql = Sql::new(
    "INSERT INTO mem0_index (memory_id, user_id, state, error, event_id, updated_at) \
     VALUES ($1, $2, 'pending', NULL, NULL, $3) ON CONFLICT (memory_id) DO UPDATE SET \
     state = 'pending', error = NULL, event_id = NULL, updated_at = excluded.updated_at",
);

/// A memory's (`$1`) Mem0 event is now `$2` (NULL: none), as of `$3`; returns the
/// memory's `user_id` if it has a Mem0 row.
pub(crate) static MEM0_EVENT_SET: Sql =
    Sql::new("UPDATE mem0_index SET event_id = $2, updated_at = $3 WHERE memory_id = $1 RETURNING user_id");

/// Mem0 refused a memory (`$1`) for good with error `$2`, as of `$3`; returns `user_id`.
pub(crate) static MEM0_FAILED_SET: Sql = Sql::new(
    "UPDATE mem0_index SET state = 'failed', event_id = NULL, error = $2, updated_at = $3 \
     WHERE memory_id = $1 RETURNING user_id",
);

/// Mem0 indexed a memory (`$1`; `$2` is NULL, the error cleared), as of `$3`; returns
/// `user_id`, which its links are recorded under.
pub(crate) static MEM0_INDEXED_SET: Sql = Sql::new(
    "UPDATE mem0_index SET state = 'indexed', event_id = NULL, error = $2, updated_at = $3 \
     WHERE memory_id = $1 RETURNING user_id",
);

/// Records a Mem0 copy (`$2`) of a memory (`$1`, of user `$3`), once.
pub(crate) static MEM0_LINK_INSERT: Sql =
    Sql::new("INSERT INTO mem0_links (memory_id, mem0_id, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING");

/// Forgets a memory's (`$1`) Mem0 copies; with [`MEM0_INDEX_OF_MEMORY_DELETE`], all of
/// its Mem0 bookkeeping.
pub(crate) static MEM0_LINKS_OF_MEMORY_DELETE: Sql = Sql::new("DELETE FROM mem0_links WHERE memory_id = $1");

/// Forgets a memory's (`$1`) Mem0 state.
pub(crate) static MEM0_INDEX_OF_MEMORY_DELETE: Sql = Sql::new("DELETE FROM mem0_index WHERE memory_id = $1");

/// The memories (after id `$1`, at most `$2`) Mem0 has no copy of and is not indexing:
/// never sent, or refused for good; `id` and `user_id`.
pub(crate) static MEMORIES_MISSING_FROM_MEM0: Sql = Sql::new(
    "SELECT m.id, m.user_id FROM memories AS m LEFT JOIN mem0_index AS i ON i.memory_id = m.id \
     WHERE m.id > $1 AND (i.memory_id IS NULL OR i.state = 'failed') ORDER BY m.id LIMIT $2",
);

/// Queues a memory (`$1`) to be embedded, once.
pub(crate) static EMBED_QUEUE_INSERT: Sql =
    Sql::new("INSERT INTO embed_queue (memory_id) VALUES ($1) ON CONFLICT DO NOTHING");

/// Queues every memory with no embedding by model `$1`.
pub(crate) static MISSING_EMBEDDINGS_QUEUE: Sql = Sql::new(
    "INSERT INTO embed_queue (memory_id) SELECT m.id FROM memories m WHERE NOT EXISTS \
     (SELECT 1 FROM memory_embeddings e WHERE e.memory_id = m.id AND e.model = $1) \
     ORDER BY m.id ON CONFLICT DO NOTHING",
);

/// Takes one memory (`$1`) off the embedding queue. SQLite runs it once per memory: on
/// its in-process connection that costs no round trip, and the text stays one cached
/// statement. PostgreSQL takes a batch off in one round trip with
/// [`embed_queue_delete_postgres`].
pub(crate) static EMBED_QUEUE_DELETE: Sql = Sql::new("DELETE FROM embed_queue WHERE memory_id = $1");

/// PostgreSQL: takes `count` memories (`$1`..`$count`) off the embedding queue at once.
pub(crate) fn embed_queue_delete_postgres(count: usize) -> String {
    format!("DELETE FROM embed_queue WHERE memory_id IN {}", placeholder_list(count))
}

/// PostgreSQL only: locks the row of the user owning memory `$1` (a lock that does not
/// block new memories), so that when several servers store one user's embeddings at
/// once, [`EMBEDDING_UPSERT`]'s numbers follow commit order and a reader that has seen
/// number n has seen everything before it. SQLite's one writer commits in number order.
pub(crate) static EMBEDDING_OWNER_LOCK_POSTGRES: Sql =
    Sql::new("SELECT 1 FROM users WHERE id = (SELECT user_id FROM memories WHERE id = $1) FOR NO KEY UPDATE");

/// Stores a memory's (`$1`) embedding (`$3` model, `$4` scale, `$5` the quantized
/// vector) if the memory still has the text it was made from (`$2`), numbered after the
/// user's latest; returns a row count of 0 when the text changed meanwhile.
pub(crate) static EMBEDDING_UPSERT: Sql = Sql::new(
    "INSERT INTO memory_embeddings (memory_id, user_id, model, seq, scale, vector) \
     SELECT m.id, m.user_id, $3, COALESCE((SELECT MAX(e.seq) FROM memory_embeddings e \
     WHERE e.user_id = m.user_id AND e.model = $3), 0) + 1, $4, $5 \
     FROM memories m WHERE m.id = $1 AND m.text = $2 \
     ON CONFLICT (memory_id) DO UPDATE SET model = excluded.model, seq = excluded.seq, \
     scale = excluded.scale, vector = excluded.vector",
);

/// The first memories (`$1` at most) waiting to be embedded, as `memory_id`.
pub(crate) static EMBED_QUEUE_PAGE: Sql = Sql::new("SELECT memory_id FROM embed_queue ORDER BY memory_id LIMIT $1");

/// The memories (after id `$1`, at most `$3`) with no embedding by model `$2`, as `id`
/// and `user_id`: what a backfill queues.
pub(crate) static MEMORIES_WITHOUT_EMBEDDING: Sql = Sql::new(
    "SELECT m.id, m.user_id FROM memories m WHERE m.id > $1 AND NOT EXISTS \
     (SELECT 1 FROM memory_embeddings e WHERE e.memory_id = m.id AND e.model = $2) ORDER BY m.id LIMIT $3",
);

/// A user's (`$1`) embeddings by model `$2` numbered after `$3`, in number order: what a
/// search's in-memory index has not seen yet.
pub(crate) static EMBEDDINGS_SINCE: Sql = Sql::new(
    "SELECT memory_id, seq, scale, vector FROM memory_embeddings \
     WHERE user_id = $1 AND model = $2 AND seq > $3 ORDER BY seq",
);

/// A user's (`$1`) latest embedding number by model `$2` (0 for none), as `latest`.
pub(crate) static LATEST_EMBEDDING_SEQ: Sql =
    Sql::new("SELECT COALESCE(MAX(seq), 0) AS latest FROM memory_embeddings WHERE user_id = $1 AND model = $2");

/// The Mem0 state of `count` memories (`$1`..), as `memory_id`, `state`, `error`,
/// `event_id`.
pub(crate) fn mem0_statuses(count: usize) -> String {
    format!("SELECT memory_id, state, error, event_id FROM mem0_index WHERE memory_id IN {}", placeholder_list(count))
}

/// The memories of `count` Mem0 ids (`$1`..), as `mem0_id` and `memory_id`.
pub(crate) fn memories_of_mem0(count: usize) -> String {
    format!("SELECT mem0_id, memory_id FROM mem0_links WHERE mem0_id IN {}", placeholder_list(count))
}

/// Memories by Mem0 state, counting only memories that still exist: (state, count).
pub(crate) static MEM0_COUNTS: Sql =
    Sql::new("SELECT i.state, count(*) FROM mem0_index AS i JOIN memories AS m ON m.id = i.memory_id GROUP BY i.state");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_leaves_the_embedding_queue_in_one_statement() {
        assert_eq!(embed_queue_delete_postgres(3), "DELETE FROM embed_queue WHERE memory_id IN ($1, $2, $3)");
    }
}
