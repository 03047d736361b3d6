//! One media item of an inbound message, off the request path: fetch it, keep the file,
//! de-duplicate it for this user (exact bytes, then perceptually for images), save it as
//! a memory and tell the user, all settled in one transaction with the job itself.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::decoding::run_decoder;
use super::jobs::{JobError, JobHandler};
use super::notify::{queue_reply, queue_reply_alone, QueuedReply};
use super::ocr::{ocr_job, OcrJob, TextReading};
use super::outbox::Outbox;
use super::voice::{TranscribeJob, TRANSCRIBE_JOB_KIND};
use crate::domain::model::{Channel, InteractionId, Job, MediaAsset, MediaAssetId, MemoryId, MemoryKind, UserId};
use crate::domain::perceptual::{bands, hamming, ImageHash};
use crate::domain::ports::{
    transact, AudioError, Clock, FetchError, ImageFacts, ImageHashCandidate, JobPriority, JobSettlement, MediaFetcher,
    MediaFiles, MediaInspector, MediaTransaction, NewJob, NewMediaAsset, NewMemory, Repository, StoredMedia,
    UnitOfWork,
};

/// What the webhook queued for one media item.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MediaJob {
    pub user_id: i64,
    pub interaction_id: i64,
    pub index: i32,
    pub url: String,
    pub content_type: String,
    pub caption: String,
    /// Where replies go (E.164).
    pub phone: String,
    /// The channel the media came on, where replies go.
    #[serde(default)]
    pub channel: Channel,
    /// The user's zone when they sent it (`None`: the service default).
    pub timezone: Option<String>,
}

/// Media handling settings.
#[derive(Debug, Clone, Copy)]
pub struct MediaSettings {
    /// Images at most this Hamming distance apart are the same photo (0 turns it off).
    pub near_duplicate_distance: u32,
    pub default_timezone: Tz,
    /// Whether a playable voice note gets a transcription job (a transcriber is set up).
    pub transcribe: bool,
    /// Which saved photos and documents get an `ocr` job that reads their text.
    pub read_text: TextReading,
}

/// Attempts for a transcription: a hosted transcriber that is down gets a few tries.
const TRANSCRIBE_ATTEMPTS: i32 = 5;

/// Downloads a media item and keeps its file: shared by the chat's media jobs and the
/// REST API, so both trust the bytes, store and inspect the same way.
#[derive(Clone)]
pub struct MediaKeeper {
    fetcher: Arc<dyn MediaFetcher>,
    files: Arc<dyn MediaFiles>,
    inspector: Arc<dyn MediaInspector>,
    /// Audio longer than this is kept but not decoded further (nor transcribed).
    max_audio_seconds: f64,
}

/// The longest voice note transcribed unless configured otherwise: ten minutes.
pub const DEFAULT_MAX_AUDIO_SECONDS: f64 = 600.0;

/// Whether a kept audio file can be played (and so transcribed).
#[derive(Debug, Clone, PartialEq)]
pub enum AudioCheck {
    Playable { duration_seconds: f64 },
    Unplayable(AudioError),
}

/// A downloaded and stored media item, ready to be remembered.
#[derive(Debug, Clone)]
pub struct KeptFile {
    pub url: String,
    /// The type read from the bytes (the declared one when the bytes say nothing).
    pub content_type: String,
    pub kind: MemoryKind,
    pub stored: StoredMedia,
    /// Size and perceptual hash, for an image that decodes.
    pub facts: Option<ImageFacts>,
    /// For audio: its duration, or why it does not play.
    pub audio: Option<AudioCheck>,
}

impl KeptFile {
    /// The audio's duration, when it plays.
    pub fn duration_seconds(&self) -> Option<f64> {
        match self.audio {
            Some(AudioCheck::Playable { duration_seconds }) => Some(duration_seconds),
            _ => None,
        }
    }
}

/// Why a media item could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum KeepError {
    #[error("{0}")]
    Fetch(FetchError),
    #[error("cannot store the file: {0}")]
    Store(std::io::Error),
}

impl MediaKeeper {
    /// Wires the keeper to its ports.
    pub fn new(fetcher: Arc<dyn MediaFetcher>, files: Arc<dyn MediaFiles>, inspector: Arc<dyn MediaInspector>) -> Self {
        Self { fetcher, files, inspector, max_audio_seconds: DEFAULT_MAX_AUDIO_SECONDS }
    }

