//! The REST use cases: what an app or dashboard can do with a user's memory, the same
//! rules as the chat (the same search, the same time ranges, the same store).

use std::sync::Arc;

use chrono_tz::Tz;

use crate::domain::model::{
    parse_wa_id, Analytics, Interaction, MediaAsset, MediaAssetId, MemoryId, MemoryKind, MemoryRecord, Page,
    PageCursor, User, UserData, UserRecord,
};
use crate::domain::ports::{
    transact, Clock, ExternalMemory, FetchError, MediaFiles, MemoryStoreError, NewMemory, ReadModel, Recalled,
    Repository, RepositoryError,
};
use crate::domain::time_range::parse_time_range;

use super::media::{describe, remember_media, transcription, AudioCheck, KeepError, MediaKeeper, Remembered};
use super::ocr::{ocr_job, OcrJob, TextReading};
use super::outbox::Outbox;
use super::search::MemorySearch;
use super::voice::TranscribeJob;

/// The largest page a client may ask for.
pub const MAX_PAGE_SIZE: u32 = 100;
/// The longest memory text, as for a WhatsApp message body.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Labels per memory, and characters per label.
pub const MAX_LABELS: usize = 20;
pub const MAX_LABEL_CHARS: usize = 64;

/// Why a REST use case could not do what was asked; each maps to one HTTP status.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ApiError {
    /// The input breaks a rule; the message says which and how to fix it.
    #[error("{0}")]
    Invalid(String),
    /// The thing named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The database (or search store) is down for now; the same call may work later.
    #[error("{0}")]
    Unavailable(String),
    /// A bug; the detail is logged, not shown.
    #[error("internal error")]
    Internal,
}

impl From<RepositoryError> for ApiError {
    fn from(error: RepositoryError) -> Self {
        if error.is_retryable() {
            ApiError::Unavailable("the database is busy or unavailable; try again shortly".into())
        } else {
            tracing::error!(%error, "REST use case failed");
            ApiError::Internal
        }
    }
}

impl From<MemoryStoreError> for ApiError {
    fn from(error: MemoryStoreError) -> Self {
        if error.is_retryable() {
            ApiError::Unavailable("search is unavailable for now; try again shortly".into())
        } else {
            tracing::error!(%error, "search failed");
            ApiError::Internal
        }
    }
}

/// A memory to create through the API.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryInput {
    pub kind: MemoryKind,
    pub text: String,
    pub labels: Vec<String>,
}

/// Changes to a memory; `None` keeps what is there.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MemoryChanges {
    pub text: Option<String>,
    pub labels: Option<Vec<String>>,
}

/// Changes to a user; `None` keeps what is there.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserChanges {
    pub display_name: Option<String>,
    /// An IANA zone name; an empty string goes back to the service default.
    pub timezone: Option<String>,
}

/// One search result: the memory, how well it matched, and the message it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    pub memory: MemoryRecord,
    pub score: f64,
    pub interaction: Option<Interaction>,
}

/// A fact Mem0 holds that no single memory of ours stands behind, as a search found it.
#[derive(Debug, Clone, PartialEq)]
pub struct InferredResult {
    pub fact: ExternalMemory,
    /// Comparable with the scores of the memories found by the same search.
    pub score: f64,
}

/// What a search found: memories of ours, and (with Mem0) facts of Mem0's own.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchResults {
    pub results: Vec<SearchResult>,
    pub inferred: Vec<InferredResult>,
}

/// The REST use cases over the repository and the memory store.
pub struct MemoryService {
    repository: Arc<dyn Repository>,
    reads: Arc<dyn ReadModel>,
    files: Arc<dyn MediaFiles>,
    search: MemorySearch,
    clock: Arc<dyn Clock>,
    default_timezone: Tz,
    /// Downloads `media_url`s; `None` refuses them (tests of other use cases).
    media: Option<(MediaKeeper, u32)>,
    /// Whether audio added here is queued for transcription, as a voice note in the chat is.
    transcribe: bool,
    /// Which added photos and PDFs get their text read.
    read_text: TextReading,
    /// Queues the indexing (Mem0, embeddings) of what is saved, changed, deleted or erased.
    outbox: Outbox,
}

