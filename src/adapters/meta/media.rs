//! Downloads media sent through the Cloud API: `GET /{media-id}` on the Graph API gives
//! a short-lived URL, fetched with the same bearer, on Meta's hosts only (each redirect
//! checked, never followed elsewhere), within the size limit, and checked against the
//! SHA-256 Meta announced. Also routes a media item to the fetcher of its channel.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::{Host, Url};

use super::graph::{graph_url, is_transient, GraphError, TOKEN_INVALID};
use super::signature::hex;
use crate::adapters::twilio::media::{read_body, read_error_body, BodyError};
use crate::adapters::twilio::sender::describe_transport_error_of;
use crate::config::{MetaConfig, Secret};
use crate::domain::ports::{FetchError, FetchedMedia, MediaFetcher};

/// How a Cloud API media item is named inside the service (in a media job, in
/// `media_assets.media_url`): the media id, and the hex SHA-256 from the webhook.
pub const MEDIA_SCHEME: &str = "meta-media:";
/// Redirects followed from the short-lived URL, each to a Meta host.
const MAX_REDIRECTS: usize = 3;
/// Hosts (and their subdomains) that serve Cloud API media. The bearer goes nowhere else.
const META_MEDIA_DOMAINS: [&str; 5] = ["fbsbx.com", "fbcdn.net", "facebook.com", "whatsapp.net", "whatsapp.com"];

/// The service's name for a Cloud API media item.
pub fn media_reference(media_id: &str, sha256_hex: Option<&str>) -> String {
    match sha256_hex {
        Some(sha) => format!("{MEDIA_SCHEME}{media_id}?sha256={sha}"),
        None => format!("{MEDIA_SCHEME}{media_id}"),
    }
}

/// The media id (digits only: it becomes a Graph path segment) and the expected hex
/// SHA-256 of a reference; `None` when it is not one.
pub fn parse_media_reference(reference: &str) -> Option<(&str, Option<&str>)> {
    let rest = reference.strip_prefix(MEDIA_SCHEME)?;
    let (id, sha) = match rest.split_once("?sha256=") {
        Some((id, sha)) => (id, Some(sha)),
        None => (rest, None),
    };
    let id_ok = !id.is_empty() && id.len() <= 40 && id.bytes().all(|b| b.is_ascii_digit());
    let sha_ok = sha.is_none_or(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()));
    (id_ok && sha_ok).then_some((id, sha))
}

/// The media lookup's answer: `{"url", "mime_type", "sha256" (hex), "file_size", "id"}`.
#[derive(Debug, Deserialize)]
struct MediaInfo {
    url: String,
    mime_type: Option<String>,
    sha256: Option<String>,
    file_size: Option<u64>,
}

/// The [`MediaFetcher`] for `meta-media:` references.
pub struct MetaMediaFetcher {
    client: reqwest::Client,
    graph_base: Url,
    graph_version: String,
    access_token: Secret,
    max_bytes: u64,
    /// Bounds the lookup and the download together.
    timeout: Duration,
}

