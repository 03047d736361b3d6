//! A loopback fake of the Mem0 Platform's REST API as a small poem server, behaving as
//! CONTRACTS.md says the real one does: `Token` auth, v3 add (stored as given without
//! inference; with inference an event that is `RUNNING` on its first poll and
//! `SUCCEEDED` after), v3 search filtered by `user_id`, v1 delete one and delete all,
//! `GET /v1/ping/`, and Mem0's error bodies. A test can make it answer 401, 429 with
//! `Retry-After`, 500, or hang, and can teach its "semantic" search synonyms.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use poem::http::{header, StatusCode};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json, Path, Query};
use poem::{delete, get, handler, post, EndpointExt, Request, Response, Route, Server};
use serde_json::{json, Value};

/// How the fake answers every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// As Mem0 does.
    Normal,
    /// Every request answers this status with Mem0's error body (429 with `Retry-After: 1`).
    Fail(u16),
    /// Every request waits (far longer than any client timeout) and never answers.
    Hang,
}

/// A Mem0 memory the fake holds.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMemory {
    pub id: String,
    pub user_id: String,
    pub text: String,
    pub metadata: Value,
}

/// An add the fake accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedAdd {
    pub user_id: String,
    pub text: String,
    pub metadata: Value,
    pub infer: bool,
}

/// A running fake Mem0 on `127.0.0.1:<free port>`; it stops with the test's runtime.
pub struct FakeMem0 {
    base_url: String,
    state: Arc<FakeState>,
}

struct FakeState {
    api_key: String,
    next_id: AtomicU64,
    inner: Mutex<Recorded>,
}

struct Recorded {
    mode: Mode,
    /// The next `n` requests answer this status, then the mode applies again.
    fail_next: Option<(u32, u16)>,
    memories: Vec<StoredMemory>,
    events: HashMap<String, Event>,
    adds: Vec<AcceptedAdd>,
    /// When each add request arrived, answered or not.
    add_attempts: Vec<Instant>,
    deleted: Vec<String>,
    deleted_users: Vec<String>,
    /// Search requests received, answered or not.
    searches: usize,
    /// Query word -> words it also finds (the fake's "semantics").
    synonyms: HashMap<String, Vec<String>>,
}

struct Event {
    polls: u32,
    /// What the add will produce, until the event succeeds.
    pending: Vec<StoredMemory>,
    /// What it produced, once it has.
    results: Vec<Value>,
}

/// Starts a fake Mem0 that accepts exactly `api_key`.
///
/// # Panics
/// When no loopback port can be bound.
pub async fn start(api_key: &str) -> FakeMem0 {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.expect("a loopback port for fake Mem0");
    let address = acceptor.local_addr().first().and_then(|a| a.as_socket_addr().copied()).expect("a socket address");
    let state = Arc::new(FakeState {
        api_key: api_key.to_string(),
        next_id: AtomicU64::new(1),
        inner: Mutex::new(Recorded {
            mode: Mode::Normal,
            fail_next: None,
            memories: Vec::new(),
            events: HashMap::new(),
            adds: Vec::new(),
            add_attempts: Vec::new(),
            deleted: Vec::new(),
            deleted_users: Vec::new(),
            searches: 0,
            synonyms: HashMap::new(),
        }),
    });
    let routes = Route::new()
        .at("/v1/ping/", get(ping))
        .at("/v3/memories/add/", post(add))
        .at("/v3/memories/search/", post(search))
        .at("/v3/memories/", post(list))
        .at("/v1/event/:event/", get(event))
        .at("/v1/memories/:id/", get(get_memory).delete(delete_memory))
        .at("/v1/memories/", delete(delete_all))
        .data(state.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(routes));
    FakeMem0 { base_url: format!("http://{address}"), state }
}

impl FakeMem0 {
    /// `http://127.0.0.1:<port>`: the `MEM0_BASE_URL` to configure.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Switches how every later request is answered.
    pub fn set_mode(&self, mode: Mode) {
        self.state.recorded().mode = mode;
    }

    /// The next `n` requests answer `status`, then the mode applies again.
    pub fn fail_next(&self, n: u32, status: u16) {
        self.state.recorded().fail_next = Some((n, status));
    }

    /// Searching for `word` also finds memories containing any of `also`.
    pub fn teach(&self, word: &str, also: &[&str]) {
        self.state.recorded().synonyms.insert(word.to_string(), also.iter().map(|w| w.to_string()).collect());
    }

    /// A memory added to the user's Mem0 account by something other than us (no
    /// metadata of ours): a fact no single memory of ours stands behind.
    pub fn add_foreign_fact(&self, user_id: &str, text: &str) -> String {
        let memory = self.state.new_memory(user_id, text, json!({}));
        let id = memory.id.clone();
        self.state.recorded().memories.push(memory);
        id
    }

    /// Every add accepted, oldest first.
    pub fn adds(&self) -> Vec<AcceptedAdd> {
        self.state.recorded().adds.clone()
    }

