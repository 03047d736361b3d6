//! Local speech-to-text with whisper.cpp (whisper-rs): the model is loaded once, on first
//! use, and shared; each transcription runs on the blocking pool, at most `concurrency`
//! at a time, so a queue of voice notes never takes every core from the server.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{OnceCell, Semaphore};
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use crate::domain::ports::{SpeechAudio, TranscribeError, Transcriber, Transcript, SPEECH_SAMPLE_RATE};

/// How whisper.cpp runs.
#[derive(Debug, Clone)]
pub struct WhisperSettings {
    /// A ggml model file (`make whisper-model` provisions `models/ggml-tiny.en.bin`).
    pub model_path: PathBuf,
    /// An ISO 639-1 code, or `auto` to detect it (multilingual models only).
    pub language: String,
    /// CPU threads one transcription uses.
    pub threads: usize,
    /// Transcriptions that may run at once; each holds `threads` cores.
    pub concurrency: usize,
}

/// The encoder's frames per second of audio (whisper.cpp's 1,500 frames per 30 s window).
const ENCODER_FRAMES_PER_SECOND: f64 = 50.0;
/// Whisper's window: shorter audio lets the encoder look at fewer frames.
const WINDOW_SECONDS: f64 = 30.0;
/// Spare encoder frames past the end of the speech: cutting exactly at the end makes the
/// decoder miss or repeat the last words.
const AUDIO_CONTEXT_MARGIN: f64 = 64.0;

/// The encoder context for a recording: all of the window for long audio, only what the
/// audio fills for short notes, which makes a 6 s note about three times faster.
fn audio_context(seconds: f64) -> i32 {
    if seconds >= WINDOW_SECONDS - 2.0 {
        0 // whisper.cpp's default: the whole window
    } else {
        let frames = (seconds * ENCODER_FRAMES_PER_SECOND + AUDIO_CONTEXT_MARGIN).ceil();
        // Multiples of 64 keep the matrix shapes friendly to SIMD.
        ((frames / 64.0).ceil() * 64.0).min(1500.0) as i32
    }
}

/// Joins whisper's segments into one text, leaving out its non-speech markers
/// (`[BLANK_AUDIO]`, `(music)`, …), which are not words anybody said.
fn join_segments<'a>(segments: impl IntoIterator<Item = &'a str>) -> String {
    let words: Vec<&str> = segments
        .into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .filter(|s| {
            let marker = (s.starts_with('[') && s.ends_with(']')) || (s.starts_with('(') && s.ends_with(')'));
            !marker
        })
        .collect();
    words.join(" ")
}

/// [`Transcriber`] over a local ggml model.
pub struct WhisperTranscriber {
    settings: WhisperSettings,
    model: OnceCell<Arc<WhisperContext>>,
    permits: Semaphore,
}

impl WhisperTranscriber {
    /// A transcriber that loads `settings.model_path` when first needed.
    pub fn new(settings: WhisperSettings) -> Self {
        whisper_rs::install_logging_hooks();
        let permits = Semaphore::new(settings.concurrency.max(1));
        Self { settings, model: OnceCell::new(), permits }
    }

    /// Loads the model now rather than on the first voice note (a failure is retried on
    /// the next call).
    ///
    /// # Errors
    /// [`TranscribeError::NotAvailable`] when the file is missing or not a ggml model.
    pub async fn model(&self) -> Result<Arc<WhisperContext>, TranscribeError> {
        let path = self.settings.model_path.clone();
        self.model
            .get_or_try_init(|| async move {
                crate::telemetry::blocking::spawn_blocking(move || load(path))
                    .await
                    .map_err(|e| TranscribeError::Failed(format!("loading the model stopped: {e}")))?
            })
            .await
            .cloned()
    }
}

