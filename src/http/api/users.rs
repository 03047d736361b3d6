//! `/users`: who writes to the service, and their settings.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::schemas::{UserExport, UserPage, UserRead, UserUpdate};
use super::ApiTags;
use crate::app::memories::UserChanges;
use crate::http::auth::ApiKeyAuth;
use crate::http::problem::{BodyErrorResponse, ErrorResponse};
use crate::http::AppState;

/// A page of users.
#[derive(ApiResponse)]
pub enum ListedUsers {
    /// Newest first.
    #[oai(status = 200)]
    Ok(Json<UserPage>),
}

/// A user.
#[derive(ApiResponse)]
pub enum OneUser {
    /// The user.
    #[oai(status = 200)]
    Ok(Json<UserRead>),
}

/// A user's data.
#[derive(ApiResponse)]
pub enum ExportedUser {
    /// Everything held about the user.
    #[oai(status = 200)]
    Ok(Json<UserExport>),
}

/// An erased user.
#[derive(ApiResponse)]
pub enum ErasedUser {
    /// Erased: nothing about them remains.
    #[oai(status = 204)]
    Erased,
}

/// User operations.
pub struct UsersApi;

#[OpenApi(tag = "ApiTags::Users")]
impl UsersApi {
    /// List users
    ///
    /// Everyone who has written to the service (or was created through the API), newest
    /// first, with how many memories each holds. Pages with `cursor`.
    #[oai(path = "/users", method = "get", operation_id = "listUsers")]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The `next_cursor` of the previous page.
        #[oai(validator(pattern = r"^[0-9]{1,16}-[0-9]{1,18}$"))]
        cursor: Query<Option<String>>,
        /// Page size (1 to 100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
    ) -> Result<ListedUsers, ErrorResponse> {
        let page = state.memories.users(cursor.0.as_deref(), limit.0).await?;
        Ok(ListedUsers::Ok(Json(page.into())))
    }

    /// Get a user
    ///
    /// One person who has written to the service (or was named in `POST /memories`): their
    /// WhatsApp id and number, the name their WhatsApp profile gives, the time zone they
    /// chose with `/tz` (none means the service default) and how many memories they have.
    #[oai(path = "/users/:user_id", method = "get", operation_id = "getUser")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The user's WhatsApp id: `15551234567`, `+15551234567` or `whatsapp:+15551234567`.
        #[oai(validator(pattern = r"^(whatsapp:)?\+?[0-9]{6,15}$"))]
        user_id: Path<String>,
    ) -> Result<OneUser, ErrorResponse> {
        Ok(OneUser::Ok(Json(state.memories.user(&user_id.0).await?.into())))
    }

    /// Change a user's settings
    ///
    /// Sets the display name or the time zone in which dates and ranges are read for
    /// them (as `/tz` does in the chat).
    #[oai(path = "/users/:user_id", method = "patch", operation_id = "updateUser")]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The user's WhatsApp id: `15551234567`, `+15551234567` or `whatsapp:+15551234567`.
        #[oai(validator(pattern = r"^(whatsapp:)?\+?[0-9]{6,15}$"))]
        user_id: Path<String>,
        body: Json<UserUpdate>,
    ) -> Result<OneUser, BodyErrorResponse> {
        let changes = UserChanges { display_name: body.0.display_name, timezone: body.0.timezone };
        Ok(OneUser::Ok(Json(state.memories.update_user(&user_id.0, changes).await?.into())))
    }

    /// Export everything held about a user
    ///
    /// The user, every memory, every message both ways (with all Twilio sent), and the
    /// records of their media files, as one JSON document.
    #[oai(path = "/users/:user_id/export", method = "get", operation_id = "exportUser")]
    async fn export(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The user's WhatsApp id: `15551234567`, `+15551234567` or `whatsapp:+15551234567`.
        #[oai(validator(pattern = r"^(whatsapp:)?\+?[0-9]{6,15}$"))]
        user_id: Path<String>,
    ) -> Result<ExportedUser, ErrorResponse> {
        let (user, data) = state.memories.export(&user_id.0).await?;
        Ok(ExportedUser::Ok(Json(UserExport::new(user, data, state.clock.now()))))
    }

    /// Erase a user
    ///
    /// Deletes the user and everything held about them: messages, memories and their
    /// search entries, media records, queued work, and the stored files no other user
    /// shares. This cannot be undone; export first if the data is wanted.
    #[oai(path = "/users/:user_id", method = "delete", operation_id = "eraseUser")]
    async fn erase(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The user's WhatsApp id: `15551234567`, `+15551234567` or `whatsapp:+15551234567`.
        #[oai(validator(pattern = r"^(whatsapp:)?\+?[0-9]{6,15}$"))]
        user_id: Path<String>,
    ) -> Result<ErasedUser, ErrorResponse> {
        state.memories.erase(&user_id.0).await?;
        Ok(ErasedUser::Erased)
    }
}

fn default_limit() -> u32 {
    20
}
