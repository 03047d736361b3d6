//! `Mem0Store`: the Mem0 Platform's REST API as a [`MemoryFinder`] and an
//! [`ExternalIndex`], exactly as
//! `CONTRACTS.md` describes it: v3 add (asynchronous with inference, polled through
//! `GET /v1/event/{id}/`) and search, v1 delete one and delete all, `GET /v1/ping/`.
//! Every failure becomes a typed [`MemoryStoreError`] that says whether a retry helps;
//! the API key only ever travels in the `Authorization` header and never prints.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::adapters::outbound;
use crate::config::Secret;
use crate::domain::model::{MemoryId, User};
use crate::domain::ports::{
    ExternalIndex, ExternalMemory, Indexing, MemoryFinder, MemoryHit, MemoryStoreError, MemoryToIndex, Recalled,
};

use super::twilio::sender::{api_url, describe_transport_error_of, retry_after};

/// The metadata key our memory id travels under, so a search hit leads back to it.
pub const MEMORY_ID_METADATA: &str = "memory_id";
/// Mem0's relevance floor for searches (its own default): weaker matches are noise.
const SEARCH_THRESHOLD: f64 = 0.1;
/// How much of an error body is kept in a message.
const MAX_ERROR_CHARS: usize = 300;
/// The first pause between polls of an event; it doubles up to [`MAX_POLL_INTERVAL`].
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(50);
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// How to reach Mem0 and how to add memories.
#[derive(Debug, Clone)]
pub struct Mem0Settings {
    /// `https://api.mem0.ai`, or a loopback fake in tests.
    pub base_url: url::Url,
    pub api_key: Secret,
    /// Let Mem0 infer facts from a memory (asynchronous) instead of storing it verbatim.
    pub infer: bool,
    /// Bounds each HTTP call.
    pub request_timeout: Duration,
    /// How long [`ExternalIndex::indexing_status`] keeps polling an event before it
    /// answers "still pending" (the job then tries again later, polling the same event).
    pub event_wait: Duration,
}

/// The Mem0 Platform client.
pub struct Mem0Store {
    client: reqwest::Client,
    base_url: url::Url,
    api_key: Secret,
    infer: bool,
    event_wait: Duration,
}

impl std::fmt::Debug for Mem0Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mem0Store")
            .field("base_url", &self.base_url.as_str())
            .field("api_key", &self.api_key)
            .field("infer", &self.infer)
            .finish()
    }
}

impl Mem0Store {
    /// A client for `settings`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (no TLS backend).
    pub fn new(settings: Mem0Settings) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.request_timeout)
            // Mem0 does not redirect these routes; following one could replay a POST elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("whatsapp-memory/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            base_url: settings.base_url,
            api_key: settings.api_key,
            infer: settings.infer,
            event_wait: settings.event_wait,
        })
    }

    /// The URL of `segments` under the base, with Mem0's trailing slash.
    fn url(&self, segments: &[&str]) -> Result<url::Url, MemoryStoreError> {
        let mut with_slash: Vec<&str> = segments.to_vec();
        with_slash.push("");
        api_url(&self.base_url, &with_slash).map_err(|e| MemoryStoreError::Rejected(e.to_string()))
    }

    /// Sends a request with the key and returns the JSON body of a 2xx answer.
    async fn call(&self, operation: &'static str, request: reqwest::RequestBuilder) -> Result<Value, MemoryStoreError> {
        let request = request.header(reqwest::header::AUTHORIZATION, format!("Token {}", self.api_key.expose()));
        let response = outbound::send("mem0", operation, request).await.map_err(transport_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport_error)?;
        if !status.is_success() {
            return Err(classify(status, &headers, &body));
        }
        if body.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&body).map_err(|e| {
            MemoryStoreError::Rejected(format!("Mem0 answered {status} with a body that is not JSON: {e}"))
        })
    }

    /// One look at an event.
    async fn event_once(&self, event: &str) -> Result<Indexing, MemoryStoreError> {
        let body = self.call("event", self.client.get(self.url(&["v1", "event", event])?)).await?;
        Ok(parse_event(event, &body))
    }
}

