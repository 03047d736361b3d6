//! The text in photos, screenshots and PDFs, off the request path: a saved photo's (or
//! PDF's) `ocr` job reads the kept file (Tesseract for images and scanned pages, the text
//! layer for PDFs), keeps the words with the memory and after its caption (so full text,
//! embeddings and Mem0 find them like typed text) and tells the user what was found. The
//! file is saved before any of this runs: a file that cannot be read loses nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::jobs::{JobError, JobHandler};
use super::notify::{queue_reply, queue_reply_alone, QueuedReply};
use super::outbox::Outbox;
use crate::domain::model::{Channel, Job, MemoryId, UserId};
use crate::domain::ports::{
    transact, Clock, DocumentContent, DocumentError, DocumentReader, JobPriority, JobSettlement, MediaFiles, NewJob,
    ReadModel, RecognizeError, Repository, RepositoryError, TextRecognizer,
};

/// The job kind that reads the text of one saved photo or PDF.
pub const OCR_JOB_KIND: &str = "media.ocr";

/// Attempts for one file: only a missing file's disk error is retried.
const OCR_ATTEMPTS: i32 = 3;

/// The longest excerpt of the text quoted back in the reply; the memory keeps all of it.
const QUOTED_CHARS: usize = 60;

/// The content type of the documents whose text is read.
pub const PDF: &str = "application/pdf";

/// What the media job (or `reindex --ocr`) queued for one saved file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OcrJob {
    pub user_id: i64,
    pub interaction_id: Option<i64>,
    /// The memory the text goes into.
    pub memory_id: i64,
    /// The kept file, relative to the storage root.
    pub local_path: String,
    /// The sniffed type: `image/…` or [`PDF`].
    pub content_type: String,
    /// The memory's text when it was saved (the caption or the description): the words
    /// read follow it, unless someone edited the text meanwhile.
    pub saved_text: String,
    /// Where the reply goes (E.164); `None` when nobody is waiting (REST, `reindex --ocr`).
    pub phone: Option<String>,
    /// The channel the file came on, where the reply goes.
    #[serde(default)]
    pub channel: Channel,
}

/// Which saved files get their text read, as decided at start by what is installed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextReading {
    /// Photos and images sent as documents (a text recognizer is loaded).
    pub images: bool,
    /// PDFs (a PDF reader is installed).
    pub pdfs: bool,
}

impl TextReading {
    /// Nothing is read: photos and documents are kept as they were before OCR.
    pub const OFF: TextReading = TextReading { images: false, pdfs: false };

    /// Whether a saved file of `content_type` gets an `ocr` job.
    pub fn reads(self, content_type: &str) -> bool {
        (self.images && content_type.starts_with("image/")) || (self.pdfs && content_type == PDF)
    }
}

/// The job that reads a saved file's text, written with the memory it will fill in.
pub fn ocr_job(job: &OcrJob, now: DateTime<Utc>) -> NewJob {
    NewJob {
        kind: OCR_JOB_KIND.into(),
        payload: serde_json::to_value(job).unwrap_or_default(),
        max_attempts: OCR_ATTEMPTS,
        due_at: now,
        // The photo is saved and its sender waits for the confirmation: not behind new media.
        priority: JobPriority::FollowUp,
    }
}

/// How many memories `reindex --ocr` queues per transaction.
const REINDEX_BATCH: u32 = 500;

/// Queues an `ocr` job for every photo and PDF whose text was never read (saved before
/// OCR was on, or when reading failed); returns how many. A running server's workers do
/// the work, replying to no one. Running it again before they are done queues the same
/// files again, which only reads them twice.
///
/// # Errors
/// When the database fails; the batches queued before stay queued.
pub async fn reindex(
    repository: &dyn Repository,
    reads: &dyn ReadModel,
    now: DateTime<Utc>,
) -> Result<u64, RepositoryError> {
    let (mut after, mut queued) = (MemoryId(0), 0u64);
    loop {
        let batch = reads.memories_awaiting_text(after, REINDEX_BATCH).await?;
        let Some(last) = batch.last() else {
            return Ok(queued);
        };
        after = last.memory;
        queued += batch.len() as u64;
        transact(repository, move |tx| {
            Box::pin(async move {
                for item in batch {
                    let job = OcrJob {
                        user_id: item.user.0,
                        interaction_id: None,
                        memory_id: item.memory.0,
                        local_path: item.local_path,
                        content_type: item.content_type,
                        saved_text: item.text,
                        phone: None,
                        channel: Default::default(),
                    };
                    tx.enqueue_job(ocr_job(&job, now)).await?;
                }
                Ok(())
            })
        })
        .await?;
    }
}

