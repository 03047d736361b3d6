//! A loopback fake of an OpenAI-compatible transcription server
//! (`POST /v1/audio/transcriptions`, multipart, Bearer auth), as CONTRACTS.md describes
//! it: it records each request's parts, answers with a configured text, and can be told
//! to answer 429 (with `Retry-After`) or 500 for the next requests.

use std::sync::{Arc, Mutex};

use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::Data;
use poem::{handler, post, Body, EndpointExt, Request, Response, Route, Server};

/// The key the fake accepts.
pub const OPENAI_KEY: &str = "sk-fake-openai-key-for-tests";

/// One multipart part as received.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

#[derive(Default)]
struct State {
    text: String,
    fail_next: Vec<u16>,
    requests: Vec<Vec<Part>>,
}

/// A running fake; dropped with the test's runtime.
pub struct FakeOpenAi {
    base_url: String,
    state: Arc<Mutex<State>>,
}

impl FakeOpenAi {
    /// `http://127.0.0.1:<port>/v1`, as `OPENAI_BASE_URL` takes it.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Makes the next requests fail with these statuses, in order.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.state.lock().unwrap().fail_next = statuses.to_vec();
    }

    /// Every well-formed, authorised request so far: its parts.
    pub fn requests(&self) -> Vec<Vec<Part>> {
        self.state.lock().unwrap().requests.clone()
    }
}

/// Starts the fake answering `text` to every transcription.
pub async fn start(text: &str) -> FakeOpenAi {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.expect("a loopback port");
    let address = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).expect("an address");
    let state = Arc::new(Mutex::new(State { text: text.to_string(), ..State::default() }));
    let routes = Route::new().at("/v1/audio/transcriptions", post(transcribe)).data(state.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(routes));
    FakeOpenAi { base_url: format!("http://{address}/v1"), state }
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"error": {"message": message, "type": "invalid_request_error"}});
    Response::builder().status(status).content_type("application/json").body(body.to_string())
}

#[handler]
async fn transcribe(request: &Request, body: Body, Data(state): Data<&Arc<Mutex<State>>>) -> Response {
    if let Some(status) = {
        let mut state = state.lock().unwrap();
        (!state.fail_next.is_empty()).then(|| state.fail_next.remove(0))
    } {
        let status = StatusCode::from_u16(status).unwrap();
        let mut response = error(status, "injected failure");
        if status == StatusCode::TOO_MANY_REQUESTS {
            response.headers_mut().insert("retry-after", "1".parse().unwrap());
        }
        return response;
    }
    let authorised = request.header("authorization") == Some(format!("Bearer {OPENAI_KEY}").as_str());
    if !authorised {
        return error(StatusCode::UNAUTHORIZED, "Incorrect API key provided");
    }
    let Some(boundary) = request
        .content_type()
        .and_then(|t| t.strip_prefix("multipart/form-data; boundary="))
        .map(|b| b.trim_matches('"').to_string())
    else {
        return error(StatusCode::BAD_REQUEST, "expected multipart/form-data");
    };
    let bytes = body.into_vec().await.unwrap_or_default();
    let parts = parse_multipart(&bytes, &boundary);
    let has = |name: &str| parts.iter().any(|p| p.name == name);
    if !has("file") || !has("model") {
        return error(StatusCode::BAD_REQUEST, "file and model are required");
    }
    let mut state = state.lock().unwrap();
    state.requests.push(parts);
    Response::builder().content_type("application/json").body(serde_json::json!({"text": state.text}).to_string())
}

/// Splits a multipart body into its parts (enough of RFC 7578 for one client's requests).
fn parse_multipart(body: &[u8], boundary: &str) -> Vec<Part> {
    let delimiter = format!("--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut sections = split(body, &delimiter).into_iter().skip(1);
    for section in sections.by_ref() {
        if section.starts_with(b"--") {
            break; // the closing delimiter
        }
        let section = section.strip_prefix(b"\r\n").unwrap_or(section);
        let Some(split_at) = section.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let headers = String::from_utf8_lossy(&section[..split_at]).to_string();
        let mut content = &section[split_at + 4..];
        content = content.strip_suffix(b"\r\n").unwrap_or(content);
        let disposition =
            headers.lines().find(|l| l.to_ascii_lowercase().starts_with("content-disposition:")).unwrap_or_default();
        let attribute = |key: &str| {
            disposition.split(';').map(str::trim).find_map(|a| a.strip_prefix(&format!("{key}=\""))?.strip_suffix('"'))
        };
        let content_type = headers
            .lines()
            .find_map(|l| l.to_ascii_lowercase().starts_with("content-type:").then(|| l[13..].trim().to_string()));
        parts.push(Part {
            name: attribute("name").unwrap_or_default().to_string(),
            file_name: attribute("filename").map(str::to_string),
            content_type,
            bytes: content.to_vec(),
        });
    }
    parts
}

fn split<'a>(haystack: &'a [u8], needle: &[u8]) -> Vec<&'a [u8]> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + needle.len() <= haystack.len() {
        if &haystack[i..i + needle.len()] == needle {
            pieces.push(&haystack[start..i]);
            i += needle.len();
            start = i;
        } else {
            i += 1;
        }
    }
    pieces.push(&haystack[start..]);
    pieces
}
