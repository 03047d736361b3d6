//! The documented REST API (poem-openapi): the chat's use cases for apps, dashboards and
//! generated client SDKs. Every operation needs an API key; errors are problem+json.

pub mod admin;
pub mod insights;
pub mod memories;
pub mod reminders;
pub mod schemas;
pub mod strict_json;
pub mod users;

use poem_openapi::Tags;

/// The API's groups of operations, as clients generated from the spec name them.
#[derive(Tags)]
pub enum ApiTags {
    /// Probes that say whether the service can take traffic.
    Health,
    /// Save, find, list, change and delete memories.
    Memories,
    /// Reminders delivered on WhatsApp at their time.
    Reminders,
    /// The people who write to the service, their settings, export and erasure.
    Users,
    /// WhatsApp messages as stored, and totals across the service.
    Insights,
    /// The job queue: what is queued, running or dead; retry or remove a job.
    Admin,
    /// Where WhatsApp channels deliver messages (Meta's Cloud API; Twilio's `/webhook` is
    /// a form endpoint outside this document).
    Channels,
}