/// The words read, on one line: memory texts are shown one per line in lists.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The memory's text once the words are known: the caption (or description), then them.
fn memory_text(saved_text: &str, extracted: &str) -> String {
    match saved_text.trim() {
        "" => one_line(extracted),
        saved => format!("{saved} — {}", one_line(extracted)),
    }
}

/// The start of the text, cut at a word to at most [`QUOTED_CHARS`], "…" when cut.
fn excerpt(extracted: &str) -> String {
    let line = one_line(extracted);
    if line.chars().count() <= QUOTED_CHARS {
        return line;
    }
    let mut cut = String::new();
    for word in line.split(' ') {
        if cut.chars().count() + word.chars().count() + 1 > QUOTED_CHARS {
            break;
        }
        if !cut.is_empty() {
            cut.push(' ');
        }
        cut.push_str(word);
    }
    if cut.is_empty() {
        cut = line.chars().take(QUOTED_CHARS).collect();
    }
    format!("{cut} …")
}

/// "📷 Photo saved ✅" or "📄 Document saved ✅", as the media job would have said.
fn saved_phrase(content_type: &str) -> &'static str {
    if content_type == PDF {
        "📄 Document saved ✅"
    } else {
        "📷 Photo saved ✅"
    }
}

/// The reply once the text is read (or could not be).
fn reply_text(content_type: &str, outcome: &Result<String, String>) -> String {
    let saved = saved_phrase(content_type);
    match outcome {
        Ok(text) if text.trim().is_empty() => saved.to_string(),
        Ok(text) => format!("{saved} (text: “{}”)", excerpt(text)),
        Err(reason) => format!("{saved} (I could not read its text: {reason})"),
    }
}

/// Runs `ocr` jobs.
pub struct OcrJobHandler {
    repository: Arc<dyn Repository>,
    files: Arc<dyn MediaFiles>,
    /// `None` when OCR is off or Tesseract is missing: jobs queued before are told so.
    recognizer: Option<Arc<dyn TextRecognizer>>,
    /// `None` when poppler is missing.
    documents: Option<Arc<dyn DocumentReader>>,
    clock: Arc<dyn Clock>,
    /// Pages of a PDF read.
    pdf_max_pages: u32,
    /// How long a scanned PDF's pages may be recognised in all: no new page starts after it.
    document_time_cap: Duration,
    /// Mem0's copy and the embedding follow the words.
    outbox: Outbox,
}

