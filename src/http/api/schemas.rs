//! The REST API's documented shapes: what clients send and receive. Each maps from the
//! domain's types here, so the domain knows nothing of the wire.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use poem_openapi::types::Example;
use poem_openapi::{Enum, Object};

use super::strict_json::{optional_enum, optional_string, optional_strings};
use poem_openapi::types::ParseResult;

use crate::app::memories::{InferredResult, SearchResult};
use crate::domain::model::{
    Analytics, Direction, Interaction, MediaAsset, Mem0Counts, Mem0State, Mem0Status, MemoryKind, MemoryRecord, Page,
    UserData, UserRecord,
};

fn example_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 9, 30, 0).single().unwrap_or_default()
}

/// What a memory was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum MemoryType {
    Text,
    Image,
    Audio,
    Video,
    Document,
    Contact,
    Location,
    Reminder,
}

impl From<MemoryKind> for MemoryType {
    fn from(kind: MemoryKind) -> Self {
        match kind {
            MemoryKind::Text => MemoryType::Text,
            MemoryKind::Image => MemoryType::Image,
            MemoryKind::Audio => MemoryType::Audio,
            MemoryKind::Video => MemoryType::Video,
            MemoryKind::Document => MemoryType::Document,
            MemoryKind::Contact => MemoryType::Contact,
            MemoryKind::Location => MemoryType::Location,
            MemoryKind::Reminder => MemoryType::Reminder,
        }
    }
}

impl From<MemoryType> for MemoryKind {
    fn from(kind: MemoryType) -> Self {
        match kind {
            MemoryType::Text => MemoryKind::Text,
            MemoryType::Image => MemoryKind::Image,
            MemoryType::Audio => MemoryKind::Audio,
            MemoryType::Video => MemoryKind::Video,
            MemoryType::Document => MemoryKind::Document,
            MemoryType::Contact => MemoryKind::Contact,
            MemoryType::Location => MemoryKind::Location,
            MemoryType::Reminder => MemoryKind::Reminder,
        }
    }
}

// Each request field read strictly, by its name (see `strict_json`).
fn text_field(value: Option<serde_json::Value>) -> ParseResult<Option<String>> {
    optional_string("text", value)
}
fn media_url_field(value: Option<serde_json::Value>) -> ParseResult<Option<String>> {
    optional_string("media_url", value)
}
fn labels_field(value: Option<serde_json::Value>) -> ParseResult<Option<Vec<String>>> {
    optional_strings("labels", value)
}
fn display_name_field(value: Option<serde_json::Value>) -> ParseResult<Option<String>> {
    optional_string("display_name", value)
}
fn memory_type_field(value: Option<serde_json::Value>) -> ParseResult<Option<MemoryType>> {
    optional_enum("memory_type", value)
}
fn timezone_field(value: Option<serde_json::Value>) -> ParseResult<Option<String>> {
    optional_string("timezone", value)
}

/// A memory to save for a user: `text` alone makes a text memory; `media_url` (a Twilio
/// media URL) is downloaded and kept, typed by its bytes, with `text` as its caption.
/// `memory_type` defaults to `text`; any other type needs `media_url`.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct MemoryCreate {
    #[oai(deserialize_with = "memory_type_field")]
    pub memory_type: Option<MemoryType>,
    /// The memory's text (required without `media_url`; a caption with it); when given,
    /// at least one visible character.
    #[oai(validator(max_length = 65536, pattern = r"[^\s\x00-\x1f\x7f-\x9f]"), deserialize_with = "text_field")]
    pub text: Option<String>,
    /// A Twilio media URL to fetch and keep.
    #[oai(validator(max_length = 2048), deserialize_with = "media_url_field")]
    pub media_url: Option<String>,
    /// The client's own tags, at most 20 of at most 64 characters, each with a visible
    /// character; none when left out.
    #[oai(
        validator(max_items = 20, min_length = 1, max_length = 64, pattern = r"[^\s\x00-\x1f\x7f-\x9f]"),
        deserialize_with = "labels_field"
    )]
    pub labels: Option<Vec<String>>,
}

impl Example for MemoryCreate {
    fn example() -> Self {
        MemoryCreate {
            memory_type: Some(MemoryType::Text),
            text: Some("Lea's piano lessons with Mrs. Brandt start in September".into()),
            media_url: None,
            labels: Some(vec!["family".into()]),
        }
    }
}

