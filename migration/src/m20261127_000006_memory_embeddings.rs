//! Local semantic search: one sentence embedding per memory, quantised to one byte per
//! dimension with a scale (384 bytes for all-MiniLM-L6-v2).
//!
//! `seq` numbers a user's embeddings in the order they were stored (per model), so a
//! server holding a user's vectors in memory loads only what is newer than what it has.
//! A memory's row goes with the memory (ON DELETE CASCADE); `model` says which model made
//! the vector, so a new model re-embeds instead of comparing vectors of two models.
//!
//! `embed_queue` holds the memories waiting for an embedding: saving or editing a memory
//! adds its id in the same transaction, the embedder removes it with the vector. One
//! integer per memory, appended in id order, so queueing costs the webhook almost nothing
//! (a row in the general `jobs` table, with its payload and two indexes, cost it a tenth
//! of its throughput). No foreign key: a deleted memory's entry is dropped when reached.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000006_memory_embeddings"
    }
}

#[derive(DeriveIden)]
enum MemoryEmbeddings {
    Table,
    MemoryId,
    UserId,
    Model,
    Seq,
    Scale,
    Vector,
}

#[derive(DeriveIden)]
enum EmbedQueue {
    Table,
    MemoryId,
}

#[derive(DeriveIden)]
enum Memories {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MemoryEmbeddings::Table)
                    .col(ColumnDef::new(MemoryEmbeddings::MemoryId).big_integer().not_null().primary_key())
                    .col(ColumnDef::new(MemoryEmbeddings::UserId).big_integer().not_null())
                    .col(ColumnDef::new(MemoryEmbeddings::Model).string().not_null())
                    .col(ColumnDef::new(MemoryEmbeddings::Seq).big_integer().not_null())
                    .col(ColumnDef::new(MemoryEmbeddings::Scale).float().not_null())
                    .col(ColumnDef::new(MemoryEmbeddings::Vector).blob().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(MemoryEmbeddings::Table, MemoryEmbeddings::MemoryId)
                            .to(Memories::Table, Memories::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A search loads one user's vectors of one model, newest last; saving one finds
        // the user's latest number. Both are a range of this index.
        manager
            .create_index(
                Index::create()
                    .name("idx_memory_embeddings_user_model_seq")
                    .table(MemoryEmbeddings::Table)
                    .col(MemoryEmbeddings::UserId)
                    .col(MemoryEmbeddings::Model)
                    .col(MemoryEmbeddings::Seq)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(EmbedQueue::Table)
                    .col(ColumnDef::new(EmbedQueue::MemoryId).big_integer().not_null().primary_key())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(EmbedQueue::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(MemoryEmbeddings::Table).to_owned()).await
    }
}
