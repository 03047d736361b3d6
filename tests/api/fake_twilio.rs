//! A loopback fake of Twilio's REST API (sending messages, downloading media) as a small
//! poem server, behaving as CONTRACTS.md says the real one does, errors included.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use poem::http::{header, StatusCode};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Path, Query};
use poem::{get, handler, post, Body, EndpointExt, Request, Response, Route, Server};
use serde::Deserialize;
use serde_json::json;

use whatsapp_memory::config::is_e164;

/// Twilio's API version, the first segment of every REST path.
const API_VERSION: &str = "2010-04-01";
/// The CDN serves streamed media in chunks this big, so a size cap is hit mid-body.
const STREAM_CHUNK: usize = 1024;

/// A running fake Twilio on `127.0.0.1:<free port>`, with its own account sid and token.
/// It stops with the test's runtime.
pub struct FakeTwilio {
    base_url: String,
    state: Arc<FakeState>,
}

/// A message the fake accepted, as posted (`to`/`from` keep the `whatsapp:` prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRecord {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub body: String,
    /// RFC 2822, as Twilio shows it.
    pub date_created: String,
}

/// A template message the fake accepted (`ContentSid` instead of `Body`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRecord {
    pub sid: String,
    pub to: String,
    pub content_sid: String,
    /// `ContentVariables`, parsed.
    pub variables: serde_json::Value,
}

/// How many media requests reached the fake, so tests can prove a refused URL was never
/// requested and that credentials never reached the CDN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaRequests {
    /// GETs of media URLs on the API path (where Basic auth is required).
    pub api: usize,
    /// GETs of the CDN path the API redirects to, each hop counted.
    pub cdn: usize,
    /// CDN GETs that carried an `Authorization` header (refused with 400).
    pub cdn_with_authorization: usize,
}

/// How one media item is served, for tests of the fetcher's edges.
#[derive(Debug, Clone, Default)]
pub struct MediaOptions {
    /// Serve the CDN body in chunks without `Content-Length`, so only counting while
    /// streaming can enforce a size cap.
    pub streamed: bool,
    /// Redirects the CDN adds (relative `Location`s) after the API's 307.
    pub extra_redirects: usize,
    /// Where the API's 307 points instead of the fake's CDN (a foreign host, say).
    pub location: Option<String>,
}

struct FakeState {
    base_url: String,
    account_sid: String,
    auth_token: String,
    /// Makes the ids of this instance distinct from another's.
    nonce: u64,
    next_id: AtomicU64,
    inner: Mutex<Recorded>,
}

#[derive(Default)]
struct Recorded {
    /// By media sid (`ME…`), which is also the CDN id.
    media: HashMap<String, StoredMedia>,
    sent: Vec<SentRecord>,
    templates: Vec<TemplateRecord>,
    /// WhatsApp's 24-hour window is closed: free-form sends fail with 63016.
    window_closed: bool,
    send_failures: InjectedFailures,
    /// How long an accepted free-form send waits, already recorded, before it is answered.
    send_delay: Duration,
    media_failures: InjectedFailures,
    media_requests: MediaRequests,
    /// GETs of account resources other than media (the Account, message lists): what a
    /// forged media URL would make the fetcher read with our credentials.
    resource_reads: usize,
}

struct StoredMedia {
    bytes: Vec<u8>,
    content_type: String,
    options: MediaOptions,
}

/// The next `remaining` requests answer `status` with Twilio's error JSON.
#[derive(Default)]
struct InjectedFailures {
    remaining: u32,
    status: u16,
}

impl InjectedFailures {
    fn take(&mut self) -> Option<u16> {
        (self.remaining > 0).then(|| {
            self.remaining -= 1;
            self.status
        })
    }
}

