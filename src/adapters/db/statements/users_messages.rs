//! Users and the messages they exchange (`users`, `interactions`): the statements of
//! [`UserTransaction`](crate::domain::ports::UserTransaction) and the row of a user.

use super::{Dialectal, Sql};
use crate::adapters::db::row::Row;
use crate::domain::model::{User, UserId};
use crate::domain::ports::RepositoryError;

/// Creates a user (`$1` WhatsApp id, `$2` phone, `$3` name, `$4` now) unless one with
/// that WhatsApp id exists: the unique index decides, not a read first.
pub(crate) static USER_INSERT: Sql = Sql::new(
    "INSERT INTO users (wa_id, phone_number, display_name, timezone, created_at, updated_at) \
     VALUES ($1, $2, $3, NULL, $4, $4) ON CONFLICT (wa_id) DO NOTHING",
);

/// The user with a WhatsApp id (`$1`), in the columns [`user_from_row`] reads.
pub(crate) static USER_BY_WA_ID: Sql =
    Sql::new("SELECT id, wa_id, phone_number, display_name, timezone FROM users WHERE wa_id = $1");

/// A user of [`USER_BY_WA_ID`]; a time zone that no longer parses is treated as none.
///
/// # Errors
/// When a column is missing or of the wrong type.
pub(crate) fn user_from_row(row: &impl Row) -> Result<User, RepositoryError> {
    let timezone: Option<String> = row.value("timezone")?;
    Ok(User {
        id: UserId(row.value("id")?),
        wa_id: row.value("wa_id")?,
        phone_number: row.value("phone_number")?,
        display_name: row.value("display_name")?,
        timezone: timezone.and_then(|z| z.parse().ok()),
    })
}

/// Renames a user (`$1` user, `$2` name, `$3` now).
pub(crate) static USER_DISPLAY_NAME_UPDATE: Sql =
    Sql::new("UPDATE users SET display_name = $2, updated_at = $3 WHERE id = $1");

/// Sets a user's time zone (`$1` user, `$2` zone, `$3` now).
pub(crate) static USER_TIMEZONE_UPDATE: Sql = Sql::new("UPDATE users SET timezone = $2, updated_at = $3 WHERE id = $1");

/// Records an inbound message (`$1` user, `$2` sid, `$3` type, `$4` body, `$5` the raw
/// form as JSON text, `$6` when received) and returns its id, or no row when that sid
/// was recorded before: the unique index on the sid is what makes delivery idempotent.
pub(crate) static INBOUND_INSERT: Sql = Sql::new(
    "INSERT INTO interactions (user_id, twilio_message_sid, direction, message_type, body, raw_form, occurred_at) \
     VALUES ($1, $2, 'inbound', $3, $4, $5::jsonb, $6) ON CONFLICT (twilio_message_sid) DO NOTHING RETURNING id",
);

/// The reply already given to a sid (`$1`) and who sent it.
pub(crate) static INBOUND_BY_SID: Sql =
    Sql::new("SELECT reply, user_id FROM interactions WHERE twilio_message_sid = $1");

/// Records the reply (`$2`) to an inbound message (`$1`).
pub(crate) static REPLY_SET: Sql = Sql::new("UPDATE interactions SET reply = $2 WHERE id = $1");

/// Records the outbound message of a reply (`$1` user, `$2` reply, `$3` the inbound
/// message, `$4` now). SQLite runs it after [`REPLY_SET`]; PostgreSQL runs both as
/// [`REPLY_WITH_OUTBOUND_POSTGRES`].
pub(crate) static OUTBOUND_REPLY_INSERT: Sql = Sql::new(
    "INSERT INTO interactions (user_id, twilio_message_sid, direction, message_type, body, in_reply_to, occurred_at) \
     VALUES ($1, NULL, 'outbound', 'text', $2, $3, $4)",
);

/// PostgreSQL only: [`REPLY_SET`] and [`OUTBOUND_REPLY_INSERT`] (same parameters as the
/// latter) in one statement, so one round trip on the writer's connection, which runs a
/// batch's statements one after another. SQLite cannot put an UPDATE inside WITH, and on
/// its in-process connection a second statement costs no round trip.
pub(crate) static REPLY_WITH_OUTBOUND_POSTGRES: Sql = Sql::new(
    "WITH answered AS (UPDATE interactions SET reply = $2 WHERE id = $3) \
     INSERT INTO interactions (user_id, twilio_message_sid, direction, message_type, body, in_reply_to, occurred_at) \
     VALUES ($1, NULL, 'outbound', 'text', $2, $3, $4)",
);

