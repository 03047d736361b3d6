//! A mock of the whole [`UnitOfWork`], for the tests of use cases whose transaction
//! touches several concerns. mockall cannot derive a mock of a supertrait, so the
//! narrow traits' methods are declared to it once more here; the compiler checks them
//! against the traits.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::*;
use crate::domain::embedding::QuantizedEmbedding;
use crate::domain::model::{
    InboundMessage, InteractionId, Job, JobId, MediaAsset, MediaAssetId, Memory, MemoryId, User, UserId,
};
use crate::domain::perceptual::ImageHash;

mockall::mock! {
    /// Every transaction trait at once, for use cases that touch several.
    pub UnitOfWork {}
    #[async_trait]
    impl UserTransaction for UnitOfWork {
        async fn find_or_create_user(
            &mut self,
            wa_id: &str,
            phone_number: &str,
            display_name: Option<String>,
            now: DateTime<Utc>,
        ) -> Result<User, RepositoryError>;
        async fn update_display_name(
            &mut self,
            user: UserId,
            name: &str,
            now: DateTime<Utc>,
        ) -> Result<(), RepositoryError>;
        async fn set_timezone(&mut self, user: UserId, zone: &str, now: DateTime<Utc>) -> Result<(), RepositoryError>;
        async fn insert_inbound(
            &mut self,
            user: UserId,
            message: &InboundMessage,
        ) -> Result<InboundInsert, RepositoryError>;
        async fn record_reply(
            &mut self,
            user: UserId,
            inbound: InteractionId,
            reply: &str,
            now: DateTime<Utc>,
        ) -> Result<(), RepositoryError>;
        async fn record_delivery(&mut self, delivery: Delivery) -> Result<(), RepositoryError>;
        async fn update_delivery_status(&mut self, update: DeliveryStatus) -> Result<bool, RepositoryError>;
        async fn erase_user(&mut self, user: UserId) -> Result<Vec<String>, RepositoryError>;
    }
    #[async_trait]
    impl MemoryTransaction for UnitOfWork {
        async fn save_memory(&mut self, memory: NewMemory) -> Result<MemoryId, RepositoryError>;
        async fn delete_memory(&mut self, memory: MemoryId) -> Result<bool, RepositoryError>;
        async fn update_memory(
            &mut self,
            memory: MemoryId,
            text: Option<String>,
            labels: Option<Vec<String>>,
        ) -> Result<bool, RepositoryError>;
        async fn record_extracted_text(
            &mut self,
            memory: MemoryId,
            extracted: &str,
            saved_text: &str,
            text: &str,
        ) -> Result<bool, RepositoryError>;
        async fn delete_last_memory(&mut self, user: UserId) -> Result<Option<Memory>, RepositoryError>;
        async fn memory_text(&mut self, memory: MemoryId) -> Result<Option<String>, RepositoryError>;
    }
    #[async_trait]
    impl JobTransaction for UnitOfWork {
        async fn enqueue_job(&mut self, job: NewJob) -> Result<(), RepositoryError>;
        async fn claim_job(
            &mut self,
            now: DateTime<Utc>,
            lease_until: DateTime<Utc>,
        ) -> Result<Option<Job>, RepositoryError>;
        async fn settle_job(
            &mut self,
            job: JobId,
            attempt: i32,
            settlement: JobSettlement,
            now: DateTime<Utc>,
        ) -> Result<(), RepositoryError>;
        async fn renew_lease(
            &mut self,
            job: JobId,
            attempt: i32,
            lease_until: DateTime<Utc>,
        ) -> Result<bool, RepositoryError>;
    }
    #[async_trait]
    impl MediaTransaction for UnitOfWork {
        async fn find_media_by_sha256(&mut self, user: UserId, sha256: &str)
            -> Result<Option<MediaAsset>, RepositoryError>;
        async fn find_image_hashes_sharing_a_band(
            &mut self,
            user: UserId,
            bands: [i64; 6],
        ) -> Result<Vec<ImageHashCandidate>, RepositoryError>;
        async fn find_media_asset(&mut self, id: MediaAssetId) -> Result<Option<MediaAsset>, RepositoryError>;
        async fn insert_media_asset(&mut self, asset: NewMediaAsset) -> Result<MediaAssetId, RepositoryError>;
        async fn link_interaction_media(
            &mut self,
            interaction: InteractionId,
            index: i32,
            asset: MediaAssetId,
            outcome: &str,
        ) -> Result<(), RepositoryError>;
        async fn store_rehashed_image(&mut self, media: MediaAssetId, hash: ImageHash) -> Result<(), RepositoryError>;
        async fn drop_image_rehash(&mut self, media: MediaAssetId) -> Result<(), RepositoryError>;
    }
    #[async_trait]
    impl IndexTransaction for UnitOfWork {
        async fn mem0_copies(&mut self, memory: MemoryId) -> Result<Mem0Copies, RepositoryError>;
        async fn update_mem0_index(
            &mut self,
            memory: MemoryId,
            change: Mem0IndexChange,
            now: DateTime<Utc>,
        ) -> Result<bool, RepositoryError>;
        async fn queue_embedding(&mut self, memory: MemoryId) -> Result<(), RepositoryError>;
        async fn queue_missing_embeddings(&mut self, model: &str) -> Result<u64, RepositoryError>;
        async fn dequeue_embeddings(&mut self, memories: &[MemoryId]) -> Result<(), RepositoryError>;
        async fn save_embedding(
            &mut self,
            memory: MemoryId,
            embedded_text: &str,
            model: &str,
            vector: &QuantizedEmbedding,
        ) -> Result<bool, RepositoryError>;
    }
    #[async_trait]
    impl ReminderTransaction for UnitOfWork {
        async fn insert_reminder(&mut self, reminder: NewReminder) -> Result<ReminderId, RepositoryError>;
        async fn find_reminder(&mut self, id: ReminderId) -> Result<Option<Reminder>, RepositoryError>;
        async fn pending_reminders(&mut self, user: UserId, limit: u32) -> Result<Vec<Reminder>, RepositoryError>;
        async fn update_reminder(&mut self, id: ReminderId, update: ReminderUpdate) -> Result<bool, RepositoryError>;
        async fn recently_fired_reminder(
            &mut self,
            user: UserId,
            since: DateTime<Utc>,
        ) -> Result<Option<Reminder>, RepositoryError>;
        async fn take_reminder_notices(&mut self, user: UserId) -> Result<Vec<String>, RepositoryError>;
        async fn last_inbound_at(&mut self, user: UserId) -> Result<Option<DateTime<Utc>>, RepositoryError>;
    }
}