/// Starts a fake Twilio with a fresh account sid and auth token. Any test file can use
/// it: start one per test, point an adapter (or the app's `TWILIO_API_BASE_URL`) at
/// [`FakeTwilio::base_url`], then assert on what it saw.
///
/// # Panics
/// When no loopback port can be bound (the test cannot run anyway).
pub async fn start() -> FakeTwilio {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.expect("a loopback port for fake Twilio");
    let address = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).expect("a socket address");
    let base_url = format!("http://{address}");
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or_default()
        ^ u64::from(address.port());
    let state = Arc::new(FakeState {
        base_url: base_url.clone(),
        account_sid: format!("AC{nonce:016x}{:016x}", u64::MAX - nonce),
        auth_token: format!("{:016x}{nonce:016x}", nonce.rotate_left(17)),
        nonce,
        next_id: AtomicU64::new(1),
        inner: Mutex::default(),
    });
    let routes = Route::new()
        .at(format!("/{API_VERSION}/Accounts/:account_json"), get(fetch_account))
        .at(format!("/{API_VERSION}/Accounts/:account/Messages.json"), post(create_message).get(list_messages))
        .at(format!("/{API_VERSION}/Accounts/:account/Messages/:message/Media/:media"), get(api_media))
        .at("/cdn/:media", get(cdn_media))
        .data(state.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(routes));
    FakeTwilio { base_url, state }
}

impl FakeTwilio {
    /// `http://127.0.0.1:<port>`, without a trailing slash: the API base to configure.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The only account sid the fake accepts.
    pub fn account_sid(&self) -> &str {
        &self.state.account_sid
    }

    /// The only auth token the fake accepts.
    pub fn auth_token(&self) -> &str {
        &self.state.auth_token
    }

    /// The Messages resource of the fake's account, for tests that post to it directly.
    pub fn messages_url(&self) -> String {
        format!("{}/{API_VERSION}/Accounts/{}/Messages.json", self.base_url, self.state.account_sid)
    }

    /// Stores a media item and returns its `MediaUrl` as Twilio would put it in a webhook:
    /// `{base}/2010-04-01/Accounts/{sid}/Messages/MM…/Media/ME…`.
    pub fn add_media(&self, bytes: impl Into<Vec<u8>>, content_type: &str) -> String {
        self.add_media_with(bytes, content_type, MediaOptions::default())
    }

    /// As [`FakeTwilio::add_media`], served as `options` say.
    pub fn add_media_with(&self, bytes: impl Into<Vec<u8>>, content_type: &str, options: MediaOptions) -> String {
        let message_sid = self.state.new_sid("MM");
        let media_sid = self.state.new_sid("ME");
        let stored = StoredMedia { bytes: bytes.into(), content_type: content_type.to_string(), options };
        self.state.recorded().media.insert(media_sid.clone(), stored);
        self.media_url(&message_sid, &media_sid)
    }

    /// A well-formed media URL of this account that names no stored item (Twilio: 404).
    pub fn unknown_media_url(&self) -> String {
        self.media_url(&self.state.new_sid("MM"), &self.state.new_sid("ME"))
    }

    /// Makes the next `n` sends fail with `status` (429 comes with code 20429 and
    /// `Retry-After: 1`; 500 with code 20500; 400 with 21211), before auth is checked,
    /// as an overloaded edge would.
    pub fn fail_next_sends(&self, n: u32, status: u16) {
        self.state.recorded().send_failures = InjectedFailures { remaining: n, status };
    }

    /// Answers every free-form send `delay` after accepting (and recording) it, as a slow
    /// edge does: a sender that dies meanwhile has had its message accepted without ever
    /// hearing so, which is what its next attempt must find out. `Duration::ZERO` (the
    /// default) answers at once.
    pub fn set_send_delay(&self, delay: Duration) {
        self.state.recorded().send_delay = delay;
    }

    /// Makes the next `n` media GETs on the API path fail with `status`, as
    /// [`FakeTwilio::fail_next_sends`] does for sends.
    pub fn fail_next_media(&self, n: u32, status: u16) {
        self.state.recorded().media_failures = InjectedFailures { remaining: n, status };
    }

    /// Closes (or opens) WhatsApp's 24-hour window: while closed, a free-form send is
    /// refused with error 63016 and only templates go through.
    pub fn set_window_closed(&self, closed: bool) {
        self.state.recorded().window_closed = closed;
    }