/// What creating a memory did.
#[derive(Debug, Clone, PartialEq)]
pub enum Created {
    /// A new memory.
    New(MemoryRecord),
    /// The user already had this media (or a near-identical image): its memory.
    AlreadySaved(MemoryRecord),
}

impl MemoryService {
    /// Wires the use cases to their ports.
    pub fn new(
        repository: Arc<dyn Repository>,
        reads: Arc<dyn ReadModel>,
        files: Arc<dyn MediaFiles>,
        search: MemorySearch,
        clock: Arc<dyn Clock>,
        default_timezone: Tz,
    ) -> Self {
        Self {
            repository,
            reads,
            files,
            search,
            clock,
            default_timezone,
            media: None,
            outbox: Outbox::NONE,
            transcribe: false,
            read_text: TextReading::OFF,
        }
    }

    /// Queues the indexing (Mem0, embeddings) of every memory saved, changed, deleted or
    /// erased here.
    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = outbox;
        self
    }

    /// Lets `create` take a `media_url`, downloaded through `keeper` and de-duplicated as
    /// the chat's media is (images within `near_duplicate_distance` are the same photo).
    pub fn with_media(mut self, keeper: MediaKeeper, near_duplicate_distance: u32) -> Self {
        self.media = Some((keeper, near_duplicate_distance));
        self
    }

    /// Queues audio added through the API for transcription (a transcriber is set up).
    pub fn with_transcription(mut self, transcribe: bool) -> Self {
        self.transcribe = transcribe;
        self
    }

    /// Queues photos and PDFs added through the API for reading their text.
    pub fn with_text_reading(mut self, read_text: TextReading) -> Self {
        self.read_text = read_text;
        self
    }

    /// Saves a media memory from a Twilio media URL, as if the user had sent it: the
    /// bytes decide its type; the same media again gives the memory it already has.
    ///
    /// # Errors
    /// [`ApiError::Invalid`] for a refused, missing or oversized download,
    /// [`ApiError::Unavailable`] when Twilio or the disk fails for now.
    pub async fn create_from_media(
        &self,
        user_id: &str,
        media_url: &str,
        caption: Option<String>,
        labels: Vec<String>,
    ) -> Result<Created, ApiError> {
        let wa_id = wa_id(user_id)?;
        let labels = valid_labels(labels)?;
        let caption = caption.map(|c| c.trim().to_string()).filter(|c| !c.is_empty());
        if caption.as_ref().is_some_and(|c| c.len() > MAX_TEXT_BYTES) {
            return Err(ApiError::Invalid(format!("`text` is longer than {} KiB", MAX_TEXT_BYTES / 1024)));
        }
        let Some((keeper, max_distance)) = self.media.clone() else {
            return Err(ApiError::Unavailable("this server does not download media".into()));
        };
        let file = keeper.fetch_and_keep(media_url, "").await.map_err(keep_error)?;
        let now = self.clock.now();
        let (zone, outbox) = (self.default_timezone, self.outbox);
        let text = describe(&file, caption.as_deref().unwrap_or_default(), now.with_timezone(&zone));
        let (transcribe, read_text) = (self.transcribe, self.read_text);
        let saved_text = text.clone();
        let remembered = transact(&*self.repository, move |tx| {
            Box::pin(async move {
                let user = tx.find_or_create_user(&wa_id, &format!("+{wa_id}"), None, now).await?;
                let remembered =
                    remember_media(tx, user.id, None, &file, text, labels, now, max_distance, outbox).await?;
                if let (Remembered::Saved { memory, .. }, Some(AudioCheck::Playable { .. }), true) =
                    (remembered, &file.audio, transcribe)
                {
                    // Its words replace the description once heard; nobody to reply to.
                    let job = TranscribeJob {
                        user_id: user.id.0,
                        interaction_id: None,
                        memory_id: memory.0,
                        local_path: file.stored.relative_path.clone(),
                        content_type: file.content_type.clone(),
                        caption: caption.clone().unwrap_or_default(),
                        phone: None,
                        channel: Default::default(),
                    };
                    tx.enqueue_job(transcription(&job, now)).await?;
                }
                if let Remembered::Saved { memory, .. } = remembered {
                    if read_text.reads(&file.content_type) {
                        // Its text follows the description once read; nobody to reply to.
                        let job = OcrJob {
                            user_id: user.id.0,
                            interaction_id: None,
                            memory_id: memory.0,
                            local_path: file.stored.relative_path.clone(),
                            content_type: file.content_type.clone(),
                            saved_text,
                            phone: None,
                            channel: Default::default(),
                        };
                        tx.enqueue_job(ocr_job(&job, now)).await?;
                    }
                }
                Ok(remembered)
            })
        })
        .await?;
        let (asset, new) = match remembered {
            Remembered::Saved { asset, .. } => (asset, true),
            Remembered::Duplicate { asset } | Remembered::NearDuplicate { asset, .. } => (asset, false),
        };
        let record = self.reads.find_memory_of_media(asset).await?.ok_or(ApiError::Internal)?;
        Ok(if new { Created::New(record) } else { Created::AlreadySaved(record) })
    }

    /// Saves a memory for a user, creating the user when they have never written: an app
    /// may add memories before the person first messages the number.
    ///
    /// # Errors
    /// [`ApiError::Invalid`] for a bad user id, empty or oversized text or bad labels.
    pub async fn create(&self, user_id: &str, input: MemoryInput) -> Result<MemoryRecord, ApiError> {
        let wa_id = wa_id(user_id)?;
        let text = valid_text(&input.text)?;
        let labels = valid_labels(input.labels)?;
        let now = self.clock.now();
        let (kind, outbox) = (input.kind, self.outbox);
        let id = transact(&*self.repository, move |tx| {
            Box::pin(async move {
                let user = tx.find_or_create_user(&wa_id, &format!("+{wa_id}"), None, now).await?;
                let id = tx
                    .save_memory(NewMemory {
                        user_id: user.id,
                        interaction_id: None,
                        media_asset_id: None,
                        kind,
                        text,
                        labels,
                        created_at: now,
                    })
                    .await?;
                outbox.memory_saved(tx, id, user.id, now).await?;
                Ok(id)
            })
        })
        .await?;
        self.reads.find_memory(id).await?.ok_or(ApiError::Internal)
    }

    /// One memory.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] when there is no such memory.
    pub async fn get(&self, id: i64) -> Result<MemoryRecord, ApiError> {
        self.reads.find_memory(MemoryId(id)).await?.ok_or_else(|| memory_not_found(id))
    }

    /// Changes a memory's text or labels; the search index follows in the same transaction
    /// (and, with Mem0, a new text replaces Mem0's copy through the outbox).
    ///
    /// # Errors
    /// [`ApiError::Invalid`] for nothing to change or bad values, [`ApiError::NotFound`].
    pub async fn update(&self, id: i64, changes: MemoryChanges) -> Result<MemoryRecord, ApiError> {
        if changes.text.is_none() && changes.labels.is_none() {
            return Err(ApiError::Invalid("give `text`, `labels` or both to change".into()));
        }
        let text = changes.text.as_deref().map(valid_text).transpose()?;
        let labels = changes.labels.map(valid_labels).transpose()?;
        // Whose memory it is, for re-indexing a new text.
        let owner = match (&text, self.outbox.queues_work()) {
            (Some(_), true) => self.reads.find_memory(MemoryId(id)).await?.map(|r| r.memory.user_id),
            _ => None,
        };
        let (outbox, now) = (self.outbox, self.clock.now());
        let found = transact(&*self.repository, move |tx| {
            Box::pin(async move {
                let found = tx.update_memory(MemoryId(id), text, labels).await?;
                if let (true, Some(owner)) = (found, owner) {
                    outbox.memory_deleted(tx, MemoryId(id), now).await?;
                    outbox.memory_saved(tx, MemoryId(id), owner, now).await?;
                }
                Ok(found)
            })
        })
        .await?;
        if !found {
            return Err(memory_not_found(id));
        }
        self.get(id).await
    }

    /// Deletes a memory and its search entry.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] when there is no such memory.
    pub async fn delete(&self, id: i64) -> Result<(), ApiError> {
        let (outbox, now) = (self.outbox, self.clock.now());
        let found = transact(&*self.repository, move |tx| {
            Box::pin(async move {
                let found = tx.delete_memory(MemoryId(id)).await?;
                if found {
                    outbox.memory_deleted(tx, MemoryId(id), now).await?;
                }
                Ok(found)
            })
        })
        .await?;
        found.then_some(()).ok_or_else(|| memory_not_found(id))
    }

    /// The user's memories that match `query`, best first, each with its source message;
    /// with Mem0, also the facts Mem0 inferred that no single memory stands behind.
    ///
    /// # Errors
    /// [`ApiError::Invalid`] for an empty query or a bad limit, [`ApiError::NotFound`] for
    /// an unknown user.
    pub async fn search(&self, user_id: &str, query: &str, limit: u32) -> Result<SearchResults, ApiError> {
        let query = query.trim();
        if query.is_empty() {
            return Err(ApiError::Invalid("`query` must contain at least one word".into()));
        }
        let limit = page_size(limit)?;
        let user = self.known_user(user_id).await?;
        let hits = self.search.search(&user, query, limit).await?;
        let ids: Vec<MemoryId> = hits.iter().filter_map(|hit| hit.recalled.memory()).map(|m| m.id).collect();
        let records = self.reads.find_memories(&ids).await?;
        let interaction_ids: Vec<_> = records.iter().filter_map(|r| r.interaction_id).collect();
        let interactions = self.reads.find_interactions(&interaction_ids).await?;
        let mut found = SearchResults::default();
        for hit in hits {
            match hit.recalled {
                Recalled::Memory(memory) => {
                    let Some(memory) = records.iter().find(|r| r.memory.id == memory.id).cloned() else {
                        continue;
                    };
                    let interaction =
                        memory.interaction_id.and_then(|id| interactions.iter().find(|i| i.id == id).cloned());
                    found.results.push(SearchResult { memory, score: hit.score, interaction });
                }
                Recalled::External(fact) => found.inferred.push(InferredResult { fact, score: hit.score }),
            }
        }
        Ok(found)
    }

    /// A page of the user's memories, newest first, optionally within a natural range
    /// ("last week", "today") read in the user's own time zone, as `/list` in the chat.
    ///
    /// # Errors
    /// [`ApiError::Invalid`] for a phrase we do not understand, a bad cursor or limit;
    /// [`ApiError::NotFound`] for an unknown user.
    pub async fn list(
        &self,
        user_id: &str,
        range: Option<&str>,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<MemoryRecord>, ApiError> {
        let limit = page_size(limit)?;
        let after = page_cursor(cursor)?;
        let user = self.known_user(user_id).await?;
        let range = match range.map(str::trim).filter(|r| !r.is_empty()) {
            Some(phrase) => {
                let zone = user.zone_or(self.default_timezone);
                Some(parse_time_range(phrase, self.clock.now(), zone).map_err(|e| ApiError::Invalid(e.to_string()))?)
            }
            None => None,
        };
        Ok(self.reads.memory_page(user.id, range, after, limit).await?)
    }

    /// A page of the user's messages, both ways, newest first.
    ///
    /// # Errors
    /// [`ApiError::Invalid`] for a bad cursor or limit, [`ApiError::NotFound`].
    pub async fn interactions(
        &self,
        user_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page<Interaction>, ApiError> {
        let limit = page_size(limit)?;
        let after = page_cursor(cursor)?;
        let user = self.known_user(user_id).await?;
        Ok(self.reads.interaction_page(user.id, after, limit).await?)
    }

    /// A page of users, newest first.
    ///
    /// # Errors
    /// [`ApiError::Invalid`] for a bad cursor or limit.
    pub async fn users(&self, cursor: Option<&str>, limit: u32) -> Result<Page<UserRecord>, ApiError> {
        let limit = page_size(limit)?;
        let after = page_cursor(cursor)?;
        Ok(self.reads.user_page(after, limit).await?)
    }

    /// The user named, without counting their memories: for use cases that only need
    /// to know who they are.
    async fn known_user(&self, user_id: &str) -> Result<User, ApiError> {
        let wa_id = wa_id(user_id)?;
        self.reads
            .find_user(&wa_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no user with WhatsApp id {wa_id}")))
    }

    /// One user, by WhatsApp id in any usual form.
    ///
    /// # Errors
    /// [`ApiError::Invalid`] for a malformed id, [`ApiError::NotFound`] for an unknown one.
    pub async fn user(&self, user_id: &str) -> Result<UserRecord, ApiError> {
        let wa_id = wa_id(user_id)?;
        self.reads
            .find_user_record(&wa_id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no user with WhatsApp id {wa_id}")))
    }

    /// Changes a user's display name or time zone (as `/tz` does in the chat).
    ///
    /// # Errors
    /// [`ApiError::Invalid`] for nothing to change, an unknown zone or a bad name;
    /// [`ApiError::NotFound`].
    pub async fn update_user(&self, user_id: &str, changes: UserChanges) -> Result<UserRecord, ApiError> {
        if changes.display_name.is_none() && changes.timezone.is_none() {
            return Err(ApiError::Invalid("give `display_name`, `timezone` or both to change".into()));
        }
        let name = match changes.display_name.map(|n| n.trim().to_string()) {
            Some(name) if name.is_empty() || name.chars().count() > 100 => {
                return Err(ApiError::Invalid("`display_name` must be 1 to 100 characters".into()))
            }
            other => other,
        };
        let zone = match changes.timezone.map(|z| z.trim().to_string()) {
            Some(zone) if zone.is_empty() => Some(None),
            Some(zone) => Some(Some(zone.parse::<Tz>().map_err(|_| {
                ApiError::Invalid(format!("`timezone` {zone:?} is not an IANA time zone such as Europe/Berlin"))
            })?)),
            None => None,
        };
        let user = self.known_user(user_id).await?;
        let now = self.clock.now();
        transact(&*self.repository, move |tx| {
            Box::pin(async move {
                if let Some(name) = name {
                    tx.update_display_name(user.id, &name, now).await?;
                }
                if let Some(zone) = zone {
                    tx.set_timezone(user.id, zone.map(|z| z.name()).unwrap_or_default(), now).await?;
                }
                Ok(())
            })
        })
        .await?;
        self.user(user_id).await
    }

    /// Everything held about a user, for them to take away (or for a data request).
    ///
    /// # Errors
    /// [`ApiError::NotFound`] for an unknown user.
    pub async fn export(&self, user_id: &str) -> Result<(UserRecord, UserData), ApiError> {
        let user = self.user(user_id).await?;
        let data = self.reads.export_user(user.user.id).await?;
        Ok((user, data))
    }

    /// Erases a user: their rows and search entries in one transaction, then the stored
    /// files no other user shares. A file that cannot be deleted is logged, not fatal:
    /// nothing refers to it any more.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] for an unknown user.
    pub async fn erase(&self, user_id: &str) -> Result<(), ApiError> {
        let user = self.known_user(user_id).await?;
        let (outbox, now) = (self.outbox, self.clock.now());
        let orphaned = transact(&*self.repository, move |tx| {
            Box::pin(async move {
                let orphaned = tx.erase_user(user.id).await?;
                outbox.user_erased(tx, &user.wa_id, now).await?;
                Ok(orphaned)
            })
        })
        .await?;
        for path in orphaned {
            if let Err(error) = self.files.remove(&path).await {
                tracing::warn!(%error, %path, "could not delete an erased user's media file");
            }
        }
        Ok(())
    }

    /// A stored media file and its record.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] when there is no such media, or its file is gone.
    pub async fn media(&self, id: i64) -> Result<(MediaAsset, Vec<u8>), ApiError> {
        let not_found = || ApiError::NotFound(format!("no media with id {id}"));
        let asset = self.reads.find_media(MediaAssetId(id)).await?.ok_or_else(not_found)?;
        match self.files.read(&asset.local_path).await {
            Ok(bytes) => Ok((asset, bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                tracing::error!(media = id, "a media record's file is missing from storage");
                Err(not_found())
            }
            Err(error) => {
                tracing::error!(media = id, %error, "could not read a media file");
                Err(ApiError::Unavailable("the media file could not be read; try again shortly".into()))
            }
        }
    }

    /// Totals across all users.
    ///
    /// # Errors
    /// [`ApiError::Unavailable`] when the database is down.
    pub async fn analytics(&self) -> Result<Analytics, ApiError> {
        Ok(self.reads.analytics(self.clock.now()).await?)
    }
}

fn keep_error(error: KeepError) -> ApiError {
    match error {
        KeepError::Fetch(FetchError::Refused(reason)) => {
            ApiError::Invalid(format!("`media_url` must be a Twilio media URL: {reason}"))
        }
        KeepError::Fetch(FetchError::TooLarge { limit }) => {
            ApiError::Invalid(format!("the media is larger than {} MB", limit / (1024 * 1024)))
        }
        KeepError::Fetch(FetchError::Gone(reason)) => {
            ApiError::Invalid(format!("Twilio does not have that media: {reason}"))
        }
        // The operator's setting, but nothing the client can retry: a request this server
        // cannot serve, not an outage.
        KeepError::Fetch(FetchError::NotConfigured(reason)) => {
            ApiError::Invalid(format!("this server cannot download media, so `media_url` is not accepted: {reason}"))
        }
        KeepError::Fetch(FetchError::Retryable(reason)) => {
            ApiError::Unavailable(format!("the media could not be downloaded now ({reason}); try again shortly"))
        }
        KeepError::Store(error) => {
            tracing::error!(%error, "could not store a media file");
            ApiError::Unavailable("the media could not be stored now; try again shortly".into())
        }
    }
}

fn memory_not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("no memory with id {id}"))
}

/// The WhatsApp id a REST `user_id` names, or a 400 that says how to write it.
pub(crate) fn wa_id(user_id: &str) -> Result<String, ApiError> {
    parse_wa_id(user_id).ok_or_else(|| {
        ApiError::Invalid(format!(
            "`user_id` {user_id:?} is not a WhatsApp id: give the number's digits, +digits or whatsapp:+digits"
        ))
    })
}

fn valid_text(text: &str) -> Result<String, ApiError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::Invalid("`text` must not be empty".into()));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(ApiError::Invalid(format!("`text` is longer than {} KiB", MAX_TEXT_BYTES / 1024)));
    }
    Ok(text.to_string())
}