impl OcrJobHandler {
    /// Wires the handler.
    pub fn new(
        repository: Arc<dyn Repository>,
        files: Arc<dyn MediaFiles>,
        recognizer: Option<Arc<dyn TextRecognizer>>,
        documents: Option<Arc<dyn DocumentReader>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            repository,
            files,
            recognizer,
            documents,
            clock,
            pdf_max_pages: 10,
            document_time_cap: Duration::from_secs(20),
            outbox: Outbox::NONE,
        }
    }

    /// Reads at most `pages` of a PDF, recognising scanned ones for at most `time_cap` in all.
    pub fn with_pdf_limits(mut self, pages: u32, time_cap: Duration) -> Self {
        self.pdf_max_pages = pages;
        self.document_time_cap = time_cap;
        self
    }

    /// Re-queues Mem0's copy and the embedding of a memory whose text was read.
    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = outbox;
        self
    }

    /// The text of `bytes`, or why it cannot be read, as the user is told; timed in the
    /// metrics.
    async fn read_text(&self, bytes: Vec<u8>, content_type: &str) -> Result<String, String> {
        let started = Instant::now();
        let text = self.read_text_untimed(bytes, content_type).await;
        crate::telemetry::metrics::ocr(started.elapsed());
        text
    }

    async fn read_text_untimed(&self, bytes: Vec<u8>, content_type: &str) -> Result<String, String> {
        if content_type == PDF {
            let Some(documents) = &self.documents else {
                return Err("reading PDFs is not set up on this server".into());
            };
            return match documents.read_pdf(bytes, self.pdf_max_pages).await.map_err(document_error)? {
                DocumentContent::Text(text) => Ok(text),
                DocumentContent::Scanned(pages) => self.recognize_pages(pages).await,
            };
        }
        let recognizer = self.recognizer.as_ref().ok_or_else(not_recognizing)?;
        recognizer.recognize(bytes).await.map(|found| found.text).map_err(recognize_error)
    }

    /// The text of a scanned document's pages, in order, until the time cap is spent.
    async fn recognize_pages(&self, pages: Vec<Vec<u8>>) -> Result<String, String> {
        let recognizer =
            self.recognizer.as_ref().ok_or_else(|| "its pages are scans, and ".to_string() + &not_recognizing())?;
        let started = Instant::now();
        let mut text = String::new();
        for (number, page) in pages.into_iter().enumerate() {
            if started.elapsed() >= self.document_time_cap {
                tracing::info!(pages_read = number, "a scanned PDF's time cap was spent: its other pages are not read");
                break;
            }
            let found = recognizer.recognize(page).await.map_err(recognize_error)?;
            text.push_str(&found.text);
            text.push('\x0c');
        }
        Ok(text)
    }
}

fn not_recognizing() -> String {
    "text recognition is not set up on this server".into()
}

fn recognize_error(error: RecognizeError) -> String {
    if let RecognizeError::NotAvailable(detail) = &error {
        tracing::warn!(%detail, "a file was saved without its text: text recognition is not available");
        return not_recognizing();
    }
    error.to_string()
}

fn document_error(error: DocumentError) -> String {
    if let DocumentError::NotAvailable(detail) = &error {
        tracing::warn!(%detail, "a PDF was saved without its text: the PDF reader is not available");
        return "reading PDFs is not set up on this server".into();
    }
    error.to_string()
}

