//! `simulate`: sends a correctly signed webhook to a running server, as Twilio would, so
//! anyone can try the service without a Twilio account.

use std::time::{SystemTime, UNIX_EPOCH};

use sha1::{Digest, Sha1};

use crate::adapters::twilio::signature::compute_signature;
use crate::config::{is_e164, Config};

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