fn valid_labels(labels: Vec<String>) -> Result<Vec<String>, ApiError> {
    if labels.len() > MAX_LABELS {
        return Err(ApiError::Invalid(format!("at most {MAX_LABELS} `labels` per memory")));
    }
    let mut clean: Vec<String> = Vec::with_capacity(labels.len());
    for label in labels {
        let label = label.trim().to_string();
        if label.is_empty() || label.chars().count() > MAX_LABEL_CHARS {
            return Err(ApiError::Invalid(format!("each label must be 1 to {MAX_LABEL_CHARS} characters")));
        }
        if !clean.contains(&label) {
            clean.push(label);
        }
    }
    Ok(clean)
}

fn page_size(limit: u32) -> Result<u32, ApiError> {
    if (1..=MAX_PAGE_SIZE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::Invalid(format!("`limit` must be between 1 and {MAX_PAGE_SIZE}")))
    }
}

fn page_cursor(cursor: Option<&str>) -> Result<Option<PageCursor>, ApiError> {
    match cursor.filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(text) => PageCursor::decode(text)
            .map(Some)
            .ok_or_else(|| ApiError::Invalid("`cursor` is not one this API gave out; start again without it".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Memory, User, UserId};
    use crate::domain::ports::{MemoryHit, MockMediaFiles, MockMemoryFinder, MockReadModel, MockRepository};
    use chrono::{TimeZone, Utc};

    struct FixedClock;
    impl Clock for FixedClock {
        fn now(&self) -> chrono::DateTime<Utc> {
            Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
        }
    }

    /// A service whose repository knows one user (Ada, in Berlin).
    fn service(mut reads: MockReadModel, store: MockMemoryFinder) -> MemoryService {
        reads.expect_find_user().returning(|_| Ok(Some(user_record().user)));
        MemoryService::new(
            Arc::new(MockRepository::new()),
            Arc::new(reads),
            Arc::new(MockMediaFiles::new()),
            MemorySearch::local(Arc::new(store)),
            Arc::new(FixedClock),
            chrono_tz::UTC,
        )
    }

    fn user_record() -> UserRecord {
        UserRecord {
            user: User {
                id: UserId(7),
                wa_id: "15551234567".into(),
                phone_number: "+15551234567".into(),
                display_name: None,
                timezone: Some(chrono_tz::Europe::Berlin),
            },
            created_at: FixedClock.now(),
            memory_count: 1,
        }
    }

    fn record(id: i64) -> MemoryRecord {
        MemoryRecord {
            memory: Memory {
                id: MemoryId(id),
                user_id: UserId(7),
                kind: MemoryKind::Text,
                text: "buy milk".into(),
                created_at: FixedClock.now(),
            },
            owner_wa_id: "15551234567".into(),
            labels: vec![],
            interaction_id: None,
            media_asset_id: None,
            extracted_text: None,
            mem0: None,
        }
    }

    #[tokio::test]
    async fn bad_input_is_refused_before_the_database_is_touched() {
        // No expectations: any call to a port would panic.
        let service = service(MockReadModel::new(), MockMemoryFinder::new());
        let text = |t: &str| MemoryInput { kind: MemoryKind::Text, text: t.into(), labels: vec![] };
        assert!(matches!(service.create("nope", text("x")).await, Err(ApiError::Invalid(_))));
        assert!(matches!(service.create("15551234567", text("  ")).await, Err(ApiError::Invalid(_))));
        let huge = "a".repeat(MAX_TEXT_BYTES + 1);
        assert!(matches!(service.create("15551234567", text(&huge)).await, Err(ApiError::Invalid(_))));
        assert!(matches!(service.search("15551234567", " ", 10).await, Err(ApiError::Invalid(_))));
        assert!(matches!(service.list("15551234567", None, None, 0).await, Err(ApiError::Invalid(_))));
        assert!(matches!(service.list("15551234567", None, None, 101).await, Err(ApiError::Invalid(_))));
        assert!(matches!(service.list("15551234567", None, Some("zz"), 10).await, Err(ApiError::Invalid(_))));
        assert!(matches!(service.update(1, MemoryChanges::default()).await, Err(ApiError::Invalid(_))));
    }

    #[tokio::test]
    async fn a_range_is_read_in_the_users_own_zone() {
        let mut repository = MockReadModel::new();
        repository.expect_memory_page().returning(|_, range, _, _| {
            let range = range.expect("a range");
            // "today" in Berlin on 2026-11-26 starts at 23:00 UTC the day before.
            assert_eq!(range.start, Utc.with_ymd_and_hms(2026, 11, 25, 23, 0, 0).unwrap());
            Ok(Page { items: vec![record(1)], next: None })
        });
        let page = service(repository, MockMemoryFinder::new()).list("+15551234567", Some("today"), None, 20).await;
        assert_eq!(page.unwrap().items.len(), 1);
    }

    #[tokio::test]
    async fn an_unknown_range_phrase_is_a_clear_error() {
        let repository = MockReadModel::new();
        let error = service(repository, MockMemoryFinder::new())
            .list("15551234567", Some("whenever"), None, 20)
            .await
            .unwrap_err();
        assert!(matches!(error, ApiError::Invalid(ref m) if m.contains("whenever")), "{error:?}");
    }

    #[tokio::test]
    async fn search_keeps_the_stores_ranking_and_drops_hits_deleted_meanwhile() {
        let mut repository = MockReadModel::new();
        let mut store = MockMemoryFinder::new();
        store.expect_search().returning(|_, _, _| {
            Ok(vec![
                MemoryHit { recalled: Recalled::Memory(record(2).memory), score: 2.0 },
                MemoryHit { recalled: Recalled::Memory(record(9).memory), score: 1.5 },
                MemoryHit { recalled: Recalled::Memory(record(1).memory), score: 1.0 },
            ])
        });
        // Memory 9 was deleted between the search and the read.
        repository.expect_find_memories().returning(|_| Ok(vec![record(1), record(2)]));
        repository.expect_find_interactions().returning(|_| Ok(vec![]));
        let found = service(repository, store).search("15551234567", "milk", 10).await.unwrap();
        let ids: Vec<i64> = found.results.iter().map(|r| r.memory.memory.id.0).collect();
        assert_eq!(ids, vec![2, 1]);
        assert_eq!(found.results[0].score, 2.0);
        assert!(found.inferred.is_empty());
    }

    #[tokio::test]
    async fn an_unavailable_database_is_a_retryable_error_not_a_crash() {
        let mut repository = MockReadModel::new();
        repository.expect_find_user_record().returning(|_| Err(RepositoryError::Unavailable("locked".into())));
        let error = service(repository, MockMemoryFinder::new()).user("15551234567").await.unwrap_err();
        assert!(matches!(error, ApiError::Unavailable(_)));
    }

    #[tokio::test]
    async fn with_mem0_erasing_a_user_queues_mem0s_delete_all_after_the_erase_in_one_transaction() {
        let mut tx = crate::domain::ports::MockUnitOfWork::new();
        let mut order = mockall::Sequence::new();
        tx.expect_erase_user().times(1).in_sequence(&mut order).returning(|_| Ok(vec![]));
        tx.expect_enqueue_job()
            .withf(|job| job.kind == crate::app::mem0::MEM0_ERASE_JOB_KIND && job.payload["owner"] == "15551234567")
            .times(1)
            .in_sequence(&mut order)
            .returning(|_| Ok(()));
        let tx = std::sync::Mutex::new(Some(tx));
        let mut reads = MockReadModel::new();
        reads.expect_find_user().returning(|_| Ok(Some(user_record().user)));
        let mut repository = MockRepository::new();
        repository.expect_run_in_transaction().times(1).returning(move |work| {
            let mut tx = tx.lock().unwrap().take().expect("one transaction");
            futures::executor::block_on(work(&mut tx))
        });
        let service = MemoryService::new(
            Arc::new(repository),
            Arc::new(reads),
            Arc::new(MockMediaFiles::new()),
            MemorySearch::local(Arc::new(MockMemoryFinder::new())),
            Arc::new(FixedClock),
            chrono_tz::UTC,
        )
        .with_outbox(Outbox::MEM0);
        service.erase("+15551234567").await.unwrap();
    }

    #[test]
    fn labels_are_trimmed_deduplicated_and_bounded() {
        assert_eq!(valid_labels(vec![" a ".into(), "a".into(), "b".into()]).unwrap(), vec!["a", "b"]);
        assert!(valid_labels(vec!["".into()]).is_err());
        assert!(valid_labels(vec!["x".repeat(65)]).is_err());
        assert!(valid_labels((0..21).map(|i| i.to_string()).collect()).is_err());
    }
}
