//! Speech-to-text on any OpenAI-compatible server (`POST {base}/audio/transcriptions`,
//! multipart), for people who prefer a hosted or a bigger self-hosted model; its answers
//! become "try later" (429, 5xx, timeouts) or "refused".

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use super::twilio::sender::retry_after;
use crate::adapters::outbound;
use crate::config::Secret;
use crate::domain::ports::{SpeechAudio, TranscribeError, Transcriber, Transcript};

/// [`Transcriber`] over an OpenAI-compatible transcription endpoint.
pub struct OpenAiTranscriber {
    client: reqwest::Client,
    /// `{OPENAI_BASE_URL}/audio/transcriptions`, built once.
    endpoint: url::Url,
    api_key: Secret,
    model: String,
    /// An ISO 639-1 hint for the server; `None` lets it detect the language.
    language: Option<String>,
}

impl std::fmt::Debug for OpenAiTranscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiTranscriber")
            .field("endpoint", &self.endpoint.as_str())
            .field("api_key", &self.api_key)
            .field("model", &self.model)
            .finish()
    }
}

/// What such a server answers with `response_format=json` (some add `language`).
#[derive(Deserialize)]
struct TranscriptionBody {
    text: String,
    #[serde(default)]
    language: Option<String>,
}

/// The `error.message` of an OpenAI error body, when there is one.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

impl OpenAiTranscriber {
    /// A transcriber posting to `base` (`https://api.openai.com/v1` for OpenAI itself),
    /// with `model` (`whisper-1`, …); `language` `auto` lets the server detect it.
    ///
    /// # Errors
    /// When `base` cannot carry a path or the HTTP client cannot be built.
    pub fn new(
        base: &url::Url,
        api_key: Secret,
        model: String,
        language: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut endpoint = base.clone();
        endpoint
            .path_segments_mut()
            .map_err(|()| anyhow::anyhow!("OPENAI_BASE_URL {base} cannot carry a path"))?
            .pop_if_empty()
            .extend(["audio", "transcriptions"]);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("whatsapp-memory/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let language = (language != "auto").then(|| language.to_string());
        Ok(Self { client, endpoint, api_key, model, language })
    }
}

/// A file name the server can tell the format from (servers often go by the extension).
fn file_name(content_type: &str) -> &'static str {
    match content_type.split(';').next().unwrap_or_default().trim() {
        "audio/ogg" | "audio/opus" => "voice-note.ogg",
        "audio/mpeg" | "audio/mp3" => "voice-note.mp3",
        "audio/mp4" | "audio/x-m4a" | "audio/m4a" | "audio/aac" => "voice-note.m4a",
        "audio/wav" | "audio/x-wav" | "audio/wave" => "voice-note.wav",
        "audio/flac" | "audio/x-flac" => "voice-note.flac",
        "audio/webm" => "voice-note.webm",
        _ => "voice-note.bin",
    }
}

/// Turns a refusal into the error a job can act on.
fn refusal(status: StatusCode, retry: Option<Duration>, body: &[u8]) -> TranscribeError {
    let message = serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error.message)
        .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(300)]).trim().to_string());
    let message = format!("{status}: {message}");
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
        TranscribeError::Unavailable { message, retry_after: retry }
    } else {
        TranscribeError::Failed(message)
    }
}

#[async_trait]
impl Transcriber for OpenAiTranscriber {
    async fn transcribe(&self, audio: &SpeechAudio) -> Result<Transcript, TranscribeError> {
        let file = reqwest::multipart::Part::bytes(audio.bytes.clone())
            .file_name(file_name(&audio.content_type))
            .mime_str(&audio.content_type)
            .map_err(|e| TranscribeError::Failed(format!("content type {:?}: {e}", audio.content_type)))?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("model", self.model.clone())
            .text("response_format", "json");
        if let Some(language) = &self.language {
            form = form.text("language", language.clone());
        }
        let request = self.client.post(self.endpoint.clone()).bearer_auth(self.api_key.expose()).multipart(form);
        let response = outbound::send("openai", "transcribe", request)
            .await
            .map_err(|e| TranscribeError::Unavailable { message: e.without_url().to_string(), retry_after: None })?;
        let status = response.status();
        let retry = retry_after(response.headers());
        let body = response
            .bytes()
            .await
            .map_err(|e| TranscribeError::Unavailable { message: e.without_url().to_string(), retry_after: None })?;
        if !status.is_success() {
            return Err(refusal(status, retry, &body));
        }
        let parsed: TranscriptionBody = serde_json::from_slice(&body)
            .map_err(|e| TranscribeError::Failed(format!("the transcription server answered something else: {e}")))?;
        Ok(Transcript { text: parsed.text.trim().to_string(), language: parsed.language.or(self.language.clone()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_and_server_errors_are_retried_and_refusals_are_not() {
        let retry = Some(Duration::from_secs(3));
        let limited = refusal(StatusCode::TOO_MANY_REQUESTS, retry, br#"{"error":{"message":"slow down"}}"#);
        assert!(matches!(&limited, TranscribeError::Unavailable { retry_after, .. } if *retry_after == retry));
        assert!(limited.to_string().contains("slow down"));
        assert!(refusal(StatusCode::BAD_GATEWAY, None, b"<html>").is_retryable());
        let refused = refusal(StatusCode::UNAUTHORIZED, None, br#"{"error":{"message":"Incorrect API key"}}"#);
        assert!(!refused.is_retryable());
        assert!(refused.to_string().contains("Incorrect API key"));
        assert!(!refusal(StatusCode::BAD_REQUEST, None, b"").is_retryable());
    }

    #[test]
    fn the_file_name_tells_the_server_the_format() {
        assert_eq!(file_name("audio/ogg; codecs=opus"), "voice-note.ogg");
        assert_eq!(file_name("audio/mpeg"), "voice-note.mp3");
        assert_eq!(file_name("audio/amr"), "voice-note.bin");
    }

    #[test]
    fn the_endpoint_follows_the_base_path() {
        let base = url::Url::parse("http://127.0.0.1:9/v1/").unwrap();
        let t = OpenAiTranscriber::new(&base, Secret::new("k"), "whisper-1".into(), "auto", Duration::from_secs(1))
            .unwrap();
        assert_eq!(t.endpoint.as_str(), "http://127.0.0.1:9/v1/audio/transcriptions");
        assert_eq!(t.language, None);
        assert!(!format!("{t:?}").contains("\"k\""));
    }
}
