//! The domain's nouns: users, inbound messages, memories and search hits.
//! Types are small and plain so that adapters can map rows onto them without ceremony.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::fmt;

/// Our own id of a user (a database key), never shown to other users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub i64);

/// Our own id of an interaction row (one inbound or outbound message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InteractionId(pub i64);

/// Our own id of a memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemoryId(pub i64);

/// A person who writes to the service, known by their WhatsApp id (`WaId` digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub wa_id: String,
    pub phone_number: String,
    pub display_name: Option<String>,
    /// The zone the user chose with `/tz`; `None` means the service default.
    pub timezone: Option<Tz>,
}

impl User {
    /// The zone in which this user's dates and ranges are read.
    pub fn zone_or(&self, default: Tz) -> Tz {
        self.timezone.unwrap_or(default)
    }
}

/// Whether an interaction came from the user or went to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    /// The stored spelling, shared by every adapter.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// What a memory was made from; it decides how it is shown and searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryKind {
    Text,
    Image,
    Audio,
    Video,
    Document,
    Contact,
    Location,
    /// A reminder the user asked for ("remind me …"), kept as a memory so search finds it.
    Reminder,
}

impl MemoryKind {
    /// The stored spelling, shared by every adapter and the REST API.
    pub fn as_str(self) -> &'static str {
        match self {
            MemoryKind::Text => "text",
            MemoryKind::Image => "image",
            MemoryKind::Audio => "audio",
            MemoryKind::Video => "video",
            MemoryKind::Document => "document",
            MemoryKind::Contact => "contact",
            MemoryKind::Location => "location",
            MemoryKind::Reminder => "reminder",
        }
    }

    /// Reads a stored spelling back; unknown spellings are a corrupt row, so `None`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "text" => MemoryKind::Text,
            "image" => MemoryKind::Image,
            "audio" => MemoryKind::Audio,
            "video" => MemoryKind::Video,
            "document" => MemoryKind::Document,
            "contact" => MemoryKind::Contact,
            "location" => MemoryKind::Location,
            "reminder" => MemoryKind::Reminder,
            _ => return None,
        })
    }
}

/// The WhatsApp channel a message came in on, and so the one its replies go out on. One
/// person may write on both; they are one user (keyed by `wa_id`) either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Twilio's WhatsApp API (`/webhook`). The default: work queued before channels
    /// existed was all Twilio's.
    #[default]
    Twilio,
    /// Meta's WhatsApp Cloud API (`/whatsapp/cloud`).
    Meta,
}

impl Channel {
    /// The stored and logged spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Twilio => "twilio",
            Channel::Meta => "meta",
        }
    }
}

/// A message's id at its channel (Twilio's `MessageSid`, Meta's `wamid`): the key that
/// makes redelivery harmless.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageSid(pub String);

impl fmt::Display for MessageSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One media attachment of an inbound message, as Twilio announced it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MediaItem {
    pub url: String,
    pub content_type: String,
}

/// A shared location.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedLocation {
    pub latitude: f64,
    pub longitude: f64,
    pub address: Option<String>,
    pub label: Option<String>,
}

impl SharedLocation {
    /// The searchable text of a location memory: the place's name first, then coordinates.
    pub fn describe(&self) -> String {
        let name = [self.label.as_deref(), self.address.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.trim().is_empty())
            .collect::<Vec<_>>()
            .join(", ");
        let coords = format!("{:.6}, {:.6}", self.latitude, self.longitude);
        if name.is_empty() {
            format!("📍 {coords}")
        } else {
            format!("📍 {name} ({coords})")
        }
    }
}

