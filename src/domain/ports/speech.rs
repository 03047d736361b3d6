//! Speech: decoded audio as speech models take it, and the transcribers that turn it
//! into words.

use async_trait::async_trait;

/// The sample rate speech models take, and the rate of [`SpeechAudio::samples`].
pub const SPEECH_SAMPLE_RATE: u32 = 16_000;

/// Why audio could not be decoded. The file itself is kept whatever the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AudioError {
    /// A format or codec we have no decoder for.
    #[error("its format is not one I can play ({0})")]
    Unsupported(String),
    /// The bytes are not a well-formed file of their type.
    #[error("the file is damaged ({0})")]
    Corrupt(String),
    /// A well-formed file without a single sample.
    #[error("it contains no sound")]
    Empty,
    /// Longer than the configured maximum; decoding stopped there.
    #[error("it is longer than {}", spoken_length(*max_seconds))]
    TooLong { max_seconds: f64 },
}

/// "10 minutes", "90 seconds": a limit as a person says it.
fn spoken_length(seconds: f64) -> String {
    if seconds >= 120.0 && (seconds % 60.0).abs() < f64::EPSILON {
        format!("{} minutes", (seconds / 60.0).round())
    } else {
        format!("{} seconds", seconds.round())
    }
}

/// Audio decoded for a speech model: mono, [`SPEECH_SAMPLE_RATE`], in -1.0..=1.0.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedAudio {
    pub samples: Vec<f32>,
}

impl DecodedAudio {
    /// How long the recording plays.
    pub fn duration_seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(SPEECH_SAMPLE_RATE)
    }
}

/// One recording to transcribe, in the two forms transcribers take: a local model reads
/// the decoded samples, a hosted one the original file.
#[derive(Debug, Clone)]
pub struct SpeechAudio {
    pub bytes: Vec<u8>,
    pub content_type: String,
    pub decoded: DecodedAudio,
}

/// What was said in a recording.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// The words, trimmed; empty when nothing was said.
    pub text: String,
    /// The spoken language (ISO 639-1) when the transcriber tells it.
    pub language: Option<String>,
}

/// Why a transcription failed.
#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    /// Transcription is turned off or has no model: the user is told, nothing retried.
    #[error("transcription is not available here: {0}")]
    NotAvailable(String),
    /// A timeout, a busy or unreachable server: another attempt may succeed.
    #[error("the transcriber is unavailable: {message}")]
    Unavailable { message: String, retry_after: Option<std::time::Duration> },
    /// The transcriber refused or failed on this recording; it will again.
    #[error("the transcriber failed: {0}")]
    Failed(String),
}

impl TranscribeError {
    /// Whether the same call could succeed if made again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TranscribeError::Unavailable { .. })
    }
}

/// Speech to text: a local model or a hosted service.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait Transcriber: Send + Sync {
    /// The words spoken in `audio`.
    ///
    /// # Errors
    /// [`TranscribeError`], saying whether another attempt can help.
    async fn transcribe(&self, audio: &SpeechAudio) -> Result<Transcript, TranscribeError>;
}
