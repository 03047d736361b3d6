//! The `TextRecognizer` port over Tesseract 5, in process (see [`library`] for why it is
//! opened at run time): images decoded with our bounded decoder, prepared for recognition
//! ([`prepare`]), recognised with Tesseract's sparse-text segmentation under a deadline,
//! and filtered by word confidence ([`words`]).
//!
//! Tesseract is not thread-safe per instance: each recognition takes an idle instance (or
//! initialises one) and gives it back, so no two threads ever share one; at most
//! `concurrency` run at once, on the blocking pool, behind `catch_unwind`.

pub mod deskew;
pub mod library;
pub mod prepare;
pub mod words;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Semaphore;

use self::library::{Engine, GreyPixels};
use super::imaging::{decode_image, ImagingError};
use crate::domain::ports::{RecognizeError, RecognizedText, TextRecognizer};

/// How the recognizer runs.
#[derive(Debug, Clone)]
pub struct TesseractSettings {
    /// `eng`, `eng+deu`: installed traineddata, `+`-joined.
    pub languages: String,
    /// Larger images are scaled down to this many pixels.
    pub max_pixels: u64,
    /// Longest one image may take, decoding included.
    pub time_cap: Duration,
    /// Recognitions that may run at once (each on one core).
    pub concurrency: usize,
}

/// Tesseract behind the [`TextRecognizer`] port.
pub struct TesseractRecognizer {
    settings: TesseractSettings,
    /// Initialised instances not in use (initialising one reads the language data: ~50 ms).
    idle: Arc<Mutex<Vec<Engine>>>,
    permits: Arc<Semaphore>,
}

impl TesseractRecognizer {
    /// Opens the library and loads the language data now, so that a missing Tesseract is
    /// known (and said) at start rather than at the first photo.
    ///
    /// # Errors
    /// What is missing: the library, or the traineddata of a language.
    pub fn load(settings: TesseractSettings) -> Result<Self, String> {
        let engine = Engine::new(&settings.languages)?;
        let permits = Arc::new(Semaphore::new(settings.concurrency.max(1)));
        Ok(Self { settings, idle: Arc::new(Mutex::new(vec![engine])), permits })
    }

    /// Tesseract's version, for the start-up log.
    pub fn version() -> String {
        library::version().unwrap_or_else(|error| error)
    }
}

fn imaging_error(error: ImagingError) -> RecognizeError {
    match error {
        ImagingError::TooLarge => RecognizeError::TooLarge(
            "more than 250 megapixels (40 for a WebP, a GIF or an interlaced PNG), or a side too long".into(),
        ),
        ImagingError::Unsupported => RecognizeError::Unreadable("not JPEG, PNG, WebP or GIF".into()),
        ImagingError::Corrupt(detail) => RecognizeError::Unreadable(detail),
    }
}

/// Decodes, prepares and recognises one image on the calling thread, within `settings.time_cap`.
fn recognize_now(
    image: &[u8],
    settings: &TesseractSettings,
    idle: &Mutex<Vec<Engine>>,
) -> Result<RecognizedText, RecognizeError> {
    let started = Instant::now();
    let (decoded, _) = decode_image(image).map_err(imaging_error)?;
    let grey = prepare::prepare(&decoded, settings.max_pixels);
    drop(decoded);
    if prepare::is_blank(&grey) {
        // An empty page (a scan's blank pages, a 10,000-page PDF of nothing) costs no recognition.
        return Ok(RecognizedText { text: String::new(), confidence: 0.0 });
    }
    let remaining = settings.time_cap.saturating_sub(started.elapsed());
    if remaining.is_zero() {
        return Err(RecognizeError::TimedOut(settings.time_cap));
    }
    let taken = idle.lock().map_err(|_| RecognizeError::Failed("the instance pool is poisoned".into()))?.pop();
    let mut engine = match taken {
        Some(engine) => engine,
        None => Engine::new(&settings.languages).map_err(RecognizeError::NotAvailable)?,
    };
    let pixels = GreyPixels { width: grey.width(), height: grey.height(), pixels: grey.as_raw() };
    let tsv = engine.recognize_tsv(&pixels, remaining.as_millis() as u32);
    if let Ok(mut idle) = idle.lock() {
        idle.push(engine);
    }
    if started.elapsed() >= settings.time_cap {
        // Tesseract stops at the deadline with what it has read so far: not the image's text.
        return Err(RecognizeError::TimedOut(settings.time_cap));
    }
    Ok(words::kept_text(&tsv.map_err(RecognizeError::Failed)?))
}

#[async_trait]
impl TextRecognizer for TesseractRecognizer {
    async fn recognize(&self, image: Vec<u8>) -> Result<RecognizedText, RecognizeError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| RecognizeError::Failed("the recognizer is shutting down".into()))?;
        let (settings, idle) = (self.settings.clone(), self.idle.clone());
        let task = crate::telemetry::blocking::spawn_blocking(move || {
            let started = Instant::now();
            // A panic in decoding or preparing fails this image alone.
            let outcome = catch_unwind(AssertUnwindSafe(|| recognize_now(&image, &settings, &idle)))
                .unwrap_or_else(|_| Err(RecognizeError::Failed("the recognizer panicked".into())));
            tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                ok = outcome.is_ok(),
                "image recognised"
            );
            outcome
        });
        task.await.map_err(|error| RecognizeError::Failed(error.to_string()))?
    }
}