/// A validated inbound WhatsApp message: everything the core needs, plus the raw form
/// so that fields we do not interpret yet are never lost.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    pub sid: MessageSid,
    /// The sender's WhatsApp id (digits); from `WaId`, else the digits of `From`.
    pub wa_id: String,
    /// The sender's number in E.164 (`+15551234567`).
    pub phone_number: String,
    pub profile_name: Option<String>,
    pub body: String,
    /// Twilio's `MessageType` when given, else inferred (`text`, `image`, `location`, …).
    pub message_type: String,
    pub media: Vec<MediaItem>,
    pub location: Option<SharedLocation>,
    /// Every form field as received, in order, as a JSON object of arrays (Twilio), or
    /// the message object as Meta sent it.
    pub raw_form: serde_json::Value,
    pub received_at: DateTime<Utc>,
    /// Where the message came from, and so where late replies go.
    pub channel: Channel,
}

/// A memory as the core reads it back.
#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    pub id: MemoryId,
    pub user_id: UserId,
    pub kind: MemoryKind,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// A page of memories and how many matched in all, so replies can say "…and N more".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemoryPage {
    pub memories: Vec<Memory>,
    pub total: u64,
}

/// Our own id of a stored media file's record (one per user and content).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaAssetId(pub i64);

/// A media file a user sent, stored once per user and content.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaAsset {
    pub id: MediaAssetId,
    pub user_id: UserId,
    pub sha256: String,
    /// The 64-bit perceptual hash of an image, bit-cast to `i64` as databases store it.
    pub ahash: Option<i64>,
    pub local_path: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub width_px: Option<i32>,
    pub height_px: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// Our own id of a queued job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub i64);

/// Durable work claimed by a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: JobId,
    pub kind: String,
    pub payload: serde_json::Value,
    /// Including the one now running.
    pub attempts: i32,
    pub max_attempts: i32,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// A phone number that prints masked (`+1555•••1234`), for logs.
pub struct MaskedPhone<'a>(pub &'a str);

impl fmt::Display for MaskedPhone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() <= 6 {
            return f.write_str("•••");
        }
        let head: String = chars[..chars.len().min(5).min(chars.len() - 4)].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        write!(f, "{head}•••{tail}")
    }
}

impl MemoryKind {
    /// What a media item of `content_type` becomes.
    pub fn for_content_type(content_type: &str) -> MemoryKind {
        match content_type.split('/').next().unwrap_or_default() {
            "image" => MemoryKind::Image,
            "audio" => MemoryKind::Audio,
            "video" => MemoryKind::Video,
            _ if content_type.contains("vcard") => MemoryKind::Contact,
            _ => MemoryKind::Document,
        }
    }