#[async_trait]
impl MemoryFinder for Mem0Store {
    #[tracing::instrument(skip_all)]
    async fn search(&self, user: &User, query: &str, limit: u32) -> Result<Vec<MemoryHit>, MemoryStoreError> {
        let body = json!({
            "query": query,
            "filters": { "user_id": user.wa_id },
            "top_k": limit,
            "threshold": SEARCH_THRESHOLD,
        });
        let answer =
            self.call("search", self.client.post(self.url(&["v3", "memories", "search"])?).json(&body)).await?;
        Ok(parse_search(&answer, &user.wa_id))
    }
}

#[async_trait]
impl ExternalIndex for Mem0Store {
    #[tracing::instrument(skip_all, fields(memory = memory.memory.0))]
    async fn index(&self, memory: &MemoryToIndex) -> Result<Indexing, MemoryStoreError> {
        let body = json!({
            "messages": [{ "role": "user", "content": memory.text }],
            "user_id": memory.owner,
            "metadata": {
                MEMORY_ID_METADATA: memory.memory.0,
                "kind": memory.kind.as_str(),
                "created_at": memory.created_at.to_rfc3339(),
                "source": "whatsapp-memory",
            },
            "infer": self.infer,
        });
        let answer = self.call("add", self.client.post(self.url(&["v3", "memories", "add"])?).json(&body)).await?;
        parse_add(&answer)
    }

    #[tracing::instrument(skip_all, fields(event = %event))]
    async fn indexing_status(&self, event: &str) -> Result<Indexing, MemoryStoreError> {
        let deadline = tokio::time::Instant::now() + self.event_wait;
        let mut pause = FIRST_POLL_INTERVAL;
        loop {
            let status = self.event_once(event).await?;
            if !matches!(status, Indexing::Pending(_)) || tokio::time::Instant::now() + pause > deadline {
                return Ok(status);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL_INTERVAL);
        }
    }