fn load(path: PathBuf) -> Result<Arc<WhisperContext>, TranscribeError> {
    if !path.is_file() {
        return Err(TranscribeError::NotAvailable(format!(
            "there is no Whisper model at {} (run `make whisper-model`, or set WHISPER_MODEL_PATH)",
            path.display()
        )));
    }
    let started = std::time::Instant::now();
    let context = WhisperContext::new_with_params(&path, WhisperContextParameters::default()).map_err(|e| {
        TranscribeError::NotAvailable(format!("{} is not a Whisper model whisper.cpp can load: {e}", path.display()))
    })?;
    tracing::info!(model = %path.display(), elapsed_ms = started.elapsed().as_millis() as u64, "loaded the Whisper model");
    Ok(Arc::new(context))
}

fn run(model: &WhisperContext, samples: &[f32], language: &str, threads: usize) -> Result<Transcript, TranscribeError> {
    let failed = |e: whisper_rs::WhisperError| TranscribeError::Failed(e.to_string());
    let mut state = model.create_state().map_err(failed)?;
    let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
    params.set_n_threads(threads.max(1) as i32);
    params.set_language(Some(language));
    params.set_translate(false);
    params.set_no_context(true);
    params.set_suppress_nst(true);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_special(false);
    params.set_print_timestamps(false);
    params.set_audio_ctx(audio_context(samples.len() as f64 / f64::from(SPEECH_SAMPLE_RATE)));
    // whisper.cpp needs at least one second; pad a shorter clip with silence.
    let minimum = SPEECH_SAMPLE_RATE as usize + SPEECH_SAMPLE_RATE as usize / 10;
    let padded;
    let input = if samples.len() < minimum {
        padded = [samples, &vec![0.0; minimum - samples.len()]].concat();
        &padded[..]
    } else {
        samples
    };
    state.full(params, input).map_err(failed)?;
    let segments: Vec<String> = state.as_iter().filter_map(|s| s.to_str_lossy().ok().map(|t| t.into_owned())).collect();
    let language = whisper_rs::get_lang_str(state.full_lang_id_from_state()).map(str::to_string);
    Ok(Transcript { text: join_segments(segments.iter().map(String::as_str)), language })
}

#[async_trait]
impl Transcriber for WhisperTranscriber {
    async fn transcribe(&self, audio: &SpeechAudio) -> Result<Transcript, TranscribeError> {
        let _turn = self.permits.acquire().await.map_err(|e| TranscribeError::Failed(e.to_string()))?;
        let model = self.model().await?;
        let samples = audio.decoded.samples.clone();
        let language = self.settings.language.clone();
        let threads = self.settings.threads;
        crate::telemetry::blocking::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let transcript = run(&model, &samples, &language, threads);
            tracing::info!(
                audio_seconds = samples.len() as f64 / f64::from(SPEECH_SAMPLE_RATE),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "transcribed a recording"
            );
            transcript
        })
        .await
        .map_err(|e| TranscribeError::Failed(format!("the transcription stopped: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_notes_use_a_short_encoder_context_and_long_ones_the_whole_window() {
        assert_eq!(audio_context(6.0), 384);
        assert_eq!(audio_context(1.0), 128);
        assert!(audio_context(6.0) as f64 >= 6.0 * ENCODER_FRAMES_PER_SECOND + AUDIO_CONTEXT_MARGIN);
        assert_eq!(audio_context(29.0), 0);
        assert_eq!(audio_context(600.0), 0);
    }

    #[test]
    fn non_speech_markers_are_left_out_of_the_text() {
        let text = join_segments([" Call the plumber", "[BLANK_AUDIO]", " (music) ", " about the tap."]);
        assert_eq!(text, "Call the plumber about the tap.");
        assert_eq!(join_segments(["[BLANK_AUDIO]"]), "");
    }

    #[tokio::test]
    async fn a_missing_model_file_is_not_available_with_the_fix_in_the_message() {
        let transcriber = WhisperTranscriber::new(WhisperSettings {
            model_path: PathBuf::from("/nonexistent/ggml-tiny.en.bin"),
            language: "en".into(),
            threads: 1,
            concurrency: 1,
        });
        let error = transcriber.model().await.err().unwrap();
        assert!(matches!(&error, TranscribeError::NotAvailable(m) if m.contains("make whisper-model")), "{error}");
    }
}
