//! Reads of the system of record, through the sea-orm pool; the same code serves SQLite
//! and PostgreSQL, and never waits for the writer.

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};

use super::entities::{memories, users};
use super::map_db_err;
use crate::domain::model::{MemoryPage, User, UserId};
use crate::domain::ports::RepositoryError;
use crate::domain::time_range::TimeRange;

/// The user with this WhatsApp id.
pub(super) async fn find_user(pool: &DatabaseConnection, wa_id: &str) -> Result<Option<User>, RepositoryError> {
    let row = users::Entity::find().filter(users::Column::WaId.eq(wa_id)).one(pool).await.map_err(map_db_err)?;
    Ok(row.map(User::from))
}

/// One user's memories in `range`, newest first, and how many there are in all.
pub(super) async fn list_memories(
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
