//! Liveness and readiness probes, for orchestrators and load balancers.

use std::sync::Arc;

use poem_openapi::{payload::Json, types::Example, ApiResponse, Object, OpenApi};

use poem::web::Data;

use super::AppState;

use super::api::ApiTags;

/// A probe's answer.
#[derive(Object)]
#[oai(example)]
pub struct HealthStatus {
    /// `ok`, `ready` or `not ready`.
    pub status: String,
    /// Why the service is not ready, when it is not.
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
}

impl Example for HealthStatus {
    fn example() -> Self {
        HealthStatus { status: "ready".into(), detail: None }
    }
}

/// The readiness probe's answers.
#[derive(ApiResponse)]
pub enum ReadinessResponse {
    /// The database answers and is migrated.
    #[oai(status = 200)]
    Ready(Json<HealthStatus>),
    /// The database is unreachable or not migrated yet.
    #[oai(status = 503)]
    NotReady(Json<HealthStatus>),
}

/// Health probes. Stateless: the spec can be printed without a database.
pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Is the process alive?
    ///
    /// Answers as long as the server runs; it checks nothing else.
    #[oai(path = "/healthz", method = "get", operation_id = "getLiveness")]
    async fn healthz(&self) -> Json<HealthStatus> {
        Json(HealthStatus { status: "ok".into(), detail: None })
    }

    /// Can the service take traffic?
    ///
    /// Ready when the database answers and every migration has been applied.
    #[oai(path = "/readyz", method = "get", operation_id = "getReadiness")]
    async fn readyz(&self, state: Data<&Arc<AppState>>) -> ReadinessResponse {
        match state.repository.is_ready().await {
            Ok(true) => ReadinessResponse::Ready(Json(HealthStatus { status: "ready".into(), detail: None })),
            Ok(false) => ReadinessResponse::NotReady(Json(HealthStatus {
                status: "not ready".into(),
                detail: Some("migrations are pending".into()),
            })),
            Err(error) => {
                tracing::warn!(%error, "readiness check failed");
                ReadinessResponse::NotReady(Json(HealthStatus {
                    status: "not ready".into(),
                    detail: Some("the database is unavailable".into()),
                }))
            }
        }
    }
}
