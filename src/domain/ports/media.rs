//! Media: downloading an item, keeping its file, reading what its bytes are, and its
//! records (exact and near duplicates) inside a transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{AudioError, DecodedAudio, RepositoryError};
use crate::domain::model::{InteractionId, MediaAsset, MediaAssetId, UserId};
use crate::domain::perceptual::ImageHash;

/// A stored image's hash, found through the band indexes: enough to measure the
/// distance without reading the asset's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHashCandidate {
    pub asset_id: MediaAssetId,
    pub hash: i64,
}

/// A media file about to be recorded for a user.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMediaAsset {
    pub user_id: UserId,
    pub interaction_id: Option<InteractionId>,
    pub sha256: String,
    pub ahash: Option<i64>,
    /// The hash's bands, for the indexed near-duplicate lookup.
    pub bands: Option<[i64; 6]>,
    pub media_url: Option<String>,
    pub local_path: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub width_px: Option<i32>,
    pub height_px: Option<i32>,
    pub duration_seconds: Option<f64>,
    pub created_at: DateTime<Utc>,
}

/// Media records, inside one transaction (see [`super::UnitOfWork`]).
///
/// # Errors
/// Every method fails with [`RepositoryError`]; the caller aborts the whole unit.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MediaTransaction: Send {
    /// This user's asset with exactly these bytes, if any.
    async fn find_media_by_sha256(&mut self, user: UserId, sha256: &str)
        -> Result<Option<MediaAsset>, RepositoryError>;

    /// The hashes of this user's images sharing at least one hash band: the candidates
    /// among which every near duplicate is (the caller checks the distance). Answered
    /// from the band indexes alone; [`MediaTransaction::find_media_asset`] reads the one chosen.
    async fn find_image_hashes_sharing_a_band(
        &mut self,
        user: UserId,
        bands: [i64; 6],
    ) -> Result<Vec<ImageHashCandidate>, RepositoryError>;

    /// One stored asset by id.
    async fn find_media_asset(&mut self, id: MediaAssetId) -> Result<Option<MediaAsset>, RepositoryError>;

    /// Records a stored media file for a user.
    async fn insert_media_asset(&mut self, asset: NewMediaAsset) -> Result<MediaAssetId, RepositoryError>;

    /// Links media item `index` of an interaction to the asset it became (`saved`,
    /// `duplicate` or `near_duplicate`).
    async fn link_interaction_media(
        &mut self,
        interaction: InteractionId,
        index: i32,
        asset: MediaAssetId,
        outcome: &str,
    ) -> Result<(), RepositoryError>;

    /// Replaces an image's perceptual hash (and its bands) with `hash` and takes it off the
    /// re-hash queue: a hash made by an earlier hash function, recomputed from the file.
    async fn store_rehashed_image(&mut self, media: MediaAssetId, hash: ImageHash) -> Result<(), RepositoryError>;

    /// Takes an image off the re-hash queue without a new hash (its file is gone or no
    /// longer decodes): it keeps the hash it has.
    async fn drop_image_rehash(&mut self, media: MediaAssetId) -> Result<(), RepositoryError>;
}

/// One downloaded media item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMedia {
    pub bytes: Vec<u8>,
    /// The `Content-Type` the server answered with (may be absent or wrong: the bytes
    /// decide what the media is).
    pub content_type: Option<String>,
}

/// Why a media item could not be downloaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL is not on the media host we trust; credentials are never sent there.
    #[error("media URL refused: {0}")]
    Refused(String),
    /// This deployment cannot download media at all (no Twilio credentials): the
    /// operator's setting, not the user's link, is what is missing.
    #[error("media downloads are not configured: {0}")]
    NotConfigured(String),
    /// Larger than the configured maximum.
    #[error("media larger than {limit} bytes")]
    TooLarge { limit: u64 },
    /// 404/410 or another final 4xx: the item is gone.
    #[error("media unavailable: {0}")]
    Gone(String),
    /// A timeout, 429, 5xx or a network failure: try again later.
    #[error("media download failed, try again later: {0}")]
    Retryable(String),
}

impl FetchError {
    /// Whether the same download could succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, FetchError::Retryable(_))
    }
}

/// Downloads one inbound media item, bounded in size and time.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MediaFetcher: Send + Sync {
    /// Downloads `url` (a Twilio `MediaUrlN`).
    ///
    /// # Errors
    /// [`FetchError`], saying whether a retry can help.
    async fn fetch(&self, url: &str) -> Result<FetchedMedia, FetchError>;
}

/// Where a media file was kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMedia {
    /// SHA-256 of the bytes, lowercase hex: the exact-duplicate key.
    pub sha256: String,
    /// Path relative to the storage root.
    pub relative_path: String,
    pub size: u64,
}

/// Keeps media files, content-addressed: the same bytes are one file however many
/// users send them.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MediaFiles: Send + Sync {
    /// Writes `bytes` (atomically) unless the same content is already kept.
    ///
    /// # Errors
    /// When the disk fails; a retry may help.
    async fn store(&self, bytes: &[u8], content_type: &str) -> std::io::Result<StoredMedia>;

    /// The bytes of a stored file, by the path `store` gave.
    ///
    /// # Errors
    /// `NotFound` when the file is gone; other errors when the disk fails.
    async fn read(&self, relative_path: &str) -> std::io::Result<Vec<u8>>;

    /// Deletes a stored file no one refers to any more; a file already gone is fine.
    ///
    /// # Errors
    /// When the disk fails.
    async fn remove(&self, relative_path: &str) -> std::io::Result<()>;
}

/// What the bytes of an image say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageFacts {
    pub width: u32,
    pub height: u32,
    pub hash: ImageHash,
}

/// Reads media bytes: what they really are, and an image's size and perceptual hash.
#[cfg_attr(test, mockall::automock)]
pub trait MediaInspector: Send + Sync {
    /// The content type the bytes show (magic numbers), if recognised.
    fn sniff(&self, bytes: &[u8]) -> Option<&'static str>;

    /// Decodes an image. CPU-heavy: call it on the blocking pool.
    ///
    /// # Errors
    /// A message saying why the bytes are not an image we can read.
    fn inspect_image(&self, bytes: &[u8]) -> Result<ImageFacts, String>;

    /// Decodes audio of `content_type` (the sniffed type) for a speech model, giving up
    /// as soon as it runs past `max_seconds`. CPU-heavy: call it on the blocking pool.
    ///
    /// # Errors
    /// [`AudioError`]: a format we cannot decode, a damaged or silent file, one too long.
    fn decode_audio(&self, bytes: &[u8], content_type: &str, max_seconds: f64) -> Result<DecodedAudio, AudioError>;
}
