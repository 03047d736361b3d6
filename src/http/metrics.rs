//! `GET /metrics`: Prometheus' text format. What the code counted as it went (requests,
//! messages, jobs, outbound calls, durations) comes from the recorder; the queue's depth
//! and the pool's usage are read at the scrape, so they are never stale. Behind
//! `METRICS_TOKEN` (Bearer) when set.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use metrics_exporter_prometheus::PrometheusHandle;
use poem::http::{header, StatusCode};
use poem::web::Data;
use poem::{handler, Request, Response};

use super::auth::ApiKeys;
use super::problem::problem;
use crate::adapters::db::PoolUsage;
use crate::config::Secret;
use crate::domain::ports::{JobState, QueueAdmin};
use crate::telemetry::metrics;

/// What a scrape reads.
pub struct Scrape {
    handle: PrometheusHandle,
    /// Checked like an API key (digest, constant time); `None`: open.
    token: Option<ApiKeys>,
    queue: Arc<dyn QueueAdmin>,
    pool: Box<dyn Fn() -> PoolUsage + Send + Sync>,
    /// Every (kind, state) a scrape has shown: one that has emptied since reads 0, not
    /// its last value.
    shown: Mutex<BTreeSet<(String, JobState)>>,
}

impl Scrape {
    /// Scrapes of `handle`'s recorder, the queue and the pool.
    pub fn new(
        handle: PrometheusHandle,
        token: Option<&Secret>,
        queue: Arc<dyn QueueAdmin>,
        pool: Box<dyn Fn() -> PoolUsage + Send + Sync>,
    ) -> Self {
        let token = token.map(|token| ApiKeys::new(std::slice::from_ref(token)));
        Self { handle, token, queue, pool, shown: Mutex::new(BTreeSet::new()) }
    }

    /// Drains the recorder's histogram samples into their buckets; run every few
    /// seconds so memory stays flat between scrapes.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    fn authorized(&self, request: &Request) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        request
            .header(header::AUTHORIZATION)
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|candidate| token.accepts(candidate.trim()))
    }

    /// Sets the gauges read at scrape time: the queue's depth and the pool's usage.
    async fn read_gauges(&self) -> Result<(), String> {
        let counts = self.queue.job_counts().await.map_err(|e| e.to_string())?;
        let mut shown = self.shown.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (kind, state) in shown.iter() {
            if !counts.iter().any(|c| &c.kind == kind && c.state == *state) {
                metrics::job_depth(kind, state.as_str(), 0);
            }
        }
        for count in &counts {
            metrics::job_depth(&count.kind, count.state.as_str(), count.count);
            shown.insert((count.kind.clone(), count.state));
        }
        let usage = (self.pool)();
        metrics::pool(usage.idle, usage.in_use, usage.max);
        Ok(())
    }
}

/// `GET /metrics`.
#[handler]
pub async fn scrape(request: &Request, Data(scrape): Data<&Arc<Scrape>>) -> Response {
    if !scrape.authorized(request) {
        let mut response = problem(StatusCode::UNAUTHORIZED, "/metrics needs `Authorization: Bearer <METRICS_TOKEN>`.");
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        return response;
    }
    if let Err(error) = scrape.read_gauges().await {
        // The rest is still worth having; the queue's depth keeps its last values.
        tracing::warn!(%error, "the queue's depth could not be read for /metrics");
    }
    Response::builder()
        .status(StatusCode::OK)
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(scrape.handle.render())
}