/// Changes to a memory; fields left out keep their value.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct MemoryUpdate {
    /// New text (it is searchable at once), with at least one visible character.
    #[oai(validator(pattern = r"[^\s\x00-\x1f\x7f-\x9f]"), deserialize_with = "text_field")]
    pub text: Option<String>,
    /// New labels, replacing the old ones; `[]` removes them all. At most 20 of at most
    /// 64 characters, each with a visible character.
    #[oai(
        validator(max_items = 20, min_length = 1, max_length = 64, pattern = r"[^\s\x00-\x1f\x7f-\x9f]"),
        deserialize_with = "labels_field"
    )]
    pub labels: Option<Vec<String>>,
}

impl Example for MemoryUpdate {
    fn example() -> Self {
        MemoryUpdate { text: None, labels: Some(vec!["family".into(), "school".into()]) }
    }
}

/// A saved memory.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct MemoryRead {
    /// The memory's id.
    pub id: i64,
    /// The owner's WhatsApp id (digits).
    pub user_id: String,
    pub memory_type: MemoryType,
    /// The searchable text: the message, a caption, a transcript or a description.
    pub text: String,
    pub labels: Vec<String>,
    /// The WhatsApp message it came from; none for one created through the API.
    pub interaction_id: Option<i64>,
    /// The stored file, for media (`GET /media/{id}`).
    pub media_id: Option<i64>,
    /// The text read from a photo, screenshot or PDF (OCR or the PDF's text layer); absent
    /// until it was read, or when there was none. `text` carries it too, after the caption.
    pub extracted_text: Option<String>,
    /// When it was saved.
    pub created_at: DateTime<Utc>,
    /// Its copy in Mem0; absent when the server has no Mem0 account configured.
    pub mem0: Option<Mem0Read>,
}

/// Where a memory's copy in Mem0 stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Mem0IndexState {
    /// Queued, or retried while Mem0 is slow or down; search finds the memory locally meanwhile.
    Pending,
    /// Mem0 has it.
    Indexed,
    /// Mem0 refused it or kept failing; `error` says why.
    Failed,
}

/// A memory's copy in Mem0: its `state` (`pending`, `indexed` or `failed`) and, when it
/// failed, why.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct Mem0Read {
    // No doc comment: it would wrap the enum's `$ref` in an `allOf`, which generated
    // clients (openapi-python-client) cannot take for a non-object.
    pub state: Mem0IndexState,
    /// Why it failed (state `failed`).
    pub error: Option<String>,
}

impl From<Mem0Status> for Mem0Read {
    fn from(status: Mem0Status) -> Self {
        Mem0Read {
            state: match status.state {
                Mem0State::Pending => Mem0IndexState::Pending,
                Mem0State::Indexed => Mem0IndexState::Indexed,
                Mem0State::Failed => Mem0IndexState::Failed,
            },
            error: status.error,
        }
    }
}

impl Example for Mem0Read {
    fn example() -> Self {
        Mem0Read { state: Mem0IndexState::Indexed, error: None }
    }
}

impl MemoryRead {
    /// The wire form of a record owned by the user with `wa_id`.
    pub fn from_record(record: MemoryRecord) -> Self {
        MemoryRead {
            id: record.memory.id.0,
            user_id: record.owner_wa_id,
            memory_type: record.memory.kind.into(),
            text: record.memory.text,
            labels: record.labels,
            interaction_id: record.interaction_id.map(|i| i.0),
            media_id: record.media_asset_id.map(|m| m.0),
            extracted_text: record.extracted_text,
            created_at: record.memory.created_at,
            mem0: record.mem0.map(Into::into),
        }
    }
}

impl Example for MemoryRead {
    fn example() -> Self {
        MemoryRead {
            id: 42,
            user_id: "15551234567".into(),
            memory_type: MemoryType::Text,
            text: "Lea's piano lessons with Mrs. Brandt start in September".into(),
            labels: vec!["family".into()],
            interaction_id: Some(17),
            media_id: None,
            extracted_text: None,
            created_at: example_time(),
            mem0: Some(Mem0Read::example()),
        }
    }
}

