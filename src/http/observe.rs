//! Every request gets an id (the caller's `X-Request-Id` when it is a sane token, else
//! one made here), a `request` span carrying it (so every line the request causes, on
//! any thread, names it), the id back in the response's `X-Request-Id`, and its count
//! and latency in the metrics, labelled with its route template, never its path (a
//! path can carry a phone number).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Request, Response};
use tracing::Instrument;

use super::allow::AllowedMethods;
use crate::telemetry::metrics;

/// The header a request id comes in and goes back in.
pub const REQUEST_ID: &str = "x-request-id";
/// The longest request id taken from a caller.
const MAX_ID_LEN: usize = 128;

/// The caller's id when it is 1 to 128 of `A-Z a-z 0-9 . _ - :`; anything else (empty,
/// too long, spaces, quotes, control characters) could forge or break a log line.
fn sane(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b))
}

/// A new id: this process's random prefix and a counter (unique without a system call
/// per request).
fn generate() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 6];
        let _ = getrandom::fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    });
    format!("{prefix}-{:08x}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The id of `request`: its own when sane, else a new one.
pub fn request_id(request: &Request) -> String {
    match request.header(REQUEST_ID) {
        Some(id) if sane(id) => id.to_string(),
        _ => generate(),
    }
}

/// The route label of `path`: its template in the route table, else a fixed label.
fn route_label(routes: &AllowedMethods, path: &str) -> String {
    if let Some(template) = routes.template_of(path) {
        return template.to_string();
    }
    if path == "/docs" || path.starts_with("/docs/") {
        return "/docs".into();
    }
    "unmatched".into()
}

/// Wraps every request: id, span, response header, metrics, and one debug line.
pub async fn observe<E: Endpoint>(
    endpoint: Arc<E>,
    request: Request,
    routes: Arc<AllowedMethods>,
) -> poem::Result<Response> {
    let id = request_id(&request);
    let route = route_label(&routes, request.uri().path());
    let method = request.method().to_string();
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    let started = Instant::now();
    let mut response = async {
        match endpoint.call(request).await {
            Ok(response) => response.into_response(),
            Err(error) => error.into_response(),
        }
    }
    .instrument(span.clone())
    .await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    span.in_scope(|| tracing::debug!(status, elapsed_ms = elapsed.as_secs_f64() * 1000.0, "request answered"));
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    metrics::http_request(route, &method, status, elapsed);
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_like_id_is_kept_and_anything_else_replaced() {
        assert!(sane("3f2a-9c1e.req_7:1"));
        assert!(!sane(""));
        assert!(!sane("has space"));
        assert!(!sane("quote\"d"));
        assert!(!sane("line\nbreak"));
        assert!(!sane(&"a".repeat(129)));
        assert!(sane(&"a".repeat(128)));
    }

    #[test]
    fn generated_ids_differ_and_are_sane() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(sane(&a) && sane(&b));
    }
}
