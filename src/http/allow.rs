//! `Allow` on every 405 (RFC 9110 §15.5.6: a 405 must list the methods the resource
//! takes). poem's router answers 405 without it, and its error does not say which methods
//! the route has; this table, built from the OpenAPI document the server serves (plus the
//! routes outside it), says.

use std::sync::Arc;

use poem::http::{header, HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};

/// The order methods are listed in.
const METHOD_ORDER: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// One route: its path segments (`None` for a `{parameter}`), its template as the spec
/// writes it (`/memories/{id}`, what metrics label requests with) and its `Allow` value.
struct AllowedRoute {
    segments: Vec<Option<String>>,
    template: String,
    allow: HeaderValue,
}

/// The methods each route takes, found by request path.
pub struct AllowedMethods {
    routes: Vec<AllowedRoute>,
}

impl AllowedMethods {
    /// The table of the OpenAPI document `spec` (JSON), with `extra` routes outside it
    /// (`/webhook`) given as path and methods. `HEAD` is allowed wherever `GET` is, as
    /// poem answers it.
    ///
    /// # Errors
    /// When `spec` is not an OpenAPI document in JSON.
    pub fn from_spec(spec: &str, extra: &[(&str, &[&str])]) -> anyhow::Result<Self> {
        let document: serde_json::Value = serde_json::from_str(spec)?;
        let paths = document["paths"].as_object().ok_or_else(|| anyhow::anyhow!("the spec has no paths"))?;
        let mut routes: Vec<(String, Vec<String>)> = paths
            .iter()
            .map(|(path, operations)| {
                let methods = operations
                    .as_object()
                    .map(|ops| ops.keys().map(|m| m.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                (path.clone(), methods)
            })
            .collect();
        routes.extend(
            extra.iter().map(|(path, methods)| (path.to_string(), methods.iter().map(|m| m.to_string()).collect())),
        );
        let routes = routes
            .into_iter()
            .map(|(path, mut methods)| {
                if methods.iter().any(|m| m == "GET") && !methods.iter().any(|m| m == "HEAD") {
                    methods.push("HEAD".into());
                }
                methods.sort_by_key(|m| METHOD_ORDER.iter().position(|o| o == m).unwrap_or(METHOD_ORDER.len()));
                let segments =
                    split(&path).map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_string())).collect();
                Ok(AllowedRoute { segments, template: path, allow: HeaderValue::from_str(&methods.join(", "))? })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { routes })
    }

    /// The `Allow` value of the route `path` belongs to: the one with the most literal
    /// segments when several match (`/memories/list` before `/memories/{id}`).
    pub fn for_path(&self, path: &str) -> Option<&HeaderValue> {
        self.route_of(path).map(|route| &route.allow)
    }

    /// The template of the route `path` belongs to (`/memories/{id}` for `/memories/12`):
    /// a label of bounded cardinality that never carries a user's id.
    pub fn template_of(&self, path: &str) -> Option<&str> {
        self.route_of(path).map(|route| route.template.as_str())
    }

    fn route_of(&self, path: &str) -> Option<&AllowedRoute> {
        let segments: Vec<&str> = split(path).collect();
        self.routes
            .iter()
            .filter(|route| {
                route.segments.len() == segments.len()
                    && route.segments.iter().zip(&segments).all(|(want, got)| want.as_deref().is_none_or(|w| w == *got))
            })
            .max_by_key(|route| route.segments.iter().filter(|s| s.is_some()).count())
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// Adds `Allow` to a 405 answer, from `table`.
pub async fn with_allow<E: Endpoint>(
    endpoint: Arc<E>,
    request: Request,
    table: Arc<AllowedMethods>,
) -> poem::Result<Response> {
    let path = request.uri().path().to_string();
    let mut response = match endpoint.call(request).await {
        Ok(response) => response.into_response(),
        Err(error) => error.into_response(),
    };
    if response.status() == StatusCode::METHOD_NOT_ALLOWED && !response.headers().contains_key(header::ALLOW) {
        if let Some(allow) = table.for_path(&path) {
            response.headers_mut().insert(header::ALLOW, allow.clone());
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> AllowedMethods {
        let spec = r#"{"paths": {"/memories/{id}": {"get": {}, "patch": {}, "delete": {}},
                                 "/memories/list": {"get": {}}, "/memories": {"post": {}, "get": {}}}}"#;
        AllowedMethods::from_spec(spec, &[("/webhook", &["GET", "POST", "HEAD"])]).unwrap()
    }

    #[test]
    fn a_route_lists_its_methods_with_head_beside_get() {
        assert_eq!(table().for_path("/memories/12").unwrap(), "GET, HEAD, PATCH, DELETE");
        assert_eq!(table().for_path("/memories").unwrap(), "GET, HEAD, POST");
        assert_eq!(table().for_path("/webhook").unwrap(), "GET, HEAD, POST");
    }

    #[test]
    fn the_most_literal_route_wins() {
        assert_eq!(table().for_path("/memories/list").unwrap(), "GET, HEAD");
    }

    #[test]
    fn a_path_is_labelled_with_its_template() {
        assert_eq!(table().template_of("/memories/12"), Some("/memories/{id}"));
        assert_eq!(table().template_of("/memories/list"), Some("/memories/list"));
        assert_eq!(table().template_of("/webhook"), Some("/webhook"));
        assert_eq!(table().template_of("/secret/15551234567"), None);
    }

    #[test]
    fn an_unknown_path_has_no_methods() {
        assert!(table().for_path("/nothing/here/at/all").is_none());
    }
}
