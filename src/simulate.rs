//! `simulate`: sends a correctly signed webhook to a running server, as Twilio would, so
//! anyone can try the service without a Twilio account.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use poem::http::StatusCode;
use poem::listener::{Listener, TcpListener};
use poem::web::{Data, Path as UrlPath};
use poem::{get, handler, post, EndpointExt, Request, Response, Route, Server};
use sha1::{Digest, Sha1};
use tokio::sync::mpsc;

use crate::adapters::imaging::sniff_content_type;
use crate::adapters::twilio::signature::compute_signature;
use crate::config::{is_e164, Config, Secret};

pub mod cloud;

/// One simulated message.
pub struct SimulatedMessage {
    /// The sender, `+15551234567` or `whatsapp:+15551234567`.
    pub from: String,
    pub profile_name: Option<String>,
    pub body: String,
    /// The server's base URL; defaults to `PUBLIC_BASE_URL`, else `http://APP_HOST:APP_PORT`.
    pub base_url: Option<String>,
}

/// A fresh `SM…` sid: unique per call, without needing a random source.
pub fn new_message_sid() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    let seed = format!("{nanos}-{}-{:p}", std::process::id(), &nanos);
    let digest = Sha1::digest(seed.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("SM{}", &hex[..32])
}

/// Sends the message and returns the texts of the TwiML reply.
///
/// # Errors
/// When the sender is not a number, the server is unreachable, or it answers an error.
pub async fn send(config: &Config, message: SimulatedMessage) -> anyhow::Result<Vec<String>> {
    post_webhook(config, message, &[]).await
}

/// Sends `message` with `params` added (media fields), signed as Twilio signs.
async fn post_webhook(
    config: &Config,
    message: SimulatedMessage,
    extra: &[(String, String)],
) -> anyhow::Result<Vec<String>> {
    let phone = message.from.trim_start_matches("whatsapp:").to_string();
    if !is_e164(&phone) {
        anyhow::bail!("--from must be an E.164 number such as +15551234567");
    }
    let base = message
        .base_url
        .or_else(|| config.public_base_url.as_ref().map(|u| u.to_string()))
        .unwrap_or_else(|| format!("http://{}:{}", config.host, config.port));
    let url = format!("{}/webhook", base.trim_end_matches('/'));
    let to = config.twilio_whatsapp_number.clone().unwrap_or_else(|| "+14155238886".into());
    let account = config.twilio_account_sid.clone().unwrap_or_else(|| format!("AC{}", "0".repeat(32)));
    let mut params: Vec<(String, String)> = vec![
        ("MessageSid".into(), new_message_sid()),
        ("SmsMessageSid".into(), String::new()),
        ("AccountSid".into(), account),
        ("From".into(), format!("whatsapp:{phone}")),
        ("To".into(), format!("whatsapp:{to}")),
        ("WaId".into(), phone.trim_start_matches('+').into()),
        ("Body".into(), message.body),
        ("NumMedia".into(), "0".into()),
        ("NumSegments".into(), "1".into()),
        ("MessageType".into(), "text".into()),
        ("SmsStatus".into(), "received".into()),
        ("ApiVersion".into(), "2010-04-01".into()),
    ];
    params[1].1 = params[0].1.clone();
    if let Some(name) = message.profile_name {
        params.push(("ProfileName".into(), name));
    }
    for (name, value) in extra {
        params.retain(|(k, _)| k != name);
        params.push((name.clone(), value.clone()));
    }
    let mut request = reqwest::Client::new().post(&url).form(&params);
    if let Some(token) = &config.twilio_auth_token {
        request = request.header("X-Twilio-Signature", compute_signature(token, &url, &params));
    }
    let response = request.send().await.map_err(|e| anyhow::anyhow!("cannot reach {url}: {e}"))?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        anyhow::bail!("the server answered {status}: {body}");
    }
    Ok(twiml_messages(&body))
}

