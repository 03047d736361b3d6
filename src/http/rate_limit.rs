//! Per-API-key rate limit on the REST API (`API_RATE_LIMIT`): over it, 429 with
//! `Retry-After` (whole seconds, rounded up) and a problem+json body, before the
//! request is even read. Requests without a known key are left to authentication (a
//! 401), so a stranger's guesses never use up a real key's allowance, and the limiter
//! keeps one small state per configured key, no more.

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

/// Answers 429 for a key over its rate; passes everything else on.
pub async fn limit_api<E: Endpoint>(
    endpoint: Arc<E>,
    request: Request,
    limiter: Arc<ApiRateLimiter>,
    keys: Arc<ApiKeys>,
) -> poem::Result<Response> {
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