    /// Sets the longest audio that is decoded (and so transcribed).
    pub fn with_max_audio_seconds(mut self, seconds: f64) -> Self {
        self.max_audio_seconds = seconds;
        self
    }

    /// Fetches `url` (through the fetcher's host rules and size cap), stores the bytes
    /// content-addressed, and reads an image's size and hash or an audio file's duration.
    ///
    /// # Errors
    /// [`KeepError`]: a refused or failed download, a disk that fails.
    pub async fn fetch_and_keep(&self, url: &str, declared_type: &str) -> Result<KeptFile, KeepError> {
        let fetched = self.fetcher.fetch(url).await.map_err(KeepError::Fetch)?;
        let declared = declared_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        // Trust the bytes over what was declared.
        let content_type = self.inspector.sniff(&fetched.bytes).map(str::to_string).unwrap_or_else(|| {
            if declared.is_empty() {
                "application/octet-stream".into()
            } else {
                declared
            }
        });
        let kind = MemoryKind::for_content_type(&content_type);
        let stored = self.files.store(&fetched.bytes, &content_type).await.map_err(KeepError::Store)?;
        let audio = if kind == MemoryKind::Audio {
            let (inspector, max) = (self.inspector.clone(), self.max_audio_seconds);
            let (bytes, declared) = (fetched.bytes.clone(), content_type.clone());
            let decoded = run_decoder(move || inspector.decode_audio(&bytes, &declared, max))
                .await
                .unwrap_or_else(|failure| Err(AudioError::Corrupt(failure.to_string())));
            Some(match decoded {
                Ok(audio) => AudioCheck::Playable { duration_seconds: audio.duration_seconds() },
                Err(reason) => {
                    tracing::info!(%reason, "an audio file that does not play is kept as a file");
                    AudioCheck::Unplayable(reason)
                }
            })
        } else {
            None
        };
        let facts = if kind == MemoryKind::Image {
            let inspector = self.inspector.clone();
            let bytes = fetched.bytes;
            match run_decoder(move || inspector.inspect_image(&bytes)).await {
                Ok(Ok(facts)) => Some(facts),
                Ok(Err(reason)) => {
                    tracing::warn!(%reason, "an image that does not decode is kept as a file");
                    None
                }
                Err(failure) => {
                    tracing::warn!(%failure, "an image that does not decode is kept as a file");
                    None
                }
            }
        } else {
            None
        };
        Ok(KeptFile { url: url.to_string(), content_type, kind, stored, facts, audio })
    }
}

/// What remembering a kept file did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Remembered {
    /// A new memory of this kind, over a new asset.
    Saved { kind: MemoryKind, asset: MediaAssetId, memory: MemoryId },
    /// The user already has these exact bytes.
    Duplicate { asset: MediaAssetId },
    /// The user already has a near-identical image, saved at `original_at`.
    NearDuplicate { asset: MediaAssetId, original_at: DateTime<Utc> },
}

/// A kept file as this user's memory, de-duplicated against their own media (exact
/// bytes, then perceptually for images), linked to the message it came with if any; a
/// new memory's Mem0 copy is queued through `outbox`.
///
/// # Errors
/// When the database fails.
#[allow(clippy::too_many_arguments)]
pub async fn remember_media(
    tx: &mut dyn UnitOfWork,
    user: UserId,
    source: Option<(InteractionId, i32)>,
    file: &KeptFile,
    text: String,
    labels: Vec<String>,
    now: DateTime<Utc>,
    max_distance: u32,
    outbox: Outbox,
) -> Result<Remembered, crate::domain::ports::RepositoryError> {
    let (outcome, asset) = if let Some(existing) = tx.find_media_by_sha256(user, &file.stored.sha256).await? {
        ("duplicate", Remembered::Duplicate { asset: existing.id })
    } else if let Some(original) = near_duplicate(tx, user, file.facts.as_ref(), max_distance).await? {
        ("near_duplicate", Remembered::NearDuplicate { asset: original.id, original_at: original.created_at })
    } else {
        let facts = file.facts;
        let asset = tx
            .insert_media_asset(NewMediaAsset {
                user_id: user,
                interaction_id: source.map(|(interaction, _)| interaction),
                sha256: file.stored.sha256.clone(),
                ahash: facts.map(|f| f.hash.to_i64()),
                bands: facts.map(|f| bands(f.hash)),
                media_url: Some(file.url.clone()),
                local_path: file.stored.relative_path.clone(),
                content_type: file.content_type.clone(),
                size_bytes: file.stored.size as i64,
                width_px: facts.map(|f| f.width as i32),
                height_px: facts.map(|f| f.height as i32),
                duration_seconds: file.duration_seconds(),
                created_at: now,
            })
            .await?;
        let memory = tx
            .save_memory(NewMemory {
                user_id: user,
                interaction_id: source.map(|(interaction, _)| interaction),
                media_asset_id: Some(asset),
                kind: file.kind,
                text,
                labels,
                created_at: now,
            })
            .await?;
        outbox.memory_saved(tx, memory, user, now).await?;
        ("saved", Remembered::Saved { kind: file.kind, asset, memory })
    };
    if let Some((interaction, index)) = source {
        let asset_id = match asset {
            Remembered::Saved { asset, .. }
            | Remembered::Duplicate { asset }
            | Remembered::NearDuplicate { asset, .. } => asset,
        };
        tx.link_interaction_media(interaction, index, asset_id, outcome).await?;
    }
    Ok(asset)
}

