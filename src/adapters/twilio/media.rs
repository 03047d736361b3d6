//! Downloads inbound WhatsApp media from Twilio: credentials only to the API host, the
//! CDN redirect followed without them, bounded in size, time and hops.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;
use url::{Host, Url};

use super::sender::{describe_transport_error, TwilioApiError};
use crate::adapters::outbound;
use crate::config::Secret;
use crate::domain::ports::{FetchError, FetchedMedia, MediaFetcher};

/// Redirects followed before giving up. Twilio answers one (API to CDN); a few more
/// leave room for a CDN hop without letting a loop run on.
pub const MAX_REDIRECTS: usize = 3;

/// How much of an error body is read to explain a failure; the rest is not worth the wait.
const ERROR_BODY_CAP: u64 = 4096;

/// CDN hosts a media redirect may lead to (over https only), besides the API host itself.
const TWILIO_MEDIA_HOST_SUFFIXES: [&str; 2] = [".twiliocdn.com", ".twilio.com"];

/// The [`MediaFetcher`] for Twilio's `MediaUrlN`: fetches only URLs on the configured API
/// base (so a forged URL can neither reach an internal host nor receive the account's
/// credentials), sends Basic auth there, and follows the CDN redirect without it.
pub struct TwilioMediaFetcher {
    /// Never follows redirects itself: each hop is checked, and stripped of credentials.
    client: reqwest::Client,
    api_base: Url,
    account_sid: String,
    auth_token: Secret,
    max_bytes: u64,
    /// Bounds the whole download, every redirect included.
    timeout: Duration,
}

impl TwilioMediaFetcher {
    /// A fetcher for one account. `api_base` is `https://api.twilio.com` in production
    /// and a loopback fake in tests; `max_bytes` caps one item (WhatsApp allows 16 MB);
    /// `timeout` bounds one whole download.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS backend).
    pub fn new(
        api_base: Url,
        account_sid: String,
        auth_token: Secret,
        max_bytes: u64,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("whatsapp-memory/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, api_base, account_sid, auth_token, max_bytes, timeout })
    }

    /// Requests `url` and each redirect target in turn; credentials go with the first
    /// request only, which [`check_media_url`] has placed on the API host.
    async fn download(&self, url: Url) -> Result<FetchedMedia, FetchError> {
        let mut current = url;
        let mut redirects = 0;
        loop {
            let on_api_host = redirects == 0;
            let mut request = self.client.get(current.clone());
            if on_api_host {
                request = request.basic_auth(&self.account_sid, Some(self.auth_token.expose()));
            }
            let mut response = outbound::send("twilio", "fetch_media", request)
                .await
                .map_err(|e| FetchError::Retryable(describe_transport_error(e)))?;
            let status = response.status();
            if is_followable_redirect(status) {
                if redirects == MAX_REDIRECTS {
                    return Err(FetchError::Gone(format!("more than {MAX_REDIRECTS} redirects")));
                }
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| FetchError::Retryable(format!("HTTP {status} without a usable Location")))?;
                let target = resolve_redirect(&current, location)?;
                check_redirect_target(&target, &self.api_base)?;
                tracing::debug!(%status, host = target.host_str().unwrap_or_default(), "following media redirect");
                redirects += 1;
                current = target;
                continue;
            }
            if status.is_success() {
                let content_type =
                    response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
                let bytes = match read_body(&mut response, self.max_bytes).await {
                    Ok(bytes) => bytes,
                    Err(BodyError::TooLarge) => return Err(FetchError::TooLarge { limit: self.max_bytes }),
                    Err(BodyError::Transport(e)) => return Err(FetchError::Retryable(describe_transport_error(e))),
                };
                tracing::info!(bytes = bytes.len(), content_type = content_type.as_deref(), "media downloaded");
                return Ok(FetchedMedia { bytes, content_type });
            }
            let body = read_error_body(&mut response).await;
            let error = classify_status(status, on_api_host, &body);
            tracing::warn!(%status, %error, "media download failed");
            return Err(error);
        }
    }
}

