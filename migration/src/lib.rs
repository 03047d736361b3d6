//! The only source of whatsapp-memory's database schema, for SQLite and PostgreSQL alike.
//! `serve` and `migrate` run [`Migrator::up`]; nothing else creates tables.

pub use sea_orm_migration::prelude::*;

mod m20261126_000001_create_core_tables;
mod m20261126_000002_create_memory_search;
mod m20261126_000003_media_pipeline;
mod m20261127_000004_queue_priority_and_hash_indexes;
mod m20261127_000005_mem0_index;
mod m20261127_000006_memory_embeddings;
mod m20261206_000007_image_rehash_queue;
mod m20261206_000008_extracted_text;
mod m20261206_000009_reminders;

/// Every migration, in the order they must run.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261126_000001_create_core_tables::Migration),
            Box::new(m20261126_000002_create_memory_search::Migration),
            Box::new(m20261126_000003_media_pipeline::Migration),
            Box::new(m20261127_000004_queue_priority_and_hash_indexes::Migration),
            Box::new(m20261127_000005_mem0_index::Migration),
            Box::new(m20261127_000006_memory_embeddings::Migration),
            Box::new(m20261206_000007_image_rehash_queue::Migration),
            Box::new(m20261206_000008_extracted_text::Migration),
            Box::new(m20261206_000009_reminders::Migration),
        ]
    }
}
