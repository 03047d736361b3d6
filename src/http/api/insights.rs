//! `/interactions` and `/analytics`: the stored WhatsApp messages, and totals.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};

use super::schemas::{AnalyticsSummary, InteractionPage};
use super::ApiTags;
use crate::http::auth::ApiKeyAuth;
use crate::http::problem::ErrorResponse;
use crate::http::AppState;

/// A page of messages.
#[derive(ApiResponse)]
pub enum ListedInteractions {
    /// Newest first.
    #[oai(status = 200)]
    Ok(Json<InteractionPage>),
}

/// The summary.
#[derive(ApiResponse)]
pub enum Summary {
    /// Totals now.
    #[oai(status = 200)]
    Ok(Json<AnalyticsSummary>),
}

/// Message history and totals.
pub struct InsightsApi;

#[OpenApi(tag = "ApiTags::Insights")]
impl InsightsApi {
    /// A user's recent messages
    ///
    /// The messages the user sent and the replies they got, newest first. Pages with
    /// `cursor`.
    #[oai(path = "/interactions/recent", method = "get", operation_id = "listRecentInteractions")]
    async fn recent(
        &self,
        state: Data<&Arc<AppState>>,
        _auth: ApiKeyAuth,
        /// The user's WhatsApp id: `15551234567`, `+15551234567` or `whatsapp:+15551234567`.
        #[oai(validator(pattern = r"^(whatsapp:)?\+?[0-9]{6,15}$"))]
        user_id: Query<String>,
        /// The `next_cursor` of the previous page.
        #[oai(validator(pattern = r"^[0-9]{1,16}-[0-9]{1,18}$"))]
        cursor: Query<Option<String>>,
        /// Page size (1 to 100).
        #[oai(default = "default_limit", validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<u32>,
    ) -> Result<ListedInteractions, ErrorResponse> {
        let page = state.memories.interactions(&user_id.0, cursor.0.as_deref(), limit.0).await?;
        Ok(ListedInteractions::Ok(Json(page.into())))
    }

    /// Totals across the service
    ///
    /// Users, messages, memories and media held; memories by type; when the last message
    /// arrived; and messages per day over the last 30 days.
    #[oai(path = "/analytics/summary", method = "get", operation_id = "getAnalyticsSummary")]
    async fn summary(&self, state: Data<&Arc<AppState>>, _auth: ApiKeyAuth) -> Result<Summary, ErrorResponse> {
        Ok(Summary::Ok(Json(state.memories.analytics().await?.into())))
    }
}

fn default_limit() -> u32 {
    20
}
