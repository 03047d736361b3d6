//! The `memories` table (its full-text index is kept by the database itself).

use sea_orm::entity::prelude::*;

use crate::domain::model::{Memory, MemoryId, MemoryKind, UserId};

/// One memory.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "memories")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub interaction_id: Option<i64>,
    pub media_asset_id: Option<i64>,
    pub kind: String,
    pub text: String,
    pub labels: Option<Json>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(belongs_to = "super::users::Entity", from = "Column::UserId", to = "super::users::Column::Id")]
    User,
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

impl From<Model> for Memory {
    fn from(row: Model) -> Self {
        Self {
            id: MemoryId(row.id),
            user_id: UserId(row.user_id),
            kind: MemoryKind::parse(&row.kind).unwrap_or(MemoryKind::Text),
            text: row.text,
            created_at: row.created_at,
        }
    }
}