/// Runs media jobs.
pub struct MediaJobHandler {
    repository: Arc<dyn Repository>,
    keeper: MediaKeeper,
    clock: Arc<dyn Clock>,
    settings: MediaSettings,
    /// Queues the indexing (Mem0, embeddings) of each memory saved.
    outbox: Outbox,
}

impl MediaJobHandler {
    /// Wires the handler to its ports.
    pub fn new(
        repository: Arc<dyn Repository>,
        keeper: MediaKeeper,
        clock: Arc<dyn Clock>,
        settings: MediaSettings,
    ) -> Self {
        Self { repository, keeper, clock, settings, outbox: Outbox::NONE }
    }

    /// Queues the indexing (Mem0, embeddings) of every memory a media job saves.
    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = outbox;
        self
    }
}

fn keep_error(error: KeepError) -> JobError {
    match error {
        KeepError::Fetch(error) => fetch_error(error),
        KeepError::Store(error) => {
            JobError::Retryable { message: format!("cannot store the file: {error}"), retry_after: None }
        }
    }
}

fn fetch_error(error: FetchError) -> JobError {
    match error {
        FetchError::Retryable(message) => JobError::Retryable { message, retry_after: None },
        FetchError::TooLarge { limit } => {
            JobError::Permanent(format!("it is larger than {} MB", (limit as f64 / 1_048_576.0).round()))
        }
        FetchError::Refused(_) => JobError::Permanent("its link is not a Twilio media link of this account".into()),
        FetchError::NotConfigured(_) => {
            JobError::Permanent("this service is not set up to download media yet (Twilio credentials)".into())
        }
        FetchError::Gone(_) => JobError::Permanent("Twilio no longer has it".into()),
    }
}

/// The job that transcribes a saved voice note, written with the memory it will fill in.
pub(crate) fn transcription(job: &TranscribeJob, now: DateTime<Utc>) -> NewJob {
    NewJob {
        kind: TRANSCRIBE_JOB_KIND.into(),
        payload: serde_json::to_value(job).unwrap_or_default(),
        max_attempts: TRANSCRIBE_ATTEMPTS,
        due_at: now,
        // The voice note is saved and its sender waits for the words: not behind new media.
        priority: JobPriority::FollowUp,
    }
}

/// `m:ss` (or `h:mm:ss`), as players show a recording's length.
pub(crate) fn clock_duration(seconds: f64) -> String {
    let total = seconds.round() as u64;
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("{minutes}:{seconds:02}")
    }
}

/// The searchable text of a media memory: the caption, else a short description with
/// the date, so that media is found by caption and listed by date.
pub(crate) fn describe(file: &KeptFile, caption: &str, received: DateTime<Tz>) -> String {
    let caption = caption.trim();
    if !caption.is_empty() {
        return caption.to_string();
    }
    let date = received.format("%Y-%m-%d %H:%M");
    let noun = file.kind.noun();
    let mut noun = noun.to_string();
    if let Some(first) = noun.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    match (&file.facts, file.duration_seconds()) {
        (Some(facts), _) => format!("{noun} {}×{}, received {date}", facts.width, facts.height),
        (None, Some(seconds)) => format!("{noun} {}, received {date}", clock_duration(seconds)),
        (None, None) => format!("{noun} ({} KB), received {date}", file.stored.size.div_ceil(1024)),
    }
}

