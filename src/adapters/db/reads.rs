//! Reads of the system of record, through the sea-orm pool; the same code serves SQLite
//! and PostgreSQL, and never waits for the writer.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Statement, Value,
};

use super::entities::{interactions, media_assets, memories, users};
use super::pool::map_db_err;
use super::sqlite_connection::sqlite_timestamp;
use super::statements::analytics::{INTERACTIONS_PER_DAY, MEMORIES_BY_KIND, TABLE_TOTALS};
use super::statements::indexes::{
    mem0_statuses as mem0_statuses_sql, memories_of_mem0, EMBEDDINGS_SINCE, EMBED_QUEUE_PAGE, LATEST_EMBEDDING_SEQ,
    MEM0_COUNTS, MEMORIES_WITHOUT_EMBEDDING,
};
use super::statements::media::IMAGE_REHASH_QUEUE_PAGE;
use super::statements::memories::MEMORIES_AWAITING_TEXT;
use super::statements::Dialect;
use crate::domain::model::{
    Analytics, Interaction, InteractionId, MediaAsset, MediaAssetId, Mem0Counts, Mem0State, Mem0Status, MemoryId,
    MemoryPage, MemoryRecord, Page, PageCursor, User, UserData, UserId, UserRecord,
};
use async_trait::async_trait;

use crate::domain::embedding::QuantizedEmbedding;
use crate::domain::ports::{AwaitingText, ReadModel, RepositoryError, StoredEmbedding};
use crate::domain::time_range::TimeRange;

/// The user with this WhatsApp id.
async fn find_user(pool: &DatabaseConnection, wa_id: &str) -> Result<Option<User>, RepositoryError> {
    let row = users::Entity::find().filter(users::Column::WaId.eq(wa_id)).one(pool).await.map_err(map_db_err)?;
    Ok(row.map(User::from))
}

/// One user's memories in `range`, newest first, and how many there are in all.
async fn list_memories(
    pool: &DatabaseConnection,
    user: UserId,
    range: Option<TimeRange>,
    limit: u32,
) -> Result<MemoryPage, RepositoryError> {
    let mut query = memories::Entity::find().filter(memories::Column::UserId.eq(user.0));
    if let Some(range) = range {
        query = query
            .filter(memories::Column::CreatedAt.gte(range.start))
            .filter(memories::Column::CreatedAt.lt(range.end));
    }
    let total = query.clone().count(pool).await.map_err(map_db_err)?;
    let rows = query
        .order_by_desc(memories::Column::CreatedAt)
        .order_by_desc(memories::Column::Id)
        .limit(u64::from(limit))
        .all(pool)
        .await
        .map_err(map_db_err)?;
    Ok(MemoryPage { memories: rows.into_iter().map(Into::into).collect(), total })
}

/// A timestamp as this backend compares it: SQLite stores RFC 3339 text with
/// microseconds, so the bound value must be that exact text form.
fn timestamp_value(pool: &DatabaseConnection, t: DateTime<Utc>) -> Value {
    match pool.get_database_backend() {
        DbBackend::Sqlite => Value::from(sqlite_timestamp(t)),
        _ => Value::from(t),
    }
}

/// Rows strictly after `cursor` in newest-first order of (`time_column`, id).
fn after_cursor(pool: &DatabaseConnection, time_column: &'static str, cursor: PageCursor) -> Condition {
    let at = timestamp_value(pool, cursor.created_at);
    let time = || Expr::col(Alias::new(time_column));
    Condition::any()
        .add(time().lt(at.clone()))
        .add(Condition::all().add(time().eq(at)).add(Expr::col(Alias::new("id")).lt(cursor.id)))
}

/// Splits one row too many off the end into the next page's cursor.
fn into_page<T>(mut items: Vec<T>, limit: u32, cursor_of: impl Fn(&T) -> PageCursor) -> Page<T> {
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(&cursor_of)
    } else {
        None
    };
    Page { items, next }
}

