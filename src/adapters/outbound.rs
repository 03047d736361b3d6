//! Every call to another service (Twilio, Mem0, OpenAI) goes out through [`send`], so
//! each is counted by outcome and timed in the metrics, labelled with the service and
//! the operation (never the URL, which can carry a phone number or an id).

use std::time::Instant;

use crate::telemetry::metrics;

/// Sends `request`, recording its outcome (the status class, or `error` for no answer)
/// and how long the answer's head took.
///
/// # Errors
/// reqwest's, unchanged.
pub async fn send(
    service: &'static str,
    operation: &'static str,
    request: reqwest::RequestBuilder,
) -> reqwest::Result<reqwest::Response> {
    let started = Instant::now();
    let result = request.send().await;
    let status = result.as_ref().ok().map(|response| response.status().as_u16());
    metrics::outbound(service, operation, &metrics::outcome_of(status), started.elapsed());
    result
}