/// A page of memories, newest first.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct MemoryPage {
    pub items: Vec<MemoryRead>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl From<Page<MemoryRecord>> for MemoryPage {
    fn from(page: Page<MemoryRecord>) -> Self {
        MemoryPage {
            items: page.items.into_iter().map(MemoryRead::from_record).collect(),
            next_cursor: page.next.map(|c| c.encode()),
        }
    }
}

impl Example for MemoryPage {
    fn example() -> Self {
        MemoryPage { items: vec![MemoryRead::example()], next_cursor: None }
    }
}

/// Whether a message came from the user or went to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum MessageDirection {
    Inbound,
    Outbound,
}

/// One WhatsApp message, either way.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct InteractionRead {
    pub id: i64,
    pub direction: MessageDirection,
    /// `text`, `image`, `audio`, `location`, … as Twilio described it, or `reply`.
    pub message_type: String,
    pub body: String,
    /// Twilio's message sid (`SM…`/`MM…`), when known.
    pub twilio_message_sid: Option<String>,
    /// For a reply, the message it answers.
    pub in_reply_to: Option<i64>,
    /// Twilio's status of a reply sent through its REST API (`queued`, `failed`, …).
    pub delivery_status: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Interaction> for InteractionRead {
    fn from(interaction: Interaction) -> Self {
        InteractionRead {
            id: interaction.id.0,
            direction: match interaction.direction {
                Direction::Inbound => MessageDirection::Inbound,
                Direction::Outbound => MessageDirection::Outbound,
            },
            message_type: interaction.message_type,
            body: interaction.body,
            twilio_message_sid: interaction.twilio_message_sid,
            in_reply_to: interaction.in_reply_to.map(|i| i.0),
            delivery_status: interaction.delivery_status,
            created_at: interaction.created_at,
        }
    }
}

impl Example for InteractionRead {
    fn example() -> Self {
        InteractionRead {
            id: 17,
            direction: MessageDirection::Inbound,
            message_type: "text".into(),
            body: "Lea's piano lessons with Mrs. Brandt start in September".into(),
            twilio_message_sid: Some("SM0123456789abcdef0123456789abcdef".into()),
            in_reply_to: None,
            delivery_status: None,
            created_at: example_time(),
        }
    }
}

/// A page of messages, newest first.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct InteractionPage {
    pub items: Vec<InteractionRead>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl From<Page<Interaction>> for InteractionPage {
    fn from(page: Page<Interaction>) -> Self {
        InteractionPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next.map(|c| c.encode()),
        }
    }
}

impl Example for InteractionPage {
    fn example() -> Self {
        InteractionPage { items: vec![InteractionRead::example()], next_cursor: None }
    }
}

/// One search result.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SearchHit {
    pub memory: MemoryRead,
    /// Higher is better; comparable only within one result list.
    pub score: f64,
    /// The message the memory came from, when it came from one.
    pub interaction: Option<InteractionRead>,
}

impl From<SearchResult> for SearchHit {
    fn from(result: SearchResult) -> Self {
        SearchHit {
            memory: MemoryRead::from_record(result.memory),
            score: result.score,
            interaction: result.interaction.map(Into::into),
        }
    }
}

/// A fact Mem0 holds about the user that no single memory stands behind: inferred from
/// several of their memories, or added to their Mem0 account by another app.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct InferredFact {
    /// Mem0's id of the fact.
    pub mem0_id: String,
    /// The fact, in Mem0's words.
    pub text: String,
    /// On the same scale as the `score` of the memories found by the same search.
    pub score: f64,
    /// When Mem0 recorded it, if it says.
    pub created_at: Option<DateTime<Utc>>,
}

impl From<InferredResult> for InferredFact {
    fn from(result: InferredResult) -> Self {
        InferredFact {
            mem0_id: result.fact.id,
            text: result.fact.text,
            score: result.score,
            created_at: result.fact.created_at,
        }
    }
}

impl Example for InferredFact {
    fn example() -> Self {
        InferredFact {
            mem0_id: "0f6a3c1e-8d2b-4b8a-9a57-5b8f0c2d1e3f".into(),
            text: "Lea takes piano lessons on Tuesdays".into(),
            score: 0.0161,
            created_at: Some(example_time()),
        }
    }
}

