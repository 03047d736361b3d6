//! `/memories`: the prototype's paths and parameters, kept as its clients call them, plus
//! one memory by id.

use std::sync::Arc;

use poem::web::Data;
use poem::IntoResponse;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, OpenApi};

use super::schemas::{MemoryCreate, MemoryPage, MemoryRead, MemoryType, MemoryUpdate, SearchResults};
use super::ApiTags;
use crate::app::memories::{ApiError, Created, MemoryChanges, MemoryInput};
use crate::domain::model::MemoryKind;
use crate::http::auth::ApiKeyAuth;
use crate::http::problem::{BodyErrorResponse, ErrorResponse};
use crate::http::AppState;

/// The default page size, as the prototype's lists.
const DEFAULT_LIMIT: u32 = 20;

/// A created memory.
#[derive(ApiResponse)]
pub enum CreatedMemory {
    /// The user already had this media (the same bytes, or a near-identical photo): its
    /// memory, unchanged.
    #[oai(status = 200)]
    AlreadySaved(Json<MemoryRead>, #[oai(header = "Location")] String),
    /// Saved and searchable at once.
    #[oai(status = 201)]
    Created(Json<MemoryRead>, #[oai(header = "Location")] String),
}

/// A memory.
#[derive(ApiResponse)]
pub enum OneMemory {
    /// The memory.
    #[oai(status = 200)]
    Ok(Json<MemoryRead>),
}

/// Search results.
#[derive(ApiResponse)]
pub enum FoundMemories {
    /// Best first; empty when nothing matches.
    #[oai(status = 200)]
    Ok(Json<SearchResults>),
}

/// A page of memories.
#[derive(ApiResponse)]
pub enum ListedMemories {
    /// Newest first.
    #[oai(status = 200)]
    Ok(Json<MemoryPage>),
}

/// A deleted memory.
#[derive(ApiResponse)]
pub enum DeletedMemory {
    /// Deleted, with its search entry.
    #[oai(status = 204)]
    Deleted,
}

/// The types a stored file is served as; any other is served as
/// `application/octet-stream`, so every answer matches the spec.
pub const MEDIA_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "audio/ogg",
    "audio/amr",
    "audio/wav",
    "audio/mpeg",
    "audio/aac",
    "audio/mp4",
    "video/mp4",
    "video/3gpp",
    "application/pdf",
    "application/zip",
    "text/vcard",
    "application/octet-stream",
];

/// A stored media file: its bytes with the type read from them.
pub struct MediaFile {
    bytes: Vec<u8>,
    content_type: &'static str,
}

impl MediaFile {
    fn new(bytes: Vec<u8>, stored_type: &str) -> Self {
        let essence = stored_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let content_type = MEDIA_TYPES.iter().copied().find(|t| *t == essence).unwrap_or("application/octet-stream");
        Self { bytes, content_type }
    }
}

/// The types shown inline: images and audio we decode ourselves, so we know the bytes are
/// what the type says. Anything else (HTML or SVG stored as octet-stream, a PDF, a
/// contact card) is a download, never rendered in the API's origin.
pub const INLINE_MEDIA_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "audio/ogg",
    "audio/wav",
    "audio/mpeg",
    "audio/aac",
    "audio/mp4",
];

impl MediaFile {
    /// `inline` for the types we decode ourselves, `attachment` for every other.
    fn disposition(&self) -> &'static str {
        if INLINE_MEDIA_TYPES.contains(&self.content_type) {
            "inline"
        } else {
            "attachment"
        }
    }
}

impl IntoResponse for MediaFile {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type(self.content_type)
            // A browser must not guess another type (HTML, script) from the bytes.
            .header("X-Content-Type-Options", "nosniff")
            .header("Content-Disposition", self.disposition())
            .body(self.bytes)
    }
}

