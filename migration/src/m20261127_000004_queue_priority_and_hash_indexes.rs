//! Two lessons of the media benchmark:
//! - replies to people waited behind a backlog of photo jobs, first in first out: jobs get
//!   a priority, and claiming takes replies first through an index that serves each
//!   claim as one ordered range (no sort of the backlog);
//! - the near-duplicate lookup read every candidate's full row: the band indexes now carry
//!   the hash itself, so the lookup is answered from the indexes alone.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000004_queue_priority_and_hash_indexes"
    }
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    State,
    Priority,
    DueAt,
    LeaseUntil,
    Id,
}

#[derive(DeriveIden)]
enum MediaAssets {
    Table,
    UserId,
    Ahash,
}

/// The number of hash bands, as in the media pipeline migration.
const BANDS: usize = 6;

fn band(i: usize) -> Alias {
    Alias::new(format!("band{i}"))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // 0: a message to a person; 1: background work. Existing jobs are background.
        manager
            .alter_table(
                Table::alter()
                    .table(Jobs::Table)
                    .add_column(ColumnDef::new(Jobs::Priority).small_integer().not_null().default(1))
                    .to_owned(),
            )
            .await?;
        manager.drop_index(Index::drop().name("idx_jobs_state_due").table(Jobs::Table).to_owned()).await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_claim")
                    .table(Jobs::Table)
                    .col(Jobs::State)
                    .col(Jobs::Priority)
                    .col(Jobs::DueAt)
                    .col(Jobs::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_lease")
                    .table(Jobs::Table)
                    .col(Jobs::State)
                    .col(Jobs::LeaseUntil)
                    .to_owned(),
            )
            .await?;
        for i in 0..BANDS {
            manager
                .drop_index(
                    Index::drop().name(format!("idx_media_assets_user_band{i}")).table(MediaAssets::Table).to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name(format!("idx_media_assets_user_band{i}_hash"))
                        .table(MediaAssets::Table)
                        .col(MediaAssets::UserId)
                        .col(band(i))
                        .col(MediaAssets::Ahash)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for i in 0..BANDS {
            manager
                .drop_index(
                    Index::drop()
                        .name(format!("idx_media_assets_user_band{i}_hash"))
                        .table(MediaAssets::Table)
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
        manager.drop_index(Index::drop().name("idx_jobs_lease").table(Jobs::Table).to_owned()).await?;
        manager.drop_index(Index::drop().name("idx_jobs_claim").table(Jobs::Table).to_owned()).await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_state_due")
                    .table(Jobs::Table)
                    .col(Jobs::State)
                    .col(Jobs::DueAt)
                    .to_owned(),
            )
            .await?;
        manager.alter_table(Table::alter().table(Jobs::Table).drop_column(Jobs::Priority).to_owned()).await
    }
}