/// PostgreSQL only: the texts from known senders waiting in the writer, and everything
/// each stores, in one statement (see `Repository::save_text_at_once`): per text
/// [`INBOUND_INSERT`] with its reply, [`MEMORY_INSERT`](super::memories::MEMORY_INSERT),
/// [`EMBED_QUEUE_INSERT`](super::indexes::EMBED_QUEUE_INSERT) when `queue`, and
/// [`OUTBOUND_REPLY_INSERT`] when the reply is not empty. `$1` is a JSON array of the
/// texts, each an object: `wa_id`, `name` (profile name or null), `sid`, `kind`, `body`,
/// `raw` (the raw form), `at` (received), `text` (the memory's), `reply`, `queue`,
/// `now`. Returns `sid`, `id` (the inbound row) and `user_id` of each text stored.
///
/// Stores nothing for a text, and returns no row for it, when its sender is unknown,
/// shows another profile name, has reminder notices waiting, or its sid is stored
/// already: each is a case the step by step path handles. The caller passes each sid
/// once. The sub-statements see one snapshot and cannot see each other's rows, so each
/// takes what it needs from the RETURNING of the one before; foreign keys are checked at
/// the end of the statement, when all rows exist. SQLite has no data-modifying WITH, and
/// there separate statements cost no round trip.
pub(crate) static TEXTS_SAVE_POSTGRES: Sql = Sql::new(
    "WITH given AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS t(wa_id text, name text, sid text, kind text, \
       body text, raw jsonb, at timestamptz, text text, reply text, queue boolean, now timestamptz)), \
     sender AS (SELECT u.id AS user_id, given.* FROM given JOIN users u ON u.wa_id = given.wa_id \
       AND (given.name IS NULL OR u.display_name = given.name) \
       AND NOT EXISTS (SELECT 1 FROM reminders r WHERE r.user_id = u.id AND r.notice IS NOT NULL)), \
     inbound AS (INSERT INTO interactions \
       (user_id, twilio_message_sid, direction, message_type, body, raw_form, occurred_at, reply) \
       SELECT user_id, sid, 'inbound', kind, body, raw, at, reply FROM sender \
       ON CONFLICT (twilio_message_sid) DO NOTHING RETURNING id, user_id, twilio_message_sid), \
     saved AS (SELECT inbound.id AS inbound_id, inbound.user_id, sender.sid, sender.text, sender.reply, \
       sender.queue, sender.now FROM inbound JOIN sender ON sender.sid = inbound.twilio_message_sid), \
     memory AS (INSERT INTO memories (user_id, interaction_id, media_asset_id, kind, text, created_at, labels) \
       SELECT user_id, inbound_id, NULL, 'text', text, now, NULL FROM saved RETURNING id, interaction_id), \
     queued AS (INSERT INTO embed_queue (memory_id) SELECT memory.id FROM memory \
       JOIN saved ON saved.inbound_id = memory.interaction_id WHERE saved.queue ON CONFLICT DO NOTHING), \
     answer AS (INSERT INTO interactions \
       (user_id, twilio_message_sid, direction, message_type, body, in_reply_to, occurred_at) \
       SELECT user_id, NULL, 'outbound', 'text', reply, inbound_id, now FROM saved WHERE reply <> '') \
     SELECT saved.sid, saved.inbound_id AS id, saved.user_id FROM saved \
     JOIN memory ON memory.interaction_id = saved.inbound_id",
);

/// Records a message sent outside a reply (`$1` user, `$2` sid, `$3` body, `$4` in reply
/// to, `$5` when, `$6` status, `$7` error code, `$8` error message).
pub(crate) static DELIVERY_INSERT: Sql = Sql::new(
    "INSERT INTO interactions (user_id, twilio_message_sid, direction, message_type, body, in_reply_to, \
     occurred_at, delivery_status, error_code, error_message) \
     VALUES ($1, $2, 'outbound', 'text', $3, $4, $5, $6, $7, $8)",
);

/// A delivery status callback (`$1` sid, `$2` status, `$3` error code, `$4` error
/// message). A late "delivered" never overwrites a "read" or "failed" that arrived first.
pub(crate) static DELIVERY_STATUS_UPDATE: Sql = Sql::new(
    "UPDATE interactions SET delivery_status = $2, error_code = COALESCE($3, error_code), \
     error_message = COALESCE($4, error_message) \
     WHERE twilio_message_sid = $1 AND direction = 'outbound' \
     AND NOT (delivery_status IN ('read', 'failed') AND $2 IN ('sent', 'delivered')) \
     AND NOT (delivery_status = 'delivered' AND $2 = 'sent')",
);

/// The media files of a user (`$1`) that no other user's records point to: the files
/// erasing them may delete.
pub(crate) static ORPHANED_MEDIA_PATHS: Sql = Sql::new(
    "SELECT DISTINCT local_path FROM media_assets WHERE user_id = $1 \
     AND local_path NOT IN (SELECT local_path FROM media_assets WHERE user_id <> $1)",
);

/// Removes the queued and dead jobs of a user (`$1`) being erased: they would act on a
/// user who no longer exists. The user id sits inside the JSON payload, read by each
/// engine's own JSON operator (SQLite's `json_extract` returns an integer already;
/// PostgreSQL's `->>` returns text, cast to compare with the bigint).
pub(crate) static QUEUED_JOBS_OF_USER_DELETE: Dialectal = Dialectal::new(
    "DELETE FROM jobs WHERE state IN ('queued', 'dead') AND json_extract(payload, '$.user_id') = $1",
    "DELETE FROM jobs WHERE state IN ('queued', 'dead') AND (payload->>'user_id')::bigint = $1",
);

/// Removes a user's (`$1`) Mem0 links; Mem0 bookkeeping has no foreign key (see the
/// mem0 migration), so it does not go with the user by itself.
pub(crate) static MEM0_LINKS_OF_USER_DELETE: Sql = Sql::new("DELETE FROM mem0_links WHERE user_id = $1");

/// Removes a user's (`$1`) Mem0 index rows, as [`MEM0_LINKS_OF_USER_DELETE`].
pub(crate) static MEM0_INDEX_OF_USER_DELETE: Sql = Sql::new("DELETE FROM mem0_index WHERE user_id = $1");

/// Removes a user (`$1`); interactions, memories (and their full-text rows) and media
/// records go with them through ON DELETE CASCADE.
pub(crate) static USER_DELETE: Sql = Sql::new("DELETE FROM users WHERE id = $1");
