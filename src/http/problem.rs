//! RFC 9457 problem details, the one shape every error answer takes: our own errors, and
//! poem's (malformed JSON, a missing parameter, an unknown route, a body too large),
//! which [`problem_for_poem_error`] rewrites.

use poem::http::{header, StatusCode};
use poem::{IntoResponse, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{Example, ToJSON, Type};
use poem_openapi::{ApiResponse, Object};

use crate::app::memories::ApiError;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// What went wrong, for a person to act on (RFC 9457).
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(example)]
pub struct Problem {
    /// Always `about:blank`: the status and title say what kind of problem it is.
    #[oai(rename = "type")]
    pub problem_type: String,
    /// The status's reason phrase, the same for every problem of its kind.
    pub title: String,
    /// The HTTP status code, repeated for clients that lose headers.
    pub status: u16,
    /// What exactly was wrong with this request and how to fix it.
    pub detail: String,
}

impl Problem {
    /// A problem of `status`, titled by its reason phrase.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            problem_type: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    /// The problem's JSON text, the body of its answer.
    pub fn into_json(self) -> String {
        serde_json::json!({
            "type": self.problem_type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        })
        .to_string()
    }

    /// The problem as a finished response.
    pub fn into_poem_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let unauthorized = status == StatusCode::UNAUTHORIZED;
        let mut response = Response::builder().status(status).content_type(PROBLEM_JSON).body(self.into_json());
        if unauthorized {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, WWW_AUTHENTICATE.parse().expect("a valid header"));
        }
        response
    }
}

impl Example for Problem {
    fn example() -> Self {
        Problem::new(StatusCode::NOT_FOUND, "no memory with id 42")
    }
}

/// The detail of a 500: the cause is in the log, never in the answer.
const INTERNAL_DETAIL: &str = "something went wrong on our side; it has been logged";

/// A [`Problem`] answered with status `STATUS`, documented with an example of that status:
/// `/docs` shows under 401 a 401 with the detail a client really gets, not one example for
/// every status. The schema stays `Problem` (through `allOf`, as OpenAPI 3.0 ignores the
/// siblings of a `$ref`).
#[derive(Debug)]
pub struct ProblemBody<const STATUS: u16>(pub Problem);

impl<const STATUS: u16> ProblemBody<STATUS> {
    /// A problem of this status with `detail`.
    pub fn new(detail: impl Into<String>) -> Self {
        Self(Problem::new(StatusCode::from_u16(STATUS).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), detail))
    }

    /// What a client typically reads in a problem of this status.
    fn example() -> Problem {
        let detail = match STATUS {
            400 => "`limit` must be a whole number between 1 and 100",
            401 => "the API key is not valid; check `Authorization: Bearer <key>`",
            403 => "the request signature is missing or invalid",
            404 => "no memory with id 42",
            409 => "job 42 is queued, not dead: only a dead job can be retried",
            413 => "the request body is too large",
            415 => "the body must be `application/json`",
            429 => "this API key is over its rate limit; retry in 1 s",
            503 => "the database is busy or unavailable; try again shortly",
            _ => INTERNAL_DETAIL,
        };
        Self::new(detail).0
    }
}

impl<const STATUS: u16> Payload for ProblemBody<STATUS> {
    const CONTENT_TYPE: &'static str = PROBLEM_JSON;

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            all_of: vec![Problem::schema_ref()],
            example: Self::example().to_json(),
            ..MetaSchema::ANY
        }))
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

impl<const STATUS: u16> IntoResponse for ProblemBody<STATUS> {
    fn into_response(self) -> Response {
        self.0.into_poem_response()
    }
}

/// The challenge of a 401: which scheme to use, so clients know to send the API key.
pub const WWW_AUTHENTICATE: &str = "Bearer realm=\"whatsapp-memory\"";

/// An `application/problem+json` answer titled by its status, with a specific detail.
pub fn problem(status: StatusCode, detail: &str) -> Response {
    Problem::new(status, detail).into_poem_response()
}