/// Memory rows as records, each with its owner's WhatsApp id (one query for all owners).
async fn with_owners(
    pool: &DatabaseConnection,
    rows: Vec<memories::Model>,
) -> Result<Vec<MemoryRecord>, RepositoryError> {
    let mut owner_ids: Vec<i64> = rows.iter().map(|row| row.user_id).collect();
    owner_ids.sort_unstable();
    owner_ids.dedup();
    let owners: std::collections::HashMap<i64, String> = users::Entity::find()
        .filter(users::Column::Id.is_in(owner_ids))
        .all(pool)
        .await
        .map_err(map_db_err)?
        .into_iter()
        .map(|user| (user.id, user.wa_id))
        .collect();
    Ok(rows
        .into_iter()
        .map(|row| {
            let owner = owners.get(&row.user_id).cloned().unwrap_or_default();
            row.into_record(owner)
        })
        .collect())
}

pub(super) async fn find_memories(
    pool: &DatabaseConnection,
    ids: &[MemoryId],
) -> Result<Vec<MemoryRecord>, RepositoryError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = memories::Entity::find()
        .filter(memories::Column::Id.is_in(ids.iter().map(|id| id.0)))
        .all(pool)
        .await
        .map_err(map_db_err)?;
    let mut by_id: std::collections::HashMap<i64, MemoryRecord> =
        with_owners(pool, rows).await?.into_iter().map(|r| (r.memory.id.0, r)).collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(&id.0)).collect())
}

pub(super) async fn memory_page(
    pool: &DatabaseConnection,
    user: UserId,
    range: Option<TimeRange>,
    after: Option<PageCursor>,
    limit: u32,
) -> Result<Page<MemoryRecord>, RepositoryError> {
    let mut query = memories::Entity::find().filter(memories::Column::UserId.eq(user.0));
    if let Some(range) = range {
        let created_at = || Expr::col(Alias::new("created_at"));
        query = query
            .filter(created_at().gte(timestamp_value(pool, range.start)))
            .filter(created_at().lt(timestamp_value(pool, range.end)));
    }
    if let Some(cursor) = after {
        query = query.filter(after_cursor(pool, "created_at", cursor));
    }
    let rows = query
        .order_by_desc(memories::Column::CreatedAt)
        .order_by_desc(memories::Column::Id)
        .limit(u64::from(limit) + 1)
        .all(pool)
        .await
        .map_err(map_db_err)?;
    let records = with_owners(pool, rows).await?;
    Ok(into_page(records, limit, |r: &MemoryRecord| PageCursor { created_at: r.memory.created_at, id: r.memory.id.0 }))
}

pub(super) async fn find_interactions(
    pool: &DatabaseConnection,
    ids: &[InteractionId],
) -> Result<Vec<Interaction>, RepositoryError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = interactions::Entity::find()
        .filter(interactions::Column::Id.is_in(ids.iter().map(|id| id.0)))
        .all(pool)
        .await
        .map_err(map_db_err)?;
    let mut by_id: std::collections::HashMap<i64, Interaction> =
        rows.into_iter().map(|row| (row.id, Interaction::from(row))).collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(&id.0)).collect())
}

pub(super) async fn interaction_page(
    pool: &DatabaseConnection,
    user: UserId,
    after: Option<PageCursor>,
    limit: u32,
) -> Result<Page<Interaction>, RepositoryError> {
    let mut query = interactions::Entity::find().filter(interactions::Column::UserId.eq(user.0));
    if let Some(cursor) = after {
        query = query.filter(after_cursor(pool, "occurred_at", cursor));
    }
    let rows = query
        .order_by_desc(interactions::Column::OccurredAt)
        .order_by_desc(interactions::Column::Id)
        .limit(u64::from(limit) + 1)
        .all(pool)
        .await
        .map_err(map_db_err)?;
    let items = rows.into_iter().map(Interaction::from).collect();
    Ok(into_page(items, limit, |i: &Interaction| PageCursor { created_at: i.created_at, id: i.id.0 }))
}

async fn memory_count(pool: &DatabaseConnection, user: UserId) -> Result<u64, RepositoryError> {
    memories::Entity::find().filter(memories::Column::UserId.eq(user.0)).count(pool).await.map_err(map_db_err)
}