/// A user's memories that match a query, best first.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct SearchResults {
    /// The query as searched.
    pub query: String,
    pub results: Vec<SearchHit>,
    /// With Mem0 configured: facts Mem0 found that no single memory stands behind, best
    /// first; absent when there are none.
    pub inferred: Option<Vec<InferredFact>>,
}

impl Example for SearchResults {
    fn example() -> Self {
        SearchResults {
            query: "piano".into(),
            results: vec![SearchHit {
                memory: MemoryRead::example(),
                score: 0.0325,
                interaction: Some(InteractionRead::example()),
            }],
            inferred: Some(vec![InferredFact::example()]),
        }
    }
}

/// A person who writes to the service.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct UserRead {
    /// WhatsApp id (digits): the `user_id` of every other operation.
    pub user_id: String,
    /// E.164 phone number.
    pub phone_number: String,
    /// WhatsApp profile name, or one set through the API.
    pub display_name: Option<String>,
    /// The IANA zone the user chose; absent means the service default.
    pub timezone: Option<String>,
    pub memory_count: u64,
    /// When the user first wrote (or was created through the API).
    pub created_at: DateTime<Utc>,
}

impl From<UserRecord> for UserRead {
    fn from(record: UserRecord) -> Self {
        UserRead {
            user_id: record.user.wa_id,
            phone_number: record.user.phone_number,
            display_name: record.user.display_name,
            timezone: record.user.timezone.map(|z| z.name().to_string()),
            memory_count: record.memory_count,
            created_at: record.created_at,
        }
    }
}

impl Example for UserRead {
    fn example() -> Self {
        UserRead {
            user_id: "15551234567".into(),
            phone_number: "+15551234567".into(),
            display_name: Some("Ada".into()),
            timezone: Some("Europe/Berlin".into()),
            memory_count: 128,
            created_at: example_time(),
        }
    }
}

/// Changes to a user; fields left out keep their value.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct UserUpdate {
    /// 1 to 100 characters, at least one of them visible.
    #[oai(
        validator(min_length = 1, max_length = 100, pattern = r"[^\s\x00-\x1f\x7f-\x9f]"),
        deserialize_with = "display_name_field"
    )]
    pub display_name: Option<String>,
    /// An IANA zone such as `Europe/Berlin`; `""` returns to the service default.
    #[oai(deserialize_with = "timezone_field")]
    pub timezone: Option<String>,
}

impl Example for UserUpdate {
    fn example() -> Self {
        UserUpdate { display_name: None, timezone: Some("America/New_York".into()) }
    }
}

/// A page of users, newest first.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct UserPage {
    pub items: Vec<UserRead>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl From<Page<UserRecord>> for UserPage {
    fn from(page: Page<UserRecord>) -> Self {
        UserPage { items: page.items.into_iter().map(Into::into).collect(), next_cursor: page.next.map(|c| c.encode()) }
    }
}

impl Example for UserPage {
    fn example() -> Self {
        UserPage { items: vec![UserRead::example()], next_cursor: None }
    }
}

/// How many rows of each kind the service holds.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Totals {
    pub users: u64,
    pub interactions: u64,
    pub memories: u64,
    pub media: u64,
}

/// Memories of one type.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TypeCount {
    pub memory_type: String,
    pub count: u64,
}

/// Memories by the state of their copy in Mem0.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct Mem0Totals {
    /// Queued, or being retried.
    pub pending: u64,
    /// Held by Mem0.
    pub indexed: u64,
    /// Refused by Mem0, or given up after retries.
    pub failed: u64,
}

impl Example for Mem0Totals {
    fn example() -> Self {
        Mem0Totals { pending: 2, indexed: 115, failed: 1 }
    }
}

impl From<Mem0Counts> for Mem0Totals {
    fn from(counts: Mem0Counts) -> Self {
        Mem0Totals { pending: counts.pending, indexed: counts.indexed, failed: counts.failed }
    }
}

/// Messages on one UTC day.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct DayCount {
    pub date: NaiveDate,
    pub count: u64,
}