impl ApiResponse for MediaFile {
    fn meta() -> MetaResponses {
        let binary =
            || MetaSchemaRef::Inline(Box::new(MetaSchema { format: Some("binary"), ..MetaSchema::new("string") }));
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The file's bytes, as the type read from them.",
                status: Some(200),
                status_range: None,
                content: MEDIA_TYPES.iter().map(|t| MetaMediaType { content_type: t, schema: binary() }).collect(),
                headers: vec![
                    MetaHeader {
                        name: "X-Content-Type-Options".into(),
                        description: Some("Always `nosniff`: the type is the one stated.".into()),
                        required: true,
                        deprecated: false,
                        schema: String::schema_ref(),
                    },
                    MetaHeader {
                        name: "Content-Disposition".into(),
                        description: Some(
                            "`inline` for the image and audio types the service decodes itself, `attachment` for \
                             every other."
                                .into(),
                        ),
                        required: true,
                        deprecated: false,
                        schema: String::schema_ref(),
                    },
                ],
            }],
        }
    }

    fn register(_registry: &mut Registry) {}
}

/// Memory operations.
pub struct MemoriesApi;

#[OpenApi(tag = "ApiTags::Memories")]
impl MemoriesApi {
    /// Save a memory
    ///
    /// Saves a memory for the user (created if they have never written), searchable at
    /// once, exactly as if they had sent it on WhatsApp: `text` alone makes a text memory;
    /// `media_url` (a Twilio media URL) is downloaded, typed by its bytes and kept, with
    /// `text` as its caption. Media the user already has answers 200 with its memory.
    #[oai(path = "/memories", method = "post", operation_id = "createMemory")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The user's WhatsApp id: `15551234567`, `+15551234567` or `whatsapp:+15551234567`.
        #[oai(validator(pattern = r"^(whatsapp:)?\+?[0-9]{6,15}$"))]
        user_id: Query<String>,
        body: Json<MemoryCreate>,
    ) -> Result<CreatedMemory, BodyErrorResponse> {
        let body = body.0;
        if let Some(url) = body.media_url {
            let created =
                state.memories.create_from_media(&user_id.0, &url, body.text, body.labels.unwrap_or_default()).await?;
            return Ok(match created {
                Created::New(record) => {
                    let location = format!("/memories/{}", record.memory.id.0);
                    CreatedMemory::Created(Json(MemoryRead::from_record(record)), location)
                }
                Created::AlreadySaved(record) => {
                    let location = format!("/memories/{}", record.memory.id.0);
                    CreatedMemory::AlreadySaved(Json(MemoryRead::from_record(record)), location)
                }
            });
        }
        let memory_type = body.memory_type.unwrap_or(MemoryType::Text);
        if memory_type != MemoryType::Text {
            return Err(ApiError::Invalid(format!(
                "a `{}` memory needs `media_url`: the file is what it remembers",
                MemoryKind::from(memory_type).as_str()
            ))
            .into());
        }
        let input = MemoryInput {
            kind: memory_type.into(),
            text: body.text.ok_or_else(|| ApiError::Invalid("`text` is required for a text memory".into()))?,
            labels: body.labels.unwrap_or_default(),
        };
        let record = state.memories.create(&user_id.0, input).await?;
        let location = format!("/memories/{}", record.memory.id.0);
        Ok(CreatedMemory::Created(Json(MemoryRead::from_record(record)), location))
    }

    /// Search a user's memories
    ///
    /// Searches one user's memories by their words and by meaning, best first, each with
    /// the WhatsApp message it came from: the same search as `/search` in the chat.
    /// Full-text search and a local sentence-embedding search (unless the server runs
    /// with `SEMANTIC_SEARCH=off`) are merged by reciprocal rank fusion, so "music classes
    /// for my kid" finds "Lea starts piano in September"; a memory saved a moment ago is
    /// found by its words while its embedding is pending. With a Mem0 account configured,
    /// Mem0 is asked at the same time (within a time limit) and joins the same fusion;
    /// facts Mem0 inferred that no single memory stands behind come back in `inferred`.
    #[oai(path = "/memories", method = "get", operation_id = "searchMemories")]
    async fn search(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// What to look for: words, or a question in your own words (at least one visible
        /// character).
        #[oai(validator(pattern = r"[^\s\x00-\x1f\x7f-\x9f]"))]
        query: Query<String>,
        /// The user's WhatsApp id: `15551234567`, `+15551234567` or `whatsapp:+15551234567`.
        #[oai(validator(pattern = r"^(whatsapp:)?\+?[0-9]{6,15}$"))]
        user_id: Query<String>,
        /// At most this many results (1 to 100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
    ) -> Result<FoundMemories, ErrorResponse> {
        let found = state.memories.search(&user_id.0, &query.0, limit.0).await?;
        let inferred: Vec<_> = found.inferred.into_iter().map(Into::into).collect();
        Ok(FoundMemories::Ok(Json(SearchResults {
            query: query.0.trim().to_string(),
            results: found.results.into_iter().map(Into::into).collect(),
            inferred: (!inferred.is_empty()).then_some(inferred),
        })))
    }

    /// List a user's memories
    ///
    /// Newest first, optionally within a time range written as in the chat's `/list`
    /// ("today", "yesterday", "last week", "last 7 days", "this month", "2026-11-01 to
    /// 2026-11-15"), read in the user's own time zone. Pages with `cursor`.
    #[oai(path = "/memories/list", method = "get", operation_id = "listMemories")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The user's WhatsApp id: `15551234567`, `+15551234567` or `whatsapp:+15551234567`.
        #[oai(validator(pattern = r"^(whatsapp:)?\+?[0-9]{6,15}$"))]
        user_id: Query<String>,
        /// A time range in words, e.g. `last week`; all memories when absent.
        range: Query<Option<String>>,
        /// The `next_cursor` of the previous page.
        #[oai(validator(pattern = r"^[0-9]{1,16}-[0-9]{1,18}$"))]
        cursor: Query<Option<String>>,
        /// Page size (1 to 100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
    ) -> Result<ListedMemories, ErrorResponse> {
        let page = state.memories.list(&user_id.0, range.0.as_deref(), cursor.0.as_deref(), limit.0).await?;
        Ok(ListedMemories::Ok(Json(page.into())))
    }

    /// Get a memory
    ///
    /// One memory by its id: its type, text and labels, when it was saved, the stored file
    /// behind a photo, voice note or document (`media_id`, served by `GET /media/{id}`) and
    /// the WhatsApp message it came from, if it came from the chat.
    #[oai(path = "/memories/:id", method = "get", operation_id = "getMemory")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The memory's id.
        id: Path<i64>,
    ) -> Result<OneMemory, ErrorResponse> {
        let record = state.memories.get(id.0).await?;
        Ok(OneMemory::Ok(Json(MemoryRead::from_record(record))))
    }

    /// Change a memory
    ///
    /// Replaces its text, its labels, or both; the search index follows at once.
    #[oai(path = "/memories/:id", method = "patch", operation_id = "updateMemory")]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The memory's id.
        id: Path<i64>,
        body: Json<MemoryUpdate>,
    ) -> Result<OneMemory, BodyErrorResponse> {
        let changes = MemoryChanges { text: body.0.text, labels: body.0.labels };
        let record = state.memories.update(id.0, changes).await?;
        Ok(OneMemory::Ok(Json(MemoryRead::from_record(record))))
    }

    /// Delete a memory
    ///
    /// Deletes the memory and its search entry; the WhatsApp message it came from stays in
    /// the user's history.
    #[oai(path = "/memories/:id", method = "delete", operation_id = "deleteMemory")]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The memory's id.
        id: Path<i64>,
    ) -> Result<DeletedMemory, ErrorResponse> {
        state.memories.delete(id.0).await?;
        Ok(DeletedMemory::Deleted)
    }
}

/// `/media`: the files behind photo, voice-note and document memories.
pub struct MediaApi;

#[OpenApi(tag = "ApiTags::Memories")]
impl MediaApi {
    /// Get a stored media file
    ///
    /// The bytes of a photo, voice note or document a user sent (a memory's `media_id`),
    /// with its content type.
    #[oai(path = "/media/:id", method = "get", operation_id = "getMedia")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The media's id (a memory's `media_id`).
        id: Path<i64>,
    ) -> Result<MediaFile, ErrorResponse> {
        let (asset, bytes) = state.memories.media(id.0).await?;
        Ok(MediaFile::new(bytes, &asset.content_type))
    }
}

fn default_limit() -> u32 {
    DEFAULT_LIMIT
}