pub(super) async fn user_page(
    pool: &DatabaseConnection,
    after: Option<PageCursor>,
    limit: u32,
) -> Result<Page<UserRecord>, RepositoryError> {
    let mut query = users::Entity::find();
    if let Some(cursor) = after {
        query = query.filter(after_cursor(pool, "created_at", cursor));
    }
    let rows = query
        .order_by_desc(users::Column::CreatedAt)
        .order_by_desc(users::Column::Id)
        .limit(u64::from(limit) + 1)
        .all(pool)
        .await
        .map_err(map_db_err)?;
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let created_at = row.created_at;
        let user = User::from(row);
        let memory_count = memory_count(pool, user.id).await?;
        items.push(UserRecord { user, created_at, memory_count });
    }
    Ok(into_page(items, limit, |u: &UserRecord| PageCursor { created_at: u.created_at, id: u.user.id.0 }))
}

pub(super) async fn find_user_record(
    pool: &DatabaseConnection,
    wa_id: &str,
) -> Result<Option<UserRecord>, RepositoryError> {
    let Some(row) = users::Entity::find().filter(users::Column::WaId.eq(wa_id)).one(pool).await.map_err(map_db_err)?
    else {
        return Ok(None);
    };
    let created_at = row.created_at;
    let user = User::from(row);
    let memory_count = memory_count(pool, user.id).await?;
    Ok(Some(UserRecord { user, created_at, memory_count }))
}

async fn count_rows(
    pool: &DatabaseConnection,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<(String, u64)>, RepositoryError> {
    let rows = pool
        .query_all_raw(Statement::from_sql_and_values(pool.get_database_backend(), sql, values))
        .await
        .map_err(map_db_err)?;
    rows.iter()
        .map(|row| {
            let key: String = row.try_get_by_index(0).map_err(map_db_err)?;
            let count: i64 = row.try_get_by_index(1).map_err(map_db_err)?;
            Ok((key, u64::try_from(count).unwrap_or_default()))
        })
        .collect()
}

pub(super) async fn analytics(pool: &DatabaseConnection, now: DateTime<Utc>) -> Result<Analytics, RepositoryError> {
    let dialect = Dialect::of(pool.get_database_backend());
    let totals = count_rows(pool, TABLE_TOTALS.text(dialect), Vec::new()).await?;
    let total = |name: &str| totals.iter().find(|(key, _)| key == name).map_or(0, |(_, n)| *n);
    let memories_by_kind = count_rows(pool, MEMORIES_BY_KIND.text(dialect), Vec::new()).await?;
    let last_ingest_at = interactions::Entity::find()
        .filter(interactions::Column::Direction.eq("inbound"))
        .order_by_desc(interactions::Column::OccurredAt)
        .one(pool)
        .await
        .map_err(map_db_err)?
        .map(|row| row.occurred_at);
    // Per UTC day over the last 30 days.
    let today = now.date_naive();
    let first_day = today - chrono::Days::new(29);
    let since = first_day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or(now);
    let per_day = count_rows(pool, INTERACTIONS_PER_DAY.text(dialect), vec![timestamp_value(pool, since)]).await?;
    let interactions_per_day = first_day
        .iter_days()
        .take_while(|d| *d <= today)
        .map(|d| {
            let key = d.format("%Y-%m-%d").to_string();
            (d, per_day.iter().find(|(k, _)| *k == key).map_or(0, |(_, n)| *n))
        })
        .collect();
    Ok(Analytics {
        users: total("users"),
        interactions: total("interactions"),
        memories: total("memories"),
        media_assets: total("media_assets"),
        memories_by_kind,
        last_ingest_at,
        interactions_per_day,
        mem0: None,
    })
}

/// The pool's dialect.
fn dialect(pool: &DatabaseConnection) -> Dialect {
    Dialect::of(pool.get_database_backend())
}

/// Rows of a raw query over `values`.
async fn raw_rows(
    pool: &DatabaseConnection,
    sql: &str,
    values: Vec<Value>,
) -> Result<Vec<sea_orm::QueryResult>, RepositoryError> {
    pool.query_all_raw(Statement::from_sql_and_values(pool.get_database_backend(), sql, values))
        .await
        .map_err(map_db_err)
}

/// The Mem0 status of each of these memories that has one.
async fn mem0_statuses(
    pool: &DatabaseConnection,
    ids: &[i64],
) -> Result<std::collections::HashMap<i64, Mem0Status>, RepositoryError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let sql = dialect(pool).built(mem0_statuses_sql(ids.len()));
    let rows = raw_rows(pool, &sql, ids.iter().map(|id| Value::from(*id)).collect()).await?;
    let mut statuses = std::collections::HashMap::new();
    for row in rows {
        let memory_id: i64 = row.try_get("", "memory_id").map_err(map_db_err)?;
        let state: String = row.try_get("", "state").map_err(map_db_err)?;
        let Some(state) = Mem0State::parse(&state) else {
            continue;
        };
        let error: Option<String> = row.try_get("", "error").map_err(map_db_err)?;
        let event_id: Option<String> = row.try_get("", "event_id").map_err(map_db_err)?;
        statuses.insert(memory_id, Mem0Status { state, error, event_id });
    }
    Ok(statuses)
}

