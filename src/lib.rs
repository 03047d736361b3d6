//! whatsapp-memory: a WhatsApp number as a personal memory.
//!
//! Hexagonal: `domain` holds the rules and the ports, `app` the use cases, `adapters`
//! the real systems (SQLite/PostgreSQL, Twilio), `http` the poem routes. [`Application`]
//! is the one place where adapters are wired to ports.

pub mod adapters;
pub mod app;
pub mod backup;
pub mod config;
pub mod domain;
pub mod http;
pub mod simulate;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use poem::EndpointExt;

use adapters::clock::SystemClock;
use adapters::db::PoolReads;
use adapters::db::{redact_url, Database, PoolQueueAdmin};
use adapters::media_ports::ContentInspector;
use adapters::mem0::{Mem0Settings, Mem0Store};
use adapters::meta::media::{ChannelFetcher, MetaMediaFetcher};
use adapters::meta::payload::CloudApiDecoder;
use adapters::meta::sender::MetaSender;
use adapters::minilm::{MiniLmEmbedder, MiniLmSettings};
use adapters::openai_stt::OpenAiTranscriber;
use adapters::pdf::PopplerReader;
use adapters::storage::MediaStorage;
use adapters::tesseract::{TesseractRecognizer, TesseractSettings};
use adapters::twilio::media::TwilioMediaFetcher;
use adapters::twilio::sender::TwilioSender;
use adapters::twilio::signature::SignatureValidator;
use adapters::twilio::UnconfiguredFetcher;
use adapters::whisper::{WhisperSettings, WhisperTranscriber};
use app::activity::RequestRate;
use app::inbox::{DeliveryJobHandler, META_DELIVERY_JOB_KIND};
use app::ingest::{IngestService, MEDIA_JOB_KIND};
use app::jobs::{JobRunner, JobSignal, WorkerSettings};
use app::media::{MediaJobHandler, MediaKeeper, MediaSettings};
use app::mem0::{Mem0DeleteHandler, Mem0IndexHandler, MEM0_DELETE_JOB_KIND, MEM0_ERASE_JOB_KIND, MEM0_INDEX_JOB_KIND};
use app::memories::MemoryService;
use app::notify::{SendJobHandler, SEND_JOB_KIND};
use app::ocr::{OcrJobHandler, TextReading, OCR_JOB_KIND};
use app::outbox::Outbox;
use app::queue::QueueService;
use app::rehash::{ImageRehasher, RehashReport};
use app::reminder_api::ReminderService;
use app::reminder_delivery::ReminderDelivery;
use app::reminders::{ReminderSettings, REMINDER_JOB_KIND};
use app::search::MemorySearch;
use app::semantic::{EmbeddingIndexer, SemanticIndex, SemanticSettings};
use app::voice::{TranscribeJobHandler, TRANSCRIBE_JOB_KIND};
use config::{Config, Environment, TranscriberChoice};
use domain::ports::Clock;
use domain::ports::{
    DocumentReader, ExternalIndex, MediaFetcher, MediaFiles, MediaInspector, MemoryStoreError, MessageSender,
    ReadModel, TextEmbedder, TextRecognizer, Transcriber,
};
use http::auth::ApiKeys;
use http::webhook::WebhookState;
use http::whatsapp_cloud::CloudWebhook;
use http::AppState;

/// A built service, bound to its port, ready to run.
pub struct Application {
    local_addr: SocketAddr,
    listener: tokio::net::TcpListener,
    /// `/metrics`, when metrics are on; with a listener of its own under `METRICS_ADDR`.
    metrics: Option<(Arc<http::metrics::Scrape>, Option<tokio::net::TcpListener>)>,
    /// Timeouts and the connection cap the server loop keeps.
    connections: config::ConnectionLimits,
    state: Arc<AppState>,
    background: Background,
}