fn reply_text(outcome: &Remembered, audio: Option<&AudioCheck>, transcribing: bool, zone: Tz) -> String {
    match outcome {
        Remembered::Saved { kind: MemoryKind::Image, .. } => "📷 Photo saved ✅".into(),
        Remembered::Saved { kind: MemoryKind::Audio, .. } => match audio {
            Some(AudioCheck::Unplayable(reason)) => {
                format!("🎙️ Voice note saved ✅, but I could not transcribe it: {reason}.")
            }
            _ if !transcribing => "🎙️ Voice note saved ✅ (transcription is turned off here: kept as audio).".into(),
            _ => "🎙️ Voice note saved ✅".into(),
        },
        Remembered::Saved { kind: MemoryKind::Video, .. } => "🎬 Video saved ✅".into(),
        Remembered::Saved { kind: MemoryKind::Contact, .. } => "👤 Contact saved ✅".into(),
        Remembered::Saved { .. } => "📄 Document saved ✅".into(),
        Remembered::Duplicate { .. } => "This media is already saved ✅".into(),
        Remembered::NearDuplicate { original_at: original, .. } => format!(
            "This photo is already saved ✅ (a near-identical copy from {})",
            original.with_timezone(&zone).format("%Y-%m-%d")
        ),
    }
}

/// The closest of `candidates` within `max_distance` of `hash` (the oldest on a tie).
fn nearest(candidates: &[ImageHashCandidate], hash: ImageHash, max_distance: u32) -> Option<MediaAssetId> {
    candidates
        .iter()
        .map(|c| (c.asset_id, hamming(ImageHash::from_i64(c.hash), hash)))
        .filter(|(_, distance)| *distance <= max_distance)
        .min_by_key(|(id, distance)| (*distance, *id))
        .map(|(id, _)| id)
}

#[async_trait]
impl JobHandler for MediaJobHandler {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let item: MediaJob = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("malformed media job: {e}")))?;
        let file = self.keeper.fetch_and_keep(&item.url, &item.content_type).await.map_err(keep_error)?;
        let now = self.clock.now();
        let zone = item.timezone.as_deref().and_then(|z| z.parse().ok()).unwrap_or(self.settings.default_timezone);
        let text = describe(&file, &item.caption, now.with_timezone(&zone));
        let max_distance = self.settings.near_duplicate_distance;
        let (transcribe, read_text) = (self.settings.transcribe, self.settings.read_text);
        let saved_text = text.clone();
        let (job_id, attempt, outbox) = (job.id, job.attempts, self.outbox);
        transact(&*self.repository, move |tx| {
            Box::pin(async move {
                let user = UserId(item.user_id);
                let source = Some((InteractionId(item.interaction_id), item.index));
                let outcome =
                    remember_media(tx, user, source, &file, text, Vec::new(), now, max_distance, outbox).await?;
                let body = match (outcome, &file.audio) {
                    // A voice note to transcribe: its job tells the user what was heard.
                    (Remembered::Saved { memory, .. }, Some(AudioCheck::Playable { .. })) if transcribe => {
                        let job = TranscribeJob {
                            user_id: item.user_id,
                            interaction_id: Some(item.interaction_id),
                            memory_id: memory.0,
                            local_path: file.stored.relative_path.clone(),
                            content_type: file.content_type.clone(),
                            caption: item.caption.clone(),
                            phone: Some(item.phone.clone()),
                            channel: item.channel,
                        };
                        tx.enqueue_job(transcription(&job, now)).await?;
                        None
                    }
                    // A photo or PDF to read: its job confirms with the text it found.
                    (Remembered::Saved { memory, .. }, None) if read_text.reads(&file.content_type) => {
                        let job = OcrJob {
                            user_id: item.user_id,
                            interaction_id: Some(item.interaction_id),
                            memory_id: memory.0,
                            local_path: file.stored.relative_path.clone(),
                            content_type: file.content_type.clone(),
                            saved_text,
                            phone: Some(item.phone.clone()),
                            channel: item.channel,
                        };
                        tx.enqueue_job(ocr_job(&job, now)).await?;
                        None
                    }
                    (outcome, audio) => Some(reply_text(&outcome, audio.as_ref(), transcribe, zone)),
                };
                if let Some(body) = body {
                    let reply = QueuedReply {
                        user_id: item.user_id,
                        to: item.phone.clone(),
                        body,
                        in_reply_to: Some(item.interaction_id),
                        channel: item.channel,
                    };
                    queue_reply(tx, reply, now).await?;
                }
                tx.settle_job(job_id, attempt, JobSettlement::Done, now).await
            })
        })
        .await?;
        Ok(())
    }

    async fn dead_lettered(&self, job: &Job, error: &str) {
        let Ok(item) = serde_json::from_value::<MediaJob>(job.payload.clone()) else {
            return;
        };
        let noun = MemoryKind::for_content_type(&item.content_type).noun();
        let reply = QueuedReply {
            user_id: item.user_id,
            to: item.phone,
            body: format!("Sorry, I could not save your {noun}: {error}. Please send it again."),
            in_reply_to: Some(item.interaction_id),
            channel: item.channel,
        };
        queue_reply_alone(&*self.repository, reply, self.clock.now()).await;
    }
}