/// Memories by Mem0 state, counting only memories that still exist.
async fn mem0_counts(pool: &DatabaseConnection) -> Result<Mem0Counts, RepositoryError> {
    let rows = count_rows(pool, MEM0_COUNTS.text(dialect(pool)), Vec::new()).await?;
    let mut counts = Mem0Counts::default();
    for (state, count) in rows {
        match Mem0State::parse(&state) {
            Some(Mem0State::Pending) => counts.pending += count,
            Some(Mem0State::Indexed) => counts.indexed += count,
            Some(Mem0State::Failed) => counts.failed += count,
            None => {}
        }
    }
    Ok(counts)
}

/// The read model over the sea-orm pool: the same queries serve SQLite and PostgreSQL.
pub struct PoolReads {
    pool: DatabaseConnection,
    /// Whether memories carry their Mem0 status: only when Mem0 is configured, so that
    /// without it no read pays for the extra query.
    mem0: bool,
}

impl PoolReads {
    /// Reads through `pool`.
    pub fn new(pool: DatabaseConnection) -> Self {
        Self { pool, mem0: false }
    }

    /// Memories read carry their Mem0 status, and the analytics count them by it.
    pub fn with_mem0_status(mut self) -> Self {
        self.mem0 = true;
        self
    }

    /// `records` with their Mem0 status, when this read model shows it.
    async fn with_mem0(&self, mut records: Vec<MemoryRecord>) -> Result<Vec<MemoryRecord>, RepositoryError> {
        if !self.mem0 {
            return Ok(records);
        }
        let ids: Vec<i64> = records.iter().map(|r| r.memory.id.0).collect();
        let mut statuses = mem0_statuses(&self.pool, &ids).await?;
        for record in &mut records {
            record.mem0 = statuses.remove(&record.memory.id.0);
        }
        Ok(records)
    }
}

#[async_trait]
impl ReadModel for PoolReads {
    async fn find_user(&self, wa_id: &str) -> Result<Option<User>, RepositoryError> {
        find_user(&self.pool, wa_id).await
    }

    async fn list_memories(
        &self,
        user: UserId,
        range: Option<TimeRange>,
        limit: u32,
    ) -> Result<MemoryPage, RepositoryError> {
        list_memories(&self.pool, user, range, limit).await
    }

    async fn find_memory(&self, id: MemoryId) -> Result<Option<MemoryRecord>, RepositoryError> {
        Ok(self.with_mem0(find_memories(&self.pool, &[id]).await?).await?.pop())
    }

    async fn find_memories(&self, ids: &[MemoryId]) -> Result<Vec<MemoryRecord>, RepositoryError> {
        self.with_mem0(find_memories(&self.pool, ids).await?).await
    }

