//! A loopback fake of Meta's Graph API for the WhatsApp Cloud API (sending messages,
//! media lookup and download) as a small poem server, behaving as CONTRACTS.md says the
//! real one does: bearer auth everywhere (190 with HTTP 401 when wrong), errors as
//! `{"error": {...}}` classified by code (130429 with HTTP 400), the media lookup's
//! `sha256` in hex and the webhook's in base64, and a short-lived media URL that needs
//! the same bearer. Also builds and signs webhook deliveries as Meta posts them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine;
use poem::http::{header, StatusCode};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Path};
use poem::{get, handler, post, Body, EndpointExt, Request, Response, Route, Server};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use whatsapp_memory::adapters::meta::signature::sign;
use whatsapp_memory::config::Secret;

/// The Graph API version the tests configure (not the service's default, so a server
/// that ignored META_GRAPH_VERSION would miss every route).
pub const GRAPH_VERSION: &str = "v21.0";
/// The business phone number's id.
pub const PHONE_NUMBER_ID: &str = "106540352242922";
pub const APP_SECRET: &str = "test-meta-app-secret";
pub const VERIFY_TOKEN: &str = "test-meta-verify-token";

/// A running fake Graph API on `127.0.0.1:<free port>`.
pub struct FakeMeta {
    base_url: String,
    state: Arc<FakeState>,
}

/// A message the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRecord {
    pub id: String,
    /// The recipient's wa_id (digits).
    pub to: String,
    pub body: String,
}

/// Where a media lookup's URL points instead of the fake's own CDN.
#[derive(Debug, Clone, Default)]
pub struct MediaOptions {
    pub url: Option<String>,
    /// The hex checksum the lookup announces instead of the real one.
    pub lookup_sha256: Option<String>,
}

struct FakeState {
    base_url: String,
    access_token: String,
    next_id: AtomicU64,
    inner: Mutex<Recorded>,
}

#[derive(Default)]
struct Recorded {
    media: HashMap<String, (Vec<u8>, String, MediaOptions)>,
    sent: Vec<SentRecord>,
    /// The next sends fail with these (HTTP status, Meta code), first first.
    send_failures: Vec<(u16, i64)>,
    lookups: usize,
    downloads: usize,
    unauthorized: usize,
}

/// Starts a fake with a fresh access token.
pub async fn start() -> FakeMeta {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.expect("a loopback port for fake Meta");
    let address = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).expect("a socket address");
    let base_url = format!("http://{address}");
    let state = Arc::new(FakeState {
        base_url: base_url.clone(),
        access_token: format!("EAAG-test-{}", address.port()),
        next_id: AtomicU64::new(1_000_000_000_000_000),
        inner: Mutex::default(),
    });
    let routes = Route::new()
        .at("/:version/:phone/messages", post(send_message))
        .at("/:version/:media", get(look_up_media))
        .at("/cdn/:media", get(download_media))
        .data(state.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(routes));
    FakeMeta { base_url, state }
}

impl FakeMeta {
    /// The variables that point the service at this fake.
    pub fn vars(&self) -> Vec<(String, String)> {
        [
            ("META_APP_SECRET", APP_SECRET.to_string()),
            ("META_VERIFY_TOKEN", VERIFY_TOKEN.to_string()),
            ("META_ACCESS_TOKEN", self.state.access_token.clone()),
            ("META_PHONE_NUMBER_ID", PHONE_NUMBER_ID.to_string()),
            ("META_GRAPH_VERSION", GRAPH_VERSION.to_string()),
            ("META_GRAPH_BASE_URL", self.base_url.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Stores a media item; returns its media id and the base64 SHA-256 the webhook carries.
    pub fn add_media(&self, bytes: Vec<u8>, mime_type: &str) -> (String, String) {
        self.add_media_with(bytes, mime_type, MediaOptions::default())
    }

    pub fn add_media_with(&self, bytes: Vec<u8>, mime_type: &str, options: MediaOptions) -> (String, String) {
        let id = self.state.new_id().to_string();
        let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&bytes));
        self.state.recorded().media.insert(id.clone(), (bytes, mime_type.to_string(), options));
        (id, sha)
    }

    /// The next sends fail, one per `(HTTP status, Meta error code)`.
    pub fn fail_next_sends(&self, failures: &[(u16, i64)]) {
        self.state.recorded().send_failures = failures.to_vec();
    }

    pub fn sent(&self) -> Vec<SentRecord> {
        self.state.recorded().sent.clone()
    }

    /// (media lookups, CDN downloads, requests refused for a wrong bearer).
    pub fn media_requests(&self) -> (usize, usize, usize) {
        let recorded = self.state.recorded();
        (recorded.lookups, recorded.downloads, recorded.unauthorized)
    }
}

impl FakeState {
    fn recorded(&self) -> MutexGuard<'_, Recorded> {
        self.inner.lock().expect("fake Meta state lock")
    }

    fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The bearer is checked before anything else; a wrong one is Meta's 190 with 401.
    /// `Some` refusal when the request lacks our bearer.
    fn refuse_without_bearer(&self, request: &Request) -> Option<Response> {
        let given = request.header(header::AUTHORIZATION).and_then(|v| v.strip_prefix("Bearer "));
        if given == Some(self.access_token.as_str()) {
            return None;
        }
        self.recorded().unauthorized += 1;
        Some(graph_error(401, 190, "Error validating access token: Session has expired"))
    }
}

