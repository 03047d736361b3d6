//! Per-API-key rate limit on the REST API (`API_RATE_LIMIT`): over it, 429 with
//! `Retry-After` (whole seconds, rounded up) and a problem+json body, before the
//! request is even read. Requests without a known key are left to authentication (a
//! 401), so a stranger's guesses never use up a real key's allowance, and the limiter
//! keeps one small state per configured key, no more. Operations that need no key (the
//! health probes, Meta's webhook) are never limited by one a caller happens to send.

use std::collections::HashSet;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::DefaultKeyedRateLimiter;
use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};

use super::auth::ApiKeys;
use super::problem::problem;
use crate::app::rate_limit::RateLimit;
use crate::telemetry::metrics;

/// Every API key's rate.
pub struct ApiRateLimiter {
    limiter: DefaultKeyedRateLimiter<usize>,
    clock: DefaultClock,
}

impl ApiRateLimiter {
    /// A limiter allowing `limit` per key.
    pub fn new(limit: RateLimit) -> Self {
        Self { limiter: DefaultKeyedRateLimiter::keyed(limit.quota()), clock: DefaultClock::default() }
    }

    /// Seconds until key number `key` may call again; `None` when it may now.
    fn retry_after(&self, key: usize) -> Option<u64> {
        let not_until = self.limiter.check_key(&key).err()?;
        let wait = not_until.wait_time_from(self.clock.now());
        Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).map(|s| s.max(1))
    }
}

/// The paths of the API whose operations all need no API key, read from the OpenAPI
/// document so the rule follows the spec: a probe or Meta's webhook carrying some
/// `Authorization` header is not a use of that key's allowance.
#[derive(Debug, Clone, Default)]
pub struct OpenPaths(HashSet<String>);

impl OpenPaths {
    /// The paths of `spec` (the service's JSON document) none of whose operations has
    /// `security`. Only literal paths are taken: every open operation has one.
    pub fn from_spec(spec: &str) -> anyhow::Result<Self> {
        let document: serde_json::Value = serde_json::from_str(spec)?;
        let paths = document["paths"].as_object().ok_or_else(|| anyhow::anyhow!("the spec has no paths"))?;
        let open = paths
            .iter()
            .filter(|(path, _)| !path.contains('{'))
            .filter(|(_, operations)| {
                operations.as_object().is_some_and(|ops| ops.values().all(|op| op.get("security").is_none()))
            })
            .map(|(path, _)| path.clone())
            .collect();
        Ok(Self(open))
    }

    /// Whether `path` is one of them.
    pub fn contains(&self, path: &str) -> bool {
        self.0.contains(path)
    }
}

/// Answers 429 for a key over its rate; passes everything else on, including every
/// request to one of the `open` paths.
pub async fn limit_api<E: Endpoint>(
    endpoint: Arc<E>,
    request: Request,
    limiter: Arc<ApiRateLimiter>,
    keys: Arc<ApiKeys>,
    open: &OpenPaths,
) -> poem::Result<Response> {
    if open.contains(request.original_uri().path()) {
        return endpoint.call(request).await.map(IntoResponse::into_response);
    }
    let key = request
        .header(header::AUTHORIZATION)
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|token| keys.index_of(token.trim()));
    if let Some(seconds) = key.and_then(|key| limiter.retry_after(key)) {
        metrics::rate_limited("api");
        tracing::info!(retry_after = seconds, "API key over its rate; answered 429");
        let mut response = problem(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("this API key is over its rate limit; retry in {seconds} s"),
        );
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return Ok(response);
    }
    endpoint.call(request).await.map(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_paths_are_those_whose_operations_all_need_no_key() {
        let spec = r#"{"paths": {
            "/healthz": {"get": {}},
            "/whatsapp/cloud": {"get": {}, "post": {}},
            "/memories": {"get": {"security": [{"ApiKeyAuth": []}]}},
            "/mixed": {"get": {}, "post": {"security": [{"ApiKeyAuth": []}]}},
            "/memories/{id}": {"get": {}}
        }}"#;
        let open = OpenPaths::from_spec(spec).unwrap();
        assert!(open.contains("/healthz"));
        assert!(open.contains("/whatsapp/cloud"));
        assert!(!open.contains("/memories"));
        assert!(!open.contains("/mixed"));
        assert!(!open.contains("/memories/{id}"));
        assert!(!open.contains("/memories/1"));
    }
}