    /// Every template message accepted so far, oldest first.
    pub fn templates(&self) -> Vec<TemplateRecord> {
        self.state.recorded().templates.clone()
    }

    /// Every message accepted so far, oldest first.
    pub fn sent(&self) -> Vec<SentRecord> {
        self.state.recorded().sent.clone()
    }

    /// The media requests seen so far.
    pub fn media_requests(&self) -> MediaRequests {
        self.state.recorded().media_requests
    }

    /// GETs of the Account resource and of message lists seen so far.
    pub fn resource_reads(&self) -> usize {
        self.state.recorded().resource_reads
    }

    /// The Account resource of the fake's account (it holds the auth token, as Twilio's does).
    pub fn account_url(&self) -> String {
        format!("{}/{API_VERSION}/Accounts/{}.json", self.base_url, self.state.account_sid)
    }

    fn media_url(&self, message_sid: &str, media_sid: &str) -> String {
        format!(
            "{}/{API_VERSION}/Accounts/{}/Messages/{message_sid}/Media/{media_sid}",
            self.base_url, self.state.account_sid
        )
    }
}

impl FakeState {
    fn recorded(&self) -> MutexGuard<'_, Recorded> {
        self.inner.lock().expect("fake Twilio state lock")
    }

    /// A 34-character sid with Twilio's prefix (`SM`, `MM`, `ME`), unique per instance.
    fn new_sid(&self, prefix: &str) -> String {
        format!("{prefix}{:016x}{:016x}", self.nonce, self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Whether the request's path names our account and it carries our Basic credentials.
    fn is_authorized(&self, request: &Request, account_in_path: &str) -> bool {
        let credentials = request
            .header(header::AUTHORIZATION)
            .and_then(|value| value.strip_prefix("Basic "))
            .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok())
            .and_then(|decoded| String::from_utf8(decoded).ok());
        account_in_path == self.account_sid
            && credentials.is_some_and(|c| c == format!("{}:{}", self.account_sid, self.auth_token))
    }
}

/// Twilio's error document, with the status it describes.
fn twilio_error(status: u16, code: i64, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    });
    let mut response = Response::builder()
        .status(StatusCode::from_u16(status).expect("a valid status"))
        .content_type("application/json")
        .body(body.to_string());
    if status == 401 {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, "Basic realm=\"Twilio API\"".parse().unwrap());
    }
    if status == 429 {
        response.headers_mut().insert(header::RETRY_AFTER, "1".parse().unwrap());
    }
    response
}

/// The error Twilio answers with for an injected failure status.
fn injected_failure(status: u16) -> Response {
    match status {
        400 => twilio_error(400, 21211, "Invalid 'To' Phone Number"),
        401 => unauthenticated(),
        404 => twilio_error(404, 20404, "The requested resource was not found"),
        429 => twilio_error(429, 20429, "Too Many Requests"),
        503 => twilio_error(503, 20503, "Service Unavailable"),
        500 => twilio_error(500, 20500, "Internal Server Error"),
        other => twilio_error(other, 20000 + i64::from(other), "Injected failure"),
    }
}

fn unauthenticated() -> Response {
    twilio_error(401, 20003, "Authenticate")
}