impl std::fmt::Debug for TwilioMediaFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TwilioMediaFetcher")
            .field("api_base", &self.api_base.as_str())
            .field("account_sid", &self.account_sid)
            .field("auth_token", &self.auth_token)
            .field("max_bytes", &self.max_bytes)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[async_trait]
impl MediaFetcher for TwilioMediaFetcher {
    #[tracing::instrument(skip_all, fields(media = media_label(url)))]
    async fn fetch(&self, url: &str) -> Result<FetchedMedia, FetchError> {
        let url = check_media_url(url, &self.api_base, &self.account_sid)?;
        match tokio::time::timeout(self.timeout, self.download(url)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Retryable(format!("the download took longer than {:?}", self.timeout))),
        }
    }
}

/// The media sid (last path segment) for logs: enough to find the item, nothing secret.
fn media_label(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    last.get(..40).unwrap_or(last)
}

/// Accepts `raw` only when it names one media item of our own account on the API base:
/// `{base}/2010-04-01/Accounts/{our sid}/Messages/{MM|SM…}/Media/{ME…}`, with no query,
/// fragment or credentials of its own. It is the one request that carries the account's
/// Basic auth, and that auth opens every resource of the account (the Account resource
/// holds the auth token, the Messages list other people's messages): anything but a
/// media item is refused before a request is made.
fn check_media_url(raw: &str, api_base: &Url, account_sid: &str) -> Result<Url, FetchError> {
    let url = Url::parse(raw).map_err(|e| FetchError::Refused(format!("not a URL ({e})")))?;
    if has_userinfo(&url) {
        return Err(FetchError::Refused("the URL carries credentials of its own".into()));
    }
    if !same_origin(&url, api_base) {
        return Err(FetchError::Refused(format!("{} is not the Twilio API host {}", origin(&url), origin(api_base))));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(FetchError::Refused("a Twilio media URL has no query string or fragment".into()));
    }
    if !is_own_media_path(url.path(), api_base.path(), account_sid) {
        return Err(FetchError::Refused(
            "the URL is not a media item of this Twilio account (…/Accounts/AC…/Messages/MM…/Media/ME…)".into(),
        ));
    }
    Ok(url)
}

/// The API version every media URL Twilio sends is under.
const TWILIO_API_VERSION: &str = "2010-04-01";

/// Whether `path` (still percent-encoded, as the request will send it) is exactly
/// `{base_path}/2010-04-01/Accounts/{account_sid}/Messages/{MM|SM sid}/Media/{ME sid}`.
/// Segments are compared as sent: an encoded `%2F` or `..` is not a sid and fails.
fn is_own_media_path(path: &str, base_path: &str, account_sid: &str) -> bool {
    let base_path = base_path.trim_end_matches('/');
    let Some(rest) = path.strip_prefix(base_path).and_then(|rest| rest.strip_prefix('/')) else {
        return false;
    };
    let segments: Vec<&str> = rest.split('/').collect();
    matches!(
        segments.as_slice(),
        [version, "Accounts", account, "Messages", message, "Media", media]
            if *version == TWILIO_API_VERSION
                && !account_sid.is_empty()
                && *account == account_sid
                && (is_sid(message, "MM") || is_sid(message, "SM"))
                && is_sid(media, "ME")
    )
}

