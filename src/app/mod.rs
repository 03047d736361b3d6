//! Use cases: they orchestrate the ports and own the transactions.

pub mod activity;
pub mod decoding;
pub mod inbox;
pub mod ingest;
pub mod jobs;
pub mod media;
pub mod mem0;
pub mod memories;
pub mod notify;
pub mod ocr;
pub mod outbox;
pub mod queue;
pub mod rate_limit;
pub mod rehash;
pub mod reminder_api;
pub mod reminder_delivery;
pub mod reminders;
pub mod search;
pub mod semantic;
pub mod voice;