/// `POST /2010-04-01/Accounts/{sid}/Messages.json`: validates as Twilio does, records,
/// and answers `201` with the Message resource.
#[handler]
async fn create_message(
    Path(account): Path<String>,
    request: &Request,
    body: Body,
    Data(state): Data<&Arc<FakeState>>,
) -> Response {
    if let Some(status) = state.recorded().send_failures.take() {
        return injected_failure(status);
    }
    if !state.is_authorized(request, &account) {
        return unauthenticated();
    }
    let bytes = body.into_vec().await.unwrap_or_default();
    let form: HashMap<String, String> = url::form_urlencoded::parse(&bytes).into_owned().collect();
    let field = |name: &str| form.get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    let Some(to) = field("To") else {
        return twilio_error(400, 21604, "A 'To' phone number is required.");
    };
    let Some(from) = field("From") else {
        return twilio_error(400, 21603, "A 'From' phone number is required.");
    };
    if let Some(content_sid) = field("ContentSid") {
        return create_template(state, &account, to, content_sid, field("ContentVariables"));
    }
    let Some(message_body) = form.get("Body").filter(|b| !b.is_empty()).cloned() else {
        return twilio_error(400, 21602, "Message body is required.");
    };
    if !to.strip_prefix("whatsapp:").is_some_and(is_e164) {
        return twilio_error(400, 21211, &format!("Invalid 'To' Phone Number: {to}"));
    }
    if !from.strip_prefix("whatsapp:").is_some_and(is_e164) {
        return twilio_error(400, 21212, &format!("Invalid 'From' Phone Number: {from}"));
    }
    if message_body.chars().count() > 1600 {
        return twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.");
    }
    if state.recorded().window_closed {
        return twilio_error(
            400,
            63016,
            "Failed to send freeform message because you are outside the allowed window. Please use a Template.",
        );
    }
    let sid = state.new_sid("SM");
    let now = chrono::Utc::now().to_rfc2822();
    let delay = {
        let mut recorded = state.recorded();
        recorded.sent.push(SentRecord {
            sid: sid.clone(),
            to: to.clone(),
            from: from.clone(),
            body: message_body.clone(),
            date_created: now.clone(),
        });
        recorded.send_delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let uri = format!("/{API_VERSION}/Accounts/{account}/Messages/{sid}.json");
    let resource = json!({
        "account_sid": account,
        "api_version": API_VERSION,
        "body": message_body,
        "date_created": now,
        "date_sent": null,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": from,
        "messaging_service_sid": null,
        "num_media": "0",
        "num_segments": "1",
        "price": null,
        "price_unit": null,
        "sid": sid,
        "status": "queued",
        "subresource_uris": { "media": format!("/{API_VERSION}/Accounts/{account}/Messages/{sid}/Media.json") },
        "to": to,
        "uri": uri,
    });
    Response::builder().status(StatusCode::CREATED).content_type("application/json").body(resource.to_string())
}

/// A `ContentSid` send: an approved template (`HX…`) with its variables as a JSON object.
fn create_template(
    state: &FakeState,
    account: &str,
    to: String,
    content_sid: String,
    variables: Option<String>,
) -> Response {
    if !(content_sid.len() == 34 && content_sid.starts_with("HX")) {
        return twilio_error(400, 21655, &format!("The ContentSid {content_sid} is invalid."));
    }
    let variables = match variables.map(|v| serde_json::from_str::<serde_json::Value>(&v)) {
        None => json!({}),
        Some(Ok(value)) if value.is_object() => value,
        Some(_) => return twilio_error(400, 21656, "The ContentVariables Parameter is invalid."),
    };
    let sid = state.new_sid("SM");
    let record = TemplateRecord { sid: sid.clone(), to: to.clone(), content_sid, variables };
    state.recorded().templates.push(record);
    let resource = json!({
        "account_sid": account, "sid": sid, "status": "queued", "to": to, "body": "",
        "date_created": chrono::Utc::now().to_rfc2822(), "direction": "outbound-api",
    });
    Response::builder().status(StatusCode::CREATED).content_type("application/json").body(resource.to_string())
}

/// `GET /2010-04-01/Accounts/{sid}/Messages.json?To=…&From=…`: the accepted messages,
/// newest first, filtered by `To` and `From` as Twilio does.
#[handler]
async fn list_messages(Path(account): Path<String>, request: &Request, Data(state): Data<&Arc<FakeState>>) -> Response {
    state.recorded().resource_reads += 1;
    if !state.is_authorized(request, &account) {
        return unauthenticated();
    }
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes()).into_owned().collect();
    let messages: Vec<serde_json::Value> = state
        .recorded()
        .sent
        .iter()
        .rev()
        .filter(|m| query.get("To").is_none_or(|to| *to == m.to))
        .filter(|m| query.get("From").is_none_or(|from| *from == m.from))
        .map(|m| {
            json!({
                "sid": m.sid, "to": m.to, "from": m.from, "body": m.body, "status": "sent",
                "date_created": m.date_created, "direction": "outbound-api", "account_sid": account,
            })
        })
        .collect();
    let page = json!({ "messages": messages, "page": 0, "page_size": 50, "next_page_uri": null });
    Response::builder().content_type("application/json").body(page.to_string())
}

