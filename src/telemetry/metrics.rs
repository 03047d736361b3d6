//! The service's Prometheus metrics: every family's name, labels and unit in this one
//! file, recorded through the `metrics` facade (a no-op until [`install`] runs, so a
//! server with `METRICS=off` pays nothing) and rendered by the Prometheus exporter.
//!
//! Families (all prefixed `whatsapp_memory_`): `http_requests_total` and
//! `http_request_duration_seconds` by route template, method and status;
//! `inbound_messages_total` by kind and outcome; `jobs` (queue depth, by kind and state,
//! read at scrape time), `job_runs_total`, `job_duration_seconds`, `job_attempts`;
//! `outbound_requests_total` and `outbound_request_duration_seconds` by service (twilio,
//! mem0, openai) and outcome; `transcription_duration_seconds`,
//! `embedding_duration_seconds`, `ocr_duration_seconds`; `sqlite_writer_batch_size` and
//! `sqlite_writer_commit_duration_seconds`; `db_pool_connections` by state; `build_info`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds): from a cached read (1 ms) to a long transcription (2 min).
const SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];
/// Group-commit sizes: one message alone up to the writer's cap of 256.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// Attempts a job took: the first, a few retries, the last of a Mem0 copy's 20.
const ATTEMPT_BUCKETS: &[f64] = &[1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same handle) and
/// records `build_info`.
///
/// # Errors
/// When another recorder was installed first.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(name("sqlite_writer_batch_size")), BATCH_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(name("job_attempts")), ATTEMPT_BUCKETS)?;
    let handle = HANDLE.get_or_init(|| {
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if let Err(error) = metrics::set_global_recorder(recorder) {
            tracing::warn!(%error, "another metrics recorder is installed; /metrics shows only this one's");
        }
        handle
    });
    metrics::gauge!(name("build_info"), "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle.clone())
}

/// The full name of family `short`.
fn name(short: &str) -> String {
    format!("whatsapp_memory_{short}")
}

/// One HTTP request answered: `route` is its template (`/memories/{id}`), never the path.
pub fn http_request(route: String, method: &str, status: u16, elapsed: Duration) {
    let method = method.to_string();
    metrics::counter!(name("http_requests_total"), "route" => route.clone(), "method" => method.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(name("http_request_duration_seconds"), "route" => route, "method" => method)
        .record(elapsed.as_secs_f64());
}

/// One inbound WhatsApp message: `kind` text, media, location, command; `outcome`
/// saved, duplicate, command, rejected.
pub fn inbound_message(kind: &'static str, outcome: &'static str) {
    metrics::counter!(name("inbound_messages_total"), "kind" => kind, "outcome" => outcome).increment(1);
}

/// One run of a job ended: `outcome` done, retry, dead, lost (another worker has it).
pub fn job_run(kind: &str, outcome: &'static str, attempt: i32, elapsed: Duration) {
    let kind = kind.to_string();
    metrics::counter!(name("job_runs_total"), "kind" => kind.clone(), "outcome" => outcome).increment(1);
    metrics::histogram!(name("job_duration_seconds"), "kind" => kind.clone()).record(elapsed.as_secs_f64());
    if outcome != "retry" {
        metrics::histogram!(name("job_attempts"), "kind" => kind).record(f64::from(attempt));
    }
}

/// The queue's depth: `count` jobs of `kind` in `state` (set at scrape time).
pub fn job_depth(kind: &str, state: &str, count: u64) {
    metrics::gauge!(name("jobs"), "kind" => kind.to_string(), "state" => state.to_string()).set(count as f64);
}

/// One call to another service (`twilio`, `mem0`, `openai`): `outcome` is `ok`, the
/// HTTP status class (`4xx`, `5xx`, `429`) or `error` (no answer).
pub fn outbound(service: &'static str, operation: &'static str, outcome: &str, elapsed: Duration) {
    metrics::counter!(name("outbound_requests_total"), "service" => service, "operation" => operation, "outcome" => outcome.to_string())
        .increment(1);
    metrics::histogram!(name("outbound_request_duration_seconds"), "service" => service, "operation" => operation)
        .record(elapsed.as_secs_f64());
}

/// The outcome label of an HTTP answer's status (or of no answer).
pub fn outcome_of(status: Option<u16>) -> String {
    match status {
        None => "error".into(),
        Some(200..=299) => "ok".into(),
        Some(429) => "429".into(),
        Some(code) => format!("{}xx", code / 100),
    }
}

/// One message (`scope` user) or REST request (`scope` api) over its rate.
pub fn rate_limited(scope: &'static str) {
    metrics::counter!(name("rate_limited_total"), "scope" => scope).increment(1);
}

/// One transcription, local or hosted.
pub fn transcription(elapsed: Duration) {
    metrics::histogram!(name("transcription_duration_seconds")).record(elapsed.as_secs_f64());
}

/// One embedding batch (`purpose`: index or query).
pub fn embedding(purpose: &'static str, elapsed: Duration) {
    metrics::histogram!(name("embedding_duration_seconds"), "purpose" => purpose).record(elapsed.as_secs_f64());
}

/// One recognition of the text of an image or a PDF.
pub fn ocr(elapsed: Duration) {
    metrics::histogram!(name("ocr_duration_seconds")).record(elapsed.as_secs_f64());
}

/// One group commit of the SQLite writer: how many messages, and how long it took.
pub fn sqlite_batch(size: usize, elapsed: Duration) {
    metrics::histogram!(name("sqlite_writer_batch_size")).record(size as f64);
    metrics::histogram!(name("sqlite_writer_commit_duration_seconds")).record(elapsed.as_secs_f64());
}

/// The database pool's connections (set at scrape time).
pub fn pool(idle: u64, in_use: u64, max: u64) {
    metrics::gauge!(name("db_pool_connections"), "state" => "idle").set(idle as f64);
    metrics::gauge!(name("db_pool_connections"), "state" => "in_use").set(in_use as f64);
    metrics::gauge!(name("db_pool_max_connections")).set(max as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_names_the_status_class_and_keeps_429_apart() {
        assert_eq!(outcome_of(Some(201)), "ok");
        assert_eq!(outcome_of(Some(429)), "429");
        assert_eq!(outcome_of(Some(503)), "5xx");
        assert_eq!(outcome_of(Some(404)), "4xx");
        assert_eq!(outcome_of(None), "error");
    }
}
