//! Mem0 as a memory layer: each memory's copy in Mem0 (pending, indexed or failed, with
//! the error and the add's event while Mem0 infers), and every Mem0 memory an add
//! produced, linked to the memory of ours it came from.
//!
//! Neither table has a foreign key to `memories`: when a memory is deleted, the ids of
//! its Mem0 copies must still be readable in that transaction, to queue their deletion.
//! The use cases remove these rows themselves (and erasing a user removes theirs).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000005_mem0_index"
    }
}

#[derive(DeriveIden)]
enum Mem0Index {
    Table,
    MemoryId,
    UserId,
    State,
    Error,
    EventId,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Mem0Links {
    Table,
    MemoryId,
    Mem0Id,
    UserId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Mem0Index::Table)
                    .col(ColumnDef::new(Mem0Index::MemoryId).big_integer().not_null().primary_key())
                    .col(ColumnDef::new(Mem0Index::UserId).big_integer().not_null())
                    // `pending`, `indexed` or `failed`.
                    .col(ColumnDef::new(Mem0Index::State).string().not_null())
                    .col(ColumnDef::new(Mem0Index::Error).text().null())
                    .col(ColumnDef::new(Mem0Index::EventId).string().null())
                    .col(ColumnDef::new(Mem0Index::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        // Erasing a user deletes their rows by user.
        manager
            .create_index(
                Index::create().name("idx_mem0_index_user").table(Mem0Index::Table).col(Mem0Index::UserId).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Mem0Links::Table)
                    .col(ColumnDef::new(Mem0Links::MemoryId).big_integer().not_null())
                    .col(ColumnDef::new(Mem0Links::Mem0Id).string().not_null())
                    .col(ColumnDef::new(Mem0Links::UserId).big_integer().not_null())
                    .primary_key(Index::create().col(Mem0Links::MemoryId).col(Mem0Links::Mem0Id))
                    .to_owned(),
            )
            .await?;
        // A search hit from Mem0 is mapped back to our memory by its Mem0 id.
        manager
            .create_index(
                Index::create()
                    .name("idx_mem0_links_mem0_id")
                    .table(Mem0Links::Table)
                    .col(Mem0Links::Mem0Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_mem0_links_user").table(Mem0Links::Table).col(Mem0Links::UserId).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Mem0Links::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Mem0Index::Table).to_owned()).await
    }
}
