//! Reminders ("remind me Friday at 9 to call mom"). Each occurrence is delivered by a
//! job queued with the reminder (the queue's own index finds it when due, so pending
//! reminders cost nothing while idle); this table holds what the user asked for and
//! where it stands. `idx_reminders_user_next` lists a user's upcoming ones in order;
//! `idx_reminders_due` finds every pending one by due time (the REST API, checks).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261206_000009_reminders"
    }
}

#[derive(DeriveIden)]
enum Reminders {
    Table,
    Id,
    UserId,
    MemoryId,
    What,
    TimeOfDay,
    Repeat,
    Timezone,
    NextAt,
    Status,
    LastFiredAt,
    Notice,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Memories {
    Table,
    Id,
}

/// `timestamptz` on PostgreSQL, RFC 3339 UTC text on SQLite (as every other table).
fn timestamp(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().not_null().take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Reminders::Table)
                    .col(ColumnDef::new(Reminders::Id).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(Reminders::UserId).big_integer().not_null())
                    .col(ColumnDef::new(Reminders::MemoryId).big_integer().null())
                    .col(ColumnDef::new(Reminders::What).text().not_null())
                    // Local "HH:MM": every occurrence keeps this wall-clock time.
                    .col(ColumnDef::new(Reminders::TimeOfDay).string().not_null())
                    // NULL: once; else `daily`, `weekly:mon`, `monthly:1`.
                    .col(ColumnDef::new(Reminders::Repeat).string().null())
                    .col(ColumnDef::new(Reminders::Timezone).string().not_null())
                    .col(timestamp(Reminders::NextAt))
                    .col(ColumnDef::new(Reminders::Status).string().not_null())
                    .col(ColumnDef::new(Reminders::LastFiredAt).timestamp_with_time_zone().null())
                    // What to tell the user the next time they write (dropped, undeliverable).
                    .col(ColumnDef::new(Reminders::Notice).text().null())
                    .col(timestamp(Reminders::CreatedAt))
                    .col(timestamp(Reminders::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Reminders::Table, Reminders::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Reminders::Table, Reminders::MemoryId)
                            .to(Memories::Table, Memories::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_reminders_user_next")
                    .table(Reminders::Table)
                    .col(Reminders::UserId)
                    .col(Reminders::Status)
                    .col(Reminders::NextAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_reminders_due")
                    .table(Reminders::Table)
                    .col(Reminders::Status)
                    .col(Reminders::NextAt)
                    .to_owned(),
            )
            .await?;
        // Found for snooze: the user's reminder sent last.
        manager
            .create_index(
                Index::create()
                    .name("idx_reminders_user_fired")
                    .table(Reminders::Table)
                    .col(Reminders::UserId)
                    .col(Reminders::LastFiredAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Reminders::Table).to_owned()).await
    }
}