    /// How a user calls one ("photo", "voice note", …), for replies and descriptions.
    pub fn noun(self) -> &'static str {
        match self {
            MemoryKind::Text => "note",
            MemoryKind::Image => "photo",
            MemoryKind::Audio => "voice note",
            MemoryKind::Video => "video",
            MemoryKind::Document => "document",
            MemoryKind::Contact => "contact",
            MemoryKind::Location => "location",
            MemoryKind::Reminder => "reminder",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_phone_keeps_only_the_country_prefix_and_last_four_digits() {
        assert_eq!(MaskedPhone("+15551234567").to_string(), "+1555•••4567");
        assert_eq!(MaskedPhone("whatsapp:+15551234567").to_string(), "whats•••4567");
        assert_eq!(MaskedPhone("12345").to_string(), "•••");
    }

    #[test]
    fn a_location_is_described_by_its_name_then_coordinates() {
        let loc = SharedLocation {
            latitude: 52.52,
            longitude: 13.405,
            address: Some("Unter den Linden".into()),
            label: Some("Café Einstein".into()),
        };
        assert_eq!(loc.describe(), "📍 Café Einstein, Unter den Linden (52.520000, 13.405000)");
        let bare = SharedLocation { address: None, label: None, ..loc };
        assert_eq!(bare.describe(), "📍 52.520000, 13.405000");
    }

    #[test]
    fn memory_kinds_round_trip_through_their_stored_spelling() {
        for kind in [
            MemoryKind::Text,
            MemoryKind::Image,
            MemoryKind::Audio,
            MemoryKind::Video,
            MemoryKind::Document,
            MemoryKind::Contact,
            MemoryKind::Location,
        ] {
            assert_eq!(MemoryKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(MemoryKind::parse("hologram"), None);
    }
}

/// A memory with everything the REST API shows about it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRecord {
    pub memory: Memory,
    /// The owner's WhatsApp id, as clients name users.
    pub owner_wa_id: String,
    pub labels: Vec<String>,
    /// The message it came from (none for one created through the API).
    pub interaction_id: Option<InteractionId>,
    pub media_asset_id: Option<MediaAssetId>,
    /// The text read from its photo or document (`None`: not read, or there was none).
    pub extracted_text: Option<String>,
    /// Its copy in Mem0; `None` when Mem0 is not configured (or never had it).
    pub mem0: Option<Mem0Status>,
}

/// Where a memory's copy in Mem0 stands. Mem0 is a second home for memories, filled
/// through an outbox: the memory is ours at once, Mem0's copy follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mem0State {
    /// Queued, or being retried while Mem0 is slow or down.
    Pending,
    /// Mem0 has it (possibly as several inferred facts, or none worth keeping).
    Indexed,
    /// Mem0 refused it, or kept failing until the job gave up; `error` says why.
    Failed,
}

impl Mem0State {
    /// The stored form (`mem0_index.state`).
    pub fn as_str(self) -> &'static str {
        match self {
            Mem0State::Pending => "pending",
            Mem0State::Indexed => "indexed",
            Mem0State::Failed => "failed",
        }
    }

    /// The state of a stored form; `None` for one this version does not know.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(Mem0State::Pending),
            "indexed" => Some(Mem0State::Indexed),
            "failed" => Some(Mem0State::Failed),
            _ => None,
        }
    }
}

/// A memory's Mem0 copy: its state, why it failed, and the inference still running for
/// it (polled again by the next attempt instead of adding the memory twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mem0Status {
    pub state: Mem0State,
    pub error: Option<String>,
    pub event_id: Option<String>,
}

/// How many memories are in each Mem0 state, for the analytics summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mem0Counts {
    pub pending: u64,
    pub indexed: u64,
    pub failed: u64,
}

/// One stored WhatsApp message, either way.
#[derive(Debug, Clone, PartialEq)]
pub struct Interaction {
    pub id: InteractionId,
    pub user_id: UserId,
    pub direction: Direction,
    pub message_type: String,
    pub body: String,
    pub twilio_message_sid: Option<String>,
    /// For an outbound message, the inbound one it answers.
    pub in_reply_to: Option<InteractionId>,
    /// Twilio's status of an outbound message sent through the REST API.
    pub delivery_status: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Every field Twilio posted, for an inbound message (shown in exports only).
    pub raw_form: Option<serde_json::Value>,
}

/// Everything held about one user, for an export.
#[derive(Debug, Clone, PartialEq)]
pub struct UserData {
    pub memories: Vec<MemoryRecord>,
    pub interactions: Vec<Interaction>,
    pub media: Vec<MediaAsset>,
}

/// A user as the REST API lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub user: User,
    pub created_at: DateTime<Utc>,
    pub memory_count: u64,
}

/// Where a page of a newest-first list stops: the next page starts after this item.
/// Keyset pagination, so pages stay right while new items arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCursor {
    pub created_at: DateTime<Utc>,
    pub id: i64,
}

impl PageCursor {
    /// What every cursor looks like, for the API schema: the microseconds of the item's
    /// time since 1970, a dash, its id. Every string of this shape is a valid position
    /// (a page simply starts after it), so the schema describes cursors exactly and a
    /// client can never send one that matches the pattern and is refused.
    pub const PATTERN: &'static str = r"^[0-9]{1,16}-[0-9]{1,18}$";