    /// When each add request arrived (refused ones included).
    pub fn add_attempts(&self) -> Vec<Instant> {
        self.state.recorded().add_attempts.clone()
    }

    /// The memories held now.
    pub fn memories(&self) -> Vec<StoredMemory> {
        self.state.recorded().memories.clone()
    }

    /// Ids deleted one by one.
    pub fn deleted(&self) -> Vec<String> {
        self.state.recorded().deleted.clone()
    }

    /// `user_id`s whose memories were all deleted.
    pub fn deleted_users(&self) -> Vec<String> {
        self.state.recorded().deleted_users.clone()
    }

    /// How many search requests reached the fake (answered or not).
    pub fn searches(&self) -> usize {
        self.state.recorded().searches
    }
}

impl FakeState {
    fn recorded(&self) -> MutexGuard<'_, Recorded> {
        self.inner.lock().expect("fake Mem0 state lock")
    }

    fn new_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("00000000-0000-4000-8000-{n:012x}")
    }

    fn new_memory(&self, user_id: &str, text: &str, metadata: Value) -> StoredMemory {
        StoredMemory { id: self.new_id(), user_id: user_id.to_string(), text: text.to_string(), metadata }
    }

    /// The injected answer for this request, if any, else `None` after checking the key.
    async fn gate(&self, request: &Request) -> Option<Response> {
        let injected = {
            let mut recorded = self.recorded();
            match recorded.fail_next {
                Some((n, status)) if n > 0 => {
                    recorded.fail_next = if n > 1 { Some((n - 1, status)) } else { None };
                    Some(Mode::Fail(status))
                }
                _ => Some(recorded.mode).filter(|mode| *mode != Mode::Normal),
            }
        };
        match injected {
            Some(Mode::Hang) => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Some(error(503, json!({"detail": "hung"})))
            }
            Some(Mode::Fail(status)) => Some(injected_failure(status)),
            _ => {
                let expected = format!("Token {}", self.api_key);
                let given = request.header(header::AUTHORIZATION).unwrap_or_default();
                (given != expected).then(|| error(401, json!({"detail": "Invalid API key"})))
            }
        }
    }
}

fn error(status: u16, body: Value) -> Response {
    let mut response = Response::builder()
        .status(StatusCode::from_u16(status).expect("a valid status"))
        .content_type("application/json")
        .body(body.to_string());
    if status == 429 {
        response.headers_mut().insert(header::RETRY_AFTER, "1".parse().expect("a header value"));
    }
    response
}

fn injected_failure(status: u16) -> Response {
    match status {
        400 => error(400, json!({"error": "Invalid request", "details": {}})),
        401 => error(401, json!({"detail": "Invalid API key"})),
        404 => error(404, json!({"error": "Memory not found!"})),
        429 => error(429, json!({"detail": "Request was throttled. Expected available in 1 second."})),
        other => error(other, json!({"detail": "A server error occurred."})),
    }
}

fn ok(body: Value) -> Response {
    Response::builder().content_type("application/json").body(body.to_string())
}

#[handler]
async fn ping(request: &Request, Data(state): Data<&Arc<FakeState>>) -> Response {
    if let Some(refused) = state.gate(request).await {
        return refused;
    }
    ok(json!({"status": "ok", "org_id": "org-1", "project_id": "proj-1", "user_email": "dev@example.com"}))
}

#[handler]
async fn add(request: &Request, Json(body): Json<Value>, Data(state): Data<&Arc<FakeState>>) -> Response {
    state.recorded().add_attempts.push(Instant::now());
    if let Some(refused) = state.gate(request).await {
        return refused;
    }
    let Some(user_id) = body.get("user_id").and_then(Value::as_str).map(str::to_string) else {
        return error(400, json!({"error": "One of the filters: app_id, user_id, agent_id, run_id is required!"}));
    };
    let text: Vec<&str> = body
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_str())
        .collect();
    if text.is_empty() {
        return error(400, json!({"error": "Invalid messages", "details": {"messages": "required"}}));
    }
    let text = text.join("\n");
    let metadata = body.get("metadata").cloned().unwrap_or(json!({}));
    let infer = body.get("infer").and_then(Value::as_bool).unwrap_or(true);
    let memory = state.new_memory(&user_id, &text, metadata.clone());
    let mut recorded = state.recorded();
    recorded.adds.push(AcceptedAdd { user_id, text, metadata, infer });
    if !infer {
        let result = json!({"results": [{"id": memory.id, "data": {"memory": memory.text}, "event": "ADD"}]});
        recorded.memories.push(memory);
        return ok(result);
    }
    let event_id = state.new_id();
    recorded.events.insert(event_id.clone(), Event { polls: 0, pending: vec![memory], results: Vec::new() });
    ok(json!({"event_id": event_id, "status": "PENDING"}))
}