/// How long `simulate --media` waits for the late reply.
const LATE_REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// Sends `media` as a WhatsApp media message and returns the replies: the webhook's own
/// (usually none) and then the late reply the server sends through "Twilio". For that,
/// simulate plays Twilio's REST API itself on `TWILIO_API_BASE_URL`, which must be a
/// loopback `http://` URL that the server is configured with too (with the same
/// `TWILIO_ACCOUNT_SID` and `TWILIO_AUTH_TOKEN`): it serves the file behind Basic auth and
/// receives the reply on `Messages.json`.
///
/// # Errors
/// When the configuration cannot work locally, the file cannot be read, the server
/// refuses the webhook, or no reply arrives within a minute.
pub async fn send_media(config: &Config, message: SimulatedMessage, media: &Path) -> anyhow::Result<Vec<String>> {
    // A development server given no Twilio setting fetches from the same loopback API.
    let local = config.local_twilio();
    let (account_sid, auth_token, base) = match (&config.twilio_account_sid, &config.twilio_auth_token, &local) {
        (Some(sid), Some(token), _) => (sid.clone(), token.clone(), &config.twilio_api_base_url),
        (_, _, Some(local)) => (local.account_sid.clone(), local.auth_token.clone(), &local.api_base_url),
        _ => anyhow::bail!("{LOCAL_TWILIO_HELP}"),
    };
    let is_loopback = match base.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if base.scheme() != "http" || !is_loopback {
        anyhow::bail!("TWILIO_API_BASE_URL is {base}, not a loopback http URL. {LOCAL_TWILIO_HELP}");
    }
    let bytes = std::fs::read(media).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", media.display()))?;
    let content_type = sniff_content_type(&bytes).unwrap_or("application/octet-stream").to_string();
    let port = base.port_or_known_default().unwrap_or(80);
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    let (replies_tx, mut replies) = mpsc::unbounded_channel::<String>();
    let twilio = Arc::new(LocalTwilio {
        account_sid: account_sid.clone(),
        auth_token,
        bytes,
        content_type,
        replies: replies_tx,
    });
    let routes = Route::new()
        .at("/2010-04-01/Accounts/:account/Messages/:message/Media/:media", get(local_media))
        .at("/2010-04-01/Accounts/:account/Messages.json", post(local_send).get(local_list))
        .data(twilio.clone());
    let acceptor = TcpListener::bind(address)
        .into_acceptor()
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address} to play Twilio: {e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                routes,
                async {
                    let _ = stopped.await;
                },
                Some(Duration::from_secs(1)),
            )
            .await;
    });

    let message_sid = new_message_sid().replacen("SM", "MM", 1);
    let media_sid = new_message_sid().replacen("SM", "ME", 1);
    let media_url = format!(
        "{}/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}/Media/{media_sid}",
        base.as_str().trim_end_matches('/')
    );
    let extra = [
        ("NumMedia".to_string(), "1".to_string()),
        ("MediaUrl0".to_string(), media_url),
        ("MediaContentType0".to_string(), twilio.content_type.clone()),
        ("MessageType".to_string(), twilio.content_type.split('/').next().unwrap_or("document").to_string()),
    ];
    let outcome = async {
        let mut all = post_webhook(config, message, &extra).await?;
        let late = tokio::time::timeout(LATE_REPLY_TIMEOUT, replies.recv()).await.map_err(|_| {
            anyhow::anyhow!(
                "no reply within {} s: is the server's TWILIO_API_BASE_URL {base}?",
                LATE_REPLY_TIMEOUT.as_secs()
            )
        })?;
        all.extend(late);
        Ok(all)
    }
    .await;
    let _ = stop.send(());
    let _ = server.await;
    outcome
}

const LOCAL_TWILIO_HELP: &str = "simulate --media plays Twilio for a local server: give the server and simulate no \
Twilio setting at all (a development server then uses this loopback API), or the same TWILIO_ACCOUNT_SID (AC + 32 \
hex), TWILIO_AUTH_TOKEN, TWILIO_WHATSAPP_NUMBER and TWILIO_API_BASE_URL=http://127.0.0.1:8099 (for example in .env).";

/// The part of Twilio that `simulate --media` plays.
struct LocalTwilio {
    account_sid: String,
    auth_token: Secret,
    bytes: Vec<u8>,
    content_type: String,
    replies: mpsc::UnboundedSender<String>,
}

impl LocalTwilio {
    fn is_authorized(&self, request: &Request, account: &str) -> bool {
        let expected = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.account_sid,
            self.auth_token.expose()
        ));
        account == self.account_sid && request.header("authorization") == Some(format!("Basic {expected}").as_str())
    }
}

fn unauthorized() -> Response {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .content_type("application/json")
        .body(r#"{"code": 20003, "message": "Authenticate", "status": 401}"#)
}

#[handler]
fn local_media(
    request: &Request,
    UrlPath((account, _, _)): UrlPath<(String, String, String)>,
    Data(twilio): Data<&Arc<LocalTwilio>>,
) -> Response {
    if !twilio.is_authorized(request, &account) {
        return unauthorized();
    }
    Response::builder().content_type(twilio.content_type.as_str()).body(twilio.bytes.clone())
}

#[handler]
async fn local_send(
    request: &Request,
    UrlPath(account): UrlPath<String>,
    body: poem::Body,
    Data(twilio): Data<&Arc<LocalTwilio>>,
) -> Response {
    if !twilio.is_authorized(request, &account) {
        return unauthorized();
    }
    let form = body.into_vec().await.unwrap_or_default();
    let text =
        url::form_urlencoded::parse(&form).find(|(k, _)| k == "Body").map(|(_, v)| v.into_owned()).unwrap_or_default();
    let _ = twilio.replies.send(text.clone());
    let sid = new_message_sid();
    let resource = serde_json::json!({ "sid": sid, "status": "queued", "body": text, "account_sid": account });
    Response::builder().status(StatusCode::CREATED).content_type("application/json").body(resource.to_string())
}

#[handler]
fn local_list(request: &Request, UrlPath(account): UrlPath<String>, Data(twilio): Data<&Arc<LocalTwilio>>) -> Response {
    if !twilio.is_authorized(request, &account) {
        return unauthorized();
    }
    Response::builder().content_type("application/json").body(r#"{"messages": []}"#)
}

/// The texts of the `<Message>` elements of a TwiML document, unescaped.
pub fn twiml_messages(xml: &str) -> Vec<String> {
    xml.split("<Message>")
        .skip(1)
        .filter_map(|part| part.split("</Message>").next())
        .map(|text| {
            text.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&amp;", "&")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_look_like_twilio_message_sids_and_differ() {
        let a = new_message_sid();
        let b = new_message_sid();
        assert_eq!(a.len(), 34);
        assert!(a.starts_with("SM"));
        assert_ne!(a, b);
    }

    #[test]
    fn twiml_messages_are_unescaped() {
        let xml = crate::adapters::twilio::twiml::messaging_response("Tom & <Jerry>");
        assert_eq!(twiml_messages(&xml), vec!["Tom & <Jerry>".to_string()]);
        assert!(twiml_messages(&crate::adapters::twilio::twiml::messaging_response("")).is_empty());
    }
}
