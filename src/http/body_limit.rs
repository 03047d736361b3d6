//! A cap on request bodies for the REST API. poem's `SizeLimit` demands a `Content-Length`
//! even on a GET; this reads at most the cap, whatever the framing (chunked included),
//! and refuses a larger body with 413 before any handler sees it.

use poem::http::StatusCode;
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response, Result};

use super::problem::Problem;

/// Bodies larger than the limit are answered 413 as problem+json.
pub struct BodyLimit(pub usize);

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        BodyLimitEndpoint { inner, limit: self.0 }
    }
}

/// The endpoint [`BodyLimit`] wraps.
pub struct BodyLimitEndpoint<E> {
    inner: E,
    limit: usize,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut request: Request) -> Result<Self::Output> {
        let too_large = || {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {} KiB", self.limit / 1024),
            )
            .into_poem_response()
        };
        let declared = request
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > self.limit) {
            return Ok(too_large());
        }
        let body = request.take_body();
        match body.into_bytes_limit(self.limit).await {
            Ok(bytes) => request.set_body(Body::from(bytes)),
            Err(poem::error::ReadBodyError::PayloadTooLarge) => return Ok(too_large()),
            Err(error) => {
                return Ok(Problem::new(
                    StatusCode::BAD_REQUEST,
                    format!("the request body could not be read: {error}"),
                )
                .into_poem_response())
            }
        }
        self.inner.call(request).await.map(IntoResponse::into_response)
    }
}
