//! The `interactions` table: every WhatsApp message, either way.

use sea_orm::entity::prelude::*;

use crate::domain::model::{Direction, Interaction, InteractionId, UserId};

/// One stored message (the raw form stays in the table; the API does not show it).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "interactions")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub user_id: i64,
    pub twilio_message_sid: Option<String>,
    pub direction: String,
    pub message_type: String,
    pub body: String,
    pub in_reply_to: Option<i64>,
    pub delivery_status: Option<String>,
    pub raw_form: Option<Json>,
    pub occurred_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

impl From<Model> for Interaction {
    fn from(row: Model) -> Self {
        Self {
            id: InteractionId(row.id),
            user_id: UserId(row.user_id),
            direction: if row.direction == Direction::Outbound.as_str() {
                Direction::Outbound
            } else {
                Direction::Inbound
            },
            message_type: row.message_type,
            body: row.body,
            twilio_message_sid: row.twilio_message_sid,
            in_reply_to: row.in_reply_to.map(InteractionId),
            delivery_status: row.delivery_status,
            created_at: row.occurred_at,
            // SQLite hands back the stored JSON text as a string.
            raw_form: match row.raw_form {
                Some(serde_json::Value::String(text)) => serde_json::from_str(&text).ok(),
                other => other,
            },
        }
    }
}