/// A Twilio resource sid: its two-letter prefix and 32 hexadecimal digits.
fn is_sid(segment: &str, prefix: &str) -> bool {
    segment.strip_prefix(prefix).is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Where a redirect may lead: `https` to Twilio's CDN or API host; plain `http` only to
/// the API base itself when that is a loopback test server.
fn check_redirect_target(target: &Url, api_base: &Url) -> Result<(), FetchError> {
    let allowed = !has_userinfo(target)
        && match target.scheme() {
            "https" => same_origin(target, api_base) || is_twilio_media_host(target),
            "http" => api_base.scheme() == "http" && is_loopback(api_base) && same_origin(target, api_base),
            _ => false,
        };
    if allowed {
        Ok(())
    } else {
        Err(FetchError::Refused(format!("redirect to {} is not a Twilio media host", origin(target))))
    }
}

/// `Location` resolved against the URL that answered, as a browser would.
fn resolve_redirect(current: &Url, location: &str) -> Result<Url, FetchError> {
    current.join(location.trim()).map_err(|e| FetchError::Refused(format!("redirect to an invalid URL ({e})")))
}

fn is_followable_redirect(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

/// 401/403: the credentials (or the CDN's signature) were refused, and asking again
/// the same way will not change that; 408/429/5xx may pass; other 4xx are final.
fn classify_status(status: StatusCode, on_api_host: bool, body: &[u8]) -> FetchError {
    let (code, message) = TwilioApiError::describe(status, body);
    let detail = match code {
        Some(code) => format!("HTTP {}, Twilio error {code}: {message}", status.as_u16()),
        None => message,
    };
    match status.as_u16() {
        401 | 403 if on_api_host => FetchError::Gone(format!("Twilio refused the account credentials ({detail})")),
        401 | 403 => FetchError::Gone(format!("the media host refused access ({detail})")),
        408 | 429 | 500..=599 => FetchError::Retryable(detail),
        400..=499 => FetchError::Gone(detail),
        _ => FetchError::Gone(format!("unexpected answer ({detail})")),
    }
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host() == b.host() && a.port_or_known_default() == b.port_or_known_default()
}

fn has_userinfo(url: &Url) -> bool {
    !url.username().is_empty() || url.password().is_some()
}

fn is_twilio_media_host(url: &Url) -> bool {
    matches!(url.host(), Some(Host::Domain(host)) if TWILIO_MEDIA_HOST_SUFFIXES.iter().any(|s| host.ends_with(s)))
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(host)) => host == "localhost",
        None => false,
    }
}

/// `scheme://host:port`, for messages (never the path: it may carry a signed token).
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

pub(crate) enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

