//! Recomputes the perceptual hashes an earlier hash function made, from the kept files, so
//! a photo saved before a change of hash function is still found as a near duplicate of
//! the same photo sent after it. The migration that changed the function queued every
//! image it had; the server drains that queue in the background from start, and
//! `whatsapp-memory reindex --hashes` drains it at once.

use std::sync::Arc;

use crate::domain::model::MediaAssetId;
use crate::domain::ports::{transact, MediaFiles, MediaInspector, ReadModel, Repository, RepositoryError};

/// Images re-hashed per pass: enough to amortise the queue read, few enough that a stop
/// mid-way loses little (each image is stored in its own transaction anyway).
const REHASH_BATCH: u32 = 64;

/// What one drain of the queue did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RehashReport {
    /// Images whose hash was recomputed from their file and stored.
    pub rehashed: u64,
    /// Images taken off the queue without a new hash (the file is gone or unreadable);
    /// they keep the hash they had.
    pub skipped: u64,
}

/// Drains the re-hash queue: each image's file is read, hashed by the current function on
/// the blocking pool, and its new hash stored with its removal from the queue.
pub struct ImageRehasher {
    repository: Arc<dyn Repository>,
    reads: Arc<dyn ReadModel>,
    files: Arc<dyn MediaFiles>,
    inspector: Arc<dyn MediaInspector>,
}

impl ImageRehasher {
    /// Wires the re-hasher to its ports.
    pub fn new(
        repository: Arc<dyn Repository>,
        reads: Arc<dyn ReadModel>,
        files: Arc<dyn MediaFiles>,
        inspector: Arc<dyn MediaInspector>,
    ) -> Self {
        Self { repository, reads, files, inspector }
    }

    /// Re-hashes every queued image and returns what it did. Safe to run in several
    /// processes at once: an image done twice gets the same hash twice.
    ///
    /// # Errors
    /// When the database fails; what was stored before stays stored, the rest queued.
    pub async fn run_until_empty(&self) -> Result<RehashReport, RepositoryError> {
        let mut report = RehashReport::default();
        loop {
            let queued = self.reads.image_rehash_queue(REHASH_BATCH).await?;
            if queued.is_empty() {
                return Ok(report);
            }
            for media in queued {
                if self.rehash(media).await? {
                    report.rehashed += 1;
                } else {
                    report.skipped += 1;
                }
            }
        }
    }

    /// Re-hashes one image; `false` when it could not be read and was dropped instead.
    async fn rehash(&self, media: MediaAssetId) -> Result<bool, RepositoryError> {
        let hash = match self.reads.find_media(media).await? {
            Some(asset) => match self.files.read(&asset.local_path).await {
                Ok(bytes) => {
                    let inspector = self.inspector.clone();
                    match crate::telemetry::blocking::spawn_blocking(move || inspector.inspect_image(&bytes)).await {
                        Ok(Ok(facts)) => Some(facts.hash),
                        Ok(Err(reason)) => {
                            tracing::warn!(media = media.0, %reason, "a stored image no longer decodes: its hash stays");
                            None
                        }
                        Err(error) => {
                            tracing::warn!(media = media.0, %error, "hashing a stored image failed: its hash stays");
                            None
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(media = media.0, %error, "a stored image's file cannot be read: its hash stays");
                    None
                }
            },
            // Deleted meanwhile: the queue row went with it (ON DELETE CASCADE).
            None => None,
        };
        let stored = hash.is_some();
        transact(&*self.repository, move |tx| {
            Box::pin(async move {
                match hash {
                    Some(hash) => tx.store_rehashed_image(media, hash).await,
                    None => tx.drop_image_rehash(media).await,
                }
            })
        })
        .await?;
        Ok(stored)
    }
}