#[handler]
async fn event(Path(event): Path<String>, request: &Request, Data(state): Data<&Arc<FakeState>>) -> Response {
    if let Some(refused) = state.gate(request).await {
        return refused;
    }
    let mut recorded = state.recorded();
    let Some(found) = recorded.events.get_mut(&event) else {
        return error(404, json!({"detail": "Event not found."}));
    };
    found.polls += 1;
    if found.polls < 2 {
        return ok(json!({"id": event, "event_type": "ADD", "status": "RUNNING", "results": []}));
    }
    // The first successful poll stores what the add produced; later polls see the same.
    let produced = std::mem::take(&mut found.pending);
    if !produced.is_empty() {
        found.results =
            produced.iter().map(|m| json!({"id": m.id, "data": {"memory": m.text}, "event": "ADD"})).collect();
        recorded.memories.extend(produced);
    }
    let results = recorded.events[&event].results.clone();
    ok(json!({"id": event, "event_type": "ADD", "status": "SUCCEEDED", "results": results}))
}

#[handler]
async fn search(request: &Request, Json(body): Json<Value>, Data(state): Data<&Arc<FakeState>>) -> Response {
    state.recorded().searches += 1;
    if let Some(refused) = state.gate(request).await {
        return refused;
    }
    let Some(user_id) = body.pointer("/filters/user_id").and_then(Value::as_str) else {
        return error(
            400,
            json!({"error": "Invalid filters", "details": {"filters": "user_id, agent_id, app_id or run_id is required"}}),
        );
    };
    let query = body.get("query").and_then(Value::as_str).unwrap_or_default().to_lowercase();
    let top_k = body.get("top_k").and_then(Value::as_u64).unwrap_or(10) as usize;
    let recorded = state.recorded();
    let mut wanted: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() >= 3) {
        wanted.push(word.to_string());
        wanted.extend(recorded.synonyms.get(word).cloned().unwrap_or_default());
    }
    let mut hits: Vec<(f64, &StoredMemory)> = recorded
        .memories
        .iter()
        .filter(|m| m.user_id == user_id)
        .filter_map(|m| {
            let words: Vec<String> =
                m.text.to_lowercase().split(|c: char| !c.is_alphanumeric()).map(str::to_string).collect();
            let matched = wanted.iter().filter(|w| words.contains(w)).count();
            (matched > 0).then(|| (matched as f64 / wanted.len().max(1) as f64, m))
        })
        .collect();
    hits.sort_by(|a, b| b.0.total_cmp(&a.0));
    let results: Vec<Value> = hits
        .into_iter()
        .take(top_k)
        .map(|(score, m)| {
            json!({
                "id": m.id, "memory": m.text, "user_id": m.user_id, "score": score.min(1.0),
                "metadata": m.metadata, "categories": [], "created_at": "2026-11-26T12:00:00Z",
                "updated_at": "2026-11-26T12:00:00Z",
            })
        })
        .collect();
    ok(json!({"results": results}))
}

#[handler]
async fn list(request: &Request, Json(body): Json<Value>, Data(state): Data<&Arc<FakeState>>) -> Response {
    if let Some(refused) = state.gate(request).await {
        return refused;
    }
    let Some(user_id) = body.pointer("/filters/user_id").and_then(Value::as_str) else {
        return error(400, json!({"error": "Invalid filters"}));
    };
    let results: Vec<Value> = state
        .recorded()
        .memories
        .iter()
        .filter(|m| m.user_id == user_id)
        .map(|m| json!({"id": m.id, "memory": m.text, "user_id": m.user_id, "metadata": m.metadata}))
        .collect();
    ok(json!({"count": results.len(), "next": null, "previous": null, "results": results}))
}

#[handler]
async fn get_memory(Path(id): Path<String>, request: &Request, Data(state): Data<&Arc<FakeState>>) -> Response {
    if let Some(refused) = state.gate(request).await {
        return refused;
    }
    match state.recorded().memories.iter().find(|m| m.id == id) {
        Some(m) => ok(json!({"id": m.id, "memory": m.text, "user_id": m.user_id, "metadata": m.metadata})),
        None => error(404, json!({"error": "Memory not found!"})),
    }
}

#[handler]
async fn delete_memory(Path(id): Path<String>, request: &Request, Data(state): Data<&Arc<FakeState>>) -> Response {
    if let Some(refused) = state.gate(request).await {
        return refused;
    }
    let mut recorded = state.recorded();
    let before = recorded.memories.len();
    recorded.memories.retain(|m| m.id != id);
    if recorded.memories.len() == before {
        return error(404, json!({"error": "Memory not found!"}));
    }
    recorded.deleted.push(id);
    ok(json!({"message": "Memory deleted successfully!"}))
}

#[handler]
async fn delete_all(
    Query(params): Query<HashMap<String, String>>,
    request: &Request,
    Data(state): Data<&Arc<FakeState>>,
) -> Response {
    if let Some(refused) = state.gate(request).await {
        return refused;
    }
    let Some(user_id) = params.get("user_id") else {
        return error(400, json!({"error": "At least one filter is required to delete all memories."}));
    };
    let mut recorded = state.recorded();
    recorded.memories.retain(|m| &m.user_id != user_id);
    recorded.deleted_users.push(user_id.clone());
    ok(json!({"message": "Memories deleted successfully!"}))
}
