//! The `users` table.

use sea_orm::entity::prelude::*;

/// One WhatsApp user.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(unique)]
    pub wa_id: String,
    pub phone_number: String,
    pub display_name: Option<String>,
    pub timezone: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::memories::Entity")]
    Memories,
}

impl Related<super::memories::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Memories.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

impl From<Model> for crate::domain::model::User {
    fn from(row: Model) -> Self {
        Self {
            id: crate::domain::model::UserId(row.id),
            wa_id: row.wa_id,
            phone_number: row.phone_number,
            display_name: row.display_name,
            // A zone name this build does not know falls back to the default.
            timezone: row.timezone.and_then(|z| z.parse().ok()),
        }
    }
}