#[async_trait]
impl JobHandler for OcrJobHandler {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let file: OcrJob = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("malformed OCR job: {e}")))?;
        let bytes = self.files.read(&file.local_path).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => JobError::Permanent("its file is gone".into()),
            _ => JobError::Retryable { message: format!("cannot read the file: {e}"), retry_after: None },
        })?;
        let started = Instant::now();
        // However a file misbehaves, its worker is free again after twice the time cap (the
        // PDF reader and the recognizer each stop at the cap; this bounds them together).
        let limit = self.document_time_cap * 2;
        let outcome = match tokio::time::timeout(limit, self.read_text(bytes, &file.content_type)).await {
            Ok(read) => read.map(|text| text.trim().to_string()),
            Err(_) => Err(format!("reading it took longer than {} seconds", limit.as_secs())),
        };
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            chars = outcome.as_ref().map_or(0, |text| text.chars().count()),
            error = outcome.as_ref().err().map(String::as_str),
            "text read"
        );
        let now = self.clock.now();
        let (job_id, attempt, outbox) = (job.id, job.attempts, self.outbox);
        transact(&*self.repository, move |tx| {
            Box::pin(async move {
                let memory = MemoryId(file.memory_id);
                let still_there = match &outcome {
                    Ok(extracted) => {
                        let text = memory_text(&file.saved_text, extracted);
                        let there = tx.record_extracted_text(memory, extracted, &file.saved_text, &text).await?;
                        if there && !extracted.is_empty() {
                            // The indexes' copies of the caption give way to the caption and the words.
                            outbox.memory_deleted(tx, memory, now).await?;
                            outbox.memory_saved(tx, memory, UserId(file.user_id), now).await?;
                        }
                        there
                    }
                    // Not recorded: `reindex --ocr` tries again once the reason is fixed.
                    Err(_) => tx.memory_text(memory).await?.is_some(),
                };
                // A photo deleted (/undo) while it was being read stays deleted, unmentioned.
                if let (true, Some(phone)) = (still_there, file.phone.clone()) {
                    let reply = QueuedReply {
                        user_id: file.user_id,
                        to: phone,
                        body: reply_text(&file.content_type, &outcome),
                        in_reply_to: file.interaction_id,
                        channel: file.channel,
                    };
                    queue_reply(tx, reply, now).await?;
                }
                tx.settle_job(job_id, attempt, JobSettlement::Done, now).await
            })
        })
        .await?;
        Ok(())
    }

    async fn dead_lettered(&self, job: &Job, error: &str) {
        let Ok(file) = serde_json::from_value::<OcrJob>(job.payload.clone()) else {
            return;
        };
        let Some(phone) = file.phone else {
            return;
        };
        let reply = QueuedReply {
            user_id: file.user_id,
            to: phone,
            body: reply_text(&file.content_type, &Err(error.to_string())),
            in_reply_to: file.interaction_id,
            channel: file.channel,
        };
        queue_reply_alone(&*self.repository, reply, self.clock.now()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::TimeZone;

    use super::*;
    use crate::domain::model::JobId;
    use crate::domain::ports::{
        MockClock, MockDocumentReader, MockMediaFiles, MockRepository, MockTextRecognizer, MockUnitOfWork,
        RecognizedText,
    };

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 9, 0, 0).unwrap()
    }

    fn job(content_type: &str) -> Job {
        let payload = OcrJob {
            user_id: 7,
            interaction_id: Some(70),
            memory_id: 700,
            local_path: "ab/abcd.png".into(),
            content_type: content_type.into(),
            saved_text: "Photo 1080×2400, received 2026-12-06 09:00".into(),
            phone: Some("+15551234567".into()),
            channel: Default::default(),
        };
        Job {
            id: JobId(1),
            kind: OCR_JOB_KIND.into(),
            payload: serde_json::to_value(payload).unwrap(),
            attempts: 1,
            max_attempts: 3,
            created_at: now(),
        }
    }

    /// A handler over mocks: the file is there; `tx` is the one transaction the outcome
    /// commits in.
    fn handler(recognizer: MockTextRecognizer, documents: MockDocumentReader, tx: MockUnitOfWork) -> OcrJobHandler {
        let mut files = MockMediaFiles::new();
        files.expect_read().returning(|_| Ok(b"bytes".to_vec()));
        let mut repository = MockRepository::new();
        let tx = Mutex::new(Some(tx));
        repository.expect_run_in_transaction().returning(move |work| {
            let mut tx = tx.lock().unwrap().take().expect("one transaction");
            futures::executor::block_on(work(&mut tx))
        });
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now());
        OcrJobHandler::new(
            Arc::new(repository),
            Arc::new(files),
            Some(Arc::new(recognizer)),
            Some(Arc::new(documents)),
            Arc::new(clock),
        )
        .with_outbox(Outbox::EMBEDDINGS)
    }

    fn reading(text: &'static str) -> MockTextRecognizer {
        let mut recognizer = MockTextRecognizer::new();
        recognizer.expect_recognize().returning(move |_| Ok(RecognizedText { text: text.into(), confidence: 90.0 }));
        recognizer
    }

    fn replying(tx: &mut MockUnitOfWork, body: &'static str) {
        tx.expect_enqueue_job().withf(move |job| job.payload["body"] == body).times(1).returning(|_| Ok(()));
        tx.expect_settle_job()
            .withf(|id, _, settlement, _| *id == JobId(1) && *settlement == JobSettlement::Done)
            .times(1)
            .returning(|_, _, _, _| Ok(()));
    }

    #[tokio::test]
    async fn the_text_goes_into_the_memory_its_indexes_and_the_reply_in_one_transaction() {
        let mut tx = MockUnitOfWork::new();
        tx.expect_record_extracted_text()
            .withf(|memory, extracted, saved, text| {
                *memory == MemoryId(700)
                    && extracted == "WIFI Bluebird-5G\nmaple-42"
                    && saved.starts_with("Photo 1080×2400")
                    && text == "Photo 1080×2400, received 2026-12-06 09:00 — WIFI Bluebird-5G maple-42"
            })
            .times(1)
            .returning(|_, _, _, _| Ok(true));
        tx.expect_queue_embedding().withf(|memory| *memory == MemoryId(700)).times(1).returning(|_| Ok(()));
        replying(&mut tx, "📷 Photo saved ✅ (text: “WIFI Bluebird-5G maple-42”)");
        let handler = handler(reading("WIFI Bluebird-5G\nmaple-42\n"), MockDocumentReader::new(), tx);
        handler.run(&job("image/png")).await.unwrap();
    }

    #[tokio::test]
    async fn a_photo_deleted_while_it_was_read_stays_deleted_and_unmentioned() {
        let mut tx = MockUnitOfWork::new();
        tx.expect_record_extracted_text().returning(|_, _, _, _| Ok(false));
        tx.expect_enqueue_job().never();
        tx.expect_queue_embedding().never();
        tx.expect_settle_job().times(1).returning(|_, _, _, _| Ok(()));
        handler(reading("WIFI"), MockDocumentReader::new(), tx).run(&job("image/png")).await.unwrap();
    }

    #[tokio::test]
    async fn an_unreadable_file_is_answered_with_the_reason_and_left_for_reindex() {
        let mut recognizer = MockTextRecognizer::new();
        recognizer.expect_recognize().returning(|_| Err(RecognizeError::TooLarge("more than 40 megapixels".into())));
        let mut tx = MockUnitOfWork::new();
        tx.expect_record_extracted_text().never();
        tx.expect_memory_text().returning(|_| Ok(Some("Photo".into())));
        replying(
            &mut tx,
            "📷 Photo saved ✅ (I could not read its text: it is too large to read (more than 40 megapixels))",
        );
        handler(recognizer, MockDocumentReader::new(), tx).run(&job("image/png")).await.unwrap();
    }

    #[tokio::test]
    async fn a_scanned_pdf_has_each_of_its_pages_recognised_in_order() {
        let mut documents = MockDocumentReader::new();
        documents
            .expect_read_pdf()
            .withf(|_, pages| *pages == 10)
            .returning(|_, _| Ok(DocumentContent::Scanned(vec![b"one".to_vec(), b"two".to_vec()])));
        let mut recognizer = MockTextRecognizer::new();
        recognizer.expect_recognize().times(2).returning(|page| {
            Ok(RecognizedText { text: format!("page {}\n", String::from_utf8(page).unwrap()), confidence: 90.0 })
        });
        let mut tx = MockUnitOfWork::new();
        tx.expect_record_extracted_text()
            .withf(|_, extracted, _, _| extracted == "page one\n\x0cpage two")
            .returning(|_, _, _, _| Ok(true));
        tx.expect_queue_embedding().returning(|_| Ok(()));
        replying(&mut tx, "📄 Document saved ✅ (text: “page one page two”)");
        handler(recognizer, documents, tx).run(&job(PDF)).await.unwrap();
    }

    #[test]
    fn the_reply_quotes_the_start_of_the_text_cut_at_a_word() {
        let long = "WIFI Bluebird-5G password maple-orange-tiger-42 router admin page behind the kitchen shelf";
        let reply = reply_text("image/jpeg", &Ok(long.into()));
        assert_eq!(reply, "📷 Photo saved ✅ (text: “WIFI Bluebird-5G password maple-orange-tiger-42 router admin …”)");
        assert_eq!(reply_text("image/jpeg", &Ok("  ".into())), "📷 Photo saved ✅");
        assert_eq!(excerpt(&"x".repeat(100)).chars().count(), QUOTED_CHARS + 2, "one long word is cut inside");
    }

    #[test]
    fn only_images_and_pdfs_are_read_and_only_what_is_installed() {
        let all = TextReading { images: true, pdfs: true };
        assert!(all.reads("image/jpeg") && all.reads(PDF) && !all.reads("audio/ogg") && !all.reads("text/vcard"));
        assert!(!TextReading { images: false, pdfs: true }.reads("image/png"));
        assert!(!TextReading::OFF.reads(PDF));
    }
}