/// Totals across all users.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct AnalyticsSummary {
    pub totals: Totals,
    /// Every memory type present, with its count.
    pub memories_by_type: Vec<TypeCount>,
    /// When the last message from a user arrived.
    pub last_ingest_at: Option<DateTime<Utc>>,
    /// Messages (both ways) per UTC day for the last 30 days, oldest first.
    pub interactions_per_day: Vec<DayCount>,
    /// Memories by the state of their Mem0 copy; absent when Mem0 is not configured.
    pub mem0: Option<Mem0Totals>,
}

impl From<Analytics> for AnalyticsSummary {
    fn from(a: Analytics) -> Self {
        AnalyticsSummary {
            totals: Totals {
                users: a.users,
                interactions: a.interactions,
                memories: a.memories,
                media: a.media_assets,
            },
            memories_by_type: a
                .memories_by_kind
                .into_iter()
                .map(|(memory_type, count)| TypeCount { memory_type, count })
                .collect(),
            last_ingest_at: a.last_ingest_at,
            interactions_per_day: a
                .interactions_per_day
                .into_iter()
                .map(|(date, count)| DayCount { date, count })
                .collect(),
            mem0: a.mem0.map(Into::into),
        }
    }
}

impl Example for AnalyticsSummary {
    fn example() -> Self {
        AnalyticsSummary {
            totals: Totals { users: 3, interactions: 240, memories: 118, media: 12 },
            memories_by_type: vec![
                TypeCount { memory_type: "image".into(), count: 12 },
                TypeCount { memory_type: "text".into(), count: 106 },
            ],
            last_ingest_at: Some(example_time()),
            interactions_per_day: vec![DayCount { date: example_time().date_naive(), count: 31 }],
            mem0: Some(Mem0Totals::example()),
        }
    }
}

/// A stored media file's facts (its bytes are at `GET /media/{id}`).
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MediaRead {
    pub id: i64,
    /// The type read from the bytes, e.g. `image/jpeg`.
    pub content_type: String,
    pub size_bytes: i64,
    /// SHA-256 of the bytes (lowercase hex).
    pub sha256: String,
    pub width_px: Option<i32>,
    pub height_px: Option<i32>,
    pub created_at: DateTime<Utc>,
}

impl From<MediaAsset> for MediaRead {
    fn from(asset: MediaAsset) -> Self {
        MediaRead {
            id: asset.id.0,
            content_type: asset.content_type,
            size_bytes: asset.size_bytes,
            sha256: asset.sha256,
            width_px: asset.width_px,
            height_px: asset.height_px,
            created_at: asset.created_at,
        }
    }
}

/// One stored message with everything Twilio sent with it.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct InteractionExport {
    #[oai(flatten)]
    pub interaction: InteractionRead,
    /// Every form field Twilio posted (inbound messages), field name to values.
    pub raw_form: Option<serde_json::Value>,
}

/// Everything held about one user.
#[derive(Debug, Clone, Object)]
#[oai(example, skip_serializing_if_is_none)]
pub struct UserExport {
    pub user: UserRead,
    /// Oldest first.
    pub memories: Vec<MemoryRead>,
    /// Every message both ways, oldest first.
    pub interactions: Vec<InteractionExport>,
    pub media: Vec<MediaRead>,
    pub exported_at: DateTime<Utc>,
}

impl UserExport {
    /// The wire form of a user's data, exported at `at`.
    pub fn new(user: UserRecord, data: UserData, at: DateTime<Utc>) -> Self {
        UserExport {
            user: user.into(),
            memories: data.memories.into_iter().map(MemoryRead::from_record).collect(),
            interactions: data
                .interactions
                .into_iter()
                .map(|i| {
                    let raw_form = i.raw_form.clone();
                    InteractionExport { interaction: i.into(), raw_form }
                })
                .collect(),
            media: data.media.into_iter().map(Into::into).collect(),
            exported_at: at,
        }
    }
}

impl Example for UserExport {
    fn example() -> Self {
        UserExport {
            user: UserRead::example(),
            memories: vec![MemoryRead::example()],
            interactions: vec![InteractionExport {
                interaction: InteractionRead::example(),
                raw_form: Some(
                    serde_json::json!({ "Body": ["Lea's piano lessons with Mrs. Brandt start in September"] }),
                ),
            }],
            media: vec![],
            exported_at: example_time(),
        }
    }
}