    async fn delete(&self, id: &str) -> Result<(), MemoryStoreError> {
        match self.call("delete", self.client.delete(self.url(&["v1", "memories", id])?)).await {
            Ok(_) | Err(MemoryStoreError::NotFound(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn delete_all(&self, owner: &str) -> Result<(), MemoryStoreError> {
        let url = self.url(&["v1", "memories"])?;
        match self.call("delete_all", self.client.delete(url).query(&[("user_id", owner)])).await {
            // Nothing of theirs left is what was asked for.
            Ok(_) | Err(MemoryStoreError::NotFound(_)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn check(&self) -> Result<(), MemoryStoreError> {
        self.call("ping", self.client.get(self.url(&["v1", "ping"])?)).await.map(drop)
    }
}

fn transport_error(error: reqwest::Error) -> MemoryStoreError {
    MemoryStoreError::Unavailable(describe_transport_error_of("Mem0", error))
}

/// The typed error of a non-2xx answer, with Mem0's own message (`error`, `detail`).
fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> MemoryStoreError {
    let message = error_message(status, body);
    match status.as_u16() {
        400 => MemoryStoreError::Rejected(message),
        401 | 403 => MemoryStoreError::Unauthorized(message),
        404 => MemoryStoreError::NotFound(message),
        429 => MemoryStoreError::RateLimited { message, retry_after: retry_after(headers) },
        408 | 500..=599 => MemoryStoreError::Unavailable(message),
        _ => MemoryStoreError::Rejected(message),
    }
}

fn error_message(status: StatusCode, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let said = parsed.as_ref().and_then(|v| {
        let text = v.get("error").or_else(|| v.get("detail")).or_else(|| v.get("message"))?;
        let mut text = text.as_str().map(str::to_string).unwrap_or_else(|| text.to_string());
        if let Some(details) = v.get("details").filter(|d| !d.is_null()) {
            text.push_str(&format!(" ({details})"));
        }
        Some(text)
    });
    let text = said.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let text: String = text.chars().take(MAX_ERROR_CHARS).collect();
    if text.is_empty() {
        format!("Mem0 answered {status}")
    } else {
        format!("Mem0 answered {status}: {text}")
    }
}

/// The ids of the memories an add or an event produced. Entries whose `event` is
/// `DELETE` or `NONE` produced nothing of ours. The shape of an event's results is
/// *unverified* (Mem0 documents them as `any[]`): entries like the synchronous add's
/// (`{"id", "data": {"memory"}, "event"}`) are expected, `memory_id` is read as well.
fn produced_ids(results: Option<&Value>) -> Vec<String> {
    let Some(Value::Array(items)) = results else {
        return Vec::new();
    };
    items
        .iter()
        .filter(|item| !matches!(item.get("event").and_then(Value::as_str), Some("DELETE" | "NONE")))
        .filter_map(|item| item.get("id").or_else(|| item.get("memory_id")).and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// An add's answer: `{"results": [...]}` without inference, `{"event_id", "status":
/// "PENDING"}` with it. (An older answer wrapped the event in `results`; it is read too.)
fn parse_add(answer: &Value) -> Result<Indexing, MemoryStoreError> {
    let event = answer.get("event_id").or_else(|| answer.pointer("/results/0/event_id")).and_then(Value::as_str);
    if let Some(event) = event {
        return Ok(Indexing::Pending(event.to_string()));
    }
    match answer.get("results") {
        Some(Value::Array(_)) => Ok(Indexing::Indexed(produced_ids(answer.get("results")))),
        _ => Err(MemoryStoreError::Rejected(format!(
            "Mem0's add answer has neither `results` nor `event_id`: {}",
            answer.to_string().chars().take(MAX_ERROR_CHARS).collect::<String>()
        ))),
    }
}

/// An event: `PENDING`/`RUNNING` are still pending, `SUCCEEDED` lists what it produced.
fn parse_event(event: &str, body: &Value) -> Indexing {
    match body.get("status").and_then(Value::as_str).unwrap_or_default() {
        "SUCCEEDED" => Indexing::Indexed(produced_ids(body.get("results"))),
        "FAILED" => {
            let reason = body
                .pointer("/metadata/error")
                .or_else(|| body.get("error"))
                .map(|e| e.as_str().map(str::to_string).unwrap_or_else(|| e.to_string()))
                .unwrap_or_else(|| "no reason given".into());
            Indexing::Failed(format!("Mem0 could not process the memory (event {event}): {reason}"))
        }
        _ => Indexing::Pending(event.to_string()),
    }
}

/// Search results as hits, best first, keeping only `owner`'s (Mem0 filtered them; this
/// guards against a filter ever being ignored).
fn parse_search(answer: &Value, owner: &str) -> Vec<MemoryHit> {
    let items = match answer.get("results").or(Some(answer)) {
        Some(Value::Array(items)) => items.as_slice(),
        _ => &[],
    };
    items
        .iter()
        .filter(|item| item.get("user_id").and_then(Value::as_str).is_none_or(|user| user == owner))
        .filter_map(|item| {
            let id = item.get("id")?.as_str()?.to_string();
            let text = item.get("memory")?.as_str()?.to_string();
            let source = item
                .pointer(&format!("/metadata/{MEMORY_ID_METADATA}"))
                .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())).map(MemoryId));
            let created_at = item
                .get("created_at")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            let score = item.get("score").and_then(Value::as_f64).unwrap_or_default();
            Some(MemoryHit { recalled: Recalled::External(ExternalMemory { id, text, source, created_at }), score })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    fn classify_json(status: u16, body: Value) -> MemoryStoreError {
        classify(StatusCode::from_u16(status).unwrap(), &HeaderMap::new(), body.to_string().as_bytes())
    }

    #[test]
    fn bad_requests_bad_keys_and_missing_memories_are_final() {
        let bad = classify_json(400, json!({"error": "Invalid filters", "details": {"filters": "required"}}));
        assert!(
            matches!(&bad, MemoryStoreError::Rejected(m) if m.contains("Invalid filters") && m.contains("required"))
        );
        let key = classify_json(401, json!({"detail": "Invalid API key"}));
        assert!(matches!(&key, MemoryStoreError::Unauthorized(m) if m.contains("Invalid API key")));
        let gone = classify_json(404, json!({"error": "Memory not found!"}));
        assert!(matches!(gone, MemoryStoreError::NotFound(_)));
        for error in [bad, key, gone] {
            assert!(!error.is_retryable(), "{error:?}");
        }
    }

    #[test]
    fn rate_limits_are_retryable_after_the_time_mem0_asks_for() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let error = classify(StatusCode::TOO_MANY_REQUESTS, &headers, b"{\"detail\": \"slow down\"}");
        assert!(error.is_retryable());
        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn server_errors_are_retryable_and_keep_the_body() {
        for status in [500, 502, 503] {
            let error = classify(StatusCode::from_u16(status).unwrap(), &HeaderMap::new(), b"upstream down");
            assert!(matches!(&error, MemoryStoreError::Unavailable(m) if m.contains("upstream down")), "{error:?}");
            assert!(error.is_retryable());
        }
    }

    #[test]
    fn an_add_without_inference_lists_its_memories_and_with_inference_names_its_event() {
        let sync = json!({"results": [
            {"id": "m-1", "data": {"memory": "buy milk"}, "event": "ADD"},
            {"id": "m-2", "data": {"memory": "old"}, "event": "DELETE"}
        ]});
        assert_eq!(parse_add(&sync).unwrap(), Indexing::Indexed(vec!["m-1".into()]));
        let pending = json!({"event_id": "ev-1", "status": "PENDING"});
        assert_eq!(parse_add(&pending).unwrap(), Indexing::Pending("ev-1".into()));
        let wrapped = json!({"results": [{"event_id": "ev-2", "status": "PENDING"}]});
        assert_eq!(parse_add(&wrapped).unwrap(), Indexing::Pending("ev-2".into()));
        assert!(parse_add(&json!({"unexpected": true})).is_err());
    }

    #[test]
    fn an_event_is_pending_until_it_succeeds_or_fails() {
        assert_eq!(parse_event("e", &json!({"status": "RUNNING"})), Indexing::Pending("e".into()));
        let done =
            json!({"status": "SUCCEEDED", "results": [{"id": "a", "event": "ADD"}, {"id": "b", "event": "UPDATE"}]});
        assert_eq!(parse_event("e", &done), Indexing::Indexed(vec!["a".into(), "b".into()]));
        assert!(matches!(parse_event("e", &json!({"status": "FAILED"})), Indexing::Failed(_)));
    }

    #[test]
    fn search_hits_carry_our_memory_id_from_the_metadata_and_only_the_owners_are_kept() {
        let answer = json!({"results": [
            {"id": "x", "memory": "Likes pasta", "user_id": "155", "score": 0.9, "metadata": {"memory_id": 42},
             "created_at": "2026-11-26T10:00:00Z"},
            {"id": "y", "memory": "Inferred", "user_id": "155", "score": 0.5, "metadata": null},
            {"id": "z", "memory": "Someone else's", "user_id": "999", "score": 0.4}
        ]});
        let hits = parse_search(&answer, "155");
        assert_eq!(hits.len(), 2);
        let Recalled::External(first) = &hits[0].recalled else { panic!("external") };
        assert_eq!((first.id.as_str(), first.source), ("x", Some(MemoryId(42))));
        assert!(first.created_at.is_some());
        let Recalled::External(second) = &hits[1].recalled else { panic!("external") };
        assert_eq!(second.source, None);
    }

    #[test]
    fn the_key_never_prints() {
        let store = Mem0Store::new(Mem0Settings {
            base_url: "https://api.mem0.ai".parse().unwrap(),
            api_key: Secret::new("m0-very-secret"),
            infer: true,
            request_timeout: Duration::from_secs(1),
            event_wait: Duration::from_secs(1),
        })
        .unwrap();
        assert!(!format!("{store:?}").contains("m0-very-secret"));
        assert_eq!(store.url(&["v1", "event", "a/b"]).unwrap().as_str(), "https://api.mem0.ai/v1/event/a%2Fb/");
    }
}