    async fn memory_page(
        &self,
        user: UserId,
        range: Option<TimeRange>,
        after: Option<PageCursor>,
        limit: u32,
    ) -> Result<Page<MemoryRecord>, RepositoryError> {
        let page = memory_page(&self.pool, user, range, after, limit).await?;
        Ok(Page { items: self.with_mem0(page.items).await?, next: page.next })
    }

    async fn find_interactions(&self, ids: &[InteractionId]) -> Result<Vec<Interaction>, RepositoryError> {
        find_interactions(&self.pool, ids).await
    }

    async fn interaction_page(
        &self,
        user: UserId,
        after: Option<PageCursor>,
        limit: u32,
    ) -> Result<Page<Interaction>, RepositoryError> {
        interaction_page(&self.pool, user, after, limit).await
    }

    async fn user_page(&self, after: Option<PageCursor>, limit: u32) -> Result<Page<UserRecord>, RepositoryError> {
        user_page(&self.pool, after, limit).await
    }

    async fn find_user_record(&self, wa_id: &str) -> Result<Option<UserRecord>, RepositoryError> {
        find_user_record(&self.pool, wa_id).await
    }

    async fn find_memory_of_media(&self, media: MediaAssetId) -> Result<Option<MemoryRecord>, RepositoryError> {
        let rows = memories::Entity::find()
            .filter(memories::Column::MediaAssetId.eq(media.0))
            .order_by_asc(memories::Column::Id)
            .limit(1)
            .all(&self.pool)
            .await
            .map_err(map_db_err)?;
        Ok(self.with_mem0(with_owners(&self.pool, rows).await?).await?.pop())
    }

    async fn find_media(&self, id: MediaAssetId) -> Result<Option<MediaAsset>, RepositoryError> {
        let row = media_assets::Entity::find_by_id(id.0).one(&self.pool).await.map_err(map_db_err)?;
        Ok(row.map(MediaAsset::from))
    }

    async fn export_user(&self, user: UserId) -> Result<UserData, RepositoryError> {
        let data = export_user(&self.pool, user).await?;
        Ok(UserData { memories: self.with_mem0(data.memories).await?, ..data })
    }

    async fn analytics(&self, now: DateTime<Utc>) -> Result<Analytics, RepositoryError> {
        let mut analytics = analytics(&self.pool, now).await?;
        if self.mem0 {
            analytics.mem0 = Some(mem0_counts(&self.pool).await?);
        }
        Ok(analytics)
    }

    async fn memories_of_mem0(&self, mem0_ids: &[String]) -> Result<Vec<(String, MemoryId)>, RepositoryError> {
        if mem0_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = dialect(&self.pool).built(memories_of_mem0(mem0_ids.len()));
        let rows = raw_rows(&self.pool, &sql, mem0_ids.iter().map(|id| Value::from(id.clone())).collect()).await?;
        rows.iter()
            .map(|row| {
                let mem0_id: String = row.try_get("", "mem0_id").map_err(map_db_err)?;
                let memory_id: i64 = row.try_get("", "memory_id").map_err(map_db_err)?;
                Ok((mem0_id, MemoryId(memory_id)))
            })
            .collect()
    }

    async fn embeddings_since(
        &self,
        user: UserId,
        model: &str,
        after_seq: i64,
    ) -> Result<Vec<StoredEmbedding>, RepositoryError> {
        let sql = EMBEDDINGS_SINCE.text(dialect(&self.pool));
        let rows = raw_rows(&self.pool, sql, vec![user.0.into(), model.into(), after_seq.into()]).await?;
        rows.iter()
            .map(|row| {
                let memory: i64 = row.try_get("", "memory_id").map_err(map_db_err)?;
                let seq: i64 = row.try_get("", "seq").map_err(map_db_err)?;
                let scale: f32 = row.try_get("", "scale").map_err(map_db_err)?;
                let bytes: Vec<u8> = row.try_get("", "vector").map_err(map_db_err)?;
                Ok(StoredEmbedding {
                    memory: MemoryId(memory),
                    seq,
                    vector: QuantizedEmbedding::from_bytes(scale, &bytes),
                })
            })
            .collect()
    }