/// How long `serve` waits, on shutdown, for running jobs to finish; a job still running
/// after that is claimed again once its lease expires.
const JOB_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Longest one Twilio REST call may take.
const TWILIO_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one Graph API call (a send, a media lookup and download) may take.
const META_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one call to a hosted transcriber may take (a ten-minute note uploads and runs).
const OPENAI_TRANSCRIBE_TIMEOUT: Duration = Duration::from_secs(300);

/// The configured speech-to-text, if any. A missing local model is said loudly at start;
/// voice notes are still kept, and transcribed once the model is there.
///
/// # Errors
/// When the hosted transcriber's HTTP client cannot be built.
fn transcriber(config: &Config) -> anyhow::Result<Option<Arc<dyn Transcriber>>> {
    let voice = &config.voice;
    Ok(match voice.transcriber {
        TranscriberChoice::Off => {
            tracing::info!("TRANSCRIBER=none: voice notes are kept as audio, not transcribed");
            None
        }
        TranscriberChoice::Whisper => {
            if !voice.whisper_model_path.is_file() {
                tracing::warn!(
                    "WHISPER MODEL MISSING: there is no model at {} (run `make whisper-model` or set \
                     WHISPER_MODEL_PATH); voice notes are kept but not transcribed until it is there",
                    voice.whisper_model_path.display()
                );
            }
            Some(Arc::new(WhisperTranscriber::new(WhisperSettings {
                model_path: voice.whisper_model_path.clone(),
                language: voice.language.clone(),
                threads: voice.whisper_threads,
                concurrency: voice.whisper_concurrency,
            })))
        }
        TranscriberChoice::OpenAi => {
            let key = config.openai_api_key.clone().ok_or_else(|| anyhow::anyhow!("OPENAI_API_KEY is not set"))?;
            Some(Arc::new(OpenAiTranscriber::new(
                &voice.openai_base_url,
                key,
                voice.openai_model.clone(),
                &voice.language,
                OPENAI_TRANSCRIBE_TIMEOUT,
            )?))
        }
    })
}

/// Recognitions that run at once: one core each, and one core stays with the server (as
/// with transcription) on the two-core machines this service targets.
const OCR_CONCURRENCY: usize = 1;

/// What reads the text of photos and PDFs: Tesseract and poppler when `OCR` is on and they
/// are installed. A missing one is said loudly, once, at start; photos and documents are
/// then kept as before, without their text.
pub fn text_readers(config: &Config) -> TextReaders {
    let ocr = &config.ocr;
    if !ocr.enabled {
        tracing::info!("OCR=off: photos and documents are kept without reading their text");
        return TextReaders { recognizer: None, documents: None };
    }
    let settings = TesseractSettings {
        languages: ocr.languages.clone(),
        max_pixels: ocr.max_pixels,
        time_cap: ocr.time_cap,
        concurrency: OCR_CONCURRENCY,
    };
    let recognizer: Option<Arc<dyn TextRecognizer>> = match TesseractRecognizer::load(settings) {
        Ok(recognizer) => {
            tracing::info!(
                version = %TesseractRecognizer::version(),
                languages = %ocr.languages,
                "text recognition is on: the text in photos and screenshots is read in the background"
            );
            Some(Arc::new(recognizer))
        }
        Err(error) => {
            tracing::warn!(
                %error,
                "TESSERACT IS NOT AVAILABLE: photos are kept without their text (install tesseract-ocr and \
                 tesseract-ocr-{} from your distribution, or set OCR=off to silence this)",
                ocr.languages.split('+').next().unwrap_or("eng")
            );
            None
        }
    };
    let documents: Option<Arc<dyn DocumentReader>> = if PopplerReader::available() {
        Some(Arc::new(PopplerReader::new(ocr.time_cap)))
    } else {
        tracing::warn!("PDFTOTEXT IS NOT AVAILABLE: PDFs are kept without their text (install poppler-utils)");
        None
    };
    TextReaders { recognizer, documents }
}

/// What reads the text of saved files; `None` where it is off or not installed.
pub struct TextReaders {
    pub recognizer: Option<Arc<dyn TextRecognizer>>,
    pub documents: Option<Arc<dyn DocumentReader>>,
}

