//! The driving adapter: poem routes for the Twilio webhook and the documented API.

pub mod allow;
pub mod api;
pub mod auth;
pub mod body_limit;
pub mod clean_input;
pub mod health;
pub mod metrics;
pub mod observe;
pub mod openapi_yaml;
pub mod problem;
pub mod rate_limit;
pub mod serve;
pub mod webhook;
pub mod whatsapp_cloud;

use std::sync::Arc;

use poem::{get, middleware::CatchPanic, EndpointExt, Route};
use poem_openapi::OpenApiService;

use crate::app::activity::RequestRate;
use crate::app::ingest::IngestService;
use crate::app::memories::MemoryService;
use crate::app::queue::QueueService;
use crate::app::reminder_api::ReminderService;
use crate::domain::ports::{Clock, Repository};
use api::admin::AdminApi;
use api::insights::InsightsApi;
use api::memories::{MediaApi, MemoriesApi};
use api::reminders::RemindersApi;
use api::users::UsersApi;
use auth::ApiKeys;
use health::HealthApi;
use webhook::WebhookState;
use whatsapp_cloud::WhatsAppCloudApi;

/// The largest request body the REST API reads (a memory's text is at most 64 KiB).
pub const API_MAX_BODY_BYTES: usize = 256 * 1024;

/// What every handler may need; built once by `build_app`.
pub struct AppState {
    pub ingest: IngestService,
    pub memories: MemoryService,
    pub reminders: ReminderService,
    /// The job queue, for operators.
    pub queue: QueueService,
    pub repository: Arc<dyn Repository>,
    pub webhook: WebhookState,
    /// Meta's Cloud API webhook; `None` when that channel is not configured.
    pub cloud: Option<whatsapp_cloud::CloudWebhook>,
    pub api_keys: Arc<ApiKeys>,
    /// The time every request is stamped with (tests pin it).
    pub clock: Arc<dyn Clock>,
    /// Counts the requests, so that work which can wait does while the service is busy.
    pub activity: Arc<RequestRate>,
    /// Each API key's rate (`API_RATE_LIMIT`); `None`: off.
    pub api_rate_limit: Option<Arc<rate_limit::ApiRateLimiter>>,
}

/// Every documented operation, in the order the docs show them.
pub type ApiOperations =
    (MemoriesApi, MediaApi, RemindersApi, UsersApi, InsightsApi, AdminApi, HealthApi, WhatsAppCloudApi);

/// The documented API. Stateless, so the spec can be printed without a database.
pub fn api_service() -> OpenApiService<ApiOperations, ()> {
    OpenApiService::new(
        (MemoriesApi, MediaApi, RemindersApi, UsersApi, InsightsApi, AdminApi, HealthApi, WhatsAppCloudApi),
        "whatsapp-memory",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "A WhatsApp number as a personal memory: people save text, photos and voice notes by \
             sending them, and find them again by searching or listing. This API serves the same \
             use cases to apps and dashboards.\n\n\
             **Authentication:** every operation except the health probes and Meta's webhook needs an API key, sent as \
             `Authorization: Bearer <key>`. Keys come from the server's `API_KEYS`; a development \
             server without keys prints one at start.\n\n\
             **Users** are named by their WhatsApp id: `15551234567`, `+15551234567` or \
             `whatsapp:+15551234567`.\n\n\
             **Errors** are `application/problem+json` (RFC 9457) with a `detail` that says what to fix.\n\n\
             **Lists** are newest first and paged: pass the `next_cursor` of one page as `cursor` \
             for the next; `limit` is at most 100.",
    )
}

/// Counts a webhook or API request in the service's activity before handling it.
async fn counted<E: poem::Endpoint>(endpoint: Arc<E>, request: poem::Request) -> poem::Result<poem::Response> {
    if let Some(state) = request.data::<Arc<AppState>>() {
        state.activity.record();
    }
    endpoint.call(request).await.map(poem::IntoResponse::into_response)
}

/// Holds each API key to `API_RATE_LIMIT` (when set) before the request is handled;
/// the operations that need no key (`open`) are left alone.
async fn limited<E: poem::Endpoint>(
    endpoint: Arc<E>,
    request: poem::Request,
    open: Arc<rate_limit::OpenPaths>,
) -> poem::Result<poem::Response> {
    let state = request.data::<Arc<AppState>>().cloned();
    match state.as_ref().and_then(|state| state.api_rate_limit.clone().map(|limiter| (limiter, state.api_keys.clone())))
    {
        Some((limiter, keys)) => rate_limit::limit_api(endpoint, request, limiter, keys, &open).await,
        None => endpoint.call(request).await.map(poem::IntoResponse::into_response),
    }
}

/// Every route of the service; `/metrics` among them when `metrics` is given (it is
/// `None` when metrics are off or served on a listener of their own).
pub fn routes(state: Arc<AppState>, metrics: Option<Arc<metrics::Scrape>>) -> impl poem::Endpoint {
    let api = api_service();
    let swagger = api.swagger_ui();
    let spec = api.spec_endpoint();
    let allowed = Arc::new(
        allow::AllowedMethods::from_spec(
            &api.spec(),
            &[("/webhook", &["GET", "HEAD", "POST"]), ("/openapi.json", &["GET"]), ("/metrics", &["GET"])],
        )
        .expect("the service's own OpenAPI document is JSON with paths"),
    );
    let observed = allowed.clone();
    let open = Arc::new(
        rate_limit::OpenPaths::from_spec(&api.spec()).expect("the service's own OpenAPI document is JSON with paths"),
    );
    let mut route = Route::new();
    if let Some(scrape) = metrics {
        route = route.at("/metrics", get(metrics::scrape).data(scrape));
    }
    route
        .at(
            "/webhook",
            get(webhook::webhook_get).post(webhook::webhook_post).head(webhook::webhook_head).around(counted),
        )
        .nest("/docs", swagger)
        .at("/openapi.json", spec)
        // The largest JSON body the API takes: a memory's text is at most 64 KiB. Control
        // characters leave every query value and JSON string once the body is read.
        .nest(
            "/",
            api.with(clean_input::CleanInput)
                .with(body_limit::BodyLimit(API_MAX_BODY_BYTES))
                .around(counted)
                .around(move |endpoint, request| limited(endpoint, request, open.clone())),
        )
        .data(state.api_keys.clone())
        .data(state)
        .catch_all_error(problem::problem_for_poem_error)
        .around(move |endpoint, request| allow::with_allow(endpoint, request, allowed.clone()))
        .with(CatchPanic::new())
        .around(move |endpoint, request| observe::observe(endpoint, request, observed.clone()))
}

/// The routes of the separate metrics listener (`METRICS_ADDR`): `/metrics` alone.
pub fn metrics_routes(scrape: Arc<metrics::Scrape>) -> impl poem::Endpoint {
    let table = Arc::new(
        allow::AllowedMethods::from_spec(r#"{"paths": {}}"#, &[("/metrics", &["GET"])]).expect("a literal route table"),
    );
    Route::new()
        .at("/metrics", get(metrics::scrape).data(scrape))
        .catch_all_error(problem::problem_for_poem_error)
        .with(CatchPanic::new())
        .around(move |endpoint, request| observe::observe(endpoint, request, table.clone()))
}
