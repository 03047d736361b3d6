//! The `media_assets` table: one stored file per user and content.

use sea_orm::entity::prelude::*;

use crate::domain::model::{MediaAsset, MediaAssetId, UserId};

/// One user's stored media file.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "media_assets")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub interaction_id: Option<i64>,
    pub sha256: String,
    pub ahash: Option<i64>,
    pub local_path: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub width_px: Option<i32>,
    pub height_px: Option<i32>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl From<Model> for MediaAsset {
    fn from(row: Model) -> Self {
        Self {
            id: MediaAssetId(row.id),
            user_id: UserId(row.user_id),
            sha256: row.sha256,
            ahash: row.ahash,
            local_path: row.local_path,
            content_type: row.content_type,
            size_bytes: row.size_bytes,
            width_px: row.width_px,
            height_px: row.height_px,
            created_at: row.created_at,
        }
    }
}