/// The body, refused as soon as it is known to exceed `max_bytes`: at once from
/// `Content-Length`, else while streaming, so an oversized item is never held in memory.
pub(crate) async fn read_body(response: &mut reqwest::Response, max_bytes: u64) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|length| length > max_bytes) {
        return Err(BodyError::TooLarge);
    }
    // The declared length is only a hint for the first allocation, bounded either way.
    let hint = response.content_length().unwrap_or(0).min(max_bytes).min(1 << 20);
    let mut bytes = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if bytes.len() as u64 + chunk.len() as u64 > max_bytes {
            return Err(BodyError::TooLarge);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The start of an error body, to explain the failure; a broken body explains nothing.
pub(crate) async fn read_error_body(response: &mut reqwest::Response) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = usize::try_from(ERROR_BODY_CAP).unwrap_or(usize::MAX).saturating_sub(bytes.len());
        bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if bytes.len() as u64 >= ERROR_BODY_CAP {
            break;
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(raw: &str) -> Url {
        Url::parse(raw).unwrap()
    }

    const PRODUCTION: &str = "https://api.twilio.com";
    const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
    const OTHER_ACCOUNT: &str = "ACfedcba9876543210fedcba9876543210";
    const MESSAGE: &str = "MM0123456789abcdef0123456789abcdef";
    const MEDIA_SID: &str = "ME0123456789abcdef0123456789abcdef";
    const MEDIA: &str = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1";

    fn media_path(account: &str, message: &str, media: &str) -> String {
        format!("/2010-04-01/Accounts/{account}/Messages/{message}/Media/{media}")
    }

    #[test]
    fn media_items_of_our_account_on_the_api_host_are_accepted() {
        let path = media_path(ACCOUNT, MESSAGE, MEDIA_SID);
        assert!(check_media_url(&format!("{PRODUCTION}{path}"), &url(PRODUCTION), ACCOUNT).is_ok());
        assert!(check_media_url(&format!("https://api.twilio.com:443{path}"), &url(PRODUCTION), ACCOUNT).is_ok());
        let sms = media_path(ACCOUNT, &MESSAGE.replacen("MM", "SM", 1), MEDIA_SID);
        assert!(check_media_url(&format!("{PRODUCTION}{sms}"), &url(PRODUCTION), ACCOUNT).is_ok());
        let loopback = url("http://127.0.0.1:4010/");
        assert!(check_media_url(&format!("http://127.0.0.1:4010{path}"), &loopback, ACCOUNT).is_ok());
        let prefixed = url("http://127.0.0.1:4010/twilio/");
        assert!(check_media_url(&format!("http://127.0.0.1:4010/twilio{path}"), &prefixed, ACCOUNT).is_ok());
    }

    #[test]
    fn other_twilio_resources_are_refused_before_any_request() {
        let base = url(PRODUCTION);
        let media = media_path(ACCOUNT, MESSAGE, MEDIA_SID);
        for refused in [
            format!("/2010-04-01/Accounts/{ACCOUNT}.json"),
            format!("/2010-04-01/Accounts/{ACCOUNT}"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{MESSAGE}.json"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{MESSAGE}/Media.json"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{MESSAGE}/Media/{MEDIA_SID}.json"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Recordings.json"),
            format!("/2010-04-01/Accounts/{OTHER_ACCOUNT}/Recordings.json"),
            media_path(OTHER_ACCOUNT, MESSAGE, MEDIA_SID),
            media_path(ACCOUNT, "MM1", MEDIA_SID),
            media_path(ACCOUNT, MESSAGE, "ME1"),
            media_path(ACCOUNT, &MESSAGE.replacen("MM", "RE", 1), MEDIA_SID),
            media_path(ACCOUNT, MESSAGE, &MEDIA_SID.replacen("ME", "MM", 1)),
            media_path(ACCOUNT, MESSAGE, &MEDIA_SID.replacen('0', "g", 1)),
            media_path(&ACCOUNT.to_lowercase(), MESSAGE, MEDIA_SID),
            media.replace("2010-04-01", "2008-08-01"),
            format!("{media}/"),
            format!("{media}/x"),
            format!("/x{media}"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{MESSAGE}/Media/..%2F..%2F..%2FAccounts.json"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages/{MESSAGE}/Media/%2e%2e"),
            format!("{media}?PageSize=1000"),
            format!("{media}?"),
            format!("{media}#x"),
            format!("/2010-04-01/Accounts/{ACCOUNT}/Messages.json?To=whatsapp:+15551234567"),
            "/".to_string(),
            String::new(),
        ] {
            let raw = format!("{PRODUCTION}{refused}");
            assert!(matches!(check_media_url(&raw, &base, ACCOUNT), Err(FetchError::Refused(_))), "{raw} was accepted");
        }
        // An account sid that is not configured never matches an empty path segment.
        let empty_account = format!("{PRODUCTION}/2010-04-01/Accounts//Messages/{MESSAGE}/Media/{MEDIA_SID}");
        assert!(check_media_url(&empty_account, &base, "").is_err());
    }

    #[test]
    fn media_urls_anywhere_else_are_refused() {
        let base = url(PRODUCTION);
        let path = media_path(ACCOUNT, MESSAGE, MEDIA_SID);
        for refused in [
            format!("https://evil.example{path}"),
            format!("http://api.twilio.com{path}"),
            format!("https://api.twilio.com:8443{path}"),
            format!("https://api.twilio.com.evil.example{path}"),
            format!("https://user:pass@api.twilio.com{path}"),
            "http://169.254.169.254/latest/meta-data".to_string(),
            "file:///etc/passwd".to_string(),
            "not a url".to_string(),
        ] {
            assert!(
                matches!(check_media_url(&refused, &base, ACCOUNT), Err(FetchError::Refused(_))),
                "{refused} was accepted"
            );
        }
        let loopback = url("http://127.0.0.1:4010");
        assert!(check_media_url(&format!("http://127.0.0.2:4010{path}"), &loopback, ACCOUNT).is_err());
    }

    #[test]
    fn redirects_may_lead_to_twilios_cdn_over_https_only() {
        let base = url(PRODUCTION);
        for allowed in ["https://media.twiliocdn.com/AC1/abc?Expires=1", "https://mms.twilio.com/x", MEDIA] {
            assert!(check_redirect_target(&url(allowed), &base).is_ok(), "{allowed} was refused");
        }
        for refused in [
            "http://media.twiliocdn.com/x",
            "https://twiliocdn.com.evil.example/x",
            "https://eviltwiliocdn.com/x",
            "https://evil.example/x",
            "https://u:p@media.twiliocdn.com/x",
            "ftp://media.twiliocdn.com/x",
            "http://127.0.0.1/x",
        ] {
            assert!(check_redirect_target(&url(refused), &base).is_err(), "{refused} was accepted");
        }
    }

    #[test]
    fn plain_http_redirects_are_allowed_only_back_to_a_loopback_api_base() {
        let loopback = url("http://127.0.0.1:4010/");
        assert!(check_redirect_target(&url("http://127.0.0.1:4010/cdn/1"), &loopback).is_ok());
        assert!(check_redirect_target(&url("http://127.0.0.1:4011/cdn/1"), &loopback).is_err());
        assert!(check_redirect_target(&url("http://localhost:4010/cdn/1"), &loopback).is_err());
        let plain_remote = url("http://twilio-proxy.internal:4010/");
        assert!(check_redirect_target(&url("http://twilio-proxy.internal:4010/cdn/1"), &plain_remote).is_err());
    }

    #[test]
    fn redirects_resolve_against_the_url_that_answered() {
        let current = url("http://127.0.0.1:4010/cdn/abc?hop=1");
        assert_eq!(
            resolve_redirect(&current, "/cdn/abc?hop=2").unwrap().as_str(),
            "http://127.0.0.1:4010/cdn/abc?hop=2"
        );
        assert_eq!(resolve_redirect(&current, "def").unwrap().as_str(), "http://127.0.0.1:4010/cdn/def");
        assert_eq!(
            resolve_redirect(&current, "https://media.twiliocdn.com/x").unwrap().as_str(),
            "https://media.twiliocdn.com/x"
        );
        assert_eq!(resolve_redirect(&current, "//evil.example/x").unwrap().host_str(), Some("evil.example"));
    }

    #[test]
    fn statuses_say_whether_a_retry_can_help() {
        let not_found = br#"{"code": 20404, "message": "The requested resource was not found", "status": 404}"#;
        assert_eq!(
            classify_status(StatusCode::NOT_FOUND, true, not_found),
            FetchError::Gone("HTTP 404, Twilio error 20404: The requested resource was not found".into())
        );
        assert!(matches!(classify_status(StatusCode::GONE, false, b""), FetchError::Gone(_)));
        assert!(
            matches!(classify_status(StatusCode::UNAUTHORIZED, true, b""), FetchError::Gone(m) if m.contains("credentials"))
        );
        assert!(
            matches!(classify_status(StatusCode::FORBIDDEN, false, b""), FetchError::Gone(m) if m.contains("refused access"))
        );
        for retryable in [StatusCode::TOO_MANY_REQUESTS, StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_GATEWAY] {
            assert!(classify_status(retryable, true, b"").is_retryable(), "{retryable}");
        }
        assert!(!classify_status(StatusCode::NOT_MODIFIED, false, b"").is_retryable());
    }

    #[test]
    fn only_real_redirects_are_followed() {
        for status in [301, 302, 303, 307, 308] {
            assert!(is_followable_redirect(StatusCode::from_u16(status).unwrap()));
        }
        assert!(!is_followable_redirect(StatusCode::NOT_MODIFIED));
        assert!(!is_followable_redirect(StatusCode::OK));
    }

    #[test]
    fn logs_name_the_media_sid_only() {
        assert_eq!(media_label(&format!("{MEDIA}?token=x")), "ME1");
        assert_eq!(media_label("garbage"), "garbage");
    }
}
