//! `simulate --channel meta`: posts a Cloud API delivery to `/whatsapp/cloud`, signed with
//! `META_APP_SECRET` as Meta signs it, and plays the Graph API on the loopback
//! `META_GRAPH_BASE_URL` the server is configured with: it serves the media (lookup and
//! short-lived URL, behind the bearer) and receives the reply, which it prints.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use poem::http::StatusCode;
use poem::listener::{Listener, TcpListener};
use poem::web::{Data, Path as UrlPath};
use poem::{get, handler, post, EndpointExt, Request, Response, Route, Server};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{new_message_sid, SimulatedMessage};
use crate::adapters::imaging::sniff_content_type;
use crate::adapters::meta::signature::{hex, sign};
use crate::config::{is_e164, Config, Secret};

/// How long simulate waits for the reply (a voice note is transcribed first).
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
/// The id the played Graph API gives the one media item.
const MEDIA_ID: &str = "1479537139650973";

const HELP: &str = "simulate --channel meta plays the Graph API for a local server: give the server and simulate \
the same META_APP_SECRET, META_VERIFY_TOKEN, META_ACCESS_TOKEN, META_PHONE_NUMBER_ID and \
META_GRAPH_BASE_URL=http://127.0.0.1:8098 (for example in .env).";

/// The part of the Graph API that simulate plays.
struct LocalGraph {
    access_token: Secret,
    base_url: String,
    media: Option<(Vec<u8>, String)>,
    replies: mpsc::UnboundedSender<String>,
}

impl LocalGraph {
    fn is_authorized(&self, request: &Request) -> bool {
        request.header("authorization") == Some(format!("Bearer {}", self.access_token.expose()).as_str())
    }
}

fn refused() -> Response {
    let body = r#"{"error": {"message": "Error validating access token", "type": "OAuthException", "code": 190}}"#;
    Response::builder().status(StatusCode::UNAUTHORIZED).content_type("application/json").body(body)
}

#[handler]
async fn local_send(request: &Request, body: poem::Body, Data(graph): Data<&Arc<LocalGraph>>) -> Response {
    if !graph.is_authorized(request) {
        return refused();
    }
    let payload: serde_json::Value =
        serde_json::from_slice(&body.into_vec().await.unwrap_or_default()).unwrap_or_default();
    let _ = graph.replies.send(payload["text"]["body"].as_str().unwrap_or_default().to_string());
    let answer = serde_json::json!({"messaging_product": "whatsapp", "contacts": [{"input": payload["to"], "wa_id": payload["to"]}], "messages": [{"id": format!("wamid.SIM{}", &new_message_sid()[2..])}]});
    Response::builder().content_type("application/json").body(answer.to_string())
}

#[handler]
fn local_lookup(
    request: &Request,
    UrlPath((_, id)): UrlPath<(String, String)>,
    Data(graph): Data<&Arc<LocalGraph>>,
) -> Response {
    if !graph.is_authorized(request) {
        return refused();
    }
    let Some((bytes, mime)) = graph.media.as_ref().filter(|_| id == MEDIA_ID) else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .content_type("application/json")
            .body(r#"{"error": {"message": "Unsupported get request", "code": 100}}"#);
    };
    let answer = serde_json::json!({
        "messaging_product": "whatsapp",
        "url": format!("{}/cdn/{MEDIA_ID}", graph.base_url),
        "mime_type": mime,
        "sha256": hex(&Sha256::digest(bytes)),
        "file_size": bytes.len(),
        "id": MEDIA_ID,
    });
    Response::builder().content_type("application/json").body(answer.to_string())
}

#[handler]
fn local_download(request: &Request, Data(graph): Data<&Arc<LocalGraph>>) -> Response {
    if !graph.is_authorized(request) {
        return refused();
    }
    match &graph.media {
        Some((bytes, mime)) => Response::builder().content_type(mime.as_str()).body(bytes.clone()),
        None => Response::builder().status(StatusCode::NOT_FOUND).finish(),
    }
}