/// Defines an error response enum over [`Problem`] bodies, with one variant per status
/// and the conversion from the use cases' [`ApiError`]. Two enums share it, so that only
/// operations that take a body document the statuses of a bad body.
macro_rules! problem_responses {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $status:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, ApiResponse)]
        pub enum $name {
            /// The request is malformed: a bad parameter, body or cursor; `detail` says which.
            #[oai(status = 400)]
            BadRequest(ProblemBody<400>),
            /// No API key, or one the service does not know.
            #[oai(status = 401)]
            Unauthorized(ProblemBody<401>, #[oai(header = "WWW-Authenticate")] String),
            /// The user or memory named does not exist.
            #[oai(status = 404)]
            NotFound(ProblemBody<404>),
            $($(#[$vmeta])* #[oai(status = $status)] $variant(ProblemBody<$status>),)*
            /// This API key is over its rate (`API_RATE_LIMIT`, 20 a second with bursts
            /// of 40 by default); `Retry-After` says in how many seconds to try again.
            #[oai(status = 429)]
            TooManyRequests(ProblemBody<429>, #[oai(header = "Retry-After")] u64),
            /// A bug on our side; it is logged.
            #[oai(status = 500)]
            Internal(ProblemBody<500>),
            /// The database is busy or down; retry shortly.
            #[oai(status = 503)]
            Unavailable(ProblemBody<503>),
        }

        impl From<ApiError> for $name {
            fn from(error: ApiError) -> Self {
                match error {
                    ApiError::Invalid(detail) => Self::BadRequest(ProblemBody::new(detail)),
                    ApiError::NotFound(detail) => Self::NotFound(ProblemBody::new(detail)),
                    ApiError::Unavailable(detail) => Self::Unavailable(ProblemBody::new(detail)),
                    ApiError::Internal => Self::Internal(ProblemBody::new(INTERNAL_DETAIL)),
                }
            }
        }
    };
}

problem_responses! {
    /// Every error an operation without a request body can answer.
    ErrorResponse {}
}

problem_responses! {
    /// Every error an operation on one queued job can answer.
    JobErrorResponse {
        /// The job is not in a state that allows this: only a dead job can be retried,
        /// and a running one cannot be removed.
        Conflict = 409,
    }
}

problem_responses! {
    /// Every error an operation with a JSON request body can answer.
    BodyErrorResponse {
        /// The body is larger than the API accepts.
        PayloadTooLarge = 413,
        /// The body is not `application/json`.
        UnsupportedMediaType = 415,
    }
}

/// poem-openapi's message for a parameter or body that failed its schema, in words a
/// person can act on: the parameter or field as the spec names it, never poem-openapi's
/// internal names (`param0`, `integer_int64`, `optional_list_string`, our type names).
fn explain(message: &str) -> String {
    if message.contains("parameter `user_id`") {
        return "`user_id` must be a WhatsApp id: the number's digits, +digits or whatsapp:+digits".into();
    }
    if message.contains("parameter `limit`") {
        return "`limit` must be a whole number between 1 and 100".into();
    }
    if let Some(name) = parameter_name(message) {
        return if message.contains("integer") {
            format!("`{name}` must be a whole number")
        } else {
            format!(
                "`{name}` is not valid: {}",
                without_internal_names(message.split_once(": ").map_or("", |(_, r)| r))
            )
        };
    }
    let message = message.strip_prefix("parse request payload error: ").unwrap_or(message);
    without_internal_names(message)
}

/// The parameter a poem-openapi parse error is about, as the spec names it. A path
/// parameter appears as `param0`, `param1`, … in order: ours are all called `id` or
/// `user_id`, and only `id` can fail to parse past the router (it is an integer).
fn parameter_name(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("failed to parse parameter `")
        .or_else(|| message.strip_prefix("failed to parse path `"))?;
    let name = rest.split('`').next()?;
    Some(if name.starts_with("param") && name[5..].bytes().all(|b| b.is_ascii_digit()) {
        "id".into()
    } else {
        name.into()
    })
}

/// `message` without poem-openapi's ` (occurred while parsing "TypeName")` trail and
/// `failed to parse "type_name": ` lead-ins, which name Rust types, not the API's fields.
fn without_internal_names(message: &str) -> String {
    let mut text = message.to_string();
    while let Some(start) = text.find(" (occurred while parsing \"") {
        let end = text[start..].find("\")").map_or(text.len(), |i| start + i + 2);
        text.replace_range(start..end, "");
    }
    while let Some(start) = text.find("failed to parse \"") {
        let end = text[start + 17..].find("\": ").map_or(text.len(), |i| start + 17 + i + 3);
        text.replace_range(start..end, "");
    }
    text
}

/// Rewrites any error poem or poem-openapi produced (a parse error, a failed auth, an
/// unknown route, a body too large) as a problem; answers already in that shape pass.
pub async fn problem_for_poem_error(error: poem::Error) -> Response {
    let status = error.status();
    let detail = match status {
        StatusCode::NOT_FOUND => "no such route; see /docs for the API".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "this route does not take that method; see /docs".to_string(),
        StatusCode::UNAUTHORIZED => "send the API key as `Authorization: Bearer <key>`".to_string(),
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large".to_string(),
        _ => explain(&error.to_string()),
    };
    let response = error.into_response();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON));
    if is_problem {
        return response;
    }
    Problem::new(status, detail).into_poem_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_are_told_without_internal_names() {
        assert_eq!(
            explain("failed to parse path `param0`: failed to parse \"integer_int64\": invalid digit found in string"),
            "`id` must be a whole number"
        );
        assert_eq!(
            explain(
                "parse request payload error: `labels` item 0 must be a string, not a number (occurred while parsing \
                 \"optional_list_string\") (occurred while parsing \"MemoryCreate\")"
            ),
            "`labels` item 0 must be a string, not a number"
        );
        assert_eq!(explain("failed to parse parameter `range`: bad"), "`range` is not valid: bad");
    }

    fn documented_example(schema: MetaSchemaRef) -> Option<u64> {
        let MetaSchemaRef::Inline(schema) = schema else { return None };
        assert!(matches!(schema.all_of.as_slice(), [MetaSchemaRef::Reference(name)] if name == "Problem"));
        schema.example.as_ref().and_then(|example| example["status"].as_u64())
    }

    #[test]
    fn each_error_status_is_documented_with_an_example_of_that_status() {
        assert_eq!(documented_example(ProblemBody::<400>::schema_ref()), Some(400));
        assert_eq!(documented_example(ProblemBody::<401>::schema_ref()), Some(401));
        assert_eq!(documented_example(ProblemBody::<404>::schema_ref()), Some(404));
        assert_eq!(documented_example(ProblemBody::<413>::schema_ref()), Some(413));
        assert_eq!(documented_example(ProblemBody::<415>::schema_ref()), Some(415));
        assert_eq!(documented_example(ProblemBody::<429>::schema_ref()), Some(429));
        assert_eq!(documented_example(ProblemBody::<500>::schema_ref()), Some(500));
        assert_eq!(documented_example(ProblemBody::<503>::schema_ref()), Some(503));
    }
}
