//! Voice notes to words, off the request path: a saved voice note's transcription job
//! decodes the kept file, asks the `Transcriber`, puts the words into the memory (so
//! `/search` finds them) and tells the user what was heard. The audio is saved before any
//! of this runs, so a transcriber that fails loses nothing.

use std::sync::Arc;

use async_trait::async_trait;

use super::decoding::run_decoder;
use super::jobs::{JobError, JobHandler};
use super::notify::{queue_reply, queue_reply_alone, QueuedReply};
use super::outbox::Outbox;
use crate::domain::model::{Channel, Job, MemoryId, UserId};
use crate::domain::ports::{
    transact, AudioError, Clock, JobSettlement, MediaFiles, MediaInspector, Repository, SpeechAudio, TranscribeError,
    Transcriber,
};

/// The job kind that transcribes one saved voice note.
pub const TRANSCRIBE_JOB_KIND: &str = "voice.transcribe";

/// The longest transcript quoted back in the reply; the memory keeps all of it.
const QUOTED_CHARS: usize = 300;

/// What the media job queued for one saved voice note.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TranscribeJob {
    pub user_id: i64,
    pub interaction_id: Option<i64>,
    /// The memory the words go into.
    pub memory_id: i64,
    /// The kept file, relative to the storage root.
    pub local_path: String,
    pub content_type: String,
    /// What the user wrote with it, kept in front of the words.
    pub caption: String,
    /// Where the reply goes (E.164); `None` for audio added through the REST API.
    pub phone: Option<String>,
    /// The channel the note came on, where the reply goes.
    #[serde(default)]
    pub channel: Channel,
}

/// Runs transcription jobs.
pub struct TranscribeJobHandler {
    repository: Arc<dyn Repository>,
    files: Arc<dyn MediaFiles>,
    inspector: Arc<dyn MediaInspector>,
    /// `None` when transcription is turned off: jobs queued before it was are told so.
    transcriber: Option<Arc<dyn Transcriber>>,
    clock: Arc<dyn Clock>,
    max_seconds: f64,
    /// Mem0's copy and the embedding follow the words (the description is replaced).
    outbox: Outbox,
}

impl TranscribeJobHandler {
    /// Wires the handler; notes longer than `max_seconds` are not transcribed.
    pub fn new(
        repository: Arc<dyn Repository>,
        files: Arc<dyn MediaFiles>,
        inspector: Arc<dyn MediaInspector>,
        transcriber: Option<Arc<dyn Transcriber>>,
        clock: Arc<dyn Clock>,
        max_seconds: f64,
    ) -> Self {
        Self { repository, files, inspector, transcriber, clock, max_seconds, outbox: Outbox::NONE }
    }

    /// Re-queues Mem0's copy and the embedding of a memory whose words were heard.
    pub fn with_outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = outbox;
        self
    }
}

/// The memory's text once the words are known.
fn memory_text(caption: &str, words: &str) -> String {
    match caption.trim() {
        "" => words.to_string(),
        caption => format!("{caption} — {words}"),
    }
}

/// The reply quoting what was heard, cut to [`QUOTED_CHARS`].
fn heard_reply(words: &str) -> String {
    if words.is_empty() {
        return "🎙️ Voice note saved ✅ (I could not make out any words in it).".into();
    }
    let quoted: String = match words.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", words[..cut].trim_end()),
        None => words.to_string(),
    };
    format!("🎙️ Saved: “{quoted}”")
}

fn audio_error(error: AudioError) -> JobError {
    JobError::Permanent(error.to_string())
}

fn transcribe_error(error: TranscribeError) -> JobError {
    match error {
        TranscribeError::Unavailable { message, retry_after } => JobError::Retryable { message, retry_after },
        TranscribeError::NotAvailable(detail) => {
            tracing::warn!(%detail, "a voice note was saved without words: transcription is not available");
            JobError::Permanent("transcription is not set up on this server".into())
        }
        TranscribeError::Failed(detail) => JobError::Permanent(format!("the transcriber failed ({detail})")),
    }
}

