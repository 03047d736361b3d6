//! The text read from a photo, screenshot or PDF (OCR or the PDF's text layer), kept with
//! its memory: `NULL` until it was read, empty when there was none. The memory's `text`
//! carries the same words after its caption, so full-text search (its triggers and
//! generated column follow `text`) and the other indexes find them unchanged.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000008_extracted_text"
    }
}

#[derive(DeriveIden)]
enum Memories {
    Table,
    ExtractedText,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Memories::Table)
                    .add_column(ColumnDef::new(Memories::ExtractedText).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table(Memories::Table).drop_column(Memories::ExtractedText).to_owned()).await
    }
}
