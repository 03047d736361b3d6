//! Perceptual hashes made by the hand-written aHash are recomputed with `image_hasher`.
//!
//! The two agree on the picture but not on every bit (`image_hasher` sets a cell equal to
//! the rounded-down mean; ours did not), so a photo saved before the change could be
//! missed as a near duplicate of the same photo sent after it. `image_rehash_queue` lists
//! every stored image whose hash the old function made; the server (in the background,
//! from start) and `whatsapp-memory reindex --hashes` recompute each from its kept file
//! and take it off the queue in the same transaction. Images saved after this migration
//! are hashed by `image_hasher` and never queued.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000007_image_rehash_queue"
    }
}

#[derive(DeriveIden)]
enum ImageRehashQueue {
    Table,
    MediaId,
}

#[derive(DeriveIden)]
enum MediaAssets {
    Table,
    Id,
    Ahash,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ImageRehashQueue::Table)
                    .col(ColumnDef::new(ImageRehashQueue::MediaId).big_integer().not_null().primary_key())
                    .foreign_key(
                        ForeignKey::create()
                            .from(ImageRehashQueue::Table, ImageRehashQueue::MediaId)
                            .to(MediaAssets::Table, MediaAssets::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let every_hashed_image = Query::insert()
            .into_table(ImageRehashQueue::Table)
            .columns([ImageRehashQueue::MediaId])
            .select_from(
                Query::select()
                    .column(MediaAssets::Id)
                    .from(MediaAssets::Table)
                    .and_where(Expr::col(MediaAssets::Ahash).is_not_null())
                    .to_owned(),
            )
            .map_err(|e| DbErr::Migration(e.to_string()))?
            .to_owned();
        manager.exec_stmt(every_hashed_image).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ImageRehashQueue::Table).to_owned()).await
    }
}
