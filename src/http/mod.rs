//! The driving adapter: poem routes for the Twilio webhook and the documented API.

pub mod health;
pub mod problem;
pub mod webhook;

use std::sync::Arc;

use poem::{get, middleware::CatchPanic, EndpointExt, Route};
use poem_openapi::OpenApiService;

use crate::app::ingest::IngestService;
use crate::domain::ports::Repository;
use webhook::WebhookState;

/// What every handler may need; built once by `build_app`.
pub struct AppState {
    pub ingest: IngestService,
    pub repository: Arc<dyn Repository>,
    pub webhook: WebhookState,
}

/// The documented API (health probes now; the REST API joins it).
pub fn api_service() -> OpenApiService<health::HealthApi, ()> {
    OpenApiService::new(health::HealthApi, "whatsapp-memory", env!("CARGO_PKG_VERSION"))
        .description("A WhatsApp number as a personal memory: save text, photos and voice notes; search and list them.")
}

/// Every route of the service.
pub fn routes(state: Arc<AppState>) -> impl poem::Endpoint {
    let api = api_service();
    let swagger = api.swagger_ui();
    let spec = api.spec_endpoint();
    Route::new()
        .at("/webhook", get(webhook::webhook_get).post(webhook::webhook_post).head(webhook::webhook_head))
        .nest("/docs", swagger)
        .at("/openapi.json", spec)
        .nest("/", api)
        .data(state)
        .with(CatchPanic::new())
}