impl MetaMediaFetcher {
    /// A fetcher with the channel's token; `max_bytes` caps one item.
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(config: &MetaConfig, max_bytes: u64, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("whatsapp-memory/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            graph_base: config.graph_base_url.clone(),
            graph_version: config.graph_version.clone(),
            access_token: config.access_token.clone(),
            max_bytes,
            timeout,
        })
    }

    /// `GET /{version}/{media-id}`: where the bytes are, and what they must hash to.
    async fn look_up(&self, media_id: &str) -> Result<MediaInfo, FetchError> {
        let url = graph_url(&self.graph_base, &self.graph_version, &[media_id])
            .map_err(|e| FetchError::NotConfigured(e.to_string()))?;
        let mut response = self
            .client
            .get(url)
            .bearer_auth(self.access_token.expose())
            .send()
            .await
            .map_err(|e| FetchError::Retryable(describe_transport_error_of("Meta", e)))?;
        let status = response.status();
        if !status.is_success() {
            let body = read_error_body(&mut response).await;
            return Err(classify(status, &body));
        }
        let body = read_body(&mut response, 64 * 1024).await.map_err(|e| match e {
            BodyError::TooLarge => FetchError::Retryable("the media lookup's answer is too large".into()),
            BodyError::Transport(e) => FetchError::Retryable(describe_transport_error_of("Meta", e)),
        })?;
        serde_json::from_slice(&body)
            .map_err(|e| FetchError::Retryable(format!("the media lookup's answer could not be read: {e}")))
    }

    /// Fetches the short-lived URL (and Meta-host redirects) with the bearer.
    async fn download(&self, first: Url) -> Result<FetchedMedia, FetchError> {
        let mut current = first;
        for hop in 0..=MAX_REDIRECTS {
            check_media_host(&current, &self.graph_base)?;
            let mut response = self
                .client
                .get(current.clone())
                .bearer_auth(self.access_token.expose())
                .send()
                .await
                .map_err(|e| FetchError::Retryable(describe_transport_error_of("Meta", e)))?;
            let status = response.status();
            if matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308) {
                let location = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
                current = current
                    .join(location.trim())
                    .map_err(|e| FetchError::Refused(format!("redirect to an invalid URL ({e})")))?;
                tracing::debug!(hop, host = current.host_str().unwrap_or_default(), "following media redirect");
                continue;
            }
            if !status.is_success() {
                let body = read_error_body(&mut response).await;
                return Err(classify(status, &body));
            }
            let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
            let bytes = read_body(&mut response, self.max_bytes).await.map_err(|e| match e {
                BodyError::TooLarge => FetchError::TooLarge { limit: self.max_bytes },
                BodyError::Transport(e) => FetchError::Retryable(describe_transport_error_of("Meta", e)),
            })?;
            return Ok(FetchedMedia { bytes, content_type });
        }
        Err(FetchError::Gone(format!("more than {MAX_REDIRECTS} redirects")))
    }

    async fn fetch_item(&self, media_id: &str, announced_sha256: Option<&str>) -> Result<FetchedMedia, FetchError> {
        let info = self.look_up(media_id).await?;
        if info.file_size.is_some_and(|size| size > self.max_bytes) {
            return Err(FetchError::TooLarge { limit: self.max_bytes });
        }
        let url =
            Url::parse(&info.url).map_err(|e| FetchError::Refused(format!("the media URL is not a URL ({e})")))?;
        let mut fetched = self.download(url).await?;
        let actual = hex(&Sha256::digest(&fetched.bytes));
        for expected in [info.sha256.as_deref(), announced_sha256].into_iter().flatten() {
            if !expected.eq_ignore_ascii_case(&actual) {
                // A truncated or damaged transfer: another download may be whole.
                return Err(FetchError::Retryable(format!(
                    "the downloaded media does not match its SHA-256 ({actual} instead of {expected})"
                )));
            }
        }
        if fetched.content_type.is_none() {
            fetched.content_type = info.mime_type;
        }
        tracing::info!(bytes = fetched.bytes.len(), "media downloaded from Meta");
        Ok(fetched)
    }
}

impl std::fmt::Debug for MetaMediaFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaMediaFetcher")
            .field("graph_base", &self.graph_base.as_str())
            .field("access_token", &self.access_token)
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

#[async_trait]
impl MediaFetcher for MetaMediaFetcher {
    #[tracing::instrument(skip_all)]
    async fn fetch(&self, reference: &str) -> Result<FetchedMedia, FetchError> {
        let (media_id, sha256) = parse_media_reference(reference)
            .ok_or_else(|| FetchError::Refused("not a Cloud API media reference (meta-media:<digits>)".into()))?;
        match tokio::time::timeout(self.timeout, self.fetch_item(media_id, sha256)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Retryable(format!("the download took longer than {:?}", self.timeout))),
        }
    }
}

/// A failed Graph or CDN call: rate limits and 5xx may pass, an invalid token may be
/// renewed (and is said loudly), anything else is final.
fn classify(status: StatusCode, body: &[u8]) -> FetchError {
    let (code, message) = GraphError::describe(status, body);
    let detail = match code {
        Some(code) => format!("HTTP {}, Meta error {code}: {message}", status.as_u16()),
        None => message,
    };
    if code == Some(TOKEN_INVALID) {
        tracing::error!(%detail, "META_ACCESS_TOKEN WAS REFUSED BY META: media cannot be downloaded until it is renewed");
        return FetchError::Retryable(detail);
    }
    if is_transient(status, code) {
        FetchError::Retryable(detail)
    } else {
        FetchError::Gone(detail)
    }
}

