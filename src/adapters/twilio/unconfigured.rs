//! The media fetcher used when Twilio credentials are not configured: it refuses every
//! download with a message that says what to set, instead of failing obscurely.

use async_trait::async_trait;

use crate::domain::ports::{FetchError, FetchedMedia, MediaFetcher};

/// Refuses every download: media needs `TWILIO_ACCOUNT_SID` and `TWILIO_AUTH_TOKEN`.
pub struct UnconfiguredFetcher;

#[async_trait]
impl MediaFetcher for UnconfiguredFetcher {
    async fn fetch(&self, _url: &str) -> Result<FetchedMedia, FetchError> {
        Err(FetchError::NotConfigured("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are needed to download media".into()))
    }
}
