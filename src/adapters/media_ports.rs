//! The media ports over the file store and the image and audio decoders: the use case
//! sees `MediaFiles` and `MediaInspector`, never the `image` crate, symphonia or the file
//! system.

use async_trait::async_trait;

use super::audio::decode_for_speech;
use super::imaging::{inspect_image, sniff_content_type};
use super::storage::{extension_for, MediaStorage};
use crate::domain::ports::{AudioError, DecodedAudio, ImageFacts, MediaFiles, MediaInspector, StoredMedia};

#[async_trait]
impl MediaFiles for MediaStorage {
    async fn store(&self, bytes: &[u8], content_type: &str) -> std::io::Result<StoredMedia> {
        let stored = MediaStorage::store(self, bytes, extension_for(content_type)).await?;
        Ok(StoredMedia { sha256: stored.sha256, relative_path: stored.relative_path, size: stored.size })
    }

    async fn read(&self, relative_path: &str) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(self.absolute_path(relative_path)?).await
    }

    async fn remove(&self, relative_path: &str) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.absolute_path(relative_path)?).await {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
            _ => Ok(()),
        }
    }
}

/// Reads media bytes with magic numbers, the `image` crate and the audio decoders.
pub struct ContentInspector;

impl MediaInspector for ContentInspector {
    fn sniff(&self, bytes: &[u8]) -> Option<&'static str> {
        sniff_content_type(bytes)
    }

    fn inspect_image(&self, bytes: &[u8]) -> Result<ImageFacts, String> {
        let info = inspect_image(bytes).map_err(|e| e.to_string())?;
        Ok(ImageFacts { width: info.width, height: info.height, hash: info.hash })
    }

    fn decode_audio(&self, bytes: &[u8], content_type: &str, max_seconds: f64) -> Result<DecodedAudio, AudioError> {
        decode_for_speech(bytes, content_type, max_seconds)
    }
}
