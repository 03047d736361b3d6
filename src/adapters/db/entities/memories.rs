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
    /// The text read from its photo or document: `NULL` until read, empty when there was none.
    pub extracted_text: Option<String>,
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

impl Model {
    /// The full record of this memory, owned by the user with `owner_wa_id`.
    pub fn into_record(self, owner_wa_id: String) -> crate::domain::model::MemoryRecord {
        let row = self;
        let labels = match &row.labels {
            Some(serde_json::Value::Array(items)) => {
                items.iter().filter_map(|item| item.as_str().map(str::to_string)).collect()
            }
            // SQLite hands back the stored JSON text as a string.
            Some(serde_json::Value::String(text)) => serde_json::from_str(text).unwrap_or_default(),
            _ => Vec::new(),
        };
        crate::domain::model::MemoryRecord {
            owner_wa_id,
            interaction_id: row.interaction_id.map(crate::domain::model::InteractionId),
            media_asset_id: row.media_asset_id.map(crate::domain::model::MediaAssetId),
            labels,
            extracted_text: row.extracted_text.clone().filter(|text| !text.is_empty()),
            mem0: None,
            memory: row.into(),
        }
    }
}