/// This user's image within `max_distance` of the new one, found through the indexed
/// hash bands.
async fn near_duplicate(
    tx: &mut (impl MediaTransaction + ?Sized),
    user: UserId,
    facts: Option<&ImageFacts>,
    max_distance: u32,
) -> Result<Option<MediaAsset>, crate::domain::ports::RepositoryError> {
    match facts {
        Some(facts) => find_near_duplicate(tx, user, facts.hash, max_distance).await,
        None => Ok(None),
    }
}

/// This user's stored image closest to `hash` within `max_distance` (the oldest on a
/// tie): the band indexes give the candidates' hashes, and only the chosen asset's row is
/// read. Public so the benchmark times exactly what a photo's job runs.
///
/// # Errors
/// When the database fails.
pub async fn find_near_duplicate(
    tx: &mut (impl MediaTransaction + ?Sized),
    user: UserId,
    hash: ImageHash,
    max_distance: u32,
) -> Result<Option<MediaAsset>, crate::domain::ports::RepositoryError> {
    if max_distance == 0 {
        return Ok(None);
    }
    let candidates = tx.find_image_hashes_sharing_a_band(user, bands(hash)).await?;
    match nearest(&candidates, hash, max_distance) {
        Some(id) => tx.find_media_asset(id).await,
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ports::{FetchedMedia, MockMediaFetcher, MockMediaFiles, MockMediaInspector, StoredMedia};

    /// A keeper whose download and store succeed, reading the bytes with `inspector`.
    fn keeper(inspector: MockMediaInspector) -> MediaKeeper {
        let mut fetcher = MockMediaFetcher::new();
        fetcher.expect_fetch().returning(|_| Ok(FetchedMedia { bytes: vec![7; 64], content_type: None }));
        let mut files = MockMediaFiles::new();
        files.expect_store().returning(|bytes, _| {
            Ok(StoredMedia { sha256: "0".repeat(64), relative_path: "00/file".into(), size: bytes.len() as u64 })
        });
        MediaKeeper::new(Arc::new(fetcher), Arc::new(files), Arc::new(inspector))
    }

    /// Before, a panic inside a decoder became "the file could not be read: task 12
    /// panicked …" and the job failed without keeping the memory.
    #[tokio::test]
    async fn an_audio_decoder_panic_keeps_the_note_as_audio_with_a_clear_reason() {
        let mut inspector = MockMediaInspector::new();
        inspector.expect_sniff().returning(|_| Some("audio/ogg"));
        inspector.expect_decode_audio().returning(|_, _, _| panic!("index out of bounds: the len is 0"));
        let kept = keeper(inspector).fetch_and_keep("https://api.twilio.com/media", "audio/ogg").await.unwrap();
        match kept.audio {
            Some(AudioCheck::Unplayable(reason)) => {
                assert_eq!(reason.to_string(), "the file is damaged (the decoder could not read it)")
            }
            other => panic!("expected an unplayable note, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_image_decoder_panic_keeps_the_photo_as_a_file() {
        let mut inspector = MockMediaInspector::new();
        inspector.expect_sniff().returning(|_| Some("image/png"));
        inspector.expect_inspect_image().returning(|_| panic!("attempt to multiply with overflow"));
        let kept = keeper(inspector).fetch_and_keep("https://api.twilio.com/media", "image/png").await.unwrap();
        assert_eq!(kept.kind, MemoryKind::Image);
        assert!(kept.facts.is_none());
    }
}