/// Meta's error document.
fn graph_error(status: u16, code: i64, message: &str) -> Response {
    let body = json!({"error": {"message": format!("(#{code}) {message}"), "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf123"}});
    Response::builder()
        .status(StatusCode::from_u16(status).expect("a status"))
        .content_type("application/json")
        .body(body.to_string())
}

#[handler]
async fn send_message(
    request: &Request,
    Path((version, phone)): Path<(String, String)>,
    body: Body,
    Data(state): Data<&Arc<FakeState>>,
) -> Response {
    if let Some(refused) = state.refuse_without_bearer(request) {
        return refused;
    }
    if version != GRAPH_VERSION || phone != PHONE_NUMBER_ID {
        return graph_error(400, 100, "Unsupported post request. Object does not exist");
    }
    let failure = {
        let mut recorded = state.recorded();
        (!recorded.send_failures.is_empty()).then(|| recorded.send_failures.remove(0))
    };
    if let Some((status, code)) = failure {
        return graph_error(status, code, "injected failure");
    }
    let Ok(payload) = serde_json::from_slice::<Value>(&body.into_vec().await.unwrap_or_default()) else {
        return graph_error(400, 100, "Invalid parameter");
    };
    let to = payload["to"].as_str().unwrap_or_default().to_string();
    let text = payload["text"]["body"].as_str().unwrap_or_default().to_string();
    let valid = payload["messaging_product"] == "whatsapp"
        && payload["type"] == "text"
        && !to.is_empty()
        && to.bytes().all(|b| b.is_ascii_digit())
        && !text.is_empty()
        && text.chars().count() <= 4096;
    if !valid {
        return graph_error(400, 100, "Invalid parameter");
    }
    let id = format!("wamid.OUT{}", state.new_id());
    state.recorded().sent.push(SentRecord { id: id.clone(), to: to.clone(), body: text });
    let answer =
        json!({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}], "messages": [{"id": id}]});
    Response::builder().content_type("application/json").body(answer.to_string())
}

#[handler]
fn look_up_media(
    request: &Request,
    Path((version, media)): Path<(String, String)>,
    Data(state): Data<&Arc<FakeState>>,
) -> Response {
    if let Some(refused) = state.refuse_without_bearer(request) {
        return refused;
    }
    let mut recorded = state.recorded();
    recorded.lookups += 1;
    let Some((bytes, mime, options)) = recorded.media.get(&media).filter(|_| version == GRAPH_VERSION) else {
        return graph_error(400, 100, "Unsupported get request. Object with ID does not exist");
    };
    let sha256: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
    let url = options.url.clone().unwrap_or_else(|| format!("{}/cdn/{media}?ext=1764158400&hash=ATv", state.base_url));
    let answer = json!({
        "messaging_product": "whatsapp",
        "url": url,
        "mime_type": mime,
        "sha256": options.lookup_sha256.clone().unwrap_or(sha256),
        "file_size": bytes.len(),
        "id": media,
    });
    Response::builder().content_type("application/json").body(answer.to_string())
}

#[handler]
fn download_media(request: &Request, Path(media): Path<String>, Data(state): Data<&Arc<FakeState>>) -> Response {
    if let Some(refused) = state.refuse_without_bearer(request) {
        return refused;
    }
    let mut recorded = state.recorded();
    recorded.downloads += 1;
    match recorded.media.get(&media) {
        Some((bytes, mime, _)) => Response::builder().content_type(mime.as_str()).body(bytes.clone()),
        None => Response::builder().status(StatusCode::NOT_FOUND).finish(),
    }
}

/// A text message object from `phone` (`+…`), with `id`.
pub fn text_message(phone: &str, id: &str, body: &str) -> Value {
    json!({"from": phone.trim_start_matches('+'), "id": id, "timestamp": "1764158400", "type": "text", "text": {"body": body}})
}

/// A media message object of `kind` (`image`, `audio`, …).
pub fn media_message(phone: &str, id: &str, kind: &str, media_id: &str, sha256: &str, mime: &str) -> Value {
    let mut item = json!({"id": media_id, "mime_type": mime, "sha256": sha256});
    if kind == "audio" {
        item["voice"] = json!(true);
    }
    json!({"from": phone.trim_start_matches('+'), "id": id, "timestamp": "1764158400", "type": kind, kind: item})
}

/// A delivery of `messages` from `phone` and `statuses`, as one entry with one change.
pub fn delivery(phone: &str, messages: Vec<Value>, statuses: Vec<Value>) -> Vec<u8> {
    let wa_id = phone.trim_start_matches('+');
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            // pywa 4.5 reads `user_id` (the business-scoped id) from every contact: Meta sends it.
            "contacts": [{"profile": {"name": "Ada"}, "wa_id": wa_id, "user_id": format!("US.{wa_id}")}],
            "messages": messages,
            "statuses": statuses,
        }}]}],
    })
    .to_string()
    .into_bytes()
}

/// Meta's signature of `body`.
pub fn signature(body: &[u8]) -> String {
    sign(&Secret::new(APP_SECRET), body)
}