/// The sentence-embedding model when semantic search is on and the model loads; `None`
/// (search by words only, loudly logged) otherwise.
pub fn embedder(config: &Config) -> Option<Arc<dyn TextEmbedder>> {
    let semantic = &config.semantic;
    if !semantic.enabled {
        tracing::info!("SEMANTIC_SEARCH=off: search finds memories by their words only");
        return None;
    }
    let started = std::time::Instant::now();
    match MiniLmEmbedder::load(&MiniLmSettings {
        model_dir: semantic.model_dir.clone(),
        index_threads: semantic.threads,
    }) {
        Ok(embedder) => {
            tracing::info!(
                model = %embedder.model_id(),
                load_ms = started.elapsed().as_millis() as u64,
                "semantic search is on: memories are embedded in the background"
            );
            Some(Arc::new(embedder))
        }
        Err(error) => {
            tracing::warn!(
                %error,
                "SEMANTIC SEARCH IS OFF: the embedding model did not load (run `make embed-model` or set \
                 EMBED_MODEL_DIR, then `whatsapp-memory reindex` for the memories saved meanwhile)"
            );
            None
        }
    }
}

/// Queues every memory without an embedding by the configured model for embedding;
/// returns how many. The queue waits in the database for a server's indexer.
///
/// # Errors
/// When semantic search is off, the model does not load, or the database fails.
pub async fn reindex(config: &Config) -> anyhow::Result<u64> {
    anyhow::ensure!(config.semantic.enabled, "SEMANTIC_SEARCH is off: there is nothing to reindex for");
    let settings = MiniLmSettings { model_dir: config.semantic.model_dir.clone(), index_threads: 1 };
    let model =
        MiniLmEmbedder::load(&settings).map_err(|e| anyhow::anyhow!("{e} (run `make embed-model`)"))?.model_id();
    let database = Database::open(&config.database_url, true).await?;
    let queued = app::semantic::reindex(&*database.repository, &model).await?;
    Ok(queued)
}

/// Recomputes, from the kept files, every image hash an earlier hash function made (see
/// `app::rehash`); returns what it did. Runs here and now, beside a server or not.
///
/// # Errors
/// When the database cannot be opened or fails.
pub async fn rehash_images(config: &Config) -> anyhow::Result<RehashReport> {
    let database = Database::open(&config.database_url, true).await?;
    let files: Arc<dyn MediaFiles> = Arc::new(MediaStorage::new(config.storage_dir.clone()));
    let rehasher = ImageRehasher::new(database.repository, database.reads, files, Arc::new(ContentInspector));
    Ok(rehasher.run_until_empty().await?)
}

/// The server's drain of the re-hash queue: the images a migration queued are re-hashed
/// while the server serves (until then a near duplicate of one may be missed).
async fn rehash_in_background(rehasher: ImageRehasher) {
    match rehasher.run_until_empty().await {
        Ok(RehashReport { rehashed: 0, skipped: 0 }) => {}
        Ok(report) => tracing::info!(
            rehashed = report.rehashed,
            skipped = report.skipped,
            "image hashes recomputed with the current hash function"
        ),
        Err(error) => tracing::warn!(
            %error,
            "recomputing image hashes stopped; the rest are done at the next start or by `reindex --hashes`"
        ),
    }
}