#[async_trait]
impl JobHandler for TranscribeJobHandler {
    async fn run(&self, job: &Job) -> Result<(), JobError> {
        let note: TranscribeJob = serde_json::from_value(job.payload.clone())
            .map_err(|e| JobError::Permanent(format!("malformed transcription job: {e}")))?;
        let Some(transcriber) = &self.transcriber else {
            return Err(JobError::Permanent("transcription is turned off on this server".into()));
        };
        let bytes = self.files.read(&note.local_path).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => JobError::Permanent("its file is gone".into()),
            _ => JobError::Retryable { message: format!("cannot read the file: {e}"), retry_after: None },
        })?;
        let (inspector, max) = (self.inspector.clone(), self.max_seconds);
        let (raw, content_type) = (bytes.clone(), note.content_type.clone());
        let decoded = run_decoder(move || inspector.decode_audio(&raw, &content_type, max))
            .await
            .unwrap_or_else(|failure| Err(AudioError::Corrupt(failure.to_string())))
            .map_err(audio_error)?;
        let audio = SpeechAudio { bytes, content_type: note.content_type.clone(), decoded };
        let started = std::time::Instant::now();
        let transcript = transcriber.transcribe(&audio).await;
        crate::telemetry::metrics::transcription(started.elapsed());
        let transcript = transcript.map_err(transcribe_error)?;
        let words = transcript.text.trim().to_string();
        let now = self.clock.now();
        let (job_id, attempt, outbox) = (job.id, job.attempts, self.outbox);
        transact(&*self.repository, move |tx| {
            Box::pin(async move {
                let memory = MemoryId(note.memory_id);
                let still_there = if words.is_empty() {
                    true // the description stays
                } else {
                    let changed = tx.update_memory(memory, Some(memory_text(&note.caption, &words)), None).await?;
                    if changed {
                        // Mem0's copy of the description gives way to the words.
                        outbox.memory_deleted(tx, memory, now).await?;
                        outbox.memory_saved(tx, memory, UserId(note.user_id), now).await?;
                    }
                    changed
                };
                // A note deleted (/undo) while it was being transcribed stays deleted, unmentioned.
                if let (true, Some(phone)) = (still_there, note.phone) {
                    let reply = QueuedReply {
                        user_id: note.user_id,
                        to: phone,
                        body: heard_reply(&words),
                        in_reply_to: note.interaction_id,
                        channel: note.channel,
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
        let Ok(note) = serde_json::from_value::<TranscribeJob>(job.payload.clone()) else {
            return;
        };
        let Some(phone) = note.phone else {
            return;
        };
        let reply = QueuedReply {
            user_id: note.user_id,
            to: phone,
            body: format!("🎙️ Voice note saved ✅, but I could not transcribe it: {error}."),
            in_reply_to: note.interaction_id,
            channel: note.channel,
        };
        queue_reply_alone(&*self.repository, reply, self.clock.now()).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::{DateTime, TimeZone, Utc};

    use super::*;
    use crate::domain::model::JobId;
    use crate::domain::ports::{
        DecodedAudio, MockClock, MockMediaFiles, MockMediaInspector, MockRepository, MockTranscriber, MockUnitOfWork,
        Transcript,
    };

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, 9, 0, 0).unwrap()
    }

    fn job() -> Job {
        let payload = TranscribeJob {
            user_id: 7,
            interaction_id: Some(70),
            memory_id: 700,
            local_path: "ab/abcd.ogg".into(),
            content_type: "audio/ogg".into(),
            caption: String::new(),
            phone: Some("+15551234567".into()),
            channel: Default::default(),
        };
        Job {
            id: JobId(1),
            kind: TRANSCRIBE_JOB_KIND.into(),
            payload: serde_json::to_value(payload).unwrap(),
            attempts: 1,
            max_attempts: 5,
            created_at: now(),
        }
    }

    /// A handler over mocks: the file is there and decodes; `transcriber` answers; `tx`,
    /// when given, is the one transaction the outcome commits in.
    fn handler(transcriber: MockTranscriber, tx: Option<MockUnitOfWork>) -> TranscribeJobHandler {
        let mut files = MockMediaFiles::new();
        files.expect_read().returning(|_| Ok(b"OggS...".to_vec()));
        let mut inspector = MockMediaInspector::new();
        inspector.expect_decode_audio().returning(|_, _, _| Ok(DecodedAudio { samples: vec![0.0; 16_000] }));
        let mut repository = MockRepository::new();
        let tx = Mutex::new(tx);
        repository.expect_run_in_transaction().returning(move |work| {
            let mut tx = tx.lock().unwrap().take().expect("one transaction");
            futures::executor::block_on(work(&mut tx))
        });
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now());
        TranscribeJobHandler::new(
            Arc::new(repository),
            Arc::new(files),
            Arc::new(inspector),
            Some(Arc::new(transcriber)),
            Arc::new(clock),
            600.0,
        )
    }

    fn hearing(words: &'static str) -> MockTranscriber {
        let mut transcriber = MockTranscriber::new();
        transcriber.expect_transcribe().returning(move |_| Ok(Transcript { text: words.into(), language: None }));
        transcriber
    }

    #[tokio::test]
    async fn the_words_go_into_the_memory_and_back_to_the_user_in_one_transaction() {
        let mut tx = MockUnitOfWork::new();
        tx.expect_update_memory()
            .withf(|id, text, labels| *id == MemoryId(700) && text.as_deref() == Some("buy basil") && labels.is_none())
            .times(1)
            .returning(|_, _, _| Ok(true));
        tx.expect_enqueue_job()
            .withf(|job| job.payload["body"] == "🎙️ Saved: “buy basil”" && job.payload["to"] == "+15551234567")
            .times(1)
            .returning(|_| Ok(()));
        tx.expect_settle_job()
            .withf(|id, attempt, settlement, _| *id == JobId(1) && *attempt == 1 && *settlement == JobSettlement::Done)
            .times(1)
            .returning(|_, _, _, _| Ok(()));
        handler(hearing(" buy basil "), Some(tx)).run(&job()).await.unwrap();
    }

    #[tokio::test]
    async fn a_note_deleted_while_it_was_transcribed_stays_deleted_and_unmentioned() {
        let mut tx = MockUnitOfWork::new();
        tx.expect_update_memory().returning(|_, _, _| Ok(false));
        tx.expect_enqueue_job().never();
        tx.expect_settle_job().times(1).returning(|_, _, _, _| Ok(()));
        handler(hearing("buy basil"), Some(tx)).run(&job()).await.unwrap();
    }

    #[tokio::test]
    async fn a_busy_transcriber_is_retried_later_and_nothing_is_written() {
        let mut transcriber = MockTranscriber::new();
        transcriber.expect_transcribe().returning(|_| {
            Err(TranscribeError::Unavailable {
                message: "429".into(),
                retry_after: Some(std::time::Duration::from_secs(2)),
            })
        });
        let error = handler(transcriber, None).run(&job()).await.unwrap_err();
        assert!(matches!(error, JobError::Retryable { retry_after: Some(d), .. } if d.as_secs() == 2), "{error:?}");
    }

    #[tokio::test]
    async fn silence_keeps_the_description_and_says_no_words_were_heard() {
        let mut tx = MockUnitOfWork::new();
        tx.expect_update_memory().never();
        tx.expect_enqueue_job()
            .withf(|job| job.payload["body"].as_str().unwrap().contains("could not make out any words"))
            .times(1)
            .returning(|_| Ok(()));
        tx.expect_settle_job().times(1).returning(|_, _, _, _| Ok(()));
        handler(hearing(""), Some(tx)).run(&job()).await.unwrap();
    }

    #[test]
    fn the_reply_quotes_the_words_and_cuts_long_ones() {
        assert_eq!(heard_reply("call the plumber"), "🎙️ Saved: “call the plumber”");
        let long = "word ".repeat(200);
        let reply = heard_reply(long.trim());
        assert!(reply.ends_with("…”"));
        assert!(reply.chars().count() < QUOTED_CHARS + 20);
        assert!(heard_reply("").contains("could not make out any words"));
    }

    #[test]
    fn a_caption_stays_in_front_of_the_words() {
        assert_eq!(memory_text("", "buy seeds"), "buy seeds");
        assert_eq!(memory_text("garden", "buy seeds"), "garden — buy seeds");
    }

    #[test]
    fn only_an_unavailable_transcriber_is_retried() {
        let retry = transcribe_error(TranscribeError::Unavailable { message: "503".into(), retry_after: None });
        assert!(matches!(retry, JobError::Retryable { .. }));
        let missing = transcribe_error(TranscribeError::NotAvailable("no model at /x".into()));
        assert!(matches!(&missing, JobError::Permanent(m) if !m.contains("/x")), "paths stay out of replies");
        assert!(matches!(transcribe_error(TranscribeError::Failed("bad".into())), JobError::Permanent(_)));
    }
}
