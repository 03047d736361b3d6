//! What the media pipeline needs: hash bands for an indexed near-duplicate lookup, the
//! link between an interaction's media items and the assets they became, and the
//! delivery outcome of messages sent through Twilio's REST API.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000003_media_pipeline"
    }
}

#[derive(DeriveIden)]
enum MediaAssets {
    Table,
    UserId,
}

#[derive(DeriveIden)]
enum Interactions {
    Table,
    Id,
    DeliveryStatus,
    ErrorCode,
    ErrorMessage,
}

#[derive(DeriveIden)]
enum InteractionMedia {
    Table,
    InteractionId,
    MediaIndex,
    MediaAssetId,
    Outcome,
}

/// Six bands of the 64-bit image hash (see `domain::perceptual`): two hashes within
/// Hamming distance 5 agree on at least one band, so six indexed lookups find every
/// near duplicate without a scan.
const BANDS: usize = 6;

fn band(i: usize) -> Alias {
    Alias::new(format!("band{i}"))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one ADD COLUMN per ALTER TABLE.
        for i in 0..BANDS {
            manager
                .alter_table(
                    Table::alter()
                        .table(MediaAssets::Table)
                        .add_column(ColumnDef::new(band(i)).big_integer().null())
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name(format!("idx_media_assets_user_band{i}"))
                        .table(MediaAssets::Table)
                        .col(MediaAssets::UserId)
                        .col(band(i))
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            ColumnDef::new(Interactions::DeliveryStatus).string().null().to_owned(),
            ColumnDef::new(Interactions::ErrorCode).big_integer().null().to_owned(),
            ColumnDef::new(Interactions::ErrorMessage).text().null().to_owned(),
        ] {
            let mut column = column;
            manager.alter_table(Table::alter().table(Interactions::Table).add_column(&mut column).to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(InteractionMedia::Table)
                    .col(ColumnDef::new(InteractionMedia::InteractionId).big_integer().not_null())
                    .col(ColumnDef::new(InteractionMedia::MediaIndex).integer().not_null())
                    .col(ColumnDef::new(InteractionMedia::MediaAssetId).big_integer().not_null())
                    .col(ColumnDef::new(InteractionMedia::Outcome).string().not_null())
                    .primary_key(Index::create().col(InteractionMedia::InteractionId).col(InteractionMedia::MediaIndex))
                    .foreign_key(
                        ForeignKey::create()
                            .from(InteractionMedia::Table, InteractionMedia::InteractionId)
                            .to(Interactions::Table, Interactions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(InteractionMedia::Table, InteractionMedia::MediaAssetId)
                            .to(MediaAssets::Table, Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(InteractionMedia::Table).to_owned()).await?;
        for column in [Interactions::DeliveryStatus, Interactions::ErrorCode, Interactions::ErrorMessage] {
            manager.alter_table(Table::alter().table(Interactions::Table).drop_column(column).to_owned()).await?;
        }
        for i in 0..BANDS {
            manager
                .drop_index(
                    Index::drop().name(format!("idx_media_assets_user_band{i}")).table(MediaAssets::Table).to_owned(),
                )
                .await?;
            manager.alter_table(Table::alter().table(MediaAssets::Table).drop_column(band(i)).to_owned()).await?;
        }
        Ok(())
    }
}