/// Sends `message` (with `media`, if given) as a Cloud API delivery and returns the
/// replies the server sends through the played Graph API.
///
/// # Errors
/// When the configuration cannot work locally, the file cannot be read, the server
/// refuses the delivery, or no reply arrives within a minute.
pub async fn send(config: &Config, message: SimulatedMessage, media: Option<&Path>) -> anyhow::Result<Vec<String>> {
    let Some(meta) = &config.meta else { anyhow::bail!("{HELP}") };
    let base = &meta.graph_base_url;
    let loopback = matches!(base.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback());
    if base.scheme() != "http" || !loopback {
        anyhow::bail!("META_GRAPH_BASE_URL is {base}, not a loopback http URL. {HELP}");
    }
    let phone = message.from.trim_start_matches("whatsapp:").to_string();
    if !is_e164(&phone) {
        anyhow::bail!("--from must be an E.164 number such as +15551234567");
    }
    let wa_id = phone.trim_start_matches('+').to_string();
    let media = match media {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let mime = sniff_content_type(&bytes).unwrap_or("application/octet-stream").to_string();
            Some((bytes, mime))
        }
        None => None,
    };
    let id = format!("wamid.SIM{}", &new_message_sid()[2..]);
    let mut item =
        serde_json::json!({"from": wa_id, "id": id, "timestamp": chrono::Utc::now().timestamp().to_string()});
    match &media {
        Some((bytes, mime)) => {
            let major = mime.split('/').next().unwrap_or_default();
            let kind = ["image", "video", "audio"].into_iter().find(|k| *k == major).unwrap_or("document");
            let sha = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes));
            item["type"] = kind.into();
            item[kind] = serde_json::json!({"id": MEDIA_ID, "mime_type": mime, "sha256": sha, "caption": message.body});
        }
        None => {
            item["type"] = "text".into();
            item["text"] = serde_json::json!({"body": message.body});
        }
    }
    let body = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": meta.phone_number_id},
            "contacts": [{"profile": {"name": message.profile_name.unwrap_or_else(|| "Simulated".into())}, "wa_id": wa_id, "user_id": format!("US.{wa_id}")}],
            "messages": [item],
        }}]}],
    })
    .to_string();

    let (replies_tx, mut replies) = mpsc::unbounded_channel::<String>();
    let graph = Arc::new(LocalGraph {
        access_token: meta.access_token.clone(),
        base_url: base.as_str().trim_end_matches('/').to_string(),
        media,
        replies: replies_tx,
    });
    let routes = Route::new()
        .at(format!("/{}/{}/messages", meta.graph_version, meta.phone_number_id), post(local_send))
        .at("/:version/:media", get(local_lookup))
        .at("/cdn/:media", get(local_download))
        .data(graph);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], base.port_or_known_default().unwrap_or(80)));
    let acceptor = TcpListener::bind(address)
        .into_acceptor()
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address} to play the Graph API: {e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        let _ = Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(routes, shutdown, Some(Duration::from_secs(1)))
            .await;
    });

    let server_base = message
        .base_url
        .or_else(|| config.public_base_url.as_ref().map(|u| u.to_string()))
        .unwrap_or_else(|| format!("http://{}:{}", config.host, config.port));
    let url = format!("{}/whatsapp/cloud", server_base.trim_end_matches('/'));
    let outcome = async {
        let response = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/json")
            .header("X-Hub-Signature-256", sign(&meta.app_secret, body.as_bytes()))
            .body(body)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach {url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            anyhow::bail!("the server answered {status}: {}", response.text().await.unwrap_or_default());
        }
        let first = tokio::time::timeout(REPLY_TIMEOUT, replies.recv()).await.map_err(|_| {
            anyhow::anyhow!(
                "no reply within {} s: is the server's META_GRAPH_BASE_URL {base}?",
                REPLY_TIMEOUT.as_secs()
            )
        })?;
        let mut all: Vec<String> = first.into_iter().collect();
        // A media item may be answered twice (saved, then its words); take what follows soon.
        while let Ok(Some(more)) = tokio::time::timeout(Duration::from_millis(300), replies.recv()).await {
            all.push(more);
        }
        Ok(all)
    }
    .await;
    let _ = stop.send(());
    let _ = server.await;
    outcome
}
