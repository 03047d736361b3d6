//! `/webhook`: Twilio's inbound WhatsApp messages. Verify the signature over the public
//! URL and the raw form (403, nothing stored), validate (400), store and answer TwiML.

use std::sync::Arc;

use poem::http::{header, StatusCode};
use poem::web::Data;
use poem::{handler, Body, Request, Response};

use super::problem::problem;
use super::AppState;
use crate::adapters::twilio::form::{parse_inbound_form, MAX_BODY_BYTES};
use crate::adapters::twilio::signature::SignatureValidator;
use crate::adapters::twilio::twiml::messaging_response;
use crate::telemetry::metrics;

/// The largest request accepted: room for a maximal `Body` plus every other field.
const MAX_REQUEST_BYTES: usize = MAX_BODY_BYTES * 2 + 16 * 1024;

/// How the webhook authenticates Twilio.
pub struct WebhookState {
    /// `None` only in development without `TWILIO_AUTH_TOKEN`: unsigned requests pass.
    pub signature: Option<SignatureValidator>,
    /// The URL Twilio calls, when a proxy stands in front of us.
    pub public_base_url: Option<url::Url>,
    /// Whether a request is accepted without a signature when `signature` is `None`:
    /// in development only. A production server on Meta's channel alone has no Twilio
    /// token, and then refuses every `/webhook` request.
    pub accept_unsigned: bool,
}

fn twiml(text: &str) -> Response {
    Response::builder().status(StatusCode::OK).content_type("text/xml; charset=utf-8").body(messaging_response(text))
}

/// `HEAD /webhook`: a reachability check.
#[handler]
pub fn webhook_head() -> Response {
    Response::builder().status(StatusCode::OK).content_type("text/xml; charset=utf-8").finish()
}

/// `GET /webhook`: a bare check answers "OK"; a message sent by GET carries its
/// parameters in the query, which the signature covers as part of the URL.
#[handler]
pub async fn webhook_get(request: &Request, Data(state): Data<&Arc<AppState>>) -> Response {
    let query = request.uri().query().unwrap_or_default();
    let params = parse_form(query.as_bytes());
    let signed = request.headers().contains_key("x-twilio-signature");
    if !signed && !params.iter().any(|(k, _)| k == "MessageSid") {
        return twiml("OK");
    }
    if !is_authentic(request, &state.webhook, &[]) {
        return forbidden();
    }
    handle(state, &params).await
}

/// `POST /webhook`: Twilio's default, a form body.
#[handler]
pub async fn webhook_post(request: &Request, body: Body, Data(state): Data<&Arc<AppState>>) -> Response {
    let is_form = request
        .header(header::CONTENT_TYPE)
        .map(|v| v.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"))
        .unwrap_or(false);
    if !is_form {
        return problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "The webhook takes application/x-www-form-urlencoded, as Twilio sends it.",
        );
    }
    let bytes = match body.into_bytes_limit(MAX_REQUEST_BYTES).await {
        Ok(bytes) => bytes,
        Err(poem::error::ReadBodyError::PayloadTooLarge) => {
            return problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!("The webhook accepts at most {} KiB.", MAX_REQUEST_BYTES / 1024),
            )
        }
        Err(error) => return problem(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    let params = parse_form(&bytes);
    if !is_authentic(request, &state.webhook, &params) {
        return forbidden();
    }
    handle(state, &params).await
}

fn parse_form(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

/// The URL Twilio signed: `PUBLIC_BASE_URL` + path + query when set, else rebuilt from
/// `X-Forwarded-Proto` and `Host`.
fn signed_url(request: &Request, public_base_url: Option<&url::Url>) -> String {
    let path_and_query = request.uri().path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
    if let Some(base) = public_base_url {
        return format!("{}{}", base.as_str().trim_end_matches('/'), path_and_query);
    }
    let scheme = request
        .header("x-forwarded-proto")
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or("http");
    let host = request
        .header(header::HOST)
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    format!("{scheme}://{host}{path_and_query}")
}

/// The same answer for a missing and a wrong signature: nothing that helps a forger.
fn forbidden() -> Response {
    metrics::inbound_message("unknown", "rejected");
    problem(StatusCode::FORBIDDEN, "The request signature is missing or invalid.")
}

/// Whether Twilio signed this request (always true when signatures are not checked).
fn is_authentic(request: &Request, webhook: &WebhookState, params: &[(String, String)]) -> bool {
    let Some(validator) = &webhook.signature else {
        return webhook.accept_unsigned;
    };
    let Some(signature) = request.header("x-twilio-signature") else {
        tracing::warn!("webhook request without X-Twilio-Signature refused");
        return false;
    };
    let url = signed_url(request, webhook.public_base_url.as_ref());
    let valid = validator.is_valid_form(&url, params, signature);
    if !valid {
        // The path only: a GET webhook's query carries phone numbers.
        tracing::warn!(path = request.uri().path(), "webhook request with an invalid signature refused");
    }
    valid
}

async fn handle(state: &AppState, params: &[(String, String)]) -> Response {
    let message = match parse_inbound_form(params, state.clock.now()) {
        Ok(message) => message,
        Err(error) => {
            metrics::inbound_message("unknown", "rejected");
            return problem(StatusCode::BAD_REQUEST, &error.to_string());
        }
    };
    match state.ingest.ingest_message(message).await {
        Ok(reply) => twiml(&reply),
        Err(error) if error.is_conflict() => {
            problem(StatusCode::CONFLICT, "This MessageSid belongs to another sender's message; nothing was stored.")
        }
        Err(error) if error.is_retryable() => {
            tracing::warn!(%error, "message not stored; Twilio will deliver it again");
            let mut response = problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "The message could not be stored right now; please deliver it again.",
            );
            response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            response
        }
        Err(error) => {
            tracing::error!(%error, "message not stored");
            problem(StatusCode::INTERNAL_SERVER_ERROR, "The message could not be stored.")
        }
    }
}