/// `GET /2010-04-01/Accounts/{sid}.json`: the Account resource, which (as Twilio's does)
/// carries the auth token; what a forged media URL must never let the fetcher read.
#[handler]
async fn fetch_account(
    Path(account_json): Path<String>,
    request: &Request,
    Data(state): Data<&Arc<FakeState>>,
) -> Response {
    state.recorded().resource_reads += 1;
    let Some(account) = account_json.strip_suffix(".json") else {
        return twilio_error(404, 20404, "The requested resource was not found");
    };
    if !state.is_authorized(request, account) {
        return unauthenticated();
    }
    let resource = json!({
        "sid": account,
        "auth_token": state.auth_token,
        "friendly_name": "fake account",
        "status": "active",
        "type": "Full",
    });
    Response::builder().content_type("application/json").body(resource.to_string())
}

/// `GET …/Messages/{MM}/Media/{ME}`: Basic auth required, then `307` to the CDN.
#[handler]
async fn api_media(
    Path((account, message, media)): Path<(String, String, String)>,
    request: &Request,
    Data(state): Data<&Arc<FakeState>>,
) -> Response {
    let mut recorded = state.recorded();
    recorded.media_requests.api += 1;
    if let Some(status) = recorded.media_failures.take() {
        return injected_failure(status);
    }
    if !state.is_authorized(request, &account) {
        return unauthenticated();
    }
    let Some(stored) = recorded.media.get(&media) else {
        let path = format!("/{API_VERSION}/Accounts/{account}/Messages/{message}/Media/{media}");
        return twilio_error(404, 20404, &format!("The requested resource {path} was not found"));
    };
    let location = stored.options.location.clone().unwrap_or_else(|| format!("{}/cdn/{media}", state.base_url));
    redirect(&location)
}

fn redirect(location: &str) -> Response {
    Response::builder().status(StatusCode::TEMPORARY_REDIRECT).header(header::LOCATION, location).finish()
}

#[derive(Deserialize)]
struct CdnHop {
    hop: Option<usize>,
}

/// `GET /cdn/{ME}`: the signed CDN URL. Like S3 behind Twilio, it refuses a request that
/// also carries an `Authorization` header, so forwarded credentials fail loudly.
#[handler]
async fn cdn_media(
    Path(media): Path<String>,
    Query(CdnHop { hop }): Query<CdnHop>,
    request: &Request,
    Data(state): Data<&Arc<FakeState>>,
) -> Response {
    let mut recorded = state.recorded();
    recorded.media_requests.cdn += 1;
    if request.header(header::AUTHORIZATION).is_some() {
        recorded.media_requests.cdn_with_authorization += 1;
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .content_type("application/xml")
            .body("<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>");
    }
    let Some(stored) = recorded.media.get(&media) else {
        return Response::builder().status(StatusCode::NOT_FOUND).finish();
    };
    let hop = hop.unwrap_or(0);
    if hop < stored.options.extra_redirects {
        return redirect(&format!("/cdn/{media}?hop={}", hop + 1));
    }
    let body = if stored.options.streamed {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            stored.bytes.chunks(STREAM_CHUNK).map(|chunk| Ok(chunk.to_vec())).collect();
        Body::from_bytes_stream(futures::stream::iter(chunks))
    } else {
        Body::from_vec(stored.bytes.clone())
    };
    Response::builder().status(StatusCode::OK).content_type(stored.content_type.clone()).body(body)
}