    /// The text form clients pass back (`next_cursor`).
    pub fn encode(self) -> String {
        format!("{}-{}", self.created_at.timestamp_micros().max(0), self.id.max(0))
    }

    /// The cursor a client passed back, or `None` when it does not have the shape of one
    /// ([`Self::PATTERN`]).
    pub fn decode(text: &str) -> Option<Self> {
        let (micros, id) = text.split_once('-')?;
        let digits =
            |part: &str, max: usize| !part.is_empty() && part.len() <= max && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(micros, 16) || !digits(id, 18) {
            return None;
        }
        let created_at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
        Some(Self { created_at, id: id.parse().ok()? })
    }
}

#[cfg(test)]
mod cursor_tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_cursor_round_trips_through_its_text() {
        let cursor = PageCursor { created_at: Utc.with_ymd_and_hms(2026, 12, 6, 10, 0, 0).unwrap(), id: 42 };
        assert_eq!(cursor.encode(), "1796551200000000-42");
        assert_eq!(PageCursor::decode(&cursor.encode()), Some(cursor));
    }

    #[test]
    fn every_string_of_the_documented_shape_decodes_and_nothing_else_does() {
        let pattern = regex::Regex::new(PageCursor::PATTERN).unwrap();
        for text in ["0-0", "9999999999999999-999999999999999999", "1-2"] {
            assert!(pattern.is_match(text) && PageCursor::decode(text).is_some(), "{text}");
        }
        for text in
            ["", "-", "1-", "-1", "1.2", "x-1", "+1-2", "1-+2", "10000000000000000-1", "1-1000000000000000000", "1-2-3"]
        {
            assert!(!pattern.is_match(text) && PageCursor::decode(text).is_none(), "{text}");
        }
    }
}

/// One page of a newest-first list and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<PageCursor>,
}

/// Counts for the analytics summary.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Analytics {
    pub users: u64,
    pub interactions: u64,
    pub memories: u64,
    pub media_assets: u64,
    /// Memory counts by kind (`text`, `image`, …), every kind present.
    pub memories_by_kind: Vec<(String, u64)>,
    /// When the last inbound message arrived.
    pub last_ingest_at: Option<DateTime<Utc>>,
    /// Interactions per UTC day over the last 30 days, oldest first, days with none included.
    pub interactions_per_day: Vec<(chrono::NaiveDate, u64)>,
    /// Memories by Mem0 state; `None` when Mem0 is not configured.
    pub mem0: Option<Mem0Counts>,
}

/// A WhatsApp id given by a client in any of the forms people write it: `15551234567`,
/// `+15551234567` or `whatsapp:+15551234567`. `None` when it is not a plausible number.
pub fn parse_wa_id(text: &str) -> Option<String> {
    let trimmed = text.trim();
    let number = trimmed.strip_prefix("whatsapp:").unwrap_or(trimmed);
    let digits = number.strip_prefix('+').unwrap_or(number);
    let valid = (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| digits.to_string())
}

#[cfg(test)]
mod rest_tests {
    use super::*;

    #[test]
    fn a_wa_id_is_accepted_in_every_form_people_write_it() {
        for form in ["15551234567", "+15551234567", "whatsapp:+15551234567", " 15551234567 "] {
            assert_eq!(parse_wa_id(form).as_deref(), Some("15551234567"), "{form}");
        }
        for bad in ["", "+", "whatsapp:", "abc", "+1 555 123", "1234567890123456", "12345"] {
            assert_eq!(parse_wa_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_cursor_survives_its_round_trip_and_garbage_is_refused() {
        let cursor = PageCursor { created_at: DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap(), id: 42 };
        assert_eq!(PageCursor::decode(&cursor.encode()), Some(cursor));
        for bad in ["", "zz", "abc", "2e2e", &"00".repeat(50)] {
            assert_eq!(PageCursor::decode(bad), None, "{bad}");
        }
    }
}
