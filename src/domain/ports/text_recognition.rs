//! The ports that read the text in what people send: a text recognizer (OCR) for photos
//! and screenshots, and a document reader for PDFs (their text layer, or their pages as
//! images for the recognizer when they were scanned).

use std::time::Duration;

use async_trait::async_trait;

/// The text found in one image, after the noise was filtered out.
#[derive(Debug, Clone, PartialEq)]
pub struct RecognizedText {
    /// The words recognised confidently enough, in reading order; lines end with `\n`.
    /// Empty when the image holds no readable text.
    pub text: String,
    /// The mean confidence (0 to 100) of the words kept; 0 when none were.
    pub confidence: f32,
}

/// Why the text of an image could not be read. The file itself is kept whatever the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecognizeError {
    /// No recognizer here (the library or its language data is missing): an operator's
    /// matter; nothing to retry until it is installed.
    #[error("text recognition is not available here ({0})")]
    NotAvailable(String),
    /// The bytes are not an image we can decode, or a damaged one.
    #[error("it is not an image I can read ({0})")]
    Unreadable(String),
    /// Larger than the decoder's limits (a likely decompression bomb).
    #[error("it is too large to read ({0})")]
    TooLarge(String),
    /// Recognition ran past its time cap and was stopped.
    #[error("reading its text took longer than {} seconds", .0.as_secs())]
    TimedOut(Duration),
    /// The recognizer failed on this image; it will again.
    #[error("the text recognizer failed ({0})")]
    Failed(String),
}

/// Reads the text in an image (a photo, a screenshot, a scanned page). CPU-bound:
/// adapters run it off the async threads, bounded in pixels and time.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TextRecognizer: Send + Sync {
    /// The text in `image` (encoded: JPEG, PNG, WebP, GIF, or PGM as PDF pages are rendered).
    ///
    /// # Errors
    /// [`RecognizeError`]; an image without text is not an error (empty text).
    async fn recognize(&self, image: Vec<u8>) -> Result<RecognizedText, RecognizeError>;
}

/// What a PDF holds, as far as its text goes.
#[derive(Debug, Clone, PartialEq)]
pub enum DocumentContent {
    /// The text layer of its first pages (pages separated by a form feed, `\x0c`).
    Text(String),
    /// No text layer (a scan): its first pages rendered as images (grey PGM), for a
    /// [`TextRecognizer`] to read.
    Scanned(Vec<Vec<u8>>),
}

/// Why a PDF could not be read. The file is kept whatever the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DocumentError {
    /// Protected by a password.
    #[error("it is password-protected")]
    Encrypted,
    /// Truncated, damaged or not a PDF at all.
    #[error("the PDF is damaged ({0})")]
    Damaged(String),
    /// Reading it ran past its time cap (a huge or hostile file) and was stopped.
    #[error("reading it took longer than {} seconds", .0.as_secs())]
    TimedOut(Duration),
    /// No PDF reader here: an operator's matter.
    #[error("reading PDFs is not available here ({0})")]
    NotAvailable(String),
}

/// Reads PDFs: the text layer when there is one, else the pages as images. Bounded in
/// pages, bytes and time; a hostile file fails alone.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait DocumentReader: Send + Sync {
    /// The text (or the page images) of the first `max_pages` pages of `pdf`.
    ///
    /// # Errors
    /// [`DocumentError`].
    async fn read_pdf(&self, pdf: Vec<u8>, max_pages: u32) -> Result<DocumentContent, DocumentError>;
}