/// Queues the reading of every photo and PDF whose text was never read (saved before OCR
/// was on), due at `now` (the servers' clock); returns how many. A running server's
/// workers read them.
///
/// # Errors
/// When the database fails.
pub async fn reindex_ocr(config: &Config, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<u64> {
    let database = Database::open(&config.database_url, true).await?;
    Ok(app::ocr::reindex(&*database.repository, &*database.reads, now).await?)
}

/// The job queue's administration, for the `jobs` command: it works beside a running
/// server (whose workers take a retried job at their next poll) or without one.
///
/// # Errors
/// When the database cannot be opened.
pub async fn queue_service(config: &Config) -> anyhow::Result<QueueService> {
    let database = Database::open(&config.database_url, true).await?;
    Ok(QueueService::new(Arc::new(PoolQueueAdmin::new(database.pool)), Arc::new(SystemClock)))
}

/// Queues Mem0's copy of every memory Mem0 never got or whose copy failed; returns how
/// many. A running server with `MEM0_API_KEY` set does the work.
///
/// # Errors
/// When `MEM0_API_KEY` is not set, or the database fails.
pub async fn mem0_backfill(config: &Config, now: chrono::DateTime<chrono::Utc>) -> anyhow::Result<u64> {
    anyhow::ensure!(
        config.mem0_api_key.is_some(),
        "MEM0_API_KEY is not set: copies queued now would wait for a server that has a key"
    );
    let database = Database::open(&config.database_url, true).await?;
    let admin = PoolQueueAdmin::new(database.pool.clone());
    Ok(app::queue::mem0_backfill(&*database.repository, &admin, now).await?)
}

/// Longest one Mem0 call may take (adds and deletes, in jobs; searches have their own
/// shorter bound, `MEM0_SEARCH_TIMEOUT_MS`).
const MEM0_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an index job polls Mem0's inference before it lets the worker go and polls
/// the same event again on its next attempt: media and replies share the workers.
const MEM0_EVENT_WAIT: Duration = Duration::from_secs(10);
/// How long the start-up check of the Mem0 key may take.
const MEM0_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Mem0, when `MEM0_API_KEY` is set, after a `GET /v1/ping/`: a refused key stops a
/// production start (a service that silently fails every copy is worse than one that
/// does not start) and is a loud warning in development. Mem0 being down does not stop
/// a start: memories queue for it and search answers from the local index meanwhile.
///
/// # Errors
/// In production, when Mem0 refuses the key; when the HTTP client cannot be built.
pub async fn connect_mem0(config: &Config) -> anyhow::Result<Option<Arc<Mem0Store>>> {
    let Some(api_key) = &config.mem0_api_key else {
        return Ok(None);
    };
    let store = Mem0Store::new(Mem0Settings {
        base_url: config.mem0_base_url.clone(),
        api_key: api_key.clone(),
        infer: config.mem0_infer,
        request_timeout: MEM0_TIMEOUT,
        event_wait: MEM0_EVENT_WAIT,
    })?;
    let base = config.mem0_base_url.as_str();
    match tokio::time::timeout(MEM0_CHECK_TIMEOUT, store.check()).await {
        Ok(Ok(())) => {
            tracing::info!(%base, infer = config.mem0_infer, "Mem0 accepts the key: memories are copied to it")
        }
        Ok(Err(MemoryStoreError::Unauthorized(message))) => {
            if config.environment == Environment::Production {
                anyhow::bail!(
                    "MEM0_API_KEY was refused by Mem0 at {base} ({message}): set a valid key, or unset MEM0_API_KEY \
                     to run without Mem0"
                );
            }
            tracing::error!(
                %base,
                %message,
                "MEM0_API_KEY WAS REFUSED BY MEM0: no memory will reach Mem0 (each copy is marked failed). \
                 Fix the key, or unset MEM0_API_KEY. Production refuses to start like this."
            );
        }
        Ok(Err(error)) => {
            tracing::warn!(%base, %error, "Mem0 did not pass the start-up check; its copies wait until it does")
        }
        Err(_) => {
            tracing::warn!(%base, "Mem0 did not answer the start-up check in time; its copies wait until it does")
        }
    }
    Ok(Some(Arc::new(store)))
}

/// The work a server does beside answering requests.
pub struct Background {
    /// What `/metrics` reads, when metrics are on.
    metrics: Option<Arc<http::metrics::Scrape>>,
    /// Removes finished jobs past their retention, hourly.
    pruning: (QueueService, chrono::Duration),
    jobs: JobRunner,
    /// Embeds queued memories (semantic search on and its model loaded).
    indexer: Option<EmbeddingIndexer>,
    /// Recomputes the image hashes an earlier hash function made (a no-op once done).
    rehasher: ImageRehasher,
}

/// Connects the database (migrating it), and wires every adapter to its port.
///
/// # Errors
/// When the database cannot be opened or migrated, or an HTTP client cannot be built.
pub async fn build_state(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<(Arc<AppState>, Background)> {
    let mem0 = connect_mem0(config).await?;
    let database = Database::open(&config.database_url, true).await?;
    let repository = database.repository;
    let queue = Arc::new(PoolQueueAdmin::new(database.pool.clone()));
    let metrics = if config.metrics.enabled {
        let handle = telemetry::metrics::install()?;
        let usage = queue.clone();
        Some(Arc::new(http::metrics::Scrape::new(
            handle,
            config.metrics.token.as_ref(),
            queue.clone(),
            Box::new(move || usage.pool_usage()),
        )))
    } else {
        None
    };
    let job_signal = Arc::new(JobSignal::default());
    let activity = Arc::new(RequestRate::default());
    let embedder = embedder(config);
    let outbox = Outbox::new(mem0.is_some(), embedder.is_some());
    let reads: Arc<dyn ReadModel> = match mem0 {
        Some(_) => Arc::new(PoolReads::new(database.pool.clone()).with_mem0_status()),
        None => database.reads,
    };
    let semantic = embedder.clone().map(|embedder| {
        let settings =
            SemanticSettings { cache_bytes: config.semantic.cache_mb * 1024 * 1024, ..SemanticSettings::default() };
        Arc::new(SemanticIndex::new(embedder, reads.clone(), settings))
    });
    let search = || {
        let mut search = MemorySearch::local(database.memory_store.clone());
        if let Some(index) = &semantic {
            search = search.with_semantic(index.clone(), reads.clone());
        }
        if let Some(store) = &mem0 {
            search = search.with_mem0(store.clone(), reads.clone(), config.mem0_search_timeout);
        }
        search
    };
    let user_limiter = config.user_rate_limit.map(|limit| Arc::new(app::rate_limit::UserRateLimiter::new(limit)));
    let new_ingest = || {
        let ingest =
            IngestService::new(repository.clone(), reads.clone(), search(), clock.clone(), config.default_timezone)
                .with_job_signal(job_signal.clone())
                .with_outbox(outbox)
                .with_reminders(reminder_settings(config));
        // One limiter for both channels: a user's pace is theirs, whichever way they write.
        match &user_limiter {
            Some(limiter) => ingest.with_rate_limit(limiter.clone()),
            None => ingest,
        }
    };
    let ingest = new_ingest();
    // The Cloud API's messages are ingested by a worker, after the webhook answered.
    let delivery_ingest = new_ingest();
    let reminder_reads = reads.clone();
    let files: Arc<dyn MediaFiles> = Arc::new(MediaStorage::new(config.storage_dir.clone()));
    let api_keys = Arc::new(ApiKeys::new(&api_keys_or_generated(config)?));
    let webhook = WebhookState {
        signature: config.twilio_auth_token.clone().map(SignatureValidator::new),
        public_base_url: config.public_base_url.clone(),
        accept_unsigned: config.environment == Environment::Development,
    };
    let cloud = config.meta.as_ref().map(|meta| CloudWebhook {
        app_secret: meta.app_secret.clone(),
        verify_token: meta.verify_token.clone(),
        signal: Some(job_signal.clone()),
    });

    let twilio_fetcher: Arc<dyn MediaFetcher> = match (&config.twilio_account_sid, &config.twilio_auth_token) {
        (Some(sid), Some(token)) => Arc::new(TwilioMediaFetcher::new(
            config.twilio_api_base_url.clone(),
            sid.clone(),
            token.clone(),
            config.media_max_bytes,
            TWILIO_TIMEOUT,
        )?),
        _ => match config.local_twilio() {
            Some(local) => Arc::new(TwilioMediaFetcher::new(
                local.api_base_url,
                local.account_sid,
                local.auth_token,
                config.media_max_bytes,
                TWILIO_TIMEOUT,
            )?),
            None => Arc::new(UnconfiguredFetcher),
        },
    };
    let meta_fetcher: Option<Arc<dyn MediaFetcher>> = match &config.meta {
        Some(meta) => Some(Arc::new(MetaMediaFetcher::new(meta, config.media_max_bytes, META_TIMEOUT)?)),
        None => None,
    };
    let fetcher: Arc<dyn MediaFetcher> = Arc::new(ChannelFetcher::new(twilio_fetcher, meta_fetcher));
    let meta_sender: Option<Arc<dyn MessageSender>> = match &config.meta {
        Some(meta) => Some(Arc::new(MetaSender::new(meta, META_TIMEOUT)?)),
        None => None,
    };
    let sender: Option<Arc<dyn MessageSender>> = match (config.twilio_rest(), config.local_twilio()) {
        (Some((sid, token, from)), _) => {
            Some(Arc::new(TwilioSender::new(config.twilio_api_base_url.clone(), sid, token, from, TWILIO_TIMEOUT)?))
        }
        (None, Some(local)) => Some(Arc::new(TwilioSender::new(
            local.api_base_url,
            local.account_sid,
            local.auth_token,
            local.whatsapp_number,
            TWILIO_TIMEOUT,
        )?)),
        (None, None) if config.meta.is_some() && config.twilio_auth_token.is_none() => None,
        (None, None) => {
            tracing::warn!(
                "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_WHATSAPP_NUMBER are not all set: \
                 late replies (after media) to Twilio's users are recorded but not sent"
            );
            None
        }
    };
    let inspector: Arc<dyn MediaInspector> = Arc::new(ContentInspector);
    let (rehash_reads, rehash_files, rehash_inspector) = (reads.clone(), files.clone(), inspector.clone());
    let max_audio_seconds = config.voice.max_seconds as f64;
    let keeper = MediaKeeper::new(fetcher, files.clone(), inspector.clone()).with_max_audio_seconds(max_audio_seconds);
    let transcriber = transcriber(config)?;
    let TextReaders { recognizer, documents } = text_readers(config);
    let read_text = TextReading { images: recognizer.is_some(), pdfs: documents.is_some() };
    let memories = MemoryService::new(
        repository.clone(),
        reads.clone(),
        files.clone(),
        search(),
        clock.clone(),
        config.default_timezone,
    )
    .with_media(keeper.clone(), config.near_duplicate_distance)
    .with_transcription(transcriber.is_some())
    .with_text_reading(read_text)
    .with_outbox(outbox);
    let media = MediaJobHandler::new(
        repository.clone(),
        keeper,
        clock.clone(),
        MediaSettings {
            near_duplicate_distance: config.near_duplicate_distance,
            default_timezone: config.default_timezone,
            transcribe: transcriber.is_some(),
            read_text,
        },
    )
    .with_outbox(outbox);
    let mut jobs = JobRunner::new(
        repository.clone(),
        clock.clone(),
        WorkerSettings {
            workers: config.workers,
            // Workers renew the lease while a job runs, so the lease only bounds how long a
            // crashed worker's job waits, and a run may take longer than one lease.
            lease: config.job_lease,
            ..WorkerSettings::default()
        },
        job_signal.clone(),
    )
    .handle(MEDIA_JOB_KIND, Arc::new(media))
    .handle(
        REMINDER_JOB_KIND,
        Arc::new(ReminderDelivery::new(repository.clone(), sender.clone(), clock.clone(), reminder_settings(config))),
    )
    .handle(
        SEND_JOB_KIND,
        Arc::new(SendJobHandler::new(repository.clone(), sender, clock.clone()).with_meta(meta_sender)),
    )
    .handle(
        META_DELIVERY_JOB_KIND,
        Arc::new(DeliveryJobHandler::new(repository.clone(), delivery_ingest, Arc::new(CloudApiDecoder))),
    )
    .handle(
        OCR_JOB_KIND,
        Arc::new(
            OcrJobHandler::new(repository.clone(), files.clone(), recognizer, documents, clock.clone())
                .with_pdf_limits(config.ocr.pdf_max_pages, config.ocr.time_cap)
                .with_outbox(outbox),
        ),
    )
    .handle(
        TRANSCRIBE_JOB_KIND,
        Arc::new(
            TranscribeJobHandler::new(
                repository.clone(),
                files,
                inspector,
                transcriber,
                clock.clone(),
                max_audio_seconds,
            )
            .with_outbox(outbox),
        ),
    );
    let indexer = embedder.map(|embedder| {
        EmbeddingIndexer::new(repository.clone(), reads.clone(), embedder).with_activity(activity.clone())
    });
    if let Some(store) = mem0 {
        let deleter = Arc::new(Mem0DeleteHandler::new(store.clone()));
        jobs = jobs
            .handle(
                MEM0_INDEX_JOB_KIND,
                Arc::new(Mem0IndexHandler::new(repository.clone(), reads, store, clock.clone())),
            )
            .handle(MEM0_DELETE_JOB_KIND, deleter.clone())
            .handle(MEM0_ERASE_JOB_KIND, deleter);
    }
    let rehasher = ImageRehasher::new(repository.clone(), rehash_reads, rehash_files, rehash_inspector);
    let queue = QueueService::new(queue, clock.clone()).with_job_signal(job_signal);
    let background = Background { metrics, pruning: (queue.clone(), config.job_retention), jobs, indexer, rehasher };
    let reminders = ReminderService::new(
        repository.clone(),
        reminder_reads,
        clock.clone(),
        config.default_timezone,
        reminder_settings(config),
        outbox,
    );
    let api_rate_limit = config.api_rate_limit.map(|limit| Arc::new(http::rate_limit::ApiRateLimiter::new(limit)));
    let state = AppState {
        ingest,
        memories,
        reminders,
        queue,
        repository,
        webhook,
        cloud,
        api_keys,
        clock,
        activity,
        api_rate_limit,
    };
    Ok((Arc::new(state), background))
}

/// How often the metrics recorder's histogram samples are folded into their buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Folds histogram samples into buckets every few seconds until the server stops.
async fn keep_metrics(scrape: Arc<http::metrics::Scrape>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(METRICS_UPKEEP) => scrape.upkeep(),
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
}

/// The configured API keys; in development without any, one generated now and printed
/// once, so the REST API is never open (production refuses to start without keys).
fn api_keys_or_generated(config: &Config) -> anyhow::Result<Vec<config::Secret>> {
    if !config.api_keys.is_empty() {
        return Ok(config.api_keys.clone());
    }
    let key = http::auth::generate_key().map_err(|e| anyhow::anyhow!("cannot generate an API key: {e}"))?;
    eprintln!(
        "\nAPI_KEYS is not set: this development server accepts one key, generated for this run:\n\n    {key}\n\n\
         Use it as `Authorization: Bearer <key>` (or \"Authorize\" in /docs). Set API_KEYS to keep a key across runs.\n"
    );
    Ok(vec![config::Secret::new(key)])
}

impl Application {
    /// Builds the service from `config` and binds its port (0 picks a free one).
    ///
    /// # Errors
    /// When the database cannot be prepared or the port cannot be bound.
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], reading time from `clock` (tests pin it).
    ///
    /// # Errors
    /// As [`Application::build`].
    pub async fn build_with_clock(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        if config.twilio_auth_token.is_none() && config.environment == Environment::Production {
            tracing::info!(
                "TWILIO_AUTH_TOKEN is not set: Twilio's /webhook refuses every request (Meta's channel only)"
            );
        } else if config.twilio_auth_token.is_none() {
            // Config refuses an unsigned Twilio webhook in production; say it loudly here.
            tracing::warn!(
                "TWILIO_AUTH_TOKEN is not set: webhook signatures are NOT verified. \
                 Anyone who can reach /webhook can write memories. Set it before exposing the service."
            );
            if let Some(local) = config.local_twilio() {
                tracing::info!(
                    api = %local.api_base_url,
                    "no Twilio setting: media is fetched from, and late replies sent to, the Twilio API that \
                     `simulate --media` plays on loopback"
                );
            }
        }
        let (state, background) = build_state(config, clock).await?;
        http::serve::ensure_descriptors(&config.connections);
        let address = SocketAddr::new(config.host, config.port);
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
        let local_addr =
            listener.local_addr().map_err(|e| anyhow::anyhow!("the listener has no socket address: {e}"))?;
        let metrics = match (background.metrics.clone(), config.metrics.addr) {
            (None, _) => None,
            (Some(scrape), None) => Some((scrape, None)),
            (Some(scrape), Some(address)) => {
                let listener = tokio::net::TcpListener::bind(address)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen for /metrics on {address} (METRICS_ADDR): {e}"))?;
                tracing::info!(address = %listener.local_addr()?, "/metrics is served on its own listener");
                Some((scrape, Some(listener)))
            }
        };
        tracing::info!(
            %local_addr,
            database = %redact_url(&config.database_url),
            environment = ?config.environment,
            signatures = config.twilio_auth_token.is_some(),
            meta_cloud_api = config.meta.is_some(),
            "whatsapp-memory is listening"
        );
        if config.environment == Environment::Development && config.public_base_url.is_none() {
            tracing::info!("PUBLIC_BASE_URL is not set: signatures are checked against the Host header");
        }
        Ok(Self { local_addr, listener, metrics, connections: config.connections, state, background })
    }

    /// The address actually bound (its port, when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address of the separate `/metrics` listener, when `METRICS_ADDR` asked for one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(_, listener)| listener.as_ref()).and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves, then lets requests in flight finish.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self, shutdown: impl std::future::Future<Output = ()> + Send) -> anyhow::Result<()> {
        let (stop_workers, stopping) = tokio::sync::watch::channel(false);
        let indexer = self.background.indexer.map(|indexer| indexer.start(stopping.clone()));
        let stopping_for_pruning = stopping.clone();
        let workers = self.background.jobs.start(stopping);
        tokio::spawn(rehash_in_background(self.background.rehasher));
        let (pruner, retention) = self.background.pruning;
        tokio::spawn(pruner.prune_until_stopped(retention, stopping_for_pruning));
        let mut stopped = stop_workers.subscribe();
        let shutdown = async move {
            shutdown.await;
            // Stop claiming jobs at once; jobs in hand finish below.
            let _ = stop_workers.send(true);
        };
        let (main_metrics, own_listener) = match self.metrics {
            None => (None, None),
            Some((scrape, None)) => (Some(scrape), None),
            Some((scrape, Some(listener))) => (None, Some((scrape, listener))),
        };
        if let Some(scrape) = main_metrics.clone().or_else(|| own_listener.as_ref().map(|(s, _)| s.clone())) {
            tokio::spawn(keep_metrics(scrape, stopped.clone()));
        }
        if let Some((scrape, listener)) = own_listener {
            let stop = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            let routes = http::metrics_routes(scrape).map_to_response();
            tokio::spawn(http::serve::serve(listener, routes, self.connections, stop, Duration::from_secs(1)));
        }
        let routes = http::routes(self.state, main_metrics).map_to_response();
        http::serve::serve(self.listener, routes, self.connections, shutdown, Duration::from_secs(10)).await?;
        if tokio::time::timeout(JOB_SHUTDOWN_GRACE, workers).await.is_err() {
            tracing::warn!("jobs still running at shutdown are claimed again when their lease expires");
        }
        if let Some(indexer) = indexer {
            // A batch cut short stays queued and is embedded again.
            let _ = tokio::time::timeout(JOB_SHUTDOWN_GRACE, indexer).await;
        }
        Ok(())
    }
}

/// The reminder use cases' settings, from the configuration.
fn reminder_settings(config: &Config) -> ReminderSettings {
    let delta = |d: std::time::Duration| chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX);
    ReminderSettings {
        default_time: config.reminders.default_time,
        late_after: delta(config.reminders.late_after),
        max_late: delta(config.reminders.max_late),
        template_sid: config.reminders.template_sid.clone(),
        ..ReminderSettings::default()
    }
}
