//! The system of record: users, every WhatsApp interaction, media, memories and jobs.
//! Idempotency lives here: a unique `twilio_message_sid` makes a redelivery a no-op.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261126_000001_create_core_tables"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    WaId,
    PhoneNumber,
    DisplayName,
    Timezone,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Interactions {
    Table,
    Id,
    UserId,
    TwilioMessageSid,
    Direction,
    MessageType,
    Body,
    RawForm,
    Reply,
    InReplyTo,
    OccurredAt,
}

#[derive(DeriveIden)]
enum MediaAssets {
    Table,
    Id,
    UserId,
    InteractionId,
    Sha256,
    Ahash,
    MediaUrl,
    LocalPath,
    ContentType,
    SizeBytes,
    WidthPx,
    HeightPx,
    DurationSeconds,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Memories {
    Table,
    Id,
    UserId,
    InteractionId,
    MediaAssetId,
    Kind,
    Text,
    Labels,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    Kind,
    Payload,
    State,
    Attempts,
    MaxAttempts,
    DueAt,
    LeaseUntil,
    LastError,
    CreatedAt,
    UpdatedAt,
}

/// Timestamps are `timestamptz` on PostgreSQL and RFC 3339 UTC text on SQLite, which
/// sorts and compares correctly as text.
fn timestamp(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().not_null().take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(ColumnDef::new(Users::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Users::WaId).string().not_null().unique_key())
                    .col(ColumnDef::new(Users::PhoneNumber).string().not_null())
                    .col(ColumnDef::new(Users::DisplayName).string().null())
                    .col(ColumnDef::new(Users::Timezone).string().null())
                    .col(timestamp(Users::CreatedAt))
                    .col(timestamp(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Interactions::Table)
                    .col(ColumnDef::new(Interactions::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Interactions::UserId).big_integer().not_null())
                    .col(ColumnDef::new(Interactions::TwilioMessageSid).string().null().unique_key())
                    .col(ColumnDef::new(Interactions::Direction).string().not_null())
                    .col(ColumnDef::new(Interactions::MessageType).string().not_null())
                    .col(ColumnDef::new(Interactions::Body).text().not_null())
                    .col(ColumnDef::new(Interactions::RawForm).json_binary().null())
                    .col(ColumnDef::new(Interactions::Reply).text().null())
                    .col(ColumnDef::new(Interactions::InReplyTo).big_integer().null())
                    .col(timestamp(Interactions::OccurredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Interactions::Table, Interactions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Interactions::Table, Interactions::InReplyTo)
                            .to(Interactions::Table, Interactions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_interactions_user_occurred")
                    .table(Interactions::Table)
                    .col(Interactions::UserId)
                    .col(Interactions::OccurredAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_interactions_in_reply_to")
                    .table(Interactions::Table)
                    .col(Interactions::InReplyTo)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MediaAssets::Table)
                    .col(ColumnDef::new(MediaAssets::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(MediaAssets::UserId).big_integer().not_null())
                    .col(ColumnDef::new(MediaAssets::InteractionId).big_integer().null())
                    .col(ColumnDef::new(MediaAssets::Sha256).string_len(64).not_null())
                    .col(ColumnDef::new(MediaAssets::Ahash).big_integer().null())
                    .col(ColumnDef::new(MediaAssets::MediaUrl).text().null())
                    .col(ColumnDef::new(MediaAssets::LocalPath).text().not_null())
                    .col(ColumnDef::new(MediaAssets::ContentType).string().not_null())
                    .col(ColumnDef::new(MediaAssets::SizeBytes).big_integer().not_null())
                    .col(ColumnDef::new(MediaAssets::WidthPx).integer().null())
                    .col(ColumnDef::new(MediaAssets::HeightPx).integer().null())
                    .col(ColumnDef::new(MediaAssets::DurationSeconds).double().null())
                    .col(timestamp(MediaAssets::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(MediaAssets::Table, MediaAssets::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(MediaAssets::Table, MediaAssets::InteractionId)
                            .to(Interactions::Table, Interactions::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        // De-duplication is per user: the same bytes from another user are their own asset.
        manager
            .create_index(
                Index::create()
                    .name("uq_media_assets_user_sha256")
                    .table(MediaAssets::Table)
                    .col(MediaAssets::UserId)
                    .col(MediaAssets::Sha256)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Memories::Table)
                    .col(ColumnDef::new(Memories::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Memories::UserId).big_integer().not_null())
                    .col(ColumnDef::new(Memories::InteractionId).big_integer().null())
                    .col(ColumnDef::new(Memories::MediaAssetId).big_integer().null())
                    .col(ColumnDef::new(Memories::Kind).string().not_null())
                    .col(ColumnDef::new(Memories::Text).text().not_null())
                    .col(ColumnDef::new(Memories::Labels).json_binary().null())
                    .col(timestamp(Memories::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Memories::Table, Memories::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Memories::Table, Memories::InteractionId)
                            .to(Interactions::Table, Interactions::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Memories::Table, Memories::MediaAssetId)
                            .to(MediaAssets::Table, MediaAssets::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_memories_user_created")
                    .table(Memories::Table)
                    .col(Memories::UserId)
                    .col(Memories::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_memories_interaction")
                    .table(Memories::Table)
                    .col(Memories::InteractionId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Jobs::Table)
                    .col(ColumnDef::new(Jobs::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Jobs::Kind).string().not_null())
                    .col(ColumnDef::new(Jobs::Payload).json_binary().not_null())
                    .col(ColumnDef::new(Jobs::State).string().not_null())
                    .col(ColumnDef::new(Jobs::Attempts).integer().not_null().default(0))
                    .col(ColumnDef::new(Jobs::MaxAttempts).integer().not_null())
                    .col(timestamp(Jobs::DueAt))
                    .col(ColumnDef::new(Jobs::LeaseUntil).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(Jobs::LastError).text().null())
                    .col(timestamp(Jobs::CreatedAt))
                    .col(timestamp(Jobs::UpdatedAt))
                    .to_owned(),
            )
            .await?;
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
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Jobs::Table.into_iden(),
            Memories::Table.into_iden(),
            MediaAssets::Table.into_iden(),
            Interactions::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