/// Only `https` on a Meta media host; plain `http` only to the Graph base itself when
/// that is a loopback test server. Never a URL with credentials of its own.
fn check_media_host(url: &Url, graph_base: &Url) -> Result<(), FetchError> {
    let on_meta = matches!(url.host(), Some(Host::Domain(host))
        if META_MEDIA_DOMAINS.iter().any(|d| host == *d || host.ends_with(&format!(".{d}"))));
    let loopback_base = graph_base.scheme() == "http"
        && matches!(graph_base.host(), Some(Host::Ipv4(ip)) if ip.is_loopback())
        && url.scheme() == graph_base.scheme()
        && url.host() == graph_base.host()
        && url.port_or_known_default() == graph_base.port_or_known_default();
    let allowed = url.username().is_empty()
        && url.password().is_none()
        && ((url.scheme() == "https" && on_meta) || loopback_base);
    if allowed {
        Ok(())
    } else {
        Err(FetchError::Refused(format!("{} is not a Meta media host", url.origin().ascii_serialization())))
    }
}

/// Sends each media item to its channel's fetcher: `meta-media:` references to Meta's,
/// everything else (Twilio's `MediaUrlN`) to Twilio's.
pub struct ChannelFetcher {
    twilio: Arc<dyn MediaFetcher>,
    meta: Option<Arc<dyn MediaFetcher>>,
}

impl ChannelFetcher {
    /// Routes between the two; `meta` is `None` when the Cloud API is not configured.
    pub fn new(twilio: Arc<dyn MediaFetcher>, meta: Option<Arc<dyn MediaFetcher>>) -> Self {
        Self { twilio, meta }
    }
}

#[async_trait]
impl MediaFetcher for ChannelFetcher {
    async fn fetch(&self, url: &str) -> Result<FetchedMedia, FetchError> {
        if !url.starts_with(MEDIA_SCHEME) {
            return self.twilio.fetch(url).await;
        }
        match &self.meta {
            Some(meta) => meta.fetch(url).await,
            None => Err(FetchError::NotConfigured("META_ACCESS_TOKEN is needed to download Cloud API media".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_round_trip_and_only_digits_name_media() {
        let sha = "ab".repeat(32);
        assert_eq!(
            parse_media_reference(&media_reference("1479537139650973", Some(&sha))),
            Some(("1479537139650973", Some(sha.as_str())))
        );
        assert_eq!(parse_media_reference("meta-media:42"), Some(("42", None)));
        for bad in [
            "meta-media:",
            "meta-media:../me",
            "meta-media:1/2",
            "meta-media:1?sha256=xyz",
            "https://x/1",
            "meta-media:1?x=1",
        ] {
            assert_eq!(parse_media_reference(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_bearer_goes_only_to_meta_hosts_over_https() {
        let graph = Url::parse("https://graph.facebook.com").unwrap();
        let ok = |u: &str| check_media_host(&Url::parse(u).unwrap(), &graph).is_ok();
        assert!(ok("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1&ext=2&hash=3"));
        assert!(ok("https://scontent.xx.fbcdn.net/v/t1/1.jpg"));
        assert!(ok("https://mmg.whatsapp.net/d/f/x.enc"));
        assert!(!ok("http://lookaside.fbsbx.com/x"));
        assert!(!ok("https://fbsbx.com.evil.example/x"));
        assert!(!ok("https://evilfbsbx.com/x"));
        assert!(!ok("https://user:pw@lookaside.fbsbx.com/x"));
        assert!(!ok("https://169.254.169.254/latest"));
        let loopback = Url::parse("http://127.0.0.1:4100/").unwrap();
        assert!(check_media_host(&Url::parse("http://127.0.0.1:4100/cdn/1").unwrap(), &loopback).is_ok());
        assert!(check_media_host(&Url::parse("http://127.0.0.1:4101/cdn/1").unwrap(), &loopback).is_err());
    }

    #[test]
    fn failures_are_classified_by_code() {
        let token =
            br#"{"error": {"message": "Error validating access token", "type": "OAuthException", "code": 190}}"#;
        assert!(classify(StatusCode::UNAUTHORIZED, token).is_retryable());
        let missing =
            br#"{"error": {"message": "Unsupported get request", "type": "GraphMethodException", "code": 100}}"#;
        assert!(matches!(classify(StatusCode::BAD_REQUEST, missing), FetchError::Gone(_)));
        assert!(classify(StatusCode::SERVICE_UNAVAILABLE, b"").is_retryable());
    }
}
