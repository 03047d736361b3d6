//! RFC 9457 problem details, the one shape every error answer takes.

use poem::http::StatusCode;
use poem::Response;

/// An `application/problem+json` answer with a stable title and a specific detail.
pub fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    Response::builder().status(status).content_type("application/problem+json").body(body.to_string())
}