    async fn latest_embedding_seq(&self, user: UserId, model: &str) -> Result<i64, RepositoryError> {
        let sql = LATEST_EMBEDDING_SEQ.text(dialect(&self.pool));
        let rows = raw_rows(&self.pool, sql, vec![user.0.into(), model.into()]).await?;
        rows.first().map_or(Ok(0), |row| row.try_get::<i64>("", "latest").map_err(map_db_err))
    }

    async fn image_rehash_queue(&self, limit: u32) -> Result<Vec<MediaAssetId>, RepositoryError> {
        let sql = IMAGE_REHASH_QUEUE_PAGE.text(dialect(&self.pool));
        let rows = raw_rows(&self.pool, sql, vec![i64::from(limit).into()]).await?;
        rows.iter().map(|row| row.try_get::<i64>("", "media_id").map(MediaAssetId).map_err(map_db_err)).collect()
    }

    async fn embedding_queue(&self, limit: u32) -> Result<Vec<MemoryId>, RepositoryError> {
        let sql = EMBED_QUEUE_PAGE.text(dialect(&self.pool));
        let rows = raw_rows(&self.pool, sql, vec![i64::from(limit).into()]).await?;
        rows.iter().map(|row| row.try_get::<i64>("", "memory_id").map(MemoryId).map_err(map_db_err)).collect()
    }

    async fn memories_without_embedding(
        &self,
        model: &str,
        after: MemoryId,
        limit: u32,
    ) -> Result<Vec<(MemoryId, UserId)>, RepositoryError> {
        let sql = MEMORIES_WITHOUT_EMBEDDING.text(dialect(&self.pool));
        let rows = raw_rows(&self.pool, sql, vec![after.0.into(), model.into(), i64::from(limit).into()]).await?;
        rows.iter()
            .map(|row| {
                let memory: i64 = row.try_get("", "id").map_err(map_db_err)?;
                let user: i64 = row.try_get("", "user_id").map_err(map_db_err)?;
                Ok((MemoryId(memory), UserId(user)))
            })
            .collect()
    }

    async fn memories_awaiting_text(&self, after: MemoryId, limit: u32) -> Result<Vec<AwaitingText>, RepositoryError> {
        let sql = MEMORIES_AWAITING_TEXT.text(dialect(&self.pool));
        let rows = raw_rows(&self.pool, sql, vec![after.0.into(), i64::from(limit).into()]).await?;
        rows.iter()
            .map(|row| {
                let column = |name: &str| row.try_get::<String>("", name).map_err(map_db_err);
                Ok(AwaitingText {
                    memory: MemoryId(row.try_get("", "id").map_err(map_db_err)?),
                    user: UserId(row.try_get("", "user_id").map_err(map_db_err)?),
                    text: column("text")?,
                    local_path: column("local_path")?,
                    content_type: column("content_type")?,
                })
            })
            .collect()
    }
}

/// Everything held about one user, oldest first, as one consistent read.
async fn export_user(pool: &DatabaseConnection, user: UserId) -> Result<UserData, RepositoryError> {
    let memory_rows = memories::Entity::find()
        .filter(memories::Column::UserId.eq(user.0))
        .order_by_asc(memories::Column::CreatedAt)
        .order_by_asc(memories::Column::Id)
        .all(pool)
        .await
        .map_err(map_db_err)?;
    let interactions = interactions::Entity::find()
        .filter(interactions::Column::UserId.eq(user.0))
        .order_by_asc(interactions::Column::OccurredAt)
        .order_by_asc(interactions::Column::Id)
        .all(pool)
        .await
        .map_err(map_db_err)?;
    let media = media_assets::Entity::find()
        .filter(media_assets::Column::UserId.eq(user.0))
        .order_by_asc(media_assets::Column::Id)
        .all(pool)
        .await
        .map_err(map_db_err)?;
    Ok(UserData {
        memories: with_owners(pool, memory_rows).await?,
        interactions: interactions.into_iter().map(Interaction::from).collect(),
        media: media.into_iter().map(MediaAsset::from).collect(),
    })
}
